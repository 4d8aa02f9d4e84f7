"""The owner's limits (helm values operator.limits): past them nothing is created, and what an
object already runs stays; room freed by another object is taken without anyone re-applying."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llm_operator.lab import localcluster as lc
from tests.cases import base
from tests.cluster.conftest import (
    CHART,
    RELEASE,
    OperatorProcess,
    apply,
    condition,
    events,
    get_json,
    helm,
    llmd,
    patch_spec,
    wait_condition,
    wait_for,
)

LIMITS = {"maxReplicasPerObject": 3, "maxGpusPerNamespace": 5}


@pytest.fixture(scope="module")
def limited(
    cluster: lc.LocalCluster, chart_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator with the config the chart renders from ``operator.limits``."""
    out = helm(
        cluster,
        "template",
        RELEASE,
        str(CHART),
        "--show-only",
        "templates/configmap.yaml",
        "--set-json",
        f"operator.limits={json.dumps(LIMITS)}",
    )
    tmp = tmp_path_factory.mktemp("quota")
    cfg = tmp / "operator.yaml"
    cfg.write_text(yaml.safe_load(out.stdout)["data"]["config.yaml"])
    assert yaml.safe_load(cfg.read_text())["limits"] == LIMITS
    op = OperatorProcess(cluster, tmp / "operator.log", kubeconfig=chart_kubeconfig, config=cfg)
    op.start()
    yield op
    op.stop()


def gpus(replicas: int, count: int) -> dict[str, object]:
    return {
        "replicas": replicas,
        "resources": {"gpu": {"profile": "nvidia-h100-80gb", "count": count}},
    }


def test_past_a_limit_nothing_is_created_and_freed_room_is_taken(
    cluster: lc.LocalCluster, limited: OperatorProcess, namespace: str
) -> None:
    apply(cluster, base("a", **gpus(2, 2)), namespace)  # 4 of the namespace's 5 GPUs
    wait_condition(cluster, "a", namespace, "Ready", status="True", timeout=120)

    apply(cluster, base("b", **gpus(1, 2)), namespace)  # 2 more: past 5
    obj = wait_condition(cluster, "b", namespace, "Valid", reason="QuotaExceeded", timeout=60)
    message = condition(obj, "Valid")["message"]
    assert "namespace " + namespace + " allows 5 GPUs, its other LLMDeployments hold 4" in message
    assert "leaves room for 0" in message
    assert get_json(cluster, "deployment", "b", "-n", namespace) is None
    assert get_json(cluster, "service", "b", "-n", namespace) is None
    assert [e["message"] for e in events(cluster, "b", namespace, "Invalid")] == [message]

    # a shrinks to 2 GPUs: b fits and is created on its own recheck, no one re-applies it.
    patch_spec(cluster, "a", namespace, {"replicas": 1})
    wait_condition(cluster, "b", namespace, "Ready", status="True", timeout=150)
    assert get_json(cluster, "deployment", "b", "-n", namespace)["spec"]["replicas"] == 1

    # b asks for 2 while 1 fits: refused, and the replica it runs stays.
    patch_spec(cluster, "b", namespace, {"replicas": 2})
    obj = wait_for(
        lambda: (
            (o := llmd(cluster, "b", namespace))
            and o["metadata"]["generation"] == condition(o, "Valid").get("observedGeneration")
            and o
        ),
        60,
        what="b's new generation judged",
    )
    assert condition(obj, "Valid")["reason"] == "QuotaExceeded"
    assert "leaves room for 1" in condition(obj, "Valid")["message"]
    dep = get_json(cluster, "deployment", "b", "-n", namespace)
    assert dep["spec"]["replicas"] == 1 and dep["status"].get("readyReplicas") == 1
