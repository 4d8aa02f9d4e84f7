"""The edge: a raw LLMDeployment body becomes the typed model, or a readable reason why not.

The reconciler and the actuator both parse through here, once per body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from llm_operator.api.v1alpha1 import LLMDeployment


@dataclass(frozen=True)
class Invalid:
    reason: str
    message: str


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"spec.{loc}: {msg}" if loc else f"spec: {msg}")
    return "; ".join(parts)


def parse(body: dict[str, Any]) -> LLMDeployment | Invalid:
    """The edge: the raw body becomes the typed model, or a readable reason why not."""
    try:
        return LLMDeployment.model_validate(
            {"metadata": body["metadata"], "spec": body.get("spec") or {}}
        )
    except ValidationError as exc:
        return Invalid("InvalidSpec", format_validation_error(exc))
