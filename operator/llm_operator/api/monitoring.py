"""LLMDeployment v1alpha1 spec.monitoring: traces, prompt drift and the price of a token
(docs/observability.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from llm_operator.api.base import ApiModel

OTLP_URL_PATTERN = r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/\-]*)?$"


class Tracing(ApiModel):
    """OpenTelemetry traces of every request: the gateway's span, and the engine's own."""

    endpoint: Annotated[
        str,
        Field(
            pattern=OTLP_URL_PATTERN,
            max_length=256,
            description="OTLP/HTTP base URL of a collector (e.g. http://otel-collector."
            "observability:4318); spans go to <endpoint>/v1/traces",
        ),
    ]
    sample_ratio: Annotated[
        float,
        Field(
            ge=0,
            le=1,
            description="Share of traces kept when the caller sent no sampled traceparent "
            "(parent-based: a caller's decision is followed)",
        ),
    ] = 0.1
    record_prompts: bool = Field(
        default=False,
        description="Put prompt text and feedback comments into spans (off: lengths only)",
    )
    engine: bool = Field(
        default=True,
        description="The engine exports its own spans too (vLLM --otlp-traces-endpoint over "
        "OTLP/HTTP; TGI --otlp-endpoint needs grpcEndpoint); the image must ship "
        "OpenTelemetry's packages. Changing it, or the endpoint with it on, changes the engine's "
        "arguments: the replicas roll",
    )
    grpc_endpoint: Annotated[
        str | None,
        Field(
            pattern=r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$",
            max_length=256,
            description="OTLP/gRPC URL of the same collector, for TGI (which speaks gRPC only)",
        ),
    ] = None


class Drift(ApiModel):
    """How far today's prompts are from the first ones: lengths, languages and words."""

    enabled: bool = True
    reference_requests: Annotated[
        int,
        Field(
            ge=50,
            le=100_000,
            description="Prompts in the reference window (the first after a gateway starts)",
        ),
    ] = 1000
    window_requests: Annotated[
        int, Field(ge=50, le=100_000, description="Prompts in the current, sliding window")
    ] = 500


class TokenPrice(ApiModel):
    """Dollars per million tokens; without it, cost per key splits the replica's hourly price
    over the keys by the tokens each used (docs/observability.md)."""

    input_per_million: Annotated[float, Field(ge=0, le=10_000)]
    output_per_million: Annotated[float, Field(ge=0, le=10_000)]


class Monitoring(ApiModel):
    tracing: Tracing | None = None
    drift: Drift = Drift()
    token_price: TokenPrice | None = None
