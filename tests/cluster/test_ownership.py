"""The operator never takes over what it does not own, and any spec the API server accepts can
be handled: kopf's bookkeeping stays small whatever the spec's size."""

from __future__ import annotations

import json
from typing import Any

import yaml

from llm_operator.lab import localcluster as lc
from tests.cases import base
from tests.cluster.conftest import (
    RELEASE,
    RELEASE_NAMESPACE,
    OperatorProcess,
    apply,
    condition,
    events,
    forbidden_calls,
    get_json,
    llmd,
    patch_spec,
    wait_condition,
    wait_for,
)


def _users_deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"team": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


def _users_config_map(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"owner": "someone else"},
    }


def test_a_child_name_taken_by_someone_else_is_never_adopted(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    apply(cluster, [_users_deployment("web"), _users_config_map("web-gateway")], namespace)
    before = get_json(cluster, "deployment", "web", "-n", namespace)
    cm_before = get_json(cluster, "configmap", "web-gateway", "-n", namespace)

    apply(cluster, base("web"), namespace)
    obj = wait_condition(cluster, "web", namespace, "Valid", reason="NameConflict")
    message = condition(obj, "Valid")["message"]
    assert "Deployment/web" in message and "ConfigMap/web-gateway" in message
    assert condition(obj, "Valid")["status"] == "False"
    evs = events(cluster, "web", namespace, "Invalid")
    assert any("Deployment/web" in e["message"] for e in evs)

    # Untouched: same spec and labels (its resourceVersion moves with the status the Deployment
    # controller writes), no owner reference, no field of ours, nothing else created.
    after = get_json(cluster, "deployment", "web", "-n", namespace, "--show-managed-fields")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert after["metadata"].get("labels") == before["metadata"].get("labels")
    assert not [a for a in after["metadata"].get("annotations") or {} if "llmops.dev" in a]
    assert "ownerReferences" not in after["metadata"]
    assert all(f["manager"] != "llm-operator" for f in after["metadata"]["managedFields"])
    cm_after = get_json(cluster, "configmap", "web-gateway", "-n", namespace)
    assert cm_after["metadata"]["resourceVersion"] == cm_before["metadata"]["resourceVersion"]
    assert get_json(cluster, "service", "web", "-n", namespace) is None

    # Once the user removes what was in the way, the operator builds on its own.
    cluster.kubectl("delete", "deployment/web", "configmap/web-gateway", "-n", namespace)
    wait_condition(cluster, "web", namespace, "Ready", status="True", timeout=120)
    owned = get_json(cluster, "deployment", "web", "-n", namespace)
    assert owned["metadata"]["ownerReferences"][0]["kind"] == "LLMDeployment"
    assert forbidden_calls(operator) == []


def test_a_spec_at_the_schemas_limits_is_handled_and_kopfs_record_stays_small(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    """64 env values of 4,000 characters (256 KB of spec, over the 256 KiB that all of an
    object's annotations may hold) plus 150 KB of the user's own annotations: kopf used to copy
    both into one annotation, and every patch of the object then failed with 422."""
    m = base("huge")
    m["metadata"]["annotations"] = {"example.com/notes": "n" * 150_000}
    m["spec"]["engine"]["env"] = [{"name": f"OPTION_{i}", "value": "v" * 4000} for i in range(64)]
    m["spec"]["engine"]["extraArgs"] = [f"--x{i}=" + "a" * 1000 for i in range(64)]
    out = cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=yaml.safe_dump(m)
    )
    assert out.returncode == 0
    wait_condition(cluster, "huge", namespace, "Ready", status="True", timeout=90)
    obj = llmd(cluster, "huge", namespace)
    record = obj["metadata"]["annotations"]["llmops.dev/last-handled-configuration"]
    assert len(record) < 200, record
    # A later change is still seen as a change of the spec.
    patch_spec(cluster, "huge", namespace, {"replicas": 2})
    wait_for(
        lambda: get_json(cluster, "deployment", "huge", "-n", namespace)["spec"]["replicas"] == 2,
        60,
        what="the Deployment to follow replicas: 2",
    )
    log = operator.log_path.read_text(errors="replace")  # (timestamps hold ",422" at times)
    assert "status=422" not in log and "Unprocessable" not in log


def _operator_calls(cluster: lc.LocalCluster, namespace: str) -> list[dict[str, Any]]:
    """The chart ServiceAccount's requests in ``namespace``, from the API server's audit log."""
    user = f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}"
    calls = []
    for line in cluster.audit_log.read_text(errors="replace").splitlines():
        ev = json.loads(line)
        ref = ev.get("objectRef") or {}
        if ev["user"]["username"] == user and ref.get("namespace") == namespace:
            calls.append(ev)
    return calls


def _operator_pod_lists(cluster: lc.LocalCluster) -> int:
    """The chart ServiceAccount's lists of pods in any namespace (the informer lists cluster-wide
    when the operator is not confined)."""
    user = f"system:serviceaccount:{RELEASE_NAMESPACE}:{RELEASE}"
    count = 0
    for line in cluster.audit_log.read_text(errors="replace").splitlines():
        ev = json.loads(line)
        if (
            ev["user"]["username"] == user
            and ev["verb"] == "list"
            and (ev.get("objectRef") or {}).get("resource") == "pods"
        ):
            count += 1
    return count


def test_pod_events_cost_no_pod_listing(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    """Status follows pods from the operator's own informer (kube/informer.py): as the API
    server's audit log counts them, pod events cause no list of pods, however many there are."""
    lists_before = wait_for(
        lambda: _operator_pod_lists(cluster), 30, what="the informer's first listing audited"
    )
    apply(cluster, base("many", replicas=4), namespace)
    wait_for(
        lambda: (
            (o := llmd(cluster, "many", namespace))
            and condition(o, "Ready").get("status") == "True"
            and o["status"].get("readyReplicas") == 4
        ),
        120,
        what="llmd/many Ready with 4 replicas",
    )
    calls = _operator_calls(cluster, namespace)
    assert calls, "the audit log records the operator's calls"
    pod_lists = [
        c for c in calls if c["verb"] == "list" and c["objectRef"].get("resource") == "pods"
    ]
    status_writes = [
        c for c in calls if c["objectRef"].get("subresource") == "status" and c["verb"] == "patch"
    ]
    assert status_writes, "status followed the pods"
    assert pod_lists == []
    assert _operator_pod_lists(cluster) == lists_before
