"""The burst reserve on ON/OFF traffic of other shapes: bursts of minutes, idle gaps longer than
the reserve's memory, and busy spells too long to be bursts."""

from __future__ import annotations

import re

from llm_operator.api.v1alpha1 import Autoscaling
from llm_operator.autoscaling.history import _burst_reserve
from llm_operator.autoscaling.policy import Replicas, Signals, decide, remember
from tests.unit.test_policy import NOW, PRICE, History, spec
from tests.unit.test_policy_capacity import DEFAULT, _run


def _quiet(at: float, tps: float) -> Signals:
    return Signals(at=at, ttft_p95=0.2, itl_p95=0.01, queue=0, kv_usage=0.05, tokens_per_second=tps)


def test_bursts_on_for_most_of_the_memory_still_get_a_reserve() -> None:
    # 8 minutes on, 6 off (samples every 30 s): on for more than half of any 30 minutes, so the
    # median of demand is the burst's level, but a quarter of the time is idle.
    on_off = ([4000.0] * 16 + [0.0] * 12) * 3
    n, reason = _run(on_off)
    needed = re.search(r"burst reserve: 2 bursts in the last 30 min needed (\d+)", reason)
    assert needed is not None, reason
    # 6 idle minutes in, the fleet keeps what the bursts needed (they ran at a light load, so
    # the fleet probed down while they were on: 5 of the 8 it started with).
    assert n == int(needed.group(1)) == 5, reason


def test_traffic_busy_for_longer_than_a_burst_gets_no_reserve() -> None:
    # A working session of 15 minutes, then idle: replicas started for it were ready long before
    # it ended, so its end is followed down, not held for a burst to come.
    n, reason = _run([4000.0] * 30 + [0.0] * 20)
    assert n < 7 and "burst reserve" not in reason, reason


def _reserve_after(on_off: list[float], s: Autoscaling) -> str:
    """The reserve's reason at the last of 30 s samples, the fleet starting at 8."""
    h, ready = History(recommendations=((NOW - 30, 8),)), 8
    for i, tps in enumerate(on_off):
        at = NOW + 30 * i
        d = decide(
            _quiet(at, tps),
            Replicas(ready, ready),
            s,
            price_per_replica_hour=PRICE,
            now=at,
            history=h,
        )
        h, ready = remember(h, d, at, tps), d.desired
    found = _burst_reserve(h, NOW + 30 * (len(on_off) - 1), s.behavior.burst_memory_seconds)
    return "" if found is None else found[1]


def test_the_reserve_outlasts_its_memory_when_the_bursts_came_further_apart() -> None:
    s = spec(
        targets={"ttftP95Seconds": 2.0, "itlP95Seconds": 0.05},
        behavior={"burstMemorySeconds": 600},
        maxReplicas=10,
    )
    # A minute on every 15 minutes; 13 minutes after the last one the 10-minute memory has no
    # burst in it, but the gaps of 14 minutes say the next one is still to come.
    on_off = ([4000.0] * 2 + [0.0] * 28) * 3 + [4000.0] * 2 + [0.0] * 26
    assert "14 min between bursts" in _reserve_after(on_off, s)
    # Past 1.5 gaps with no burst, it goes.
    assert _reserve_after(on_off + [0.0] * 20, s) == ""


def test_one_burst_seen_says_nothing_about_gaps() -> None:
    # One burst with idle minutes around it holds a reserve for the memory (ON/OFF traffic is
    # the pattern itself) ...
    assert "burst reserve: 1 bursts in the last 30 min" in _reserve_after(
        [4000.0] * 2 + [0.0] * 50, DEFAULT
    )
    # ... and no longer: with one burst there is no gap to outlast the memory by.
    assert _reserve_after([4000.0] * 2 + [0.0] * 70, DEFAULT) == ""
