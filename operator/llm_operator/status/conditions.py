"""Status conditions with stable lastTransitionTime (it moves only when the status flips).

Each condition is built through the API's ``Condition`` model, so a reason or type the CRD
would refuse fails here, in the test that wrote it, not at the API server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from llm_operator.api.v1alpha1 import Condition


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    *,
    now: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """A new list with ``type_`` set; other conditions are kept as they are."""
    old = next((c for c in conditions if c.get("type") == type_), None)
    changed = old is None or old.get("status") != status
    since = now if changed or old is None else old.get("lastTransitionTime", now)
    cond = Condition.model_validate(
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
            "observedGeneration": generation,
        }
    ).dump()
    return [c for c in conditions if c.get("type") != type_] + [cond]


def get_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)
