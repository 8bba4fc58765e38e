"""Status conditions in the shape of Kubernetes' metav1.Condition.

A condition's `lastTransitionTime` moves only when its status flips, so a reconcile that
observes the same state builds the same status, and the operator then writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

Status = Literal["True", "False", "Unknown"]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def set_condition(
    conditions: list[dict[str, Any]], type_: str, status: Status, reason: str, message: str, generation: int
) -> list[dict[str, Any]]:
    """`conditions` with `type_` set; other conditions kept as they are, order stable."""
    previous = condition(conditions, type_)
    updated = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": previous["lastTransitionTime"]
        if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime")
        else now(),
    }
    if previous is None:
        return [*conditions, updated]
    return [updated if c.get("type") == type_ else c for c in conditions]


def is_true(conditions: list[dict[str, Any]], type_: str, generation: int | None = None) -> bool:
    """Whether `type_` is True (and, if given, reflects `generation`)."""
    found = condition(conditions, type_)
    if found is None or found.get("status") != "True":
        return False
    return generation is None or found.get("observedGeneration") == generation
