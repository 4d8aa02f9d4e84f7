"""``llm-lab bench suite``: every policy and sweep over every scenario, and one summary.

Each scenario (``lab/sim/scenarios.py``) and arrival seed gets its own scoreboard directory (JSON,
markdown, plots, as ``bench autoscaling`` writes); ``summary.md``/``summary.json`` hold one row
per scenario with the frontier figures averaged over seeds and their spread (min-max).
Goals are reported, never asserted: this is a benchmark, not a test.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_operator.lab.sim import scoreboard
from llm_operator.lab.sim.bench import Score
from llm_operator.lab.sim.scenarios import Scenario


@dataclass
class Outcome:
    scenario: Scenario
    seed: int
    requests: int
    frontier: dict[str, Any]
    directory: Path


def run_suite(
    chosen: list[Scenario],
    out: Path,
    *,
    seeds: Iterable[int] = (1,),
    gpu: str = "h100",
    cold_start: float = 90.0,
    max_factor: float = 2.0,
    workers: int | None = None,
    on_scenario: Callable[[str], None] = lambda label: None,
    on_start: Callable[[int], None] = lambda n: None,
    on_done: Callable[[scoreboard.Setting, Score], None] = lambda s, score: None,
) -> list[Outcome]:
    outcomes = []
    for sc in chosen:
        for seed in seeds:
            label = f"{sc.name}-seed{seed}"
            on_scenario(label)
            trace = sc.trace(seed)
            ctx, results = scoreboard.run_benchmark(
                trace,
                gpu=gpu,
                slo=sc.slo,
                cold_start=cold_start,
                max_factor=max_factor,
                workers=workers,
                on_start=on_start,
                on_done=on_done,
            )
            meta = {
                "trace": sc.name,
                "scale": 1,
                "seed": seed,
                "requests": len(trace),
                "gpu": gpu,
                "max_replicas_factor": max_factor,
                "description": sc.description,
            }
            directory = out / label
            scoreboard.write(meta, ctx, results, directory)
            outcomes.append(Outcome(sc, seed, len(trace), scoreboard.frontier(results), directory))
    write_summary(outcomes, out, cold_start=cold_start, gpu=gpu, max_factor=max_factor)
    return outcomes


def _spread(values: list[float | None]) -> tuple[float | None, str]:
    got = [v for v in values if v is not None]
    if not got:
        return None, "n/a"
    mean = statistics.fmean(got)
    text = f"{mean:.2f}x"
    if len(got) > 1:
        text += f" ({min(got):.2f}-{max(got):.2f})"
    if len(got) < len(values):
        text += f" [{len(values) - len(got)} seed(s) n/a]"
    return mean, text


def summarize(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    rows = []
    for name in dict.fromkeys(o.scenario.name for o in outcomes):
        mine = [o for o in outcomes if o.scenario.name == name]
        f = [o.frontier for o in mine]
        scaler, scaler_text = _spread([x["ours_vs_autoscaler"] for x in f])
        static, static_text = _spread([x["ours_vs_static"] for x in f])
        oracle, oracle_text = _spread([x["ours_vs_oracle"] for x in f])
        reaches = sum(1 for x in f if x["ours"] is not None)
        # No autoscaling baseline reaching A* while ours does is the goal exceeded.
        no_autoscaler_reaches = reaches == len(f) and not any(x["cheapest_autoscaler"] for x in f)
        dominated = sorted({d for x in f for d in x["dominated_at_a_star"]})
        rows.append(
            {
                "scenario": name,
                "held_out": mine[0].scenario.held_out,
                "slo": mine[0].scenario.slo.describe(),
                "seeds": [o.seed for o in mine],
                "requests": statistics.fmean(o.requests for o in mine),
                "a_star": statistics.fmean(x["a_star"] for x in f),
                "ours_reaches_a_star": f"{reaches}/{len(f)}",
                "ours_vs_autoscaler": scaler,
                "ours_vs_autoscaler_text": scaler_text,
                "ours_vs_static": static,
                "ours_vs_static_text": static_text,
                "ours_vs_oracle": oracle,
                "ours_vs_oracle_text": oracle_text,
                "dominated_at_a_star": dominated,
                "oracle_beaten": any(x["oracle_beaten"] for x in f),
                "goals_met": {
                    "reaches_a_star": reaches == len(f),
                    "vs_autoscaler": (scaler is not None and scaler <= 0.75)
                    or no_autoscaler_reaches,
                    "vs_static": static is not None and static <= 1.0,
                    "vs_oracle": oracle is not None and oracle <= 1.2,
                    "not_dominated": not dominated,
                },
            }
        )
    return rows


def to_markdown(
    rows: list[dict[str, Any]], *, cold_start: float, gpu: str, max_factor: float
) -> str:
    lines = [
        f"Scenario suite, {gpu}, cold start {cold_start:g} s, maxReplicas {max_factor:g}x the "
        "peak need. A* = the best attainment a "
        "baseline setting reaches (static included, oracle excluded), capped at 99%; each "
        "policy's cost is its cheapest setting reaching A*. Ratios are ours' GPU-hours over "
        "the other's at A*, mean over seeds (min-max). Goals: <= 0.75x the cheapest "
        "autoscaler, <= 1.0x the cheapest static count, <= 1.2x the oracle, no setting of "
        "ours at A* dominated by a baseline setting. (held out) = kept aside from tuning.",
        "",
        "| scenario | SLO | requests | A* | ours reaches A* | vs autoscaler | vs static "
        "| vs oracle | dominated at A* | goals met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = [k for k, v in r["goals_met"].items() if v]
        missed = [k for k, v in r["goals_met"].items() if not v]
        goals = f"{len(met)}/{len(met) + len(missed)}" + (
            f" (missed: {', '.join(missed)})" if missed else ""
        )
        name = r["scenario"] + (" (held out)" if r["held_out"] else "")
        lines.append(
            f"| {name} | {r['slo']} | {r['requests']:,.0f} | {r['a_star']:.2%} "
            f"| {r['ours_reaches_a_star']} | {r['ours_vs_autoscaler_text']} "
            f"| {r['ours_vs_static_text']} | {r['ours_vs_oracle_text']} "
            f"| {', '.join(r['dominated_at_a_star']) or 'none'} | {goals} |"
        )
    beaten = [r["scenario"] for r in rows if r["oracle_beaten"]]
    lines += [
        "",
        "Oracle as a bound: "
        + (
            f"**a policy beat the oracle at A* on {', '.join(beaten)}** (it is not a bound there)"
            if beaten
            else "no policy beat it at A* on any scenario"
        ),
    ]
    return "\n".join(lines) + "\n"


def rebuild(out: Path, known: list[Scenario]) -> list[Outcome]:
    """The outcomes of an earlier run, read back from its scoreboards (to re-render the
    summary without simulating again)."""
    by_name = {s.name: s for s in known}
    outcomes = []
    for board in sorted(out.glob("*/scoreboard.json")):
        data = json.loads(board.read_text())
        outcomes.append(
            Outcome(
                by_name[data["trace"]],
                int(data["seed"]),
                int(data["requests"]),
                data["frontier"],
                board.parent,
            )
        )
    order = {s.name: i for i, s in enumerate(known)}
    outcomes.sort(key=lambda o: (order[o.scenario.name], o.seed))
    return outcomes


def write_summary(
    outcomes: list[Outcome], out: Path, *, cold_start: float, gpu: str, max_factor: float
) -> None:
    rows = summarize(outcomes)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "summary.md").write_text(
        to_markdown(rows, cold_start=cold_start, gpu=gpu, max_factor=max_factor)
    )
