"""LLMDeployment v1alpha1 status: conditions, metrics, the autoscaler's last decision, the phase."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_camel

from llm_operator.api.base import ApiModel


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    type: Literal[
        "Valid", "Ready", "Progressing", "MetricsAvailable", "ScalingLimited", "ModelCached"
    ]
    status: ConditionStatus
    reason: Annotated[str, Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: str
    observed_generation: int | None = None


class KeySpend(ApiModel):
    key_id: Annotated[str, Field(max_length=253)]
    dollars_per_hour: float


class Metrics(ApiModel):
    ttft_p95_seconds: float | None = None
    itl_p95_seconds: float | None = None
    e2e_p95_seconds: float | None = Field(default=None, alias="e2eP95Seconds")
    tokens_per_second: float | None = None
    queue_depth: float | None = None
    hourly_cost: float | None = None
    cost_per_million_tokens: float | None = None
    spend_by_key: Annotated[
        list[KeySpend] | None,
        Field(
            max_length=5,
            description="The API keys that spent most over the last hour (gateway cost counter)",
        ),
    ] = None
    observed_at: str | None = None


# status.autoscaling.lastDecision (a comment, not a docstring: the CRD stays as it was).
class ScalingDecision(ApiModel):
    from_: int = Field(alias="from")
    to: int
    reason: str
    limit: str | None = None


class AutoscalingStatus(ApiModel):
    last_scale_time: str | None = None
    last_decision: ScalingDecision | None = None
    recommendation: int | None = None


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    INVALID = "Invalid"


class LLMDeploymentStatus(ApiModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    phase: Phase | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    desired_replicas: int | None = None
    selector: str | None = None
    observed_generation: int | None = None
    endpoint: str | None = None
    conditions: Annotated[
        list[Condition],
        Field(
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            }
        ),
    ] = []
    metrics: Metrics | None = None
    autoscaling: AutoscalingStatus | None = None
