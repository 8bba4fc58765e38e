"""SQL for attachments: the text extracted from a customer's upload, kept with its session.

Deleted with the session (foreign key cascade), so retention and erasure cover them.
"""

from __future__ import annotations

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from concierge.db import tenant_transaction
from concierge.memory import rows
from concierge.memory.errors import AttachmentNotFound
from concierge.memory.rows import ATTACHMENT_COLUMNS
from concierge.memory.store import require_session
from concierge.memory.validation import AttachmentRef, NewAttachment
from concierge.v1 import memory_pb2


async def add(pool: AsyncConnectionPool, new: NewAttachment) -> memory_pb2.Attachment:
    async with tenant_transaction(pool, new.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await require_session(cur, new.tenant, new.session_id, lock=True)
        await cur.execute(
            f"""
            INSERT INTO attachments (tenant, session_id, filename, content_type, size_bytes, text, truncated)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            RETURNING {ATTACHMENT_COLUMNS}
            """,
            [new.tenant, new.session_id, new.filename, new.content_type, new.size_bytes, new.text, new.truncated],
        )
        row = await cur.fetchone()
        await cur.execute("UPDATE sessions SET updated_at = now() WHERE id = %s", [new.session_id])
    assert row is not None
    return rows.attachment(row)


async def get(pool: AsyncConnectionPool, ref: AttachmentRef) -> memory_pb2.Attachment:
    async with tenant_transaction(pool, ref.tenant) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await require_session(cur, ref.tenant, ref.session_id)
        await cur.execute(
            f"SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE session_id = %s AND id = %s",
            [ref.session_id, ref.attachment_id],
        )
        row = await cur.fetchone()
    if row is None:
        raise AttachmentNotFound(ref.session_id, ref.attachment_id)
    return rows.attachment(row)
