"""A discrete-event simulator of a pool of vLLM-like replicas (the benchmark's engine).

Physics: continuous batching with chunked prefill under the replica model of ``lab/sim/model.py``
(one iteration = overhead + linear(batched tokens) + (KV read + LM head) / HBM). Admission
reserves a sequence's whole KV footprint (prompt + output) and holds requests in the replica's
queue when the cache is full. Routing is least-outstanding-requests over ready replicas; requests
that arrive while no replica is ready wait at the router (the activator, at zero) for at most
``router_timeout`` seconds; one that arrives while no replica exists at all calls ``on_hold``
(the activator's signal: scale from zero now, not at the next decision). New replicas become ready
after the cold start; removed replicas stop taking requests and finish what they hold (drain).

Speed: decode-only stretches are advanced in one step. While the batch does not change, the
iteration time grows linearly with the context, so k iterations cost a closed-form sum; the next
event is the first sequence to finish, the next arrival, or the next control tick.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from llm_operator.lab.sim.model import ReplicaModel
from llm_operator.lab.sim.trace import Request


@dataclass
class Seq:
    req: Request
    arrival: float
    prefill_left: int
    generated: int = 0
    first_token: float | None = None
    finished: float | None = None
    routed: float | None = None  # when a replica got it (after any wait at the router)

    @property
    def footprint(self) -> int:
        return self.req.input_tokens + self.req.output_tokens

    @property
    def context(self) -> int:
        return self.req.input_tokens - self.prefill_left + self.generated


@dataclass
class Replica:
    id: int
    ready_at: float
    model: ReplicaModel
    waiting: deque[Seq] = field(default_factory=deque)
    running: list[Seq] = field(default_factory=list)
    kv_reserved: int = 0
    busy_until: float | None = None  # end of the iteration in progress
    draining: bool = False
    removed_at: float | None = None
    busy_seconds: float = 0.0  # time spent in iterations (what DCGM's GPU utilization sees)

    @property
    def outstanding(self) -> int:
        return len(self.waiting) + len(self.running)

    def admit(self) -> None:
        m = self.model
        while (
            self.waiting
            and len(self.running) < m.max_num_seqs
            and self.kv_reserved + self.waiting[0].footprint <= m.kv_capacity_tokens
        ):
            s = self.waiting.popleft()
            self.kv_reserved += s.footprint
            self.running.append(s)


@dataclass
class PoolResult:
    finished: list[Seq]
    dropped: list[Seq]
    gpu_seconds: float
    scale_events: list[tuple[float, int, int]]  # (time, from, to)


class Pool:
    """Call ``run(trace, until)``; scale with ``set_replicas(n, now)`` from ``on_tick``."""

    def __init__(
        self,
        model: ReplicaModel,
        *,
        replicas: int = 1,
        cold_start: float = 90.0,
        router_timeout: float = 600.0,
        on_hold: Callable[[Pool, float], None] | None = None,
    ) -> None:
        self.model = model
        self.on_hold = on_hold
        self.cold_start = cold_start
        self.router_timeout = router_timeout
        self.now = 0.0
        self.replicas: list[Replica] = [Replica(i, 0.0, model) for i in range(replicas)]
        self._next_id = replicas
        self.pending: deque[Seq] = deque()  # at the router: no ready replica yet
        self.finished: list[Seq] = []
        self.dropped: list[Seq] = []
        self.gpu_seconds = 0.0
        self.scale_events: list[tuple[float, int, int]] = []
        self.generated_tokens = 0

    # ------------------------------------------------------------------ control
    @property
    def active(self) -> list[Replica]:
        return [r for r in self.replicas if not r.draining]

    def ready(self, now: float) -> list[Replica]:
        return [r for r in self.active if r.ready_at <= now]

    def set_replicas(self, n: int, now: float) -> None:
        cur = len(self.active)
        if n == cur:
            return
        self.scale_events.append((now, cur, n))
        if n > cur:
            for _ in range(n - cur):
                self.replicas.append(Replica(self._next_id, now + self.cold_start, self.model))
                self._next_id += 1
        else:
            # remove the least loaded, not-yet-ready first
            victims = sorted(self.active, key=lambda r: (r.ready_at <= now, r.outstanding))
            for r in victims[: cur - n]:
                r.draining = True
                self.pending.extend(r.waiting)  # queued requests go back to the router
                r.waiting.clear()

    # ------------------------------------------------------------------ physics
    def _route(self, seq: Seq, now: float) -> None:
        if seq.footprint > self.model.kv_capacity_tokens:
            self.dropped.append(seq)  # can never fit one replica's KV cache
            return
        ready = self.ready(now)
        if not ready:
            self.pending.append(seq)
            if self.on_hold is not None and not self.active:
                self.on_hold(self, now)
            return
        r = min(ready, key=lambda x: (x.outstanding, x.id))
        if seq.routed is None:
            seq.routed = now
        r.waiting.append(seq)
        r.admit()

    def _flush_router(self, now: float) -> None:
        while self.pending and self.ready(now):
            s = self.pending.popleft()
            if now - s.arrival > self.router_timeout:
                self.dropped.append(s)
                continue
            self._route(s, now)

    def _step(self, r: Replica, now: float, horizon: float) -> float:
        """Run iterations on ``r`` starting at ``now`` until ``horizon`` or a batch change.
        Returns the time the replica is next free."""
        m = self.model
        r.admit()
        if not r.running:
            return math.inf
        prefilling = [s for s in r.running if s.prefill_left > 0]
        if prefilling:  # one iteration with chunked prefill
            budget = m.max_batched_tokens
            decode = [s for s in r.running if s.prefill_left == 0]
            budget -= len(decode)
            chunks = []
            for s in prefilling:
                if budget <= 0:
                    break
                c = min(budget, s.prefill_left)
                chunks.append((s, c))
                budget -= c
            batched = len(decode) + sum(c for _, c in chunks)
            kv = sum(s.context for s in r.running)
            t = now + m.iteration_seconds(batched, kv)
            emit = list(decode)
            for s, c in chunks:
                s.prefill_left -= c
                if s.prefill_left == 0:
                    emit.append(s)
            self._emit(r, emit, t)
            r.busy_seconds += t - now
            return t
        # decode-only: k iterations at once while the batch is fixed
        b = len(r.running)
        kv0 = sum(s.context for s in r.running)
        k_finish = min(s.req.output_tokens - s.generated for s in r.running)
        base = (m.overhead_ms + m.intercept_ms + m.slope_ms_per_token * b) / 1000.0 + (
            m.lm_head_bytes / m.hbm_bytes_per_s
        )
        per_kv = m.kv_bytes_per_token / m.hbm_bytes_per_s

        def duration(k: int) -> float:  # sum_{i=0}^{k-1} base + per_kv * (kv0 + i*b)
            return k * base + per_kv * (k * kv0 + b * k * (k - 1) / 2)

        k = k_finish
        if now + duration(k) > horizon and horizon > now:
            # stop at the first iteration boundary past the horizon (arrival or tick)
            lo, hi = 1, k
            while lo < hi:
                mid = (lo + hi) // 2
                if now + duration(mid) >= horizon:
                    hi = mid
                else:
                    lo = mid + 1
            k = lo
        t_first = now + duration(1)
        t_end = now + duration(k)
        for s in r.running:
            if s.first_token is None:
                s.first_token = t_first
            s.generated += k
        self.generated_tokens += b * k
        r.busy_seconds += t_end - now
        self._retire(r, t_end)
        return t_end

    def _emit(self, r: Replica, seqs: list[Seq], t: float) -> None:
        for s in seqs:
            if s.first_token is None:
                s.first_token = t
            s.generated += 1
        self.generated_tokens += len(seqs)
        self._retire(r, t)

    def _retire(self, r: Replica, t: float) -> None:
        done = [s for s in r.running if s.generated >= s.req.output_tokens]
        for s in done:
            s.finished = t
            r.kv_reserved -= s.footprint
            self.finished.append(s)
        if done:
            r.running = [s for s in r.running if s.finished is None]

    # ------------------------------------------------------------------ main loop
    def run(
        self,
        trace: list[Request],
        *,
        until: float | None = None,
        tick: float = 0.0,
        on_tick: Callable[[Pool, float], None] | None = None,
    ) -> PoolResult:
        """Simulate; ``on_tick(pool, now)`` is called every ``tick`` seconds when given."""
        arrivals = deque(trace)
        end = until if until is not None else (trace[-1].t if trace else 0.0) + 3600.0
        next_tick = tick if tick > 0 else math.inf
        free_at: dict[int, float] = {}
        now = 0.0
        while True:
            next_arrival = arrivals[0].t if arrivals else math.inf
            next_ready = min(
                (r.ready_at for r in self.replicas if r.ready_at > now and not r.draining),
                default=math.inf,
            )
            busy = [t for t in free_at.values() if t > now]
            next_free = min(busy, default=math.inf)
            work = any(r.running or r.waiting for r in self.replicas)
            candidates = [next_arrival, next_tick, next_ready, next_free]
            if work and not busy:
                candidates.append(now)
            t = min(candidates)
            if t == math.inf or t > end:
                break
            self._bill(now, t)
            now = self.now = t
            while arrivals and arrivals[0].t <= now:
                req = arrivals.popleft()
                self._route(Seq(req, req.t, req.input_tokens), now)
            self._flush_router(now)
            if now >= next_tick:
                if on_tick is not None:
                    on_tick(self, now)
                self._flush_router(now)
                next_tick = now + tick
            horizon = min(arrivals[0].t if arrivals else math.inf, next_tick)
            for r in list(self.replicas):
                if free_at.get(r.id, 0.0) > now:
                    continue
                nxt = self._step(r, now, horizon)
                if nxt == math.inf:
                    free_at.pop(r.id, None)
                    if r.draining and r.removed_at is None:
                        r.removed_at = now
                else:
                    free_at[r.id] = nxt
            self.replicas = [r for r in self.replicas if r.removed_at is None]
        self.dropped += [s for s in self.pending]
        for r in self.replicas:
            self.dropped += list(r.waiting) + [s for s in r.running if s.finished is None]
        return PoolResult(self.finished, self.dropped, self.gpu_seconds, self.scale_events)

    def _bill(self, t0: float, t1: float) -> None:
        if t1 > t0:
            self.gpu_seconds += (t1 - t0) * len(self.replicas)
