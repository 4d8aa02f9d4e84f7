#!/usr/bin/env python3
"""Benchmark the reconciler on the local control plane (figures, not a test).

- apply-to-Deployment latency: kubectl-equivalent apply of an LLMDeployment until a watch on
  Deployments sees the owned Deployment ADDED, over N objects applied one at a time;
- operator resident memory (VmRSS) once M LLMDeployments (1 replica each) are reconciled.

Usage: .venv/bin/python hack/bench-reconcile.py [--latency-objects 50] [--total-objects 200]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from kubernetes import client, config, watch

from llm_operator.lab import localcluster as lc

ROOT = Path(__file__).resolve().parents[1]


def manifest(name: str) -> dict[str, object]:
    return {
        "apiVersion": "llmops.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {
            "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8},
            "generation": {"temperature": 0.7},
            "replicas": 1,
        },
    }


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-objects", type=int, default=50)
    ap.add_argument("--total-objects", type=int, default=200)
    args = ap.parse_args()
    nodes = (args.total_objects + 7) // 8 + 1
    cluster = lc.LocalCluster(
        bin_dir=lc.find_bin_dir(), nodes=nodes, gpus_per_node=8, start_delay_seconds=2
    )
    t = time.monotonic()
    cluster.start()
    print(f"control plane with {nodes} GPU nodes up in {time.monotonic() - t:.1f}s")
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/llmdeployments.llmops.dev")
    cluster.kubectl("create", "namespace", "bench")
    exe = Path(sys.executable).parent / "llm-operator"
    op = subprocess.Popen(
        [str(exe), "run", "--liveness", "", "--metrics-port", "0"],
        env=cluster.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        config.load_kube_config(str(cluster.kubeconfig))
        apps = client.AppsV1Api()
        custom = client.CustomObjectsApi()
        seen: dict[str, float] = {}
        stop = threading.Event()

        def watcher() -> None:
            w = watch.Watch()
            for ev in w.stream(apps.list_namespaced_deployment, "bench", timeout_seconds=3600):
                if ev["type"] == "ADDED":
                    seen.setdefault(ev["object"].metadata.name, time.monotonic())
                if stop.is_set():
                    w.stop()

        threading.Thread(target=watcher, daemon=True).start()
        time.sleep(3)  # let the operator finish its startup and the watch connect
        applied: dict[str, float] = {}
        for i in range(args.latency_objects):
            name = f"lat-{i:03d}"
            applied[name] = time.monotonic()
            custom.create_namespaced_custom_object(
                "llmops.dev", "v1alpha1", "bench", "llmdeployments", manifest(name)
            )
            deadline = time.monotonic() + 30
            while name not in seen and time.monotonic() < deadline:
                time.sleep(0.005)
        lat = sorted((seen[n] - applied[n]) * 1000 for n in applied if n in seen)
        p50 = statistics.median(lat)
        p95 = lat[int(0.95 * (len(lat) - 1))]
        print(
            f"apply-to-Deployment latency over {len(lat)} objects (one at a time): "
            f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {lat[-1]:.0f} ms"
        )
        rest = [f"mem-{i:03d}" for i in range(args.total_objects - args.latency_objects)]
        t = time.monotonic()
        docs = [manifest(n) for n in rest]
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs), timeout=300)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            ready = sum(
                1
                for o in custom.list_namespaced_custom_object(
                    "llmops.dev", "v1alpha1", "bench", "llmdeployments"
                )["items"]
                if o.get("status", {}).get("phase") == "Ready"
            )
            if ready >= args.total_objects:
                break
            time.sleep(2)
        print(
            f"{args.total_objects} LLMDeployments Ready ({len(rest)} applied in one batch, "
            f"all Ready {time.monotonic() - t:.0f}s later)"
        )
        time.sleep(10)
        print(
            f"operator resident memory with {args.total_objects} LLMDeployments: "
            f"{rss_mib(op.pid):.0f} MiB"
        )
        stop.set()
    finally:
        os.killpg(op.pid, signal.SIGTERM)
        op.wait(20)
        cluster.stop()


if __name__ == "__main__":
    main()
