"""LLMDeployment v1alpha1 spec.generation and spec.gateway: what the gateway enforces in the pod."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from llm_operator.api.base import (
    ApiModel,
    SecretRef,
    cel,
)


class Enforce(StrEnum):
    CLAMP = "clamp"
    REJECT = "reject"


class Generation(ApiModel):
    """Defaults for missing request fields, and caps the gateway enforces."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.maxNewTokens) || !has(self.maxTokens) || "
                    "self.maxNewTokens <= self.maxTokens",
                    "maxNewTokens (the default) must not exceed maxTokens (the cap)",
                )
            ]
        }
    )

    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(gt=0, le=1)] = None
    max_new_tokens: Annotated[
        int | None, Field(ge=1, le=1_048_576, description="Default completion length")
    ] = None
    max_tokens: Annotated[
        int | None, Field(ge=1, le=1_048_576, description="Cap on completion length")
    ] = None
    frequency_penalty: Annotated[float | None, Field(ge=-2, le=2)] = None
    repetition_penalty: Annotated[float | None, Field(gt=0, le=10)] = None
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 120.0
    max_choices: Annotated[
        int,
        Field(
            ge=1,
            le=16,
            description="Cap on n and best_of: each choice costs a full completion of tokens",
        ),
    ] = 4
    enforce: Enforce = Enforce.CLAMP

    @model_validator(mode="after")
    def _default_within_cap(self) -> Generation:
        if (
            self.max_new_tokens is not None
            and self.max_tokens is not None
            and self.max_new_tokens > self.max_tokens
        ):
            raise ValueError(
                f"maxNewTokens {self.max_new_tokens} (the default) must not exceed "
                f"maxTokens {self.max_tokens} (the cap)"
            )
        return self


class PiiMode(StrEnum):
    OFF = "off"
    FLAG = "flag"
    REDACT = "redact"
    BLOCK = "block"


class Safety(ApiModel):
    pii: PiiMode = PiiMode.OFF


class RateLimit(ApiModel):
    requests_per_minute: Annotated[int | None, Field(ge=1)] = None
    tokens_per_minute: Annotated[int | None, Field(ge=1)] = None


class Gateway(ApiModel):
    enabled: bool = True
    image: Annotated[str | None, Field(max_length=512)] = None
    api_key_secret_ref: SecretRef | None = Field(
        default=None, description="Secret whose keys are key ids and values are API keys"
    )
    expected_language: Annotated[
        str | None,
        Field(pattern=r"^[a-z]{2}$", max_length=2, description="ISO 639-1 code of the answers"),
    ] = None
    safety: Safety = Safety()
    rate_limit: RateLimit | None = Field(default=None, description="Per API key")
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    workers: Annotated[
        int,
        Field(
            ge=1,
            le=16,
            description="Gateway worker processes on the API port (SO_REUSEPORT); the pod asks "
            "for 500m CPU per worker",
        ),
    ] = 2
