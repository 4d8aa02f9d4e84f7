"""The actuator with a fake API and a fake metrics source: dry run, limits, holding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from llm_operator.autoscaling import actuator
from llm_operator.autoscaling.actuator import Autoscaler
from llm_operator.autoscaling.signals import PrometheusUnavailable
from llm_operator.config import OperatorConfig
from llm_operator.kube.states import DeploymentState, PodState
from tests.cases import base

NOW = 1_000_000.0


@dataclass
class FakeKube:
    ready: int = 2
    scaled: list[int] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    status_writes: int = 0

    def get_deployment(self, namespace: str, name: str) -> DeploymentState:
        return DeploymentState(1, 1, self.ready, self.ready, self.ready, self.ready, self.ready)

    def list_pods(self, namespace: str, selector: str) -> list[PodState]:
        return [PodState(f"p{i}", "Running", True) for i in range(self.ready)]

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        self.scaled.append(replicas)

    def apply_status(self, namespace: str, name: str, status: dict[str, Any], manager: str) -> None:
        assert manager == actuator.MANAGER
        self.status = status
        self.status_writes += 1


class Source:
    """Answers every PromQL query with fixed values keyed by the signal's first metric."""

    def __init__(self, queue: float | None = 40.0, fail: bool = False) -> None:
        self.queue, self.fail = queue, fail

    def query(self, promql: str) -> list[dict[str, Any]]:
        if self.fail:
            raise PrometheusUnavailable("connection refused")
        value: float | None = None
        if "llm_gateway_cost_dollars_total" in promql:  # spend per key: a vector
            return [
                {"metric": {"key_id": "small"}, "value": [NOW, "0.5"]},
                {"metric": {"key_id": "big"}, "value": [NOW, "12.25"]},
            ]
        if "timestamp(" in promql:
            value = NOW - 2
        elif promql.startswith("(sum(vllm:num_requests_waiting"):
            value = self.queue
        elif "time_to_first_token" in promql:
            value = 1.5
        return [] if value is None else [{"value": [NOW, str(value)]}]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    posted: list[tuple[str, str]] = []
    monkeypatch.setattr(
        actuator,
        "post_event",
        lambda body, type_, reason, message: posted.append((reason, message)),
    )
    return posted


def body(replicas: int = 2, **autoscaling: Any) -> dict[str, Any]:
    m = base("chat", replicas=replicas)
    m["metadata"].update({"namespace": "team", "uid": "u1"})
    m["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": 4, **autoscaling}
    return m


def make(kube: FakeKube, source: Source) -> Autoscaler:
    return Autoscaler(kube=kube, config=OperatorConfig(), source=source)  # type: ignore[arg-type]


def test_breach_scales_through_scale_and_explains(events: list[tuple[str, str]]) -> None:
    kube = FakeKube()
    d = make(kube, Source()).evaluate(body(), now=NOW)
    assert d is not None
    assert kube.scaled == [4]
    assert events[0][0] == "ScaledUp"
    assert events[0][1].startswith("2 -> 4: queue 20.0/replica vs target 5")
    assert kube.status["autoscaling"]["lastDecision"] == {
        "from": 2,
        "to": 4,
        "reason": events[0][1],
    }
    assert kube.status["metrics"]["hourlyCost"] == 4 * 4.25
    assert kube.status["metrics"]["ttftP95Seconds"] == 1.5
    assert kube.status["metrics"]["spendByKey"] == [
        {"keyId": "big", "dollarsPerHour": 12.25},
        {"keyId": "small", "dollarsPerHour": 0.5},
    ]


def test_dry_run_recommends_and_changes_nothing(events: list[tuple[str, str]]) -> None:
    kube = FakeKube()
    make(kube, Source()).evaluate(body(dryRun=True), now=NOW)
    assert kube.scaled == []
    assert [r for r, _ in events if r.startswith("Scaled")] == []
    assert kube.status["autoscaling"]["recommendation"] == 4
    assert kube.status["autoscaling"]["lastDecision"]["reason"].startswith("dry run: 2 -> 4")


def test_a_binding_limit_posts_one_event(events: list[tuple[str, str]]) -> None:
    kube = FakeKube(ready=4)
    auto = make(kube, Source(queue=80))
    for i in range(4):
        auto.evaluate(body(replicas=4), now=NOW + i * 15)
    assert [r for r, _ in events].count("ScalingLimited") == 1
    limited = next(c for c in kube.status["conditions"] if c["type"] == "ScalingLimited")
    assert (limited["status"], limited["reason"]) == ("True", "MaxReplicas")
    assert kube.scaled == []


def test_prometheus_down_holds_and_says_so(events: list[tuple[str, str]]) -> None:
    kube = FakeKube()
    auto = make(kube, Source(fail=True))
    auto.evaluate(body(), now=NOW)
    auto.evaluate(body(), now=NOW + 15)
    assert kube.scaled == []
    cond = next(c for c in kube.status["conditions"] if c["type"] == "MetricsAvailable")
    assert (cond["status"], cond["reason"]) == ("False", "PrometheusError")
    assert "holding 2 replicas" in cond["message"]
    assert [r for r, _ in events] == ["PrometheusError"]  # once, not per evaluation


def test_an_evaluation_that_changes_nothing_but_the_stamp_writes_nothing(
    events: list[tuple[str, str]],
) -> None:
    kube = FakeKube(ready=4)
    auto = make(kube, Source(queue=0.0))
    for i in range(3):  # the status body the watch shows lags: it is never updated here
        auto.evaluate(body(replicas=4), now=NOW + i * 15)
    assert kube.status_writes == 1
    auto.source = Source(queue=80.0)  # the queue changes: written again
    auto.evaluate(body(replicas=4), now=NOW + 45)
    assert kube.status_writes == 2


def test_autoscaling_off_is_left_alone(events: list[tuple[str, str]]) -> None:
    kube = FakeKube()
    b = body()
    b["spec"]["autoscaling"]["enabled"] = False
    assert make(kube, Source()).evaluate(b, now=NOW) is None
    assert kube.scaled == []
    assert kube.status == {}
