"""What the policy reads (signals, replicas, its history) and what it returns (a decision)."""

from __future__ import annotations

from dataclasses import dataclass


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
    requests: float | None = None  # requests/s arriving at the gateways, all replicas

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
                self.requests,
            )
        )

    def active(self) -> bool | None:
        """Anything arriving, running, waiting or generating; None when nothing says."""
        seen = (self.requests, self.running, self.queue, self.tokens_per_second)
        if all(v is None for v in seen):
            return None
        return any(v for v in seen if v is not None)


@dataclass(frozen=True)
class Replicas:
    current: int  # what the Deployment asks for now
    ready: int
    unschedulable: int = 0  # pending for lack of GPUs
    quota: int | None = None  # the most the owner's limits leave this object (None: no limit)
    quota_why: str = ""  # which limit that is, in words
    held: int = 0  # requests the activator holds while no replica is ready (scale to zero)
    activator_ready: bool = False  # the activator can take the traffic at zero

    @property
    def loading(self) -> int:
        return max(0, self.current - self.ready - self.unschedulable)


@dataclass(frozen=True)
class History:
    """The short memory the policy needs; the caller keeps it (see ``remember``)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    present: tuple[tuple[float, int], ...] = ()  # (time, the count the load needed then)
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
    active_at: float | None = None  # when requests last arrived, ran or waited (scale to zero)
    held_peak: int = 0  # the most requests the activator held during the wake under way
    released: tuple[float, int] | None = None  # (when, how many) a wake's held requests went


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
    # The count the load needs now, without the demand forecast: what the burst reserve keeps
    # of a burst (a burst's rise, projected one cold start ahead, is no need).
    present: int | None = None
    # What ``remember`` keeps to judge whether latency responds to replicas.
    ready: int = 0
    load_per_replica: float | None = None
    latency_ratios: tuple[tuple[str, float], ...] = ()
    unresponsive: tuple[tuple[str, float], ...] = ()  # found (or still) unresponsive now
    running_per_replica: float = 0.0
    active: bool | None = None  # requests arrived, ran or waited (None: nothing said)
    held: int = 0  # requests the activator held at the decision (scale to zero)
    fleet_ready: int = 0  # ready replicas at the decision (scale to zero)

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
