"""The actuator: one evaluation per LLMDeployment per interval (signals -> policy -> /scale).

Each evaluation reads the signals, asks the pure policy, and then:
- writes ``status.metrics`` and ``status.autoscaling`` and the ``MetricsAvailable`` and
  ``ScalingLimited`` conditions (server-side apply, field manager ``llm-operator-autoscaler``);
- when the decision changes the replica count (and ``dryRun`` is off), patches the
  LLMDeployment's ``/scale`` subresource (the reconciler carries it to the Deployment) and posts
  ``ScaledUp`` / ``ScaledDown`` with the decision's one-line reason;
- posts one ``ScalingLimited`` Event when a limit starts to bind, not one per evaluation.
On missing, stale or unreachable metrics the replicas are held.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from llm_operator.api.parse import Invalid, parse
from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.autoscaling.metrics import OperatorMetrics
from llm_operator.autoscaling.policy import Decision, History, Replicas, decide, remember
from llm_operator.autoscaling.report import LIMIT_REASONS, OWNED_CONDITIONS, report
from llm_operator.autoscaling.signals import MetricsSource, SignalsResult, read_signals
from llm_operator.builders.common import selector_string
from llm_operator.builders.kinds import desired_replicas
from llm_operator.config import OperatorConfig
from llm_operator.controller import quota
from llm_operator.controller.quota import HeldSource, Ledger
from llm_operator.kube.client import Kube
from llm_operator.kube.events import owner_body, post_event
from llm_operator.kube.states import ActivatorState, PodState
from llm_operator.status.conditions import already_written, now_iso

log = logging.getLogger("llm_operator.autoscaler")
MANAGER = "llm-operator-autoscaler"
# How long a wake's /scale may take to show in the body an evaluation is given.
WAKE_PENDING_SECONDS = 30.0


@dataclass
class Autoscaler:
    kube: Kube
    config: OperatorConfig
    source: MetricsSource
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    histories: dict[tuple[str, str], History] = field(default_factory=dict)
    # The MetricsAvailable reason of the last evaluation, so a Warning is posted on change only.
    metrics_reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    # The reconciler's reservations (controller/quota.py): the room left under the limits.
    ledger: Ledger = quota.LEDGER
    # The status each object was last given here (newer than a watched body that lags).
    written: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # One evaluation of an object at a time: the periodic one and a wake from the activator.
    locks: defaultdict[tuple[str, str], threading.Lock] = field(
        default_factory=lambda: defaultdict(threading.Lock)
    )

    def wake(
        self,
        body: dict[str, Any],
        activator: ActivatorState,
        pods: list[PodState] | None = None,
        held: HeldSource | None = None,
    ) -> Decision | None:
        """The activator holds requests: evaluate now if the object is at zero and no wake is
        under way (the /scale this process asked for may not be in the body it was given)."""
        if int((body.get("spec") or {}).get("replicas") or 0) > 0 or activator.held == 0:
            return None
        return self.evaluate(body, pods=pods, held=held, activator=activator)

    def evaluate(
        self,
        body: dict[str, Any],
        now: float | None = None,
        pods: list[PodState] | None = None,
        held: HeldSource | None = None,
        activator: ActivatorState | None = None,
    ) -> Decision | None:
        """One evaluation for one object (sync: the caller runs it in a thread).

        ``pods``, ``held`` and ``activator`` come from the operator's watch indexes; without the
        first two the API is read (a list of the object's pods, of the namespace's Deployments);
        without ``activator`` the object never goes to zero (nothing would take its traffic)."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self.locks[key]:
            # A wake this process asked for that the body does not show yet (the wake from the
            # Lease and the periodic evaluation may both see replicas 0): not asked twice.
            last = self.histories.get(key)
            at_zero = int((body.get("spec") or {}).get("replicas") or 0) == 0
            if at_zero and last and last.recommendations:
                t, n = last.recommendations[-1]
                if n > 0 and (time.time() if now is None else now) - t < WAKE_PENDING_SECONDS:
                    return None
            return self._evaluate(body, now, pods, held, activator)

    def _evaluate(
        self,
        body: dict[str, Any],
        now: float | None,
        pods: list[PodState] | None,
        held: HeldSource | None,
        activator: ActivatorState | None,
    ) -> Decision | None:
        started = time.monotonic()
        now = time.time() if now is None else now
        obj = parse(body)
        if isinstance(obj, Invalid):
            return None  # the reconciler reports invalid specs
        spec = obj.spec.autoscaling
        if not spec.enabled:
            return None
        ns, name = obj.metadata.namespace, obj.metadata.name
        gpu = obj.spec.resources.gpu
        price = self.config.replica_price(gpu.profile, gpu.count)
        if price is None:
            return None
        dep = self.kube.get_deployment(ns, name)
        if dep is None:
            return None
        if pods is None:
            pods = self.kube.list_pods(ns, selector_string(name))
        unschedulable = sum(1 for p in pods if p.unschedulable_message)
        limits = self.config.limits.for_namespace(ns)
        others = (
            self.ledger.others(ns, name, (held or self.kube.held)(ns)) if limits.namespaced else []
        )
        room = quota.room(limits, ns, obj.spec.resources.gpu.count, others)
        replicas = Replicas(
            current=desired_replicas(obj.spec),
            ready=dep.ready_replicas,
            unschedulable=unschedulable,
            quota=room.replicas,
            quota_why=room.why,
            held=activator.held if activator else 0,
            activator_ready=activator.ready if activator else False,
        )
        result = read_signals(
            self.source,
            ns,
            name,
            window=self.config.metrics_window,
            max_age=max(60.0, 4 * self.config.evaluation_interval_seconds),
            now=now,
        )
        key = (ns, name)
        # After an operator start, treat the current count as the last recommendation, so a
        # scale-down still waits a whole stabilization window.
        history = self.histories.get(key) or History(recommendations=((now, replicas.current),))
        decision = decide(
            result.signals,
            replicas,
            spec,
            price_per_replica_hour=price,
            now=now,
            history=history,
            cold_start_seconds=float(self.config.cold_start_seconds),
        )
        demand = result.signals.tokens_per_second if result.signals else None
        self.histories[key] = remember(history, decision, now, demand)
        self._apply(body, obj, result, decision, replicas, price, history.limit)
        self.metrics.evaluation.observe(time.monotonic() - started)
        return decision

    def _apply(
        self,
        body: dict[str, Any],
        obj: LLMDeployment,
        result: SignalsResult,
        decision: Decision,
        replicas: Replicas,
        price: float,
        previous_limit: str | None,
    ) -> None:
        """Carry out the pure report: /scale, Events, status, the operator's metrics."""
        ns, name = obj.metadata.namespace, obj.metadata.name
        previous_reason = self.metrics_reasons.get((ns, name))
        self.metrics_reasons[(ns, name)] = result.reason
        # What this process wrote last is newer than the watched body, which may lag.
        current = {**(body.get("status") or {}), **self.written.get((ns, name), {})}
        out = report(
            current,
            result,
            decision,
            dry_run=obj.spec.autoscaling.dry_run,
            price=price,
            previous_limit=previous_limit,
            previous_reason=previous_reason,
            stamp=now_iso(),
        )
        m = self.metrics
        m.metrics_available.labels(ns, name).set(1 if result.available else 0)
        m.desired.labels(ns, name).set(decision.desired)
        m.ready.labels(ns, name).set(replicas.ready)
        for limit in LIMIT_REASONS:
            m.limited.labels(ns, name, limit).set(1 if limit == out.binding else 0)
        m.hourly_cost.labels(ns, name).set(out.hourly_cost)
        if out.scale_to is not None:
            self.kube.scale(ns, name, out.scale_to)
            m.decisions.labels(ns, name, decision.direction).inc()
            log.info("%s/%s %s", ns, name, decision.reason)
        event_body = owner_body(ns, name, obj.metadata.uid)
        for ev in out.events:
            post_event(event_body, ev.type, ev.reason, ev.message)
        # An evaluation that changes nothing but the stamp writes nothing: an idle operator
        # leaves the API server alone (observedAt is when the values were last written).
        if not already_written(_unstamped(out.status), _unstamped(current), OWNED_CONDITIONS):
            self.kube.apply_status(ns, name, out.status, MANAGER)
            self.written[(ns, name)] = out.status


def _unstamped(status: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: v for k, v in (status.get("metrics") or {}).items() if k != "observedAt"}
    return {**status, "metrics": metrics}
