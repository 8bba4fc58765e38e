"""SQL for a customer's right of access (export) and erasure, and for per-agent retention.

"About the customer" means their sessions with everything those hold (messages, attachments,
hand-offs) and the facts remembered under their id, under `session:<id>` of their sessions, or
learned in one of their sessions.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message as ProtoMessage
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from concierge.db import tenant_transaction
from concierge.memory import rows
from concierge.memory.rows import ATTACHMENT_COLUMNS, FACT_COLUMNS, HANDOFF_COLUMNS, MESSAGE_COLUMNS, SESSION_COLUMNS
from concierge.memory.validation import Customer, Retention

# Facts that name the customer, one of their anonymous session ids, or one of their sessions.
_FACTS_OF_CUSTOMER = "customer_id = %(customer)s OR customer_id = ANY(%(anonymous)s) OR session_id = ANY(%(sessions)s)"


@dataclass(frozen=True)
class Export:
    json: str
    sessions: int
    messages: int
    facts: int


@dataclass(frozen=True)
class Erased:
    sessions: int
    messages: int
    facts: int
    attachments: int
    handoffs: int


@dataclass(frozen=True)
class Purged:
    sessions: int
    facts: int


def _anonymous_ids(session_ids: list[uuid.UUID]) -> list[str]:
    # The agent remembers facts of an anonymous chat under `session:<id>` (see RememberFact).
    return [f"session:{s}" for s in session_ids]


def _dict(message: ProtoMessage) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


async def export_customer(pool: AsyncConnectionPool, customer: Customer) -> Export:
    """Everything stored about the customer as one JSON document, sessions oldest first."""
    async with tenant_transaction(pool, customer.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE customer_id = %s ORDER BY created_at, id",
            [customer.customer_id],
        )
        session_rows = await cur.fetchall()
        ids = [r["id"] for r in session_rows]
        await cur.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ANY(%s) ORDER BY seq", [ids])
        message_rows = await cur.fetchall()
        await cur.execute(
            f"SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE session_id = ANY(%s) ORDER BY created_at, id", [ids]
        )
        attachment_rows = await cur.fetchall()
        await cur.execute(
            f"SELECT {FACT_COLUMNS} FROM customer_facts WHERE {_FACTS_OF_CUSTOMER} ORDER BY created_at, id",
            {"customer": customer.customer_id, "anonymous": _anonymous_ids(ids), "sessions": ids},
        )
        fact_rows = await cur.fetchall()
        await cur.execute(
            f"SELECT {HANDOFF_COLUMNS} FROM handoffs WHERE session_id = ANY(%s) ORDER BY created_at, id", [ids]
        )
        handoff_rows = await cur.fetchall()

    messages_of: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
    for m in message_rows:
        messages_of[m["session_id"]].append(_dict(rows.message(m)))
    attachments_of: defaultdict[Any, list[dict[str, Any]]] = defaultdict(list)
    for a in attachment_rows:
        attachments_of[a["session_id"]].append(_dict(rows.attachment(a)))
    sessions = []
    for row in session_rows:
        session = _dict(rows.session(row))
        session["messages"] = messages_of[row["id"]]
        session["attachments"] = attachments_of[row["id"]]
        sessions.append(session)
    document = {
        "tenant": customer.tenant,
        "customer_id": customer.customer_id,
        "exported_at": rows.timestamp(datetime.now(UTC)),
        "sessions": sessions,
        "facts": [_dict(rows.fact(f)) for f in fact_rows],
        "handoffs": [_dict(rows.handoff(h)) for h in handoff_rows],
    }
    return Export(
        json=json.dumps(document, ensure_ascii=False, indent=2),
        sessions=len(session_rows),
        messages=len(message_rows),
        facts=len(fact_rows),
    )


async def erase_customer(pool: AsyncConnectionPool, customer: Customer) -> Erased:
    """Delete the customer's sessions (messages, attachments and hand-offs go with them) and facts."""
    async with tenant_transaction(pool, customer.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        # Locking the sessions holds off appends, attachments and hand-offs until the delete commits,
        # so the counts below are exactly what goes.
        await cur.execute("SELECT id FROM sessions WHERE customer_id = %s FOR UPDATE", [customer.customer_id])
        ids = [r["id"] for r in await cur.fetchall()]
        await cur.execute(
            """
            SELECT (SELECT count(*) FROM messages WHERE session_id = ANY(%(ids)s)) AS messages,
                   (SELECT count(*) FROM attachments WHERE session_id = ANY(%(ids)s)) AS attachments,
                   (SELECT count(*) FROM handoffs WHERE session_id = ANY(%(ids)s)) AS handoffs
            """,
            {"ids": ids},
        )
        held = await cur.fetchone()
        assert held is not None
        await cur.execute(
            f"DELETE FROM customer_facts WHERE {_FACTS_OF_CUSTOMER}",
            {"customer": customer.customer_id, "anonymous": _anonymous_ids(ids), "sessions": ids},
        )
        facts = cur.rowcount
        await cur.execute("DELETE FROM sessions WHERE id = ANY(%s)", [ids])
        sessions = cur.rowcount
    return Erased(
        sessions=sessions,
        messages=held["messages"],
        facts=facts,
        attachments=held["attachments"],
        handoffs=held["handoffs"],
    )


async def purge_expired(pool: AsyncConnectionPool, retention: Retention) -> Purged:
    """Delete the agent's sessions idle longer than the retention, and its facts not restated since.

    Facts of an anonymous chat (`session:<id>`) go with
    their session whatever their age, since nothing could ever recall them again.
    """
    async with tenant_transaction(pool, retention.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "DELETE FROM sessions WHERE agent = %s AND updated_at < now() - make_interval(days => %s) RETURNING id",
            [retention.agent, retention.days],
        )
        ids = [r["id"] for r in await cur.fetchall()]
        await cur.execute(
            """
            DELETE FROM customer_facts
            WHERE (agent = %s AND last_seen_at < now() - make_interval(days => %s)) OR customer_id = ANY(%s)
            """,
            [retention.agent, retention.days, _anonymous_ids(ids)],
        )
        facts = cur.rowcount
    return Purged(sessions=len(ids), facts=facts)
