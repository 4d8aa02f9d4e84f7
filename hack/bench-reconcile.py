#!/usr/bin/env python3
"""Benchmark the reconciler on the local control plane at scale (figures, not a test).

The operator runs out of cluster with the token of the ServiceAccount `helm install` creates, so
it has the chart's rights and the API server's audit log records each of its requests.

1. apply-to-Deployment latency: objects applied one at a time, until a watch sees the owned
   Deployment ADDED;
2. bulk: N LLMDeployments (1 replica each, simulated GPU nodes) applied at once; time until a
   watch has seen all Ready; operator CPU and RSS during and after;
3. idle: after everything is Ready, the operator's CPU and its API requests per minute (writes
   counted apart) from the audit log; then a restart (SIGKILL) that finds every object: peak
   RSS during the resume burst and RSS 75 s later;
4. crashes: while objects are created, resized and deleted, the operator is killed with SIGKILL
   K times at random moments and restarted; then every object is Ready with exactly one of each
   child it should have, and no child is left whose owner is gone;
5. one object of R replicas against R objects of one: operator CPU per pod event.
0. (first, with --floor) the control plane alone: the same children the operator would build
   for N objects, applied with kubectl and no operator, until every Deployment is ready; what
   the operator adds is the bulk figure minus this one.

Usage: .venv/bin/python hack/bench-reconcile.py [--objects 1000] [--kills 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

from llm_operator.api.parse import parse
from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.children import build_all
from llm_operator.builders.common import DEPLOYMENT_LABEL
from llm_operator.config import OperatorConfig
from llm_operator.lab import localcluster as lc

ROOT = Path(__file__).resolve().parents[1]
NS = "bench"
RELEASE, RELEASE_NS = "llm-operator", "llm-operator-system"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}
TICK = os.sysconf("SC_CLK_TCK")


def manifest(name: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "llmops.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8},
            "generation": {"temperature": 0.7},
            "replicas": replicas,
        },
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Operator:
    """The operator out of cluster, with the environment of the chart's Deployment."""

    def __init__(
        self,
        cluster: lc.LocalCluster,
        kubeconfig: Path,
        log: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.cluster, self.kubeconfig, self.log = cluster, kubeconfig, log
        self.proc: subprocess.Popen[bytes] | None = None
        dep = json.loads(
            cluster.kubectl("get", "deployment", RELEASE, "-n", RELEASE_NS, "-o", "json").stdout
        )
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        self.env = {e["name"]: e["value"] for e in container.get("env") or [] if "value" in e}
        self.env.update(extra_env or {})

    def start(self) -> None:
        exe = Path(sys.executable).parent / "llm-operator"
        env = {**self.cluster.env(), **self.env, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(exe), "run", "--liveness", "", "--metrics-port", "0"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:  # still resuming when asked to stop
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)


class Sampler(threading.Thread):
    """Operator CPU seconds and RSS once a second."""

    def __init__(self, op: Operator) -> None:
        super().__init__(daemon=True)
        self.op, self.stopped = op, threading.Event()
        self.samples: list[tuple[float, float, float]] = []

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                pid = self.op.pid
                self.samples.append((time.monotonic(), cpu_seconds(pid), rss_mib(pid)))
            except (OSError, AssertionError, IndexError):
                pass
            time.sleep(1)

    def window(self, t0: float, t1: float) -> tuple[float, float]:
        """Mean CPU % and peak RSS MiB between t0 and t1."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return float("nan"), float("nan")
        cpu = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) * 100
        return cpu, max(s[2] for s in inside)


class Phases(threading.Thread):
    """A watch on the bench's LLMDeployments: the latest body of each."""

    def __init__(self, custom: client.CustomObjectsApi) -> None:
        super().__init__(daemon=True)
        self.custom, self.lock = custom, threading.Lock()
        self.objs: dict[str, dict[str, Any]] = {}
        # when the watch first saw each object (its apply, give or take the watch's delay) and
        # when it first saw it settled
        self.seen_at: dict[str, float] = {}
        self.ready_at: dict[str, float] = {}

    def run(self) -> None:
        while True:
            try:
                w = watch.Watch()
                for ev in w.stream(
                    self.custom.list_namespaced_custom_object,
                    "llmops.dev",
                    "v1alpha1",
                    NS,
                    "llmdeployments",
                    timeout_seconds=300,
                ):
                    name = ev["object"]["metadata"]["name"]
                    with self.lock:
                        if ev["type"] == "DELETED":
                            self.objs.pop(name, None)
                        else:
                            self.objs[name] = ev["object"]
                            at = time.monotonic()
                            self.seen_at.setdefault(name, at)
                            if settled(ev["object"]):
                                self.ready_at.setdefault(name, at)
            except Exception:  # the stream ends with the cluster, or on a timeout
                time.sleep(0.5)

    def apply_to_ready(self, names: set[str]) -> list[float]:
        """Seconds from each object's first sighting to its first Ready, sorted."""
        with self.lock:
            return sorted(
                self.ready_at[n] - self.seen_at[n]
                for n in names
                if n in self.ready_at and n in self.seen_at
            )

    def ready(self, names: set[str] | None = None) -> int:
        with self.lock:
            objs = [o for n, o in self.objs.items() if names is None or n in names]
        return sum(1 for o in objs if settled(o))


def settled(o: dict[str, Any]) -> bool:
    st = o.get("status") or {}
    gen = o["metadata"].get("generation")
    return (
        st.get("phase") == "Ready"
        and st.get("observedGeneration") == gen
        and st.get("readyReplicas") == o["spec"].get("replicas")
    )


def wait_ready(phases: Phases, names: set[str], timeout: float) -> float:
    t = time.monotonic()
    while phases.ready(names) < len(names):
        if time.monotonic() - t > timeout:
            raise SystemExit(f"only {phases.ready(names)}/{len(names)} Ready after {timeout}s")
        time.sleep(0.25)
    return time.monotonic() - t


def audit_calls(cluster: lc.LocalCluster, since: dt.datetime, until: dt.datetime) -> Counter[str]:
    user = f"system:serviceaccount:{RELEASE_NS}:{RELEASE}"
    calls: Counter[str] = Counter()
    for line in cluster.audit_log.read_text(errors="replace").splitlines():
        ev = json.loads(line)
        if ev["user"]["username"] != user:
            continue
        at = dt.datetime.fromisoformat(ev["requestReceivedTimestamp"].replace("Z", "+00:00"))
        if since <= at <= until:
            ref = ev.get("objectRef") or {}
            what = ref.get("resource", "") + (
                "/" + ref["subresource"] if "subresource" in ref else ""
            )
            calls[f"{ev['verb']} {what}"] += 1
    return calls


def apply_all(cluster: lc.LocalCluster, docs: list[dict[str, Any]]) -> None:
    for i in range(0, len(docs), 250):  # kubectl apply of one stream per 250 objects
        cluster.kubectl(
            "apply", "-f", "-", input=yaml.safe_dump_all(docs[i : i + 250]), timeout=600
        )


def children_check(cluster: lc.LocalCluster) -> tuple[int, list[str]]:
    """Every LLMDeployment has exactly its children; no owned child outlives its owner."""
    objs = json.loads(cluster.kubectl("get", "llmd", "-n", NS, "-o", "json").stdout)["items"]
    uids = {o["metadata"]["uid"]: o for o in objs}
    problems: list[str] = []
    kinds = ("configmap", "deployment", "service", "poddisruptionbudget", "networkpolicy")
    found: dict[tuple[str, str], list[str]] = {}
    for kind in kinds:
        items = json.loads(
            cluster.kubectl("get", kind, "-n", NS, "-l", DEPLOYMENT_LABEL, "-o", "json").stdout
        )["items"]
        for it in items:
            owners = [r["uid"] for r in it["metadata"].get("ownerReferences") or []]
            if not owners or owners[0] not in uids:
                problems.append(f"orphan {it['kind']}/{it['metadata']['name']}")
                continue
            owner = uids[owners[0]]["metadata"]["name"]
            found.setdefault((it["kind"], owner), []).append(it["metadata"]["name"])
    for o in objs:
        obj = parse(o)
        assert isinstance(obj, LLMDeployment)
        wanted = build_all(obj, OperatorConfig(), service_monitor_available=False)
        for m in wanted:
            got = found.get((m["kind"], o["metadata"]["name"]), [])
            if got != [m["metadata"]["name"]]:
                problems.append(f"{o['metadata']['name']}: {m['kind']} {got}")
        extra = {k for (k, n) in found if n == o["metadata"]["name"]} - {m["kind"] for m in wanted}
        problems += [f"{o['metadata']['name']}: unexpected {k}" for k in extra]
    return len(objs), problems


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--latency-objects", type=int, default=20)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--idle-seconds", type=int, default=120)
    ap.add_argument("--big-replicas", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--floor", action="store_true", help="measure the control plane alone first")
    ap.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set in the operator's environment on top of the chart's (to compare settings)",
    )
    ap.add_argument(
        "--client-qps",
        type=int,
        default=100,
        help="the controller-manager's and scheduler's --kube-api-qps/-burst, as in Kubernetes' "
        "scalability validation (0: the components' defaults, 20/30 and 50/100)",
    )
    ap.add_argument("--until", choices=["restart", "all"], default="all", help="stop after step 3b")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    # the churn adds 200 objects and doubles 200 others; a few nodes spare
    gpus = max(args.objects + 400, args.big_replicas) + 64
    nodes = (gpus + 7) // 8
    cluster = lc.LocalCluster(
        bin_dir=lc.find_bin_dir(),
        nodes=nodes,
        gpus_per_node=8,
        start_delay_seconds=2,
        client_qps=args.client_qps or None,
    )
    t = time.monotonic()
    cluster.start()
    print(
        f"machine: {os.cpu_count()} cores; control plane with {nodes} GPU nodes up in "
        f"{time.monotonic() - t:.1f}s; controller-manager and scheduler client QPS "
        f"{args.client_qps or 'defaults'}"
    )
    cluster.helm(
        "upgrade",
        "--install",
        RELEASE,
        str(ROOT / "charts" / "llm-operator"),
        "-n",
        RELEASE_NS,
        "--create-namespace",
    )
    cluster.kubectl("wait", "--for=condition=Established", "crd/llmdeployments.llmops.dev")
    cluster.kubectl("create", "namespace", NS)
    kubeconfig = cluster.service_account_kubeconfig(RELEASE, RELEASE_NS)
    if args.floor:
        floor(cluster, args.objects)
    extra = dict(item.split("=", 1) for item in args.env)
    if extra:
        print(f"operator environment on top of the chart's: {extra}")
    op = Operator(cluster, kubeconfig, Path(cluster.workdir or "/tmp") / "operator.log", extra)
    op.start()
    sampler = Sampler(op)
    sampler.start()
    try:
        config.load_kube_config(str(cluster.kubeconfig))
        apps, custom = client.AppsV1Api(), client.CustomObjectsApi()
        phases = Phases(custom)
        phases.start()
        seen: dict[str, float] = {}

        def deployments() -> None:
            while True:
                try:
                    for ev in watch.Watch().stream(
                        apps.list_namespaced_deployment, NS, timeout_seconds=300
                    ):
                        if ev["type"] == "ADDED":
                            seen.setdefault(ev["object"].metadata.name, time.monotonic())
                except Exception:
                    time.sleep(0.5)

        threading.Thread(target=deployments, daemon=True).start()
        time.sleep(5)  # the operator's start and the watches

        # 1. latency, one at a time
        applied: dict[str, float] = {}
        for i in range(args.latency_objects):
            name = f"lat-{i:03d}"
            applied[name] = time.monotonic()
            custom.create_namespaced_custom_object(
                "llmops.dev", "v1alpha1", NS, "llmdeployments", manifest(name)
            )
            deadline = time.monotonic() + 30
            while name not in seen and time.monotonic() < deadline:
                time.sleep(0.005)
        lat = sorted((seen[n] - applied[n]) * 1000 for n in applied if n in seen)
        print(
            f"apply-to-Deployment latency over {len(lat)} objects (one at a time): "
            f"p50 {statistics.median(lat):.0f} ms, p95 {lat[int(0.95 * (len(lat) - 1))]:.0f} ms"
        )
        wait_ready(phases, set(applied), 120)

        # 2. bulk
        rest = [f"obj-{i:04d}" for i in range(args.objects - args.latency_objects)]
        t0 = time.monotonic()
        bulk_since = dt.datetime.now(dt.UTC)
        apply_all(cluster, [manifest(n) for n in rest])
        t_applied = time.monotonic()
        took = wait_ready(phases, set(rest) | set(applied), 1800)
        t_ready = time.monotonic()
        bulk_until = dt.datetime.now(dt.UTC)
        cpu, rss = sampler.window(t0, t_ready)
        print(
            f"bulk: {len(rest)} applied in {t_applied - t0:.0f}s; all {args.objects} Ready "
            f"{took:.0f}s after the last apply ({t_ready - t0:.0f}s after the first); operator "
            f"CPU {cpu:.0f}% of a core, peak RSS {rss:.0f} MiB"
        )
        each = phases.apply_to_ready(set(rest))
        if each:
            print(
                f"bulk: each object from its apply to Ready: p50 {statistics.median(each):.0f}s, "
                f"p95 {each[int(0.95 * (len(each) - 1))]:.0f}s, max {each[-1]:.0f}s "
                f"({len(each)} objects)"
            )
        time.sleep(2)  # the audit log's buffer
        bulk = audit_calls(cluster, bulk_since, bulk_until)
        per = {k: round(n / len(rest), 2) for k, n in bulk.most_common() if n >= len(rest) / 10}
        print(f"bulk: operator API requests per object {sum(bulk.values()) / len(rest):.1f} {per}")

        # 3. idle
        time.sleep(30)
        since = dt.datetime.now(dt.UTC)
        t1 = time.monotonic()
        time.sleep(args.idle_seconds)
        until = dt.datetime.now(dt.UTC)
        cpu, rss = sampler.window(t1, time.monotonic())
        time.sleep(2)  # the audit log's buffer
        calls = audit_calls(cluster, since, until)
        minutes = args.idle_seconds / 60
        writes = sum(n for k, n in calls.items() if k.split()[0] in WRITES)
        print(
            f"idle ({args.idle_seconds}s, {args.objects} objects Ready): operator CPU {cpu:.2f}% "
            f"of a core, RSS {rss:.0f} MiB; API requests {sum(calls.values()) / minutes:.1f}/min, "
            f"writes {writes / minutes:.1f}/min {dict(calls)}"
        )

        # 3b. a restart that finds every object: the resume burst, and what stays resident
        op.kill()
        op.start()
        t1 = time.monotonic()
        time.sleep(75)
        _, peak = sampler.window(t1, time.monotonic())
        print(
            f"restart with {args.objects} objects: operator RSS peaked at {peak:.0f} MiB, "
            f"{rss_mib(op.pid):.0f} MiB 75 s later; {cpu_seconds(op.pid):.1f} s of CPU"
        )
        if args.until == "restart":
            return

        # 4. crashes during churn: create, resize and delete while the operator is killed
        names = set(rest) | set(applied)
        churn_new = [f"new-{i:04d}" for i in range(200)]
        resized = rng.sample(sorted(names), 200)
        deleted = rng.sample(sorted(names - set(resized)), 100)
        kills: list[float] = []

        def churn() -> None:
            apply_all(cluster, [manifest(n) for n in churn_new])
            apply_all(cluster, [manifest(n, replicas=2) for n in resized])
            cluster.kubectl("delete", "llmd", "-n", NS, "--wait=false", *deleted, timeout=300)

        churner = threading.Thread(target=churn)
        t_churn = time.monotonic()
        churner.start()
        for _ in range(args.kills):
            time.sleep(rng.uniform(0.5, 6.0))
            op.kill()
            kills.append(time.monotonic() - t_churn)
            op.start()
        churner.join()
        final = (names | set(churn_new)) - set(deleted)
        t_last = time.monotonic()
        took = wait_ready(phases, final, 1800)
        _, peak = sampler.window(t_last, time.monotonic())
        time.sleep(15)  # the garbage collector removes the deleted objects' children
        count, problems = children_check(cluster)
        print(
            f"crashes: {len(kills)} SIGKILLs at {', '.join(f'{k:.0f}' for k in kills)} s of a "
            f"churn (+{len(churn_new)} objects, {len(resized)} resized to 2 replicas, "
            f"{len(deleted)} deleted); all {len(final)} Ready {took:.0f}s after the last kill; "
            f"{count} objects checked, {len(problems)} problems {problems[:10]}; the last "
            f"operator's RSS peaked at {peak:.0f} MiB, {rss_mib(op.pid):.0f} MiB once all Ready"
        )

        # 5. CPU per pod event: many small objects against one big one
        pods_seen = Counter[str]()

        def pod_events() -> None:
            core = client.CoreV1Api()
            while True:
                try:
                    for ev in watch.Watch().stream(
                        core.list_namespaced_pod, NS, timeout_seconds=300
                    ):
                        pods_seen[ev["type"]] += 1
                except Exception:
                    time.sleep(0.5)

        cluster.kubectl("delete", "llmd", "-n", NS, "--all", "--wait=true", timeout=900)
        wait_for_no_pods(cluster)
        print(f"all deleted: operator RSS {rss_mib(op.pid):.0f} MiB")
        threading.Thread(target=pod_events, daemon=True).start()
        time.sleep(3)
        for label, docs in (
            (f"1 object x {args.big_replicas} replicas", [manifest("big", args.big_replicas)]),
            (
                f"{args.big_replicas} objects x 1 replica",
                [manifest(f"small-{i:04d}") for i in range(args.big_replicas)],
            ),
        ):
            before_events, before_cpu = sum(pods_seen.values()), cpu_seconds(op.pid)
            t2 = time.monotonic()
            apply_all(cluster, docs)
            took = wait_ready(phases, {d["metadata"]["name"] for d in docs}, 1800)
            time.sleep(5)
            events = sum(pods_seen.values()) - before_events
            spent = cpu_seconds(op.pid) - before_cpu
            print(
                f"{label}: Ready {took:.0f}s after the apply ({time.monotonic() - t2:.0f}s in "
                f"all); {events} pod events, operator CPU {spent:.1f}s = "
                f"{spent / max(events, 1) * 1000:.2f} ms per pod event, "
                f"RSS {rss_mib(op.pid):.0f} MiB"
            )
            cluster.kubectl("delete", "llmd", "-n", NS, "--all", "--wait=true", timeout=900)
            wait_for_no_pods(cluster)
    finally:
        sampler.stopped.set()
        op.kill(signal.SIGTERM)
        cluster.stop()


def floor(cluster: lc.LocalCluster, n: int) -> None:
    """The children of n objects applied without the operator, until all Deployments are ready."""
    docs: list[dict[str, Any]] = []
    for i in range(n):
        m = manifest(f"floor-{i:04d}")
        m["metadata"]["uid"] = f"uid-{i}"
        obj = parse(m)
        assert isinstance(obj, LLMDeployment)
        for child in build_all(obj, OperatorConfig(), service_monitor_available=False):
            child["metadata"].pop("ownerReferences", None)  # no owner: the GC would remove them
            child["metadata"]["namespace"] = NS
            docs.append(child)
    t0 = time.monotonic()
    apply_all(cluster, docs)
    t1 = time.monotonic()
    while True:
        deps = json.loads(cluster.kubectl("get", "deployments", "-n", NS, "-o", "json").stdout)
        ready = sum(1 for d in deps["items"] if (d.get("status") or {}).get("readyReplicas") == 1)
        if ready >= n:
            break
        time.sleep(2)
    print(
        f"floor (no operator): the children of {n} objects ({len(docs)} objects) applied in "
        f"{t1 - t0:.0f}s; all {n} Deployments ready {time.monotonic() - t1:.0f}s after the "
        f"last apply ({time.monotonic() - t0:.0f}s after the first)"
    )
    for kind in ("deployment", "service", "configmap", "poddisruptionbudget", "networkpolicy"):
        cluster.kubectl(
            "delete", kind, "-n", NS, "-l", DEPLOYMENT_LABEL, "--wait=true", timeout=900
        )
    wait_for_no_pods(cluster)


def wait_for_no_pods(cluster: lc.LocalCluster, timeout: float = 600) -> None:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        out = cluster.kubectl("get", "pods", "-n", NS, "-o", "name", check=False).stdout
        if not out.strip():
            return
        time.sleep(2)


if __name__ == "__main__":
    main()
