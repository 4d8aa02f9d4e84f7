"""The scoreboard's report: scoreboard.json and scoreboard.md."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from llm_operator.lab.sim.bench import (
    Score,
)
from llm_operator.lab.sim.runner import BAR, Context, Result
from llm_operator.lab.sim.statistics import best, frontier, goal


def _score_dict(score: Score) -> dict[str, Any]:
    d = dataclasses.asdict(score)
    d.pop("timeline")
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def to_json(meta: dict[str, Any], ctx: Context, results: list[Result]) -> dict[str, Any]:
    return {
        **meta,
        "slo": {
            "ttft_seconds": ctx.slo.ttft_base,
            "ttft_seconds_per_1k_prompt_tokens": ctx.slo.ttft_per_1k,
            "itl_seconds": ctx.slo.itl,
        },
        "cold_start_seconds": ctx.cold_start,
        "price_per_replica_hour": ctx.price,
        "oracle_work_per_second_per_replica": ctx.rate,
        "max_replicas": ctx.max_replicas,
        "initial_replicas": ctx.initial,
        "results": [
            {"policy": r.setting.policy, "knob": r.setting.knob, "value": r.setting.value}
            | _score_dict(r.score)
            for r in results
        ],
        "goal": goal(results),
        "frontier": frontier(results),
    }


def _ms(v: float) -> str:
    return "-" if math.isnan(v) else f"{v * 1000:.0f}"


def to_markdown(meta: dict[str, Any], ctx: Context, results: list[Result]) -> str:
    lines = [
        f"Trace `{meta['trace']}` x{meta['scale']}, {meta['requests']:,} requests, "
        f"{meta['gpu']} at ${ctx.price:.2f}/h, SLO {ctx.slo.describe()}, "
        f"cold start {ctx.cold_start:g} s; oracle capacity "
        f"{ctx.rate:.2f} replica-seconds of work per second per replica; every autoscaler "
        f"starts at {ctx.initial} replicas "
        f"(the first 2 minutes' need) with maxReplicas {ctx.max_replicas}.",
        "",
        "| policy | setting | SLO attainment | TTFT p50 / p99 (ms) | ITL p50 / p99 (ms) "
        "| GPU-hours | $ | $/M output tokens | scale events | reversals |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.score
        star = " *" if r is best(results, r.setting.policy) else ""
        lines.append(
            f"| {r.setting.policy}{star} | {r.setting.knob} = {r.setting.value:g} "
            f"| {s.attainment:.2%} | {_ms(s.ttft_p50)} / {_ms(s.ttft_p99)} "
            f"| {_ms(s.itl_p50)} / {_ms(s.itl_p99)} | {s.gpu_hours:.2f} | {s.dollars:.2f} "
            f"| {s.dollars_per_million_tokens:.2f} | {s.scale_events} | {s.reversals} |"
        )
    g = goal(results)
    lines += [
        "",
        "`*` marks each policy's cheapest setting at >= 99% (else its best attainment).",
        "",
    ]

    def fmt(v: float | None, target: float) -> str:
        if v is None:
            return "n/a (no setting reaches the bar on one side)"
        return f"{v:.2f}x (goal <= {target:g}x: {'met' if v <= target else 'missed'})"

    f = frontier(results)
    lines += [
        f"Frontier scoring: A* = {f['a_star']:.2%} (the best baseline attainment, static "
        f"included, capped at {BAR:.0%}).",
        "",
        f"- Ours at A*: {f['ours'] or 'no setting reaches it'}",
        f"- Ours / cheapest autoscaler at A* ({f['cheapest_autoscaler'] or 'none'}): "
        f"{fmt(f['ours_vs_autoscaler'], 0.75)}",
        f"- Ours / cheapest static count at A* ({f['cheapest_static'] or 'none'}): "
        f"{fmt(f['ours_vs_static'], 1.0)}",
        f"- Ours / oracle at A* ({f['oracle'] or 'none'}): {fmt(f['ours_vs_oracle'], 1.2)}",
        "- Settings of ours dominated by a baseline setting: "
        + (", ".join(f"{d['ours']} (by {d['by']})" for d in f["dominated"]) or "none"),
        "",
        "The 99%-or-nothing view:",
        "",
        f"- Ours at >= {BAR:.0%}: {g['ours'] or 'no setting reaches it'}",
        f"- Cheapest baseline at >= {BAR:.0%}: {g['best_baseline'] or 'none reaches it'}",
        f"- Cheapest oracle at >= {BAR:.0%}: {g['oracle'] or 'none reaches it'}",
        f"- Cheapest autoscaling baseline (static excluded) at >= {BAR:.0%}: "
        f"{g['best_autoscaler'] or 'none reaches it'}",
        f"- Ours / best baseline GPU-hours: {fmt(g['ours_vs_best_baseline'], 0.75)}",
        f"- Ours / best autoscaling baseline GPU-hours: {fmt(g['ours_vs_best_autoscaler'], 0.75)}",
        f"- Ours / oracle GPU-hours: {fmt(g['ours_vs_oracle'], 1.2)}",
    ]
    return "\n".join(lines) + "\n"
