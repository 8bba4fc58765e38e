"""SQL for sessions and messages; every statement runs inside the caller tenant's transaction.

Row-level security does the tenant filtering, so a session of another tenant is simply not found.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import ParseDict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from concierge.db import tenant_transaction
from concierge.memory.validation import ROLE_VALUES, InvalidArgument, NewMessage, Page
from concierge.v1 import memory_pb2

log = logging.getLogger(__name__)

_MESSAGE_COLUMNS = "id, session_id, seq, role, text, client_message_id, reply_to, citations, created_at"


class SessionNotFound(LookupError):
    """No session with this id is visible to the tenant (it does not exist or belongs to another)."""

    def __init__(self, tenant: str, session_id: uuid.UUID) -> None:
        super().__init__(f"session {session_id} not found in namespace {tenant!r}")


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _session(row: dict[str, Any]) -> memory_pb2.Session:
    return memory_pb2.Session(
        id=str(row["id"]), tenant=row["tenant"], agent=row["agent"], created_at=_timestamp(row["created_at"])
    )


def _message(row: dict[str, Any]) -> memory_pb2.Message:
    message = memory_pb2.Message(
        id=str(row["id"]),
        session_id=str(row["session_id"]),
        role=ROLE_VALUES[row["role"]],  # type: ignore[arg-type]  # ints of the Role enum
        text=row["text"],
        client_message_id=row["client_message_id"],
        seq=row["seq"],
        created_at=_timestamp(row["created_at"]),
        reply_to=str(row["reply_to"]) if row["reply_to"] else "",
    )
    for citation in row["citations"]:
        ParseDict(citation, message.citations.add(), ignore_unknown_fields=True)
    return message


async def create_session(pool: AsyncConnectionPool, tenant: str, agent: str) -> memory_pb2.Session:
    async with tenant_transaction(pool, tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "INSERT INTO sessions (tenant, agent) VALUES (%s, %s) RETURNING id, tenant, agent, created_at",
            [tenant, agent],
        )
        row = await cur.fetchone()
    assert row is not None
    return _session(row)


async def _require_session(cur: Any, tenant: str, session_id: uuid.UUID, *, lock: bool = False) -> None:
    """Raise SessionNotFound unless the session is visible to this transaction's tenant."""
    query = "SELECT 1 FROM sessions WHERE id = %s FOR UPDATE" if lock else "SELECT 1 FROM sessions WHERE id = %s"
    await cur.execute(query, [session_id])
    if await cur.fetchone() is None:
        raise SessionNotFound(tenant, session_id)


async def get_session(pool: AsyncConnectionPool, tenant: str, session_id: uuid.UUID) -> memory_pb2.Session:
    async with tenant_transaction(pool, tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT id, tenant, agent, created_at FROM sessions WHERE id = %s", [session_id])
        row = await cur.fetchone()
    if row is None:
        raise SessionNotFound(tenant, session_id)
    return _session(row)


async def append_message(pool: AsyncConnectionPool, new: NewMessage) -> tuple[memory_pb2.Message, bool]:
    """Store `new` once; returns (stored message, created). Committed before it returns."""
    async with tenant_transaction(pool, new.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        # The row lock serialises appends to one session: the next seq cannot be taken twice and a
        # concurrent resend waits here, then finds the row its twin committed.
        await _require_session(cur, new.tenant, new.session_id, lock=True)
        await cur.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = %s AND client_message_id = %s",
            [new.session_id, new.client_message_id],
        )
        existing = await cur.fetchone()
        if existing is not None:
            return _message(existing), False
        if new.reply_to is not None:
            await cur.execute(
                "SELECT 1 FROM messages WHERE session_id = %s AND id = %s", [new.session_id, new.reply_to]
            )
            if await cur.fetchone() is None:
                raise InvalidArgument(
                    f"reply_to {new.reply_to} is not a message of session {new.session_id}; "
                    "it must name the stored message this one answers"
                )
        await cur.execute(
            f"""
            INSERT INTO messages (tenant, session_id, seq, role, text, client_message_id, reply_to, citations)
            VALUES (%s, %s, (SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE session_id = %s),
                    %s, %s, %s, %s, %s)
            RETURNING {_MESSAGE_COLUMNS}
            """,
            [
                new.tenant,
                new.session_id,
                new.session_id,
                new.role,
                new.text,
                new.client_message_id,
                new.reply_to,
                Jsonb(new.citations),
            ],
        )
        row = await cur.fetchone()
    assert row is not None
    return _message(row), True


async def list_messages(pool: AsyncConnectionPool, page: Page) -> tuple[list[memory_pb2.Message], int]:
    """Messages with seq > after_seq, oldest first; returns them and the next after_seq (0 at the end)."""
    async with tenant_transaction(pool, page.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await _require_session(cur, page.tenant, page.session_id)
        # One row more than asked tells whether another page exists without a count query.
        await cur.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            [page.session_id, page.after_seq, page.limit + 1],
        )
        rows = await cur.fetchall()
    messages = [_message(r) for r in rows[: page.limit]]
    next_after_seq = messages[-1].seq if len(rows) > page.limit else 0
    return messages, next_after_seq
