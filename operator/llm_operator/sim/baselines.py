"""The autoscalers users would otherwise pick, as published (defaults in ../shared/DESIGN.md).

Each baseline is a small stateful object: ``decide(obs) -> desired replicas``, called at the
baseline's own sync period. Pure: observations in, a count out. The benchmark (issue #6) feeds
them the signals its simulator exposes, lagged like a Prometheus scrape.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Observation:
    now: float
    current: int  # replicas asked for (including loading)
    ready: int
    gpu_utilization: float = 0.0  # mean over ready replicas, 0..1 (DCGM GPU util)
    waiting: float = 0.0  # queued requests, all replicas (vllm:num_requests_waiting)
    running: float = 0.0  # running requests, all replicas
    kv_usage: float = 0.0  # mean KV-cache usage over ready replicas, 0..1

    @property
    def concurrency(self) -> float:
        return self.waiting + self.running


def _clamp(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, n))


@dataclass
class HPA:
    """Kubernetes HPA on one metric: desired = ceil(current x metric / target), nothing within
    10%; scale-down to the highest recommendation of the last 300 s; scale-up at most
    max(+100%, +4 pods) per sync (15 s)."""

    target: float
    metric: str = "gpu_utilization"  # or "waiting_per_replica" (KEDA's AverageValue)
    min_replicas: int = 1
    max_replicas: int = 100
    tolerance: float = 0.1
    down_window: float = 300.0
    period: float = 15.0
    _recs: deque[tuple[float, int]] = field(default_factory=deque)

    def value(self, obs: Observation) -> float:
        if self.metric == "waiting_per_replica":
            return obs.waiting / max(1, obs.current)
        return float(getattr(obs, self.metric))

    def recommend(self, obs: Observation) -> int:
        ratio = self.value(obs) / self.target
        if abs(ratio - 1.0) <= self.tolerance:
            return obs.current
        return math.ceil(obs.current * ratio)

    def decide(self, obs: Observation) -> int:
        rec = _clamp(self.recommend(obs), self.min_replicas, self.max_replicas)
        self._recs.append((obs.now, rec))
        while self._recs and obs.now - self._recs[0][0] > self.down_window:
            self._recs.popleft()
        desired = rec
        if rec < obs.current:
            desired = min(obs.current, max(r for _, r in self._recs))
        up_limit = max(2 * obs.current, obs.current + 4)
        return _clamp(min(desired, up_limit), self.min_replicas, self.max_replicas)


def keda_queue(threshold: float = 5.0, min_replicas: int = 1, max_replicas: int = 100) -> HPA:
    """KEDA's Prometheus trigger on vllm:num_requests_waiting (AverageValue ``threshold`` per
    replica), polled every 30 s, then the HPA's rules."""
    return HPA(
        target=threshold,
        metric="waiting_per_replica",
        period=30.0,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
    )


@dataclass
class KPA:
    """Knative's autoscaler on concurrency: target x 0.7 utilization; 60 s stable window, 6 s
    panic window; panic when the panic-window want is >= 200% of current; no scale-down while
    panicking (which lasts a stable window); scale-down at most /2 per decision."""

    target: float  # concurrent requests per replica
    utilization: float = 0.7
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0
    max_scale_down_rate: float = 2.0
    min_replicas: int = 1
    max_replicas: int = 100
    period: float = 2.0
    _samples: deque[tuple[float, float]] = field(default_factory=deque)
    _panic_until: float = -math.inf

    def _avg(self, now: float, window: float) -> float:
        vals = [c for t, c in self._samples if now - t < window]
        return sum(vals) / len(vals) if vals else 0.0

    def decide(self, obs: Observation) -> int:
        now = obs.now
        self._samples.append((now, obs.concurrency))
        while self._samples and now - self._samples[0][0] >= self.stable_window:
            self._samples.popleft()
        per = self.target * self.utilization
        stable = math.ceil(self._avg(now, self.stable_window) / per)
        panic = math.ceil(self._avg(now, self.panic_window) / per)
        if obs.ready and panic / obs.ready >= self.panic_threshold:
            self._panic_until = now + self.stable_window
        panicking = now < self._panic_until
        desired = max(obs.current, panic) if panicking else stable
        if desired < obs.current:
            desired = max(desired, math.ceil(obs.current / self.max_scale_down_rate))
        return _clamp(desired, self.min_replicas, self.max_replicas)


@dataclass
class APA:
    """AIBrix's APA: proportional outside a 10% band, at most x2 up and /2 down per step, no
    scale-down within 300 s of the last scaling."""

    target: float
    metric: str = "gpu_utilization"
    tolerance: float = 0.1
    max_up: float = 2.0
    max_down: float = 2.0
    cooldown: float = 300.0
    min_replicas: int = 1
    max_replicas: int = 100
    period: float = 15.0
    _last_scale: float = -math.inf

    def decide(self, obs: Observation) -> int:
        value = float(getattr(obs, self.metric))
        ratio = value / self.target
        desired = obs.current
        if ratio > 1 + self.tolerance:
            desired = min(math.ceil(obs.current * ratio), math.ceil(obs.current * self.max_up))
        elif ratio < 1 - self.tolerance and obs.now - self._last_scale >= self.cooldown:
            desired = max(math.ceil(obs.current * ratio), math.ceil(obs.current / self.max_down))
        desired = _clamp(desired, self.min_replicas, self.max_replicas)
        if desired != obs.current:
            self._last_scale = obs.now
        return desired


@dataclass
class WVA:
    """llm-d's saturation-based autoscaler: a replica is saturated at KV >= 0.80 or queue >= 5;
    add one when the average spare KV < 0.10 or spare queue < 3; remove one only if the other
    replicas would keep that spare capacity."""

    kv_saturation: float = 0.80
    queue_saturation: float = 5.0
    kv_spare_min: float = 0.10
    queue_spare_min: float = 3.0
    min_replicas: int = 1
    max_replicas: int = 100
    period: float = 15.0

    def _spare(self, kv: float, queue: float) -> tuple[float, float]:
        return self.kv_saturation - kv, self.queue_saturation - queue

    def decide(self, obs: Observation) -> int:
        n = max(1, obs.ready)
        kv, queue = obs.kv_usage, obs.waiting / n
        spare_kv, spare_q = self._spare(kv, queue)
        if spare_kv < self.kv_spare_min or spare_q < self.queue_spare_min:
            return _clamp(obs.current + 1, self.min_replicas, self.max_replicas)
        if n > 1:
            kv_after, q_after = kv * n / (n - 1), obs.waiting / (n - 1)
            s_kv, s_q = self._spare(kv_after, q_after)
            if s_kv >= self.kv_spare_min and s_q >= self.queue_spare_min:
                return _clamp(obs.current - 1, self.min_replicas, self.max_replicas)
        return _clamp(obs.current, self.min_replicas, self.max_replicas)


@dataclass
class Static:
    """A fixed count (the static-peak bound)."""

    replicas: int
    period: float = 60.0

    def decide(self, obs: Observation) -> int:
        return self.replicas
