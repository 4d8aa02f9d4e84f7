"""The reconciler against the real API server, driven with the real kubectl."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_operator.builders.common import SECRET_OPT_IN_LABEL
from llm_operator.lab import localcluster as lc
from tests.cases import INVALID, Bad, base
from tests.cluster.conftest import (
    OperatorProcess,
    apply,
    condition,
    events,
    forbidden_calls,
    get_json,
    llmd,
    patch_spec,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "manifests" / "samples").glob("*.yaml"))
CHILD_KINDS = ("deployment", "service", "configmap", "networkpolicy", "poddisruptionbudget")


@pytest.fixture(autouse=True)
def _operator_log_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    rep = getattr(request.node, "rep_call", None)
    op = request.node.funcargs.get("operator")
    if rep is not None and rep.failed and op is not None:
        print("---- operator log ----\n" + op.tail())


def wait_ready(cluster: lc.LocalCluster, name: str, namespace: str, timeout: float = 90) -> Any:
    last: list[Any] = [None]

    def ready() -> Any:
        last[0] = o = llmd(cluster, name, namespace)
        return o and condition(o, "Ready").get("status") == "True" and o

    try:
        return wait_for(ready, timeout, what=f"llmd/{name} Ready")
    except pytest.fail.Exception:
        print("last status:", json.dumps((last[0] or {}).get("status"), indent=1))
        print(cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout)
        raise


def children(cluster: lc.LocalCluster, namespace: str, kind: str) -> list[dict[str, Any]]:
    return list(
        get_json(cluster, kind, "-n", namespace, "-l", "app.kubernetes.io/managed-by=llm-operator")[
            "items"
        ]
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.stem)
def test_samples_create_owned_children_and_become_ready(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str, sample: Path
) -> None:
    # The samples that name a Secret need it there and opted in, as the README says.
    cluster.kubectl(
        "create", "secret", "generic", "hf-token", "-n", namespace, "--from-literal=token=hf_x"
    )
    cluster.kubectl("label", "secret", "hf-token", "-n", namespace, f"{SECRET_OPT_IN_LABEL}=true")
    cluster.kubectl("apply", "-n", namespace, "-f", str(sample))
    name = yaml.safe_load(sample.read_text())["metadata"]["name"]
    obj = wait_ready(cluster, name, namespace)
    uid = obj["metadata"]["uid"]
    expected = {"deployment": 1, "service": 1, "configmap": 1, "networkpolicy": 1}
    spec = obj["spec"]
    if spec.get("replicas", 1) > 1 or spec.get("autoscaling", {}).get("enabled"):
        expected["poddisruptionbudget"] = 1
    if spec.get("autoscaling", {}).get("scaleToZero", {}).get("enabled"):
        # The activator's Deployment, the replicas' headless Service, the activator's policy.
        expected.update({"deployment": 2, "service": 2, "networkpolicy": 2})
    for kind in CHILD_KINDS:
        items = children(cluster, namespace, kind)
        names = [i["metadata"]["name"] for i in items]
        assert len(items) == expected.get(kind, 0), f"{kind}: {names}"
        for item in items:
            refs = item["metadata"]["ownerReferences"]
            assert refs[0]["uid"] == uid
            assert refs[0]["controller"] is True
    at_zero = spec.get("replicas", 1) == 0  # the scale-to-zero sample starts at zero
    status = obj["status"]
    assert status["readyReplicas"] == status["desiredReplicas"] >= (0 if at_zero else 1)
    if at_zero:
        assert condition(obj, "Ready")["reason"] == "ScaledToZero"
    assert condition(obj, "Valid")["status"] == "True"
    table = cluster.kubectl("get", "llmd", name, "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "READY", "REPLICAS", "DESIRED", "GPU"]
    assert row.split()[1] == "True"
    assert row.split()[2] == str(obj["status"]["readyReplicas"])
    reasons = {e["reason"] for e in events(cluster, name, namespace)}
    assert {"Created"} | (set() if at_zero else {"Ready"}) <= reasons


@pytest.mark.parametrize("case", [c for c in INVALID if c.where == "schema"], ids=lambda c: c.id)
def test_schema_refuses_invalid_manifests_with_a_readable_message(
    cluster: lc.LocalCluster, chart_kubeconfig: Path, namespace: str, case: Bad
) -> None:
    out = apply(cluster, case.manifest("bad"), namespace, check=False)
    assert out.returncode != 0
    assert case.expect in out.stderr, out.stderr
    assert get_json(cluster, "llmd", "bad", "-n", namespace) is None


def test_operator_marks_invalid_and_keeps_reconciling_others(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    bad = [c for c in INVALID if c.where == "operator"]
    for i, case in enumerate(bad):
        apply(cluster, case.manifest(f"bad-{i}"), namespace)
    apply(cluster, base("good"), namespace)
    for i, case in enumerate(bad):
        obj = wait_for(
            lambda i=i: (
                (o := llmd(cluster, f"bad-{i}", namespace))
                and condition(o, "Valid").get("status") == "False"
                and o
            ),
            60,
            what=f"bad-{i} Valid=False",
        )
        assert case.expect in condition(obj, "Valid")["message"]
        assert obj["status"]["phase"] == "Invalid"
        evs = events(cluster, f"bad-{i}", namespace)
        assert any(e["reason"] == "Invalid" and case.expect in e["message"] for e in evs)
        assert get_json(cluster, "deployment", f"bad-{i}", "-n", namespace) is None
    wait_ready(cluster, "good", namespace)
    assert operator.proc is not None
    assert operator.proc.poll() is None


def test_generation_change_updates_config_map_without_rolling(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, base("gen"), namespace)
    wait_ready(cluster, "gen", namespace)
    before = get_json(cluster, "deployment", "gen", "-n", namespace)
    patch_spec(cluster, "gen", namespace, {"generation": {"temperature": 1.2}})
    wait_for(
        lambda: (
            "temperature: 1.2"
            in get_json(cluster, "configmap", "gen-gateway", "-n", namespace)["data"][
                "gateway.yaml"
            ]
        ),
        60,
        what="the ConfigMap to carry the new temperature",
    )
    wait_for(
        lambda: llmd(cluster, "gen", namespace)["status"].get("observedGeneration") == 2,
        30,
        what="observedGeneration 2",
    )
    after = get_json(cluster, "deployment", "gen", "-n", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"]["template"] == before["spec"]["template"]


def test_quantization_change_rolls_the_deployment(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, base("roll"), namespace)
    wait_ready(cluster, "roll", namespace)
    before = get_json(cluster, "deployment", "roll", "-n", namespace)
    patch_spec(cluster, "roll", namespace, {"quantization": {"mode": "fp8"}})

    def rolled() -> Any:
        d = get_json(cluster, "deployment", "roll", "-n", namespace)
        args = d["spec"]["template"]["spec"]["containers"][0]["args"]
        return (
            d["metadata"]["generation"] > before["metadata"]["generation"] and "fp8" in args and d
        )

    wait_for(rolled, 60, what="the pod template to carry --quantization fp8")
    rs = children(cluster, namespace, "replicaset")
    assert len(rs) >= 2  # a new ReplicaSet: the pods roll
    wait_for(
        lambda: (
            (d := get_json(cluster, "deployment", "roll", "-n", namespace))
            and d["status"].get("updatedReplicas") == 1
            and d["status"].get("readyReplicas") == 1
        ),
        90,
        what="the rollout to finish",
    )


def test_deleting_the_llmdeployment_removes_every_child(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, base("gone", replicas=2), namespace)
    wait_ready(cluster, "gone", namespace)
    assert children(cluster, namespace, "poddisruptionbudget")
    cluster.kubectl("delete", "llmd", "gone", "-n", namespace)
    for kind in (*CHILD_KINDS, "pods"):
        wait_for(
            lambda kind=kind: children(cluster, namespace, kind) == [],
            90,
            what=f"{kind} to be garbage-collected",
        )


def test_scale_subresource_when_autoscaling_is_off(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, base("scaled"), namespace)
    wait_ready(cluster, "scaled", namespace)
    cluster.kubectl("scale", "llmd/scaled", "-n", namespace, "--replicas=3")
    wait_for(
        lambda: get_json(cluster, "deployment", "scaled", "-n", namespace)["spec"]["replicas"] == 3,
        60,
        what="the Deployment to ask for 3",
    )
    obj = wait_ready(cluster, "scaled", namespace)
    wait_for(
        lambda: llmd(cluster, "scaled", namespace)["status"].get("readyReplicas") == 3,
        90,
        what="3 ready replicas",
    )
    scale = json.loads(
        cluster.kubectl(
            "get",
            "--raw",
            f"/apis/llmops.dev/v1alpha1/namespaces/{namespace}/llmdeployments/scaled/scale",
        ).stdout
    )
    assert scale["spec"]["replicas"] == 3
    assert scale["status"]["selector"] == obj["status"]["selector"]


def test_unschedulable_pods_surface_as_condition_and_event(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    m = base("greedy")
    m["spec"]["resources"]["gpu"]["count"] = 8  # nodes have 4 GPUs each
    apply(cluster, m, namespace)

    def limited() -> Any:
        o = llmd(cluster, "greedy", namespace)
        return condition(o, "Progressing").get("reason") == "InsufficientGPU" and o

    obj = wait_for(limited, 60, what="Progressing=False InsufficientGPU")
    assert "Insufficient nvidia.com/gpu" in condition(obj, "Progressing")["message"]
    assert obj["status"]["phase"] == "Pending"
    assert any(e["reason"] == "InsufficientGPU" for e in events(cluster, "greedy", namespace))


def test_killed_mid_reconcile_converges_without_duplicates(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    names = [f"crash-{i}" for i in range(5)]
    apply(cluster, [base(n, replicas=1) for n in names], namespace)
    wait_for(
        lambda: children(cluster, namespace, "configmap"), 30, what="the first child to appear"
    )
    operator.kill()  # SIGKILL, in the middle of the batch
    partial = len(children(cluster, namespace, "deployment"))
    operator.start()
    for n in names:
        wait_ready(cluster, n, namespace, timeout=120)
    for kind in ("deployment", "service", "configmap", "networkpolicy"):
        items = children(cluster, namespace, kind)
        assert sorted(i["metadata"]["name"] for i in items) == sorted(
            f"{n}-gateway" if kind == "configmap" else n for n in names
        ), kind
    assert partial <= len(names)


def test_the_charts_rights_were_enough_for_every_scenario(operator: OperatorProcess) -> None:
    # Last in this module: every scenario above ran with the chart's ServiceAccount.
    assert operator.proc is not None and operator.proc.poll() is None
    assert forbidden_calls(operator) == []
