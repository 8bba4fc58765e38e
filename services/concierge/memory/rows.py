"""Database rows to protobuf messages, and the column lists the queries select for them.

Every module of the store reads rows through these, so an RPC returns the same shape everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import ParseDict

from concierge.memory.validation import HANDOFF_STATE_VALUES, ROLE_VALUES, STATUS_VALUES
from concierge.v1 import memory_pb2

Row = dict[str, Any]

SESSION_COLUMNS = (
    "id, tenant, agent, created_at, customer_id, status, handler, escalation_reason, escalated_at, "
    "summary, summary_through_seq, updated_at, customer_turns"
)
MESSAGE_COLUMNS = (
    "id, session_id, seq, role, text, client_message_id, reply_to, citations, created_at, author, confidence"
)
FACT_COLUMNS = "id, customer_id, text, session_id, created_at"
ATTACHMENT_COLUMNS = "id, session_id, filename, content_type, size_bytes, text, truncated, created_at"
HANDOFF_COLUMNS = (
    "id, session_id, agent, url, payload_json, idempotency_key, state, attempts, last_error, next_attempt_at, "
    "created_at, delivered_at"
)


def timestamp(value: datetime | None) -> str:
    """RFC 3339 in UTC with a `Z`; empty for NULL."""
    if value is None:
        return ""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def session(row: Row) -> memory_pb2.Session:
    return memory_pb2.Session(
        id=str(row["id"]),
        tenant=row["tenant"],
        agent=row["agent"],
        created_at=timestamp(row["created_at"]),
        customer_id=row["customer_id"],
        status=STATUS_VALUES[row["status"]],  # type: ignore[arg-type]  # ints of the SessionStatus enum
        handler=row["handler"],
        escalation_reason=row["escalation_reason"],
        escalated_at=timestamp(row["escalated_at"]),
        summary=row["summary"],
        summary_through_seq=row["summary_through_seq"],
        updated_at=timestamp(row["updated_at"]),
        customer_turns=row["customer_turns"],
    )


def message(row: Row) -> memory_pb2.Message:
    result = memory_pb2.Message(
        id=str(row["id"]),
        session_id=str(row["session_id"]),
        role=ROLE_VALUES[row["role"]],  # type: ignore[arg-type]  # ints of the Role enum
        text=row["text"],
        client_message_id=row["client_message_id"],
        seq=row["seq"],
        created_at=timestamp(row["created_at"]),
        reply_to=str(row["reply_to"]) if row["reply_to"] else "",
        author=row["author"],
    )
    if row["confidence"] is not None:
        result.confidence = row["confidence"]
    for citation in row["citations"]:
        ParseDict(citation, result.citations.add(), ignore_unknown_fields=True)
    return result


def fact(row: Row) -> memory_pb2.Fact:
    return memory_pb2.Fact(
        id=str(row["id"]),
        customer_id=row["customer_id"],
        text=row["text"],
        session_id=str(row["session_id"]) if row["session_id"] else "",
        created_at=timestamp(row["created_at"]),
    )


def attachment(row: Row) -> memory_pb2.Attachment:
    return memory_pb2.Attachment(
        id=str(row["id"]),
        session_id=str(row["session_id"]),
        filename=row["filename"],
        content_type=row["content_type"],
        size_bytes=row["size_bytes"],
        text=row["text"],
        truncated=row["truncated"],
        created_at=timestamp(row["created_at"]),
    )


def handoff(row: Row) -> memory_pb2.Handoff:
    return memory_pb2.Handoff(
        id=str(row["id"]),
        session_id=str(row["session_id"]),
        agent=row["agent"],
        url=row["url"],
        payload_json=row["payload_json"],
        idempotency_key=row["idempotency_key"],
        state=HANDOFF_STATE_VALUES[row["state"]],  # type: ignore[arg-type]  # ints of the HandoffState enum
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt_at=timestamp(row["next_attempt_at"]),
        created_at=timestamp(row["created_at"]),
        delivered_at=timestamp(row["delivered_at"]),
    )
