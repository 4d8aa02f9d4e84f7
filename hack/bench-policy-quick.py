#!/usr/bin/env python3
"""Ours' settings on chosen scenarios and seeds, in seconds to minutes (figures, no scoreboard).

The quick loop for a policy change: run it under ``PYTHONPATH`` pointing at a worktree of the
old commit and at the checkout, and compare the (attainment %, GPU-hours) of each setting. The
held-out families (flash-crowd, heavy-tail, idle-hours) are for one check at the end, not for
the loop.

Usage: .venv/bin/python hack/bench-policy-quick.py diurnal,bursty [--seeds 1,2,3]
           [--policies ours,ours-zero]
"""

from __future__ import annotations

import argparse
import time

from llm_operator.lab.sim import runner
from llm_operator.lab.sim.scenarios import scenarios
from llm_operator.lab.sim.trace import DEFAULT_AZURE


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenarios", help="comma-separated scenario names")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--policies", default="ours")
    args = ap.parse_args()
    names = args.scenarios.split(",")
    only = tuple(args.policies.split(","))
    for sc in scenarios(DEFAULT_AZURE):
        if sc.name not in names:
            continue
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.monotonic()
            _, results = runner.run_benchmark(sc.trace(seed), slo=sc.slo, only=only)
            row = {
                r.setting.label: (round(100 * r.score.attainment, 2), round(r.score.gpu_hours, 2))
                for r in results
            }
            print(sc.name, seed, row, f"{time.monotonic() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
