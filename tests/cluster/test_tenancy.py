"""A multi-tenant cluster can trust the operator: what the API server's own PodSecurity admission
says of the pods it builds, and Secrets that must opt in (an install confined to namespaces is
in test_confined.py, where no cluster-wide operator runs beside it)."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.children import build_all
from llm_operator.builders.common import SECRET_OPT_IN_LABEL
from llm_operator.config import OperatorConfig
from llm_operator.lab import localcluster as lc
from tests.cases import base
from tests.cluster.conftest import (
    OperatorProcess,
    apply,
    condition,
    events,
    forbidden_calls,
    get_json,
    llmd,
    wait_condition,
    wait_for,
)

VARIANTS: dict[str, dict[str, Any]] = {
    "vllm": {},
    "tgi": {"engine": {"kind": "tgi"}},
    "vllm-s3-keys": {
        "model": {
            "uri": "s3://bucket/llama",
            "parametersBillions": 8,
            "credentialsSecretRef": {"name": "s3-creds"},
        },
        "gateway": {"apiKeySecretRef": {"name": "keys"}},
    },
    "cached-4-gpus": {
        "model": {
            "uri": "hf://meta-llama/Llama-3.1-8B-Instruct",
            "parametersBillions": 8,
            "cache": {"size": "40Gi"},
            "credentialsSecretRef": {"name": "hf-token"},
        },
        "resources": {"gpu": {"profile": "nvidia-h100-80gb", "count": 4}},
    },
    "no-gateway": {"gateway": {"enabled": False}},
}


def _pod_templates(spec: dict[str, Any], namespace: str) -> list[tuple[str, dict[str, Any]]]:
    m = base("psa", **spec)
    m["metadata"].update(namespace=namespace, uid=str(uuid.uuid4()), generation=1)
    obj = LLMDeployment.model_validate(m)
    out = []
    for child in build_all(obj, OperatorConfig(), service_monitor_available=False):
        if child["kind"] in ("Deployment", "Job"):
            out.append((child["kind"], child["spec"]["template"]))
    return out


def _pod(template: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }


def _dry_run(cluster: lc.LocalCluster, pod: dict[str, Any]) -> Any:
    return cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False
    )


@pytest.fixture(scope="module")
def restricted(cluster: lc.LocalCluster) -> Iterator[str]:
    """A namespace where the API server's PodSecurity admission enforces "restricted"."""
    name = f"psa-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    wait_for(
        lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        60,
        what="default ServiceAccount",
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_pod_the_operator_builds_meets_pod_security_restricted(
    cluster: lc.LocalCluster, restricted: str, variant: str
) -> None:
    templates = _pod_templates(VARIANTS[variant], restricted)
    assert templates
    for kind, template in templates:
        out = _dry_run(cluster, _pod(template, restricted, f"{variant}-{kind.lower()}"))
        assert out.returncode == 0, f"{kind}: {out.stderr}"


def test_pod_security_admission_really_enforces_here(
    cluster: lc.LocalCluster, restricted: str
) -> None:
    """The control: the same pod with the engine back as root, or with a capability, is refused
    by the API server, so the passes above are the admission plugin's verdict."""
    (_, template), *_ = _pod_templates({}, restricted)
    as_root = copy.deepcopy(template)
    engine = as_root["spec"]["containers"][0]
    engine["securityContext"].update(runAsNonRoot=False, runAsUser=0)
    as_root["spec"]["securityContext"].pop("runAsNonRoot")
    out = _dry_run(cluster, _pod(as_root, restricted, "as-root"))
    assert out.returncode != 0
    assert "violates PodSecurity" in out.stderr and "runAsNonRoot" in out.stderr
    with_cap = copy.deepcopy(template)
    with_cap["spec"]["containers"][1]["securityContext"]["capabilities"]["add"] = ["NET_RAW"]
    out = _dry_run(cluster, _pod(with_cap, restricted, "with-cap"))
    assert "violates PodSecurity" in out.stderr and "NET_RAW" in out.stderr


def test_an_llmdeployment_becomes_ready_in_a_restricted_namespace(
    cluster: lc.LocalCluster, operator: OperatorProcess, restricted: str
) -> None:
    """End to end: the ReplicaSet controller creates the operator's pods through the same
    admission; a refused pod would never run and the object never be Ready."""
    apply(cluster, base("strict", replicas=2), restricted)
    wait_condition(cluster, "strict", restricted, "Ready", status="True", timeout=90)
    rs = get_json(cluster, "replicasets", "-n", restricted)["items"]
    failures = [
        c
        for r in rs
        for c in (r.get("status", {}).get("conditions") or [])
        if c["type"] == "ReplicaFailure"
    ]
    assert failures == []


def _secret(cluster: lc.LocalCluster, ns: str, name: str, value: str, opt_in: bool) -> None:
    cluster.kubectl("create", "secret", "generic", name, "-n", ns, f"--from-literal=token={value}")
    if opt_in:
        cluster.kubectl("label", "secret", name, "-n", ns, f"{SECRET_OPT_IN_LABEL}=true")


def test_a_secret_must_opt_in_before_an_llmdeployment_may_use_it(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    value = "sk-tenant-" + uuid.uuid4().hex
    _secret(cluster, namespace, "team-keys", value, opt_in=False)
    m = base("keyed")
    m["spec"]["gateway"] = {"apiKeySecretRef": {"name": "team-keys"}}
    apply(cluster, m, namespace)
    obj = wait_condition(cluster, "keyed", namespace, "Valid", reason="SecretNotAllowed")
    assert condition(obj, "Valid")["status"] == "False"
    assert SECRET_OPT_IN_LABEL in condition(obj, "Valid")["message"]
    assert any("team-keys" in e["message"] for e in events(cluster, "keyed", namespace, "Invalid"))
    assert get_json(cluster, "deployment", "keyed", "-n", namespace) is None

    # A missing Secret says so; nothing is built either.
    m2 = base("missing")
    m2["spec"]["model"]["credentialsSecretRef"] = {"name": "nowhere"}
    apply(cluster, m2, namespace)
    wait_for(
        lambda: (
            condition(llmd(cluster, "missing", namespace), "Valid").get("reason")
            == "SecretNotFound"
        ),
        60,
        what="Valid=False SecretNotFound",
    )

    # The Secret's owner opts in: the operator checks again on its own and builds.
    cluster.kubectl("label", "secret", "team-keys", "-n", namespace, f"{SECRET_OPT_IN_LABEL}=true")
    wait_condition(cluster, "keyed", namespace, "Ready", status="True", timeout=90)
    assert value not in operator.log_path.read_text(errors="replace")
    assert forbidden_calls(operator) == []
