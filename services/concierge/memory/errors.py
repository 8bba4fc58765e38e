"""What the memory store raises besides InvalidArgument; the server maps each to a gRPC status.

NotFound → NOT_FOUND, StatusConflict → FAILED_PRECONDITION.
"""

from __future__ import annotations

import uuid


class NotFound(LookupError):
    """Nothing with this id is visible to the tenant (it does not exist or belongs to another)."""


class SessionNotFound(NotFound):
    def __init__(self, tenant: str, session_id: uuid.UUID) -> None:
        super().__init__(f"session {session_id} not found in namespace {tenant!r}")


class AttachmentNotFound(NotFound):
    def __init__(self, session_id: uuid.UUID, attachment_id: uuid.UUID) -> None:
        super().__init__(f"attachment {attachment_id} not found in session {session_id}")


class HandoffNotFound(NotFound):
    def __init__(self, tenant: str, handoff_id: uuid.UUID) -> None:
        super().__init__(f"hand-off {handoff_id} not found in namespace {tenant!r}")


class StatusConflict(Exception):
    """A compare-and-set on the session status found another status than the caller expected."""

    def __init__(self, session_id: uuid.UUID, current: str, handler: str, expected: tuple[str, ...]) -> None:
        held = {
            "bot": "is answered by the bot",
            "escalated": "is waiting for a human agent",
            "human": f"is held by human agent {handler!r}",
        }[current]
        wanted = " or ".join(s.upper() for s in expected)
        super().__init__(
            f"session {session_id} {held} (status {current.upper()}); expected {wanted} — "
            "read the session again and decide whether the change still makes sense"
        )
        self.current = current
