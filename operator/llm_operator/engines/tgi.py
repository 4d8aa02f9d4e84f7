"""TGI, in one place: the arguments, health endpoint and cache path of
text-generation-inference's launcher, the names of the metrics it exports, the request as its
router accepts it, and what its router refuses.

Every flag here is in TGI's ``launcher/src/main.rs`` (3.x), every metric name in
``router/src/`` and ``backends/v3/src/`` (3.x); docs/engines.md lists each with its source.
"""

from __future__ import annotations

from typing import Any

from llm_operator.api.quantization import FLAGS
from llm_operator.api.v1alpha1 import LLMDeploymentSpec
from llm_operator.builders.common import ENGINE_PORT, engine_host
from llm_operator.config import OperatorConfig

HEALTH_PATH = "/health"
CACHE_PATH = "/data"
TOKEN_ENV = "HF_TOKEN"
MODEL = "tgi"  # any other ``model`` is read as a LoRA adapter id (router/src/lib.rs)

# Metrics (no model label). TGI has no TTFT histogram and no KV-use gauge: the batch's token
# budget over the KV cache's capacity stands for KV use.
REQUEST_DURATION = "tgi_request_duration"
TIME_PER_TOKEN = "tgi_request_mean_time_per_token_duration"
GENERATED_TOKENS = "tgi_request_generated_tokens"
QUEUE = "tgi_queue_size"
BATCH_SIZE = "tgi_batch_current_size"
BATCH_TOKENS = "tgi_batch_current_max_tokens"
MAX_TOTAL_TOKENS = "tgi_batch_max_total_tokens"


class Refused(ValueError):
    """A request TGI would refuse, found before it is sent."""


def args(
    spec: LLMDeploymentSpec, served_name: str, model_ref: str, config: OperatorConfig
) -> list[str]:
    del served_name  # TGI serves one model under its own name; the gateway maps the name
    out = [
        "--model-id",
        model_ref,
        "--hostname",
        engine_host(spec.gateway.enabled),
        "--port",
        str(ENGINE_PORT),
        "--num-shard",
        str(spec.resources.gpu.count),
        # Prompt + answer per request; TGI's warm-up checks that the KV cache holds it.
        "--max-total-tokens",
        str(spec.model.max_context),
        "--cuda-memory-fraction",
        f"{config.gpu_memory_utilization:g}",
    ]
    if spec.model.revision and spec.model.cache is None:  # a cached revision is a local path
        out += ["--revision", spec.model.revision]
    out += FLAGS["tgi"][spec.quantization.effective]
    tr = spec.monitoring.tracing
    if tr is not None and tr.engine and tr.grpc_endpoint:  # TGI exports over OTLP/gRPC only
        out += ["--otlp-endpoint", tr.grpc_endpoint, "--otlp-service-name", "tgi"]
    return out + list(spec.engine.extra_args)


def tracing_env(spec: LLMDeploymentSpec) -> list[dict[str, str]]:
    """TGI takes its trace settings as flags (``args``)."""
    del spec
    return []


def translate(body: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    """Rewrite an OpenAI body (already through the generation policy) for TGI, in place.

    - TGI refuses ``top_p`` outside (0, 1) (``router/src/validation.rs``,
      ``ValidationError::TopP``):
      ``top_p >= 1`` means "no nucleus filtering", which is TGI's behaviour without the field, so
      it is dropped.
    - TGI treats any ``model`` other than ``"tgi"`` as a LoRA adapter id
      (``router/src/lib.rs``, ``adapter_id: model.filter(|m| *m != "tgi")``): the gateway sends
      ``"tgi"`` (the deployment's served name is the gateway's business, not TGI's).
    - TGI's chat endpoint has no ``repetition_penalty``: it derives one as ``presence_penalty + 2``
      (``router/src/lib.rs``, ``ChatRequest::try_into_generate``). A repetition penalty ``r`` is
      therefore sent as ``presence_penalty = r - 2``, exactly what TGI turns back into ``r``; a
      ``presence_penalty`` the client set itself wins (it is what TGI would apply anyway). TGI's
      completions endpoint takes ``repetition_penalty`` as it is.
    """
    body["model"] = MODEL
    top_p = body.get("top_p")
    if top_p is not None and top_p >= 1.0:
        del body["top_p"]
    if chat and "repetition_penalty" in body:
        penalty = body.pop("repetition_penalty")
        if body.get("presence_penalty") is None and penalty is not None:
            body["presence_penalty"] = float(penalty) - 2.0
    presence = body.get("presence_penalty")
    if chat and presence is not None and presence <= -2.0:
        # TGI would apply repetition_penalty = presence_penalty + 2 <= 0, which it refuses.
        raise Refused(
            f"presence_penalty {presence:g} is not accepted by this deployment's engine (TGI "
            "applies presence_penalty + 2 as a repetition penalty, which must be > 0)"
        )
    return body


def _number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    return float(value)


def validation_error(body: dict[str, Any], prompt: str, *, chat: bool) -> str | None:
    """What TGI's router refuses, in its own words (router/src/validation.rs, TGI 3.x), and
    the ``model`` rule of router/src/lib.rs: a name other than "tgi" is a LoRA adapter id."""
    model = body.get("model")
    if model not in (None, "tgi"):
        return f"adapter {model!r} is not loaded (TGI reads `model` as a LoRA adapter id)"
    temperature = _number(body, "temperature")
    # The OpenAI routes turn temperature 0 into greedy decoding before validation.
    if temperature is not None and not (temperature >= 0):
        return "`temperature` must be strictly positive"
    penalty = _number(body, "repetition_penalty")
    if chat:  # ChatRequest has no repetition_penalty: it is presence_penalty + 2
        presence = _number(body, "presence_penalty")
        penalty = None if presence is None else presence + 2.0
    if penalty is not None and not (penalty > 0):
        return "`repetition_penalty` must be strictly positive"
    frequency = _number(body, "frequency_penalty")
    if frequency is not None and not (-2.0 <= frequency <= 2.0):
        return "`frequency_penalty` must be >= -2.0 and <= 2.0"
    top_p = _number(body, "top_p")
    if top_p is not None and not (0.0 < top_p < 1.0):
        return "`top_p` must be > 0.0 and < 1.0"
    max_tokens = body.get("max_tokens")
    if max_tokens == 0:
        return "`max_new_tokens` must be strictly positive"
    if not prompt:
        return "`inputs` cannot be empty"
    return None
