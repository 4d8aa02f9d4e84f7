#!/usr/bin/env python3
"""Re-run some policies of a committed suite run and merge them into its scoreboards.

A change to ours' policy changes ours' rows only: the baselines, the static counts and the
oracle run code the change does not touch, on the same seeded traces. This re-runs the chosen
policies' settings (``ours`` and ``ours-zero`` by default) for each scenario and seed, keeps
every other row of the committed ``scoreboard.json``, and writes the scoreboard (JSON,
markdown, plots) and the summary again, as ``llm-lab bench suite`` would. It checks what it
keeps instead of trusting it: the oracle's calibration and the replica bounds must come out
as committed, and where the directory holds the replicas-vs-demand plot, each kept policy's
representative setting is simulated again for its timeline and must reproduce its committed
attainment and GPU-hours exactly. Any mismatch stops it: run the whole suite then.

Usage: .venv/bin/python hack/bench-suite-rerun.py waves,diurnal --seeds 1,2,3
           [--policies ours,ours-zero] [--dir docs/bench/suite]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from llm_operator.lab.sim import runner, scoreboard, suite
from llm_operator.lab.sim.bench import Score
from llm_operator.lab.sim.scenarios import scenarios
from llm_operator.lab.sim.statistics import best
from llm_operator.lab.sim.trace import DEFAULT_AZURE

META = ("trace", "scale", "seed", "requests", "gpu", "max_replicas_factor", "description")
SCORE = [f for f in Score.__dataclass_fields__ if f != "timeline"]


def _kept(rows: list[dict[str, object]], policies: set[str]) -> list[runner.Result]:
    return [
        runner.Result(
            runner.Setting(str(r["policy"]), str(r["knob"]), r["value"]),  # type: ignore[arg-type]
            Score(**{f: r[f] for f in SCORE}),  # type: ignore[arg-type]
        )
        for r in rows
        if r["policy"] not in policies
    ]


def rerun(directory: Path, policies: set[str]) -> None:
    data = json.loads((directory / "scoreboard.json").read_text())
    # Boards written before the factor was recorded ran at the default, 2x the peak need (the
    # maxReplicas check below holds it to what they ran at).
    data.setdefault("max_replicas_factor", 2.0)
    sc = {s.name: s for s in scenarios(DEFAULT_AZURE)}[data["trace"]]
    trace = sc.trace(int(data["seed"]))
    if data["scale"] != 1 or len(trace) != data["requests"]:
        raise SystemExit(f"{directory}: the trace is not the committed one")
    t0 = time.monotonic()
    ctx, fresh = runner.run_benchmark(
        trace,
        gpu=data["gpu"],
        slo=sc.slo,
        cold_start=data["cold_start_seconds"],
        max_factor=data["max_replicas_factor"],
        only=tuple(policies),
    )
    committed = (data["oracle_work_per_second_per_replica"], data["max_replicas"])
    if not math.isclose(ctx.rate, committed[0]) or ctx.max_replicas != committed[1]:
        raise SystemExit(f"{directory}: calibration {ctx.rate, ctx.max_replicas} != {committed}")
    kept = _kept(data["results"], policies)
    if (directory / "replicas-vs-demand.png").exists():
        for policy in dict.fromkeys(r.setting.policy for r in kept):
            r = best(kept, policy)
            again = runner.run_setting(r.setting, ctx)
            if (again.attainment, again.gpu_hours) != (r.score.attainment, r.score.gpu_hours):
                raise SystemExit(f"{directory}: {r.setting.label} no longer reproduces")
            r.score = again
    order = {(r["policy"], r["knob"], r["value"]): i for i, r in enumerate(data["results"])}
    results = sorted(
        fresh + kept,
        key=lambda r: order.get((r.setting.policy, r.setting.knob, r.setting.value), len(order)),
    )
    committed_files = set(directory.iterdir())
    for path in scoreboard.write({k: data[k] for k in META}, ctx, results, directory):
        if path not in committed_files and path.suffix == ".png":
            path.unlink()  # the suite commits only the plots it had (and kept rows lack timelines)
    print(directory.name, f"{time.monotonic() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenarios", help="comma-separated scenario names")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--policies", default=",".join(runner.OURS))
    ap.add_argument("--dir", type=Path, default=Path("docs/bench/suite"))
    args = ap.parse_args()
    policies = set(args.policies.split(","))
    for name in args.scenarios.split(","):
        for seed in args.seeds.split(","):
            directory = args.dir / f"{name}-seed{seed}"
            if directory.exists():
                rerun(directory, policies)
    outcomes = suite.rebuild(args.dir, scenarios(DEFAULT_AZURE))
    boards = [json.loads((o.directory / "scoreboard.json").read_text()) for o in outcomes]
    run = next(b for b in boards if "max_replicas_factor" in b)  # older boards may lack it
    suite.write_summary(
        outcomes,
        args.dir,
        cold_start=run["cold_start_seconds"],
        gpu=run["gpu"],
        max_factor=run["max_replicas_factor"],
    )


if __name__ == "__main__":
    main()
