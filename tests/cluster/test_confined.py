"""An install confined to namespaces (`watchNamespaces`): Roles only, kopf's namespaced peering,
and an operator that serves its namespace and nothing else. Its own module, so that no
cluster-wide operator (the other modules' fixture) runs beside it and does the work for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_operator.lab import localcluster as lc
from tests.cases import base
from tests.cluster.conftest import (
    CHART,
    OperatorProcess,
    apply,
    condition,
    forbidden_calls,
    get_json,
    helm,
    llmd,
    wait_for,
)


@pytest.fixture(scope="module")
def confined(
    cluster: lc.LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """A second release of the chart that watches one namespace, with leader election on."""
    tag = uuid.uuid4().hex[:6]
    watched, other, ops = f"watched-{tag}", f"other-{tag}", f"ops-{tag}"
    for ns in (watched, other):
        cluster.kubectl("create", "namespace", ns)
    release = f"confined-{tag}"
    helm(
        cluster,
        "install",
        release,
        str(CHART),
        "-n",
        ops,
        "--create-namespace",
        f"--set=watchNamespaces={{{watched}}}",
        "--set=replicaCount=2",
    )
    sa = f"{release}-llm-operator"
    kubeconfig = cluster.service_account_kubeconfig(sa, ops)
    for ns in (watched, other):
        wait_for(
            lambda ns=ns: (
                cluster.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0
            ),
            60,
            what=f"default ServiceAccount in {ns}",
        )
    yield watched, other, kubeconfig
    helm(cluster, "uninstall", release, "-n", ops, check=False)
    for ns in (watched, other, ops):
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _can(cluster: lc.LocalCluster, kubeconfig: Path, *args: str) -> bool:
    out = cluster.kubectl("--kubeconfig", str(kubeconfig), "auth", "can-i", *args, check=False)
    return out.stdout.strip() == "yes"


def test_a_confined_install_has_rights_only_in_its_namespaces(
    cluster: lc.LocalCluster, confined: tuple[str, str, Path]
) -> None:
    watched, other, kc = confined
    assert _can(cluster, kc, "create", "deployments.apps", "-n", watched)
    assert _can(cluster, kc, "patch", "llmdeployments.llmops.dev/scale", "-n", watched)
    assert _can(cluster, kc, "patch", "kopfpeerings.kopf.dev", "-n", watched)
    assert not _can(cluster, kc, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not _can(cluster, kc, "list", "namespaces")
    for ns in (other, "kube-system", "default"):
        assert not _can(cluster, kc, "create", "deployments.apps", "-n", ns)
        assert not _can(cluster, kc, "patch", "configmaps", "-n", ns)
        assert not _can(cluster, kc, "get", "secrets", "-n", ns)
    assert not _can(cluster, kc, "list", "deployments.apps", "-A")
    assert not _can(cluster, kc, "list", "secrets", "-n", watched)
    assert not _can(cluster, kc, "patch", "clusterkopfpeerings.kopf.dev")


def test_a_confined_operator_with_leader_election_serves_only_its_namespace(
    cluster: lc.LocalCluster,
    confined: tuple[str, str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    watched, other, kc = confined
    peering = next(
        p["metadata"]["name"] for p in get_json(cluster, "kopfpeerings", "-n", watched)["items"]
    )
    op = OperatorProcess(
        cluster,
        tmp_path_factory.mktemp("confined") / "operator.log",
        kubeconfig=kc,
        args=["--namespace", watched, "--peering", peering],
    )
    op.start()
    try:
        apply(cluster, base("mine"), watched)
        apply(cluster, base("theirs"), other)
        wait_for(
            lambda: condition(llmd(cluster, "mine", watched), "Ready").get("status") == "True",
            90,
            what="llmd/mine Ready (kopf took the namespaced peering)",
        )
        assert (llmd(cluster, "theirs", other) or {}).get("status") is None
        assert get_json(cluster, "deployment", "theirs", "-n", other) is None
        peers = get_json(cluster, "kopfpeering", peering, "-n", watched)
        assert peers.get("status"), "the operator announced itself in the namespace's peering"
        assert forbidden_calls(op) == [], op.tail()
        # This module runs no other operator: the confined one did the work.
        assert "Handler 'reconcile' succeeded" in op.log_path.read_text()
    finally:
        op.stop()
