"""``llm-operator demo``: the operator on a local control plane with simulated GPU nodes.

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
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from llm_operator import localcluster as lc

SAMPLES = lc.REPO_ROOT / "manifests" / "samples"
CRDS = lc.REPO_ROOT / "crds"


@dataclass
class DemoResult:
    ready: list[str]
    events: list[str]
    elapsed: float
    template_unchanged: bool
    pids: list[int]


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
    *, start_delay: float = 20.0, console: Console | None = None, timeout: float = 300.0
) -> DemoResult:
    console = console or Console()
    t0 = time.monotonic()
    console.rule("[bold]llm-operator demo")
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
    try:
        cluster.start()
        nodes = _json(cluster, "get", "nodes")["items"]
        console.print(
            f"  {len(nodes)} nodes: "
            + ", ".join(
                f"{n['metadata']['name']} ({n['metadata']['labels']['nvidia.com/gpu.product']}, "
                f"{n['status']['capacity']['nvidia.com/gpu']} GPUs)"
                for n in nodes
            )
        )
        cluster.kubectl("apply", "-f", str(CRDS))
        cluster.kubectl("wait", "--for=condition=Established", "crd/llmdeployments.llmops.dev")
        exe = Path(sys.executable).parent / "llm-operator"
        log = (work / "operator.log").open("wb")
        operator = subprocess.Popen(
            [str(exe), "run", "--liveness", "", "--metrics-port", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=cluster.env(),
            start_new_session=True,
        )
        console.print("operator running; applying manifests/samples/*.yaml")
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
        ready = [
            o["metadata"]["name"]
            for o in _json(cluster, "get", "llmd")["items"]
            if o.get("status", {}).get("phase") == "Ready"
        ]
        pids = [c.pid for c in cluster.components] + [operator.pid]
        return DemoResult(
            ready=ready,
            events=events,
            elapsed=time.monotonic() - t0,
            template_unchanged=unchanged,
            pids=pids,
        )
    finally:
        if operator is not None and operator.poll() is None:
            os.killpg(operator.pid, signal.SIGTERM)
            try:
                operator.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(operator.pid, signal.SIGKILL)
        cluster.stop()
        console.print("stopped the operator and every control-plane process")
        shutil.rmtree(work, ignore_errors=True)
