"""`helm install`, upgrade and uninstall on the local control plane, and the chart's RBAC.

The reconcile and autoscale scenarios (test_reconciler.py, test_autoscaler.py) run their
operator with the token of the ServiceAccount this chart creates (fixture chart_kubeconfig).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_operator.lab import localcluster as lc
from tests.cases import base
from tests.cluster.conftest import (
    CHART,
    RELEASE,
    RELEASE_NAMESPACE,
    apply,
    get_json,
    helm,
    wait_for,
)


def test_install_establishes_the_crd_and_creates_the_operator(
    cluster: lc.LocalCluster, chart_kubeconfig: Path
) -> None:
    status = json.loads(
        helm(cluster, "status", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "json").stdout
    )
    assert status["info"]["status"] == "deployed"
    crd = get_json(cluster, "crd", "llmdeployments.llmops.dev")
    established = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert established["Established"] == "True"
    dep = get_json(cluster, "deployment", RELEASE, "-n", RELEASE_NAMESPACE)
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == RELEASE
    assert get_json(cluster, "clusterrole", RELEASE) is not None


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("patch", "llmdeployments.llmops.dev/scale", True),
        ("create", "deployments.apps", True),
        ("create", "events", True),
        # A Secret an LLMDeployment names is read by name for its opt-in label; never listed.
        ("get", "secrets", True),
        ("list", "secrets", False),
        ("watch", "secrets", False),
        ("delete", "nodes", False),
        ("create", "clusterroles.rbac.authorization.k8s.io", False),
        ("update", "llmdeployments.llmops.dev", False),
        ("delete", "pods", False),
        ("create", "pods/exec", False),
    ],
)
def test_service_account_may_do_only_what_the_chart_grants(
    cluster: lc.LocalCluster, chart_kubeconfig: Path, verb: str, resource: str, allowed: bool
) -> None:
    out = cluster.kubectl(
        "--kubeconfig", str(chart_kubeconfig), "auth", "can-i", verb, resource, "-A", check=False
    )
    assert out.stdout.strip() == ("yes" if allowed else "no")


def test_an_action_outside_the_role_is_denied(
    cluster: lc.LocalCluster, chart_kubeconfig: Path, namespace: str
) -> None:
    cluster.kubectl(
        "create", "secret", "generic", "hf-token", "-n", namespace, "--from-literal=token=hf_secret"
    )
    denied = cluster.kubectl(
        "--kubeconfig", str(chart_kubeconfig), "get", "secrets", "-n", namespace, check=False
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    assert "hf_secret" not in denied.stdout + denied.stderr
    # What it is granted works with the same credentials.
    ok = cluster.kubectl("--kubeconfig", str(chart_kubeconfig), "get", "llmd", "-A", check=False)
    assert ok.returncode == 0, ok.stderr


def test_upgrade_rolls_the_config_and_uninstall_keeps_the_crd_and_objects(
    cluster: lc.LocalCluster, chart_kubeconfig: Path, namespace: str
) -> None:
    release, ns = "second", f"{namespace}-ops"
    name = f"{release}-llm-operator"
    installed = helm(cluster, "install", release, str(CHART), "-n", ns, "--create-namespace")
    assert "`helm uninstall` keeps the CRD" in installed.stdout  # NOTES.txt says so up front
    before = get_json(cluster, "deployment", name, "-n", ns)
    helm(
        cluster,
        "upgrade",
        release,
        str(CHART),
        "-n",
        ns,
        "--set",
        "operator.evaluationIntervalSeconds=30",
    )
    history = json.loads(helm(cluster, "history", release, "-n", ns, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2]
    assert history[-1]["status"] == "deployed"
    cm = get_json(cluster, "configmap", f"{name}-config", "-n", ns)
    assert "evaluationIntervalSeconds: 30" in cm["data"]["config.yaml"]
    after = get_json(cluster, "deployment", name, "-n", ns)
    key = "checksum/config"
    assert (
        after["spec"]["template"]["metadata"]["annotations"][key]
        != before["spec"]["template"]["metadata"]["annotations"][key]
    )

    apply(cluster, base("survivor"), namespace)
    helm(cluster, "uninstall", release, "-n", ns)
    wait_for(lambda: get_json(cluster, "clusterrole", name) is None, 30, what="ClusterRole removed")
    assert get_json(cluster, "deployment", name, "-n", ns) is None
    # Helm never deletes CRDs from crds/: the CRD and every LLMDeployment stay.
    assert get_json(cluster, "crd", "llmdeployments.llmops.dev") is not None
    assert get_json(cluster, "llmd", "survivor", "-n", namespace) is not None
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
