"""The Deployment (pure): the engine and gateway containers, their probes and the pod around
them."""

from __future__ import annotations

import math

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.cache import _wait_for_cache
from llm_operator.builders.common import (
    ENGINE_HOME,
    ENGINE_PORT,
    ENGINE_UID,
    GATEWAY_PORT,
    GATEWAY_UID,
    METRICS_PORT,
    config_map_name,
    container_security,
    labels,
    metadata,
    pod_security,
    selector_labels,
    served_name,
)
from llm_operator.builders.kinds import (
    CACHE_MOUNT,
    DEPLOYMENT,
    ENGINES,
    MODELS_PATH,
    Manifest,
    _engine_image,
    cache_claim,
    desired_replicas,
    model_ref,
)
from llm_operator.config import GPU_RESOURCE, OperatorConfig
from llm_operator.gateway.config import (
    CONFIG_DIR,
    CONFIG_FILE,
    ENGINE_HEALTH_PATH,
    KEYS_DIR,
    RUN_DIR,
)


def _probe(path: str, port: str | int, period: int, failures: int, timeout: int = 5) -> Manifest:
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
    env += engine.tracing_env(spec)
    env.append({"name": "HF_HOME", "value": engine.CACHE_PATH})
    env.append({"name": "HOME", "value": ENGINE_HOME})  # vLLM, torch and triton write caches here
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
        {"name": "engine-home", "mountPath": ENGINE_HOME},
        {"name": "model-cache", "mountPath": engine.CACHE_PATH},
    ]
    if spec.model.scheme == "pvc":
        mounts.append({"name": "models", "mountPath": MODELS_PATH, "readOnly": True})
    if spec.model.cache is not None:
        mounts.append({"name": "model-store", "mountPath": CACHE_MOUNT, "readOnly": True})
    behind = spec.gateway.enabled
    # The kubelet resolves a named probe port among the probed container's own ports only
    # (k8s.io/kubernetes pkg/probe/util.go FindPortByName), so the gateway's is a number here.
    health, port = (ENGINE_HEALTH_PATH, METRICS_PORT) if behind else (engine.HEALTH_PATH, "engine")
    container: Manifest = {
        "name": "engine",
        "image": _engine_image(obj, config),
        "args": engine.args(spec, served_name(obj), model_ref(spec), config),
        "env": env,
        "resources": {"limits": limits, "requests": requests},
        # Model loading can take many minutes: the startup probe holds liveness off until then.
        # Behind the gateway the engine listens on the pod's loopback: the kubelet probes it
        # through the gateway's metrics port, which relays the engine's own health answer.
        "startupProbe": _probe(health, port, 10, math.ceil(config.startup_budget_seconds / 10)),
        "readinessProbe": _probe(health, port, 5, 3),
        "livenessProbe": _probe(health, port, 10, 6, timeout=10),
        "volumeMounts": mounts,
        # Upstream vLLM and TGI images run as root; here the engine has its own user and writes
        # only to its volumes (HOME, HF_HOME, /dev/shm).
        "securityContext": container_security(ENGINE_UID),
    }
    if not behind:
        container["ports"] = [{"name": "engine", "containerPort": ENGINE_PORT, "protocol": "TCP"}]
    if env_from:
        container["envFrom"] = env_from
    return container


def _cpu(millis: int) -> str:
    """A CPU quantity as the API server writes it back (``1`` for ``1000m``), so what the
    operator applies and what it reads compare equal."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _gateway_container(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    gw = obj.spec.gateway
    mounts: list[Manifest] = [{"name": "gateway-config", "mountPath": CONFIG_DIR, "readOnly": True}]
    if gw.api_key_secret_ref:
        mounts.append({"name": "api-keys", "mountPath": KEYS_DIR, "readOnly": True})
    args = ["--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--port", str(GATEWAY_PORT)]
    args += ["--metrics-port", str(METRICS_PORT)]
    if gw.workers > 1:
        args += ["--workers", str(gw.workers), "--run-dir", RUN_DIR]
        mounts.append({"name": "gateway-run", "mountPath": RUN_DIR})
    return {
        "name": "gateway",
        "image": gw.image or config.images.gateway,
        "args": args,
        "ports": [
            {"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        # each worker can use a core's half at 200 streams (docs/gateway.md, Overhead)
        "resources": {
            "requests": {"cpu": _cpu(500 * gw.workers), "memory": f"{128 * gw.workers}Mi"},
            "limits": {"memory": f"{256 + 256 * gw.workers}Mi"},
        },
        "readinessProbe": _probe("/readyz", "http", 5, 3),
        "livenessProbe": _probe("/healthz", "http", 10, 3),
        "volumeMounts": mounts,
        "securityContext": container_security(GATEWAY_UID, read_only_root=True),
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
        {"name": "engine-home", "emptyDir": {"sizeLimit": "10Gi"}},
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
        if spec.gateway.workers > 1:
            volumes.append(
                {"name": "gateway-run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
            )
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
                            METRICS_PORT if spec.gateway.enabled else ENGINE_PORT
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
                    "securityContext": pod_security(),
                },
            },
        },
    }
