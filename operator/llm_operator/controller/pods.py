"""The replica pods, followed by the operator's own informer (kube/informer.py), not by kopf.

Each pod event used to go through kopf: a worker per pod, the handler machinery per event, and
at a start every listed pod's whole body held until kopf's indexes were filled. Here a pod
event updates a small ``PodState`` and, when that state changed, asks for a status refresh of
its object on a small pool: at most one queued refresh per object, and the refresh reads the
pods afresh when it runs (latest state wins; ``reconcile.refresh_status`` coalesces the runs).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from kubernetes import client

from llm_operator.builders.common import COMPONENT, DEPLOYMENT_LABEL, MANAGED_BY
from llm_operator.kube.informer import Informer, Key
from llm_operator.kube.states import PodState

log = logging.getLogger("llm_operator.pods")

# The replica pods of every LLMDeployment (an activator's CPU pod is not a replica).
REPLICA_POD_SELECTOR = (
    f"app.kubernetes.io/managed-by={MANAGED_BY},{DEPLOYMENT_LABEL},"
    f"app.kubernetes.io/component={COMPONENT}"
)
# How long a reader waits for the first listing before it gives up (kopf retries a handler).
SYNC_SECONDS = 60.0
REFRESH_WORKERS = 4


def _owner(pod: dict[str, Any]) -> Key | None:
    meta = pod.get("metadata") or {}
    name = (meta.get("labels") or {}).get(DEPLOYMENT_LABEL)
    return (meta.get("namespace") or "", name) if name else None


def replica_pods(
    api: client.ApiClient, namespaces: list[str], on_change: Callable[[Key], None]
) -> Informer[PodState]:
    """An informer of the replica pods in ``namespaces`` (every namespace when empty)."""
    core = client.CoreV1Api(api)
    listers: dict[str | None, Callable[..., Any]] = (
        {ns: functools.partial(core.list_namespaced_pod, ns) for ns in namespaces}
        if namespaces
        else {None: core.list_pod_for_all_namespaces}
    )
    return Informer(
        listers=listers,
        selector=REPLICA_POD_SELECTOR,
        key=_owner,
        parse=PodState.parse,
        on_change=on_change,
    )


def reader(informer: Informer[PodState]) -> Callable[[str, str], list[PodState]]:
    """The pods of one object; waits for the first listing (a status written from a half-listed
    cache would report missing replicas)."""

    def pods_of(namespace: str, name: str) -> list[PodState]:
        if not informer.synced.wait(SYNC_SECONDS):
            raise kopf.TemporaryError("replica pods are not listed yet", delay=5)
        return informer.get((namespace, name))

    return pods_of


class Coalescer:
    """Runs ``fn(key)`` on a small pool with at most one queued run per key."""

    def __init__(self, fn: Callable[[Key], None], workers: int = REFRESH_WORKERS) -> None:
        self._fn = fn
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pod-refresh")
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
