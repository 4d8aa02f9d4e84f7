"""Status follows the Deployment and its pods (pure function, table-driven)."""

from __future__ import annotations

from llm_operator.kube.states import DeploymentState, PodState
from llm_operator.status.conditions import already_written, get_condition, set_condition
from llm_operator.status.follow import follow

NOW = "2026-01-01T00:00:00Z"


def dep(replicas: int, ready: int, updated: int | None = None, gen: int = 1) -> DeploymentState:
    return DeploymentState(
        generation=gen,
        observed_generation=gen,
        replicas=replicas,
        updated_replicas=replicas if updated is None else updated,
        ready_replicas=ready,
        available_replicas=ready,
        spec_replicas=replicas,
    )


def run(
    desired: int,
    d: DeploymentState | None,
    pods: list[PodState] | None = None,
    conditions: list[dict[str, str]] | None = None,
) -> tuple[dict[str, object], list[str]]:
    up = follow(
        name="m",
        namespace="ns",
        generation=3,
        conditions=conditions or [],
        desired=desired,
        selector="a=b",
        deployment=d,
        pods=pods or [],
        now=NOW,
    )
    return up.status, [e.reason for e in up.events]


def test_all_ready_is_ready_and_announced_once() -> None:
    status, events = run(2, dep(2, 2))
    assert status["phase"] == "Ready"
    assert status["readyReplicas"] == 2
    assert events == ["Ready"]
    again, events2 = run(2, dep(2, 2), conditions=status["conditions"])  # type: ignore[arg-type]
    assert events2 == []
    assert again["endpoint"] == "http://m.ns.svc:80/v1"


def test_loading_replicas_are_progressing() -> None:
    status, events = run(2, dep(2, 0))
    assert status["phase"] == "Progressing"
    cond = get_condition(status["conditions"], "Progressing")  # type: ignore[arg-type]
    assert cond is not None
    assert cond["reason"] == "RollingOut"
    assert events == []


def test_partially_ready_is_degraded() -> None:
    status, _ = run(3, dep(3, 1))
    assert status["phase"] == "Degraded"
    assert get_condition(status["conditions"], "Ready")["status"] == "False"  # type: ignore[arg-type,index]


def test_unschedulable_for_gpus_is_a_condition_and_one_event() -> None:
    msg = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    pods = [PodState("p", "Pending", False, unschedulable_message=msg)]
    status, events = run(1, dep(1, 0), pods)
    cond = get_condition(status["conditions"], "Progressing")  # type: ignore[arg-type]
    assert cond is not None
    assert cond["reason"] == "InsufficientGPU"
    assert msg in cond["message"]
    assert status["phase"] == "Pending"
    assert events == ["InsufficientGPU"]
    _, again = run(1, dep(1, 0), pods, conditions=status["conditions"])  # type: ignore[arg-type]
    assert again == []


def test_scaled_to_zero_is_ready() -> None:
    status, _ = run(0, dep(0, 0))
    assert status["phase"] == "Ready"


def test_transition_time_moves_only_when_status_flips() -> None:
    c = set_condition([], "Ready", "False", "A", "x", now="t1")
    c = set_condition(c, "Ready", "False", "B", "y", now="t2")
    assert c[0]["lastTransitionTime"] == "t1"
    c = set_condition(c, "Ready", "True", "C", "z", now="t3")
    assert c[0]["lastTransitionTime"] == "t3"


def test_a_status_already_there_is_not_written_again() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "1/1"}
    valid = {"type": "Valid", "status": "True", "reason": "Fits", "message": "ok"}
    mine = {"phase": "Ready", "readyReplicas": 1, "conditions": [ready]}
    owned = ("Ready", "ModelCached")
    there = {"phase": "Ready", "readyReplicas": 1, "replicas": 1, "conditions": [valid, ready]}
    assert already_written(mine, there, owned)  # others' fields and conditions do not matter
    assert not already_written({**mine, "readyReplicas": 0}, there, owned)
    flipped = {**ready, "status": "False"}
    assert not already_written({**mine, "conditions": [flipped]}, there, owned)
    # A condition of an owned type that the writer no longer applies must be removed: a write.
    cached = {"type": "ModelCached", "status": "True", "reason": "Filled", "message": "x"}
    assert not already_written(mine, {**there, "conditions": [valid, ready, cached]}, owned)
    assert not already_written(mine, {}, owned)
