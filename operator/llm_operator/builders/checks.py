"""Checks that need the operator config (GPU profiles), so the CRD schema cannot make them."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llm_operator.api.quantization import BYTES_PER_PARAMETER
from llm_operator.api.v1alpha1 import LLMDeploymentSpec
from llm_operator.builders import images
from llm_operator.config import OperatorConfig

GIB = 1024**3
# KV-cache bytes per token at 16 bits of Llama-class models with grouped-query attention, from
# their config.json (2 x num_hidden_layers x num_key_value_heads x head_dim x 2 bytes):
# Llama-3.2-1B, Llama-3.2-3B, Llama-3.1-8B, Llama-3.1-70B, Llama-3.1-405B.
KV_REFERENCE = ((1.24, 32_768), (3.21, 114_688), (8.03, 131_072), (70.6, 327_680), (405.9, 516_096))


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str
    message: str


def estimated_kv_bytes_per_token(parameters_billions: float) -> int:
    """Log-log interpolation over KV_REFERENCE (extrapolated along its end segments).

    An estimate for GQA models; a model with full multi-head attention (Llama-2-7B: 512 KiB a
    token) needs ``model.kvCacheBytesPerToken``.
    """
    pts = [(math.log(p), math.log(b)) for p, b in KV_REFERENCE]
    x = math.log(parameters_billions)
    i = 0 if x <= pts[1][0] else len(pts) - 2
    for j in range(len(pts) - 1):
        if pts[j][0] <= x <= pts[j + 1][0]:
            i = j
            break
    (x0, y0), (x1, y1) = pts[i], pts[i + 1]
    return round(math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0)))


def check(spec: LLMDeploymentSpec, config: OperatorConfig) -> CheckResult:
    """May this spec run here (its images), and does the model fit?"""
    return check_images(spec, config) or check_fit(spec, config)


def check_images(spec: LLMDeploymentSpec, config: OperatorConfig) -> CheckResult | None:
    """An image the spec names must be in ``allowedImages`` or be one the config names."""
    patterns = [*config.allowed_images, *config.images.model_dump().values()]
    for field, ref in (("engine.image", spec.engine.image), ("gateway.image", spec.gateway.image)):
        if ref is not None and not images.allowed(ref, patterns):
            known = ", ".join(config.allowed_images)
            return CheckResult(
                False,
                "ImageNotAllowed",
                f"spec.{field} {ref!r} is not an allowed image; the operator's allowedImages "
                f"are: {known}",
            )
    return None


def check_fit(spec: LLMDeploymentSpec, config: OperatorConfig) -> CheckResult:
    """Does the model fit the way the engine will check it at start?

    vLLM takes ``--gpu-memory-utilization`` of every GPU; from that it subtracts the weights and
    its peak activation and runtime memory, and what is left is the KV cache, which must hold
    at least one sequence of ``--max-model-len`` tokens or vLLM refuses to start
    (``vllm/v1/core/kv_cache_utils.py``, check_enough_kv_cache_memory). TGI's warm-up makes the
    same test against ``--max-total-tokens``. The operator always passes both values, so the
    check here is the engine's own arithmetic with ``engineOverheadGibPerGpu`` for activations.
    """
    gpu = spec.resources.gpu
    profile = config.gpu_profiles.get(gpu.profile)
    if profile is None:
        known = ", ".join(sorted(config.gpu_profiles))
        return CheckResult(
            False,
            "UnknownGPUProfile",
            f"GPU profile {gpu.profile!r} is not configured; known: {known}",
        )
    context = spec.model.max_context
    if spec.model.parameters_billions is None:
        return CheckResult(
            True,
            "Valid",
            f"{gpu.count} x {gpu.profile}, context {context:,} tokens; model size not given, "
            "fit not checked",
        )
    mode = spec.quantization.effective
    params = spec.model.parameters_billions
    weights = params * 1e9 * BYTES_PER_PARAMETER[mode] / GIB
    kv_token = spec.model.kv_cache_bytes_per_token or estimated_kv_bytes_per_token(params)
    kv_source = "given" if spec.model.kv_cache_bytes_per_token else "estimated"
    usable = profile.memory_gib * gpu.count * config.gpu_memory_utilization
    overhead = config.engine_overhead_gib_per_gpu * gpu.count
    kv_room = usable - weights - overhead
    kv_tokens = max(0, int(kv_room * GIB / kv_token))
    head = (
        f"{params:g}B parameters x {BYTES_PER_PARAMETER[mode]:g} bytes ({mode.value}) = "
        f"{weights:.1f} GiB of weights + {overhead:.1f} GiB engine overhead; "
        f"{gpu.count} x {gpu.profile} ({profile.memory_gib:g} GiB) at "
        f"{config.gpu_memory_utilization:.0%} gives {usable:.1f} GiB"
    )
    if kv_room <= 0:
        return CheckResult(
            False, "ModelTooLarge", f"model does not fit: {head}, nothing left for the KV cache"
        )
    kv = (
        f"the KV cache gets {kv_room:.1f} GiB = {kv_tokens:,} tokens at "
        f"{kv_token / 1024:.0f} KiB a token ({kv_source})"
    )
    if kv_tokens < context:
        return CheckResult(
            False,
            "ContextTooLong",
            f"the engine would refuse to start: {head}; {kv}, fewer than one sequence of "
            f"the context length {context:,}; lower model.contextLength, quantize, or add GPUs",
        )
    return CheckResult(
        True,
        "Valid",
        f"model fits: {head}; {kv}: {kv_tokens // context} sequences of {context:,} tokens",
    )
