"""Typed states of the objects the operator follows, parsed from raw API objects (pure)."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

from llm_operator.builders.common import DEPLOYMENT_LABEL
from llm_operator.config import GPU_RESOURCE
from llm_operator.gateway.activator_kube import (
    HELD_ANNOTATION,
    HELD_SINCE_ANNOTATION,
    HOLD_ENDED_ANNOTATION,
)

Manifest = dict[str, Any]


@dataclass(frozen=True)
class DeploymentState:
    """What the status needs from the owned Deployment."""

    generation: int
    observed_generation: int
    replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    spec_replicas: int
    progressing_reason: str | None = None

    @classmethod
    def parse(cls, d: Manifest) -> DeploymentState:
        st = d.get("status") or {}
        progressing: Manifest = next(
            (c for c in st.get("conditions") or [] if c.get("type") == "Progressing"), {}
        )
        return cls(
            generation=int(d["metadata"].get("generation") or 0),
            observed_generation=int(st.get("observedGeneration") or 0),
            replicas=int(st.get("replicas") or 0),
            updated_replicas=int(st.get("updatedReplicas") or 0),
            ready_replicas=int(st.get("readyReplicas") or 0),
            available_replicas=int(st.get("availableReplicas") or 0),
            spec_replicas=int((d.get("spec") or {}).get("replicas") or 0),
            progressing_reason=progressing.get("reason"),
        )


@dataclass(frozen=True)
class Held:
    """What one LLMDeployment's Deployment asks for."""

    name: str  # the LLMDeployment's
    replicas: int
    gpus_per_replica: int

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_replica

    @classmethod
    def of_deployment(cls, body: dict[str, Any]) -> Held:
        spec = body.get("spec") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        gpus = 0
        for c in containers:
            value = str(((c.get("resources") or {}).get("limits") or {}).get(GPU_RESOURCE, 0))
            gpus += int(value) if value.isdigit() else 0
        replicas = spec.get("replicas")
        return cls(
            name=body["metadata"]["labels"][DEPLOYMENT_LABEL],
            replicas=1 if replicas is None else int(replicas),
            gpus_per_replica=gpus,
        )


@dataclass(frozen=True)
class PodState:
    name: str
    phase: str
    ready: bool
    unschedulable_message: str | None = None
    node: str | None = None

    @classmethod
    def parse(cls, p: Manifest) -> PodState:
        st = p.get("status") or {}
        conds = {c.get("type"): c for c in st.get("conditions") or []}
        sched = conds.get("PodScheduled") or {}
        unsched = None
        if sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
            unsched = sched.get("message") or "Unschedulable"
        return cls(
            name=p["metadata"]["name"],
            phase=st.get("phase") or "Pending",
            ready=(conds.get("Ready") or {}).get("status") == "True",
            unschedulable_message=unsched,
            node=(p.get("spec") or {}).get("nodeName"),
        )


@dataclass(frozen=True)
class JobState:
    """What the ModelCached condition needs from the fill Job."""

    succeeded: bool
    failed_message: str | None  # the Job's Failed condition, when it gave up
    active: int
    failed_pods: int
    duration_seconds: float | None = None

    @classmethod
    def parse(cls, j: Manifest) -> JobState:
        st = j.get("status") or {}
        conds = {c.get("type"): c for c in st.get("conditions") or []}
        failed = conds.get("Failed") or {}
        duration = None
        if st.get("startTime") and st.get("completionTime"):
            start = dt.datetime.fromisoformat(str(st["startTime"]).replace("Z", "+00:00"))
            end = dt.datetime.fromisoformat(str(st["completionTime"]).replace("Z", "+00:00"))
            duration = (end - start).total_seconds()
        return cls(
            succeeded=(conds.get("Complete") or {}).get("status") == "True",
            failed_message=(failed.get("message") or failed.get("reason") or "failed")
            if failed.get("status") == "True"
            else None,
            active=int(st.get("active") or 0),
            failed_pods=int(st.get("failed") or 0),
            duration_seconds=duration,
        )


@dataclass(frozen=True)
class LeaseState:
    """The activator's report, parsed defensively: the activator's pod wrote it."""

    held: int
    held_since: float | None
    ended: str | None = None  # with nothing held: "forwarded" or "expired" (anything else: None)

    @classmethod
    def parse(cls, lease: Manifest) -> LeaseState:
        ann = (lease.get("metadata") or {}).get("annotations") or {}
        try:
            held = max(0, int(str(ann.get(HELD_ANNOTATION) or "0")[:12]))
        except ValueError:
            held = 0
        since: float | None = None
        raw = ann.get(HELD_SINCE_ANNOTATION)
        if held and isinstance(raw, str):
            with contextlib.suppress(ValueError):
                since = dt.datetime.fromisoformat(raw[:40]).timestamp()
        ended = ann.get(HOLD_ENDED_ANNOTATION)
        if held or ended not in ("forwarded", "expired"):
            ended = None
        return cls(held=held, held_since=since, ended=ended)


@dataclass(frozen=True)
class ActivatorState:
    """What the autoscaler needs from the activator: can it take the traffic, what it holds."""

    ready: bool
    held: int = 0
