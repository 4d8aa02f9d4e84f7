"""kopf registrations. Importing this module registers the handlers; ``run`` starts kopf."""

from __future__ import annotations

import asyncio
import contextvars
import copy
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import kopf
from prometheus_client import start_http_server

from llm_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from llm_operator.autoscaling.actuator import Autoscaler
from llm_operator.autoscaling.signals import PrometheusSource
from llm_operator.autoscaling.wake import Wakes
from llm_operator.builders.activator import lease_owner
from llm_operator.builders.common import ACTIVATOR, DEPLOYMENT_LABEL, MANAGED_BY
from llm_operator.config import OperatorConfig
from llm_operator.controller import memory, quota, watched
from llm_operator.controller import reconcile as rec
from llm_operator.controller.diffbase import SpecDigestStorage
from llm_operator.kube.client import Kube
from llm_operator.kube.events import owner_body, post_event
from llm_operator.kube.states import ActivatorState, DeploymentState, LeaseState

T = TypeVar("T")

OWNED: dict[str, Any] = {
    "app.kubernetes.io/managed-by": MANAGED_BY,
    DEPLOYMENT_LABEL: kopf.PRESENT,
}
# Scale to zero's activator (its Deployment and Lease); the replicas' pods and Deployments are
# followed by the operator's own informers (controller/watched.py).
ACTIVATORS = {**OWNED, "app.kubernetes.io/component": ACTIVATOR}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = SpecDigestStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our own Events are posted explicitly
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.execution.max_workers = 8
    settings.peering.standalone = memo.get("peering") is None
    # Confined to namespaces, the operator has no cluster-wide rights: kopf then serves exactly
    # the namespaces given and the resources present at start, without listing namespaces or
    # watching CRDs (it retried those for a minute and logged 403s before falling back).
    settings.scanning.disabled = bool(memo.get("namespaces"))
    if memo.get("metrics_port"):
        start_http_server(memo["metrics_port"], registry=memo["autoscaler"].metrics.registry)
    if memo.get("peering"):
        settings.peering.name = memo["peering"]
        settings.peering.mandatory = True


@kopf.on.startup()
async def release_memory(memo: kopf.Memo, **_: Any) -> None:
    """Freed memory goes back to the system (controller/memory.py)."""
    memo["memory_release"] = asyncio.get_running_loop().create_task(memory.release_loop())


@kopf.on.cleanup()
async def stop_releasing_memory(memo: kopf.Memo, **_: Any) -> None:
    task: asyncio.Task[None] | None = memo.get("memory_release")
    if task is not None:
        task.cancel()


@kopf.on.startup()
def follow_replicas(memo: kopf.Memo, **_: Any) -> None:
    """The replica pods and Deployments come from the operator's own informers
    (controller/watched.py), started with kopf's watches; one whose state changed asks for its
    object's status refresh."""

    indexes = memo["indexes"] = {}  # filled by the first handler (_remember)

    def refresh(key: tuple[str, str]) -> None:
        if not indexes:  # no handler ran yet: each object's resume refreshes it
            return
        # in a copy of a handler's context: kopf.event finds kopf's Event queue there
        indexes["context"].copy().run(
            rec.refresh_status, _kube(memo), key[0], key[1], watched=_watched(indexes, memo)
        )

    def deployment_changed(key: tuple[str, str]) -> None:
        if not memo["deployments"].get(key):  # gone: its reservation goes with it
            quota.LEDGER.forget(*key)
        refreshes.submit(key)

    refreshes = memo["refreshes"] = watched.Coalescer(refresh)
    api, namespaces = _kube(memo).api, list(memo.get("namespaces") or [])
    memo["pods"] = watched.replica_pods(api, namespaces, refreshes.submit)
    memo["deployments"] = watched.replica_deployments(api, namespaces, deployment_changed)
    memo["pods"].start()
    memo["deployments"].start()


@kopf.on.cleanup()
def stop_following_replicas(memo: kopf.Memo, **_: Any) -> None:
    for informer in ("pods", "deployments"):
        if memo.get(informer) is not None:
            memo[informer].stop()
    if memo.get("refreshes") is not None:
        memo["refreshes"].stop()


# kopf's indexes the status refresh reads. kopf keeps one Index object per index for the life of
# the operator (``kopf/_core/engines/indexing.py``: ``OperatorIndexer.index``), so the ones a
# handler was given serve the informers' refreshes, which run outside kopf's handlers. They are
# kept in the dict the startup put in the memo: an object's handlers get a shallow copy of the
# operator's memo (``kopf/_core/reactor/inventory.py``), so a key set there would stay there.
# With them goes the handler's context: kopf.event posts through a queue kopf names in context
# variables of its handlers (``kopf/_core/engines/posting.py``), unset in the informers' threads.
INDEXES = ("llmd_bodies", "activator_states")


def _remember(memo: kopf.Memo, kw: dict[str, Any]) -> dict[str, Any]:
    indexes: dict[str, Any] = memo["indexes"]
    if not indexes:
        indexes.update({k: kw[k] for k in INDEXES}, context=contextvars.copy_context())
    return kw


def _kube(memo: kopf.Memo) -> Kube:
    kube: Kube = memo["kube"]
    return kube


def _config(memo: kopf.Memo) -> OperatorConfig:
    config: OperatorConfig = memo["config"]
    return config


# The reconcile is idempotent (server-side apply of fixed names): an unexpected error is
# retried after 15 s instead of kopf's default 60 s, so a child cannot stay missing for a minute
# while the status already says Ready.
RETRY_BACKOFF = 15


@kopf.on.resume(GROUP, VERSION, PLURAL, backoff=RETRY_BACKOFF)
@kopf.on.create(GROUP, VERSION, PLURAL, backoff=RETRY_BACKOFF)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec", backoff=RETRY_BACKOFF)
def reconcile(body: kopf.Body, memo: kopf.Memo, **kw: Any) -> None:
    rec.reconcile(
        _kube(memo),
        _config(memo),
        dict(body),
        watched=_watched(_remember(memo, kw), memo),
        held=_held(memo),
    )


def _autoscaling_enabled(spec: kopf.Spec, **_: Any) -> bool:
    return bool((spec.get("autoscaling") or {}).get("enabled"))


@kopf.daemon(GROUP, VERSION, PLURAL, when=_autoscaling_enabled, cancellation_timeout=10)
async def autoscale(
    body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: kopf.Logger, **kw: Any
) -> None:
    """Evaluate this object's autoscaling every interval until it is deleted or turned off."""
    auto: Autoscaler = memo["autoscaler"]
    interval = _config(memo).evaluation_interval_seconds
    meta = body["metadata"]
    pods_of, held_of = _pods(memo), _held(memo)
    activator_of = _activator(kw)
    while not stopped:
        try:
            ns, name = meta["namespace"], meta["name"]
            pods = pods_of(ns, name)
            activator = activator_of(ns, name)
            await asyncio.to_thread(
                auto.evaluate, dict(body), pods=pods, held=held_of, activator=activator
            )
        except Exception as exc:  # one bad evaluation must not end the loop
            logger.warning(f"autoscaler evaluation failed: {exc}")
        await stopped.wait(interval)


def _pods(memo: kopf.Memo) -> rec.PodSource:
    """Each object's replica pods, from the informer (no API call: the same cost for 1 pod or
    1,000)."""
    return watched.pods_reader(memo["pods"])


def _deployment(memo: kopf.Memo) -> Callable[[str, str], DeploymentState | None]:
    return watched.deployment_reader(memo["deployments"])


def _held(memo: kopf.Memo) -> quota.HeldSource:
    """What each namespace's owned Deployments ask for: the limits in ``limits`` count it."""
    return watched.held_reader(memo["deployments"])


# Bookkeeping of the API server and kubectl that nothing here reads: in a 1,000-object index
# they were 22 KB of a 36 KB LLMDeployment (managedFields with four field managers).
UNREAD_METADATA = ("managedFields",)
UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A private copy of an LLMDeployment without what the operator never reads."""
    meta = {k: v for k, v in body.get("metadata", {}).items() if k not in UNREAD_METADATA}
    if any(a in (meta.get("annotations") or {}) for a in UNREAD_ANNOTATIONS):
        annotations = meta["annotations"].items()
        meta["annotations"] = {k: v for k, v in annotations if k not in UNREAD_ANNOTATIONS}
    return copy.deepcopy({**body, "metadata": meta})


@kopf.index(GROUP, VERSION, PLURAL)
def llmd_bodies(
    body: kopf.Body, namespace: str | None, name: str | None, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    """Each LLMDeployment as last seen (a refresh reads it here instead of getting it)."""
    return {(namespace or "", name or ""): slim(body)}


@kopf.index("apps", "v1", "deployments", labels=ACTIVATORS)
def activator_states(
    body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[tuple[str, str], DeploymentState]:
    """Each object's activator Deployment (scale to zero): is it ready, does it exist at all."""
    return {(namespace or "", labels[DEPLOYMENT_LABEL]): DeploymentState.parse(dict(body))}


@kopf.index("coordination.k8s.io", "v1", "leases", labels=ACTIVATORS)
def activator_leases(
    body: kopf.Body, namespace: str | None, name: str | None, labels: kopf.Labels, **_: Any
) -> dict[tuple[str, str], LeaseState]:
    """What each activator reports holding."""
    owner = lease_owner(name, labels)
    return {(namespace or "", owner): LeaseState.parse(dict(body))} if owner else {}


def _activator(kw: dict[str, Any]) -> Callable[[str, str], ActivatorState]:
    deployments, leases = _one(kw["activator_states"]), _one(kw["activator_leases"])

    def activator_of(namespace: str, name: str) -> ActivatorState:
        dep, lease = deployments(namespace, name), leases(namespace, name)
        return ActivatorState(
            ready=bool(dep and dep.ready_replicas),
            held=lease.held if lease else 0,
        )

    return activator_of


def _one(index: kopf.Index[tuple[str, str], T]) -> Callable[[str, str], T | None]:
    def get(namespace: str, name: str) -> T | None:
        return next(iter(index.get((namespace, name), [])), None)

    return get


def _watched(kw: dict[str, Any], memo: kopf.Memo) -> rec.Watched:
    return rec.Watched(
        llmd=_one(kw["llmd_bodies"]),
        deployment=_deployment(memo),
        pods=_pods(memo),
        activator=_one(kw["activator_states"]),
    )


def _refresh(body: kopf.Body, memo: kopf.Memo, kw: dict[str, Any]) -> None:
    meta = body["metadata"]
    name = meta["labels"][DEPLOYMENT_LABEL]
    rec.refresh_status(
        _kube(memo), meta["namespace"], name, watched=_watched(_remember(memo, kw), memo)
    )


@kopf.on.event("coordination.k8s.io", "v1", "leases", labels=ACTIVATORS)
def lease_changed(body: kopf.Body, memo: kopf.Memo, type: str | None, **kw: Any) -> None:
    """The activator holds requests: wake the object at once (not at the next evaluation), and
    say when the wake ends (``autoscaling/wake.py``)."""
    meta = body["metadata"]
    ns, name = meta["namespace"], lease_owner(meta.get("name"), meta.get("labels") or {})
    if name is None:
        return
    wakes: Wakes = memo["wakes"]
    if type == "DELETED":
        wakes.forget((ns, name))
        return
    llmd = _one(kw["llmd_bodies"])(ns, name)
    if llmd is None:
        return
    lease = LeaseState.parse(dict(body))
    dep = _deployment(memo)(ns, name)
    stz = ((llmd.get("spec") or {}).get("autoscaling") or {}).get("scaleToZero") or {}
    event = wakes.observe(
        (ns, name),
        lease,
        ready=dep.ready_replicas if dep else 0,
        hold_seconds=int(stz.get("holdSeconds") or 0),
        now=time.time(),
    )
    if event is not None:
        uid = llmd["metadata"]["uid"]
        post_event(owner_body(ns, name, uid), event.type, event.reason, event.message)
    if lease.held:
        memo["autoscaler"].wake(
            llmd,
            _activator(kw)(ns, name),
            pods=_pods(memo)(ns, name),
            held=_held(memo),
        )


@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
def job_changed(body: kopf.Body, memo: kopf.Memo, type: str | None, **kw: Any) -> None:
    """The model cache's fill Job: its progress is the ModelCached condition."""
    if type != "DELETED":
        _refresh(body, memo, kw)


def run(
    config: OperatorConfig,
    kube: Kube,
    *,
    namespaces: list[str] | None = None,
    liveness: str | None = None,
    peering: str | None = None,
    metrics_port: int | None = None,
) -> None:
    source = PrometheusSource(config.prometheus_url, tls=config.prometheus_tls)
    autoscaler = Autoscaler(kube=kube, config=config, source=source)
    memo = kopf.Memo(
        config=config,
        kube=kube,
        peering=peering,
        autoscaler=autoscaler,
        wakes=Wakes(),
        metrics_port=metrics_port,
        namespaces=list(namespaces or []),
    )
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces or [],
            liveness_endpoint=liveness,
            memo=memo,
            standalone=peering is None,
            peering_name=peering,
        )
    )
