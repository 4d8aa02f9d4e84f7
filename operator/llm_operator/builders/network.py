"""How replicas are reached (pure): the Service, the PodDisruptionBudget, the NetworkPolicy
and the ServiceMonitor."""

from __future__ import annotations

from urllib.parse import urlsplit

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.common import (
    DEPLOYMENT_LABEL,
    METRICS_PORT,
    SERVICE_PORT,
    activator_selector,
    labels,
    metadata,
    selector_labels,
)
from llm_operator.builders.kinds import NETWORK_POLICY, PDB, SERVICE, SERVICE_MONITOR, Manifest
from llm_operator.config import OperatorConfig
from llm_operator.gateway.config import ENGINE_METRICS_PATH


def service(obj: LLMDeployment, selector: dict[str, str] | None = None) -> Manifest:
    """Only the API: the gateway's port (or the engine's when there is no gateway), and the
    metrics port for the ServiceMonitor; the engine port is never published behind a gateway.
    ``selector``: the replicas unless given (scale to zero points it at the activator)."""
    if obj.spec.gateway.enabled:
        ports = [
            {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"},
            {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
        ]
    else:
        ports = [{"name": "http", "port": SERVICE_PORT, "targetPort": "engine", "protocol": "TCP"}]
    return {
        "apiVersion": SERVICE.api_version,
        "kind": SERVICE.kind,
        "metadata": metadata(obj),
        "spec": {
            "type": "ClusterIP",
            "selector": selector or selector_labels(obj.metadata.name),
            "ports": ports,
        },
    }


def pod_disruption_budget(obj: LLMDeployment) -> Manifest:
    return {
        "apiVersion": PDB.api_version,
        "kind": PDB.kind,
        "metadata": metadata(obj),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(obj.metadata.name)},
        },
    }


def api_peers(obj: LLMDeployment) -> list[Manifest]:
    """Who may call the API: the object's namespace, or the pods and namespaces in ``access``."""
    access = obj.spec.access
    peers: list[Manifest] = [{"podSelector": {}}]  # the object's own namespace
    peers += [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
        for ns in access.allowed_namespaces
    ]
    if access.allowed_pod_selector:
        peers = [{"podSelector": {"matchLabels": dict(access.allowed_pod_selector)}}, *peers[1:]]
    return peers


def prometheus_peer(config: OperatorConfig) -> Manifest:
    return {
        "namespaceSelector": {
            "matchLabels": {"kubernetes.io/metadata.name": config.metrics_namespace}
        },
        "podSelector": {"matchLabels": dict(config.metrics_pod_selector)},
    }


def collector_ports(obj: LLMDeployment) -> list[int]:
    """The ports of the trace collector's URLs (80/443 when a URL names none)."""
    tr = obj.spec.monitoring.tracing
    if tr is None:
        return []
    urls = [tr.endpoint] + ([tr.grpc_endpoint] if tr.grpc_endpoint and tr.engine else [])
    ports = set()
    for url in urls:
        u = urlsplit(url)
        ports.add(u.port or (443 if u.scheme == "https" else 80))
    return sorted(ports)


def network_policy(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    """Who may reach a replica, and what a replica may reach.

    Ingress: the API port from the object's namespace (or the pods and namespaces in
    ``spec.access``); the metrics port only from the Prometheus pods of the metrics namespace.
    Behind a gateway the engine listens on the pod's loopback, so no rule names its port.
    Egress: DNS, and HTTPS only while the weights come from the network (Hugging Face or s3
    without the model cache), the trace collector's ports when tracing is on; nothing else, so
    a replica cannot be used to reach the cluster.
    """
    port = "http" if obj.spec.gateway.enabled else "engine"
    peers = api_peers(obj)
    if obj.spec.access.allowed_pod_selector and obj.spec.autoscaling.scale_to_zero.enabled:
        # The activator forwards the requests it held (the namespace-wide peer covers it else).
        peers.append({"podSelector": {"matchLabels": activator_selector(obj.metadata.name)}})
    scrape = prometheus_peer(config)
    metrics_port = "metrics" if obj.spec.gateway.enabled else "engine"
    egress: list[Manifest] = [
        {
            "to": [{"namespaceSelector": {}}],
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        }
    ]
    if obj.spec.model.scheme in ("hf", "s3") and obj.spec.model.cache is None:
        egress.append({"ports": [{"port": 443, "protocol": "TCP"}]})
    if ports := collector_ports(obj):  # spans to the collector (spec.monitoring.tracing)
        egress.append({"ports": [{"port": p, "protocol": "TCP"} for p in ports]})
    return {
        "apiVersion": NETWORK_POLICY.api_version,
        "kind": NETWORK_POLICY.kind,
        "metadata": metadata(obj),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(obj.metadata.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": peers, "ports": [{"port": port, "protocol": "TCP"}]},
                {"from": [scrape], "ports": [{"port": metrics_port, "protocol": "TCP"}]},
            ],
            "egress": egress,
        },
    }


def service_monitor(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    """Scrape the gateway and the engine of every pod behind the Service.

    ``podTargetLabels`` makes the Prometheus Operator copy the pod label
    ``llmops.dev/deployment`` onto every target as ``llmops_dev_deployment``: the label every
    autoscaler query and alert selects (without it nothing matches in a cluster). Labels from
    the operator config let the cluster's Prometheus select it (kube-prometheus-stack:
    ``release``).
    """
    interval = f"{max(1, round(config.evaluation_interval_seconds))}s"
    if obj.spec.gateway.enabled:  # both through the gateway's metrics port
        endpoints = [
            {"port": "metrics", "path": "/metrics", "interval": interval},
            {"port": "metrics", "path": ENGINE_METRICS_PATH, "interval": interval},
        ]
    else:
        endpoints = [{"port": "http", "path": "/metrics", "interval": interval}]
    meta = metadata(obj)
    meta["labels"] = {**config.service_monitor_labels, **meta["labels"]}
    return {
        "apiVersion": SERVICE_MONITOR.api_version,
        "kind": SERVICE_MONITOR.kind,
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": labels(obj.metadata.name)},
            "namespaceSelector": {"matchNames": [obj.metadata.namespace]},
            "podTargetLabels": [DEPLOYMENT_LABEL],
            "endpoints": endpoints,
        },
    }
