"""The scaling policy: pure, typed, explainable. The operator, the benchmark and the demo run it.

decide(signals, replicas, spec, price, now, history) -> Decision

1. No decision on missing or stale data: the replicas are held.
2. Pressure: each signal over its target gives a ratio (TTFT, ITL and end-to-end p95 against
   their SLOs, queue per ready replica against ``queuePerReplica``, KV-cache use against 0.8,
   tokens/s per replica against ``tokensPerSecondPerReplica``). Above 1 + tolerance the policy
   asks for ready x ratio replicas (at most x2 per decision), fast.
3. Trend: when demand (tokens/s) rises, the load expected one cold start from now is used, so
   replicas start loading before the SLO breaks.
4. Down only with headroom: every latency ratio under 0.8, load that the smaller set carries
   at 90% utilization, latency that stays under 80% of target if it grows with the load per
   replica, and tokens/s per replica at most 10% above the highest rate seen within the SLOs in
   the last hour (a proven capacity: the policy never jumps past what replicas were seen to
   carry); then slowly (stabilization window, step).
5. Replicas still loading count as capacity already bought (no stacked scale-ups); pods that
   cannot be scheduled for lack of GPUs stop further requests (limit ``capacity``).
6. Limits, each named in the decision: min/max, the $/hour budget, the cost-per-million-tokens
   target (only while the SLOs hold), step sizes, stabilization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llm_operator.api.v1alpha1 import Autoscaling

TOLERANCE = 0.1  # like the HPA: no change within 10% of target
KV_SATURATION = 0.8  # llm-d's saturation threshold for KV-cache usage
DOWN_HEADROOM = 0.8  # latency must be under 80% of its target to consider scaling down
DOWN_UTILIZATION = 0.9  # the smaller set may run at 90% of what the targets allow
MAX_UP_FACTOR = 2.0
TREND_WINDOW = 180.0  # seconds of demand history used for the slope
MAX_SIGNAL_AGE = 60.0
PROVEN_MEMORY = 3600.0  # seconds a per-replica rate seen within the SLOs stays proven
PROBE = 1.1  # a scale-down may load replicas 10% past the proven rate, no further


@dataclass(frozen=True)
class Signals:
    """What Prometheus said, for one LLMDeployment. None means no data, never zero."""

    at: float
    ttft_p95: float | None = None
    itl_p95: float | None = None
    e2e_p95: float | None = None
    queue: float | None = None  # waiting requests, all replicas
    running: float | None = None  # running requests, all replicas
    kv_usage: float | None = None  # mean over replicas, 0..1
    tokens_per_second: float | None = None  # generated tokens/s, all replicas

    def empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.ttft_p95,
                self.itl_p95,
                self.e2e_p95,
                self.queue,
                self.running,
                self.kv_usage,
                self.tokens_per_second,
            )
        )


@dataclass(frozen=True)
class Replicas:
    current: int  # what the Deployment asks for now
    ready: int
    unschedulable: int = 0  # pending for lack of GPUs

    @property
    def loading(self) -> int:
        return max(0, self.current - self.ready - self.unschedulable)


@dataclass(frozen=True)
class History:
    """The short memory the policy needs; the caller keeps it (see ``remember``)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    demand: tuple[tuple[float, float], ...] = ()  # (time, tokens/s)
    limit: str | None = None  # the limit that bound at the last decision
    # (time, tokens/s per ready replica) observed while every latency was within its target
    proven: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Decision:
    current: int
    desired: int
    recommendation: int
    reason: str
    limit: str | None = None
    hold: bool = False
    proven_rate: float | None = None  # tokens/s per ready replica, when within the SLOs now

    @property
    def changed(self) -> bool:
        return self.desired != self.current

    @property
    def direction(self) -> str:
        return (
            "up" if self.desired > self.current else "down" if self.desired < self.current else ""
        )


def _fmt(v: float, unit: str) -> str:
    if unit == "s":
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.1f} s"
    return f"{v:.3g}{unit}"


def _trend_factor(history: History, now: float, cold_start: float) -> float:
    pts = [(t, d) for t, d in history.demand if now - t <= TREND_WINDOW]
    if len(pts) < 3:
        return 1.0
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    md = sum(d for _, d in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var <= 0 or md <= 0:
        return 1.0
    slope = sum((t - mt) * (d - md) for t, d in pts) / var
    latest = pts[-1][1]
    if slope <= 0 or latest <= 0:
        return 1.0
    return min(MAX_UP_FACTOR, (latest + slope * cold_start) / latest)


def decide(
    signals: Signals | None,
    replicas: Replicas,
    spec: Autoscaling,
    *,
    price_per_replica_hour: float,
    now: float,
    history: History = History(),
    cold_start_seconds: float = 90.0,
    max_signal_age: float = MAX_SIGNAL_AGE,
) -> Decision:
    cur = replicas.current
    if signals is None or signals.empty():
        return Decision(cur, cur, cur, f"holding {cur}: no metrics for this deployment", hold=True)
    age = now - signals.at
    if age > max_signal_age:
        return Decision(cur, cur, cur, f"holding {cur}: metrics are {age:.0f} s old", hold=True)

    t = spec.targets
    basis = max(1, replicas.ready)
    ratios: dict[str, tuple[float, str]] = {}  # name -> (ratio, text)
    for name, value, target, unit in (
        ("TTFT p95", signals.ttft_p95, t.ttft_p95_seconds, "s"),
        ("ITL p95", signals.itl_p95, t.itl_p95_seconds, "s"),
        ("E2E p95", signals.e2e_p95, t.e2e_p95_seconds, "s"),
    ):
        if value is not None and target:
            ratios[name] = (
                value / target,
                f"{name} {_fmt(value, unit)} vs target {_fmt(target, unit)}",
            )
    if signals.queue is not None and t.queue_per_replica:
        per = signals.queue / basis
        ratios["queue"] = (
            per / t.queue_per_replica,
            f"queue {per:.1f}/replica vs target {t.queue_per_replica:g}",
        )
    if signals.kv_usage is not None:
        ratios["KV cache"] = (signals.kv_usage / KV_SATURATION, f"KV cache {signals.kv_usage:.0%}")
    if signals.tokens_per_second is not None and t.tokens_per_second_per_replica:
        per = signals.tokens_per_second / basis
        ratios["tokens/s"] = (
            per / t.tokens_per_second_per_replica,
            f"{per:.0f} tokens/s per replica vs target {t.tokens_per_second_per_replica:g}",
        )

    trend = 1.0
    if signals.tokens_per_second is not None:
        trend = _trend_factor(history, now, cold_start_seconds)
    load_names = ("queue", "KV cache", "tokens/s")
    pressure_name, (pressure, pressure_text) = max(
        ratios.items(), key=lambda kv: kv[1][0], default=("", (0.0, ""))
    )
    load = max((ratios[n][0] for n in load_names if n in ratios), default=0.0)
    latency_ok = all(ratios[n][0] < DOWN_HEADROOM for n in ratios if n not in load_names)
    breaches = [ratios[n][1] for n in ratios if ratios[n][0] > 1 + TOLERANCE]

    why: list[str]
    if pressure > 1 + TOLERANCE:
        rec = math.ceil(basis * min(pressure * trend, MAX_UP_FACTOR))
        why = [
            pressure_text + (" (over)" if pressure_name else ""),
            *[b for b in breaches if not b.startswith(pressure_name)],
        ]
    elif load * trend > 1 + TOLERANCE:
        rec = math.ceil(basis * min(load * trend, MAX_UP_FACTOR))
        why = [
            f"demand rising {trend - 1:.0%} over the next {cold_start_seconds:.0f} s cold start",
            *[ratios[n][1] for n in load_names if n in ratios],
        ]
    elif latency_ok and ratios:
        # The smaller set must carry the load at DOWN_UTILIZATION and keep every latency under
        # DOWN_HEADROOM of its target, taking latency to grow in proportion to the load per
        # replica (conservative while a fixed part dominates; prefill-bound replicas show it).
        latency = max((ratios[n][0] for n in ratios if n not in load_names), default=0.0)
        need = max(load / DOWN_UTILIZATION, latency / DOWN_HEADROOM) * trend
        rec = max(1, math.ceil(basis * need - 1e-9))
        why = [ratios[n][1] for n in ratios] or ["idle"]
        proven = max((v for ts, v in history.proven if now - ts <= PROVEN_MEMORY), default=0.0)
        if proven > 0 and signals.tokens_per_second:
            carried = math.ceil(signals.tokens_per_second * trend / (proven * PROBE) - 1e-9)
            if carried > rec:
                rec = carried
                why.append(f"{proven:.0f} tokens/s per replica proven within the SLOs")
        rec = min(rec, cur)
    else:
        rec = cur
        why = [ratios[n][1] for n in ratios]

    # Replicas still loading are capacity already bought: never stack scale-ups on them.
    limit: str | None = None
    desired = rec
    if rec > cur and replicas.unschedulable:
        desired, limit = cur, "capacity"
    c = spec.cost
    affordable = (
        math.floor(c.max_hourly_cost / price_per_replica_hour + 1e-9) if c.max_hourly_cost else None
    )
    ceiling = spec.max_replicas if affordable is None else min(spec.max_replicas, affordable)
    if rec > replicas.ready and replicas.loading and rec >= cur and cur < ceiling:
        # The signals still describe the load on the ready replicas alone; asking again before
        # the loading ones arrive would count the same shortfall twice. (At the ceiling the
        # limit below answers, so the binding limit stays reported while replicas load.)
        desired = cur
        why.append(f"{replicas.loading} replica(s) still loading")

    # Cost per million tokens: a soft cap that only applies while the SLOs hold.
    if c.target_cost_per_million_tokens and signals.tokens_per_second and not breaches:
        mtok_per_hour = signals.tokens_per_second * 3600 / 1e6
        cap = max(
            1, math.floor(c.target_cost_per_million_tokens * mtok_per_hour / price_per_replica_hour)
        )
        if desired > cap:
            desired, limit = cap, "cost"
    # Stabilization: scale down to the highest recommendation of the window, up to the lowest.
    b = spec.behavior
    window = [
        (ts, r)
        for ts, r in history.recommendations
        if now - ts <= max(b.scale_down_stabilization_seconds, b.scale_up_stabilization_seconds)
    ]
    if desired < cur:
        recent = [r for ts, r in window if now - ts <= b.scale_down_stabilization_seconds]
        highest = max([*recent, desired])
        if highest > desired:
            desired, limit = min(highest, cur), "stabilization"
    elif desired > cur and b.scale_up_stabilization_seconds:
        recent = [r for ts, r in window if now - ts <= b.scale_up_stabilization_seconds]
        lowest = min([*recent, desired])
        if lowest < desired:
            desired, limit = max(lowest, cur), "stabilization"
    # Steps.
    if desired > cur + b.max_scale_up_step:
        desired, limit = cur + b.max_scale_up_step, "step"
    if desired < cur - b.max_scale_down_step:
        desired, limit = cur - b.max_scale_down_step, "step"
    # Budget and bounds last: they always win.
    if affordable is not None and desired > affordable:
        desired, limit = max(affordable, spec.min_replicas), "budget"
    if desired > spec.max_replicas:
        desired, limit = spec.max_replicas, "maxReplicas"
    if desired < spec.min_replicas:
        desired, limit = spec.min_replicas, "minReplicas"

    reason = f"{cur} -> {desired}: " + ", ".join(dict.fromkeys(w for w in why if w))
    if limit:
        reason += f"; limited by {limit}"
    within = all(ratios[n][0] <= 1 for n in ratios if n not in load_names)
    proven_rate = (
        signals.tokens_per_second / replicas.ready
        if within and signals.tokens_per_second and replicas.ready
        else None
    )
    return Decision(cur, desired, rec, reason, limit, proven_rate=proven_rate)


def remember(
    history: History,
    decision: Decision,
    now: float,
    demand: float | None,
    keep_seconds: float = 3600.0,
) -> History:
    """The history after a decision (pure)."""
    recs = tuple((t, r) for t, r in history.recommendations if now - t <= keep_seconds)
    dem = tuple((t, d) for t, d in history.demand if now - t <= TREND_WINDOW)
    if not decision.hold:
        recs += ((now, decision.recommendation),)
    if demand is not None:
        dem += ((now, demand),)
    proven = tuple((t, v) for t, v in history.proven if now - t <= PROVEN_MEMORY)
    if decision.proven_rate is not None:
        proven += ((now, decision.proven_rate),)
    return History(recommendations=recs, demand=dem, limit=decision.limit, proven=proven)
