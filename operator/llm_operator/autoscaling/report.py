"""What one evaluation reports (pure): the status the autoscaler owns, its Events, and whether
to scale. The actuator applies it; nothing here does I/O.

The status is built through the API's status models (``api/v1alpha1.py``), so what is written
is what the CRD declares: ``status.metrics``, ``status.autoscaling`` and the
``MetricsAvailable`` and ``ScalingLimited`` conditions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_operator.api.status import KeySpend
from llm_operator.api.v1alpha1 import (
    AutoscalingStatus,
    LLMDeploymentStatus,
    Metrics,
    ScalingDecision,
)
from llm_operator.autoscaling.policy import Decision
from llm_operator.autoscaling.signals import SignalsResult
from llm_operator.status.conditions import set_condition
from llm_operator.status.follow import EventSpec

# The condition types this writer owns (server-side apply field ownership on the status).
OWNED_CONDITIONS = ("MetricsAvailable", "ScalingLimited")
LIMIT_REASONS = {
    "maxReplicas": "MaxReplicas",
    "budget": "Budget",
    "capacity": "InsufficientGPU",
    "cost": "CostTarget",
    "quota": "Quota",
}


@dataclass(frozen=True)
class Report:
    status: dict[str, Any]  # the autoscaler's part of the status, camelCase
    events: list[EventSpec] = field(default_factory=list)
    scale_to: int | None = None  # patch /scale to this count, or leave it
    binding: str | None = None  # the limit that binds now (a key of LIMIT_REASONS)
    hourly_cost: float = 0.0


def report(
    status: dict[str, Any],
    result: SignalsResult,
    decision: Decision,
    *,
    dry_run: bool,
    price: float,
    previous_limit: str | None,
    previous_reason: str | None,
    stamp: str,
) -> Report:
    """The status, Events and scale for one decision, given the object's current status."""
    conds = list(status.get("conditions") or [])
    events: list[EventSpec] = []
    if result.available:
        conds = set_condition(conds, "MetricsAvailable", "True", "Ok", result.message, now=stamp)
    elif decision.current == 0:  # scaled to zero: no replica, nothing to measure, no alarm
        conds = set_condition(
            conds,
            "MetricsAvailable",
            "False",
            "ScaledToZero",
            "no replica runs, so no replica reports metrics; the activator wakes one",
            now=stamp,
        )
    else:
        holding = result.message + f"; holding {decision.current} replicas"
        conds = set_condition(conds, "MetricsAvailable", "False", result.reason, holding, now=stamp)
        if previous_reason != result.reason:
            events.append(EventSpec("Warning", result.reason, holding))
    binding = decision.limit if decision.limit in LIMIT_REASONS else None
    if binding:
        conds = set_condition(
            conds, "ScalingLimited", "True", LIMIT_REASONS[binding], decision.reason, now=stamp
        )
        if previous_limit != binding:
            events.append(EventSpec("Warning", "ScalingLimited", decision.reason))
    else:
        conds = set_condition(
            conds, "ScalingLimited", "False", "WithinLimits", "no limit binds", now=stamp
        )

    scaled = decision.changed and not dry_run and not decision.hold
    previous = AutoscalingStatus.model_validate(status.get("autoscaling") or {})
    last_decision, last_scale_time = previous.last_decision, previous.last_scale_time
    if scaled:
        last_scale_time = stamp
        last_decision = ScalingDecision(
            from_=decision.current,
            to=decision.desired,
            reason=decision.reason,
            limit=decision.limit,
        )
        reason = "ScaledUp" if decision.direction == "up" else "ScaledDown"
        if decision.desired == 0:  # the activator takes the traffic (ScaledFromZero: wake.py)
            reason = "ScaledToZero"
        events.append(EventSpec("Normal", reason, decision.reason))
    elif decision.changed and dry_run:
        last_decision = ScalingDecision(
            from_=decision.current, to=decision.desired, reason="dry run: " + decision.reason
        )
    auto = AutoscalingStatus(
        recommendation=decision.recommendation,
        last_decision=last_decision,
        last_scale_time=last_scale_time,
    )

    sig = result.signals
    hourly = (decision.desired if scaled else decision.current) * price

    def r4(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    metrics = Metrics(hourly_cost=round(hourly, 4), observed_at=stamp)
    if sig is not None:
        metrics = metrics.model_copy(
            update={
                "ttft_p95_seconds": r4(sig.ttft_p95),
                "itl_p95_seconds": r4(sig.itl_p95),
                "e2e_p95_seconds": r4(sig.e2e_p95),
                "tokens_per_second": r4(sig.tokens_per_second),
                "queue_depth": r4(sig.queue),
                "cost_per_million_tokens": round(hourly / (sig.tokens_per_second * 3600 / 1e6), 4)
                if sig.tokens_per_second
                else None,
                "spend_by_key": [
                    KeySpend(key_id=k, dollars_per_hour=round(v, 4)) for k, v in result.spend_by_key
                ]
                or None,
            }
        )
    mine = [c for c in conds if c["type"] in OWNED_CONDITIONS]
    written = LLMDeploymentStatus(conditions=mine, metrics=metrics, autoscaling=auto)
    return Report(
        status=written.dump_set(),
        events=events,
        scale_to=decision.desired if scaled else None,
        binding=binding,
        hourly_cost=hourly,
    )
