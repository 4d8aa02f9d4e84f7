"""The owner's limits: the room each object has, the reservations that keep two objects of a
namespace from both taking the last of it, and the autoscaler stopping at the room."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from llm_operator.api.parse import parse
from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.autoscaling.actuator import Autoscaler
from llm_operator.autoscaling.policy import Replicas, decide
from llm_operator.builders.children import build_all
from llm_operator.config import Limits, OperatorConfig, QuotaLimits
from llm_operator.controller.quota import Ledger, admit, room
from llm_operator.kube.states import Held
from tests.cases import base
from tests.unit.test_actuator import FakeKube, Source, body
from tests.unit.test_actuator import events as events  # the fixture
from tests.unit.test_policy import NOW, PRICE, sig, spec

LIMITS = QuotaLimits(
    max_replicas_per_object=8, max_replicas_per_namespace=10, max_gpus_per_namespace=12
)


def obj(name: str, replicas: int, gpus: int = 1, namespace: str = "team") -> LLMDeployment:
    m = base(name, replicas=replicas)
    m["metadata"].update({"namespace": namespace, "uid": f"uid-{name}"})
    m["spec"]["resources"] = {"gpu": {"count": gpus}}
    o = parse(m)
    assert isinstance(o, LLMDeployment), o
    return o


@pytest.mark.parametrize(
    ("limits", "per_replica", "others", "expect", "why"),
    [
        (QuotaLimits(), 1, [Held("a", 99, 8)], None, ""),
        (LIMITS, 1, [], 8, "the operator allows 8 replicas per LLMDeployment"),
        (LIMITS, 1, [Held("a", 7, 1)], 3, "namespace team allows 10 replicas"),
        (LIMITS, 2, [Held("a", 4, 2)], 2, "namespace team allows 12 GPUs, its other"),
        (LIMITS, 4, [Held("a", 1, 1), Held("b", 1, 1)], 2, "a replica takes 4"),
        (LIMITS, 1, [Held("a", 12, 1)], 0, "hold 12"),  # already past: no room, never negative
        (QuotaLimits(max_gpus_per_namespace=4), 0, [Held("a", 9, 1)], None, ""),  # no GPUs
    ],
)
def test_room_is_the_tightest_limit_given_what_the_others_hold(
    limits: QuotaLimits, per_replica: int, others: list[Held], expect: int | None, why: str
) -> None:
    r = room(limits, "team", per_replica, others)
    assert r.replicas == expect
    assert why in r.why


def test_namespace_overrides_replace_only_the_fields_they_set() -> None:
    limits = Limits(
        max_replicas_per_object=4,
        max_gpus_per_namespace=16,
        namespaces={"big": QuotaLimits(max_gpus_per_namespace=64)},
    )
    assert limits.for_namespace("big") == QuotaLimits(
        max_replicas_per_object=4, max_gpus_per_namespace=64
    )
    assert limits.for_namespace("other").max_gpus_per_namespace == 16
    loaded = OperatorConfig.model_validate(
        {"limits": {"maxReplicasPerNamespace": 3, "namespaces": {"x": {"maxGpusPerNamespace": 2}}}}
    )
    assert loaded.limits.for_namespace("x") == QuotaLimits(
        max_replicas_per_namespace=3, max_gpus_per_namespace=2
    )
    assert not QuotaLimits().any and QuotaLimits(max_replicas_per_object=1).any


def test_held_is_read_from_the_deployment_the_operator_builds() -> None:
    o = obj("chat", replicas=3, gpus=2)
    dep = next(
        m
        for m in build_all(o, OperatorConfig(), service_monitor_available=False)
        if m["kind"] == "Deployment"
    )
    assert Held.of_deployment(dep) == Held("chat", 3, 2)
    assert Held.of_deployment(dep).gpus == 6


def test_a_reservation_counts_until_the_watch_could_have_shown_it() -> None:
    ledger = Ledger()
    ledger.reserve("team", Held("a", 4, 1), now=100.0)
    # The index has not seen a's Deployment yet: the reservation counts; not for a itself.
    assert ledger.others("team", "b", [], now=101.0) == [Held("a", 4, 1)]
    assert ledger.others("team", "a", [], now=101.0) == []
    assert ledger.others("other", "b", [], now=101.0) == []
    # The index shows an older count of a: the newer reservation wins.
    assert ledger.others("team", "b", [Held("a", 1, 1)], now=101.0) == [Held("a", 4, 1)]
    # Past RECENT the index is the truth (a deleted Deployment stops counting).
    assert ledger.others("team", "b", [], now=100.0 + Ledger.RECENT + 1) == []
    ledger.reserve("team", Held("a", 4, 1), now=200.0)
    ledger.forget("team", "a")
    assert ledger.others("team", "b", [], now=201.0) == []


def test_admit_refuses_past_the_room_and_reserves_within_it() -> None:
    ledger = Ledger()
    index = {"team": [Held("a", 6, 1)]}

    def held_of(ns: str) -> list[Held]:
        return index.get(ns, [])

    over = admit(obj("b", replicas=5), LIMITS, held_of, ledger)
    assert over is not None and over.reason == "QuotaExceeded"
    assert over.message.startswith("the spec asks for 5 replicas but namespace team allows 10")
    assert "which leaves room for 4" in over.message
    assert admit(obj("b", replicas=4), LIMITS, held_of, ledger) is None
    # b's 4 are reserved: c finds the namespace full before any watch event.
    over = admit(obj("c", replicas=1), LIMITS, held_of, ledger)
    assert over is not None and "leaves room for 0" in over.message
    # The per-object limit needs no index at all.
    alone = QuotaLimits(max_replicas_per_object=2)
    assert admit(obj("d", replicas=3), alone, lambda ns: pytest.fail("read"), ledger) is not None


def test_concurrent_admissions_never_share_the_last_room() -> None:
    """16 objects admitted from 16 threads at once, room for 5: exactly 5 get in."""
    ledger = Ledger()
    limits = QuotaLimits(max_replicas_per_namespace=5)
    barrier = threading.Barrier(16)
    admitted: list[str] = []

    def one(i: int) -> None:
        o = obj(f"o{i}", replicas=1)
        barrier.wait()
        if admit(o, limits, lambda ns: [], ledger) is None:
            admitted.append(o.metadata.name)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 5


def test_the_policy_stops_at_the_quota_and_says_which_limit() -> None:
    s = spec(minReplicas=1, maxReplicas=10, targets={"queuePerReplica": 5})
    flood = sig(ttft_p95=0.2, itl_p95=0.02, queue=200.0, kv_usage=0.3)
    r = Replicas(2, 2, quota=3, quota_why="namespace team allows 10 replicas")
    d = decide(flood, r, s, price_per_replica_hour=PRICE, now=NOW)
    assert (d.desired, d.limit) == (3, "quota")
    assert "namespace team allows 10 replicas" in d.reason
    # The quota wins over minReplicas: an owner's limit is not the user's to lift.
    s2 = spec(minReplicas=4, maxReplicas=10)
    d = decide(flood, Replicas(4, 4, quota=2), s2, price_per_replica_hour=PRICE, now=NOW)
    assert (d.desired, d.limit) == (2, "quota")


def test_the_autoscaler_reads_the_room_and_reports_scaling_limited_quota(
    events: list[tuple[str, str]],
) -> None:
    kube = FakeKube()
    config = OperatorConfig(limits=Limits(max_replicas_per_namespace=5))
    auto = Autoscaler(kube=kube, config=config, source=Source(), ledger=Ledger())  # type: ignore[arg-type]
    held: dict[str, Any] = {"team": [Held("other", 2, 1)]}
    auto.evaluate(body(), now=NOW, pods=[], held=lambda ns: held[ns])
    assert kube.scaled == [3]  # 4 wanted (queue 40 over 2 replicas), 5 - 2 held by another
    limited = next(c for c in kube.status["conditions"] if c["type"] == "ScalingLimited")
    assert (limited["status"], limited["reason"]) == ("True", "Quota")
    assert "namespace team allows 5 replicas" in limited["message"]
