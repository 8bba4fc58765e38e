"""SQL for sessions and messages: create, append, page, summarise, hand over, list the inbox.

Every statement runs inside the caller tenant's transaction; row-level security does the tenant
filtering, so a session of another tenant is simply not found. Facts, attachments, hand-offs and
privacy live in their own modules.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from concierge.db import tenant_transaction
from concierge.memory import rows
from concierge.memory.errors import SessionNotFound, StatusConflict
from concierge.memory.rows import MESSAGE_COLUMNS, SESSION_COLUMNS, Row
from concierge.memory.validation import (
    InvalidArgument,
    NewMessage,
    NewSession,
    Page,
    SessionQuery,
    StatusChange,
    SummaryUpdate,
)
from concierge.v1 import memory_pb2


async def create_session(pool: AsyncConnectionPool, new: NewSession) -> memory_pb2.Session:
    async with tenant_transaction(pool, new.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"INSERT INTO sessions (tenant, agent, customer_id) VALUES (%s, %s, %s) RETURNING {SESSION_COLUMNS}",
            [new.tenant, new.agent, new.customer_id],
        )
        row = await cur.fetchone()
    assert row is not None
    return rows.session(row)


async def require_session(
    cur: Any, tenant: str, session_id: uuid.UUID, *, lock: bool = False, columns: str = "id"
) -> Row:
    """The session's `columns` (pass SESSION_COLUMNS for the whole row), or SessionNotFound unless it is
    visible to this transaction's tenant.

    `lock` takes the row lock that serialises every write to one session (appends, status, summary).
    """
    await cur.execute(f"SELECT {columns} FROM sessions WHERE id = %s" + (" FOR UPDATE" if lock else ""), [session_id])
    row: Row | None = await cur.fetchone()
    if row is None:
        raise SessionNotFound(tenant, session_id)
    return row


async def get_session(pool: AsyncConnectionPool, tenant: str, session_id: uuid.UUID) -> memory_pb2.Session:
    async with tenant_transaction(pool, tenant) as conn:
        row = await require_session(conn.cursor(row_factory=dict_row), tenant, session_id, columns=SESSION_COLUMNS)
    return rows.session(row)


async def append_message(pool: AsyncConnectionPool, new: NewMessage) -> tuple[memory_pb2.Message, bool]:
    """Store `new` once; returns (stored message, created). Committed before it returns."""
    async with tenant_transaction(pool, new.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        # The row lock serialises appends to one session: the next seq cannot be taken twice and a
        # concurrent resend waits here, then finds the row its twin committed.
        await require_session(cur, new.tenant, new.session_id, lock=True)
        await cur.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = %s AND client_message_id = %s",
            [new.session_id, new.client_message_id],
        )
        existing = await cur.fetchone()
        if existing is not None:
            return rows.message(existing), False
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
            INSERT INTO messages
              (tenant, session_id, seq, role, text, client_message_id, reply_to, citations, author, confidence)
            VALUES (%s, %s, (SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE session_id = %s),
                    %s, %s, %s, %s, %s, %s, %s)
            RETURNING {MESSAGE_COLUMNS}
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
                new.author,
                new.confidence,
            ],
        )
        row = await cur.fetchone()
        await cur.execute(
            "UPDATE sessions SET updated_at = now(), customer_turns = customer_turns + %s WHERE id = %s",
            [1 if new.role == "user" else 0, new.session_id],
        )
    assert row is not None
    return rows.message(row), True


async def list_messages(pool: AsyncConnectionPool, page: Page) -> tuple[list[memory_pb2.Message], int]:
    """Messages with seq > after_seq, or the newest N, oldest first; and the next after_seq (0 at the end)."""
    async with tenant_transaction(pool, page.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await require_session(cur, page.tenant, page.session_id)
        if page.newest:
            await cur.execute(
                f"SELECT * FROM (SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = %s "
                "ORDER BY seq DESC LIMIT %s) AS newest ORDER BY seq",
                [page.session_id, page.newest],
            )
            return [rows.message(r) for r in await cur.fetchall()], 0
        # One row more than asked tells whether another page exists without a count query.
        await cur.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            [page.session_id, page.after_seq, page.limit + 1],
        )
        found = await cur.fetchall()
    messages = [rows.message(r) for r in found[: page.limit]]
    next_after_seq = messages[-1].seq if len(found) > page.limit else 0
    return messages, next_after_seq


async def update_summary(pool: AsyncConnectionPool, update: SummaryUpdate) -> tuple[memory_pb2.Session, bool]:
    """Store the summary unless a newer one (higher through_seq) is there; returns (session, applied)."""
    async with tenant_transaction(pool, update.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        current = await require_session(cur, update.tenant, update.session_id, lock=True, columns=SESSION_COLUMNS)
        # Summaries of two turns can finish out of order; the one covering more messages wins.
        if update.through_seq < current["summary_through_seq"]:
            return rows.session(current), False
        await cur.execute(
            "SELECT coalesce(max(seq), 0) AS last FROM messages WHERE session_id = %s", [update.session_id]
        )
        last = await cur.fetchone()
        assert last is not None
        if update.through_seq > last["last"]:
            raise InvalidArgument(
                f"through_seq {update.through_seq} is past the last message of session {update.session_id} "
                f"(seq {last['last']}); pass the seq of the newest message the summary covers"
            )
        await cur.execute(
            f"UPDATE sessions SET summary = %s, summary_through_seq = %s, updated_at = now() WHERE id = %s "
            f"RETURNING {SESSION_COLUMNS}",
            [update.summary, update.through_seq, update.session_id],
        )
        row = await cur.fetchone()
    assert row is not None
    return rows.session(row), True


async def set_session_status(pool: AsyncConnectionPool, change: StatusChange) -> tuple[memory_pb2.Session, bool]:
    """Compare-and-set the session status; returns (session, changed).

    The session row describes the current hand-off episode: leaving BOT stamps `escalated_at`, which
    then stays while the session moves between ESCALATED and HUMAN; returning to BOT ends the
    episode and clears handler, reason and `escalated_at` (the messages and the hand-off outbox keep
    the history). A request for the state the session is already in succeeds with changed=false
    whatever `expect` says, so a retried takeover by the same human is not reported as lost.
    """
    async with tenant_transaction(pool, change.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        # The row lock makes the check and the write one step: of two concurrent takeovers, the second
        # waits here and then sees the first one's HUMAN.
        current = await require_session(cur, change.tenant, change.session_id, lock=True, columns=SESSION_COLUMNS)
        if current["status"] == change.status and current["handler"] == change.handler:
            return rows.session(current), False
        if (change.expect and current["status"] not in change.expect) or (
            change.expect_handler and current["handler"] != change.expect_handler
        ):
            raise StatusConflict(change.session_id, current["status"], current["handler"], change.expect)
        # A reason-less step between ESCALATED and HUMAN keeps the episode's reason.
        reason = "" if change.status == "bot" else change.reason or current["escalation_reason"]
        await cur.execute(
            f"""
            UPDATE sessions
            SET status = %(status)s, handler = %(handler)s, escalation_reason = %(reason)s,
                escalated_at = CASE WHEN %(status)s = 'bot' THEN NULL ELSE coalesce(escalated_at, now()) END,
                updated_at = now()
            WHERE id = %(id)s
            RETURNING {SESSION_COLUMNS}
            """,
            {"status": change.status, "handler": change.handler, "reason": reason, "id": change.session_id},
        )
        row = await cur.fetchone()
    assert row is not None
    return rows.session(row), True


async def list_sessions(pool: AsyncConnectionPool, query: SessionQuery) -> list[memory_pb2.Session]:
    """The tenant's sessions, newest escalation first, then most recently active."""
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    if query.statuses:
        conditions.append(sql.SQL("status = ANY(%s)"))
        params.append(list(query.statuses))
    if query.agent:
        conditions.append(sql.SQL("agent = %s"))
        params.append(query.agent)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    statement = sql.SQL(
        "SELECT {columns} FROM sessions{where} ORDER BY escalated_at DESC NULLS LAST, updated_at DESC, id LIMIT %s"
    ).format(columns=sql.SQL(SESSION_COLUMNS), where=where)
    async with tenant_transaction(pool, query.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(statement, [*params, query.limit])
        return [rows.session(r) for r in await cur.fetchall()]
