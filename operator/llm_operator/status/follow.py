"""Status that follows the owned Deployment and its pods: a pure function of typed states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_operator.api.v1alpha1 import LLMDeploymentStatus, Phase
from llm_operator.builders.common import SERVICE_PORT
from llm_operator.kube.states import DeploymentState, JobState, PodState
from llm_operator.status.conditions import get_condition, set_condition

# The condition types this writer owns (server-side apply field ownership on the status).
OWNED_CONDITIONS = ("Ready", "Progressing", "ModelCached")


@dataclass(frozen=True)
class CacheView:
    """The model cache as status sees it: where the weights go, and the fill Job's state."""

    claim: str
    model: str
    job: JobState | None


def model_cached(
    conds: list[dict[str, Any]], cache: CacheView, generation: int, now: str
) -> tuple[list[dict[str, Any]], list[EventSpec]]:
    """The ModelCached condition from the fill Job, with an Event when it flips."""
    was = get_condition(conds, "ModelCached") or {}
    job = cache.job
    where = f"{cache.model} in claim {cache.claim}"
    if job is not None and job.succeeded:
        took = f" in {job.duration_seconds:.0f}s" if job.duration_seconds is not None else ""
        status, reason, msg = "True", "Cached", f"{where}, downloaded{took}"
        event = EventSpec("Normal", "ModelCached", msg)
    elif job is not None and job.failed_message is not None:
        status, reason = "False", "FillFailed"
        msg = f"downloading {where} failed: {job.failed_message}"
        event = EventSpec("Warning", "ModelCacheFailed", msg)
    else:
        retries = f" ({job.failed_pods} failed attempt(s))" if job and job.failed_pods else ""
        status, reason, msg = "False", "Filling", f"downloading {where}{retries}"
        event = EventSpec("Normal", "ModelCacheFilling", msg)
    conds = set_condition(conds, "ModelCached", status, reason, msg, now=now, generation=generation)
    return conds, ([event] if was.get("reason") != reason else [])


@dataclass(frozen=True)
class EventSpec:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class StatusUpdate:
    status: dict[str, Any]
    events: list[EventSpec] = field(default_factory=list)


def endpoint(name: str, namespace: str) -> str:
    return f"http://{name}.{namespace}.svc:{SERVICE_PORT}/v1"


def follow(
    *,
    name: str,
    namespace: str,
    generation: int,
    conditions: list[dict[str, Any]],
    desired: int,
    selector: str,
    deployment: DeploymentState | None,
    pods: list[PodState],
    now: str,
    cache: CacheView | None = None,
) -> StatusUpdate:
    events: list[EventSpec] = []
    conds = list(conditions)
    if cache is not None:
        conds, cache_events = model_cached(conds, cache, generation, now)
        events += cache_events
    else:
        conds = [c for c in conds if c.get("type") != "ModelCached"]
    ready = deployment.ready_replicas if deployment else 0
    current = deployment.replicas if deployment else 0

    unschedulable = [p for p in pods if p.unschedulable_message]
    was_limited = get_condition(conds, "Progressing") or {}
    if unschedulable:
        msg = unschedulable[0].unschedulable_message or ""
        gpu = "nvidia.com/gpu" in msg
        reason = "InsufficientGPU" if gpu else "Unschedulable"
        text = f"{len(unschedulable)} pod(s) cannot be scheduled: {msg}"
        conds = set_condition(
            conds, "Progressing", "False", reason, text, now=now, generation=generation
        )
        if was_limited.get("reason") != reason:
            events.append(EventSpec("Warning", reason, text))
    elif deployment is None:
        conds = set_condition(
            conds,
            "Progressing",
            "True",
            "Creating",
            "Deployment is being created",
            now=now,
            generation=generation,
        )
    else:
        rolled = (
            deployment.observed_generation >= deployment.generation
            and deployment.updated_replicas >= desired
            and current <= desired
        )
        if rolled and ready >= desired:
            conds = set_condition(
                conds,
                "Progressing",
                "False",
                "Stable",
                f"{ready}/{desired} replicas ready and up to date",
                now=now,
                generation=generation,
            )
        else:
            conds = set_condition(
                conds,
                "Progressing",
                "True",
                "RollingOut",
                f"{deployment.updated_replicas}/{desired} updated, {ready}/{desired} ready "
                "(replicas become ready when the model has loaded)",
                now=now,
                generation=generation,
            )

    was_ready = (get_condition(conds, "Ready") or {}).get("status") == "True"
    if desired == 0:
        conds = set_condition(
            conds,
            "Ready",
            "True",
            "ScaledToZero",
            "0 replicas desired",
            now=now,
            generation=generation,
        )
        phase = "Ready"
    elif ready >= desired:
        conds = set_condition(
            conds,
            "Ready",
            "True",
            "AllReplicasReady",
            f"{ready}/{desired} replicas ready",
            now=now,
            generation=generation,
        )
        phase = "Ready"
        if not was_ready:
            events.append(EventSpec("Normal", "Ready", f"{ready}/{desired} replicas ready"))
    else:
        reason = "NoReplicasReady" if ready == 0 else "ReplicasNotReady"
        conds = set_condition(
            conds,
            "Ready",
            "False",
            reason,
            f"{ready}/{desired} replicas ready",
            now=now,
            generation=generation,
        )
        phase = "Progressing" if ready == 0 else "Degraded"
        if unschedulable and ready == 0:
            phase = "Pending"

    status = LLMDeploymentStatus(
        phase=Phase(phase),
        replicas=current,
        ready_replicas=ready,
        desired_replicas=desired,
        selector=selector,
        observed_generation=generation,
        endpoint=endpoint(name, namespace),
        conditions=[c for c in conds if c["type"] in OWNED_CONDITIONS],
    ).dump_set()
    return StatusUpdate(status=status, events=events)
