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
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.autoscaling.policy import Decision, History, Replicas, decide, remember
from llm_operator.autoscaling.signals import MetricsSource, SignalsResult, read_signals
from llm_operator.builders.children import desired_replicas
from llm_operator.builders.common import selector_string
from llm_operator.config import OperatorConfig
from llm_operator.handlers.conditions import now_iso, set_condition
from llm_operator.handlers.kube import Kube, owner_body
from llm_operator.handlers.reconcile import post_event

log = logging.getLogger("llm_operator.autoscaler")
MANAGER = "llm-operator-autoscaler"
LIMIT_REASONS = {
    "maxReplicas": "MaxReplicas",
    "budget": "Budget",
    "capacity": "InsufficientGPU",
    "cost": "CostTarget",
}


class OperatorMetrics:
    """The operator's own metrics (served by ``llm-operator run --metrics-port``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "llm_operator_autoscaler_decisions",
            "Scaling decisions that changed the replica count",
            ["namespace", "name", "direction"],
            registry=r,
        )
        self.desired = Gauge(
            "llm_operator_autoscaler_desired_replicas",
            "Replicas the autoscaler wants",
            ["namespace", "name"],
            registry=r,
        )
        self.ready = Gauge(
            "llm_operator_ready_replicas",
            "Ready replicas of the Deployment, as the autoscaler saw them",
            ["namespace", "name"],
            registry=r,
        )
        self.limited = Gauge(
            "llm_operator_autoscaler_limited",
            "1 while a limit binds (max, budget, capacity)",
            ["namespace", "name", "limit"],
            registry=r,
        )
        self.metrics_available = Gauge(
            "llm_operator_autoscaler_metrics_available",
            "1 when the signals were read",
            ["namespace", "name"],
            registry=r,
        )
        self.hourly_cost = Gauge(
            "llm_operator_hourly_cost_dollars",
            "Cost of the current replicas per hour",
            ["namespace", "name"],
            registry=r,
        )
        self.evaluation = Histogram(
            "llm_operator_autoscaler_evaluation_seconds",
            "Time of one evaluation",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )


@dataclass
class Autoscaler:
    kube: Kube
    config: OperatorConfig
    source: MetricsSource
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    histories: dict[tuple[str, str], History] = field(default_factory=dict)
    # The MetricsAvailable reason of the last evaluation, so a Warning is posted on change only.
    metrics_reasons: dict[tuple[str, str], str] = field(default_factory=dict)

    def evaluate(self, body: dict[str, Any], now: float | None = None) -> Decision | None:
        """One evaluation for one object (sync: the caller runs it in a thread)."""
        started = time.monotonic()
        now = time.time() if now is None else now
        try:
            obj = LLMDeployment.model_validate(
                {"metadata": body["metadata"], "spec": body.get("spec") or {}}
            )
        except ValueError:
            return None  # the reconciler reports invalid specs
        spec = obj.spec.autoscaling
        if not spec.enabled:
            return None
        ns, name = obj.metadata.namespace, obj.metadata.name
        profile = self.config.gpu_profiles.get(obj.spec.resources.gpu.profile)
        if profile is None:
            return None
        price = profile.price_per_gpu_hour * obj.spec.resources.gpu.count
        dep = self.kube.get_deployment(ns, name)
        if dep is None:
            return None
        pods = self.kube.list_pods(ns, selector_string(name))
        unschedulable = sum(1 for p in pods if p.unschedulable_message)
        replicas = Replicas(
            current=desired_replicas(obj.spec),
            ready=dep.ready_replicas,
            unschedulable=unschedulable,
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
        self._report(body, obj, result, decision, replicas, price, history.limit)
        self.metrics.evaluation.observe(time.monotonic() - started)
        return decision

    def _report(
        self,
        body: dict[str, Any],
        obj: LLMDeployment,
        result: SignalsResult,
        decision: Decision,
        replicas: Replicas,
        price: float,
        previous_limit: str | None,
    ) -> None:
        ns, name = obj.metadata.namespace, obj.metadata.name
        spec = obj.spec.autoscaling
        stamp = now_iso()
        status = body.get("status") or {}
        conds = list(status.get("conditions") or [])
        event_body = owner_body(ns, name, obj.metadata.uid)
        m = self.metrics
        m.metrics_available.labels(ns, name).set(1 if result.available else 0)
        previous_reason = self.metrics_reasons.get((ns, name))
        self.metrics_reasons[(ns, name)] = result.reason
        m.desired.labels(ns, name).set(decision.desired)
        m.ready.labels(ns, name).set(replicas.ready)
        if result.available:
            conds = set_condition(
                conds, "MetricsAvailable", "True", "Ok", result.message, now=stamp
            )
        else:
            conds = set_condition(
                conds,
                "MetricsAvailable",
                "False",
                result.reason,
                result.message + f"; holding {decision.current} replicas",
                now=stamp,
            )
            if previous_reason != result.reason:
                post_event(
                    event_body,
                    "Warning",
                    result.reason,
                    result.message + f"; holding {decision.current} replicas",
                )
        binding = decision.limit if decision.limit in LIMIT_REASONS else None
        for limit in LIMIT_REASONS:
            m.limited.labels(ns, name, limit).set(1 if limit == binding else 0)
        if binding:
            conds = set_condition(
                conds, "ScalingLimited", "True", LIMIT_REASONS[binding], decision.reason, now=stamp
            )
            if previous_limit != binding:
                post_event(event_body, "Warning", "ScalingLimited", decision.reason)
        else:
            conds = set_condition(
                conds, "ScalingLimited", "False", "WithinLimits", "no limit binds", now=stamp
            )

        scaled = decision.changed and not spec.dry_run and not decision.hold
        auto: dict[str, Any] = {"recommendation": decision.recommendation}
        prev_auto = status.get("autoscaling") or {}
        if prev_auto.get("lastDecision"):
            auto["lastDecision"] = prev_auto["lastDecision"]
        if prev_auto.get("lastScaleTime"):
            auto["lastScaleTime"] = prev_auto["lastScaleTime"]
        if scaled:
            self.kube.scale(ns, name, decision.desired)
            auto["lastScaleTime"] = stamp
            auto["lastDecision"] = {
                "from": decision.current,
                "to": decision.desired,
                "reason": decision.reason,
                **({"limit": decision.limit} if decision.limit else {}),
            }
            reason = "ScaledUp" if decision.direction == "up" else "ScaledDown"
            post_event(event_body, "Normal", reason, decision.reason)
            m.decisions.labels(ns, name, decision.direction).inc()
            log.info("%s/%s %s", ns, name, decision.reason)
        elif decision.changed and spec.dry_run:
            auto["lastDecision"] = {
                "from": decision.current,
                "to": decision.desired,
                "reason": "dry run: " + decision.reason,
            }
        sig = result.signals
        replicas_now = decision.desired if scaled else decision.current
        hourly = replicas_now * price
        m.hourly_cost.labels(ns, name).set(hourly)
        metrics: dict[str, Any] = {
            "hourlyCost": round(hourly, 4),
            "observedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if sig is not None:
            for key, value in (
                ("ttftP95Seconds", sig.ttft_p95),
                ("itlP95Seconds", sig.itl_p95),
                ("e2eP95Seconds", sig.e2e_p95),
                ("tokensPerSecond", sig.tokens_per_second),
                ("queueDepth", sig.queue),
            ):
                if value is not None:
                    metrics[key] = round(value, 4)
            if sig.tokens_per_second:
                metrics["costPerMillionTokens"] = round(
                    hourly / (sig.tokens_per_second * 3600 / 1e6), 4
                )
        mine = [c for c in conds if c["type"] in ("MetricsAvailable", "ScalingLimited")]
        self.kube.apply_status(
            ns, name, {"conditions": mine, "metrics": metrics, "autoscaling": auto}, MANAGER
        )
