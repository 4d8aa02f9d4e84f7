"""The operator's own metrics: scaling decisions, desired and ready replicas, limits, cost."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
