"""The scoreboard's statistics (pure): the cheapest setting at a bar, the goal figures, the
attainment frontier and dominated settings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llm_operator.lab.sim.bench import (
    Score,
)
from llm_operator.lab.sim.runner import BAR, BASELINES, OURS, Result

AUTOSCALERS = tuple(b for b in BASELINES if b != "static")


def _ratio(a: Result | None, b: Result | None) -> float | None:
    """GPU-hours of ``a`` over ``b``, when both reached the bar."""
    return a.score.gpu_hours / b.score.gpu_hours if a and b else None


def cheapest(results: list[Result], policies: Iterable[str], bar: float = BAR) -> Result | None:
    """The setting with the fewest GPU-hours among ``policies`` that reaches ``bar``."""
    names = set(policies)
    ok = [r for r in results if r.setting.policy in names and r.score.attainment >= bar]
    return min(ok, key=lambda r: r.score.gpu_hours, default=None)


def best(results: list[Result], policy: str) -> Result:
    """A policy's representative setting: the cheapest that reaches the bar, else the one with
    the highest attainment."""
    mine = [r for r in results if r.setting.policy == policy]
    return cheapest(mine, [policy]) or max(mine, key=lambda r: r.score.attainment)


def goal(results: list[Result], bar: float = BAR) -> dict[str, Any]:
    ours = cheapest(results, OURS, bar)
    base = cheapest(results, BASELINES, bar)
    scaler = cheapest(results, AUTOSCALERS, bar)
    oracle = cheapest(results, ["oracle"], bar)

    return {
        "bar": bar,
        "ours": ours.setting.label if ours else None,
        "best_baseline": base.setting.label if base else None,
        "oracle": oracle.setting.label if oracle else None,
        "best_autoscaler": scaler.setting.label if scaler else None,
        "ours_vs_best_baseline": _ratio(ours, base),
        "ours_vs_best_autoscaler": _ratio(ours, scaler),
        "ours_vs_oracle": _ratio(ours, oracle),
        "target_vs_baseline": 0.75,
        "target_vs_oracle": 1.2,
    }


EPS = 1e-9


def dominates(a: Score, b: Score) -> bool:
    """``a`` is no worse than ``b`` on attainment and GPU-hours, and better on one."""
    return (
        a.attainment >= b.attainment
        and a.gpu_hours <= b.gpu_hours
        and (a.attainment > b.attainment or a.gpu_hours < b.gpu_hours)
    )


def frontier(results: list[Result], cap: float = BAR) -> dict[str, Any]:
    """Scoring along the attainment-cost frontier (the oracle excluded from A*).

    A* is the best attainment any baseline setting reaches (static counts included), capped at
    ``cap``; each policy's cost is its cheapest setting reaching A*; ours is compared with the
    cheapest autoscaling baseline, the cheapest static count and the oracle at A*, and every
    setting of ours that a baseline setting dominates is listed.
    """
    base = [r for r in results if r.setting.policy in BASELINES]
    a_star = min(cap, max((r.score.attainment for r in base), default=0.0))

    def cheapest_at(policies: Iterable[str]) -> Result | None:
        return cheapest(results, policies, a_star - EPS)

    ours, scaler = cheapest_at(OURS), cheapest_at(AUTOSCALERS)
    static, oracle = cheapest_at(["static"]), cheapest_at(["oracle"])

    dominated = [
        (r.setting.label, o.setting.label)
        for r in results
        if r.setting.policy in OURS
        for o in base
        if dominates(o.score, r.score)
    ]
    dominated_at_a_star = sorted(
        {d for d, _ in dominated}
        & {
            r.setting.label
            for r in results
            if r.setting.policy in OURS and r.score.attainment >= a_star - EPS
        }
    )
    return {
        "a_star": a_star,
        "ours": ours.setting.label if ours else None,
        "ours_gpu_hours": ours.score.gpu_hours if ours else None,
        "cheapest_autoscaler": scaler.setting.label if scaler else None,
        "cheapest_static": static.setting.label if static else None,
        "oracle": oracle.setting.label if oracle else None,
        "ours_vs_autoscaler": _ratio(ours, scaler),
        "ours_vs_static": _ratio(ours, static),
        "ours_vs_oracle": _ratio(ours, oracle),
        "oracle_reaches_a_star": oracle is not None,
        "oracle_beaten": bool(
            oracle
            and any(
                r.score.gpu_hours < oracle.score.gpu_hours
                for r in results
                if r.setting.policy != "oracle" and r.score.attainment >= a_star - EPS
            )
        ),
        "dominated": [{"ours": d, "by": by} for d, by in dominated],
        "dominated_at_a_star": dominated_at_a_star,
        "goals": {
            "vs_autoscaler": 0.75,
            "vs_static": 1.0,
            "vs_oracle": 1.2,
        },
    }
