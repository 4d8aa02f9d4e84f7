"""``llm-lab demo``: the operator on a local control plane with simulated GPU nodes.

It starts the control plane (kwok GPU nodes whose pods turn Ready after a cold-start delay),
installs the CRD, runs the operator as a user would (``llm-operator run``), applies the samples,
and shows them converge live: replicas, readiness and the Events that explain each step. Then it
scales one deployment through the /scale subresource, changes a generation parameter (no pod
restarts) and stops everything it started.
"""

from __future__ import annotations

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

import yaml
from rich.console import Console, Group
from rich.live import Live

from llm_operator.builders.common import SECRET_OPT_IN_LABEL
from llm_operator.lab import localcluster as lc
from llm_operator.lab.demo.observe import ObserveResult, observability_phase
from llm_operator.lab.demo.phases import (
    SAMPLES,
    _autoscaling_phase,
    _engine_command,
    _install_chart,
)
from llm_operator.lab.demo.zero import ZeroResult, scale_to_zero_phase
from llm_operator.lab.localcluster.backing import PodBacking
from llm_operator.lab.localcluster.monitoring import (
    RELEASE_LABELS,
    ClusterPrometheus,
    PrometheusOperator,
)
from llm_operator.lab.localcluster.netns import enter_private_network
from llm_operator.lab.replay import ReplayResult
from llm_operator.lab.sim.model import COLD_START_SECONDS
from llm_operator.lab.views import _all_ready, _events, _json, _table


@dataclass
class DemoResult:
    ready: list[str]
    events: list[str]
    elapsed: float
    template_unchanged: bool
    pids: list[int]
    replay: ReplayResult | None = None
    timeline_png: Path | None = None
    zero: ZeroResult | None = None
    observe: ObserveResult | None = None


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
                if "nvidia.com/gpu" in n["status"]["capacity"]
                else f"{n['metadata']['name']} (CPU)"
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
        # vllm-basic names the hub token Secret: created and opted in as the README says (a
        # placeholder value; the simulated engines download nothing).
        for cmd in (
            ("create", "secret", "generic", "hf-token", "--from-literal=token=hf_placeholder"),
            ("label", "secret", "hf-token", f"{SECRET_OPT_IN_LABEL}=true"),
        ):
            cluster.kubectl(*cmd)
            console.print("  $ kubectl " + " ".join(c for c in cmd if "placeholder" not in c))
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
        # scaleToZero.idleSeconds, time-compressed like the rest (30 s at least: the API's floor).
        zero = scale_to_zero_phase(
            cluster, backing, console, idle_seconds=max(30, round(300 / compress))
        )
        assert prom.server is not None
        observed = observability_phase(cluster, backing, prom.server, console, work / "otelcol")
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
            zero=zero,
            observe=observed,
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
