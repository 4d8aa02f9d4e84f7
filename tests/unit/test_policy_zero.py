"""Scale to zero and back (pure): when the policy goes to zero, when it wakes, and how many."""

from __future__ import annotations

from typing import Any

import pytest

from llm_operator.api.v1alpha1 import Autoscaling
from llm_operator.autoscaling.policy import History, Replicas, Signals, decide, remember

NOW = 10_000.0
PRICE = 4.25
IDLE = {"requests": 0.0, "running": 0.0, "queue": 0.0, "tokens_per_second": 0.0}
BUSY = {**IDLE, "requests": 0.5, "running": 2.0, "tokens_per_second": 80.0}


def zero_spec(**stz: Any) -> Autoscaling:
    return Autoscaling.model_validate(
        {
            "enabled": True,
            "minReplicas": 0,
            "maxReplicas": 8,
            "scaleToZero": {"enabled": True, "idleSeconds": 600, **stz},
        }
    )


def sig(**kw: Any) -> Signals:
    return Signals(at=NOW - 5, ttft_p95=0.2, itl_p95=0.02, kv_usage=0.01, **kw)


def idle_since(t: float) -> History:
    return History(recommendations=((NOW - 60, 1),), active_at=t)


def test_idle_past_idle_seconds_goes_to_zero_at_once_from_any_count() -> None:
    d = decide(
        sig(**IDLE),
        Replicas(current=3, ready=3, activator_ready=True),
        zero_spec(),
        price_per_replica_hour=PRICE,
        now=NOW,
        history=idle_since(NOW - 601),
    )
    assert d.desired == 0, d.reason
    assert "no requests for 601 s" in d.reason and "idleSeconds 600" in d.reason


@pytest.mark.parametrize(
    ("why", "signals", "replicas", "history"),
    [
        ("idle too short", sig(**IDLE), Replicas(1, 1, activator_ready=True), NOW - 599),
        ("a request running", sig(**{**IDLE, "running": 1.0}), Replicas(1, 1, True), NOW - 900),
        ("a request waiting", sig(**{**IDLE, "queue": 1.0}), Replicas(1, 1, True), NOW - 900),
        ("requests arriving", sig(**{**IDLE, "requests": 0.02}), Replicas(1, 1, True), NOW - 900),
        ("no metrics", None, Replicas(1, 1, activator_ready=True), NOW - 900),
        ("stale metrics", Signals(at=NOW - 600, **IDLE), Replicas(1, 1, True), NOW - 900),
        ("nothing says", sig(), Replicas(1, 1, activator_ready=True), NOW - 900),
    ],
)
def test_never_to_zero_while_anything_happens_or_nothing_is_known(
    why: str, signals: Signals | None, replicas: Replicas, history: float
) -> None:
    r = Replicas(replicas.current, replicas.ready, activator_ready=True)
    d = decide(
        signals,
        r,
        zero_spec(),
        price_per_replica_hour=PRICE,
        now=NOW,
        history=idle_since(history),
    )
    assert d.desired >= 1, (why, d.reason)


def test_not_to_zero_while_the_activator_is_not_ready_and_it_says_so() -> None:
    d = decide(
        sig(**IDLE),
        Replicas(current=1, ready=1, activator_ready=False),
        zero_spec(),
        price_per_replica_hour=PRICE,
        now=NOW,
        history=idle_since(NOW - 3600),
    )
    assert d.desired == 1
    assert "not scaling to zero: the activator is not ready" in d.reason


def test_without_scale_to_zero_idle_never_goes_below_one() -> None:
    s = Autoscaling.model_validate({"enabled": True, "minReplicas": 1, "maxReplicas": 8})
    d = decide(
        sig(**IDLE),
        Replicas(current=1, ready=1, activator_ready=True),
        s,
        price_per_replica_hour=PRICE,
        now=NOW,
        history=idle_since(NOW - 86400),
    )
    assert d.desired == 1


def test_idleness_is_counted_from_the_last_activity_the_history_saw() -> None:
    s = zero_spec(idleSeconds=120)
    history, t = History(), NOW
    r = Replicas(current=1, ready=1, activator_ready=True)
    # Busy for a while, then idle: zero comes idleSeconds after the last busy evaluation.
    for signals in [BUSY] * 5 + [IDLE] * 20:
        d = decide(
            Signals(at=t - 1, **signals), r, s, price_per_replica_hour=PRICE, now=t, history=history
        )
        history = remember(history, d, t, signals["tokens_per_second"])
        if d.desired == 0:
            break
        t += 15
    last_busy = NOW + 4 * 15
    assert d.desired == 0
    assert t - last_busy >= 120 and t - last_busy < 120 + 15


def test_at_zero_it_holds_until_a_request_is_held() -> None:
    d = decide(
        None,
        Replicas(current=0, ready=0, activator_ready=True),
        zero_spec(),
        price_per_replica_hour=PRICE,
        now=NOW,
    )
    assert d.desired == 0 and d.hold


def test_a_held_request_wakes_one_replica_at_once() -> None:
    d = decide(
        None,
        Replicas(current=0, ready=0, held=1, activator_ready=True),
        zero_spec(),
        price_per_replica_hour=PRICE,
        now=NOW,
    )
    assert d.desired == 1
    assert d.reason == "0 -> 1: 1 request(s) held by the activator"


def test_many_held_wake_what_they_need_by_the_concurrency_seen_within_step_and_max() -> None:
    seen = History(concurrency=((NOW - 600, 8.0),))
    wake = lambda held, s: decide(  # noqa: E731
        None,
        Replicas(current=0, ready=0, held=held, activator_ready=True),
        s,
        price_per_replica_hour=PRICE,
        now=NOW,
        history=seen,
    )
    assert wake(20, zero_spec()).desired == 3  # 20 held / 8 per replica
    limited = wake(200, zero_spec())
    assert limited.desired == 4 and limited.limit == "step"  # maxScaleUpStep 4
    assert "limited by step" in limited.reason


def test_the_owners_quota_wins_over_a_wake() -> None:
    d = decide(
        None,
        Replicas(current=0, ready=0, held=3, activator_ready=True, quota=0, quota_why="full"),
        zero_spec(),
        price_per_replica_hour=PRICE,
        now=NOW,
    )
    assert d.desired == 0 and d.limit == "quota"


def at(now: float, **kw: Any) -> Signals:
    return Signals(at=now - 5, ttft_p95=0.2, itl_p95=0.02, kv_usage=0.01, **kw)


def _step(history: History, replicas: Replicas, signals: Signals | None, now: float) -> Any:
    d = decide(
        signals,
        replicas,
        zero_spec(),
        price_per_replica_hour=PRICE,
        now=now,
        history=history,
        cold_start_seconds=90.0,
    )
    return d, remember(history, d, now, None)


def test_the_held_backlog_released_to_the_first_replica_is_not_load() -> None:
    h = History(recommendations=((NOW - 600, 0),))
    # Woken with 1 held; 60 held while the replica loads (none in an engine's queue).
    d, h = _step(h, Replicas(0, 0, held=1, activator_ready=True), None, NOW)
    assert d.desired == 1
    loading = Replicas(1, 0, held=60, activator_ready=True)
    d, h = _step(h, loading, at(NOW + 60, queue=0.0), NOW + 60)
    assert d.desired == 1
    # Ready: the activator released them (held 0); the engine's queue shows them next.
    d, h = _step(h, Replicas(1, 1, held=0, activator_ready=True), at(NOW + 90, queue=0.0), NOW + 90)
    assert h.released == (NOW + 90, 60)
    queued = {**BUSY, "queue": 70.0, "running": 8.0, "requests": 1.0}
    d, h = _step(h, Replicas(1, 1, activator_ready=True), at(NOW + 105, **queued), NOW + 105)
    assert d.desired == 1 and d.hold, d.reason  # 60 held + 15 s x 1/s arrived since >= 70
    assert "the 60 request(s) the activator held went to the first replica 15 s ago" in d.reason
    # A queue past what was held and what arrived since is load: decided as usual.
    flood = {**queued, "queue": 400.0}
    d, _ = _step(h, Replicas(1, 1, activator_ready=True), at(NOW + 120, **flood), NOW + 120)
    assert d.desired > 1, d.reason
    # And after one cold start the backlog is history.
    d, _ = _step(h, Replicas(1, 1, activator_ready=True), at(NOW + 181, **queued), NOW + 181)
    assert "activator held" not in d.reason
