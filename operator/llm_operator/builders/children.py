"""The objects an LLMDeployment owns, as manifest dicts ready for server-side apply.

Every child has a fixed name derived from the LLMDeployment's name, so applying twice changes
nothing and a restarted operator finds what it made instead of making it again.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from llm_operator.api.v1alpha1 import EngineKind, LLMDeployment, LLMDeploymentSpec
from llm_operator.builders.common import (
    DEPLOYMENT_LABEL,
    ENGINE_PORT,
    GATEWAY_PORT,
    MANAGED_BY,
    REPLACE_ANNOTATION,
    SERVICE_PORT,
    config_map_name,
    labels,
    metadata,
    selector_labels,
    served_name,
)
from llm_operator.config import GPU_RESOURCE, OperatorConfig
from llm_operator.engines import tgi, vllm
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
CACHE_MOUNT = "/model-cache"
CACHE_MARKER = ".llmops-complete"
ENGINES = {EngineKind.VLLM: vllm, EngineKind.TGI: tgi}
# The fill Job writes the marker last: a directory without it is a download in progress.
FILL_SCRIPT = f"""\
import pathlib, sys
from huggingface_hub import snapshot_download
repo, revision, dest = sys.argv[1], sys.argv[2] or None, pathlib.Path(sys.argv[3])
snapshot_download(repo_id=repo, revision=revision, local_dir=dest)
(dest / "{CACHE_MARKER}").write_text(revision or "main")
"""


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
PVC = ChildKind("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
JOB = ChildKind("batch/v1", "Job", "jobs")
ALL_KINDS = (CONFIG_MAP, PVC, JOB, DEPLOYMENT, SERVICE, PDB, NETWORK_POLICY, SERVICE_MONITOR)


def child_name(kind: ChildKind, name: str) -> str:
    """The fixed name of each child of the LLMDeployment ``name``."""
    if kind is CONFIG_MAP:
        return config_map_name(name)
    if kind in (PVC, JOB):
        return f"{name}-model-cache"
    return name


def cache_claim(obj: LLMDeployment) -> str | None:
    cache = obj.spec.model.cache
    if cache is None:
        return None
    return cache.existing_claim or child_name(PVC, obj.metadata.name)


def cache_dir(spec: LLMDeploymentSpec) -> str:
    """Where in the claim this model and revision live (one claim can hold several)."""
    raw = spec.model.location + (f"@{spec.model.revision}" if spec.model.revision else "")
    return re.sub(r"[^A-Za-z0-9._@-]", "--", raw)


def model_ref(spec: LLMDeploymentSpec) -> str:
    """What the engine is told to load."""
    scheme, location = spec.model.scheme, spec.model.location
    if spec.model.cache is not None:
        return f"{CACHE_MOUNT}/{cache_dir(spec)}"
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
    if spec.model.cache is not None:  # the weights are on the volume: never reach the hub
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
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
    if spec.model.cache is not None:
        mounts.append({"name": "model-store", "mountPath": CACHE_MOUNT, "readOnly": True})
    container: Manifest = {
        "name": "engine",
        "image": _engine_image(obj, config),
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


def _engine_image(obj: LLMDeployment, config: OperatorConfig) -> str:
    image: str = obj.spec.engine.image or getattr(config.images, obj.spec.engine.kind.value)
    return image


def _wait_for_cache(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    """Replicas start once the fill Job's marker is there, not on a half-written directory."""
    marker = f"{CACHE_MOUNT}/{cache_dir(obj.spec)}/{CACHE_MARKER}"
    return {
        "name": "wait-for-model-cache",
        "image": _engine_image(obj, config),
        "command": [
            "sh",
            "-c",
            f'until [ -f "{marker}" ]; do echo "waiting for {marker}"; sleep 5; done',
        ],
        "volumeMounts": [{"name": "model-store", "mountPath": CACHE_MOUNT, "readOnly": True}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def persistent_volume_claim(obj: LLMDeployment) -> Manifest:
    """The claim the fill Job writes and every replica reads: ReadWriteMany, because a
    ReadOnlyMany volume cannot be filled by a pod; replicas mount it read-only."""
    cache = obj.spec.model.cache
    assert cache is not None and cache.size is not None
    spec: Manifest = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": cache.size}},
    }
    if cache.storage_class_name:
        spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": PVC.api_version,
        "kind": PVC.kind,
        "metadata": metadata(obj, child_name(PVC, obj.metadata.name)),
        "spec": spec,
    }


def model_cache_job(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    """Download the weights once into the claim, on the GPU profile's nodes (no GPU asked).

    A Job's pod template cannot change: the annotation ``REPLACE_ANNOTATION`` names what it
    downloads, and the operator replaces the Job when the model or revision changes.
    """
    spec = obj.spec
    name = obj.metadata.name
    store = cache_claim(obj)
    assert store is not None
    profile = config.gpu_profiles[spec.resources.gpu.profile]
    env: list[Manifest] = [{"name": "HF_HOME", "value": f"{CACHE_MOUNT}/.hf"}]
    creds = spec.model.credentials_secret_ref
    if creds is not None:
        env.append(
            {
                "name": ENGINES[spec.engine.kind].TOKEN_ENV,
                "valueFrom": {"secretKeyRef": {"name": creds.name, "key": creds.key}},
            }
        )
    pod_labels = {
        "app.kubernetes.io/name": "llm-inference",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        # Not the replicas' component: the Service and the Deployment must never select it.
        "app.kubernetes.io/component": "model-cache",
        DEPLOYMENT_LABEL: name,
    }
    meta = metadata(obj, child_name(JOB, name))
    meta["labels"] = pod_labels
    meta["annotations"] = {REPLACE_ANNOTATION: f"{spec.model.uri}@{spec.model.revision or ''}"}
    return {
        "apiVersion": JOB.api_version,
        "kind": JOB.kind,
        "metadata": meta,
        "spec": {
            "backoffLimit": 4,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "download",
                            "image": _engine_image(obj, config),
                            "command": [
                                "python3",
                                "-c",
                                FILL_SCRIPT,
                                spec.model.location,
                                spec.model.revision or "",
                                f"{CACHE_MOUNT}/{cache_dir(spec)}",
                            ],
                            "env": env,
                            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                            "volumeMounts": [{"name": "model-store", "mountPath": CACHE_MOUNT}],
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                        }
                    ],
                    "volumes": [
                        {"name": "model-store", "persistentVolumeClaim": {"claimName": store}}
                    ],
                    "nodeSelector": profile.selector(),
                    "tolerations": [t.model_dump(exclude_none=True) for t in profile.tolerations],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                },
            },
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
    init: list[Manifest] = []
    if (store := cache_claim(obj)) is not None:
        volumes.append(
            {"name": "model-store", "persistentVolumeClaim": {"claimName": store, "readOnly": True}}
        )
        init.append(_wait_for_cache(obj, config))
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
                    **({"initContainers": init} if init else {}),
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
    if obj.spec.model.cache is not None:
        if obj.spec.model.cache.existing_claim is None:
            out.append(persistent_volume_claim(obj))
        out.append(model_cache_job(obj, config))
    out += [deployment(obj, config), service(obj)]
    if desired_replicas(obj.spec) > 1 or (
        obj.spec.autoscaling.enabled and obj.spec.autoscaling.max_replicas > 1
    ):
        out.append(pod_disruption_budget(obj))
    out.append(network_policy(obj, config.metrics_namespace))
    if service_monitor_available:
        out.append(service_monitor(obj, config))
    return out
