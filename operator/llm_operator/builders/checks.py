"""Checks that need the operator config (GPU profiles), so the CRD schema cannot make them."""

from __future__ import annotations

from dataclasses import dataclass

from llm_operator.api.quantization import BYTES_PER_PARAMETER
from llm_operator.api.v1alpha1 import LLMDeploymentSpec
from llm_operator.config import OperatorConfig

GIB = 1024**3


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str
    message: str


def check(spec: LLMDeploymentSpec, config: OperatorConfig) -> CheckResult:
    gpu = spec.resources.gpu
    profile = config.gpu_profiles.get(gpu.profile)
    if profile is None:
        known = ", ".join(sorted(config.gpu_profiles))
        return CheckResult(
            False,
            "UnknownGPUProfile",
            f"GPU profile {gpu.profile!r} is not configured; known: {known}",
        )
    if spec.model.parameters_billions is None:
        return CheckResult(
            True, "Valid", f"{gpu.count} x {gpu.profile}; model size not given, fit not checked"
        )
    mode = spec.quantization.effective
    weights_gib = spec.model.parameters_billions * 1e9 * BYTES_PER_PARAMETER[mode] / GIB
    budget_gib = profile.memory_gib * gpu.count * config.weight_memory_fraction
    fit = (
        f"{spec.model.parameters_billions:g}B parameters x {BYTES_PER_PARAMETER[mode]:g} bytes "
        f"({mode.value}) = {weights_gib:.1f} GiB of weights; {gpu.count} x {gpu.profile} "
        f"({profile.memory_gib:g} GiB) allows {budget_gib:.1f} GiB at "
        f"{config.weight_memory_fraction:.0%} for weights"
    )
    if weights_gib > budget_gib:
        return CheckResult(False, "ModelTooLarge", f"model does not fit: {fit}")
    return CheckResult(True, "Valid", f"model fits: {fit}")
