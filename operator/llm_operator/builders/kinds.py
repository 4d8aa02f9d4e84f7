"""The children's kinds and names, and the facts every builder shares (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from llm_operator.api.v1alpha1 import EngineKind, LLMDeployment, LLMDeploymentSpec
from llm_operator.builders.common import (
    config_map_name,
)
from llm_operator.config import OperatorConfig
from llm_operator.engines import tgi, vllm

Manifest = dict[str, Any]

MODELS_PATH = "/models"


CACHE_MOUNT = "/model-cache"


CACHE_MARKER = ".llmops-complete"


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


def _engine_image(obj: LLMDeployment, config: OperatorConfig) -> str:
    image: str = obj.spec.engine.image or getattr(config.images, obj.spec.engine.kind.value)
    return image
