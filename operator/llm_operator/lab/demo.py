"""``llm-lab demo``: the operator on a local control plane with simulated GPU nodes.

It starts the control plane (kwok GPU nodes whose pods turn Ready after a cold-start delay),
installs the CRD, runs the operator as a user would (``llm-operator run``), applies the samples,
and shows them converge live: replicas, readiness and the Events that explain each step. Then it
scales one deployment through the /scale subresource, changes a generation parameter (no pod
restarts) and stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.backing import PodBacking
from llm_operator.lab.localcluster.monitoring import (
    RELEASE_LABELS,
    ClusterPrometheus,
    PrometheusOperator,
)
from llm_operator.lab.localcluster.netns import enter_private_network
from llm_operator.lab.replay import ReplayResult, _p95, plot, replay
from llm_operator.lab.sim import trace
from llm_operator.lab.sim.model import COLD_START_SECONDS

SAMPLES = lc.REPO_ROOT / "manifests" / "samples"
DEMO_MAX_NUM_SEQS = 8  # engine --max-num-seqs: 8 conversations per replica, so the
# Azure trace's 3-7 req/s needs 2-4 replicas (a latency-first setting; keeps loopback load small)
AUTOSCALED = "llama-fp8"


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
    price = 4.25 * obj["spec"]["resources"]["gpu"]["count"]
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


CHART = lc.REPO_ROOT / "charts" / "llm-operator"


@dataclass
class DemoResult:
    ready: list[str]
    events: list[str]
    elapsed: float
    template_unchanged: bool
    pids: list[int]
    replay: ReplayResult | None = None
    timeline_png: Path | None = None


def _json(cluster: lc.LocalCluster, *args: str) -> Any:
    out = cluster.kubectl(*args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {"items": []}


def _table(cluster: lc.LocalCluster) -> Table:
    t = Table(title="kubectl get llmd -A", expand=False)
    for col in ("NAMESPACE", "NAME", "ENGINE", "GPU", "READY", "REPLICAS", "DESIRED", "PHASE"):
        t.add_column(col)
    for o in _json(cluster, "get", "llmd", "-A")["items"]:
        st = o.get("status", {})
        ready = next((c["status"] for c in st.get("conditions", []) if c["type"] == "Ready"), "")
        t.add_row(
            o["metadata"]["namespace"],
            o["metadata"]["name"],
            o["spec"]["engine"]["kind"],
            o["spec"]["resources"]["gpu"]["profile"],
            ready,
            str(st.get("readyReplicas", "")),
            str(st.get("desiredReplicas", "")),
            st.get("phase", ""),
        )
    return t


def _events(cluster: lc.LocalCluster) -> list[str]:
    items = _json(
        cluster, "get", "events", "-A", "--field-selector", "involvedObject.kind=LLMDeployment"
    )["items"]
    items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return [
        f"{e['involvedObject']['name']:<14} {e['type']:<8} {e['reason']:<16} {e['message']}"
        for e in items
    ]


def _all_ready(cluster: lc.LocalCluster, names: list[str]) -> bool:
    got = {o["metadata"]["name"]: o for o in _json(cluster, "get", "llmd")["items"]}
    return all(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in got.get(n, {}).get("status", {}).get("conditions", [])
        )
        for n in names
    )


def run_demo(
    *,
    compress: float = 4.0,
    minutes: float = 12.0,
    trace_path: str | Path | None = None,
    console: Console | None = None,
    timeout: float = 300.0,
    out_dir: Path | None = None,
    cold_start: float = COLD_START_SECONDS["cached"],
) -> DemoResult:
    console = console or Console()
    # Before any thread starts: the simulated pods get real IPs in a network of our own.
    enter_private_network()
    t0 = time.monotonic()
    start_delay = cold_start / compress
    console.rule("[bold]llm-lab demo")
    console.print(
        "starting the local control plane (etcd, kube-apiserver, controller-manager, "
        f"scheduler, kwok GPU nodes; cold start {start_delay:g}s) ..."
    )
    work = Path(tempfile.mkdtemp(prefix="llmop-demo-"))
    cluster = lc.LocalCluster(
        bin_dir=lc.find_bin_dir(),
        workdir=work,
        nodes=2,
        gpus_per_node=8,
        gpu_products=("NVIDIA-H100-80GB-HBM3", "NVIDIA-A10G"),
        start_delay_seconds=start_delay,
    )
    operator: subprocess.Popen[bytes] | None = None
    prom = ClusterPrometheus(cluster, workdir=work / "prometheus")
    backing: PodBacking | None = None
    try:
        cluster.start()
        PrometheusOperator(cluster).start()
        prom.start()
        console.print(
            f"Prometheus {prom.url} runs the configuration the Prometheus Operator generates: "
            "it finds every simulated pod through the operator's ServiceMonitors"
        )
        nodes = _json(cluster, "get", "nodes")["items"]
        console.print(
            f"  {len(nodes)} nodes: "
            + ", ".join(
                f"{n['metadata']['name']} ({n['metadata']['labels']['nvidia.com/gpu.product']}, "
                f"{n['status']['capacity']['nvidia.com/gpu']} GPUs)"
                for n in nodes
            )
        )
        kubeconfig = _install_chart(cluster, console)
        exe = Path(sys.executable).parent / "llm-operator"
        log = (work / "operator.log").open("wb")
        cfg = work / "operator.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "prometheusUrl": prom.url,
                    # What the local Prometheus selects ServiceMonitors by, as
                    # kube-prometheus-stack selects its release label.
                    "serviceMonitorLabels": RELEASE_LABELS,
                    "evaluationIntervalSeconds": max(1.0, 15.0 / compress),
                    "coldStartSeconds": start_delay,
                    "metricsWindow": f"{max(10, round(60 / compress))}s",
                }
            )
        )
        operator = subprocess.Popen(
            [str(exe), "run", "--liveness", "", "--metrics-port", "0", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**cluster.env(), "KUBECONFIG": str(kubeconfig)},
            start_new_session=True,
        )
        backing = PodBacking(
            kubeconfig=str(cluster.kubeconfig),
            engine_command=lambda ns, n, host, port: _engine_command(n, host, port, compress),
            workdir=work / "pods",
        )
        backing.start()
        console.print(
            "operator running; every Ready pod is backed by an engine simulator "
            "and the real gateway; applying manifests/samples/*.yaml"
        )
        names = []
        for sample in sorted(SAMPLES.glob("*.yaml")):
            out = cluster.kubectl("apply", "-f", str(sample))
            console.print(
                "  $ kubectl apply -f "
                + str(sample.relative_to(lc.REPO_ROOT))
                + "\n    "
                + out.stdout.strip()
            )
            names.append(out.stdout.split()[0].split("/")[1])
        with Live(console=console, refresh_per_second=2) as live:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                live.update(Group(_table(cluster), *_events(cluster)[-8:]))
                if _all_ready(cluster, names):
                    break
                time.sleep(1)
            else:
                raise RuntimeError(
                    "the samples did not become Ready in time; operator log:\n"
                    + (work / "operator.log").read_text()[-3000:]
                )
        console.print("[green]all samples Ready[/]. Scaling llama-chat to 3 through /scale:")
        console.print("  $ kubectl scale llmd/llama-chat --replicas=3")
        cluster.kubectl("scale", "llmd/llama-chat", "--replicas=3")
        before = _json(cluster, "get", "deployment", "llama-chat")["spec"]["template"]
        console.print(
            "  $ kubectl patch llmd llama-chat --type=merge -p "
            '\'{"spec":{"generation":{"temperature":0.2}}}\''
        )
        cluster.kubectl(
            "patch",
            "llmd",
            "llama-chat",
            "--type=merge",
            "-p",
            json.dumps({"spec": {"generation": {"temperature": 0.2}}}),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            o = _json(cluster, "get", "llmd", "llama-chat")
            if o.get("status", {}).get("readyReplicas") == 3:
                break
            time.sleep(1)
        after = _json(cluster, "get", "deployment", "llama-chat")
        cm = _json(cluster, "get", "configmap", "llama-chat-gateway")["data"]["gateway.yaml"]
        console.print(_table(cluster))
        unchanged = after["spec"]["template"] == before
        console.print(
            f"temperature 0.2 in the gateway ConfigMap: {'temperature: 0.2' in cm}; "
            f"pod template unchanged: {unchanged} (no GPU pod restarts for a "
            "generation parameter)"
        )
        console.rule(
            "Events (kubectl get events --field-selector involvedObject.kind=LLMDeployment)"
        )
        events = _events(cluster)
        for line in events:
            console.print("  " + line, highlight=False)
        replay_result = _autoscaling_phase(
            cluster,
            backing,
            console,
            compress=compress,
            minutes=minutes,
            trace_path=trace_path,
            out_dir=out_dir or work,
        )
        ready = [
            o["metadata"]["name"]
            for o in _json(cluster, "get", "llmd")["items"]
            if o.get("status", {}).get("phase") == "Ready"
        ]
        pids = [c.pid for c in cluster.components] + [operator.pid] + backing.pids()
        if prom.server is not None and prom.server.pid is not None:
            pids.append(prom.server.pid)
        return DemoResult(
            ready=ready,
            events=_events(cluster),
            elapsed=time.monotonic() - t0,
            template_unchanged=unchanged,
            pids=pids,
            replay=replay_result[0],
            timeline_png=replay_result[1],
        )
    finally:
        if backing is not None:
            backing.stop()
        prom.stop()
        if operator is not None and operator.poll() is None:
            os.killpg(operator.pid, signal.SIGTERM)
            try:
                operator.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(operator.pid, signal.SIGKILL)
        cluster.stop()
        console.print("stopped the operator and every control-plane process")
        shutil.rmtree(work, ignore_errors=True)
