"""Tenant isolation: one tenant's search and pooled connections never see another's rows.

Row-level security is checked in the database itself, with the application role the service uses.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from concierge.db import open_pool, tenant_transaction
from concierge.local.processes import ServiceProcess
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

if TYPE_CHECKING:
    Stub = retrieval_pb2_grpc.RetrievalServiceAsyncStub

# Both tenants use the same knowledge base name: only the tenant tells their rows apart.
KB = "help-center"
SECRET = "The staff discount code for Globex employees is ORCHID-7731 at checkout."
PUBLIC = "Initech customers get free shipping on every order."


@pytest.fixture(scope="module")
def tenants() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:6]
    return f"globex-{suffix}", f"initech-{suffix}"


@pytest.fixture(scope="module")
async def stub(retrieval_service: ServiceProcess) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(retrieval_service.address) as channel:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


@pytest.fixture(scope="module")
async def synced(stub: Stub, tenants: tuple[str, str]) -> tuple[str, str]:
    for tenant, text in zip(tenants, (SECRET, PUBLIC), strict=True):
        spec = json.dumps({"sources": [{"name": "notes", "inline": [{"title": "Discounts", "content": text}]}]})
        request = retrieval_pb2.SyncKnowledgeBaseRequest(tenant=tenant, knowledge_base=KB, spec_json=spec)
        final = [m async for m in stub.SyncKnowledgeBase(request, timeout=120)][-1]
        assert (final.done, final.chunks_total) == (True, 1)
    return tenants


@pytest.fixture
async def single_connection_pool(postgres_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """One pooled connection as the application role: every transaction reuses it."""
    pool = await open_pool(postgres_url, min_size=1, max_size=1)
    yield pool
    await pool.close()


async def search(stub: Stub, tenant: str, query: str) -> list[retrieval_pb2.SearchHit]:
    request = retrieval_pb2.SearchRequest(tenant=tenant, knowledge_bases=[KB], query=query, top_k=10)
    return list((await stub.Search(request, timeout=30)).hits)


async def test_a_tenant_never_finds_another_tenants_chunks(stub: Stub, synced: tuple[str, str]) -> None:
    globex, initech = synced
    own = await search(stub, globex, "staff discount code ORCHID-7731")
    assert [h.text for h in own] == [SECRET]
    others = await search(stub, initech, "staff discount code ORCHID-7731")
    assert [h.text for h in others] == [PUBLIC]
    assert {h.chunk_id for h in others}.isdisjoint(h.chunk_id for h in own)


async def row_counts(conn: psycopg.AsyncConnection) -> tuple[int, ...]:
    cursor = await conn.execute(
        "SELECT (SELECT count(*) FROM knowledge_bases WHERE name = %(kb)s),"
        " (SELECT count(*) FROM documents WHERE knowledge_base = %(kb)s),"
        " (SELECT count(*) FROM chunks WHERE knowledge_base = %(kb)s AND text LIKE '%%ORCHID%%')",
        {"kb": KB},
    )
    row = await cursor.fetchone()
    assert row is not None
    return tuple(row)


async def test_a_pooled_connection_scoped_to_another_tenant_sees_none_of_its_rows(
    single_connection_pool: AsyncConnectionPool, synced: tuple[str, str]
) -> None:
    globex, initech = synced
    async with tenant_transaction(single_connection_pool, globex) as conn:
        assert await row_counts(conn) == (1, 1, 1)
        globex_backend = conn.info.backend_pid
    # Same pooled connection, next transaction, other tenant: the database hides Globex's rows.
    async with tenant_transaction(single_connection_pool, initech) as conn:
        assert conn.info.backend_pid == globex_backend
        assert await row_counts(conn) == (1, 1, 0)
        cursor = await conn.execute("SELECT count(*) FROM chunks WHERE tenant = %s", [globex])
        assert await cursor.fetchone() == (0,)


async def test_a_connection_without_a_tenant_sees_nothing(
    single_connection_pool: AsyncConnectionPool, synced: tuple[str, str]
) -> None:
    async with tenant_transaction(single_connection_pool, synced[0]):
        pass
    # The tenant setting is transaction-local: the next transaction on the connection has none.
    async with single_connection_pool.connection() as conn:
        cursor = await conn.execute("SELECT count(*) FROM chunks")
        assert await cursor.fetchone() == (0,)


async def test_writing_a_row_for_another_tenant_is_refused_by_the_database(
    single_connection_pool: AsyncConnectionPool, synced: tuple[str, str]
) -> None:
    globex, initech = synced
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        async with tenant_transaction(single_connection_pool, initech) as conn:
            await conn.execute(
                "INSERT INTO knowledge_bases (tenant, name, model, dimension) VALUES (%s, 'planted', 'm', 384)",
                [globex],
            )


async def test_deleting_a_knowledge_base_leaves_the_same_name_of_another_tenant_alone(
    stub: Stub, postgres_url: str, synced: tuple[str, str]
) -> None:
    globex, initech = synced
    spec = json.dumps({"sources": [{"name": "notes", "inline": [{"title": "Temp", "content": "Temporary notes."}]}]})
    other = f"temp-{uuid.uuid4().hex[:6]}"
    for tenant in synced:
        request = retrieval_pb2.SyncKnowledgeBaseRequest(tenant=tenant, knowledge_base=other, spec_json=spec)
        assert [m async for m in stub.SyncKnowledgeBase(request, timeout=120)][-1].done
    deleted = await stub.DeleteKnowledgeBase(
        retrieval_pb2.DeleteKnowledgeBaseRequest(tenant=initech, knowledge_base=other), timeout=30
    )
    assert deleted.documents_deleted == 1
    request = retrieval_pb2.SearchRequest(tenant=globex, knowledge_bases=[other], query="temporary notes", top_k=3)
    assert len((await stub.Search(request, timeout=30)).hits) == 1
