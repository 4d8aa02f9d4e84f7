"""The scaling policy: pure, typed, explainable. The operator, the benchmark and the demo run it.

decide(signals, replicas, spec, price, now, history) -> Decision

1. No decision on missing or stale data: the replicas are held.
2. Pressure: each signal over its target gives a ratio (TTFT, ITL and end-to-end p95 against
   their SLOs, queue per ready replica against ``queuePerReplica``, KV-cache use against 0.8,
   tokens/s per replica against ``tokensPerSecondPerReplica``). Above 1 + tolerance the policy
   asks for ready x ratio replicas (at most x2 per decision), fast.
3. Trend: when demand (tokens/s) rises, the load and the latency expected one cold start from
   now are used, so replicas start loading before the SLO breaks.
4. Down only with headroom: every latency ratio under 0.8, load that the smaller set carries
   at 90% utilization, latency that stays under 80% of target if it grows with the load per
   replica, and tokens/s per replica at most 10% above the highest rate seen within the SLOs in
   the last hour, or one replica fewer (a proven capacity: the policy never jumps past what
   replicas were seen to carry, but may always probe one step); then slowly (stabilization
   window, step).
5. Replicas still loading count as capacity already bought (no stacked scale-ups), except
   when the backlog says more: while requests wait, each replica runs what it can hold, so
   (running + waiting) / (running per ready replica) is the count the load needs, past x2 if
   need be (a flash crowd), and it already counts what the loading replicas will take. Pods
   that cannot be scheduled for lack of GPUs stop further requests (limit ``capacity``).
6. Limits, each named in the decision: min/max, the $/hour budget, the cost-per-million-tokens
   target (only while the SLOs hold), step sizes, stabilization.
7. Burst reserve: when the demand of the last ``burstMemorySeconds`` is bursty (its peak at least
   BURSTY times its median: ON/OFF traffic, idle minutes between bursts), a scale-down stops at
   the highest recommendation of that memory, the count the recent bursts needed. A burst is
   over before a replica started for it could load (a cold start is 1.5 minutes), so the fleet
   has to be there when it comes; once no burst has come for that memory, the reserve goes.
8. Latency that does not respond to replicas is not load: a latency over its target that stayed
   as high while the ready replicas grew by half and the load per replica fell by 30% (long
   prompts' chunked prefill, a slow tokenizer, a client-side stall) is named in the reason and
   ignored, both as a reason to scale up and as a bar to scaling down, until it grows well past
   the level where it was found unresponsive or RESPONSE_MEMORY passes. So such latency can
   neither pin the fleet at maxReplicas under low load nor hold it there.
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
PROBE_HEADROOM = 0.4  # ... or one replica further, when every signal is under 40% of target
RESPONSE_MEMORY = 1800.0  # seconds of latency samples kept to judge whether latency responds
RESPONSE_GROWTH = 1.5  # replicas must have grown this much ...
RESPONSE_UNLOAD = 0.7  # ... and the load per replica fallen to this fraction ...
RESPONSE_GAIN = 0.9  # ... for a latency still at this fraction of its level to be unresponsive
RESPONSE_RETEST = 1.5  # an ignored latency counts again once it grows this much past its level
LATENCY_NAMES = ("TTFT p95", "ITL p95", "E2E p95")
HISTORY_KEEP = 3600.0  # seconds of demand and recommendations the history keeps
SEEN_MEMORY = 1200.0  # seconds over which "what a full replica runs" is remembered
BURSTY = 3.0  # peak demand over the median of that memory that makes traffic bursty
BURST_SAMPLES = 8  # demand samples needed before judging
SETTLE = 60.0  # seconds the latency window needs to cover newly ready replicas (metricsWindow)


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
    # (time, ready replicas, tokens/s per ready replica, ((latency name, ratio to target), ...))
    latency: tuple[tuple[float, int, float | None, tuple[tuple[str, float], ...]], ...] = ()
    # (time, latency name, ratio when found unresponsive)
    unresponsive: tuple[tuple[float, str, float], ...] = ()
    # (time, running requests per ready replica)
    concurrency: tuple[tuple[float, float], ...] = ()
    scaled_up_from: tuple[tuple[float, int], ...] = ()  # (time, count a scale-up left)
    ready: int = 0  # ready replicas at the last decision
    grew_at: float | None = None  # when the ready count last grew


@dataclass(frozen=True)
class Decision:
    current: int
    desired: int
    recommendation: int
    reason: str
    limit: str | None = None
    hold: bool = False
    proven_rate: float | None = None  # tokens/s per ready replica, when within the SLOs now
    # The recommendation before the burst reserve: what ``remember`` keeps, so the reserve
    # holds what bursts needed and never feeds on itself.
    need: int | None = None
    # What ``remember`` keeps to judge whether latency responds to replicas.
    ready: int = 0
    load_per_replica: float | None = None
    latency_ratios: tuple[tuple[str, float], ...] = ()
    unresponsive: tuple[tuple[str, float], ...] = ()  # found (or still) unresponsive now
    running_per_replica: float = 0.0

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


def _unresponsive(
    history: History, now: float, name: str, ratio: float, ready: int, load: float | None
) -> tuple[str, float] | None:
    """Why latency ``name`` (now ``ratio`` times its target at ``ready`` replicas carrying
    ``load`` tokens/s each) does not respond to replicas, and the level it was found at; None
    when it may respond."""
    for t, was, level in reversed(history.unresponsive):
        if was == name and now - t <= RESPONSE_MEMORY and ratio <= level * RESPONSE_RETEST:
            return f"found unresponsive at {level:.1f}x its target", level
    for t, n, per, ratios in history.latency:
        before = dict(ratios).get(name)
        if now - t > RESPONSE_MEMORY or before is None or before <= 1 + TOLERANCE:
            continue
        grew = ready >= max(n + 1, RESPONSE_GROWTH * n)
        unloaded = load is None or per is None or load <= RESPONSE_UNLOAD * per
        flat = RESPONSE_GAIN * before <= ratio <= RESPONSE_RETEST * before
        if grew and unloaded and flat:
            change = f", load per replica {load / per - 1:+.0%}" if load and per else ""
            return f"as high at {ready} replicas as at {n}{change}", ratio
    return None


def _burst_reserve(history: History, now: float, memory: float) -> tuple[int, str] | None:
    """The count recent bursts needed, when recent demand came in bursts; None otherwise. Over
    a steady base one burst (a flash crowd) is no pattern, and holding replicas for it would
    only cost; two or more within the memory, or bursts with idle minutes between them, are
    traffic that comes back."""
    if memory <= 0:
        return None
    samples = [(t, d) for t, d in history.demand if now - t <= memory]
    demand = sorted(d for _, d in samples)
    if len(demand) < BURST_SAMPLES or demand[-1] <= 0:
        return None
    median = demand[len(demand) // 2]
    if median > 0 and demand[-1] < BURSTY * median:
        return None
    high = BURSTY * median if median > 0 else 0.0
    bursts, above = 0, False
    for _, d in samples:
        if d > high and not above:
            bursts += 1
        above = d > high
    # Over a steady base, one burst is no pattern (a flash crowd): wait for a second. Traffic
    # that falls idle between bursts (ON/OFF) is the pattern itself.
    if bursts < (2 if median > 0 else 1):
        return None
    needed = max((r for t, r in history.recommendations if now - t <= memory), default=0)
    if needed <= 0:
        return None
    shape = f"{demand[-1] / median:.1f}x the median" if median > 0 else "idle between bursts"
    return needed, (
        f"burst reserve: {bursts} bursts in the last {memory / 60:.0f} min needed "
        f"{needed} (peak demand {shape})"
    )


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

    load_per_replica = (
        signals.tokens_per_second / replicas.ready
        if signals.tokens_per_second is not None and replicas.ready
        else None
    )
    # Latency with requests waiting is load by definition (queueing): only latency sampled
    # with an empty queue may show that it does not respond to replicas.
    queued = bool(signals.queue)
    sample = () if queued else tuple((n, ratios[n][0]) for n in LATENCY_NAMES if n in ratios)
    ignored: dict[str, str] = {}
    levels: dict[str, float] = {}
    for n in LATENCY_NAMES:
        if n in ratios and ratios[n][0] > DOWN_HEADROOM and not queued:
            found = _unresponsive(history, now, n, ratios[n][0], replicas.ready, load_per_replica)
            if found:
                ignored[n] = f"{ratios[n][1]} ignored: not driven by load ({found[0]})"
                levels[n] = found[1]
    unresponsive = tuple(levels.items())
    for n in ignored:
        del ratios[n]

    trend = 1.0
    if signals.tokens_per_second is not None:
        trend = _trend_factor(history, now, cold_start_seconds)
    load_names = ("queue", "KV cache", "tokens/s")
    pressure_name, (pressure, pressure_text) = max(
        ratios.items(), key=lambda kv: kv[1][0], default=("", (0.0, ""))
    )
    load = max((ratios[n][0] for n in load_names if n in ratios), default=0.0)
    latency_pressure = max((ratios[n][0] for n in ratios if n not in load_names), default=0.0)
    latency_ok = all(ratios[n][0] < DOWN_HEADROOM for n in ratios if n not in load_names)
    breaches = [ratios[n][1] for n in ratios if ratios[n][0] > 1 + TOLERANCE]

    why: list[str]
    unreserved: int | None = None  # the recommendation before the burst reserve
    # Backlog sizing: while requests wait, every replica runs what it can hold, so the work in
    # flight over what one replica runs now is the count the load needs, however far past x2
    # it is (a flash crowd); it counts what loading replicas will take, so it is asked for even
    # while they load.
    backlog: int | None = None
    running_now = signals.running / replicas.ready if signals.running and replicas.ready else 0.0
    if signals.queue and signals.running and replicas.ready:
        # What one replica runs when it is full: the most seen lately (a replica that has just
        # turned ready runs little yet, and dividing by that would ask for far too many).
        seen = max((c for t, c in history.concurrency if now - t <= SEEN_MEMORY), default=0.0)
        per_replica = max(running_now, seen)
        backlog = math.ceil((signals.running + signals.queue) / per_replica * trend - 1e-9)
        backlog_text = (
            f"{signals.queue:.0f} waiting at {per_replica:.0f} running per full replica needs "
            f"{backlog}"
        )
    # Latency quantiles cover the last window: right after new replicas turn ready (and with
    # nothing waiting) they still describe the smaller fleet, or a backlog already drained.
    # (a fresh history, after a restart, is no growth)
    grew_at = now if 0 < history.ready < replicas.ready else history.grew_at
    settling = (
        grew_at is not None
        and now - grew_at < SETTLE
        and not signals.queue
        and pressure_name not in load_names
    )
    if pressure > 1 + TOLERANCE and settling:
        rec = cur
        why = [
            pressure_text,
            f"the latency window still covers the time before {replicas.ready} replicas were ready",
        ]
    elif pressure > 1 + TOLERANCE:
        rec = math.ceil(basis * min(pressure * trend, MAX_UP_FACTOR))
        why = [
            pressure_text + (" (over)" if pressure_name else ""),
            *[b for b in breaches if not b.startswith(pressure_name)],
        ]
        if backlog is not None and backlog > rec:
            rec = backlog
            why.append(backlog_text)
    elif max(load, latency_pressure) * trend > 1 + TOLERANCE:
        # Rising demand projected one cold start ahead: the load, and the latency that grows
        # with it (a decode-bound replica's ITL climbs long before its KV cache or queue do).
        ahead = max(load, latency_pressure) * trend
        rec = math.ceil(basis * min(ahead, MAX_UP_FACTOR))
        why = [
            f"demand rising {trend - 1:.0%} over the next {cold_start_seconds:.0f} s cold start",
            *[ratios[n][1] for n in ratios],
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
            # A probe of one replica: at a steady light load one replica fewer can be more
            # than PROBE past the proven rate, and the fleet would never learn that it carries
            # more. Only with PROBE_HEADROOM on every signal, and never to a count the fleet
            # had to scale up from within PROVEN_MEMORY (a probe that failed is not repeated).
            failed = any(
                n == cur - 1 for t, n in history.scaled_up_from if now - t <= PROVEN_MEMORY
            )
            roomy = all(r < PROBE_HEADROOM for r, _ in ratios.values())
            if roomy and not failed:
                carried = min(carried, max(1, cur - 1))
            if carried > rec:
                rec = carried
                why.append(f"{proven:.0f} tokens/s per replica proven within the SLOs")
        unreserved = min(rec, cur)
        reserve = _burst_reserve(history, now, spec.behavior.burst_memory_seconds)
        if reserve is not None and reserve[0] > rec:
            rec = reserve[0]
            why.append(reserve[1])
        rec = min(rec, cur)
    else:
        rec = cur
        why = [ratios[n][1] for n in ratios]

    if unreserved is None:  # the burst reserve applies only in the scale-down branch
        unreserved = rec
    unreserved = max(spec.min_replicas, min(spec.max_replicas, unreserved))
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
    # The backlog may ask past loading replicas only while what is bought is under half the
    # need: the queue keeps growing while they load, and counting it again would overshoot.
    sized_by_backlog = backlog is not None and rec == backlog and rec > 2 * cur
    if (
        rec > replicas.ready
        and replicas.loading
        and rec >= cur
        and cur < ceiling
        and not sized_by_backlog
    ):
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

    why += list(ignored.values())
    reason = f"{cur} -> {desired}: " + ", ".join(dict.fromkeys(w for w in why if w))
    if limit:
        reason += f"; limited by {limit}"
    within = all(ratios[n][0] <= 1 for n in ratios if n not in load_names)
    proven_rate = (
        signals.tokens_per_second / replicas.ready
        if within and signals.tokens_per_second and replicas.ready
        else None
    )
    return Decision(
        cur,
        desired,
        rec,
        reason,
        limit,
        proven_rate=proven_rate,
        need=unreserved,
        ready=replicas.ready,
        load_per_replica=load_per_replica,
        latency_ratios=sample,
        unresponsive=unresponsive,
        running_per_replica=running_now,
    )


def remember(
    history: History,
    decision: Decision,
    now: float,
    demand: float | None,
    keep_seconds: float = 3600.0,
) -> History:
    """The history after a decision (pure)."""
    recs = tuple((t, r) for t, r in history.recommendations if now - t <= keep_seconds)
    dem = tuple((t, d) for t, d in history.demand if now - t <= max(TREND_WINDOW, HISTORY_KEEP))
    if not decision.hold:
        need = decision.recommendation if decision.need is None else decision.need
        recs += ((now, need),)
    if demand is not None:
        dem += ((now, demand),)
    proven = tuple((t, v) for t, v in history.proven if now - t <= PROVEN_MEMORY)
    if decision.proven_rate is not None:
        proven += ((now, decision.proven_rate),)
    latency = tuple(x for x in history.latency if now - x[0] <= RESPONSE_MEMORY)
    if decision.latency_ratios and decision.ready:
        latency += ((now, decision.ready, decision.load_per_replica, decision.latency_ratios),)
    # A latency still ignored keeps the level it was found at; its time moves on.
    found = tuple(
        x
        for x in history.unresponsive
        if now - x[0] <= RESPONSE_MEMORY and x[1] not in dict(decision.unresponsive)
    )
    found += tuple((now, n, level) for n, level in decision.unresponsive)
    grew_at = now if 0 < history.ready < decision.ready else history.grew_at
    ups = tuple(x for x in history.scaled_up_from if now - x[0] <= PROVEN_MEMORY)
    if decision.desired > decision.current:
        ups += ((now, decision.current),)
    concurrency = tuple(x for x in history.concurrency if now - x[0] <= SEEN_MEMORY)
    if decision.running_per_replica:
        concurrency += ((now, decision.running_per_replica),)
    return History(
        recommendations=recs,
        demand=dem,
        limit=decision.limit,
        proven=proven,
        latency=latency,
        unresponsive=found,
        concurrency=concurrency,
        ready=decision.ready,
        grew_at=grew_at,
        scaled_up_from=ups,
    )
