"""vLLM, in one place: the arguments, health endpoint and cache path of the vllm/vllm-openai
image, the names of the metrics it exports, and the request as it accepts it.

Every flag here is in vLLM's ``vllm/engine/arg_utils.py`` (v0.11), every metric name in
``vllm/v1/metrics/loggers.py`` (v0.11; the legacy names are v0.6-0.10's); docs/engines.md lists
each with its source. Builders, signals, the gateway and the lab's simulator all read them here.
"""

from __future__ import annotations

from typing import Any

from llm_operator.api.quantization import FLAGS
from llm_operator.api.v1alpha1 import LLMDeploymentSpec
from llm_operator.builders.common import ENGINE_HOME, ENGINE_PORT, engine_host
from llm_operator.config import OperatorConfig

HEALTH_PATH = "/health"
# The image's default HF_HOME is under /root, which the engine's non-root user cannot reach.
CACHE_PATH = f"{ENGINE_HOME}/.cache/huggingface"
TOKEN_ENV = "HF_TOKEN"

# Metrics (Prometheus names; counters without their _total suffix). Every series carries
# model_name and engine (the engine core's index) labels.
TTFT = "vllm:time_to_first_token_seconds"
ITL = "vllm:inter_token_latency_seconds"
ITL_LEGACY = "vllm:time_per_output_token_seconds"
E2E = "vllm:e2e_request_latency_seconds"
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_USAGE = "vllm:kv_cache_usage_perc"
KV_USAGE_LEGACY = "vllm:gpu_cache_usage_perc"
GENERATION_TOKENS = "vllm:generation_tokens"
PROMPT_TOKENS = "vllm:prompt_tokens"


def args(
    spec: LLMDeploymentSpec, served_name: str, model_ref: str, config: OperatorConfig
) -> list[str]:
    out = [
        "--model",
        model_ref,
        "--served-model-name",
        served_name,
        "--host",
        engine_host(spec.gateway.enabled),
        "--port",
        str(ENGINE_PORT),
        "--tensor-parallel-size",
        str(spec.resources.gpu.count),
        # Always explicit: vLLM's default is the model's own context (131,072 for Llama-3.1),
        # and it refuses to start when the KV cache cannot hold one sequence of it.
        "--max-model-len",
        str(spec.model.max_context),
        # The same fraction the operator's fit check used.
        "--gpu-memory-utilization",
        f"{config.gpu_memory_utilization:g}",
    ]
    if spec.model.revision and spec.model.cache is None:  # a cached revision is a local path
        out += ["--revision", spec.model.revision]
    if spec.model.scheme == "s3":
        out += ["--load-format", "runai_streamer"]
    out += FLAGS["vllm"][spec.quantization.effective]
    tr = spec.monitoring.tracing
    if tr is not None and tr.engine:  # vllm/tracing.py: the OTLP exporter of its own spans
        out += ["--otlp-traces-endpoint", f"{tr.endpoint.rstrip('/')}/v1/traces"]
    return out + list(spec.engine.extra_args)


def tracing_env(spec: LLMDeploymentSpec) -> list[dict[str, str]]:
    """vLLM's exporter speaks gRPC unless ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` says
    http/protobuf (vllm/tracing.py, get_span_exporter); the rest are the OpenTelemetry SDK's own
    variables: the service's name, and the share of traces kept when no traceparent came."""
    tr = spec.monitoring.tracing
    if tr is None or not tr.engine:
        return []
    return [
        {"name": "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "value": "http/protobuf"},
        {"name": "OTEL_SERVICE_NAME", "value": "vllm"},
        {"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"},
        {"name": "OTEL_TRACES_SAMPLER_ARG", "value": f"{tr.sample_ratio:g}"},
    ]


def translate(body: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    """vLLM takes the OpenAI body as the gateway's policy left it."""
    return body
