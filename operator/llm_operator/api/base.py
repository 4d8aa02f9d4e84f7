"""The API's base: the group and kind names, field patterns, CEL rules, the model base class and
the Secret references every part of the spec uses."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

GROUP = "llmops.dev"


VERSION = "v1alpha1"


KIND = "LLMDeployment"


PLURAL = "llmdeployments"


SINGULAR = "llmdeployment"


SHORT_NAMES = ["llmd"]


API_VERSION = f"{GROUP}/{VERSION}"


MODEL_URI_PATTERN = r"^(hf://[A-Za-z0-9][\w.\-]*/[\w.\-]+|pvc://[a-z0-9][a-z0-9\-.]*/.*|s3://[a-z0-9][a-z0-9.\-]*/.+)$"


K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, JsonValue]:
    """One CEL rule for ``x-kubernetes-validations``."""
    out: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


class ApiModel(BaseModel):
    """Base: camelCase aliases, unknown fields refused, immutable once parsed."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def dump(self) -> dict[str, Any]:
        """The YAML/JSON form: camelCase, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    def dump_set(self) -> dict[str, Any]:
        """Only the fields a writer set (a server-side apply owns exactly what it sends)."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_unset=True, mode="json")


class SecretKeyRef(ApiModel):
    name: Annotated[str, Field(pattern=K8S_NAME_PATTERN, max_length=253)]
    key: Annotated[str, Field(min_length=1, max_length=253)] = "token"


class SecretRef(ApiModel):
    name: Annotated[str, Field(pattern=K8S_NAME_PATTERN, max_length=253)]
