"""The replica pods and Deployments, followed by the operator's own informers
(kube/informer.py), not by kopf.

Each pod and Deployment event used to go through kopf: a worker per object, the handler
machinery per event, and at a start every listed body held until kopf's indexes were filled
(the restart's memory peak). Here an event updates a small state (``PodState``; a Deployment's
``DeploymentState`` and ``Held``) and, when that state changed, asks for a status refresh of its
object on a small pool: at most one queued refresh per object, and the refresh reads the state
afresh when it runs (latest state wins; ``reconcile.refresh_status`` coalesces the runs).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import kopf
from kubernetes import client

from llm_operator.builders.common import COMPONENT, DEPLOYMENT_LABEL, MANAGED_BY
from llm_operator.kube.informer import Informer, Key
from llm_operator.kube.states import DeploymentState, Held, PodState

log = logging.getLogger("llm_operator.watched")

# The replicas' pods and Deployments of every LLMDeployment (an activator is not a replica).
REPLICA_SELECTOR = (
    f"app.kubernetes.io/managed-by={MANAGED_BY},{DEPLOYMENT_LABEL},"
    f"app.kubernetes.io/component={COMPONENT}"
)
# How long a reader waits for the first listing before it gives up (kopf retries a handler).
SYNC_SECONDS = 60.0
REFRESH_WORKERS = 4

S = TypeVar("S")
# What the operator keeps of a replica Deployment: its state (the status) and what it holds
# (the owner's limits, controller/quota.py).
Replicas = tuple[DeploymentState, Held]


def _owner(obj: dict[str, Any]) -> Key | None:
    meta = obj.get("metadata") or {}
    name = (meta.get("labels") or {}).get(DEPLOYMENT_LABEL)
    return (meta.get("namespace") or "", name) if name else None


def _listers(
    namespaced: Callable[..., Any], everywhere: Callable[..., Any], namespaces: list[str]
) -> dict[str | None, Callable[..., Any]]:
    if namespaces:
        return {ns: functools.partial(namespaced, ns) for ns in namespaces}
    return {None: everywhere}


def replica_pods(
    api: client.ApiClient, namespaces: list[str], on_change: Callable[[Key], None]
) -> Informer[PodState]:
    """An informer of the replica pods in ``namespaces`` (every namespace when empty)."""
    core = client.CoreV1Api(api)
    return Informer(
        listers=_listers(core.list_namespaced_pod, core.list_pod_for_all_namespaces, namespaces),
        selector=REPLICA_SELECTOR,
        key=_owner,
        parse=PodState.parse,
        on_change=on_change,
    )


def _replicas(body: dict[str, Any]) -> Replicas:
    return DeploymentState.parse(body), Held.of_deployment(body)


def replica_deployments(
    api: client.ApiClient, namespaces: list[str], on_change: Callable[[Key], None]
) -> Informer[Replicas]:
    """An informer of the replica Deployments in ``namespaces`` (every namespace when empty)."""
    apps = client.AppsV1Api(api)
    return Informer(
        listers=_listers(
            apps.list_namespaced_deployment, apps.list_deployment_for_all_namespaces, namespaces
        ),
        selector=REPLICA_SELECTOR,
        key=_owner,
        parse=_replicas,
        on_change=on_change,
    )


def _synced(informer: Informer[Any]) -> None:
    """A status written from a half-listed cache would report missing replicas: wait."""
    if not informer.synced.wait(SYNC_SECONDS):
        raise kopf.TemporaryError("the replicas' pods and Deployments are not listed yet", delay=5)


def pods_reader(informer: Informer[PodState]) -> Callable[[str, str], list[PodState]]:
    def pods_of(namespace: str, name: str) -> list[PodState]:
        _synced(informer)
        return informer.get((namespace, name))

    return pods_of


def deployment_reader(
    informer: Informer[Replicas],
) -> Callable[[str, str], DeploymentState | None]:
    def deployment_of(namespace: str, name: str) -> DeploymentState | None:
        _synced(informer)
        found = informer.get((namespace, name))
        return found[0][0] if found else None

    return deployment_of


def held_reader(informer: Informer[Replicas]) -> Callable[[str], list[Held]]:
    def held_of(namespace: str) -> list[Held]:
        _synced(informer)
        return [held for _state, held in informer.in_namespace(namespace)]

    return held_of


class Coalescer:
    """Runs ``fn(key)`` on a small pool with at most one queued run per key."""

    def __init__(self, fn: Callable[[Key], None], workers: int = REFRESH_WORKERS) -> None:
        self._fn = fn
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="refresh")
        self._pending: set[Key] = set()
        self._lock = threading.Lock()

    def submit(self, key: Key) -> None:
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)
        try:
            self._pool.submit(self._run, key)
        except RuntimeError:  # shut down: the operator is stopping
            with self._lock:
                self._pending.discard(key)

    def _run(self, key: Key) -> None:
        with self._lock:
            self._pending.discard(key)
        try:
            self._fn(key)
        except Exception as exc:  # one object's refresh must not stop the rest
            log.warning("status refresh of %s/%s failed: %s", key[0], key[1], exc)

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
