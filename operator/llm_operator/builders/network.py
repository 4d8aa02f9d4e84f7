"""How replicas are reached (pure): the Service, the PodDisruptionBudget, the NetworkPolicy
and the ServiceMonitor."""

from __future__ import annotations

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.common import (
    DEPLOYMENT_LABEL,
    ENGINE_PORT,
    SERVICE_PORT,
    labels,
    metadata,
    selector_labels,
)
from llm_operator.builders.kinds import NETWORK_POLICY, PDB, SERVICE, SERVICE_MONITOR, Manifest
from llm_operator.config import OperatorConfig


def service(obj: LLMDeployment) -> Manifest:
    target = "http" if obj.spec.gateway.enabled else "engine"
    ports = [{"name": "http", "port": SERVICE_PORT, "targetPort": target, "protocol": "TCP"}]
    ports.append(
        {"name": "engine-metrics", "port": ENGINE_PORT, "targetPort": "engine", "protocol": "TCP"}
    )
    return {
        "apiVersion": SERVICE.api_version,
        "kind": SERVICE.kind,
        "metadata": metadata(obj),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(obj.metadata.name),
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


def network_policy(obj: LLMDeployment, metrics_namespace: str) -> Manifest:
    access = obj.spec.access
    port = "http" if obj.spec.gateway.enabled else "engine"
    peers: list[Manifest] = [{"podSelector": {}}]  # the object's own namespace
    peers += [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
        for ns in access.allowed_namespaces
    ]
    if access.allowed_pod_selector:
        peers = [{"podSelector": {"matchLabels": dict(access.allowed_pod_selector)}}, *peers[1:]]
    scrape = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": metrics_namespace}}
    }
    return {
        "apiVersion": NETWORK_POLICY.api_version,
        "kind": NETWORK_POLICY.kind,
        "metadata": metadata(obj),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(obj.metadata.name)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": peers, "ports": [{"port": port, "protocol": "TCP"}]},
                {
                    "from": [scrape],
                    "ports": [
                        {"port": "http", "protocol": "TCP"},
                        {"port": "engine", "protocol": "TCP"},
                    ],
                },
            ],
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
    endpoints = [{"port": "engine-metrics", "path": "/metrics", "interval": interval}]
    if obj.spec.gateway.enabled:
        endpoints.insert(0, {"port": "http", "path": "/metrics", "interval": interval})
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
