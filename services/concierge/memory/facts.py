"""SQL for customer facts: remembered once per customer, recalled newest first across sessions.

A fact restated in any case or spacing is the same fact; stating it again makes it recent.
"""

from __future__ import annotations

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from concierge.db import tenant_transaction
from concierge.memory import rows
from concierge.memory.rows import FACT_COLUMNS
from concierge.memory.validation import FactQuery, NewFact
from concierge.v1 import memory_pb2


async def remember(pool: AsyncConnectionPool, new: NewFact) -> tuple[memory_pb2.Fact, bool]:
    """Store the fact unless the customer already has it; returns (stored fact, created)."""
    async with tenant_transaction(pool, new.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        # The unique index on lower(text) decides what "the same fact" is, also between concurrent
        # calls; `xmax = 0` is true only for a row this statement inserted (not one it updated).
        await cur.execute(
            f"""
            INSERT INTO customer_facts (tenant, customer_id, agent, session_id, text)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (tenant, customer_id, lower(text)) DO UPDATE SET last_seen_at = now()
            RETURNING {FACT_COLUMNS}, xmax = 0 AS created
            """,
            [new.tenant, new.customer_id, new.agent, new.session_id, new.text],
        )
        row = await cur.fetchone()
    assert row is not None
    return rows.fact(row), bool(row["created"])


async def recall(pool: AsyncConnectionPool, query: FactQuery) -> list[memory_pb2.Fact]:
    async with tenant_transaction(pool, query.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"SELECT {FACT_COLUMNS} FROM customer_facts WHERE customer_id = %s "
            "ORDER BY last_seen_at DESC, created_at DESC, id LIMIT %s",
            [query.customer_id, query.limit],
        )
        return [rows.fact(r) for r in await cur.fetchall()]
