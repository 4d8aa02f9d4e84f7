"""What the operator does for scale to zero, with fake API calls: the activator's report, the
wake at once, the Events of a wake, the Service's switch and the pruning (issue 18)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.autoscaling.wake import Wakes
from llm_operator.builders.children import build_all
from llm_operator.builders.common import activator_selector, selector_labels
from llm_operator.config import OperatorConfig
from llm_operator.controller import zero
from llm_operator.kube.states import ActivatorState, DeploymentState, LeaseState
from tests.cases import base
from tests.unit.test_actuator import NOW, FakeKube, Source, events, make

__all__ = ["events"]  # the fixture, shared with test_actuator

SINCE = "2026-11-24T10:00:00.500000Z"
SINCE_EPOCH = 1795514400.5


def spec(name: str = "chat", **stz: Any) -> dict[str, Any]:
    m = base(name, replicas=0)
    m["metadata"].update({"namespace": "team", "uid": "u1", "generation": 1})
    m["spec"]["autoscaling"] = {
        "enabled": True,
        "minReplicas": 0,
        "maxReplicas": 4,
        "scaleToZero": {"enabled": True, **stz},
    }
    return m


def lease(held: str | None, since: str | None = SINCE) -> dict[str, Any]:
    ann = {"llmops.dev/held-requests": held, "llmops.dev/held-since": since}
    return {"metadata": {"annotations": {k: v for k, v in ann.items() if v is not None}}}


# ---------------------------------------------------------------- the activator's report
def test_the_lease_report_is_parsed_defensively() -> None:
    assert LeaseState.parse(lease("3")) == LeaseState(3, SINCE_EPOCH)
    assert LeaseState.parse(lease("0")) == LeaseState(0, None)  # nothing held: no "since"
    assert LeaseState.parse(lease("2", since="yesterday")) == LeaseState(2, None)
    assert LeaseState.parse(lease("-4")) == LeaseState(0, None)
    assert LeaseState.parse(lease("many")) == LeaseState(0, None)
    assert LeaseState.parse(lease("9" * 40)).held == 10**12 - 1  # bounded, never a huge int
    assert LeaseState.parse({"metadata": {}}) == LeaseState(0, None)


# ---------------------------------------------------------------- the wake at once
def test_a_held_request_wakes_the_object_at_once_and_only_once(
    events: list[tuple[str, str]],
) -> None:
    kube = FakeKube(ready=0)
    auto = make(kube, Source(fail=True))  # at zero nothing reports metrics
    woke = auto.wake(spec(), ActivatorState(ready=True, held=2), held=lambda _ns: [])
    assert woke is not None and kube.scaled == [1]
    assert events[0] == ("ScaledUp", "0 -> 1: 2 request(s) held by the activator")
    cond = next(c for c in kube.status["conditions"] if c["type"] == "MetricsAvailable")
    assert (cond["status"], cond["reason"]) == ("False", "ScaledToZero")
    assert "PrometheusError" not in [r for r, _ in events]  # no alarm for the expected
    # The next report arrives before the body shows replicas 1: no second /scale, no Event.
    assert auto.wake(spec(), ActivatorState(ready=True, held=3), held=lambda _ns: []) is None
    assert kube.scaled == [1] and len(events) == 1
    # Nor the periodic evaluation that runs meanwhile on the same stale body.
    busy = ActivatorState(ready=True, held=3)
    periodic = auto.evaluate(spec(), pods=[], held=lambda _ns: [], activator=busy)
    assert periodic is None and kube.scaled == [1] and len(events) == 1


def test_no_wake_without_a_held_request_or_away_from_zero(events: list[tuple[str, str]]) -> None:
    kube = FakeKube(ready=0)
    auto = make(kube, Source(fail=True))
    assert auto.wake(spec(), ActivatorState(ready=True, held=0)) is None
    running = spec()
    running["spec"]["replicas"] = 1
    assert auto.wake(running, ActivatorState(ready=True, held=5)) is None
    assert kube.scaled == [] and events == []


# ---------------------------------------------------------------- the Events of a wake
def test_a_wake_ends_in_scaled_from_zero_with_the_first_requests_wait() -> None:
    w, key = Wakes(), ("team", "chat")
    t = SINCE_EPOCH
    assert w.observe(key, LeaseState(1, t), ready=0, hold_seconds=300, now=t + 0.1) is None
    assert w.observe(key, LeaseState(4, t), ready=0, hold_seconds=300, now=t + 2) is None
    ev = w.observe(key, LeaseState(0, None), ready=1, hold_seconds=300, now=t + 40.8)
    assert ev is not None and (ev.type, ev.reason) == ("Normal", "ScaledFromZero")
    assert "the first held request waited 40.8 s; 4 requests held at most" in ev.message
    assert w.observe(key, LeaseState(0, None), ready=1, hold_seconds=300, now=NOW) is None


def test_a_hold_that_ends_without_a_replica_is_a_warning() -> None:
    w, key = Wakes(), ("team", "chat")
    w.observe(key, LeaseState(1, SINCE_EPOCH), ready=0, hold_seconds=4, now=SINCE_EPOCH)
    ev = w.observe(key, LeaseState(0, None), ready=0, hold_seconds=4, now=SINCE_EPOCH + 4.2)
    assert ev is not None and (ev.type, ev.reason) == ("Warning", "HoldExpired")
    assert "holdSeconds (4 s)" in ev.message and "1 request at most" in ev.message


def test_the_activator_says_how_a_hold_ended_when_the_deployment_lags() -> None:
    # The endpoint the activator forwarded to can be ready before the Deployment says so.
    w, key = Wakes(), ("team", "chat")
    w.observe(key, LeaseState(1, SINCE_EPOCH), ready=0, hold_seconds=9, now=SINCE_EPOCH + 1)
    ev = w.observe(key, LeaseState(0, None, "forwarded"), ready=0, hold_seconds=9, now=NOW)
    assert ev is not None and ev.reason == "ScaledFromZero"
    w.observe(key, LeaseState(1, SINCE_EPOCH), ready=0, hold_seconds=9, now=SINCE_EPOCH + 1)
    ev = w.observe(key, LeaseState(0, None, "expired"), ready=1, hold_seconds=9, now=NOW)
    assert ev is not None and ev.reason == "HoldExpired"
    ann = {"llmops.dev/held-requests": "0", "llmops.dev/hold-ended": "forwarded"}
    assert LeaseState.parse({"metadata": {"annotations": ann}}).ended == "forwarded"
    ann["llmops.dev/hold-ended"] = "<script>"  # only the two words the activator writes
    assert LeaseState.parse({"metadata": {"annotations": ann}}).ended is None


def test_a_hold_while_replicas_are_ready_is_not_a_wake() -> None:
    w, key = Wakes(), ("team", "chat")  # the Service has not switched back yet
    assert w.observe(key, LeaseState(2, SINCE_EPOCH), ready=1, hold_seconds=9, now=NOW) is None
    assert w.observe(key, LeaseState(0, None), ready=1, hold_seconds=9, now=NOW) is None


# ---------------------------------------------------------------- the Service and the pruning
@dataclass
class RecordingKube:
    """Records the API calls the scale-to-zero parts make."""

    calls: list[tuple[str, str, str]] = field(default_factory=list)
    existing: set[tuple[str, str]] = field(default_factory=set)
    applied: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, manifest: dict[str, Any], current: dict[str, Any] | None) -> bool:
        self.calls.append(("apply", manifest["kind"], manifest["metadata"]["name"]))
        self.applied.append(manifest)
        return True

    def delete_if_owned(
        self, api_version: str, kind: str, namespace: str, name: str, owner_uid: str
    ) -> bool:
        self.calls.append(("delete", kind, name))
        return (kind, name) in self.existing


def obj(m: dict[str, Any]) -> LLMDeployment:
    return LLMDeployment.model_validate(m)


def dep(ready: int) -> DeploymentState:
    return DeploymentState(1, 1, ready, ready, ready, ready, ready)


def test_the_service_follows_readiness_and_writes_only_on_a_change() -> None:
    o, kube = obj(spec("front")), RecordingKube()
    zero.forget("team", "front")
    assert zero.switch_front(kube, o, None)  # type: ignore[arg-type]
    assert kube.applied[-1]["spec"]["selector"] == activator_selector("front")
    assert not zero.switch_front(kube, o, dep(0))  # type: ignore[arg-type]
    assert zero.switch_front(kube, o, dep(1))  # type: ignore[arg-type]
    assert kube.applied[-1]["spec"]["selector"] == selector_labels("front")
    assert not zero.switch_front(kube, o, dep(2))  # type: ignore[arg-type]
    assert len(kube.calls) == 2
    off = spec("front")
    off["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": 2}
    assert not zero.switch_front(kube, obj(off), dep(0))  # type: ignore[arg-type]


def test_turned_off_the_activators_objects_go_pod_first_and_never_enabled_costs_nothing() -> None:
    m = spec("off")
    m["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": 2}
    kube = RecordingKube(existing={("Deployment", "off-activator"), ("Lease", "off-activator")})
    assert zero.prune(kube, obj(m), lambda _ns, _n: None) == []  # type: ignore[arg-type]
    assert kube.calls == []  # the index says there is no activator: no request at all
    gone = zero.prune(kube, obj(m), lambda _ns, _n: dep(1))  # type: ignore[arg-type]
    assert [g["kind"] for g in gone] == ["Deployment", "Lease"]
    assert kube.calls[0] == ("delete", "Deployment", "off-activator")  # the pod before its rights
    assert kube.calls[-1] == ("delete", "ServiceAccount", "off-activator")
    assert zero.prune(kube, obj(spec("on")), None) == []  # type: ignore[arg-type]


def test_the_activator_goes_before_the_replicas_and_the_service_selects_by_readiness() -> None:
    o = obj(spec("order"))
    kinds = [(m["kind"], m["metadata"]["name"]) for m in build_all(o, OperatorConfig())]
    assert kinds.index(("Deployment", "order-activator")) < kinds.index(("Deployment", "order"))
    assert kinds.index(("RoleBinding", "order-activator")) < kinds.index(
        ("Deployment", "order-activator")
    )

    def selected(ready: int) -> dict[str, str]:
        built = build_all(o, OperatorConfig(), ready_replicas=ready)
        front = next(m for m in built if (m["kind"], m["metadata"]["name"]) == ("Service", "order"))
        selector: dict[str, str] = front["spec"]["selector"]
        return selector

    assert selected(0) == activator_selector("order")
    assert selected(1) == selector_labels("order")


def test_with_a_pod_selector_the_replicas_still_admit_the_activator() -> None:
    m = spec("np")
    m["spec"]["access"] = {"allowedPodSelector": {"app": "frontend"}}
    built = build_all(obj(m), OperatorConfig())
    policies = {p["metadata"]["name"]: p for p in built if p["kind"] == "NetworkPolicy"}
    api = policies["np"]["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": activator_selector("np")}} in api
    assert {"podSelector": {"matchLabels": {"app": "frontend"}}} in api
    # The activator takes the same callers and reaches only the replicas, the API server, DNS.
    act = policies["np-activator"]["spec"]
    assert act["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app": "frontend"}}}]
    to_replicas, api_server, dns = act["egress"]
    assert to_replicas["to"] == [{"podSelector": {"matchLabels": selector_labels("np")}}]
    assert {p["port"] for p in api_server["ports"]} == {443, 6443}
    assert {p["port"] for p in dns["ports"]} == {53}
