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


def already_written(
    status: dict[str, Any], current: dict[str, Any], owned: tuple[str, ...]
) -> bool:
    """Does ``current`` (an object's status) already hold what a writer would apply?

    ``status`` is the writer's whole part and ``owned`` its condition types: a condition of
    those types that ``status`` no longer has must be removed, which is a write too. A writer
    that skips an unchanged status leaves the API server alone (an idle operator writes nothing).
    """
    for key, value in status.items():
        if key != "conditions" and current.get(key) != value:
            return False
    mine = {c["type"]: c for c in status.get("conditions") or []}
    theirs = {c.get("type"): c for c in current.get("conditions") or [] if c.get("type") in owned}
    return mine == theirs
