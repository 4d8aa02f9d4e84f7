#!/usr/bin/env python3
"""Ours' settings on chosen scenarios and seeds, in seconds to minutes (figures, no scoreboard).

The quick loop for a policy change: run it under ``PYTHONPATH`` pointing at a worktree of the
old commit and at the checkout, and compare the (attainment %, GPU-hours) of each setting. The
held-out families (flash-crowd, heavy-tail, idle-hours) are for one check at the end, not for
the loop.

Besides the suite's scenarios it runs ON/OFF traffic of other shapes than the suite's
``bursty``, for checking the burst reserve on shapes it was not built on (SLO TTFT 0.5 s, ITL
50 ms; docs/development-notes.md has the runs):

- long-bursts: bursts of 2-6 minutes, gaps of at least 1 minute, exponential around 5 (since
  2026-12-07 also in the suite, as ``bursty-minutes``);
- base10: the suite's bursts over a base of 10% of the burst rate;
- short-gaps: bursts of 30-120 s, gaps of at least 30 s, exponential around 200 s;
- long-idle: bursts of 1-4 minutes after 10-25 idle minutes, over 80 minutes.

Usage: .venv/bin/python hack/bench-policy-quick.py diurnal,bursty,long-idle [--seeds 1,2,3]
           [--policies ours,ours-zero,static]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from llm_operator.lab.sim import runner
from llm_operator.lab.sim.scenarios import Slo, on_off, scenarios
from llm_operator.lab.sim.trace import DEFAULT_AZURE, Request

VARIANTS: dict[str, dict[str, Any]] = {
    "long-bursts": {"on": (120, 360), "off": (60, 300), "expo": True},
    "base10": {"base": 0.1},
    "short-gaps": {"on": (30, 120), "off": (30, 200), "expo": True},
    "long-idle": {"on": (60, 240), "off": (600, 1500), "seconds": 4800.0},
}


def _families() -> dict[str, tuple[Callable[[int], list[Request]], Any]]:
    """name -> (trace of a seed, SLO), the suite's scenarios and the variants above."""
    out: dict[str, tuple[Callable[[int], list[Request]], Any]] = {
        sc.name: (sc.trace, sc.slo) for sc in scenarios(DEFAULT_AZURE)
    }
    for name, kw in VARIANTS.items():
        out[name] = (lambda seed, kw=kw: on_off(seed, **kw), Slo(0.5, 0.05))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenarios", help="comma-separated scenario or variant names")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--policies", default="ours")
    args = ap.parse_args()
    only = tuple(args.policies.split(","))
    families = _families()
    for name in args.scenarios.split(","):
        trace, slo = families[name]
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.monotonic()
            _, results = runner.run_benchmark(trace(seed), slo=slo, only=only)
            row = {
                r.setting.label: (round(100 * r.score.attainment, 2), round(r.score.gpu_hours, 2))
                for r in results
            }
            print(name, seed, row, f"{time.monotonic() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
