"""What the reconciler does for scale to zero (docs/autoscaling.md, "Scale to zero").

- The public Service selects the activator while no replica is ready and the replicas
  otherwise (``front_selector``): the reconcile applies it with the rest, and every Deployment
  event switches it when readiness crosses zero (``switch_front``), without reading anything.
- Turned off, the activator's objects are deleted (``prune``) — read first only for objects that
  have an activator Deployment in the operator's index, so the thousands of objects that never
  enabled it cost no request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.activator import activator_children, front_selector
from llm_operator.builders.network import service
from llm_operator.kube.client import Kube
from llm_operator.kube.states import DeploymentState

# The selector this process last applied to each object's Service: a Deployment event that
# would apply the same writes nothing.
_front: dict[tuple[str, str], dict[str, str]] = {}
_front_guard = threading.Lock()

ActivatorSource = Callable[[str, str], DeploymentState | None]


def ready_replicas(
    kube: Kube, obj: LLMDeployment, deployment: Callable[[str, str], DeploymentState | None] | None
) -> int:
    """Ready replicas, read only when the Service's selector depends on them."""
    if not obj.spec.autoscaling.scale_to_zero.enabled:
        return 0
    ns, name = obj.metadata.namespace, obj.metadata.name
    dep = deployment(ns, name) if deployment else kube.get_deployment(ns, name)
    return dep.ready_replicas if dep else 0


def applied(obj: LLMDeployment, desired: list[dict[str, Any]]) -> None:
    """Remember the selector the reconcile just applied to the Service."""
    name = obj.metadata.name
    for m in desired:
        if m["kind"] == "Service" and m["metadata"]["name"] == name:
            with _front_guard:
                _front[(obj.metadata.namespace, name)] = m["spec"]["selector"]


def switch_front(kube: Kube, obj: LLMDeployment, deployment: DeploymentState | None) -> bool:
    """Point the Service at the activator or the replicas as readiness says; True if it moved.

    Only while scale to zero is on (off, the reconcile's selector is the replicas' and stays).
    """
    if not obj.spec.autoscaling.scale_to_zero.enabled:
        return False
    key = (obj.metadata.namespace, obj.metadata.name)
    want = front_selector(obj, deployment.ready_replicas if deployment else 0)
    with _front_guard:
        if _front.get(key) == want:
            return False
    kube.apply(service(obj, want), None)
    with _front_guard:
        _front[key] = want
    return True


def forget(namespace: str, name: str) -> None:
    with _front_guard:
        _front.pop((namespace, name), None)


def prune(
    kube: Kube, obj: LLMDeployment, activator: ActivatorSource | None
) -> list[dict[str, Any]]:
    """Delete the activator's objects when scale to zero is off; what was deleted (kind, name)."""
    if obj.spec.autoscaling.scale_to_zero.enabled:
        return []
    ns, name, uid = obj.metadata.namespace, obj.metadata.name, obj.metadata.uid
    if activator is not None and activator(ns, name) is None:
        return []  # never enabled, or already pruned: the index knows without a request
    gone: list[dict[str, Any]] = []
    for kind, child in reversed(activator_children(name)):  # the pod before its rights
        if kube.delete_if_owned(kind.api_version, kind.kind, ns, child, uid):
            gone.append({"kind": kind.kind, "metadata": {"name": child}})
    return gone
