"""What the policy learns from its history: the demand trend, when the scale-down window may be
short, latency that does not respond to replicas, the burst reserve, and ``remember`` which
keeps that history (pure)."""

from __future__ import annotations

import math

from llm_operator.autoscaling.decision import Decision, History, Signals
from llm_operator.autoscaling.tuning import (
    BURST_FLOOR,
    BURST_LONGEST,
    BURST_SAMPLES,
    BURSTY,
    CAPACITY_EXPLAINS,
    CYCLE_SWING,
    FALL_CORRELATION,
    FALL_HISTORY,
    FALL_RATE,
    FALL_SAMPLES,
    GAP_MARGIN,
    HISTORY_KEEP,
    MAX_UP_FACTOR,
    PROVEN_MEMORY,
    RESPONSE_GAIN,
    RESPONSE_GROWTH,
    RESPONSE_MEMORY,
    RESPONSE_RETEST,
    RESPONSE_UNLOAD,
    SEEN_MEMORY,
    SETTLE,
    TOLERANCE,
    TREND_WINDOW,
)


def _fit(pts: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """Least-squares slope of demand over time, its correlation with time (0 for flat demand)
    and the mean demand; None when it cannot be told."""
    n = len(pts)
    if n < 3:
        return None
    mt = sum(t for t, _ in pts) / n
    md = sum(d for _, d in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    if var <= 0 or md <= 0:
        return None
    cov = sum((t - mt) * (d - md) for t, d in pts)
    vd = sum((d - md) ** 2 for _, d in pts)
    return cov / var, cov / (var * vd) ** 0.5 if vd > 0 else 0.0, md


def _slope(pts: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of demand over time; None when it cannot be told."""
    fit = _fit(pts)
    return None if fit is None else fit[0]


def _trend_factor(
    history: History, now: float, cold_start: float, current: float | None = None
) -> float:
    """Demand one cold start ahead over demand now, while demand rises: the slope of the last
    TREND_WINDOW is up and the latest sample (``current``, the demand now, when given) is no
    lower than the one before. A burst's rise dominates the window well after the burst has
    begun to fall, and projecting it then would hold (or buy) replicas for demand already
    going. (A second, shorter slope that must rise too was tried: on noisy low rates it
    dropped the projection on real ramps, and SLO attainment with it.)"""
    pts = [(t, d) for t, d in history.demand if now - t <= TREND_WINDOW]
    if current is not None:
        pts = [(t, d) for t, d in pts if t < now] + [(now, current)]
    slope = _slope(pts)
    if slope is None or slope <= 0 or pts[-1][1] <= 0 or pts[-1][1] < pts[-2][1]:
        return 1.0
    latest = pts[-1][1]
    return min(MAX_UP_FACTOR, (latest + slope * cold_start) / latest)


def _falling(history: History, now: float, current: float | None) -> str | None:
    """How demand falls, when it has fallen steadily over the last TREND_WINDOW (samples on a
    line, FALL_CORRELATION or closer, at FALL_RATE of its mean per minute or faster); None
    otherwise. Noise and a burst's end are not a steady fall."""
    pts = [(t, d) for t, d in history.demand if now - t <= TREND_WINDOW and t < now]
    if current is not None:
        pts.append((now, current))
    fit = _fit(pts) if len(pts) >= FALL_SAMPLES else None
    if fit is None:
        return None
    slope, corr, md = fit
    per_minute = -slope * 60 / md
    if corr > -FALL_CORRELATION or per_minute < FALL_RATE:
        return None
    return f"demand falling {per_minute:.0%}/min for {(pts[-1][0] - pts[0][0]) / 60:.0f} min"


def _cycling(history: History, now: float) -> str | None:
    """Why a steady fall may not last: demand that fell by CYCLE_SWING from a high and rose
    again by as much from its low within the history (waves, timers, batch jobs: the fall comes
    back within a cold start or two), or less than FALL_HISTORY of history to rule that out;
    None when the history shows no such cycle."""
    pts = [(t, d) for t, d in history.demand if now - t <= HISTORY_KEEP]
    if not pts or now - pts[0][0] < FALL_HISTORY:
        return "too little demand history to tell a lasting fall from a cycle"
    high, low, fell_at = pts[0][1], None, 0.0
    for t, d in pts:
        if low is None:
            high = max(high, d)
            if high > 0 and d <= (1 - CYCLE_SWING) * high:
                low, fell_at = d, t
        else:
            low = min(low, d)
            if d >= (1 + CYCLE_SWING) * low:
                return f"demand fell and came back within the last {(now - fell_at) / 60:.0f} min"
    return None


def _short_window(history: History, now: float, signals: Signals, short: float) -> str | None:
    """Why the scale-down window may be the shorter ``short`` seconds; None when it may not.
    The end of traffic busy for longer than a burst: nothing arrived, ran or waited and no
    token was generated for ``short`` seconds after a busy spell longer than BURST_LONGEST
    (the signals are exact then, not noise a window must smooth, and the burst reserve follows
    such an end down too; after a shorter spell, whether traffic comes back is the reserve's to
    judge, and it needs idle time to tell). Or a steady fall that the last hour shows no cycle
    of (the evening, not a wave's trough)."""
    idle = now - history.active_at if history.active_at is not None else 0.0
    if signals.tokens_per_second == 0 and signals.active() is False and idle >= short:
        hour = [(t, d) for t, d in history.demand if now - t <= HISTORY_KEEP]
        runs = _runs(hour, BURST_FLOOR * max((d for _, d in hour), default=0.0))
        if runs and runs[-1][1] - runs[-1][0] > BURST_LONGEST:
            busy = (runs[-1][1] - runs[-1][0]) / 60
            stopped = f"nothing arriving, running or waiting for {idle:.0f} s"
            return f"{stopped} after {busy:.0f} busy min"
    fall = _falling(history, now, signals.tokens_per_second)
    return fall if fall and _cycling(history, now) is None else None


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


def proven_rate(history: History, now: float) -> float:
    """The highest tokens/s per replica seen within the SLOs in the last PROVEN_MEMORY (0 when
    none was)."""
    return max((v for t, v in history.proven if now - t <= PROVEN_MEMORY), default=0.0)


def _capacity_sized(
    rec: int,
    cur: int,
    history: History,
    now: float,
    demand: float | None,
    load_per_replica: float | None,
    horizon: float,
) -> tuple[int, str | None]:
    """A latency-driven scale-up to ``rec``, sized instead by the highest rate per replica seen
    within the SLOs when that is fewer (one replica more at the least): latency climbs steeply
    near a replica's limit, so its ratio to the target over-asks. Only while the load per
    replica is at that rate or past it (load past what the fleet was seen to carry); under it
    the breach contradicts the rate (the latency window lags a rise, or what a replica carries
    has changed: a mix of longer prompts, say) and ``rec``, from the latency ratio, stands.
    Demand is projected over ``horizon``: the count must hold until a correction could land.
    Returns the count and, when it changed, why."""
    proven = proven_rate(history, now)
    if not proven or not demand or load_per_replica is None:
        return rec, None
    # The latency quantiles cover the last SETTLE seconds: the load they were measured at is
    # the highest per replica in that time (a replica that has just turned ready lowers the
    # load now, not the latency the window still shows).
    window = [x[2] for x in history.latency if now - x[0] <= SETTLE and x[2] is not None]
    if max([load_per_replica, *window]) < CAPACITY_EXPLAINS * proven:
        return rec, None
    ahead = demand * _trend_factor(history, now, horizon, demand)
    need = math.ceil(ahead / proven - 1e-9)
    if max(cur + 1, need) >= rec:
        return rec, None
    return max(cur + 1, need), (
        f"{ahead:.0f} tokens/s at {proven:.0f} per replica proven within the SLOs needs {need}"
    )


def _runs(pts: list[tuple[float, float]], high: float) -> list[tuple[float, float, float]]:
    """(first time, last time, highest demand) of each run of demand samples above ``high``."""
    runs: list[tuple[float, float, float]] = []
    run: tuple[float, float, float] | None = None
    for t, d in pts:
        if d > high:
            run = (t, t, d) if run is None else (run[0], t, max(run[2], d))
        elif run is not None:
            runs.append(run)
            run = None
    if run is not None:
        runs.append(run)
    return runs


def _bursts(
    hour: list[tuple[float, float]], now: float, span: float
) -> tuple[list[tuple[float, float]], float, float] | None:
    """The bursts in the last ``span`` seconds of ``hour``, the lower quartile of that demand
    and its peak; None when that demand is not bursty (its peak under BURSTY
    times the lower quartile). A burst is a run of demand above the geometric mean of the two
    (and above BURST_FLOOR of the peak: a trickle between bursts is idle), that rises to BURSTY
    times the lower quartile and lasts at most BURST_LONGEST: traffic busy for longer (a
    working session, the afternoon of a day) is followed by scaling, not held for."""
    demand = sorted(d for t, d in hour if now - t <= span)
    if len(demand) < BURST_SAMPLES or demand[-1] <= 0:
        return None
    # The lower quartile, not the median: ON/OFF traffic that is on for more than half the
    # memory (bursts of minutes) is still idle a quarter of it.
    low, peak = demand[len(demand) // 4], demand[-1]
    if low > 0 and peak < BURSTY * low:
        return None
    # Runs measured over the hour, so that one reaching back past the span is seen whole.
    runs = _runs(hour, max((low * peak) ** 0.5, BURST_FLOOR * peak))
    bursts = [
        (a, b)
        for a, b, top in runs
        if now - b <= span and b - a <= BURST_LONGEST and top >= BURSTY * low
    ]
    # Over a steady base, one burst is no pattern (a flash crowd): wait for a second. Traffic
    # that falls idle between bursts (ON/OFF) is the pattern itself.
    if len(bursts) < (2 if low > 0 else 1):
        return None
    return bursts, low, peak


def _burst_reserve(history: History, now: float, memory: float) -> tuple[int, str] | None:
    """The count recent bursts needed, when recent demand came in bursts; None otherwise. Over
    a steady base one burst (a flash crowd) is no pattern, and holding replicas for it would
    only cost; two or more within the memory, or bursts with idle minutes between them, are
    traffic that comes back. Where the hour's bursts came further apart than the memory, the
    reserve lasts GAP_MARGIN times the longest gap between them."""
    if memory <= 0:
        return None
    hour = [(t, d) for t, d in history.demand if now - t <= HISTORY_KEEP]
    span, gaps = memory, ""
    # The hour's bursts, for their gaps; then those of the span, judged against the span's own
    # quartile (a different threshold: the runs are found again, not filtered).
    seen = _bursts(hour, now, HISTORY_KEEP)
    if seen is not None and len(seen[0]) >= 2:
        gap = max(b[0] - a[1] for a, b in zip(seen[0], seen[0][1:], strict=False))
        if GAP_MARGIN * gap > memory:
            span = min(HISTORY_KEEP, GAP_MARGIN * gap)
            gaps = f", {gap / 60:.0f} min between bursts"
    found = _bursts(hour, now, span)
    if found is None:
        return None
    bursts, low, peak = found
    # What the bursts needed: the count their load needed while one was on, not the forecast
    # of their rise, nor the count seeded at a start or a recommendation made in a lull.
    # A burst whose start has left the span still counts whole (what it needed does not shrink
    # while it ages out).
    needed, i = 0, 0
    for t, r in history.present:  # both in time order: one pass
        while i < len(bursts) and bursts[i][1] < t:
            i += 1
        if i < len(bursts) and bursts[i][0] <= t:
            needed = max(needed, r)
    if needed <= 0:
        return None
    shape = f"{peak / low:.1f}x the lower quartile" if low > 0 else "idle between bursts"
    return needed, (
        f"burst reserve: {len(bursts)} bursts in the last {span / 60:.0f} min needed "
        f"{needed} (peak demand {shape}{gaps})"
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
    present = tuple((t, r) for t, r in history.present if now - t <= keep_seconds)
    if not decision.hold:
        need = decision.recommendation if decision.need is None else decision.need
        recs += ((now, need),)
        present += ((now, need if decision.present is None else decision.present),)
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
    active_at = history.active_at
    if decision.active or active_at is None:
        active_at = now
    # A wake: the activator held requests; when a replica is ready they are released to it.
    held_peak, released = max(history.held_peak, decision.held), history.released
    if held_peak and not decision.held and decision.fleet_ready:
        held_peak, released = 0, (now, held_peak)
    return History(
        active_at=active_at,
        held_peak=held_peak,
        released=released,
        recommendations=recs,
        present=present,
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
