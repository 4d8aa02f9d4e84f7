"""Operator configuration: GPU profiles, engine images, Prometheus, evaluation interval.

Comes from a YAML file (helm renders it into a ConfigMap) whose path is given by ``--config`` or
``LLMOP_CONFIG``; built-in defaults apply to anything the file leaves out. The GPU price table
here is the one source of truth for $/GPU-hour (2024 list prices; configurable).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

CONFIG_ENV = "LLMOP_CONFIG"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


class ConfigModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Toleration(ConfigModel):
    key: str
    operator: str = "Exists"
    value: str | None = None
    effect: str | None = None


class GPUProfile(ConfigModel):
    product: str = Field(description="Value of the nvidia.com/gpu.product node label")
    memory_gib: Annotated[float, Field(gt=0)]
    price_per_gpu_hour: Annotated[float, Field(ge=0)]
    hbm_tb_per_s: Annotated[float, Field(gt=0)] = 2.0
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = [Toleration(key=GPU_RESOURCE, effect="NoSchedule")]

    def selector(self) -> dict[str, str]:
        return {GPU_PRODUCT_LABEL: self.product, **self.node_selector}


def _default_profiles() -> dict[str, GPUProfile]:
    return {
        "nvidia-h100-80gb": GPUProfile(
            product="NVIDIA-H100-80GB-HBM3",
            memory_gib=80,
            price_per_gpu_hour=4.25,
            hbm_tb_per_s=3.35,
        ),
        "nvidia-a100-80gb": GPUProfile(
            product="NVIDIA-A100-SXM4-80GB",
            memory_gib=80,
            price_per_gpu_hour=2.21,
            hbm_tb_per_s=2.04,
        ),
        "nvidia-a10g": GPUProfile(
            product="NVIDIA-A10G", memory_gib=24, price_per_gpu_hour=1.01, hbm_tb_per_s=0.6
        ),
        "nvidia-l4": GPUProfile(
            product="NVIDIA-L4", memory_gib=24, price_per_gpu_hour=0.70, hbm_tb_per_s=0.3
        ),
    }


class EngineImages(ConfigModel):
    vllm: str = "vllm/vllm-openai:v0.11.0"
    tgi: str = "ghcr.io/huggingface/text-generation-inference:3.3.5"
    gateway: str = "ghcr.io/llmops-dev/llm-gateway:0.1.0"


# Repositories whose images an LLMDeployment may run (engine.image, gateway.image): the
# upstream vLLM and TGI images and this project's gateway, whatever the tag or digest. An entry
# ending in "/*" admits every repository under that path (e.g. a mirror: "registry.corp/ml/*").
DEFAULT_ALLOWED_IMAGES = (
    "docker.io/vllm/vllm-openai",
    "ghcr.io/huggingface/text-generation-inference",
    "ghcr.io/llmops-dev/llm-gateway",
)


class PrometheusTLS(ConfigModel):
    # PEM bundle of the CAs that sign Prometheus's certificate (else the system's).
    ca_file: str | None = None
    # Turns verification off: only for a lab; the operator logs a warning at start.
    insecure_skip_verify: bool = False


class QuotaLimits(ConfigModel):
    """What an operator owner allows; unset means no limit. Deployment replicas count, Pending
    ones included (a quota is on what is asked for, like a ResourceQuota's requests)."""

    max_replicas_per_object: Annotated[int | None, Field(ge=0)] = None
    max_replicas_per_namespace: Annotated[int | None, Field(ge=0)] = None
    max_gpus_per_namespace: Annotated[int | None, Field(ge=0)] = None

    @property
    def namespaced(self) -> bool:
        per_ns = (self.max_replicas_per_namespace, self.max_gpus_per_namespace)
        return any(v is not None for v in per_ns)

    @property
    def any(self) -> bool:
        return self.namespaced or self.max_replicas_per_object is not None


class Limits(QuotaLimits):
    # Per-namespace overrides: a field set here replaces the operator-wide one in that namespace.
    namespaces: dict[str, QuotaLimits] = {}

    def for_namespace(self, namespace: str) -> QuotaLimits:
        base = QuotaLimits.model_validate(self.model_dump(exclude={"namespaces"}))
        override = self.namespaces.get(namespace)
        if override is None:
            return base
        return base.model_copy(update=override.model_dump(exclude_unset=True))


class OperatorConfig(ConfigModel):
    gpu_profiles: dict[str, GPUProfile] = Field(default_factory=_default_profiles)
    images: EngineImages = EngineImages()
    allowed_images: list[str] = list(DEFAULT_ALLOWED_IMAGES)
    # Credentials in the URL (https://user:pass@host) are sent as basic auth and never shown.
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    prometheus_tls: PrometheusTLS = PrometheusTLS()
    # Namespace of the Prometheus that scrapes the pods (allowed by their NetworkPolicy).
    metrics_namespace: str = "monitoring"
    # Labels of the Prometheus pods there (the Prometheus Operator sets this one on them).
    metrics_pod_selector: dict[str, str] = {"app.kubernetes.io/name": "prometheus"}
    # Labels on every ServiceMonitor the operator builds: a Prometheus selects ServiceMonitors by
    # label (kube-prometheus-stack by default only those with ``release: <its release name>``).
    service_monitor_labels: dict[str, str] = {}
    evaluation_interval_seconds: Annotated[float, Field(gt=0)] = 15.0
    # Fraction of each GPU the engine may use: weights, activations and KV cache together
    # (vLLM --gpu-memory-utilization, TGI --cuda-memory-fraction).
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    # What the engine keeps per GPU beyond weights and KV cache (peak activations, CUDA graphs,
    # communication buffers); the fit check subtracts it.
    engine_overhead_gib_per_gpu: Annotated[float, Field(ge=0)] = 1.5
    startup_budget_seconds: Annotated[int, Field(ge=60)] = 1800
    # Expected time for a new replica to become ready (the autoscaler plans this far ahead).
    cold_start_seconds: Annotated[float, Field(ge=0)] = 90.0
    # Window of the rate() and histogram_quantile() queries the autoscaler runs.
    metrics_window: str = Field(default="1m", pattern=r"^[0-9]+[smh]$")
    field_manager: str = "llm-operator"
    # Replicas and GPUs an LLMDeployment (or a namespace's LLMDeployments together) may hold.
    limits: Limits = Limits()

    def replica_price(self, profile: str, gpus: int) -> float | None:
        """Dollars per replica-hour: the GPU profile's price times the GPUs a replica asks for;
        None for a profile this config does not know."""
        p = self.gpu_profiles.get(profile)
        return p.price_per_gpu_hour * gpus if p else None

    @classmethod
    def load(cls, path: str | Path | None = None) -> OperatorConfig:
        """Read the file at ``path`` (or ``$LLMOP_CONFIG``); defaults when neither is set."""
        path = path or os.environ.get(CONFIG_ENV)
        if not path:
            return cls()
        data: Any = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"operator config {path} must be a YAML mapping")
        return cls.model_validate(data)
