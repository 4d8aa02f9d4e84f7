"""The benchmark harness: the operator's policy and the baselines on a synthetic trace."""

from __future__ import annotations

import dataclasses

import pytest

from llm_operator.api.v1alpha1 import Autoscaling
from llm_operator.lab.sim.baselines import HPA, Static, keda_queue
from llm_operator.lab.sim.bench import Baseline, Oracle, Ours, Snapshot, calibrate, reversals, run
from llm_operator.lab.sim.model import model_for
from llm_operator.lab.sim.trace import Request, synthetic

# At most 8 sequences per replica, so a few requests per second need several replicas.
H100 = dataclasses.replace(model_for("h100"), max_num_seqs=8)
TRACE = synthetic(seconds=900, base_rate=6.0, seed=5)


def ours() -> Ours:
    spec = Autoscaling.model_validate({"enabled": True, "minReplicas": 1, "maxReplicas": 20})
    return Ours(spec=spec, price_per_replica_hour=4.25, cold_start=90)


@pytest.mark.parametrize(
    "policy",
    [
        ours(),
        Baseline(HPA(target=0.6)),
        Baseline(keda_queue(), period=30.0),
        Baseline(Static(6), period=60.0),
    ],
    ids=["ours", "hpa", "keda", "static"],
)
def test_every_request_is_scored_and_money_adds_up(policy: object) -> None:
    s = run(TRACE, H100, policy, initial=2, cold_start=90, price_per_replica_hour=4.25)  # type: ignore[arg-type]
    assert s.finished + s.dropped == s.requests == len(TRACE)
    assert 0.0 <= s.attainment <= 1.0
    assert s.gpu_hours > 0
    assert s.dollars == pytest.approx(s.gpu_hours * 4.25)


def test_static_bills_its_replicas_for_the_whole_run() -> None:
    s = run(
        TRACE,
        H100,
        Baseline(Static(6), period=60.0),
        initial=6,
        cold_start=90,
        price_per_replica_hour=4.25,
    )
    assert s.scale_events == 0
    assert s.gpu_hours == pytest.approx(6 * (TRACE[-1].t + 600) / 3600, rel=0.02)


def test_ours_follows_the_load_up_and_down() -> None:
    s = run(TRACE, H100, ours(), initial=1, cold_start=90, price_per_replica_hour=4.25)
    assert s.scale_events >= 2
    assert s.attainment > 0.5


def test_reversals_count_direction_changes_within_ten_minutes() -> None:
    events = [(0.0, 1, 3), (100.0, 3, 2), (1000.0, 2, 4), (1100.0, 4, 6)]
    assert reversals(events) == 1


def test_oracle_holds_for_the_peak_one_cold_start_ahead() -> None:
    # 10 requests/s between t=100 and t=160, nothing else; one replica serves 2.5/s.
    trace = [Request(100 + i / 10, 100, 10) for i in range(600)]
    oracle = Oracle(trace, rate=2.5, cold_start=90, headroom=1.0, period=15)
    snap = Snapshot(0.0, 1, 1, 0, 0, 0.0, 0.0, None, None, 0.0)
    # At t=0 the burst starts within 90 + 15 s: a replica started now is ready in time.
    assert oracle.decide_snapshot(snap) == 4
    # With 20% headroom: ceil(10 / (2.5 x 0.8)) = 5.
    assert Oracle(trace, 2.5, 90, headroom=0.8).decide_snapshot(snap) == 5
    # Long after the burst: back to one.
    assert oracle.decide_snapshot(dataclasses.replace(snap, at=400.0)) == 1


def test_calibrated_rate_moves_with_the_attainment_asked_for() -> None:
    mix = synthetic(seconds=600, base_rate=2.0, seed=3)
    slo = (0.5, 0.05)
    rate = calibrate(mix, H100, slo=slo, replicas=2, seconds=200)
    assert rate > 0
    # The bisection's answer meets the bar and a clearly higher rate does not.
    assert calibrate(mix, H100, slo=slo, replicas=2, seconds=200, attainment=0.5) > rate
    assert calibrate(mix, H100, slo=slo, replicas=2, seconds=200, attainment=0.9999) <= rate


def test_the_timeline_records_replicas_and_demand() -> None:
    s = run(TRACE, H100, ours(), initial=1, cold_start=90, price_per_replica_hour=4.25)
    assert len(s.timeline) >= len(range(15, int(TRACE[-1].t), 15))
    times = [p[0] for p in s.timeline]
    assert times == sorted(times)
    assert all(asked >= 1 and ready >= 0 for _, asked, ready, _ in s.timeline)
    assert max(asked for _, asked, _, _ in s.timeline) > 1  # it followed the bursts up
    mean_demand = sum(p[3] for p in s.timeline if p[0] <= TRACE[-1].t) / len(
        [p for p in s.timeline if p[0] <= TRACE[-1].t]
    )
    assert mean_demand == pytest.approx(len(TRACE) / TRACE[-1].t, rel=0.1)


def test_policies_see_quantiles_from_histogram_buckets_as_prometheus_computes_them() -> None:
    from llm_operator.lab.sim.bench import bucket_quantile

    buckets = (0.05, 0.1, 0.25, 0.5)
    # 100 requests at 100 ms: the 95th rank is in the (0.05, 0.1] bucket, interpolated.
    assert bucket_quantile([0.1] * 100, 0.95, buckets) == pytest.approx(0.0975)
    # Past the last finite bucket Prometheus answers that bucket's upper bound.
    assert bucket_quantile([9.0] * 10, 0.95, buckets) == 0.5
    assert bucket_quantile([], 0.95, buckets) is None
    # 90 fast, 10 slow: p95 lands among the slow ones' bucket.
    assert 0.25 < bucket_quantile([0.01] * 90 + [0.4] * 10, 0.95, buckets) <= 0.5
