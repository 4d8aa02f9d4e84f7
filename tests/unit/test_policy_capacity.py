"""The policy on latency that does not respond to replicas (long prompts' chunked prefill)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest

from llm_operator.autoscaling.policy import Replicas, Signals, _trend_factor, decide, remember
from tests.unit.test_policy import NOW, PRICE, History, spec

S = spec(
    targets={"ttftP95Seconds": 2.0, "itlP95Seconds": 0.05, "queuePerReplica": 5},
    behavior={"scaleDownStabilizationSeconds": 0},
    maxReplicas=10,
)


def step(
    history: History, at: float, ready: int, itl: float, tps: float, queue: float = 0.0
) -> tuple[int, str, History]:
    sig = Signals(
        at=at, ttft_p95=1.0, itl_p95=itl, queue=queue, kv_usage=0.1, tokens_per_second=tps
    )
    d = decide(
        sig, Replicas(ready, ready), S, price_per_replica_hour=PRICE, now=at, history=history
    )
    return d.desired, d.reason, remember(history, d, at, tps)


def test_latency_that_stays_high_while_replicas_double_is_ignored_and_the_fleet_comes_down() -> (
    None
):
    h = History()
    # ITL 2x its target at 3 replicas: a breach, so the policy adds replicas.
    n, reason, h = step(h, NOW, 3, itl=0.1, tps=3000)
    assert n > 3 and "ITL p95 100 ms" in reason
    # At 6 replicas the same load (half per replica) and the same ITL: not driven by load.
    n, reason, h = step(h, NOW + 120, 6, itl=0.1, tps=3000)
    assert n <= 6
    assert "ignored: not driven by load (as high at 6 replicas as at 3" in reason
    # And it no longer holds the fleet up: with little load it scales down, step by step.
    n, reason, h = step(h, NOW + 240, 6, itl=0.1, tps=600)
    assert n == 5, reason
    assert "found unresponsive" in reason


def test_latency_that_falls_with_more_replicas_is_load_and_keeps_counting() -> None:
    h = History()
    n, _, h = step(h, NOW, 3, itl=0.1, tps=3000)
    assert n > 3
    _, _, h = step(h, NOW + 120, 6, itl=0.07, tps=3000)  # the 3 new replicas just turned ready
    n, reason, h = step(h, NOW + 200, 6, itl=0.07, tps=3000)  # fell 30%: it responds
    assert "ignored" not in reason
    assert n > 6  # still over target: more replicas


def test_latency_that_stays_high_while_the_load_per_replica_also_stayed_is_not_judged() -> None:
    # Replicas doubled but so did the demand: the same latency proves nothing.
    h = History()
    _, _, h = step(h, NOW, 3, itl=0.1, tps=3000)
    _, _, h = step(h, NOW + 120, 6, itl=0.1, tps=6000)
    n, reason, _ = step(h, NOW + 200, 6, itl=0.1, tps=6000)
    assert "ignored" not in reason and n > 6


def test_an_ignored_latency_that_grows_well_past_its_level_counts_again() -> None:
    h = History()
    _, _, h = step(h, NOW, 3, itl=0.1, tps=3000)
    _, _, h = step(h, NOW + 120, 6, itl=0.1, tps=3000)
    n, reason, _ = step(h, NOW + 240, 6, itl=0.2, tps=3000, queue=40)  # 4x target now
    assert "ignored" not in reason and n > 6


def test_never_pinned_at_max_replicas_under_low_load_by_unresponsive_latency() -> None:
    h = History()
    at = NOW
    ready = 3
    for _ in range(12):  # ITL stays 2x its target whatever the count; load is light
        n, reason, h = step(h, at, ready, itl=0.1, tps=900)
        ready, at = n, at + 60
    assert ready < 10, reason


def _quiet(at: float, tps: float) -> Signals:
    return Signals(at=at, ttft_p95=0.2, itl_p95=0.01, queue=0, kv_usage=0.05, tokens_per_second=tps)


# The default behaviour (300 s scale-down stabilization), a decision every 30 s.
DEFAULT = spec(targets={"ttftP95Seconds": 2.0, "itlP95Seconds": 0.05}, maxReplicas=10)


def _run(
    demand: list[float],
    start_ready: int = 8,
    seeded: int = 8,
    busy: Callable[[float, float], Signals] = _quiet,
) -> tuple[int, str]:
    """Feed one demand sample every 30 s (signals from ``busy`` while demand is on) at
    ``start_ready`` replicas, with a history seeded at ``seeded``; return the count and
    reason of the last decision."""
    h = History(recommendations=((NOW - 30, seeded),))
    ready, reason = start_ready, ""
    for i, tps in enumerate(demand):
        at = NOW + 30 * i
        d = decide(
            busy(at, tps) if tps else _quiet(at, tps),
            Replicas(ready, ready),
            DEFAULT,
            price_per_replica_hour=PRICE,
            now=at,
            history=h,
        )
        h = remember(h, d, at, tps)
        ready, reason = d.desired, d.reason
    return ready, reason


def test_between_bursts_the_fleet_keeps_what_the_bursts_needed() -> None:
    # ON/OFF: a minute of 4000 tokens/s every 6 minutes, nothing between, for 18 minutes.
    on_off = ([4000.0] * 2 + [0.0] * 10) * 3
    n, reason = _run(on_off)
    # Idle minutes between bursts are the pattern itself: the fleet keeps what they needed.
    # 8 replicas carried 4000 tokens/s with every signal far under its target, so the bursts
    # needed one fewer (the probe of one replica), not the 8 the history was seeded with.
    assert n == 7, reason
    assert (
        "burst reserve: 3 bursts in the last 30 min needed 7 (peak demand idle between bursts)"
        in reason
    )


def test_the_reserve_keeps_what_bursts_needed_not_the_count_seeded_at_a_start() -> None:
    # The operator starts (or the benchmark starts warm) at 12; bursts that the fleet carried
    # within the SLOs (latency at 70% of its target: no room for a probe) need fewer.
    def busy(at: float, tps: float) -> Signals:
        return Signals(
            at=at, ttft_p95=1.4, itl_p95=0.035, queue=0, kv_usage=0.1, tokens_per_second=tps
        )

    # Three bursts within the reserve's 30 minutes, so the seeded count is still in its memory.
    on_off = ([4000.0] * 2 + [0.0] * 10) * 3
    ready, reason = _run(on_off, start_ready=12, seeded=12, busy=busy)
    needed = re.search(r"burst reserve: \d+ bursts in the last \d+ min needed (\d+)", reason)
    assert needed is not None, reason
    assert int(needed.group(1)) < 12 and ready < 12, reason  # it held 12 before


def test_a_burst_that_has_begun_to_fall_is_not_projected() -> None:
    # Up for two minutes, then down: the three-minute slope still rises, the demand does not.
    burst = History(
        demand=tuple((NOW - 150 + 30 * i, d) for i, d in enumerate((0, 1000, 2000, 3000, 3000)))
    )
    assert _trend_factor(burst, NOW, 90.0, current=2500.0) == 1.0
    assert _trend_factor(burst, NOW, 90.0, current=3500.0) > 1.0  # still rising: projected


def test_steady_traffic_gets_no_burst_reserve() -> None:
    n, reason = _run([600.0] * 36)
    assert n < 8 and "burst reserve" not in reason


def test_the_reserve_goes_once_no_burst_came_for_its_memory() -> None:
    n, reason = _run([4000.0] * 2 + [50.0] * 60)
    assert n < 8 and "burst reserve" not in reason


def test_a_single_flash_crowd_over_a_steady_base_leaves_no_reserve() -> None:
    n, reason = _run([400.0] * 10 + [4000.0] * 2 + [400.0] * 24)
    assert n < 8 and "burst reserve" not in reason


def test_the_capacity_estimate_ignores_samples_taken_while_an_slo_was_breached() -> None:
    h = History()
    ok = Signals(at=NOW, ttft_p95=0.5, itl_p95=0.02, queue=0, kv_usage=0.2, tokens_per_second=4000)
    d = decide(ok, Replicas(4, 4), S, price_per_replica_hour=PRICE, now=NOW, history=h)
    h = remember(h, d, NOW, 4000)
    assert [v for _, v in h.proven] == [1000.0]  # 4000 tokens/s over 4 ready replicas
    # A higher rate while ITL breaches its target is not a capacity the replicas carry.
    hot = Signals(
        at=NOW + 30, ttft_p95=0.5, itl_p95=0.2, queue=0, kv_usage=0.2, tokens_per_second=8000
    )
    d = decide(hot, Replicas(4, 4), S, price_per_replica_hour=PRICE, now=NOW + 30, history=h)
    h = remember(h, d, NOW + 30, 8000)
    assert [v for _, v in h.proven] == [1000.0]


def test_the_forecast_projects_rising_demand_one_cold_start_ahead_and_never_falling() -> None:
    rising = History(demand=tuple((NOW - 150 + 30 * i, 1000.0 + 100 * i) for i in range(6)))
    # slope 100 tokens/s per 30 s; 90 s ahead: 1500 + 300 over the latest 1500
    assert _trend_factor(rising, NOW, 90.0) == pytest.approx(1.2)
    falling = History(demand=tuple((NOW - 150 + 30 * i, 2000.0 - 100 * i) for i in range(6)))
    assert _trend_factor(falling, NOW, 90.0) == 1.0
    steep = History(demand=tuple((NOW - 150 + 30 * i, 100.0 * 4**i) for i in range(6)))
    assert _trend_factor(steep, NOW, 600.0) == 2.0  # at most x2


def test_a_forecast_rise_past_the_tolerance_scales_up_before_the_load_reaches_the_band() -> None:
    # Demand has risen ~7.5% per 30 s for three minutes (x1.18 one cold start ahead): the
    # forecast itself is the signal. At 90% of its ITL target, projected to 106% (inside the
    # 10% tolerance band) the fleet still grows now, so new replicas are ready when the load is.
    rising = History(demand=tuple((NOW - 180 + 30 * i, 1000.0 * 1.075**i) for i in range(6)))
    now_tps = 1000.0 * 1.075**6
    sig = Signals(
        at=NOW, ttft_p95=1.0, itl_p95=0.045, queue=0, kv_usage=0.2, tokens_per_second=now_tps
    )
    d = decide(sig, Replicas(4, 4), S, price_per_replica_hour=PRICE, now=NOW, history=rising)
    assert d.desired > 4, d.reason
    assert "demand rising" in d.reason
    # The same load with flat demand stays within the band: no change.
    flat = History(demand=tuple((NOW - 180 + 30 * i, now_tps) for i in range(6)))
    d = decide(sig, Replicas(4, 4), S, price_per_replica_hour=PRICE, now=NOW, history=flat)
    assert d.desired == 4, d.reason


# Sizing a latency-driven scale-up by the rate per replica proven within the SLOs.
SIZED = spec(
    targets={"ttftP95Seconds": 2.0, "itlP95Seconds": 0.05, "queuePerReplica": 5},
    behavior={"scaleDownStabilizationSeconds": 0, "maxScaleUpStep": 20},
    maxReplicas=30,
)


def _breach(ready: int, tps: float, itl: float, history: History) -> tuple[int, str]:
    s = Signals(at=NOW, ttft_p95=0.5, itl_p95=itl, queue=0, kv_usage=0.2, tokens_per_second=tps)
    d = decide(
        s, Replicas(ready, ready), SIZED, price_per_replica_hour=PRICE, now=NOW, history=history
    )
    return d.desired, d.reason


def test_a_breach_at_the_proven_rate_asks_for_what_the_demand_needs_at_that_rate() -> None:
    # ITL 1.6x its target at 1,000 tokens/s per replica, the rate proven within the SLOs: latency
    # climbs steeply near a replica's limit, so 5 x 1.6 = 8 would over-ask; 5,000 tokens/s at
    # 1,000 per replica needs 5, and a breach always buys one more.
    n, reason = _breach(5, 5000.0, 0.08, History(proven=((NOW - 600, 1000.0),)))
    assert n == 6, reason
    assert "1000 per replica proven within the SLOs needs 5" in reason


def test_a_breach_well_under_the_proven_rate_follows_the_latency_ratio() -> None:
    # The same breach at half the proven rate: what a replica carries has changed (longer
    # prompts, say), so the proven rate says nothing and the ratio sizes the fleet.
    n, reason = _breach(5, 2500.0, 0.08, History(proven=((NOW - 600, 1000.0),)))
    assert n == 8, reason
    assert "proven within the SLOs needs" not in reason


def test_a_replica_just_ready_does_not_hide_the_load_the_latency_window_saw() -> None:
    # 5 replicas ran 1,000 tokens/s each 15 s ago; a 6th has just turned ready (833 each now)
    # while the latency still describes the five, and requests wait (no settling hold).
    h = History(
        proven=((NOW - 600, 1000.0),),
        latency=((NOW - 15, 5, 1000.0, (("ITL p95", 0.9),)),),
        ready=5,
    )
    s = Signals(at=NOW, ttft_p95=0.5, itl_p95=0.08, queue=2, kv_usage=0.2, tokens_per_second=5000)
    d = decide(s, Replicas(6, 6), SIZED, price_per_replica_hour=PRICE, now=NOW, history=h)
    assert d.desired == 7, d.reason


def test_rising_demand_is_sized_by_the_proven_rate_not_by_projected_latency() -> None:
    # Latency just under the tolerance at the proven 1,000 tokens/s per replica and demand
    # rising: projecting the latency (20 x 1.09 x the cold start's trend) buys more than the
    # demand needs at the proven rate over a cold start and a latency window (150 s).
    demand = tuple((NOW - 150 + 30 * i, 20000.0 - 780 * (5 - i)) for i in range(5))
    h = History(proven=((NOW - 600, 1000.0),), demand=demand)
    trend = _trend_factor(h, NOW, 90.0, 20000.0)
    reach = _trend_factor(h, NOW, 150.0, 20000.0)
    assert 1.1 < trend < reach
    n, reason = _breach(20, 20000.0, 0.0545, h)
    assert n == math.ceil(20000.0 * reach / 1000.0 - 1e-9), reason
    assert n < math.ceil(20 * 1.09 * trend), reason
    assert "demand rising" in reason


def test_a_breach_just_under_the_proven_rate_follows_the_latency_ratio() -> None:
    # 950 tokens/s per replica breaches a rate proven at 1,000: the latency window lags a rise
    # (the proven rate was read before the latency caught up), so the rate is not trusted.
    n, reason = _breach(5, 4750.0, 0.08, History(proven=((NOW - 600, 1000.0),)))
    assert n == 8, reason
