"""The objects an LLMDeployment owns, as manifest dicts ready for server-side apply.

Every child has a fixed name derived from the LLMDeployment's name, so applying twice changes
nothing and a restarted operator finds what it made instead of making it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from llm_operator.api.v1alpha1 import EngineKind, LLMDeployment, LLMDeploymentSpec
from llm_operator.builders import tgi, vllm
from llm_operator.builders.common import (
    DEPLOYMENT_LABEL,
    ENGINE_PORT,
    GATEWAY_PORT,
    SERVICE_PORT,
    config_map_name,
    labels,
    metadata,
    selector_labels,
    served_name,
)
from llm_operator.config import GPU_RESOURCE, OperatorConfig
from llm_operator.gateway.config import (
    CONFIG_DIR,
    CONFIG_FILE,
    KEYS_DIR,
    GatewayConfig,
    GenerationPolicy,
    RateLimitPolicy,
)

Manifest = dict[str, Any]
MODELS_PATH = "/models"
ENGINES = {EngineKind.VLLM: vllm, EngineKind.TGI: tgi}


@dataclass(frozen=True)
class ChildKind:
    api_version: str
    kind: str
    plural: str


DEPLOYMENT = ChildKind("apps/v1", "Deployment", "deployments")
SERVICE = ChildKind("v1", "Service", "services")
CONFIG_MAP = ChildKind("v1", "ConfigMap", "configmaps")
PDB = ChildKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
NETWORK_POLICY = ChildKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies")
SERVICE_MONITOR = ChildKind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors")
ALL_KINDS = (CONFIG_MAP, DEPLOYMENT, SERVICE, PDB, NETWORK_POLICY, SERVICE_MONITOR)


def model_ref(spec: LLMDeploymentSpec) -> str:
    """What the engine is told to load."""
    scheme, location = spec.model.scheme, spec.model.location
    if scheme == "hf":
        return location
    if scheme == "pvc":
        path = location.split("/", 1)[1] if "/" in location else ""
        return f"{MODELS_PATH}/{path}".rstrip("/")
    return spec.model.uri  # s3:// is streamed by vLLM's run:ai loader


def desired_replicas(spec: LLMDeploymentSpec) -> int:
    if spec.autoscaling.enabled:
        return min(max(spec.replicas, spec.autoscaling.min_replicas), spec.autoscaling.max_replicas)
    return spec.replicas


def gateway_config(obj: LLMDeployment) -> GatewayConfig:
    spec = obj.spec
    g = spec.generation
    gw = spec.gateway
    return GatewayConfig(
        model=served_name(obj),
        engine=spec.engine.kind.value,
        engine_url=f"http://127.0.0.1:{ENGINE_PORT}",
        generation=GenerationPolicy(
            temperature=g.temperature,
            top_p=g.top_p,
            max_new_tokens=g.max_new_tokens,
            max_tokens=g.max_tokens,
            frequency_penalty=g.frequency_penalty,
            repetition_penalty=g.repetition_penalty,
            timeout_seconds=g.timeout_seconds,
            enforce=g.enforce.value,
        ),
        pii=gw.safety.pii.value,
        expected_language=gw.expected_language,
        rate_limit=RateLimitPolicy(**gw.rate_limit.model_dump()) if gw.rate_limit else None,
        max_body_bytes=gw.max_body_bytes,
        api_keys_dir=KEYS_DIR if gw.api_key_secret_ref else None,
    )


def config_map(obj: LLMDeployment) -> Manifest:
    cfg = gateway_config(obj).model_dump(by_alias=True, exclude_none=True, mode="json")
    return {
        "apiVersion": CONFIG_MAP.api_version,
        "kind": CONFIG_MAP.kind,
        "metadata": metadata(obj, config_map_name(obj.metadata.name)),
        "data": {CONFIG_FILE: yaml.safe_dump(cfg, sort_keys=True)},
    }


def _probe(path: str, port: str, period: int, failures: int, timeout: int = 5) -> Manifest:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def _engine_container(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    spec = obj.spec
    engine = ENGINES[spec.engine.kind]
    env: list[Manifest] = [{"name": e.name, "value": e.value} for e in spec.engine.env]
    env_from: list[Manifest] = []
    creds = spec.model.credentials_secret_ref
    if creds is not None:
        if spec.model.scheme == "s3":
            env_from.append({"secretRef": {"name": creds.name}})
        else:
            env.append(
                {
                    "name": engine.TOKEN_ENV,
                    "valueFrom": {"secretKeyRef": {"name": creds.name, "key": creds.key}},
                }
            )
    env.append({"name": "HF_HOME", "value": engine.CACHE_PATH})
    limits: dict[str, str] = {GPU_RESOURCE: str(spec.resources.gpu.count)}
    requests: dict[str, str] = {GPU_RESOURCE: str(spec.resources.gpu.count)}
    if spec.resources.cpu:
        requests["cpu"] = spec.resources.cpu
    if spec.resources.memory:
        requests["memory"] = limits["memory"] = spec.resources.memory
    mounts = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "model-cache", "mountPath": engine.CACHE_PATH},
    ]
    if spec.model.scheme == "pvc":
        mounts.append({"name": "models", "mountPath": MODELS_PATH, "readOnly": True})
    container: Manifest = {
        "name": "engine",
        "image": spec.engine.image or getattr(config.images, spec.engine.kind.value),
        "args": engine.args(spec, served_name(obj), model_ref(spec), config),
        "env": env,
        "ports": [{"name": "engine", "containerPort": ENGINE_PORT, "protocol": "TCP"}],
        "resources": {"limits": limits, "requests": requests},
        # Model loading can take many minutes: the startup probe holds liveness off until then.
        "startupProbe": _probe(
            engine.HEALTH_PATH, "engine", 10, math.ceil(config.startup_budget_seconds / 10)
        ),
        "readinessProbe": _probe(engine.HEALTH_PATH, "engine", 5, 3),
        "livenessProbe": _probe(engine.HEALTH_PATH, "engine", 10, 6, timeout=10),
        "volumeMounts": mounts,
        # Upstream vLLM and TGI images run as root and write to their cache paths, so the engine
        # keeps its user; it still loses every capability and privilege escalation.
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if env_from:
        container["envFrom"] = env_from
    return container


def _gateway_container(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    gw = obj.spec.gateway
    mounts: list[Manifest] = [{"name": "gateway-config", "mountPath": CONFIG_DIR, "readOnly": True}]
    if gw.api_key_secret_ref:
        mounts.append({"name": "api-keys", "mountPath": KEYS_DIR, "readOnly": True})
    return {
        "name": "gateway",
        "image": gw.image or config.images.gateway,
        "args": ["--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--port", str(GATEWAY_PORT)],
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        "readinessProbe": _probe("/readyz", "http", 5, 3),
        "livenessProbe": _probe("/healthz", "http", 10, 3),
        "volumeMounts": mounts,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def deployment(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    spec = obj.spec
    name = obj.metadata.name
    profile = config.gpu_profiles[spec.resources.gpu.profile]
    containers = [_engine_container(obj, config)]
    volumes: list[Manifest] = [
        {
            "name": "dshm",
            "emptyDir": {"medium": "Memory", "sizeLimit": f"{2 * spec.resources.gpu.count}Gi"},
        },
        {"name": "model-cache", "emptyDir": {}},
    ]
    if spec.model.scheme == "pvc":
        claim = spec.model.location.split("/", 1)[0]
        volumes.append(
            {"name": "models", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
    if spec.gateway.enabled:
        containers.append(_gateway_container(obj, config))
        volumes.append({"name": "gateway-config", "configMap": {"name": config_map_name(name)}})
        if spec.gateway.api_key_secret_ref:
            volumes.append(
                {
                    "name": "api-keys",
                    "secret": {
                        "secretName": spec.gateway.api_key_secret_ref.name,
                        "defaultMode": 0o440,
                    },
                }
            )
    pod_labels = labels(name)
    return {
        "apiVersion": DEPLOYMENT.api_version,
        "kind": DEPLOYMENT.kind,
        "metadata": metadata(obj),
        "spec": {
            "replicas": desired_replicas(spec),
            "selector": {"matchLabels": selector_labels(name)},
            # A GPU replica is expensive: never run more than asked for during a rollout.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            },
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(
                            GATEWAY_PORT if spec.gateway.enabled else ENGINE_PORT
                        ),
                    },
                },
                "spec": {
                    "containers": containers,
                    "volumes": volumes,
                    "nodeSelector": profile.selector(),
                    "tolerations": [t.model_dump(exclude_none=True) for t in profile.tolerations],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {
                        "fsGroup": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                },
            },
        },
    }


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


def build_all(
    obj: LLMDeployment,
    config: OperatorConfig,
    *,
    service_monitor_available: bool = False,
) -> list[Manifest]:
    """Every child the object should have, in apply order (the ConfigMap before its pods)."""
    out: list[Manifest] = []
    if obj.spec.gateway.enabled:
        out.append(config_map(obj))
    out += [deployment(obj, config), service(obj)]
    if desired_replicas(obj.spec) > 1 or (
        obj.spec.autoscaling.enabled and obj.spec.autoscaling.max_replicas > 1
    ):
        out.append(pod_disruption_budget(obj))
    out.append(network_policy(obj, config.metrics_namespace))
    if service_monitor_available:
        out.append(service_monitor(obj, config))
    return out
