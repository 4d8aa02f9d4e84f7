"""The autoscaling benchmark: every policy swept over its knob on one trace, and the scoreboard.

The package face: ``runner.py`` runs the settings (worker processes, the oracle's calibration),
``statistics.py`` computes the goal figures and the frontier, ``report.py`` writes
``scoreboard.json`` and ``scoreboard.md``, ``plots.py`` draws the two PNGs. The goal figures are
computed and reported, never asserted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm_operator.lab.sim.plots import plot
from llm_operator.lab.sim.report import to_json, to_markdown
from llm_operator.lab.sim.runner import (
    BAR as BAR,
)
from llm_operator.lab.sim.runner import (
    BASELINES as BASELINES,
)
from llm_operator.lab.sim.runner import (
    OURS as OURS,
)
from llm_operator.lab.sim.runner import (
    Context,
    Result,
)
from llm_operator.lab.sim.runner import (
    Setting as Setting,
)
from llm_operator.lab.sim.runner import (
    peak_replicas as peak_replicas,
)
from llm_operator.lab.sim.runner import (
    run_benchmark as run_benchmark,
)
from llm_operator.lab.sim.runner import (
    settings as settings,
)
from llm_operator.lab.sim.statistics import (
    cheapest as cheapest,
)
from llm_operator.lab.sim.statistics import (
    dominates as dominates,
)
from llm_operator.lab.sim.statistics import (
    frontier as frontier,
)
from llm_operator.lab.sim.statistics import (
    goal as goal,
)

__all__ = ["Context", "Result", "to_markdown"]


def write(meta: dict[str, Any], ctx: Context, results: list[Result], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scoreboard.json").write_text(json.dumps(to_json(meta, ctx, results), indent=2) + "\n")
    (out / "scoreboard.md").write_text(to_markdown(meta, ctx, results))
    return [out / "scoreboard.json", out / "scoreboard.md", *plot(meta, results, out)]
