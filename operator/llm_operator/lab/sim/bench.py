"""The trace-driven autoscaling benchmark's harness: one policy, one trace, one score.

The simulator (``lab/sim/des.py``) serves the trace; every ``scrape`` seconds a snapshot of what
Prometheus would hold is taken (queue, running, KV use, GPU busy fraction, and the latency and
token counts of the last ``window`` seconds); each policy decides at its own period from the
latest snapshot, so it sees the world one scrape late, as in a cluster.

The offline oracle (``Oracle``) knows the arrival curve: at every decision it holds the replicas
that the highest demand between now and one cold start plus one period ahead needs (anything
needed before a replica started now could be ready must already be running), at a per-replica
capacity calibrated on the simulator itself (``calibrate``); it still pays cold starts and
drains like everyone else. Demand and capacity are measured in work (``request_work``:
replica-seconds, where a prefill token and a decode token cost what the replica model says they
cost), so a window of long prompts counts as the load it is. Sweeps and the scoreboard files are
in ``lab/sim/scoreboard.py``.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from llm_operator.api.v1alpha1 import Autoscaling
from llm_operator.autoscaling.policy import History, Replicas, Signals, decide, remember
from llm_operator.gateway.metrics import ITL_BUCKETS, LATENCY_BUCKETS
from llm_operator.lab.sim.baselines import Observation
from llm_operator.lab.sim.des import Pool, Seq
from llm_operator.lab.sim.model import ReplicaModel
from llm_operator.lab.sim.scenarios import Slo, as_slo
from llm_operator.lab.sim.trace import Request

DEMAND_WINDOW = 60.0  # seconds over which the timeline measures demand
ORACLE_WINDOW = 30.0  # seconds over which the oracle measures demand (it knows the future)
Work = Callable[[Request], float]


def request_work(model: ReplicaModel, batch: int = 32) -> Work:
    """Replica-seconds one request costs: its prompt in chunked-prefill iterations (compute,
    plus reading the prompt's own KV as later chunks attend to it) and each answer token as
    its share of a decode iteration of ``batch`` sequences (fixed cost and LM head split over
    the batch, plus reading its own context)."""
    chunk = model.max_batched_tokens
    prefill = (model.overhead_ms + model.intercept_ms + model.slope_ms_per_token * chunk) / chunk
    decode = (model.overhead_ms + model.intercept_ms + model.slope_ms_per_token * batch) / batch
    per_token_kv = model.kv_bytes_per_token / model.hbm_bytes_per_s
    head = model.lm_head_bytes / model.hbm_bytes_per_s / batch

    def work(r: Request) -> float:
        p, o = r.input_tokens, r.output_tokens
        prompt = p * prefill / 1000 + (p * p / 2 / chunk) * per_token_kv
        answer = o * (decode / 1000 + head) + o * (p + o / 2) * per_token_kv
        return prompt + answer

    return work


@dataclass(frozen=True)
class Snapshot:
    at: float
    current: int
    ready: int
    waiting: float
    running: float
    kv_usage: float
    busy: float  # GPU busy fraction of ready replicas over the last scrape interval
    ttft_p95: float | None
    itl_p95: float | None
    tokens_per_second: float
    kv_max: float = 0.0  # the fullest ready replica's KV cache
    waiting_max: float = 0.0  # the longest queue of one ready replica
    arrivals_per_second: float = 0.0  # requests arriving (llm_gateway_requests_total's rate)
    held: int = 0  # requests waiting for a first ready replica (the activator's, at zero)
    router_waiting: float = 0.0  # of ``waiting``, those at the router (no replica has them)


def bucket_quantile(values: list[float], q: float, buckets: tuple[float, ...]) -> float | None:
    """``histogram_quantile(q, ...)`` as Prometheus computes it from cumulative buckets: the
    rank's bucket, linear interpolation inside it, the highest finite bound past the last one.
    Every policy sees latency this way, as the operator reads it from the gateway's
    histograms, never the exact per-request percentile."""
    if not values:
        return None
    rank = q * len(values)
    below, lower = 0, 0.0
    for upper in buckets:
        count = sum(1 for v in values if v <= upper)
        if count >= rank:
            inside = count - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        below, lower = count, upper
    return buckets[-1]


class Policy(Protocol):
    period: float

    def decide_snapshot(self, snap: Snapshot) -> int: ...


# A policy that scales to zero also has ``wake(snap) -> int``: what it asks for when a request
# arrives with no replica at all (the activator's or interceptor's signal, at once).
Wake = Callable[[Snapshot], int]


@dataclass
class Baseline:
    """Adapts a ``lab/sim/baselines.py`` object (decide(Observation))."""

    inner: object
    period: float = 15.0

    @property
    def scrape(self) -> float:
        """How often the baseline's metric is sampled (Knative: every second)."""
        return float(getattr(self.inner, "scrape", 15.0))

    @property
    def zero(self) -> bool:
        return int(getattr(self.inner, "min_replicas", 1)) == 0

    def wake(self, snap: Snapshot) -> int:
        return self.decide_snapshot(snap)

    def decide_snapshot(self, snap: Snapshot) -> int:
        obs = Observation(
            now=snap.at,
            current=snap.current,
            ready=snap.ready,
            gpu_utilization=snap.busy,
            waiting=snap.waiting,
            running=snap.running,
            kv_usage=snap.kv_usage,
            kv_max=snap.kv_max,
            waiting_max=snap.waiting_max,
            arrivals=snap.arrivals_per_second,
        )
        out: int = self.inner.decide(obs)  # type: ignore[attr-defined]
        return out


@dataclass
class Ours:
    """The operator's own policy module, fed signals computed like its PromQL."""

    spec: Autoscaling
    price_per_replica_hour: float
    cold_start: float
    period: float = 15.0
    history: History | None = None

    @property
    def zero(self) -> bool:
        return self.spec.scale_to_zero.enabled

    def wake(self, snap: Snapshot) -> int:
        return self.decide_snapshot(snap)

    def decide_snapshot(self, snap: Snapshot) -> int:
        sig = Signals(
            at=snap.at,
            ttft_p95=snap.ttft_p95,
            itl_p95=snap.itl_p95,
            # The engines' queues: what the activator holds is not in any (it is ``held``).
            queue=snap.waiting - snap.router_waiting,
            running=snap.running,
            kv_usage=snap.kv_usage,
            tokens_per_second=snap.tokens_per_second,
            requests=snap.arrivals_per_second,
        )
        if self.history is None:  # as the operator does after a start
            self.history = History(recommendations=((snap.at, snap.current),))
        d = decide(
            sig,
            # The activator is always up in the simulator; it holds what waits for a replica.
            Replicas(snap.current, snap.ready, held=snap.held, activator_ready=self.zero),
            self.spec,
            price_per_replica_hour=self.price_per_replica_hour,
            now=snap.at,
            history=self.history,
            cold_start_seconds=self.cold_start,
        )
        self.history = remember(self.history, d, snap.at, snap.tokens_per_second)
        return d.desired


@dataclass
class Oracle:
    """Knows every arrival. Holds ceil(peak demand ahead / (capacity x headroom)) replicas, where
    "ahead" runs to one cold start plus one period from now: a replica started at the next
    decision is ready only then, so whatever is needed before must be running already.

    Demand is work per second (``work`` per request; requests/s when ``work`` is None) over
    windows of ``window`` seconds; ``rate`` is the work per second one replica carries within the
    SLO (``calibrate``)."""

    trace: list[Request]
    rate: float
    cold_start: float
    headroom: float = 1.0
    period: float = 15.0
    work: Work | None = None
    window: float = DEMAND_WINDOW
    # May go to zero when nothing arrives within a cold start (a bound for policies that do).
    zero: bool = False

    def __post_init__(self) -> None:
        self._times = [r.t for r in self.trace]
        weights = [self.work(r) if self.work else 1.0 for r in self.trace]
        self._cum = [0.0, *itertools.accumulate(weights)]

    def demand(self, t: float) -> float:
        """Work (or arrivals) per second over [t, t + window)."""
        lo = bisect.bisect_left(self._times, t)
        hi = bisect.bisect_left(self._times, t + self.window)
        return (self._cum[hi] - self._cum[lo]) / self.window

    def needed(self, t: float) -> int:
        """Replicas that must be running at ``t``: the peak demand until a replica started at
        ``t`` (or at the next decision) would be ready."""
        horizon = self.cold_start + self.period
        step = 5.0
        peak = max(self.demand(t + i * step) for i in range(int(horizon / step) + 1))
        if self.zero and peak == 0:
            return 0  # nothing arrives before a replica started now could be ready
        return max(1, math.ceil(peak / (self.rate * self.headroom) - 1e-9))

    def decide_snapshot(self, snap: Snapshot) -> int:
        return self.needed(snap.at)


def calibrate(
    trace: list[Request],
    model: ReplicaModel,
    *,
    slo: Slo | tuple[float, float],
    replicas: int = 4,
    seconds: float = 300.0,
    attainment: float = 0.995,
    seed: int = 0,
    work: Work | None = None,
) -> float:
    """The request rate per replica at which ``replicas`` ready replicas, fed Poisson arrivals
    with the trace's own mix of lengths, still meet the SLO for ``attainment`` of requests
    (bisection on the simulator); in work per second per replica when ``work`` is given."""
    rng = random.Random(seed)
    mix = [(r.input_tokens, r.output_tokens) for r in trace] or [(512, 128)]

    def score(rate: float) -> float:
        t, reqs = 0.0, []
        while True:
            t += rng.expovariate(rate * replicas)
            if t >= seconds:
                break
            i, o = rng.choice(mix)
            reqs.append(Request(t, i, o))
        pool = Pool(model, replicas=replicas, cold_start=0.0)
        pool.run(reqs, until=seconds + 600)
        return sum(1 for s in pool.finished if met_slo(s, slo)) / len(reqs) if reqs else 1.0

    lo, hi = 0.05, 1.0
    while score(hi) >= attainment and hi < 1e4:
        lo, hi = hi, hi * 2
    for _ in range(8):
        mid = (lo + hi) / 2
        if score(mid) >= attainment:
            lo = mid
        else:
            hi = mid
    if work is None:
        return lo
    mean_work = sum(work(Request(0.0, i, o)) for i, o in mix) / len(mix)
    return lo * mean_work


@dataclass
class Score:
    requests: int
    finished: int
    dropped: int
    attainment: float
    ttft_p50: float
    ttft_p99: float
    itl_p50: float
    itl_p99: float
    gpu_hours: float
    dollars: float
    dollars_per_million_tokens: float
    scale_events: int
    reversals: int
    # (time, replicas asked for, ready, arrivals/s over the last DEMAND_WINDOW), one per scrape
    timeline: list[tuple[float, int, int, float]] = dataclasses.field(default_factory=list)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _itl(s: Seq) -> float:
    if s.finished is None or s.first_token is None or s.req.output_tokens < 2:
        return 0.0
    return (s.finished - s.first_token) / (s.req.output_tokens - 1)


def met_slo(s: Seq, slo: Slo | tuple[float, float]) -> bool:
    """Finished with TTFT (which may grow with the prompt) and mean inter-token latency both
    within the SLO."""
    slo = as_slo(slo)
    return (
        s.finished is not None
        and s.first_token is not None
        and s.first_token - s.arrival <= slo.ttft_for(s.req.input_tokens)
        and _itl(s) <= slo.itl
    )


def reversals(events: list[tuple[float, int, int]], within: float = 600.0) -> int:
    """Scale events that reverse the direction of one less than ``within`` seconds before."""
    count = 0
    for (t0, a0, b0), (t1, a1, b1) in itertools.pairwise(events):
        if t1 - t0 < within and (b0 - a0) * (b1 - a1) < 0:
            count += 1
    return count


def run(
    trace: list[Request],
    model: ReplicaModel,
    policy: Policy,
    *,
    initial: int,
    cold_start: float,
    price_per_replica_hour: float,
    slo: Slo | tuple[float, float] = (0.5, 0.05),
    scrape: float = 15.0,
    window: float = 60.0,
    min_replicas: int = 1,
    max_replicas: int = 100,
    hold_seconds: float = 300.0,
) -> Score:
    """Serve ``trace`` under ``policy``. A policy that scales to zero (``zero``) may go to 0; a
    request that then arrives waits at the activator for at most ``hold_seconds`` (its wait is
    part of its TTFT) and wakes the policy at once (``wake``)."""
    zero = bool(getattr(policy, "zero", False))
    wake: Wake | None = getattr(policy, "wake", None) if zero else None
    floor = 0 if zero else min_replicas
    latest: list[Snapshot] = []

    def on_hold(p: Pool, now: float) -> None:
        assert wake is not None
        held = len(p.pending)
        # At zero nothing runs; what waits is held (the activator reports it at once).
        snap = (
            dataclasses.replace(
                latest[-1],
                at=now,
                current=0,
                ready=0,
                waiting=held,
                running=0.0,
                held=held,
                router_waiting=held,
            )
            if latest
            else Snapshot(now, 0, 0, held, 0.0, 0.0, 0.0, None, None, 0.0, held=held)
        )
        n = max(0, min(max_replicas, wake(snap)))
        if n > 0:
            p.set_replicas(n, now)

    pool = Pool(
        model,
        replicas=initial,
        cold_start=cold_start,
        router_timeout=hold_seconds if zero else 600.0,
        on_hold=on_hold if wake is not None else None,
    )
    recent: deque[Seq] = deque()  # finished in the last window
    seen = 0
    tokens: deque[tuple[float, int]] = deque()
    busy_prev: dict[int, float] = {}
    next_decision = [policy.period]
    times = [r.t for r in trace]
    timeline: list[tuple[float, int, int, float]] = []

    def on_tick(p: Pool, now: float) -> None:
        nonlocal seen
        for s in p.finished[seen:]:
            recent.append(s)
        seen = len(p.finished)
        while recent and (recent[0].finished or 0) < now - window:
            recent.popleft()
        tokens.append((now, p.generated_tokens))
        while tokens and tokens[0][0] < now - window:
            tokens.popleft()
        ready = p.ready(now)
        busy = [r.busy_seconds - busy_prev.get(r.id, r.busy_seconds) for r in ready]
        for r in p.replicas:
            busy_prev[r.id] = r.busy_seconds
        span = tokens[-1][0] - tokens[0][0]
        snap = Snapshot(
            at=now,
            current=len(p.active),
            ready=len(ready),
            waiting=len(p.pending) + sum(len(r.waiting) for r in p.replicas),
            running=sum(len(r.running) for r in p.replicas),
            kv_usage=(
                sum(r.kv_reserved for r in ready) / (len(ready) * model.kv_capacity_tokens)
                if ready
                else 0.0
            ),
            busy=min(1.0, sum(busy) / (len(ready) * scrape)) if ready else 0.0,
            # As a replica's gateway measures it: from when the replica got the request (a
            # request held at the router, at zero, is timed by the client, not by any gateway).
            ttft_p95=bucket_quantile(
                [(s.first_token or 0) - (s.routed or s.arrival) for s in recent],
                0.95,
                LATENCY_BUCKETS,
            ),
            itl_p95=bucket_quantile([_itl(s) for s in recent], 0.95, ITL_BUCKETS),
            tokens_per_second=(tokens[-1][1] - tokens[0][1]) / span if span > 0 else 0.0,
            kv_max=max((r.kv_reserved / model.kv_capacity_tokens for r in ready), default=0.0),
            waiting_max=max((len(r.waiting) for r in ready), default=0),
            arrivals_per_second=(
                bisect.bisect_right(times, now) - bisect.bisect_right(times, now - window)
            )
            / window,
            held=len(p.pending),
            router_waiting=len(p.pending),
        )
        if latest and now >= next_decision[0]:
            # Metrics are one scrape late; the replica counts (and what the activator holds)
            # are the control plane's own, now.
            seen_by_policy = dataclasses.replace(
                latest[-1], current=snap.current, ready=snap.ready, held=snap.held
            )
            n = max(floor, min(max_replicas, policy.decide_snapshot(seen_by_policy)))
            p.set_replicas(n, now)
            next_decision[0] = now + policy.period
        latest[:] = [snap]
        arrived = bisect.bisect_right(times, now) - bisect.bisect_right(times, now - DEMAND_WINDOW)
        timeline.append((now, len(p.active), snap.ready, arrived / DEMAND_WINDOW))

    pool.run(trace, until=(trace[-1].t if trace else 0) + 600, tick=scrape, on_tick=on_tick)
    done = [s for s in pool.finished if s.finished is not None and s.first_token is not None]
    ttfts = [(s.first_token or 0) - s.arrival for s in done]
    itls = [_itl(s) for s in done]
    met = sum(1 for s in done if met_slo(s, slo))
    gpu_hours = pool.gpu_seconds / 3600
    out_tokens = sum(s.req.output_tokens for s in done)
    dollars = gpu_hours * price_per_replica_hour
    return Score(
        requests=len(trace),
        finished=len(done),
        dropped=len(pool.dropped),
        attainment=met / len(trace) if trace else 0.0,
        ttft_p50=_pct(ttfts, 0.5),
        ttft_p99=_pct(ttfts, 0.99),
        itl_p50=_pct(itls, 0.5),
        itl_p99=_pct(itls, 0.99),
        gpu_hours=gpu_hours,
        dollars=dollars,
        dollars_per_million_tokens=dollars / (out_tokens / 1e6) if out_tokens else math.nan,
        scale_events=len(pool.scale_events),
        reversals=reversals(pool.scale_events),
        timeline=timeline,
    )
