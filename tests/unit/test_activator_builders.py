"""The objects scale to zero adds (pure): what the activator may do, how it is started, and who
selects whom."""

from __future__ import annotations

from typing import Any

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.activator import (
    activator_manifests,
    front_selector,
    lease_owner,
)
from llm_operator.builders.network import service_monitor
from llm_operator.builders.pod import deployment
from llm_operator.config import OperatorConfig
from llm_operator.gateway.activator_cli import parser
from tests.cases import base

ZERO = {"enabled": True, "minReplicas": 0, "maxReplicas": 4, "scaleToZero": {"enabled": True}}


def obj(**auto: Any) -> LLMDeployment:
    m = base("chat")
    m["metadata"].update({"namespace": "team-a", "uid": "0000-uid"})
    m["spec"]["autoscaling"] = {**ZERO, **auto}
    m["spec"]["gateway"] = {"apiKeySecretRef": {"name": "keys"}}
    return LLMDeployment.model_validate(m)


def built(o: LLMDeployment) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in activator_manifests(o, OperatorConfig())}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_activator_may_patch_its_own_lease_and_list_endpoint_slices_only() -> None:
    role = built(obj())["Role"]
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["chat-activator"],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]},
    ]
    binding = built(obj())["RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "chat-activator", "namespace": "team-a"}
    ]
    pod = built(obj())["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "chat-activator"


def test_the_activator_is_started_as_its_own_command_line_parses_it() -> None:
    d = built(obj(scaleToZero={"enabled": True, "holdSeconds": 45, "maxHeldRequests": 7}))
    c = d["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["llm-activator"]
    args = parser().parse_args(c["args"])
    assert (args.hold_seconds, args.max_held) == (45, 7)
    assert (args.namespace, args.service, args.lease) == (
        "team-a",
        "chat-replicas",
        "chat-activator",
    )
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert str(args.config).rsplit("/", 1)[0] in mounts  # the gateway's ConfigMap
    assert "/var/run/llm-gateway/keys" in mounts  # and its keys: it authenticates the same way


def test_the_activator_pod_meets_restricted_pod_security_fields() -> None:
    spec = built(obj())["Deployment"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    sc = spec["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "resources" in spec["containers"][0] and "nvidia.com/gpu" not in str(spec)


def test_selectors_never_cross() -> None:
    o = obj()
    objs = built(o)
    activator_pod = objs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    replica = deployment(o, OperatorConfig())
    replica_pod = replica["spec"]["template"]["metadata"]["labels"]
    # The replicas' Deployment never counts the activator pod, nor the reverse.
    assert not matches(replica["spec"]["selector"]["matchLabels"], activator_pod)
    assert not matches(objs["Deployment"]["spec"]["selector"]["matchLabels"], replica_pod)
    # The headless Service reads replica pods only, and the ServiceMonitor does not scrape it.
    headless = objs["Service"]
    assert headless["spec"]["clusterIP"] == "None"
    assert matches(headless["spec"]["selector"], replica_pod)
    assert not matches(headless["spec"]["selector"], activator_pod)
    sm = service_monitor(o, OperatorConfig())
    assert not matches(sm["spec"]["selector"]["matchLabels"], headless["metadata"]["labels"])


def test_the_public_service_fronts_the_activator_only_while_no_replica_is_ready() -> None:
    o = obj()
    activator_pod = built(o)["Deployment"]["spec"]["template"]["metadata"]["labels"]
    replica_pod = deployment(o, OperatorConfig())["spec"]["template"]["metadata"]["labels"]
    assert matches(front_selector(o, 0), activator_pod)
    assert not matches(front_selector(o, 0), replica_pod)
    assert matches(front_selector(o, 1), replica_pod)
    m = base("plain")
    plain = LLMDeployment.model_validate(m)
    assert front_selector(plain, 0) == {
        "llmops.dev/deployment": "plain",
        "app.kubernetes.io/component": "inference",
    }


def test_a_relabelled_lease_reports_for_nobody_else() -> None:
    # The activator may patch its Lease's labels; only the name the operator gave it counts.
    assert lease_owner("chat-activator", {"llmops.dev/deployment": "chat"}) == "chat"
    assert lease_owner("chat-activator", {"llmops.dev/deployment": "billing"}) is None
    assert lease_owner("chat-activator", {}) is None
    assert lease_owner(None, {"llmops.dev/deployment": "chat"}) is None
