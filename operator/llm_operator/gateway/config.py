"""The gateway's configuration file: written by the operator into a ConfigMap, read by the
sidecar (and hot-reloaded when the ConfigMap changes). One model, used on both sides."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

CONFIG_FILE = "gateway.yaml"
CONFIG_DIR = "/etc/llm-gateway"
KEYS_DIR = "/var/run/llm-gateway/keys"
RUN_DIR = "/var/run/llm-gateway/run"  # several workers: their metric files and the limiter socket
# On the metrics port: the engine's own answers, relayed (it listens on the pod's loopback).
ENGINE_METRICS_PATH = "/engine/metrics"
ENGINE_HEALTH_PATH = "/engine/health"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class GenerationPolicy(_Model):
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    max_tokens: int | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = 120.0
    max_choices: Annotated[int, Field(ge=1)] = 4
    enforce: Literal["clamp", "reject"] = "clamp"


class RateLimitPolicy(_Model):
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class TracingConfig(_Model):
    """OTLP/HTTP traces (docs/observability.md); ``resource`` names the deployment."""

    endpoint: str
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 0.1
    record_prompts: bool = False
    resource: dict[str, str] = {}


class DriftConfig(_Model):
    reference_requests: Annotated[int, Field(ge=10)] = 1000
    window_requests: Annotated[int, Field(ge=10)] = 500


class CostConfig(_Model):
    """Per-token prices, or else the replica's hourly price split over keys by tokens."""

    input_per_million: Annotated[float | None, Field(ge=0)] = None
    output_per_million: Annotated[float | None, Field(ge=0)] = None
    replica_per_hour: Annotated[float | None, Field(ge=0)] = None

    @property
    def per_token(self) -> bool:
        return self.input_per_million is not None and self.output_per_million is not None


class GatewayConfig(_Model):
    model: str = Field(description="Model name served to clients")
    engine: Literal["vllm", "tgi"] = "vllm"
    # The engine is the pod's other container: plain HTTP on localhost (engine.py speaks no TLS).
    engine_url: Annotated[str, Field(pattern=r"^http://[^/?#@\s]+$")] = "http://127.0.0.1:8000"
    generation: GenerationPolicy = GenerationPolicy()
    pii: Literal["off", "flag", "redact", "block"] = "off"
    expected_language: str | None = None
    rate_limit: RateLimitPolicy | None = None
    # The replicas the per-key limits are split over (the operator writes the replica count):
    # N gateways that each admit 1/N never admit more than the limit together.
    rate_limit_share: Annotated[int, Field(ge=1)] = 1
    max_body_bytes: int = 1024 * 1024
    read_timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    api_keys_dir: str | None = None
    tracing: TracingConfig | None = None
    drift: DriftConfig | None = DriftConfig()
    cost: CostConfig | None = None

    @cached_property  # once per loaded config, not per request
    def replica_rate_limit(self) -> RateLimitPolicy | None:
        """This gateway's part of the per-key limits: each limit over ``rate_limit_share``,
        rounded down (so the parts never add up to more), but at least 1."""
        rl = self.rate_limit
        if rl is None or self.rate_limit_share == 1:
            return rl
        n = self.rate_limit_share
        return RateLimitPolicy(
            requests_per_minute=max(1, rl.requests_per_minute // n)
            if rl.requests_per_minute
            else None,
            tokens_per_minute=max(1, rl.tokens_per_minute // n) if rl.tokens_per_minute else None,
        )
