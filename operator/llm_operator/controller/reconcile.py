"""The level-triggered reconcile: validate, build, apply, report.

One function serves create, update and resume. It parses the body into the typed model first;
an invalid spec becomes ``Valid=False`` plus an Event and leaves the running children alone
(bad input loses nothing). Transient API errors become ``kopf.TemporaryError`` so kopf retries.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from llm_operator.api.parse import Invalid, parse
from llm_operator.api.v1alpha1 import LLMDeployment, LLMDeploymentStatus, Phase
from llm_operator.builders import checks
from llm_operator.builders.children import build_all
from llm_operator.builders.common import SECRET_OPT_IN_LABEL, selector_string
from llm_operator.builders.kinds import (
    ALL_KINDS,
    JOB,
    SERVICE_MONITOR,
    cache_claim,
    child_name,
    desired_replicas,
)
from llm_operator.config import OperatorConfig
from llm_operator.controller import quota, zero
from llm_operator.kube.client import Kube, is_transient, owned_by
from llm_operator.kube.events import owner_body, post_event
from llm_operator.kube.states import DeploymentState, PodState
from llm_operator.status.conditions import already_written, now_iso, set_condition
from llm_operator.status.follow import OWNED_CONDITIONS, CacheView, EventSpec, follow

log = logging.getLogger("llm_operator.reconcile")

# Field managers of the status writers (see Kube.apply_status).
VALIDATION_MANAGER = "llm-operator"
STATUS_MANAGER = "llm-operator-status"


def _post(body: Mapping[str, Any], events: list[EventSpec]) -> None:
    for ev in events:
        post_event(body, ev.type, ev.reason, ev.message)


def mark_invalid(kube: Kube, body: dict[str, Any], problem: Invalid) -> None:
    meta = body["metadata"]
    conds = list((body.get("status") or {}).get("conditions") or [])
    generation = int(meta.get("generation") or 0)
    was: dict[str, Any] = next((c for c in conds if c.get("type") == "Valid"), {})
    conds = set_condition(
        conds,
        "Valid",
        "False",
        problem.reason,
        problem.message,
        now=now_iso(),
        generation=generation,
    )
    valid = [c for c in conds if c["type"] == "Valid"]
    status = LLMDeploymentStatus(
        phase=Phase.INVALID, conditions=valid, observed_generation=generation
    ).dump_set()
    # The phase is the refreshes' field too: what they wrote last is no longer what is there.
    _written.pop((meta["namespace"], meta["name"]), None)
    if not already_written(status, body.get("status") or {}, ("Valid",)):
        kube.apply_status(meta["namespace"], meta["name"], status, VALIDATION_MANAGER)
    if was.get("status") != "False" or was.get("message") != problem.message:
        post_event(body, "Warning", "Invalid", problem.message)


# How often a spec whose Secret is missing or not opted in is checked again (the Secret is not
# watched: the operator may only get Secrets it is pointed at, never list or watch them).
SECRET_RECHECK_SECONDS = 20


def secret_problem(kube: Kube, obj: LLMDeployment) -> Invalid | None:
    """Every Secret the spec names must exist and carry ``SECRET_OPT_IN_LABEL: "true"``."""
    ns = obj.metadata.namespace
    refs = [
        ("model.credentialsSecretRef", obj.spec.model.credentials_secret_ref),
        ("gateway.apiKeySecretRef", obj.spec.gateway.api_key_secret_ref),
    ]
    for field, ref in refs:
        if ref is None:
            continue
        found = kube.secret_labels(ns, ref.name)
        if found is None:
            return Invalid("SecretNotFound", f"spec.{field}: Secret {ref.name!r} not found in {ns}")
        if found.get(SECRET_OPT_IN_LABEL) != "true":
            return Invalid(
                "SecretNotAllowed",
                f"spec.{field}: Secret {ref.name!r} does not allow LLMDeployments to use it; "
                f"label it {SECRET_OPT_IN_LABEL}=true",
            )
    return None


# How often a spec blocked by a name conflict is checked again (its owner may rename or remove
# the object in the way; the operator does not watch objects it does not own).
CONFLICT_RECHECK_SECONDS = 15


def name_conflict(
    obj: LLMDeployment, desired: list[dict[str, Any]], current: list[dict[str, Any] | None]
) -> Invalid | None:
    """A child name taken by an object this LLMDeployment does not own: never adopted, never
    applied over, never deleted."""
    foreign = [
        f"{m['kind']}/{m['metadata']['name']}"
        for m, now in zip(desired, current, strict=True)
        if now is not None and not owned_by(now, obj.metadata.uid)
    ]
    if not foreign:
        return None
    one = len(foreign) == 1
    return Invalid(
        "NameConflict",
        f"{', '.join(foreign)} already {'exists' if one else 'exist'} and {'is' if one else 'are'}"
        " not owned by this LLMDeployment; the operator leaves them untouched: rename the "
        "LLMDeployment or remove them",
    )


# How often a spec over the owner's limits is checked again (room frees up when other objects of
# its namespace shrink or go).
QUOTA_RECHECK_SECONDS = 30


def reconcile(
    kube: Kube,
    config: OperatorConfig,
    body: dict[str, Any],
    watched: Watched | None = None,
    held: quota.HeldSource | None = None,
) -> None:
    obj = parse(body)
    if isinstance(obj, Invalid):
        mark_invalid(kube, body, obj)
        return
    verdict = checks.check(obj.spec, config)
    if not verdict.ok:
        mark_invalid(kube, body, Invalid(verdict.reason, verdict.message))
        return
    try:
        problem = secret_problem(kube, obj)
    except ApiException as exc:
        raise kopf.TemporaryError(f"reading a Secret's labels: {exc.status}", delay=5) from exc
    if problem is not None:
        mark_invalid(kube, body, problem)
        # Checked again until the Secret is there and opted in; the running children stay.
        raise kopf.TemporaryError(problem.message, delay=SECRET_RECHECK_SECONDS)
    limits = config.limits.for_namespace(obj.metadata.namespace)
    if limits.any:
        over = quota.admit(obj, limits, held or kube.held)
        if over is not None:
            mark_invalid(kube, body, over)
            raise kopf.TemporaryError(over.message, delay=QUOTA_RECHECK_SECONDS)

    meta = obj.metadata
    try:
        sm = kube.service_monitors_available()
        ready = zero.ready_replicas(kube, obj, watched.deployment if watched else None)
        desired = build_all(obj, config, service_monitor_available=sm, ready_replicas=ready)
        # Each child is read once: for the ownership check and as the apply's starting point.
        current = [kube.current(m) for m in desired]
        conflict = name_conflict(obj, desired, current)
        if conflict is not None:
            mark_invalid(kube, body, conflict)
            raise kopf.TemporaryError(conflict.message, delay=CONFLICT_RECHECK_SECONDS)
        changed = [m for m, now in zip(desired, current, strict=True) if kube.apply(m, now)]
        zero.applied(obj, desired)
        wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
        for kind in ALL_KINDS:
            if kind is SERVICE_MONITOR and not sm:
                continue
            name = child_name(kind, meta.name)
            if (kind.kind, name) not in wanted and kube.delete_if_owned(
                kind.api_version, kind.kind, meta.namespace, name, meta.uid
            ):
                changed.append({"kind": kind.kind, "metadata": {"name": name}})
        changed += zero.prune(kube, obj, watched.activator if watched else None)
    except ApiException as exc:
        if is_transient(exc):
            raise kopf.TemporaryError(
                f"API server said {exc.status} {exc.reason}", delay=5
            ) from exc
        mark_invalid(
            kube,
            body,
            Invalid(
                "Rejected", f"the API server refused a child: {exc.reason}: {_api_message(exc)}"
            ),
        )
        return

    generation = meta.generation
    conds = list((body.get("status") or {}).get("conditions") or [])
    conds = set_condition(
        conds,
        "Valid",
        "True",
        verdict.reason,
        verdict.message,
        now=now_iso(),
        generation=generation,
    )
    valid = [c for c in conds if c["type"] == "Valid"]
    status = LLMDeploymentStatus(conditions=valid).dump_set()
    if not already_written(status, body.get("status") or {}, ("Valid",)):
        kube.apply_status(meta.namespace, meta.name, status, VALIDATION_MANAGER)
    if changed:
        created = not body.get("status", {}).get("observedGeneration")
        what = ", ".join(f"{m['kind']}/{m['metadata']['name']}" for m in changed)
        post_event(body, "Normal", "Created" if created else "Updated", f"applied {what}")
    # The refresh sees the body kopf gave this reconcile with the Valid just written (the
    # watched copy may still say Valid=False, and would skip it).
    seen = {**body, "status": {**(body.get("status") or {}), "conditions": conds}}
    if watched is not None:
        watched = dataclasses.replace(watched, llmd=lambda _ns, _name: seen)
    refresh_status(kube, meta.namespace, meta.name, watched)


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.body)
    except ValueError:
        return str(exc.body)


# Where a refresh reads an object's replica pods: the pod informer in the operator (no API call,
# the same cost for 1 pod or 1,000), the API otherwise.
PodSource = Callable[[str, str], list[PodState]]


@dataclass(frozen=True)
class Watched:
    """What the operator's watches keep (kopf's index of the LLMDeployments and activators, the
    informers of the replicas' pods and Deployments): a status refresh reads the object, its
    Deployment and its pods here, so a pod or Deployment event costs no API read."""

    llmd: Callable[[str, str], dict[str, Any] | None]
    deployment: Callable[[str, str], DeploymentState | None]
    pods: PodSource
    activator: zero.ActivatorSource  # the activator's Deployment (scale to zero)


_refresh_state: dict[tuple[str, str], str] = {}
_refresh_guard = threading.Lock()
# The status each object was last given by this process's refreshes (the STATUS_MANAGER part):
# a refresh that computes the same status writes nothing, even before the watch shows the write.
_written: dict[tuple[str, str], dict[str, Any]] = {}


def refresh_status(kube: Kube, namespace: str, name: str, watched: Watched | None = None) -> None:
    """Make status follow the Deployment and its pods; posts Events on transitions.

    Pod and Deployment events arrive on several worker threads at once. Refreshes of one object
    are coalesced: at most one runs at a time, and events that arrive while it runs ask for one
    more run, which reads the state afresh (latest wins). A burst of N pod events costs a
    handful of refreshes, not N, and a refresh that read an older state can never write after
    one that read a newer state. A refresh whose status is already there writes nothing.
    """
    key = (namespace, name)
    with _refresh_guard:
        if key in _refresh_state:
            _refresh_state[key] = "again"
            return
        _refresh_state[key] = "running"
    try:
        while True:
            _refresh_status(kube, namespace, name, watched)
            with _refresh_guard:
                if _refresh_state[key] == "again":
                    _refresh_state[key] = "running"
                    continue
                del _refresh_state[key]
                return
    except BaseException:
        with _refresh_guard:
            _refresh_state.pop(key, None)
        raise


def _refresh_status(kube: Kube, namespace: str, name: str, watched: Watched | None) -> None:
    key = (namespace, name)
    body = watched.llmd(namespace, name) if watched else kube.get_llmd(namespace, name)
    if body is None:
        _written.pop(key, None)
        zero.forget(namespace, name)
        return
    obj = parse(body)
    if isinstance(obj, Invalid):
        return
    status = body.get("status") or {}
    if any(
        c.get("type") == "Valid" and c.get("status") == "False"
        for c in status.get("conditions") or []
    ):
        return
    if watched:
        deployment = watched.deployment(namespace, name)
    else:
        deployment = kube.get_deployment(namespace, name)
    zero.switch_front(kube, obj, deployment)
    if deployment is None:
        pods: list[PodState] = []
    elif watched:
        pods = watched.pods(namespace, name)
    else:
        pods = kube.list_pods(namespace, selector_string(name))
    claim = cache_claim(obj)
    cache = None
    if claim is not None:
        job = kube.get_job(namespace, child_name(JOB, name))
        cache = CacheView(claim=claim, model=obj.spec.model.uri, job=job)
    # What this process wrote last is newer than a watched status that has not caught up.
    last = _written.get(key)
    current = {**status, **last} if last else status
    update = follow(
        name=name,
        namespace=namespace,
        generation=obj.metadata.generation,
        conditions=list(current.get("conditions") or []),
        desired=desired_replicas(obj.spec),
        selector=selector_string(name),
        deployment=deployment,
        pods=pods,
        now=now_iso(),
        cache=cache,
    )
    if not already_written(update.status, current, OWNED_CONDITIONS):
        kube.apply_status(namespace, name, update.status, STATUS_MANAGER)
        _written[key] = update.status
    _post(owner_body(namespace, name, obj.metadata.uid), update.events)
