"""The autoscalers users would otherwise pick, as published and competently configured.

Each baseline is a small stateful object: ``decide(obs) -> desired replicas``, called at the
baseline's own sync period on observations sampled at its own scrape interval (``scrape``).
Pure: observations in, a count out. Checked against each project's source (file and version in
docs/simulator.md): the HPA's history starts with the current count and its ratio is over ready
pods; KEDA is the HPA fed every 15 s, on running + waiting (the waiting-only recipe stays as a
second row); Knative decides every 2 s on 1 s samples and scales down to no fewer than
floor(ready / 2); AIBrix's APA averages its metric over a 180 s window; llm-d's WVA reads each
pod's 1-minute maxima, runs every 60 s, and does not act while replicas load.

Scale to zero, where the project has it: Knative with ``min_replicas=0`` goes to zero once its
stable window has seen no concurrency and the scale-to-zero grace period has passed, and its
activator asks for a replica as soon as it holds a request; KEDA with ``minReplicaCount: 0``
and the HTTP add-on (``KedaZero``) activates on the interceptor's first request and deactivates
after ``cooldownPeriod`` without one.
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
    kv_max: float = 0.0  # the most used ready replica's KV cache, 0..1
    waiting_max: float = 0.0  # the longest queue of one ready replica
    arrivals: float = 0.0  # requests/s arriving over the last minute

    @property
    def concurrency(self) -> float:
        return self.waiting + self.running


def _clamp(n: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, n))


@dataclass
class HPA:
    """Kubernetes HPA on one metric: desired = ceil(ready x metric / target), nothing within
    10%; scale-down to the highest recommendation of the last 300 s, a history that starts with
    the current count (``recordInitialRecommendation``); scale-up at most max(+100%, +4 pods)
    per sync (15 s)."""

    target: float
    metric: str = "gpu_utilization"  # or "waiting_per_replica", "concurrency_per_replica"
    min_replicas: int = 1
    max_replicas: int = 100
    tolerance: float = 0.1
    down_window: float = 300.0
    period: float = 15.0
    scrape: float = 15.0
    _recs: deque[tuple[float, int]] = field(default_factory=deque)

    def value(self, obs: Observation) -> float:
        # KEDA's AverageValue: the metric's sum over the target's replicas.
        if self.metric == "waiting_per_replica":
            return obs.waiting / max(1, obs.ready)
        if self.metric == "concurrency_per_replica":
            return obs.concurrency / max(1, obs.ready)
        return float(getattr(obs, self.metric))

    def recommend(self, obs: Observation) -> int:
        ratio = self.value(obs) / self.target
        if abs(ratio - 1.0) <= self.tolerance:
            return obs.current
        # The replica calculator scales the ready pods' usage ratio (unready pods count as 0
        # use when scaling up, so a loading fleet is not counted twice).
        return math.ceil(max(1, obs.ready) * ratio)

    def decide(self, obs: Observation) -> int:
        if not self._recs:  # recordInitialRecommendation: the current count seeds the window
            self._recs.append((obs.now, obs.current))
        rec = _clamp(self.recommend(obs), self.min_replicas, self.max_replicas)
        self._recs.append((obs.now, rec))
        while self._recs and obs.now - self._recs[0][0] > self.down_window:
            self._recs.popleft()
        desired = rec
        if rec < obs.current:
            desired = min(obs.current, max(r for _, r in self._recs))
        up_limit = max(2 * obs.current, obs.current + 4)
        return _clamp(min(desired, up_limit), self.min_replicas, self.max_replicas)


def keda(
    threshold: float,
    *,
    metric: str = "concurrency_per_replica",
    min_replicas: int = 1,
    max_replicas: int = 100,
) -> HPA:
    """KEDA's Prometheus trigger (AverageValue ``threshold`` per replica): the HPA reads it every
    15 s through KEDA's metrics server when minReplicaCount > 0, then applies its own rules. A
    competent trigger is running + waiting (``vllm:num_requests_running`` +
    ``vllm:num_requests_waiting``); waiting alone is the common recipe, kept as a second row."""
    return HPA(
        target=threshold,
        metric=metric,
        period=15.0,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
    )


def keda_queue(threshold: float = 5.0, min_replicas: int = 1, max_replicas: int = 100) -> HPA:
    """KEDA on ``vllm:num_requests_waiting`` alone."""
    return keda(
        threshold,
        metric="waiting_per_replica",
        min_replicas=min_replicas,
        max_replicas=max_replicas,
    )


@dataclass
class KPA:
    """Knative's autoscaler on concurrency: target x 0.7 utilization; 60 s stable window, 6 s
    panic window; panic when the panic-window want is >= 200% of current; no scale-down while
    panicking (which lasts a stable window); scale-down at most /2 per decision. With
    ``min_replicas=0``, the last replica goes once the stable window wants zero and
    ``zero_grace`` (scale-to-zero-grace-period, 30 s) has passed: 90 s after the last request."""

    target: float  # concurrent requests per replica
    utilization: float = 0.7
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0
    max_scale_down_rate: float = 2.0
    min_replicas: int = 1
    max_replicas: int = 100
    period: float = 2.0  # the autoscaler's tick
    scrape: float = 1.0  # concurrency is sampled every second
    zero_grace: float = 30.0
    _samples: deque[tuple[float, float]] = field(default_factory=deque)
    _panic_until: float = -math.inf
    _zero_since: float | None = None

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
        if desired < obs.current:  # maxScaleDown = floor(readyPodsCount / maxScaleDownRate)
            desired = max(desired, math.floor(obs.ready / self.max_scale_down_rate))
        if desired == 0 and obs.current > 0:  # the grace period before the last one goes
            self._zero_since = now if self._zero_since is None else self._zero_since
            if now - self._zero_since < self.zero_grace:
                desired = 1
        else:
            self._zero_since = None
        return _clamp(desired, self.min_replicas, self.max_replicas)


@dataclass
class KedaZero:
    """KEDA with ``minReplicaCount: 0`` and the HTTP add-on in front: the interceptor holds
    requests while there is no replica, and the add-on's scaler reports activity within about a
    second (queue pings every 500 ms, ``StreamIsActive`` every 200 ms), so KEDA activates at once
    to one replica; past that the HPA (``hpa``, minimum 1) scales on in-flight requests; after
    ``cooldown`` seconds without a request (``cooldownPeriod``, 300 s) KEDA scales to zero."""

    hpa: HPA
    cooldown: float = 300.0
    min_replicas: int = 0
    period: float = 15.0
    scrape: float = 15.0
    _active_at: float | None = None

    def decide(self, obs: Observation) -> int:
        if self._active_at is None or obs.arrivals > 0 or obs.concurrency > 0:
            self._active_at = obs.now
        if obs.current == 0:
            return 1 if obs.concurrency > 0 else 0
        if obs.now - self._active_at >= self.cooldown:
            return 0
        return self.hpa.decide(obs)


@dataclass
class APA:
    """AIBrix's APA: the metric averaged over a 180 s window, proportional outside a 10% band,
    at most x2 up and /2 down per step, no scale-down within 300 s of the last scaling."""

    target: float
    metric: str = "gpu_utilization"
    window: float = 180.0
    tolerance: float = 0.1
    max_up: float = 2.0
    max_down: float = 2.0
    cooldown: float = 300.0
    min_replicas: int = 1
    max_replicas: int = 100
    period: float = 15.0
    _last_scale: float = -math.inf
    _samples: deque[tuple[float, float]] = field(default_factory=deque)

    def decide(self, obs: Observation) -> int:
        self._samples.append((obs.now, float(getattr(obs, self.metric))))
        while self._samples and obs.now - self._samples[0][0] > self.window:
            self._samples.popleft()
        value = sum(v for _, v in self._samples) / len(self._samples)
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
    add one when the spare KV < 0.10 or spare queue < 3; remove one only if the other replicas
    would keep that spare capacity. It reads each pod's 1-minute maximum (the most loaded pod
    decides), runs every 60 s, and makes no change while replicas are still loading."""

    kv_saturation: float = 0.80
    queue_saturation: float = 5.0
    kv_spare_min: float = 0.10
    queue_spare_min: float = 3.0
    min_replicas: int = 1
    max_replicas: int = 100
    period: float = 60.0
    window: float = 60.0
    _samples: deque[tuple[float, float, float]] = field(default_factory=deque)

    def _spare(self, kv: float, queue: float) -> tuple[float, float]:
        return self.kv_saturation - kv, self.queue_saturation - queue

    def decide(self, obs: Observation) -> int:
        self._samples.append((obs.now, obs.kv_max, obs.waiting_max))
        while self._samples and obs.now - self._samples[0][0] > self.window:
            self._samples.popleft()
        if obs.current > obs.ready:  # replicas loading: wait for them
            return _clamp(obs.current, self.min_replicas, self.max_replicas)
        n = max(1, obs.ready)
        kv = max(k for _, k, _ in self._samples)
        queue = max(q for _, _, q in self._samples)
        spare_kv, spare_q = self._spare(kv, queue)
        if spare_kv < self.kv_spare_min or spare_q < self.queue_spare_min:
            return _clamp(obs.current + 1, self.min_replicas, self.max_replicas)
        if n > 1:
            kv_after, q_after = kv * n / (n - 1), queue * n / (n - 1)
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
