"""The built NetworkPolicy's meaning, read by a reference evaluator of the Kubernetes rules.

No CNI runs in the local cluster (nothing there enforces a NetworkPolicy), so the policy is
checked against the semantics of networking.k8s.io/v1 as the API reference states them: a pod
selected by a policy of a type admits only what one of its rules allows; a peer with only a
podSelector means pods of the policy's namespace, with only a namespaceSelector every pod of the
matching namespaces, with both the matching pods of the matching namespaces; a named port is
the destination container's port of that name; an empty selector matches everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.children import build_all
from llm_operator.config import OperatorConfig
from tests.cases import base

Manifest = dict[str, Any]


@dataclass
class Pod:
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # named container ports
    ip: str = "10.244.0.9"


def _matches(selector: Manifest | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    want = selector.get("matchLabels") or {}
    assert not selector.get("matchExpressions"), "the evaluator reads matchLabels only"
    return all(labels.get(k) == v for k, v in want.items())


def _ns_labels(ns: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": ns}  # set by the API server on every namespace


def _peer_ok(peer: Manifest, policy_ns: str, other: Pod | None) -> bool:
    if "ipBlock" in peer:
        return other is None  # the evaluator's callers use pods or the world
    if other is None:
        return False
    if "namespaceSelector" in peer:
        if not _matches(peer["namespaceSelector"], _ns_labels(other.namespace)):
            return False
    elif other.namespace != policy_ns:
        return False
    return _matches(peer.get("podSelector"), other.labels)


def _port_ok(rule_ports: list[Manifest] | None, port: int, named: dict[str, int]) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        want = p.get("port")
        if want is None or want == port or (isinstance(want, str) and named.get(want) == port):
            return True
    return False


def allowed(policy: Manifest, src: Pod | None, dst: Pod | None, port: int, ingress: bool) -> bool:
    """Whether ``policy`` lets src reach dst:port (None: a host outside the cluster)."""
    ns = policy["metadata"]["namespace"]
    spec = policy["spec"]
    me = dst if ingress else src
    kind = "Ingress" if ingress else "Egress"
    assert me is not None
    if me.namespace != ns or not _matches(spec["podSelector"], me.labels):
        return True  # not selected: this policy says nothing
    if kind not in spec.get("policyTypes", ["Ingress"]):
        return True
    other = src if ingress else dst
    named = dst.ports if dst is not None else {}
    for rule in spec.get("ingress" if ingress else "egress") or []:
        peers = rule.get("from" if ingress else "to")
        if peers is not None and not any(_peer_ok(p, ns, other) for p in peers):
            continue
        if _port_ok(rule.get("ports"), port, named):
            return True
    return False


def _policy_and_pod(**spec: Any) -> tuple[Manifest, Pod]:
    m = base("chat", **spec)
    m["metadata"].update({"namespace": "team-a", "uid": "0000-uid"})
    children = build_all(LLMDeployment.model_validate(m), OperatorConfig())
    policy = next(c for c in children if c["kind"] == "NetworkPolicy")
    deployment = next(c for c in children if c["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    ports = {
        p["name"]: p["containerPort"]
        for c in template["spec"]["containers"]
        for p in c.get("ports", [])
    }
    ns = deployment["metadata"]["namespace"]
    return policy, Pod(ns, template["metadata"]["labels"], ports)


PROMETHEUS = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})


@pytest.mark.parametrize(
    ("who", "port", "expected"),
    [
        ("same-namespace client", 8080, True),
        ("other-namespace client", 8080, False),
        ("other-namespace client", 8000, False),
        ("other-namespace client", 9090, False),
        ("same-namespace client", 8000, False),  # the engine: loopback, and no rule names it
        ("same-namespace client", 9090, False),  # metrics: the scraper only
        ("prometheus", 9090, True),
        ("prometheus", 8000, False),
        ("other pod of monitoring", 9090, False),
    ],
)
def test_who_reaches_which_port(who: str, port: int, expected: bool) -> None:
    policy, pod = _policy_and_pod()
    src = {
        "same-namespace client": Pod(pod.namespace, {"app": "web"}),
        "other-namespace client": Pod("elsewhere", {"app": "web"}),
        "prometheus": PROMETHEUS,
        "other pod of monitoring": Pod("monitoring", {"app": "grafana"}),
    }[who]
    assert allowed(policy, src, pod, port, ingress=True) is expected


def test_egress_is_dns_and_https_while_weights_come_from_the_hub() -> None:
    policy, pod = _policy_and_pod()
    dns = Pod("kube-system", {"k8s-app": "kube-dns"})
    assert allowed(policy, pod, dns, 53, ingress=False)
    assert allowed(policy, pod, None, 443, ingress=False)  # the hub, outside the cluster
    assert not allowed(policy, pod, Pod("default", {"app": "db"}), 5432, ingress=False)
    assert not allowed(policy, pod, None, 80, ingress=False)


def test_no_egress_but_dns_once_the_weights_are_on_a_volume() -> None:
    policy, pod = _policy_and_pod(model={"uri": "pvc://models/llama/8b"})
    assert allowed(policy, pod, Pod("kube-system"), 53, ingress=False)
    assert not allowed(policy, pod, None, 443, ingress=False)
