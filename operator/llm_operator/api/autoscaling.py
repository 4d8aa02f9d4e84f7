"""LLMDeployment v1alpha1 spec.autoscaling: targets, cost, behavior."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from llm_operator.api.base import (
    ApiModel,
    cel,
)


class Targets(ApiModel):
    ttft_p95_seconds: Annotated[float | None, Field(gt=0)] = 0.5
    itl_p95_seconds: Annotated[float | None, Field(gt=0)] = 0.05
    e2e_p95_seconds: Annotated[float | None, Field(gt=0, alias="e2eP95Seconds")] = None
    queue_per_replica: Annotated[float | None, Field(gt=0)] = 5.0
    tokens_per_second_per_replica: Annotated[float | None, Field(gt=0)] = None


class Cost(ApiModel):
    max_hourly_cost: Annotated[float | None, Field(gt=0)] = None
    target_cost_per_million_tokens: Annotated[float | None, Field(gt=0)] = None


class Behavior(ApiModel):
    scale_up_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = 0
    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=86400)] = 300
    fall_stabilization_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=86400,
            description="The scale-down stabilization window while demand falls steadily and "
            "the last hour of demand shows no cycle (a fall that came back), and once nothing "
            "has arrived, run or waited for this long after traffic busy for longer than a "
            "burst; the shorter of this and scaleDownStabilizationSeconds applies",
        ),
    ] = 120
    max_scale_up_step: Annotated[int, Field(ge=1, le=100)] = 4
    max_scale_down_step: Annotated[int, Field(ge=1, le=100)] = 1
    burst_memory_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=86400,
            description="How long the fleet keeps what recent bursts needed when traffic comes "
            "in bursts (the burst reserve, and its cost); 0 turns it off",
        ),
    ] = 1800


class ScaleToZero(ApiModel):
    """No replica while idle: an activator holds requests meanwhile (docs/autoscaling.md)."""

    enabled: bool = False
    idle_seconds: Annotated[
        int,
        Field(
            ge=30,
            le=7 * 86400,
            description="Scale to zero after this long without a request (nothing in flight "
            "or waiting)",
        ),
    ] = 600
    hold_seconds: Annotated[
        int,
        Field(
            ge=1,
            le=3600,
            description="How long the activator holds a request for a replica to become "
            "ready; after that it answers 503 with Retry-After",
        ),
    ] = 300
    max_held_requests: Annotated[
        int,
        Field(
            ge=1,
            le=100000,
            description="Requests the activator holds at once; past that 503 with Retry-After",
        ),
    ] = 1000


ZERO_NEEDS_SCALE_TO_ZERO = (
    "minReplicas 0 needs scaleToZero.enabled: true (an activator holds requests while no "
    "replica runs), and scaleToZero needs minReplicas 0"
)


class Autoscaling(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.minReplicas <= self.maxReplicas",
                    "minReplicas must not exceed maxReplicas",
                ),
                cel(
                    "(self.minReplicas == 0) == (has(self.scaleToZero) && "
                    "has(self.scaleToZero.enabled) && self.scaleToZero.enabled)",
                    ZERO_NEEDS_SCALE_TO_ZERO,
                ),
            ]
        }
    )

    enabled: bool = False
    min_replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 4
    dry_run: bool = False
    targets: Targets = Targets()
    cost: Cost = Cost()
    behavior: Behavior = Behavior()
    scale_to_zero: ScaleToZero = ScaleToZero()

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas {self.min_replicas} must not exceed maxReplicas {self.max_replicas}"
            )
        if (self.min_replicas == 0) != self.scale_to_zero.enabled:
            raise ValueError(ZERO_NEEDS_SCALE_TO_ZERO)
        return self
