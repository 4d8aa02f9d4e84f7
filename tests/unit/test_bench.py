"""The benchmark harness: the operator's policy and the baselines on a synthetic trace."""

from __future__ import annotations

import dataclasses

import pytest

from llm_operator.api.v1alpha1 import Autoscaling
from llm_operator.sim.baselines import HPA, Static, keda_queue
from llm_operator.sim.bench import Baseline, Ours, reversals, run
from llm_operator.sim.model import model_for
from llm_operator.sim.trace import synthetic

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
