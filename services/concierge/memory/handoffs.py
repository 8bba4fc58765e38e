"""SQL for the hand-off outbox: enqueue once per idempotency key, lease due deliveries, record outcomes.

A delivery is pending until a dispatcher reports it delivered, or reports a failure without a retry
(dead letter). A claim leases rows with SKIP LOCKED, so concurrent dispatchers never share a row.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from concierge.db import tenant_transaction
from concierge.memory import rows
from concierge.memory.errors import HandoffNotFound
from concierge.memory.rows import HANDOFF_COLUMNS
from concierge.memory.store import require_session
from concierge.memory.validation import HandoffClaim, HandoffOutcome, HandoffQuery, NewHandoff
from concierge.v1 import memory_pb2


async def enqueue(pool: AsyncConnectionPool, new: NewHandoff) -> tuple[memory_pb2.Handoff, bool]:
    """Store the delivery unless its idempotency key is known; returns (stored hand-off, created)."""
    async with tenant_transaction(pool, new.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await require_session(cur, new.tenant, new.session_id)
        # A concurrent insert of the same key makes this one wait, then do nothing; the SELECT that
        # follows runs with a fresh snapshot and finds the twin's committed row.
        await cur.execute(
            f"""
            INSERT INTO handoffs (tenant, session_id, agent, url, payload_json, idempotency_key)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (tenant, idempotency_key) DO NOTHING
            RETURNING {HANDOFF_COLUMNS}
            """,
            [new.tenant, new.session_id, new.agent, new.url, new.payload_json, new.idempotency_key],
        )
        row = await cur.fetchone()
        if row is not None:
            return rows.handoff(row), True
        await cur.execute(f"SELECT {HANDOFF_COLUMNS} FROM handoffs WHERE idempotency_key = %s", [new.idempotency_key])
        row = await cur.fetchone()
    assert row is not None
    return rows.handoff(row), False


async def claim(pool: AsyncConnectionPool, request: HandoffClaim) -> list[memory_pb2.Handoff]:
    """Lease up to `limit` due pending deliveries for `lease_seconds`; each claim counts an attempt."""
    async with tenant_transaction(pool, request.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        # SKIP LOCKED passes over rows another dispatcher is claiming right now; if that claim commits
        # first, the lock re-checks the lease condition on the new row version and drops the row.
        # MATERIALIZED keeps the locking subquery evaluated exactly once.
        await cur.execute(
            f"""
            WITH due AS MATERIALIZED (
              SELECT id FROM handoffs
              WHERE state = 'pending' AND next_attempt_at <= now() AND agent = ANY(%s)
                AND (lease_until IS NULL OR lease_until < now())
              ORDER BY next_attempt_at
              LIMIT %s
              FOR UPDATE SKIP LOCKED
            )
            UPDATE handoffs SET lease_until = now() + make_interval(secs => %s), attempts = attempts + 1
            FROM due WHERE handoffs.id = due.id
            RETURNING {", ".join(f"handoffs.{c}" for c in HANDOFF_COLUMNS.split(", "))}
            """,
            [list(request.agents), request.limit, request.lease_seconds],
        )
        claimed = await cur.fetchall()
    claimed.sort(key=lambda r: (r["next_attempt_at"], r["created_at"]))
    return [rows.handoff(r) for r in claimed]


async def finish(pool: AsyncConnectionPool, outcome: HandoffOutcome) -> memory_pb2.Handoff:
    """Record a delivery attempt's outcome.

    Delivered is final: a late failure report from a dispatcher whose lease had expired does not
    undo it. A dead letter can still be reported delivered (the receiver did get it after all).
    """
    async with tenant_transaction(pool, outcome.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"SELECT {HANDOFF_COLUMNS} FROM handoffs WHERE id = %s FOR UPDATE", [outcome.handoff_id])
        current = await cur.fetchone()
        if current is None:
            raise HandoffNotFound(outcome.tenant, outcome.handoff_id)
        if current["state"] == "delivered" or (current["state"] == "dead" and not outcome.delivered):
            return rows.handoff(current)
        if outcome.delivered:
            change = "state = 'delivered', delivered_at = now(), lease_until = NULL, last_error = ''"
            params: list[Any] = []
        elif outcome.retry_in_seconds:
            change = (
                "state = 'pending', next_attempt_at = now() + make_interval(secs => %s), lease_until = NULL, "
                "last_error = %s"
            )
            params = [outcome.retry_in_seconds, outcome.error]
        else:
            change = "state = 'dead', lease_until = NULL, last_error = %s"
            params = [outcome.error]
        await cur.execute(
            f"UPDATE handoffs SET {change} WHERE id = %s RETURNING {HANDOFF_COLUMNS}",
            [*params, outcome.handoff_id],
        )
        row = await cur.fetchone()
    assert row is not None
    return rows.handoff(row)


async def list_handoffs(pool: AsyncConnectionPool, query: HandoffQuery) -> list[memory_pb2.Handoff]:
    """The tenant's hand-offs, newest first, for operators and tests."""
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    if query.states:
        conditions.append(sql.SQL("state = ANY(%s)"))
        params.append(list(query.states))
    if query.session_id is not None:
        conditions.append(sql.SQL("session_id = %s"))
        params.append(query.session_id)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
    statement = sql.SQL("SELECT {columns} FROM handoffs{where} ORDER BY created_at DESC, id LIMIT %s").format(
        columns=sql.SQL(HANDOFF_COLUMNS), where=where
    )
    async with tenant_transaction(pool, query.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(statement, [*params, query.limit])
        return [rows.handoff(r) for r in await cur.fetchall()]
