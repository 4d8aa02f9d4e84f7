"""The benchmark's sweeps and scoreboard files, on a small synthetic trace."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from llm_operator.lab.cli import main
from llm_operator.lab.sim import scoreboard
from llm_operator.lab.sim.bench import Score
from llm_operator.lab.sim.model import model_for
from llm_operator.lab.sim.scoreboard import Result, Setting, cheapest, goal
from llm_operator.lab.sim.trace import synthetic

H100 = dataclasses.replace(model_for("h100"), max_num_seqs=8)


def score(attainment: float, gpu_hours: float) -> Score:
    return Score(
        requests=100,
        finished=100,
        dropped=0,
        attainment=attainment,
        ttft_p50=0.05,
        ttft_p99=0.4,
        itl_p50=0.01,
        itl_p99=0.03,
        gpu_hours=gpu_hours,
        dollars=gpu_hours * 4.25,
        dollars_per_million_tokens=1.0,
        scale_events=3,
        reversals=0,
    )


RESULTS = [
    Result(Setting("ours", "target/SLO", 0.5), score(0.999, 3.0)),
    Result(Setting("ours", "target/SLO", 1.0), score(0.992, 2.4)),
    Result(Setting("oracle", "headroom", 0.8), score(0.995, 2.2)),
    Result(Setting("kpa", "concurrency", 8), score(1.0, 9.0)),
    Result(Setting("kpa", "concurrency", 32), score(0.97, 4.0)),  # cheaper, misses the bar
    Result(Setting("static", "replicas", 3), score(0.999, 3.4)),
]


def test_cheapest_setting_must_reach_the_bar() -> None:
    best = cheapest(RESULTS, scoreboard.BASELINES)
    assert best is not None and best.setting == Setting("static", "replicas", 3)
    assert cheapest(RESULTS, ["kpa"], bar=0.999) == RESULTS[3]
    assert cheapest(RESULTS, ["kpa"], bar=1.01) is None


def test_goal_figures_are_ratios_of_gpu_hours() -> None:
    g = goal(RESULTS)
    assert g["ours"] == "ours target/SLO=1"
    assert g["ours_vs_best_baseline"] == pytest.approx(2.4 / 3.4)
    assert g["ours_vs_oracle"] == pytest.approx(2.4 / 2.2)
    # Static is a bound, not an autoscaler: the cheapest autoscaler at the bar is KPA at 9.0.
    assert g["best_autoscaler"] == "kpa concurrency=8"
    assert g["ours_vs_best_autoscaler"] == pytest.approx(2.4 / 9.0)


def test_benchmark_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    trace = synthetic(seconds=600, base_rate=3.0, seed=11)
    done: list[str] = []
    ctx, results = scoreboard.run_benchmark(
        trace,
        only={"ours", "oracle", "static"},
        workers=1,
        model=H100,
        rate=0.3,  # work-seconds per second per replica: a peak of several replicas
        on_done=lambda s, sc: done.append(s.label),
    )
    sweeps = [
        x
        for x in scoreboard.settings(scoreboard.peak_replicas(ctx))
        if x.policy in {"ours", "oracle", "static"}
    ]
    assert [r.setting for r in results] == sweeps  # the three sweeps, each setting once
    assert len(done) == len(sweeps)
    statics = sum(1 for x in sweeps if x.policy == "static")
    meta = {"trace": "synthetic", "scale": 1, "requests": len(trace), "gpu": "h100"}
    paths = scoreboard.write(meta, ctx, results, tmp_path)
    data = json.loads((tmp_path / "scoreboard.json").read_text())
    assert {r["policy"] for r in data["results"]} == {"ours", "oracle", "static"}
    for r in data["results"]:
        assert r["finished"] + r["dropped"] == len(trace)
        assert 0 <= r["attainment"] <= 1
    assert set(data["goal"]) >= {"ours_vs_best_baseline", "ours_vs_oracle"}
    md = (tmp_path / "scoreboard.md").read_text()
    assert md.count("\n| ours") == 4 and md.count("\n| static") == statics
    for p in paths:
        assert p.stat().st_size > 0
    assert (tmp_path / "replicas-vs-demand.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slo", "ttft=fast"], "expected ttft=SECONDS,itl=SECONDS"),
        (["--policy", "magic"], "unknown policy magic"),
        (["--trace", "/nonexistent/trace.csv"], "no trace at /nonexistent/trace.csv"),
    ],
)
def test_cli_rejects_bad_input_clearly(args: list[str], message: str) -> None:
    r = CliRunner().invoke(main, ["bench", "autoscaling", "--trace", "synthetic", *args])
    assert r.exit_code == 2
    assert message in r.output


def test_max_replicas_is_the_chosen_multiple_of_the_peak_need() -> None:
    trace = synthetic(seconds=300, base_rate=3.0, seed=11)
    runs = {
        f: scoreboard.run_benchmark(
            trace, only={"static"}, workers=1, model=H100, rate=0.1, max_factor=f
        )[0]
        for f in (2.0, 1.25)
    }
    peak = scoreboard.peak_replicas(runs[2.0])
    assert peak >= 4  # large enough for the two caps to differ
    assert runs[2.0].max_replicas == 2 * peak
    assert runs[1.25].max_replicas == max(4, math.ceil(1.25 * peak))
