"""The scoreboard's plots: attainment against GPU-hours per sweep, replicas against demand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_operator.lab.sim.runner import BAR, Result
from llm_operator.lab.sim.statistics import best

COLORS = {
    "ours": "tab:red",
    "oracle": "black",
    "hpa": "tab:blue",
    "keda": "tab:orange",
    "keda-waiting": "gold",
    "kpa": "tab:green",
    "apa": "tab:purple",
    "wva": "tab:brown",
    "static": "tab:gray",
    "ours-zero": "salmon",
    "kpa-zero": "lightgreen",
    "keda-zero": "navajowhite",
}


def plot(meta: dict[str, Any], results: list[Result], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(8, 5))
    for policy, color in COLORS.items():
        mine = sorted(
            (r for r in results if r.setting.policy == policy), key=lambda r: r.score.gpu_hours
        )
        if not mine:
            continue
        ax.plot(
            [r.score.gpu_hours for r in mine],
            [100 * r.score.attainment for r in mine],
            "o-",
            color=color,
            label=policy,
            linewidth=2.5 if policy.startswith("ours") else 1.2,
        )
    ax.axhline(100 * BAR, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("GPU-hours")
    ax.set_ylabel("SLO attainment (%)")
    ax.set_ylim(max(0.0, ax.get_ylim()[0]), 100.5)
    ax.set_title(
        f"Attainment against GPU-hours along each sweep ({meta['trace']} x{meta['scale']})"
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    paths.append(out / "attainment-vs-gpu-hours.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    policies = [p for p in COLORS if any(r.setting.policy == p for r in results)]
    fig, axes = plt.subplots(
        len(policies), 1, figsize=(10, 1.4 * len(policies) + 1), sharex=True, squeeze=False
    )
    for ax, policy in zip(axes[:, 0], policies, strict=True):
        r = best(results, policy)
        tl = r.score.timeline
        minutes = [p[0] / 60 for p in tl]
        demand_ax = ax.twinx()
        demand_ax.fill_between(minutes, [p[3] for p in tl], color="lightblue", alpha=0.5)
        demand_ax.set_yticks([])
        ax.set_zorder(demand_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.step(minutes, [p[1] for p in tl], where="post", color=COLORS[policy], linewidth=1.6)
        ax.set_ylabel("replicas", fontsize=8)
        ax.set_title(
            f"{r.setting.label}: {r.score.attainment:.2%} attainment, "
            f"{r.score.gpu_hours:.2f} GPU-h",
            fontsize=9,
            loc="left",
        )
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("minutes (shaded: demand, requests/s over 60 s)")
    fig.suptitle(
        f"Replicas asked for against demand ({meta['trace']} x{meta['scale']}; each policy's "
        "representative setting)",
        fontsize=10,
    )
    paths.append(out / "replicas-vs-demand.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
