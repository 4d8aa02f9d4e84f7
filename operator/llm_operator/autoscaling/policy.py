"""The scaling policy: pure, typed, explainable. The operator, the benchmark and the demo run it.

decide(signals, replicas, spec, price, now, history) -> Decision

1. No decision on missing or stale data: the replicas are held.
2. Pressure: each signal over its target gives a ratio (TTFT, ITL and end-to-end p95 against
   their SLOs, queue per ready replica against ``queuePerReplica``, KV-cache use against 0.8,
   tokens/s per replica against ``tokensPerSecondPerReplica``). Above 1 + tolerance the policy
   asks for ready x ratio replicas (at most x2 per decision), fast. A latency breach at a
   load per replica at or past the rate proven within the SLOs asks instead for the demand
   over that rate (one more at the least) when that is fewer: latency climbs steeply near a
   replica's limit, and its ratio over-asks there (``history._capacity_sized``).
3. Trend: when demand (tokens/s) rises (its 3-minute slope up and its latest sample no lower
   than the one before), the load and the latency expected one cold start
   from now are used, so replicas start loading before the SLO breaks; a forecast rise of more
   than the tolerance acts as soon as the projected load passes its target. A burst that has begun
   to fall is not projected. A rise driven by latency is sized by the proven rate as in (2).
4. Down only with headroom: every latency ratio under 0.8, load that the smaller set carries
   at 90% utilization, latency that stays under 80% of target if it grows with the load per
   replica, and tokens/s per replica at most 10% above the highest rate seen within the SLOs in
   the last hour, or one replica fewer (a proven capacity: the policy never jumps past what
   replicas were seen to carry, but may always probe one step); then slowly (stabilization
   window, step). While demand falls steadily and the last hour shows no cycle (a fall that
   came back), the window is the shorter ``fallStabilizationSeconds``; so it is once nothing
   has arrived, run or waited for that long after traffic busy for longer than a burst (the
   end of a session; after a burst, the reserve of (7) judges whether traffic comes back).
5. Replicas still loading count as capacity already bought (no stacked scale-ups), except
   when the backlog says more: while requests wait, each replica runs what it can hold, so
   (running + waiting) / (running per ready replica) is the count the load needs, past x2 if
   need be (a flash crowd), and it already counts what the loading replicas will take. Pods
   that cannot be scheduled for lack of GPUs stop further requests (limit ``capacity``).
6. Limits, each named in the decision: min/max, the $/hour budget, the cost-per-million-tokens
   target (only while the SLOs hold), step sizes, stabilization, and last the operator owner's
   quota (replicas per object, replicas or GPUs per namespace), which wins over minReplicas.
7. Burst reserve: when the demand of the last ``burstMemorySeconds`` is bursty (its peak at least
   BURSTY times its median: ON/OFF traffic, idle minutes between bursts), a scale-down stops at
   the count the recent bursts needed: the most replicas their load needed while one was on,
   by the same rules as a scale-down but without the forecast (not the count seeded at a
   start, nor a burst's rise projected a cold start ahead). A burst is
   over before a replica started for it could load (a cold start is 1.5 minutes), so the fleet
   has to be there when it comes; once no burst has come for that memory, the reserve goes.
8. Latency that does not respond to replicas is not load: a latency over its target that stayed
   as high while the ready replicas grew by half and the load per replica fell by 30% (long
   prompts' chunked prefill, a slow tokenizer, a client-side stall) is named in the reason and
   ignored, both as a reason to scale up and as a bar to scaling down, until it grows well past
   the level where it was found unresponsive or RESPONSE_MEMORY passes. So such latency can
   neither pin the fleet at maxReplicas under low load nor hold it there.
9. Scale to zero (``scaleToZero.enabled``, minReplicas 0): after ``idleSeconds`` with nothing
   arriving, running or waiting, and only while the activator is ready to take the traffic,
   the fleet goes to zero at once (no step, no window: idleness is its own window). At zero the
   policy holds until the activator holds a request, then asks for the replicas the held
   requests need at once (one, or more when more are held than a replica was seen to run).
   For one cold start after the first replica takes the requests the activator held, a queue
   no longer than what was held is that one-off backlog draining, not load: the fleet holds.
"""

from __future__ import annotations

import dataclasses
import math

from llm_operator.api.v1alpha1 import Autoscaling
from llm_operator.autoscaling.decision import Decision as Decision
from llm_operator.autoscaling.decision import History as History
from llm_operator.autoscaling.decision import Replicas as Replicas
from llm_operator.autoscaling.decision import Signals as Signals
from llm_operator.autoscaling.history import (
    _burst_reserve,
    _capacity_sized,
    _short_window,
    _unresponsive,
)
from llm_operator.autoscaling.history import _trend_factor as _trend_factor
from llm_operator.autoscaling.history import proven_rate as _proven
from llm_operator.autoscaling.history import remember as remember
from llm_operator.autoscaling.pressure import LOAD_NAMES
from llm_operator.autoscaling.pressure import ratios as pressure_ratios
from llm_operator.autoscaling.tuning import (
    DOWN_HEADROOM,
    DOWN_UTILIZATION,
    LATENCY_NAMES,
    MAX_SIGNAL_AGE,
    MAX_UP_FACTOR,
    PROBE,
    PROBE_HEADROOM,
    PROVEN_MEMORY,
    SEEN_MEMORY,
    SETTLE,
    TOLERANCE,
)
from llm_operator.autoscaling.zero import draining, from_zero, to_zero


def decide(
    signals: Signals | None,
    replicas: Replicas,
    spec: Autoscaling,
    *,
    price_per_replica_hour: float,
    now: float,
    history: History = History(),  # noqa: B008 (frozen)
    cold_start_seconds: float = 90.0,
    max_signal_age: float = MAX_SIGNAL_AGE,
) -> Decision:
    zero = spec.scale_to_zero
    if zero.enabled and replicas.current == 0:
        return _seen(from_zero(replicas, spec, history, now), replicas)
    if zero.enabled:
        held = draining(signals, replicas, history, now, cold_start_seconds)
        if held is not None:
            return _seen(held, replicas)
    decision = _decide(
        signals,
        replicas,
        spec,
        price_per_replica_hour=price_per_replica_hour,
        now=now,
        history=history,
        cold_start_seconds=cold_start_seconds,
        max_signal_age=max_signal_age,
    )
    decision = to_zero(decision, signals, replicas, spec, history, now, max_signal_age)
    return _seen(decision, replicas) if zero.enabled else decision


def _seen(decision: Decision, replicas: Replicas) -> Decision:
    """With what ``remember`` keeps of a wake: the requests held, the replicas ready."""
    return dataclasses.replace(decision, held=replicas.held, fleet_ready=replicas.ready)


def _decide(
    signals: Signals | None,
    replicas: Replicas,
    spec: Autoscaling,
    *,
    price_per_replica_hour: float,
    now: float,
    history: History,
    cold_start_seconds: float,
    max_signal_age: float,
) -> Decision:
    cur = replicas.current
    if signals is None or signals.empty():
        return Decision(cur, cur, cur, f"holding {cur}: no metrics for this deployment", hold=True)
    age = now - signals.at
    if age > max_signal_age:
        return Decision(cur, cur, cur, f"holding {cur}: metrics are {age:.0f} s old", hold=True)

    basis = max(1, replicas.ready)
    ratios = pressure_ratios(signals, spec.targets, basis)  # name -> (ratio, text)

    tps = signals.tokens_per_second
    load_per_replica = tps / replicas.ready if tps is not None and replicas.ready else None
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
    if tps is not None:
        trend = _trend_factor(history, now, cold_start_seconds, tps)
    # A scale-up sized by capacity must hold until a correction could land: the cold start and
    # the latency window that must cover the new replicas before they are judged.
    reach = cold_start_seconds + SETTLE
    pressure_name, (pressure, pressure_text) = max(
        ratios.items(), key=lambda kv: kv[1][0], default=("", (0.0, ""))
    )
    load = max((ratios[n][0] for n in LOAD_NAMES if n in ratios), default=0.0)
    latency_pressure = max((ratios[n][0] for n in ratios if n not in LOAD_NAMES), default=0.0)
    latency_ok = all(ratios[n][0] < DOWN_HEADROOM for n in ratios if n not in LOAD_NAMES)
    breaches = [ratios[n][1] for n in ratios if ratios[n][0] > 1 + TOLERANCE]

    why: list[str]
    unreserved: int | None = None  # the recommendation before the burst reserve
    present: int | None = None  # the count the load needs now, without the forecast
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
        and pressure_name not in LOAD_NAMES
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
        if pressure_name not in LOAD_NAMES:
            rec, sized = _capacity_sized(rec, cur, history, now, tps, load_per_replica, reach)
            if sized:
                why.append(sized)
        if backlog is not None and backlog > rec:
            rec = backlog
            why.append(backlog_text)
    elif max(load, latency_pressure) * trend > 1 + (TOLERANCE if trend <= 1 + TOLERANCE else 0):
        # Rising demand projected one cold start ahead: the load, and the latency that grows
        # with it (a decode-bound replica's ITL climbs long before its KV cache or queue do).
        # A forecast rise past the tolerance is itself the signal: no band on top of it.
        ahead = max(load, latency_pressure) * trend
        rec = math.ceil(basis * min(ahead, MAX_UP_FACTOR))
        present = min(rec, math.ceil(basis * max(load, latency_pressure) - 1e-9))
        why = [
            f"demand rising {trend - 1:.0%} over the next {cold_start_seconds:.0f} s cold start",
            *[ratios[n][1] for n in ratios],
        ]
        if latency_pressure > load:
            rec, sized = _capacity_sized(rec, cur, history, now, tps, load_per_replica, reach)
            present = min(present, rec)
            if sized:
                why.append(sized)
    elif latency_ok and ratios:
        # The smaller set must carry the load at DOWN_UTILIZATION and keep every latency under
        # DOWN_HEADROOM of its target, taking latency to grow in proportion to the load per
        # replica (conservative while a fixed part dominates; prefill-bound replicas show it).
        latency = max((ratios[n][0] for n in ratios if n not in LOAD_NAMES), default=0.0)
        need = max(load / DOWN_UTILIZATION, latency / DOWN_HEADROOM)
        rec = max(1, math.ceil(basis * need * trend - 1e-9))
        present = max(1, math.ceil(basis * need - 1e-9))
        why = [ratios[n][1] for n in ratios] or ["idle"]
        proven = _proven(history, now)
        if proven > 0 and signals.tokens_per_second:
            carried = math.ceil(signals.tokens_per_second * trend / (proven * PROBE) - 1e-9)
            carried_now = math.ceil(signals.tokens_per_second / (proven * PROBE) - 1e-9)
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
                carried_now = min(carried_now, max(1, cur - 1))
            present = max(present, carried_now)
            if carried > rec:
                rec = carried
                why.append(f"{proven:.0f} tokens/s per replica proven within the SLOs")
        unreserved = min(rec, cur)
        present = min(present, cur)
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
    if present is None:
        present = rec
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
        down_window = b.scale_down_stabilization_seconds
        # Demand that stopped, or a steady fall that the last hour shows no cycle of (the
        # evening, not a wave's trough), is followed within the shorter window.
        short = b.fall_stabilization_seconds
        shorter = _short_window(history, now, signals, short) if down_window > short else None
        if shorter:
            down_window = short
            why.append(f"{shorter}: stabilization {short} s")
        recent = [r for ts, r in window if now - ts <= down_window]
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
    # The owner's limits (operator config) over everything the spec says, minReplicas included.
    if replicas.quota is not None and desired > replicas.quota:
        desired, limit = replicas.quota, "quota"
        why.append(replicas.quota_why)

    why += list(ignored.values())
    reason = f"{cur} -> {desired}: " + ", ".join(dict.fromkeys(w for w in why if w))
    if limit:
        reason += f"; limited by {limit}"
    within = all(ratios[n][0] <= 1 for n in ratios if n not in LOAD_NAMES)
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
        present=max(spec.min_replicas, min(spec.max_replicas, present)),
        ready=replicas.ready,
        load_per_replica=load_per_replica,
        latency_ratios=sample,
        unresponsive=unresponsive,
        running_per_replica=running_now,
    )
