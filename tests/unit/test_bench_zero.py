"""Scale to zero in the benchmark: ours, Knative's KPA and KEDA with the HTTP add-on go to zero
on idle traffic, wake on the first held request, and the held wait counts in TTFT."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from llm_operator.api.v1alpha1 import Autoscaling
from llm_operator.lab.sim.baselines import KPA, KedaZero, Observation, keda
from llm_operator.lab.sim.bench import Baseline, Ours, Score, run
from llm_operator.lab.sim.model import model_for
from llm_operator.lab.sim.scenarios import idle_hours
from llm_operator.lab.sim.trace import Request

H100 = dataclasses.replace(model_for("h100"), max_num_seqs=8)
COLD = 90.0
IDLE = 300


def session(start: float, seconds: float = 600.0, rate: float = 1.0) -> list[Request]:
    n = int(seconds * rate)
    return [Request(start + i / rate, 500, 50) for i in range(n)]


# Two sessions of 10 minutes with an hour of nothing between them.
TRACE = session(0.0) + session(4200.0)


def ours(zero: bool) -> Ours:
    spec = Autoscaling.model_validate(
        {
            "enabled": True,
            "minReplicas": 0 if zero else 1,
            "maxReplicas": 8,
            "scaleToZero": {"enabled": zero, "idleSeconds": IDLE, "holdSeconds": 300},
        }
    )
    return Ours(spec=spec, price_per_replica_hour=4.25, cold_start=COLD)


def score(policy: object) -> Score:
    return run(TRACE, H100, policy, initial=1, cold_start=COLD, price_per_replica_hour=4.25)  # type: ignore[arg-type]


def zero_spans(s: Score) -> float:
    """Seconds the fleet asked for no replica (from the timeline, one row per scrape)."""
    rows = s.timeline
    return sum(b[0] - a[0] for a, b in itertools.pairwise(rows) if a[1] == 0)


@pytest.mark.parametrize(
    ("zero", "plain"),
    [
        (ours(True), ours(False)),
        (Baseline(KPA(target=8, min_replicas=0), period=2.0), Baseline(KPA(target=8), period=2.0)),
        (Baseline(KedaZero(keda(16)), period=15.0), Baseline(keda(16), period=15.0)),
    ],
    ids=["ours", "kpa", "keda"],
)
def test_an_idle_hour_costs_nothing_and_the_first_request_waits_one_cold_start(
    zero: object, plain: object
) -> None:
    z, p = score(zero), score(plain)
    assert z.finished + z.dropped == z.requests == len(TRACE)
    assert z.dropped == 0  # held, never lost: the wake comes well within holdSeconds
    # Most of the idle hour at zero, so fewer GPU-hours than the fleet that keeps one.
    assert zero_spans(z) >= 3600 - IDLE - 120
    assert p.gpu_hours - z.gpu_hours > 0.4
    # The second session's first requests waited for a replica to start: in their TTFT (the
    # 1% slowest of 1,200 are among the ~90 that arrived during the cold start).
    assert z.ttft_p99 >= COLD / 3
    assert p.ttft_p99 < 5.0


def test_the_wake_comes_at_once_not_at_the_next_decision() -> None:
    """One request after an idle hour: ours and Knative ask at its arrival; the first token
    comes one cold start (plus its own service) later."""
    trace = [*session(0.0, seconds=60), Request(5000.0, 500, 20)]
    for policy in (ours(True), Baseline(KPA(target=8, min_replicas=0), period=2.0)):
        s = run(trace, H100, policy, initial=1, cold_start=COLD, price_per_replica_hour=4.25)
        assert s.dropped == 0
        assert COLD <= s.ttft_p99 < COLD + 2.0


def test_a_request_held_past_hold_seconds_is_dropped() -> None:
    trace = [*session(0.0, seconds=60), Request(5000.0, 500, 20)]
    s = run(
        trace,
        H100,
        ours(True),
        initial=1,
        cold_start=COLD,
        price_per_replica_hour=4.25,
        hold_seconds=30.0,  # shorter than the cold start
    )
    assert s.dropped == 1


def test_kpa_waits_its_stable_window_and_grace_keda_its_cooldown() -> None:
    k = KPA(target=8, min_replicas=0)
    for t in range(0, 60):
        assert k.decide(Observation(now=t, current=1, ready=1, running=2)) == 1
    last = 59
    went = next(
        t
        for t in range(60, 400)
        if k.decide(Observation(now=t, current=1, ready=1, running=0)) == 0
    )
    assert 60 + 30 <= went - last <= 60 + 30 + 2  # stable window + scale-to-zero grace
    z = KedaZero(keda(16))
    z.decide(Observation(now=0, current=1, ready=1, running=2, arrivals=1.0))
    assert z.decide(Observation(now=299, current=1, ready=1)) == 1
    assert z.decide(Observation(now=300, current=1, ready=1)) == 0
    assert z.decide(Observation(now=400, current=0, ready=0)) == 0
    assert z.decide(Observation(now=401, current=0, ready=0, waiting=1)) == 1  # activation


def test_the_idle_hours_scenario_has_idle_hours() -> None:
    trace = idle_hours(1)
    gaps = [b.t - a.t for a, b in itertools.pairwise(trace)]
    assert sum(1 for g in gaps if g >= 3600) == 2  # two idle stretches of an hour or more
    assert len(trace) > 10_000
