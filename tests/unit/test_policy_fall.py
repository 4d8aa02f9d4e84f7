"""A lasting fall (the evening of a day) is followed faster than a fall that comes back (waves)."""

from __future__ import annotations

import itertools

from llm_operator.autoscaling.history import _cycling, _falling
from llm_operator.autoscaling.policy import Replicas, Signals, decide, remember
from llm_operator.autoscaling.tuning import FALL_HISTORY
from tests.unit.test_policy import PRICE, History, spec

S = spec(
    targets={"ttftP95Seconds": 0.5, "itlP95Seconds": 0.05, "queuePerReplica": 5},
    maxReplicas=20,
)
WINDOW = S.behavior.fall_stabilization_seconds
PER_REPLICA = 1500.0  # tokens/s at which a replica's ITL p95 reaches its target


def _run(profile: list[tuple[float, float]], start: int = 8) -> list[tuple[float, int, str]]:
    """(time, replicas, reason) at each 15 s decision over a demand profile of (until, tokens/s)
    steps interpolated linearly; replicas turn ready at once and ITL grows with the load."""
    h, n, out, t = History(), start, [], 0.0
    points = [(0.0, profile[0][1]), *profile]
    while t <= profile[-1][0]:
        i = next(i for i in range(1, len(points)) if t <= points[i][0])
        (t0, d0), (t1, d1) = points[i - 1], points[i]
        tps = d0 + (d1 - d0) * (t - t0) / (t1 - t0) if t1 > t0 else d1
        itl = 0.05 * 0.7 * tps / n / PER_REPLICA
        sig = Signals(
            at=t, ttft_p95=0.1, itl_p95=itl, queue=0.0, kv_usage=0.1, tokens_per_second=tps
        )
        d = decide(sig, Replicas(n, n), S, price_per_replica_hour=PRICE, now=t, history=h)
        h = remember(h, d, t, tps)
        n = d.desired
        out.append((t, n, d.reason))
        t += 15.0
    return out


def _demand(points: list[tuple[float, float]]) -> History:
    return History(demand=tuple(points))


def test_a_steady_fall_is_told_from_noise() -> None:
    fall = _demand([(t, 9000 - 20 * t) for t in range(0, 181, 15)])
    assert (_falling(fall, 180, None) or "").startswith("demand falling")
    noise = _demand([(t, 5000 + (300 if t % 30 else -300)) for t in range(0, 181, 15)])
    assert _falling(noise, 180, None) is None
    assert _falling(_demand([(t, 5000 + 10 * t) for t in range(0, 181, 15)]), 180, None) is None


def test_a_fall_is_trusted_only_with_history_that_shows_no_cycle() -> None:
    day = [(t, 1000 + 8 * t) for t in range(0, 1201, 15)]  # a morning: 20 min of rise
    day += [(1200 + t, 10600 - 20 * t) for t in range(15, 301, 15)]  # then the evening
    assert _cycling(_demand(day), 1500) is None
    short = [(t, 1000 + 8 * t) for t in range(0, int(FALL_HISTORY) - 60, 15)]
    assert "too little demand history" in (_cycling(_demand(short), FALL_HISTORY - 60) or "")
    # A wave: down by a third and back up within the hour: its next fall will come back too.
    wave = [(t, 6000.0) for t in range(0, 301, 15)]
    wave += [(300 + t, 4000.0) for t in range(15, 301, 15)]
    wave += [(600 + t, 6000.0) for t in range(15, 901, 15)]
    assert "fell and came back" in (_cycling(_demand(wave), 1500) or "")
    # A start from nothing (the first window reads 0) is no cycle.
    assert _cycling(_demand([(0, 0.0), *day[1:]]), 1500) is None


def test_the_evening_fall_is_followed_within_the_short_window() -> None:
    # 25 minutes of rise to 15,000 tokens/s, then a steady fall to 2,000 over 15 minutes.
    run = _run([(1500, 15000), (2400, 2000)])
    fast = [(t, n) for t, n, r in run if f"stabilization {WINDOW} s" in r]
    assert fast, "the fall never used the short window"
    cycled = _run([(300, 15000), (600, 9000), (900, 15000), (1500, 15000), (2400, 2000)])
    assert not [r for _, _, r in cycled if f"stabilization {WINDOW} s" in r]
    # Over the fall the fleet that follows it holds fewer replicas, and never fewer than the
    # load needs (ITL stays under its target: 0.7 x per-replica load / PER_REPLICA).
    during = [n for t, n, _ in run if 1500 < t <= 2400]
    held = [n for t, n, _ in cycled if 1500 < t <= 2400]
    assert sum(during) < sum(held)
    for (t, n, _), (t2, _, _) in itertools.pairwise(run):
        if 1500 < t < 2400:
            load = 15000 - 13000 * (t2 - 1500) / 900
            assert 0.05 * 0.7 * load / n / PER_REPLICA <= 0.05, (t, n)


WAVES = [(300, 15000), (600, 9000), (900, 15000), (1500, 15000)]  # the hour shows a cycle


def test_demand_that_stops_is_followed_within_the_short_window_after_waves_too() -> None:
    # Waves, then nothing at all: a fall after waves keeps the long window, but once nothing
    # has arrived, run or waited for the short window, the short window applies.
    run = _run([*WAVES, (1515, 0), (2400, 0)])
    idle = [t for t, _, r in run if "nothing arriving, running or waiting" in r]
    assert idle and idle[0] >= 1500 + WINDOW, idle
    assert all(f"stabilization {WINDOW} s" in r for t, _, r in run if t in idle)
    # By the time the long window (300 s) would let it start down from 8, the fleet is at the
    # count the idle decisions ask for (2: the test's TTFT stays at 100 ms), and then 1.
    at_long = 1500 + S.behavior.scale_down_stabilization_seconds
    assert [n for t, n, _ in run if t == at_long] == [2]
    assert run[-1][1] == 1


def test_an_idle_gap_shorter_than_the_window_is_a_trough() -> None:
    # 75 s with nothing arriving between waves: noise at a low rate, or a wave's trough.
    run = _run([*WAVES, (1515, 0), (1575, 0), (1590, 15000), (2000, 15000)])
    assert not [r for _, _, r in run if "nothing arriving" in r]


def test_idle_after_a_burst_is_the_burst_reserves_to_judge() -> None:
    # Five busy minutes are a burst: a cold start is a third of it, so whether traffic comes
    # back after the idle minutes is what the burst reserve judges, not the short window.
    run = _run([(60, 0), (75, 15000), (375, 15000), (390, 0), (1500, 0)])
    assert not [r for _, _, r in run if "nothing arriving" in r]
    assert any("burst reserve" in r for _, _, r in run)
