"""helm lint and helm template: conventions, security, least privilege, schema, drift."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from llm_operator.config import OperatorConfig
from tests.chart.conftest import ALL_ON, CHART, Render, one
from tests.conftest import REPO

Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.parametrize(
    "values",
    [{}, ALL_ON, {"replicaCount": "3", "watchNamespaces": "{a,b}"}],
    ids=["defaults", "everything-on", "leader-election"],
)
def test_helm_lint_strict_passes(helm: Helm, values: dict[str, str]) -> None:
    out = helm("lint", "--strict", str(CHART), *[f"--set={k}={v}" for k, v in values.items()])
    assert "0 chart(s) failed" in out.stdout


def test_every_object_carries_the_standard_labels(render: Render) -> None:
    for obj in render(**ALL_ON):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "llm-operator"
        assert labels["app.kubernetes.io/instance"] == "rel"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "llm-operator-0.1.0"


def test_deployment_runs_non_root_read_only_without_capabilities(render: Render) -> None:
    dep = one(render(), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["port"] == "health"
    assert c["args"][:2] == ["run", "--config=/etc/llm-operator/config.yaml"]
    assert not any(a.startswith("--peering") for a in c["args"])
    assert dep["spec"]["strategy"]["type"] == "Recreate"  # never two operators at once
    assert pod["serviceAccountName"] == "rel-llm-operator"
    assert c["image"] == "ghcr.io/llmops-dev/llm-operator:0.1.0"


def test_more_than_one_replica_turns_on_leader_election(render: Render) -> None:
    objs = render(replicaCount="2")
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--peering=rel-llm-operator" in args
    assert one(objs, "ClusterKopfPeering")["metadata"]["name"] == "rel-llm-operator"
    rules = one(objs, "ClusterRole")["rules"]
    assert any("clusterkopfpeerings" in r["resources"] for r in rules)
    assert one(objs, "Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"


def test_watch_namespaces_and_scheduling_values_reach_the_pod(render: Render) -> None:
    objs = render(
        '--set-json=tolerations=[{"key":"ops","operator":"Exists"}]',
        "--set=nodeSelector.pool=system",
        "--set=watchNamespaces={team-a,team-b}",
    )
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert "--namespace=team-a" in pod["containers"][0]["args"]
    assert "--namespace=team-b" in pod["containers"][0]["args"]
    assert pod["nodeSelector"] == {"pool": "system"}
    assert pod["tolerations"] == [{"key": "ops", "operator": "Exists"}]


def test_config_map_is_a_valid_operator_config_with_the_built_in_prices(render: Render) -> None:
    cm = one(render(**{"operator.evaluationIntervalSeconds": "30"}), "ConfigMap")
    config = OperatorConfig.model_validate(yaml.safe_load(cm["data"]["config.yaml"]))
    assert config.evaluation_interval_seconds == 30
    assert config.gpu_profiles == OperatorConfig().gpu_profiles  # values.yaml has not drifted
    assert config.allowed_images == OperatorConfig().allowed_images


def test_config_change_rolls_the_operator(render: Render) -> None:
    def checksum(objs: list[dict[str, Any]]) -> str:
        ann = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(ann["checksum/config"])

    assert checksum(render()) != checksum(render(**{"operator.coldStartSeconds": "60"}))


# The operator's calls (kube/client.py, kopf) and nothing else. A change here is a change to
# what the operator may do in every cluster that installs it: review it as such.
EXPECTED_RULES = {
    ("llmops.dev", "llmdeployments"): {"get", "list", "watch", "patch"},
    ("llmops.dev", "llmdeployments/status"): {"get", "patch"},
    ("llmops.dev", "llmdeployments/scale"): {"get", "patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): {"get", "create", "patch", "delete"},
    ("", "configmaps"): {"get", "create", "patch", "delete"},
    ("", "persistentvolumeclaims"): {"get", "create", "patch", "delete"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch", "delete"},
    ("policy", "poddisruptionbudgets"): {"get", "create", "patch", "delete"},
    ("networking.k8s.io", "networkpolicies"): {"get", "create", "patch", "delete"},
    ("monitoring.coreos.com", "servicemonitors"): {"get", "create", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    # Scale to zero's activator: its ServiceAccount, Role, RoleBinding and Lease; EndpointSlices
    # only because its Role grants them (a Role grants only what its creator holds).
    ("", "serviceaccounts"): {"get", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "roles"): {"get", "create", "patch", "delete"},
    ("rbac.authorization.k8s.io", "rolebindings"): {"get", "create", "patch", "delete"},
    ("coordination.k8s.io", "leases"): {"get", "list", "watch", "create", "patch", "delete"},
    ("discovery.k8s.io", "endpointslices"): {"list"},
    # The opt-in label of a Secret an LLMDeployment names, read as metadata by name.
    ("", "secrets"): {"get"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
CLUSTER_SCOPED_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
}


def _granted(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                granted.setdefault((group, res), set()).update(rule["verbs"])
    return granted


def test_cluster_role_grants_exactly_what_the_operator_uses(render: Render) -> None:
    assert _granted(one(render(), "ClusterRole")) == EXPECTED_RULES | CLUSTER_SCOPED_RULES
    assert not [o for o in render() if o["kind"] in ("Role", "RoleBinding")]
    binding = one(render(), "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-llm-operator", "namespace": "ops"}
    ]


def test_watched_namespaces_get_a_role_each_and_nothing_cluster_wide(render: Render) -> None:
    objs = render("--set=watchNamespaces={team-a,team-b}")
    assert not [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = {o["metadata"]["namespace"]: o for o in objs if o["kind"] == "Role"}
    assert set(roles) == {"team-a", "team-b"}
    for role in roles.values():
        assert _granted(role) == EXPECTED_RULES
    bindings = [o for o in objs if o["kind"] == "RoleBinding"]
    assert {b["metadata"]["namespace"] for b in bindings} == {"team-a", "team-b"}
    for b in bindings:
        assert b["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "rel-llm-operator",
        }
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": "rel-llm-operator", "namespace": "ops"}
        ]


def test_leader_election_in_watched_namespaces_uses_a_kopf_peering_in_each(
    render: Render,
) -> None:
    objs = render("--set=watchNamespaces={team-a,team-b}", replicaCount="2")
    peerings = [o for o in objs if o["kind"] == "KopfPeering"]
    assert {p["metadata"]["namespace"] for p in peerings} == {"team-a", "team-b"}
    assert {p["metadata"]["name"] for p in peerings} == {"rel-llm-operator"}
    assert not [o for o in objs if o["kind"] == "ClusterKopfPeering"]
    for role in (o for o in objs if o["kind"] == "Role"):
        assert _granted(role)[("kopf.dev", "kopfpeerings")] == {"list", "watch", "patch", "get"}


def test_a_prometheus_ca_config_map_is_mounted_and_named_in_the_config(render: Render) -> None:
    objs = render(**{"prometheusCa.configMapName": "prom-ca"})
    cm = next(
        o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-config")
    )
    config = OperatorConfig.model_validate(yaml.safe_load(cm["data"]["config.yaml"]))
    assert config.prometheus_tls.ca_file == "/etc/llm-operator/prometheus-ca/ca.crt"
    assert config.prometheus_tls.insecure_skip_verify is False
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert {"name": "prometheus-ca", "configMap": {"name": "prom-ca"}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == "/etc/llm-operator/prometheus-ca" for m in mounts)


def test_rbac_and_service_account_can_be_brought_by_the_user(render: Render) -> None:
    objs = render(
        **{"rbac.create": "false", "serviceAccount.create": "false"},
        **{"serviceAccount.name": "platform-operator"},
    )
    kinds = {o["kind"] for o in objs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "ServiceAccount"}
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-operator"


def test_optional_monitoring_objects_follow_their_flags(render: Render) -> None:
    assert not {o["kind"] for o in render()} & {"ServiceMonitor", "PrometheusRule"}
    objs = render(**ALL_ON)
    sm = one(objs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["honorLabels"] is True
    assert sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
    svc = next(o for o in objs if o["kind"] == "Service")
    assert svc["metadata"]["labels"]["app.kubernetes.io/component"] == "metrics"
    dash = next(
        o for o in objs if o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"]
    )
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dash["data"]["llm-operator.json"])["uid"] == "llm-operator"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("replicaCount=-1", "/replicaCount"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("unknownKey=1", "additional properties 'unknownKey' not allowed"),
        ("metrics.port=0", "/metrics/port"),
        ("operator.prometheusUrl=prometheus:9090", "/operator/prometheusUrl"),
        ("operator.metricsWindow=60", "/operator/metricsWindow"),
        ("operator.gpuProfiles.h100.product=x", "/operator/gpuProfiles/h100"),
        ("prometheusRule.ttftSeconds=1", "/prometheusRule/ttftSeconds"),
        ("prometheusRule.objective=1.5", "/prometheusRule/objective"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("operator.limits.maxGpusPerNamespace=-1", "/operator/limits/maxGpusPerNamespace"),
        ("operator.limits.maxGPUs=4", "additional properties 'maxGPUs' not allowed"),
    ],
)
def test_schema_rejects_bad_values_with_the_path(helm: Helm, value: str, message: str) -> None:
    out = helm("template", "rel", str(CHART), f"--set={value}", check=False)
    assert out.returncode != 0
    assert message in out.stderr


def test_install_yaml_is_the_chart_rendered(bin_dir: Any) -> None:
    rendered = subprocess.run(
        ["bash", str(REPO / "hack" / "render-manifests.sh")],
        capture_output=True,
        text=True,
        check=True,
        env={"HELM": str(bin_dir / "helm"), "PATH": "/usr/bin:/bin"},
    ).stdout
    committed = (REPO / "manifests" / "install.yaml").read_text()
    assert committed == rendered, "manifests/install.yaml is stale: run `make manifests`"
    kinds = [d["kind"] for d in yaml.safe_load_all(committed) if d]
    assert kinds[0] == "Namespace"
    assert kinds.count("CustomResourceDefinition") == 3  # LLMDeployment, both kopf peerings


def _operator_env(objs: list[dict[str, Any]]) -> dict[str, str]:
    container = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_the_operator_runs_on_jemalloc_unless_told_otherwise(render: Render) -> None:
    env = _operator_env(render())
    assert env["PYTHONMALLOC"] == "malloc"
    assert env["LD_PRELOAD"] == "/usr/local/lib/libjemalloc.so.2"
    assert "background_thread:true" in env["MALLOC_CONF"]
    # The image links the library where the chart preloads it.
    assert env["LD_PRELOAD"] in (REPO / "images" / "operator.Dockerfile").read_text()
    plain = _operator_env(render(allocator="pymalloc"))
    assert not {"PYTHONMALLOC", "LD_PRELOAD", "MALLOC_CONF"} & plain.keys()


def test_the_charts_allocator_environment_loads_jemalloc(render: Render) -> None:
    """The rendered environment, given to a Python process here (hack/install-deps.sh links the
    library like the image does), really puts jemalloc under it."""
    env = _operator_env(render())
    probe = "print(open('/proc/self/maps').read())"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert "libjemalloc.so.2" in out.stdout, out.stderr
    assert "cannot be preloaded" not in out.stderr
