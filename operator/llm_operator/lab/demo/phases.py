"""The demo's narrated phases: installing the chart, and autoscaling one LLMDeployment under a
replayed trace (each step printed as the kubectl or helm command a user would type)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from llm_operator.config import OperatorConfig
from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.backing import PodBacking
from llm_operator.lab.replay import ReplayResult, _p95, plot, replay
from llm_operator.lab.sim import trace
from llm_operator.lab.views import _json

SAMPLES = lc.REPO_ROOT / "manifests" / "samples"


DEMO_MAX_NUM_SEQS = 8  # engine --max-num-seqs: 8 conversations per replica, so the


# Azure trace's 3-7 req/s needs 2-4 replicas (a latency-first setting; keeps loopback load small)
AUTOSCALED = "llama-fp8"


CHART = lc.REPO_ROOT / "charts" / "llm-operator"


def _engine_command(served_name: str, host: str, port: int, compress: float) -> list[str]:
    """One engine simulator process per Ready pod, as vLLM would run in it."""
    return [
        str(Path(sys.executable).parent / "llm-lab"),
        "sim",
        "engine",
        "--host",
        host,
        "--port",
        str(port),
        "--served-name",
        served_name,
        "--speed",
        f"{compress:g}",
        "--max-num-seqs",
        str(DEMO_MAX_NUM_SEQS),
    ]


def _install_chart(cluster: lc.LocalCluster, console: Console) -> Path:
    """helm install the chart (CRDs, ServiceAccount, least-privilege RBAC, config) and return a
    kubeconfig with the chart's ServiceAccount token: the operator runs out of cluster (the
    simulated nodes run no containers) with exactly the rights the chart grants."""
    args = [
        "install",
        "llm-operator",
        str(CHART),
        "-n",
        "llm-operator-system",
        "--create-namespace",
        "--set",
        "replicaCount=0",
    ]
    console.print(f"  $ helm {' '.join(args).replace(str(lc.REPO_ROOT) + '/', '')}")
    cluster.helm(*args)
    cluster.kubectl("wait", "--for=condition=Established", "crd/llmdeployments.llmops.dev")
    console.print(
        "  replicaCount=0: the operator runs here, out of cluster, with the token of the "
        "chart's ServiceAccount (its RBAC, nothing more)"
    )
    return cluster.service_account_kubeconfig("llm-operator", "llm-operator-system")


def _autoscaling_phase(
    cluster: lc.LocalCluster,
    backing: PodBacking,
    console: Console,
    *,
    compress: float,
    minutes: float,
    trace_path: str | Path | None,
    out_dir: Path,
) -> tuple[ReplayResult, Path]:
    path = trace.resolve(trace_path)
    if path is None:
        requests = trace.synthetic(seconds=minutes * 60, base_rate=2.5, seed=7)
        source = f"a synthetic day compressed into {minutes:g} minutes (seed 7)"
    else:
        requests = trace.window(trace.load(path), 0, minutes * 60)
        source = (
            f"the first {minutes:g} minutes of {path.name} (Azure LLM inference trace "
            "2023, Patel et al. ISCA 2024, CC-BY 4.0)"
        )
    window = max(10, round(300 / compress))
    # The burst reserve's memory, half the default and compressed likewise: the demo's quiet
    # tail has to outlast it before the scale-down shows.
    memory = max(30, round(600 / compress))
    console.rule(f"Autoscaling {AUTOSCALED} under a real request trace (time x{compress:g})")
    console.print(f"replaying {len(requests)} requests from {source}")
    console.print(
        f"  $ kubectl patch llmd {AUTOSCALED} --type=merge -p "
        f'\'{{"spec":{{"autoscaling":{{"behavior":'
        f'{{"scaleDownStabilizationSeconds":{window},"burstMemorySeconds":{memory}}}}}}}}}\''
        f"   # 300 s and 600 s / {compress:g}"
    )
    cluster.kubectl(
        "patch",
        "llmd",
        AUTOSCALED,
        "--type=merge",
        "-p",
        json.dumps(
            {
                "spec": {
                    "autoscaling": {
                        "behavior": {
                            "scaleDownStabilizationSeconds": window,
                            "burstMemorySeconds": memory,
                        }
                    }
                }
            }
        ),
    )
    obj = _json(cluster, "get", "llmd", AUTOSCALED)
    gpu = obj["spec"]["resources"]["gpu"]
    price = OperatorConfig().gpu_profiles[gpu["profile"]].price_per_gpu_hour * gpu["count"]
    watch_log = out_dir / "events-watch.txt"
    watch_log.parent.mkdir(parents=True, exist_ok=True)
    with watch_log.open("w") as wf:
        watcher = subprocess.Popen(
            [
                cluster.binary("kubectl"),
                "get",
                "events",
                "-w",
                "--field-selector",
                f"involvedObject.kind=LLMDeployment,involvedObject.name={AUTOSCALED}",
            ],
            stdout=wf,
            stderr=subprocess.STDOUT,
            env=cluster.env(),
            start_new_session=True,
        )
    try:
        result = asyncio.run(
            replay(
                cluster,
                backing,
                requests,
                namespace="default",
                name=AUTOSCALED,
                compress=compress,
                price_per_replica_hour=price,
                # Quiet long enough for the burst reserve's memory and one stabilization
                # window to pass: then the scale-down shows.
                quiet_seconds=max(60.0, 3 * window, memory + 2 * window),
                console=console,
            )
        )
    finally:
        os.killpg(watcher.pid, signal.SIGTERM)
        watcher.wait(10)
    console.rule(f"$ kubectl get events -w --field-selector involvedObject.name={AUTOSCALED}")
    console.print(watch_log.read_text().rstrip(), highlight=False, soft_wrap=True)
    console.rule("$ kubectl get llmd")
    console.print(cluster.kubectl("get", "llmd").stdout.rstrip(), highlight=False, soft_wrap=True)
    png = plot(
        result,
        out_dir / "demo-timeline.png",
        f"{AUTOSCALED}: demand and replicas ({source.split(' (')[0]})",
    )
    ttft, itl = _p95(result.ttfts), _p95(result.itls)
    console.rule("Summary")
    console.print(f"requests sent {result.sent}, answered {result.ok}")
    console.print(f"SLO attainment (TTFT <= 0.5 s and mean ITL <= 50 ms): {result.attainment:.1%}")
    if ttft is not None and itl is not None:
        console.print(
            f"TTFT p95 {ttft * 1000:.0f} ms, ITL p95 {itl * 1000:.1f} ms (real-time equivalents)"
        )
    console.print(
        f"GPU-hours {result.gpu_hours:.3f}, cost ${result.dollars:.2f} "
        f"at ${price:.2f}/replica-hour over {result.timeline[-1][0] / 60:.1f} "
        "trace minutes"
        if result.timeline
        else ""
    )
    console.print(f"timeline: {png}")
    return result, png
