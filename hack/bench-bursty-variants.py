#!/usr/bin/env python3
"""ON/OFF traffic of other shapes than the suite's ``bursty``, for checking the burst reserve on
shapes it was not built on (figures, no scoreboard; docs/development-notes.md has the runs).

- long-bursts: bursts of 2-6 minutes, gaps of at least 1 minute, exponential around 5 (since
  2026-12-07 also in the suite, as ``bursty-minutes``);
- base10: the suite's bursts over a base of 10% of the burst rate;
- short-gaps: bursts of 30-120 s, gaps of at least 30 s, exponential around 200 s;
- long-idle: bursts of 1-4 minutes after 10-25 idle minutes, over 80 minutes.

Usage: .venv/bin/python hack/bench-bursty-variants.py long-bursts,long-idle [--seeds 1,2,3]
           [--policies ours,static,keda,oracle]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from llm_operator.lab.sim import runner
from llm_operator.lab.sim.scenarios import Slo, on_off

VARIANTS: dict[str, dict[str, Any]] = {
    "long-bursts": {"on": (120, 360), "off": (60, 300), "expo": True},
    "base10": {"base": 0.1},
    "short-gaps": {"on": (30, 120), "off": (30, 200), "expo": True},
    "long-idle": {"on": (60, 240), "off": (600, 1500), "seconds": 4800.0},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--policies", default="ours,static")
    args = ap.parse_args()
    only = tuple(args.policies.split(","))
    for name in args.variants.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.monotonic()
            trace = on_off(seed, **VARIANTS[name])
            _, results = runner.run_benchmark(trace, slo=Slo(0.5, 0.05), only=only)
            print(name, seed, f"{time.monotonic() - t0:.0f} s", flush=True)
            for r in results:
                s = r.score
                print(f"  {r.setting.label}: {100 * s.attainment:.2f}% {s.gpu_hours:.2f} GPU-h")


if __name__ == "__main__":
    main()
