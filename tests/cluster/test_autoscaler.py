"""The autoscaler end to end: operator + Prometheus + simulated pods backed by real simulators.

Load goes to real gateways in front of real engine simulators (one pair per Ready pod, at the
pod's IP), a real Prometheus scrapes them on the configuration the real Prometheus Operator
generated from the operator's ServiceMonitor (Kubernetes service discovery finds the pods), and
the operator reads Prometheus, decides and scales through /scale.
Time is counted in the operator's own evaluations where the issue speaks of intervals, so the
test asserts behaviour, not the machine's speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.backing import PodBacking
from llm_operator.lab.localcluster.load import load_loop
from llm_operator.lab.localcluster.monitoring import RELEASE_LABELS
from llm_operator.lab.localcluster.prometheus import LocalPrometheus
from llm_operator.lab.sim.engine import EngineSim
from llm_operator.lab.sim.model import model_for
from tests.cases import base
from tests.cluster.conftest import (
    CHART,
    OperatorProcess,
    apply,
    autoscaling_stack,
    condition,
    events,
    forbidden_calls,
    helm,
    llmd,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
INTERVAL = 2.0
DOWN_WINDOW = 20


def small_engine(namespace: str, name: str) -> EngineSim:
    # A KV cache of 200 tokens holds four 49-token sequences: 20 clients fill it and queue,
    # as a real replica does when its KV cache is full.
    model = dataclasses.replace(model_for("h100"), kv_capacity_tokens=200)
    return EngineSim(model=model, served_name=name)


@pytest.fixture(scope="module")
def stack(
    cluster: lc.LocalCluster, chart_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, LocalPrometheus, PodBacking]]:
    with autoscaling_stack(
        cluster, chart_kubeconfig, tmp_path_factory.mktemp("autoscaler"), small_engine, INTERVAL
    ) as stack:
        yield stack


def evaluations(op: OperatorProcess) -> int:
    url = f"http://127.0.0.1:{op.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("llm_operator_autoscaler_evaluation_seconds_count"):
                return int(float(line.split()[-1]))
    return 0


async def test_scales_up_on_load_down_after_the_window_and_holds_without_metrics(
    cluster: lc.LocalCluster,
    stack: tuple[OperatorProcess, LocalPrometheus, PodBacking],
    namespace: str,
) -> None:
    op, prom, backing = stack
    m = base("auto", replicas=1)
    m["spec"]["generation"] = {"maxTokens": 256}
    m["spec"]["autoscaling"] = {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 3,
        "targets": {"ttftP95Seconds": 5.0, "itlP95Seconds": 1.0, "queuePerReplica": 2},
        # One burst and then idle is the ON/OFF shape the burst reserve keeps replicas for
        # (docs/autoscaling.md); whether it has engaged by the time Prometheus returns depends
        # on how many idle evaluations the machine fitted in. This test is about the window and
        # the hold without metrics, so the reserve is off (tests/unit cover it).
        "behavior": {
            "scaleDownStabilizationSeconds": DOWN_WINDOW,
            "maxScaleUpStep": 2,
            "burstMemorySeconds": 0,
        },
    }
    apply(cluster, m, namespace)
    wait_for(lambda: backing.endpoints(namespace, "auto"), 60, what="a backed, ready pod")
    wait_for(
        lambda: (
            condition(llmd(cluster, "auto", namespace), "MetricsAvailable").get("status") == "True"
        ),
        60,
        what="MetricsAvailable=True",
    )

    # Raise the load: 20 closed-loop clients against 4 sequences per replica.
    stop = asyncio.Event()
    load = asyncio.create_task(
        load_loop(backing, namespace, "auto", concurrency=20, stop=stop, max_tokens=48)
    )
    queue_q = (
        f'sum(vllm:num_requests_waiting{{namespace="{namespace}",llmops_dev_deployment="auto"}})'
    )

    def breach_visible() -> bool:
        v = prom.scalar(queue_q)
        return v is not None and v > 2

    await asyncio.to_thread(wait_for, breach_visible, 60, 0.2, "the queue breach in Prometheus")
    at_breach = evaluations(op)
    obj = await asyncio.to_thread(
        wait_for,
        lambda: (o := llmd(cluster, "auto", namespace)) and o["spec"]["replicas"] > 1 and o,
        60,
        0.2,
        "a scale-up",
    )
    # Within two evaluations of the breach showing in Prometheus.
    assert evaluations(op) - at_breach <= 2
    up = events(cluster, "auto", namespace, "ScaledUp")
    assert up, "no ScaledUp event"
    assert "queue" in up[0]["message"]
    assert up[0]["message"].startswith("1 -> ")
    obj = await asyncio.to_thread(
        wait_for,
        lambda: (
            (o := llmd(cluster, "auto", namespace))
            and o["status"].get("autoscaling", {}).get("lastDecision")
            and o
        ),
        30,
        0.2,
        "status.autoscaling.lastDecision",
    )
    decision = obj["status"]["autoscaling"]["lastDecision"]
    assert decision["to"] > decision["from"]
    assert decision["reason"] in {
        e["message"] for e in events(cluster, "auto", namespace, "ScaledUp")
    }

    # Keep the load until the ceiling binds: one ScalingLimited event, not one per evaluation.
    await asyncio.to_thread(
        wait_for,
        lambda: llmd(cluster, "auto", namespace)["spec"]["replicas"] == 3,
        90,
        0.5,
        "3 replicas",
    )
    await asyncio.to_thread(
        wait_for,
        lambda: (
            condition(llmd(cluster, "auto", namespace), "ScalingLimited").get("reason")
            == "MaxReplicas"
        ),
        60,
        0.5,
        "ScalingLimited=MaxReplicas",
    )
    n_eval = evaluations(op)
    await asyncio.to_thread(
        wait_for, lambda: evaluations(op) >= n_eval + 3, 60, 0.5, "three more evaluations"
    )
    assert len(events(cluster, "auto", namespace, "ScalingLimited")) == 1

    # Remove the load: no scale-down before the stabilization window has passed.
    stop.set()
    await load
    stopped_at = time.monotonic()
    obj = await asyncio.to_thread(
        wait_for,
        lambda: (o := llmd(cluster, "auto", namespace)) and o["spec"]["replicas"] < 3 and o,
        120,
        0.5,
        "a scale-down",
    )
    assert time.monotonic() - stopped_at >= DOWN_WINDOW - 2 * INTERVAL
    down = events(cluster, "auto", namespace, "ScaledDown")
    assert down and down[0]["message"].startswith("3 -> 2")

    # Stop Prometheus: replicas are held and MetricsAvailable turns False.
    held = obj["spec"]["replicas"]
    prom.stop_process()
    obj = await asyncio.to_thread(
        wait_for,
        lambda: (
            (o := llmd(cluster, "auto", namespace))
            and condition(o, "MetricsAvailable").get("status") == "False"
            and o
        ),
        60,
        0.5,
        "MetricsAvailable=False",
    )
    assert condition(obj, "MetricsAvailable")["reason"] == "PrometheusError"
    n_eval = evaluations(op)
    await asyncio.to_thread(
        wait_for,
        lambda: evaluations(op) >= n_eval + 3,
        60,
        0.5,
        "three evaluations without Prometheus",
    )
    assert llmd(cluster, "auto", namespace)["spec"]["replicas"] == held

    # Prometheus returns: metrics are available again and scaling resumes (down to the minimum).
    prom.start()
    await asyncio.to_thread(
        wait_for,
        lambda: (
            condition(llmd(cluster, "auto", namespace), "MetricsAvailable").get("status") == "True"
        ),
        90,
        0.5,
        "MetricsAvailable=True again",
    )
    await asyncio.to_thread(
        wait_for,
        lambda: llmd(cluster, "auto", namespace)["spec"]["replicas"] < held,
        120,
        0.5,
        "scaling to resume",
    )
    status = llmd(cluster, "auto", namespace)["status"]
    assert status["metrics"]["hourlyCost"] > 0
    assert forbidden_calls(op) == []  # the chart's rights were enough for all of it


async def test_without_pod_target_labels_no_query_matches(
    cluster: lc.LocalCluster,
    stack: tuple[OperatorProcess, LocalPrometheus, PodBacking],
    namespace: str,
) -> None:
    """The label every query selects exists only because the ServiceMonitor asks the Prometheus
    Operator to copy it from the pods: take podTargetLabels away and the autoscaler is blind."""
    _op, prom, backing = stack
    m = base("blind", replicas=1)
    m["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": 2}
    apply(cluster, m, namespace)
    await asyncio.to_thread(
        wait_for, lambda: backing.endpoints(namespace, "blind"), 60, 0.5, "a backed, ready pod"
    )

    def metrics_condition() -> dict[str, str]:
        return condition(llmd(cluster, "blind", namespace), "MetricsAvailable")

    await asyncio.to_thread(
        wait_for,
        lambda: metrics_condition().get("status") == "True",
        60,
        0.5,
        "MetricsAvailable=True through the ServiceMonitor",
    )
    sm = json.loads(
        cluster.kubectl("get", "servicemonitor", "blind", "-n", namespace, "-o", "json").stdout
    )
    assert sm["spec"]["podTargetLabels"] == ["llmops.dev/deployment"]
    cluster.kubectl(
        "patch",
        "servicemonitor",
        "blind",
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/spec/podTargetLabels"}]',
    )
    await asyncio.to_thread(
        wait_for,
        lambda: metrics_condition().get("reason") == "MetricsMissing",
        90,
        0.5,
        "MetricsAvailable=False, MetricsMissing",
    )
    # The pods are still scraped, in this namespace: only the label the queries select is gone.
    up = prom.query(f'up{{namespace="{namespace}",service="blind"}} == 1')
    assert up and all("llmops_dev_deployment" not in r["metric"] for r in up)


def test_the_charts_own_service_monitor_is_selected_by_its_release_label(
    cluster: lc.LocalCluster,
    stack: tuple[OperatorProcess, LocalPrometheus, PodBacking],
    namespace: str,
) -> None:
    """The operator's own metrics: the chart's ServiceMonitor reaches Prometheus's configuration
    only with the label the Prometheus object selects (metrics.serviceMonitor.labels)."""
    _op, prom, _backing = stack
    job = f"serviceMonitor/{namespace}/sm-llm-operator/0"

    def jobs() -> set[str]:
        return {j["job_name"] for j in (prom.config or {}).get("scrape_configs") or []}

    common = ["--set", "replicaCount=0", "--set", "metrics.serviceMonitor.enabled=true"]
    helm(cluster, "install", "sm", str(CHART), "-n", namespace, "--skip-crds", *common)
    try:
        cluster.kubectl("get", "servicemonitor", "sm-llm-operator", "-n", namespace)
        time.sleep(5)  # the Prometheus Operator has seen it, and left it out
        assert job not in jobs()
        label = f"metrics.serviceMonitor.labels.release={RELEASE_LABELS['release']}"
        helm(
            cluster,
            "upgrade",
            "sm",
            str(CHART),
            "-n",
            namespace,
            "--skip-crds",
            *common,
            "--set",
            label,
        )
        wait_for(lambda: job in jobs(), 60, 0.5, f"scrape job {job} in Prometheus's config")
    finally:
        helm(cluster, "uninstall", "sm", "-n", namespace, check=False)
