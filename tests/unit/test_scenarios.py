"""Scenario families, the prompt-dependent SLO and frontier scoring (pure)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from llm_operator.lab.sim import scenarios as sc
from llm_operator.lab.sim.bench import Score
from llm_operator.lab.sim.scoreboard import Result, Setting, dominates, frontier
from llm_operator.lab.sim.suite import Outcome, rebuild, summarize


def test_slo_parses_a_fixed_and_a_per_prompt_ttft() -> None:
    assert sc.parse_slo("ttft=0.5,itl=0.05") == sc.Slo(0.5, 0.05)
    slo = sc.parse_slo("ttft=0.5+0.2/1k,itl=0.1")
    assert slo == sc.Slo(0.5, 0.1, ttft_per_1k=0.2)
    assert slo.ttft_for(10_000) == pytest.approx(2.5)
    assert str(slo) == "ttft=0.5+0.2/1k,itl=0.1"
    for bad in ("ttft=fast", "ttft=0.5,latency=1", "ttft=0.5+x/1k", "itl=0", "ttft"):
        with pytest.raises(ValueError, match=r"ttft=|positive"):
            sc.parse_slo(bad)


def _minutes(trace: list[sc.Request]) -> list[int]:
    counts = [0] * (int(trace[-1].t // 60) + 1)
    for r in trace:
        counts[int(r.t // 60)] += 1
    return counts


def test_bursty_has_idle_minutes_and_bursts_of_about_ten_times_the_mean() -> None:
    t = sc.bursty(3)
    per_minute = _minutes(t)
    assert sum(1 for c in per_minute if c == 0) >= 10  # whole minutes with no traffic
    mean = len(t) / (t[-1].t / 60)
    assert max(per_minute) >= 5 * mean
    assert 1500 < statistics.median(r.input_tokens for r in t) < 2500
    assert statistics.median(r.output_tokens for r in t) < 64


def test_bursty_minutes_is_busy_most_of_some_twenty_minutes_and_idle_between_bursts() -> None:
    t = sc.bursty_minutes(2)
    per_minute = _minutes(t)
    assert sum(1 for c in per_minute if c == 0) >= 5  # whole minutes with no traffic
    busy = [sum(1 for c in per_minute[i : i + 20] if c) for i in range(len(per_minute) - 19)]
    assert max(busy) > 10  # more than half of some 20 minutes on: its median is the bursts'
    # A burst outlasts a cold start: some run of busy minutes is 3 or longer.
    runs, run = [], 0
    for c in per_minute:
        run = run + 1 if c else 0
        runs.append(run)
    assert max(runs) >= 3


def test_long_context_prompts_centre_near_10k_with_a_tail_past_100k() -> None:
    ins = [r.input_tokens for r in sc.long_context(3, seconds=3600)]
    assert 8_000 < statistics.median(ins) < 12_500
    assert max(ins) > 100_000


def test_flash_crowd_jumps_tenfold() -> None:
    per_minute = _minutes(sc.flash_crowd(3))
    base = statistics.median(per_minute)
    assert max(per_minute) > 8 * base


def test_waves_swing_around_their_mean_and_come_back_within_twenty_minutes() -> None:
    for seed in (1, 2, 3):
        per_minute = _minutes(sc.waves(seed))[:-1]  # the last minute is partial
        mean = statistics.mean(per_minute)
        assert 3000 < mean < 4200  # 60 requests/s
        # +-40%: the busiest minutes carry twice what the quietest do, ...
        assert max(per_minute) > 1.8 * min(per_minute)
        # ... and every 20 minutes hold both a peak and a trough.
        for start in range(0, len(per_minute) - 19, 5):
            span = per_minute[start : start + 20]
            assert max(span) > 1.25 * mean and min(span) < 0.75 * mean


def test_diurnal_night_is_a_small_fraction_of_the_peak() -> None:
    per_minute = _minutes(sc.diurnal(3))
    assert min(per_minute[:3]) < 0.2 * max(per_minute)


def test_heavy_tail_answers_are_dominated_by_long_ones() -> None:
    outs = sorted(r.output_tokens for r in sc.heavy_tail(3))
    top = outs[int(0.9 * len(outs)) :]
    assert sum(top) > 0.3 * sum(outs)  # the longest 10% carry a third of the work


def test_scenarios_are_seeded() -> None:
    for s in sc.scenarios():
        assert s.trace(5)[:50] == s.trace(5)[:50]
        assert s.trace(5)[:50] != s.trace(6)[:50]
    held_out = {s.name for s in sc.scenarios() if s.held_out}
    assert held_out == {"flash-crowd", "heavy-tail", "idle-hours"}


def score(attainment: float, gpu_hours: float) -> Score:
    return Score(100, 100, 0, attainment, 0, 0, 0, 0, gpu_hours, gpu_hours, 1.0, 0, 0)


def r(policy: str, value: float, attainment: float, gpu_hours: float) -> Result:
    return Result(Setting(policy, "k", value), score(attainment, gpu_hours))


def test_frontier_compares_at_the_best_baseline_attainment() -> None:
    results = [
        r("static", 4, 0.97, 4.0),
        r("static", 5, 0.985, 5.0),
        r("kpa", 8, 0.98, 6.0),
        r("hpa", 0.7, 0.90, 2.0),
        r("ours", 0.8, 0.986, 3.0),
        r("ours", 1.0, 0.95, 1.5),
        r("oracle", 0.9, 0.99, 2.5),
    ]
    f = frontier(results)
    assert f["a_star"] == pytest.approx(0.985)  # static's best; the oracle does not count
    assert f["ours"] == "ours k=0.8"
    assert f["ours_vs_static"] == pytest.approx(3.0 / 5.0)
    assert f["ours_vs_autoscaler"] is None  # no autoscaler reaches A*
    assert f["ours_vs_oracle"] == pytest.approx(3.0 / 2.5)
    assert f["dominated"] == []
    assert not f["oracle_beaten"]


def test_a_dominated_setting_of_ours_is_reported() -> None:
    assert dominates(score(0.99, 2.0), score(0.98, 3.0))
    assert not dominates(score(0.99, 2.0), score(0.99, 2.0))
    results = [r("kpa", 8, 0.99, 2.0), r("ours", 1.0, 0.98, 3.0), r("ours", 0.6, 0.995, 5.0)]
    f = frontier(results)
    assert [d["ours"] for d in f["dominated"]] == ["ours k=1"]
    assert f["dominated_at_a_star"] == []  # the dominated one does not reach A* = 99%
    assert f["ours_vs_autoscaler"] == pytest.approx(2.5)


def test_a_policy_cheaper_than_the_oracle_at_a_star_is_flagged() -> None:
    results = [r("static", 3, 0.99, 3.0), r("oracle", 1, 0.995, 4.0)]
    assert frontier(results)["oracle_beaten"]


def test_the_suite_summary_averages_seeds_and_reads_its_goals(tmp_path: Path) -> None:
    bursty = next(s for s in sc.scenarios() if s.name == "bursty")
    base = [r("static", 10, 0.995, 7.0), r("kpa", 8, 0.6, 5.0), r("oracle", 1, 0.99, 2.0)]
    runs = [
        [*base, r("ours", 1.0, 0.991, 7.7)],
        [*base, r("ours", 1.0, 0.992, 6.3)],
    ]
    outcomes = [
        Outcome(bursty, seed, 1000, frontier(res), tmp_path / f"bursty-seed{seed}")
        for seed, res in enumerate(runs, 1)
    ]
    (row,) = summarize(outcomes)
    assert row["ours_vs_static"] == pytest.approx(1.0)  # mean of 1.1 and 0.9
    assert row["ours_vs_static_text"] == "1.00x (0.90-1.10)"
    # No autoscaler reaches A* and ours does: that goal is exceeded, not missed.
    assert row["goals_met"]["vs_autoscaler"] and row["goals_met"]["vs_static"]
    assert not row["goals_met"]["vs_oracle"]
    # A run's summary can be rebuilt from its scoreboards.
    for o, res in zip(outcomes, runs, strict=True):
        o.directory.mkdir()
        data = {"trace": "bursty", "seed": o.seed, "requests": 1000, "frontier": frontier(res)}
        (o.directory / "scoreboard.json").write_text(json.dumps(data))
    assert summarize(rebuild(tmp_path, sc.scenarios())) == [row]
