"""Many syncs and searches at once on a small connection pool, and a sync killed half-way.

A dedicated retrieval process runs with a pool of 3; its embedding calls go through a gate in
this test process that forwards to the real embedding service, or holds them, as a restart would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from concierge.db import open_pool, tenant_transaction
from concierge.local.processes import ServiceProcess, start_service
from concierge.retrieval import store
from concierge.v1 import embedding_pb2, embedding_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

if TYPE_CHECKING:
    Stub = retrieval_pb2_grpc.RetrievalServiceAsyncStub

POOL_SIZE = 3
SYNC_CONCURRENCY = 2
WAITING = "waiting for a free sync slot"
DOCUMENT = embedding_pb2.EMBED_KIND_DOCUMENT
QUERY = embedding_pb2.EMBED_KIND_QUERY
FAQ = [
    {"title": "Opening hours", "content": "Our phone line is open Monday to Friday, 8am to 8pm."},
    {"title": "Charging", "content": "A full charge takes about four hours on the dock."},
]
PHONE_QUESTION = "When can I call you on the phone?"


class EmbeddingGate(embedding_pb2_grpc.EmbeddingServiceServicer):
    """Forwards to the real embedding service; Embed calls of a held kind wait until released."""

    def __init__(self, upstream: embedding_pb2_grpc.EmbeddingServiceAsyncStub) -> None:
        self._upstream = upstream
        self.address = ""
        self._held: set[int] = set()
        self._open = asyncio.Event()
        self._open.set()
        self.waiting: Counter[int] = Counter()

    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> embedding_pb2.EmbedResponse:
        if request.kind in self._held:
            self.waiting[request.kind] += 1
            try:
                await self._open.wait()
            finally:
                self.waiting[request.kind] -= 1
        return await self._upstream.Embed(request, timeout=60)

    async def GetModelInfo(
        self, request: embedding_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> embedding_pb2.GetModelInfoResponse:
        return await self._upstream.GetModelInfo(request, timeout=30)

    @contextlib.asynccontextmanager
    async def holding(self, *kinds: int) -> AsyncIterator[None]:
        self._held = set(kinds)
        self._open.clear()
        try:
            yield
        finally:
            self._held = set()
            self._open.set()


@pytest.fixture(scope="module")
async def gate(embedding_service: ServiceProcess) -> AsyncIterator[EmbeddingGate]:
    async with grpc.aio.insecure_channel(embedding_service.address) as upstream:
        servicer = EmbeddingGate(embedding_pb2_grpc.EmbeddingServiceStub(upstream))
        server = grpc.aio.server()
        embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server(servicer, server)
        servicer.address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
        await server.start()
        try:
            yield servicer
        finally:
            await server.stop(grace=None)


async def started(name: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    service = start_service(name, env=env, log_dir=log_dir)
    try:
        # In a thread: the embedding gate answers on this event loop.
        await asyncio.to_thread(service.wait_ready)
    except BaseException:
        service.stop()
        raise
    return service


@pytest.fixture(scope="module")
async def small_pool(state_dir: Path, postgres_url: str, gate: EmbeddingGate) -> AsyncIterator[ServiceProcess]:
    env = {
        "CONCIERGE_DATABASE_URL": postgres_url,
        "CONCIERGE_EMBEDDING_ADDRESS": gate.address,
        "CONCIERGE_DATABASE_POOL_SIZE": str(POOL_SIZE),
        "CONCIERGE_SYNC_CONCURRENCY": str(SYNC_CONCURRENCY),
        "CONCIERGE_EMBEDDING_QUERY_TIMEOUT_S": "120",
    }
    service = await started("retrieval", env, state_dir / "logs-retrieval-small-pool")
    yield service
    await asyncio.to_thread(service.stop)


@pytest.fixture(scope="module")
async def stub(small_pool: ServiceProcess) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(small_pool.address) as channel:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


@pytest.fixture(scope="module")
def suffix() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="module")
def tenants(suffix: str) -> tuple[str, str]:
    return f"north-{suffix}", f"south-{suffix}"


def inline_spec(documents: list[dict[str, str]], **overrides: Any) -> str:
    return json.dumps({"sources": [{"name": "notes", "inline": documents}], **overrides})


async def sync(
    stub: Stub, tenant: str, kb: str, spec_json: str, on_message: Callable[[Any], None] | None = None
) -> list[retrieval_pb2.SyncKnowledgeBaseResponse]:
    request = retrieval_pb2.SyncKnowledgeBaseRequest(tenant=tenant, knowledge_base=kb, spec_json=spec_json)
    messages = []
    async for message in stub.SyncKnowledgeBase(request, timeout=300):
        messages.append(message)
        if on_message is not None:
            on_message(message)
    return messages


async def search(stub: Stub, tenant: str, kb: str, query: str, deadline_s: float = 30) -> list[retrieval_pb2.SearchHit]:
    request = retrieval_pb2.SearchRequest(tenant=tenant, knowledge_bases=[kb], query=query, top_k=3)
    return list((await stub.Search(request, timeout=deadline_s)).hits)


async def eventually(condition: Callable[[], bool], what: Callable[[], str], within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {within_s:.0f}s: {what()}")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
async def reference(stub: Stub, tenants: tuple[str, str], suffix: str) -> str:
    """A synced knowledge base of the first tenant to search while other things happen."""
    kb = f"reference-{suffix}"
    final = (await sync(stub, tenants[0], kb, inline_spec(FAQ)))[-1]
    assert (final.done, list(final.errors)) == (True, [])
    return kb


def vault(tenant: str, kb: str) -> list[dict[str, str]]:
    return [
        {"title": "Vault", "content": f"The vault code of {kb} at {tenant} is {code(tenant, kb)}."},
        *FAQ,
    ]


def code(tenant: str, kb: str) -> str:
    return f"CODE-{uuid.uuid5(uuid.NAMESPACE_URL, f'{tenant}/{kb}').hex[:8].upper()}"


async def test_many_syncs_of_two_tenants_finish_on_a_small_pool_and_a_search_answers_meanwhile(
    stub: Stub, gate: EmbeddingGate, tenants: tuple[str, str], suffix: str, reference: str
) -> None:
    north, south = tenants
    # Twice the pool; the same knowledge base name in both tenants must not count as one sync.
    jobs = [(north, f"{name}-{suffix}") for name in ("manuals", "policies", "faq", "help-center")]
    jobs += [(south, f"{name}-{suffix}") for name in ("help-center", "faq")]
    messages: dict[tuple[str, str], list[retrieval_pb2.SyncKnowledgeBaseResponse]] = {job: [] for job in jobs}

    async with gate.holding(DOCUMENT):
        syncs = [
            asyncio.create_task(sync(stub, tenant, kb, inline_spec(vault(tenant, kb)), messages[tenant, kb].append))
            for tenant, kb in jobs
        ]
        try:
            # The running syncs wait for their vectors; the others wait for a slot and say so.
            await eventually(
                lambda: (
                    gate.waiting[DOCUMENT] == SYNC_CONCURRENCY
                    and sum(m[:1] != [] and m[0].current == WAITING for m in messages.values())
                    == len(jobs) - SYNC_CONCURRENCY
                ),
                lambda: (
                    f"{SYNC_CONCURRENCY} syncs embedding and {len(jobs) - SYNC_CONCURRENCY} waiting for a slot "
                    f"(embedding: {gate.waiting[DOCUMENT]}; first messages: "
                    f"{[m[0].current if m else None for m in messages.values()]})"
                ),
            )
            hits = await search(stub, north, reference, PHONE_QUESTION, deadline_s=10)
            assert hits[0].document_title == "Opening hours"
            assert not any(task.done() for task in syncs)
            assert gate.waiting[DOCUMENT] == SYNC_CONCURRENCY  # no third sync started meanwhile
        except BaseException:
            for task in syncs:
                task.cancel()
            raise

    await asyncio.gather(*syncs)
    for tenant, kb in jobs:
        final = messages[tenant, kb][-1]
        assert (final.done, final.documents_changed, list(final.errors)) == (True, 3, []), (tenant, kb)
        top = (await search(stub, tenant, kb, "What is the vault code?"))[0]
        assert code(tenant, kb) in top.text, (tenant, kb)


async def test_a_second_sync_of_a_knowledge_base_on_this_server_is_aborted_even_when_all_slots_are_taken(
    stub: Stub, gate: EmbeddingGate, tenants: tuple[str, str], suffix: str
) -> None:
    north = tenants[0]
    kb, other = f"twice-{suffix}", f"other-{suffix}"
    async with gate.holding(DOCUMENT):
        running = [
            asyncio.create_task(sync(stub, north, name, inline_spec(vault(north, name)))) for name in (kb, other)
        ]
        try:
            await eventually(
                lambda: gate.waiting[DOCUMENT] == SYNC_CONCURRENCY, lambda: "both slots taken by syncs embedding"
            )
            # Rejected at once, not queued behind the slot its own knowledge base holds.
            with pytest.raises(grpc.aio.AioRpcError) as error:
                async with asyncio.timeout(10):
                    await sync(stub, north, kb, inline_spec(vault(north, kb)))
        except BaseException:
            for task in running:
                task.cancel()
            raise
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert f"a sync of {north}/{kb} is already running" in str(error.value.details())
    assert all(messages[-1].done for messages in await asyncio.gather(*running))


async def test_searches_waiting_for_the_embedding_service_leave_the_pool_to_other_requests(
    stub: Stub, gate: EmbeddingGate, tenants: tuple[str, str], reference: str
) -> None:
    north = tenants[0]
    async with gate.holding(QUERY):
        searches = [
            asyncio.create_task(search(stub, north, reference, PHONE_QUESTION, deadline_s=120))
            for _ in range(2 * POOL_SIZE)
        ]
        try:
            await eventually(
                lambda: gate.waiting[QUERY] == len(searches),
                lambda: f"{len(searches)} searches waiting for the embedding, have {gate.waiting[QUERY]}",
            )
            # Needs a pooled connection and nothing from the embedding service.
            request = retrieval_pb2.DeleteKnowledgeBaseRequest(tenant=north, knowledge_base="never-synced")
            assert (await stub.DeleteKnowledgeBase(request, timeout=5)).documents_deleted == 0
            assert not any(task.done() for task in searches)
        except BaseException:
            for task in searches:
                task.cancel()
            raise
    for hits in await asyncio.gather(*searches):
        assert hits[0].document_title == "Opening hours"


# --- a sync killed while it writes a document --------------------------------------------------

KILLED_TENANT = "killed-sync"


def sections(version: str) -> list[dict[str, str]]:
    """Three documents of three sections each; with 64-token chunks, every section is a chunk."""
    return [
        {
            "title": f"Guide {n}",
            "content": "\n\n".join(
                f"## Part {part}\n\n{version}: step {part} of guide {n} explains how the robot cleans room {part} "
                f"and what to do when the brush of room {part} is stuck."
                for part in range(3)
            ),
        }
        for n in range(3)
    ]


KILLED_CHUNKING = {"chunking": {"maxTokens": 64, "overlapTokens": 8}}


@pytest.fixture
def killable(state_dir: Path, postgres_url: str, embedding_service: ServiceProcess) -> Iterator[ServiceProcess]:
    env = {"CONCIERGE_DATABASE_URL": postgres_url, "CONCIERGE_EMBEDDING_ADDRESS": embedding_service.address}
    service = start_service("retrieval", env=env, log_dir=state_dir / "logs-retrieval-killed")
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture
async def app_pool(postgres_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(postgres_url, max_size=2)
    yield pool
    await pool.close()


async def stored(pool: AsyncConnectionPool, kb: str) -> dict[str, tuple[str, int, list[str]]]:
    """Per document key: content hash, recorded chunk count, and chunk ids in ordinal order."""
    async with tenant_transaction(pool, KILLED_TENANT) as conn:
        cursor = await conn.execute(
            "SELECT d.key, d.content_hash, d.chunk_count,"
            "       coalesce(array_agg(c.id::text ORDER BY c.ordinal) FILTER (WHERE c.id IS NOT NULL), '{}'),"
            "       coalesce(array_agg(c.ordinal ORDER BY c.ordinal) FILTER (WHERE c.id IS NOT NULL), '{}')"
            "  FROM documents d LEFT JOIN chunks c ON c.document_id = d.id"
            " WHERE d.knowledge_base = %s GROUP BY d.id",
            [kb],
        )
        documents = {}
        for key, digest, count, ids, ordinals in await cursor.fetchall():
            assert ordinals == list(range(count)), f"document {key} is half-written: {count} chunks, have {ordinals}"
            documents[key] = (digest, count, ids)
        return documents


async def test_a_sync_killed_while_writing_leaves_whole_documents_and_frees_its_lock(
    killable: ServiceProcess,
    retrieval_service: ServiceProcess,
    postgres_url: str,
    app_pool: AsyncConnectionPool,
) -> None:
    kb = f"guides-{uuid.uuid4().hex[:8]}"
    async with grpc.aio.insecure_channel(killable.address) as channel:
        doomed = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        assert (await sync(doomed, KILLED_TENANT, kb, inline_spec(sections("v1"), **KILLED_CHUNKING)))[-1].done
        before = await stored(app_pool, kb)
        assert len(before) == 3

        async with (
            await psycopg.AsyncConnection.connect(postgres_url) as blocker,
            await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as observer,
        ):
            # Writers of chunks now wait: the sync stops inside its first document's transaction.
            await blocker.execute("LOCK TABLE chunks IN SHARE MODE")
            resync = asyncio.create_task(
                sync(doomed, KILLED_TENANT, kb, inline_spec(sections("v2"), **KILLED_CHUNKING))
            )
            try:
                waiting_writers = 0
                deadline = time.monotonic() + 60
                while waiting_writers == 0:
                    assert time.monotonic() < deadline, "the sync never reached its first document write"
                    cursor = await observer.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND query LIKE 'DELETE FROM chunks%%'"
                    )
                    waiting_writers = (await cursor.fetchone() or (0,))[0]
                    await asyncio.sleep(0.02)
                killable.process.kill()
                await asyncio.to_thread(killable.process.wait, 10)
            finally:
                await blocker.rollback()
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await resync

    # The write that was cut off rolled back whole; nothing else was written.
    assert await stored(app_pool, kb) == before
    # The lock died with the process: another replica syncs the knowledge base at once.
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as probe:
        deadline = time.monotonic() + 30
        while not await store.try_lock_sync(probe, KILLED_TENANT, kb):
            assert time.monotonic() < deadline, "the killed sync's lock was never released"
            await asyncio.sleep(0.05)
        await store.unlock_sync(probe, KILLED_TENANT, kb)
    async with grpc.aio.insecure_channel(retrieval_service.address) as channel:
        replica = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        final = (await sync(replica, KILLED_TENANT, kb, inline_spec(sections("v2"), **KILLED_CHUNKING)))[-1]
    assert (final.done, final.documents_changed, list(final.errors)) == (True, 3, [])
    after = await stored(app_pool, kb)
    assert after.keys() == before.keys()
    assert all(after[key][0] != before[key][0] for key in after)
