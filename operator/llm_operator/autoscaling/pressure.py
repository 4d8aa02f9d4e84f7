"""The pressure of each signal on its target (pure): the ratios the policy decides on."""

from __future__ import annotations

from llm_operator.api.autoscaling import Targets
from llm_operator.autoscaling.decision import Signals, _fmt
from llm_operator.autoscaling.tuning import KV_SATURATION

LOAD_NAMES = ("queue", "KV cache", "tokens/s")  # the rest are latencies


def ratios(signals: Signals, t: Targets, basis: int) -> dict[str, tuple[float, str]]:
    """name -> (value over its target, the two in words), for every signal that has data and a
    target: TTFT, ITL and end-to-end p95 against their SLOs, queue per ready replica against
    ``queuePerReplica``, KV-cache use against KV_SATURATION, tokens/s per replica against
    ``tokensPerSecondPerReplica``; ``basis`` is the ready replicas (at least 1)."""
    out: dict[str, tuple[float, str]] = {}
    for name, value, target, unit in (
        ("TTFT p95", signals.ttft_p95, t.ttft_p95_seconds, "s"),
        ("ITL p95", signals.itl_p95, t.itl_p95_seconds, "s"),
        ("E2E p95", signals.e2e_p95, t.e2e_p95_seconds, "s"),
    ):
        if value is not None and target:
            out[name] = (
                value / target,
                f"{name} {_fmt(value, unit)} vs target {_fmt(target, unit)}",
            )
    if signals.queue is not None and t.queue_per_replica:
        per = signals.queue / basis
        out["queue"] = (
            per / t.queue_per_replica,
            f"queue {per:.1f}/replica vs target {t.queue_per_replica:g}",
        )
    if signals.kv_usage is not None:
        out["KV cache"] = (signals.kv_usage / KV_SATURATION, f"KV cache {signals.kv_usage:.0%}")
    if signals.tokens_per_second is not None and t.tokens_per_second_per_replica:
        per = signals.tokens_per_second / basis
        out["tokens/s"] = (
            per / t.tokens_per_second_per_replica,
            f"{per:.0f} tokens/s per replica vs target {t.tokens_per_second_per_replica:g}",
        )
    return out
