"""Syncing a folder of Markdown, HTML, PDF and DOCX through a real retrieval server.

Postgres (embedded, with pgvector), the embedding model and both services are real processes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from documents import docx_bytes, pdf_bytes
from psycopg_pool import AsyncConnectionPool

from concierge.db import open_pool, tenant_transaction
from concierge.local.processes import ServiceProcess
from concierge.retrieval import store
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

TENANT = "sync-tests"

RETURNS_MD = """# Returns and Refunds

You can return any Sweepy robot within 30 days of delivery for a full refund.

## Refund timing

Once the robot reaches our warehouse, the refund is paid to your card within 5 business days.
"""

SHIPPING_HTML = """<html><head><title>Shipping rates</title></head><body>
<h1>Shipping rates</h1>
<p>Delivery is free on orders over $49 in the United States. Express delivery costs $15.</p>
</body></html>"""

WARRANTY_PDF = [
    "Warranty terms",
    "The Sweepy S2 Pro is covered by a limited warranty for 2 years from the date of purchase.",
    "The warranty covers manufacturing defects of the motor and the battery.",
]

CARE_DOCX = ("Care+ accidental damage", "Care+ pays for accidental damage such as drops, spills and pet bites.")

QUESTIONS = {
    "How long do I have to send my robot back?": "docs/returns.md",
    "Is delivery free?": "docs/shipping.html",
    "How many years is the S2 Pro warranty?": "docs/warranty.pdf",
    "My dog chewed the robot, does Care+ pay for that?": "docs/care.docx",
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A spec folder holding docs/ with one document of each format."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "returns.md").write_text(RETURNS_MD)
    (docs / "shipping.html").write_text(SHIPPING_HTML)
    (docs / "warranty.pdf").write_bytes(pdf_bytes(*WARRANTY_PDF))
    (docs / "care.docx").write_bytes(docx_bytes(*CARE_DOCX))
    return tmp_path


@pytest.fixture
def kb() -> str:
    return f"kb-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
async def stub(retrieval_service: ServiceProcess) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceAsyncStub]:
    async with grpc.aio.insecure_channel(retrieval_service.address) as channel:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


@pytest.fixture(scope="module")
async def pool(postgres_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """Connections as the application role, so the checks below see what the service sees."""
    pool = await open_pool(postgres_url, max_size=2)
    yield pool
    await pool.close()


def spec(**overrides: Any) -> str:
    return json.dumps({"sources": [{"name": "docs", "path": "docs"}], **overrides})


async def sync(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, kb: str, folder: Path, spec_json: str | None = None
) -> list[retrieval_pb2.SyncKnowledgeBaseResponse]:
    request = retrieval_pb2.SyncKnowledgeBaseRequest(
        tenant=TENANT, knowledge_base=kb, spec_json=spec_json or spec(), base_dir=str(folder)
    )
    return [message async for message in stub.SyncKnowledgeBase(request, timeout=300)]


async def search(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, kb: str, query: str
) -> list[retrieval_pb2.SearchHit]:
    request = retrieval_pb2.SearchRequest(tenant=TENANT, knowledge_bases=[kb], query=query, top_k=3)
    return list((await stub.Search(request, timeout=30)).hits)


async def chunk_ids(pool: AsyncConnectionPool, kb: str) -> dict[str, list[str]]:
    """Chunk ids per document uri, in ordinal order."""
    async with tenant_transaction(pool, TENANT) as conn:
        cursor = await conn.execute(
            "SELECT d.uri, c.id::text FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.knowledge_base = %s ORDER BY d.uri, c.ordinal",
            [kb],
        )
        ids: dict[str, list[str]] = {}
        for uri, chunk_id in await cursor.fetchall():
            ids.setdefault(uri, []).append(chunk_id)
        return ids


async def test_markdown_html_pdf_and_docx_are_synced_and_each_answers_its_question(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, folder: Path, kb: str
) -> None:
    final = (await sync(stub, kb, folder))[-1]
    assert (final.done, final.documents_total, final.documents_changed, list(final.errors)) == (True, 4, 4, [])
    for question, uri in QUESTIONS.items():
        hits = await search(stub, kb, question)
        assert hits[0].source_uri == uri, question


async def test_hits_carry_the_document_title_and_section_for_citations(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, folder: Path, kb: str
) -> None:
    await sync(stub, kb, folder)
    hit = (await search(stub, kb, "When is the refund paid to my card?"))[0]
    assert (hit.document_title, hit.section, hit.source_uri) == (
        "Returns and Refunds",
        "Refund timing",
        "docs/returns.md",
    )
    assert hit.text == "Once the robot reaches our warehouse, the refund is paid to your card within 5 business days."
    titles = {h.source_uri: h.document_title for q in QUESTIONS for h in await search(stub, kb, q)}
    # HTML <title>, DOCX heading, PDF file name: each format's own source of a title.
    assert titles["docs/shipping.html"] == "Shipping rates"
    assert titles["docs/care.docx"] == "Care+ accidental damage"
    assert titles["docs/warranty.pdf"] == "Warranty"


async def test_progress_counts_up_and_only_the_last_message_is_done_with_totals(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, pool: AsyncConnectionPool, folder: Path, kb: str
) -> None:
    messages = await sync(stub, kb, folder)
    done = [m.documents_done for m in messages]
    assert done == sorted(done)
    assert [m.done for m in messages] == [False] * (len(messages) - 1) + [True]
    final = messages[-1]
    assert final.documents_done == final.documents_total == 4
    stored = sum(len(ids) for ids in (await chunk_ids(pool, kb)).values())
    assert final.chunks_total == final.chunks_written == stored > 0
    assert {m.current for m in messages} >= {"Returns and Refunds", "Shipping rates"}


async def test_resync_of_unchanged_documents_changes_nothing(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, pool: AsyncConnectionPool, folder: Path, kb: str
) -> None:
    await sync(stub, kb, folder)
    before = await chunk_ids(pool, kb)
    final = (await sync(stub, kb, folder))[-1]
    assert (final.documents_changed, final.documents_deleted, final.chunks_written) == (0, 0, 0)
    assert (final.documents_done, final.chunks_total) == (4, sum(len(ids) for ids in before.values()))
    assert await chunk_ids(pool, kb) == before


async def test_editing_one_document_replaces_only_its_chunks(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, pool: AsyncConnectionPool, folder: Path, kb: str
) -> None:
    await sync(stub, kb, folder)
    before = await chunk_ids(pool, kb)
    (folder / "docs" / "returns.md").write_text(RETURNS_MD.replace("within 30 days", "within 14 days"))
    final = (await sync(stub, kb, folder))[-1]
    after = await chunk_ids(pool, kb)
    assert final.documents_changed == 1
    assert set(after["docs/returns.md"]).isdisjoint(before["docs/returns.md"])
    assert {uri: ids for uri, ids in after.items() if uri != "docs/returns.md"} == {
        uri: ids for uri, ids in before.items() if uri != "docs/returns.md"
    }
    hit = (await search(stub, kb, "How long do I have to send my robot back?"))[0]
    assert "within 14 days" in hit.text


async def test_deleting_a_file_deletes_its_document_and_chunks(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, pool: AsyncConnectionPool, folder: Path, kb: str
) -> None:
    await sync(stub, kb, folder)
    (folder / "docs" / "shipping.html").unlink()
    final = (await sync(stub, kb, folder))[-1]
    assert (final.documents_deleted, final.documents_total) == (1, 3)
    assert set(await chunk_ids(pool, kb)) == {"docs/returns.md", "docs/warranty.pdf", "docs/care.docx"}
    async with tenant_transaction(pool, TENANT) as conn:
        cursor = await conn.execute("SELECT count(*) FROM documents WHERE knowledge_base = %s", [kb])
        assert await cursor.fetchone() == (3,)
    assert all(h.source_uri != "docs/shipping.html" for h in await search(stub, kb, "Is delivery free?"))


async def test_a_broken_file_is_reported_while_the_rest_syncs(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, pool: AsyncConnectionPool, folder: Path, kb: str
) -> None:
    (folder / "docs" / "broken.pdf").write_bytes(b"this was never a PDF")
    final = (await sync(stub, kb, folder))[-1]
    assert [(e.source, e.reason) for e in final.errors] == [
        ("docs: broken.pdf", "not a valid PDF file: it does not start with the PDF signature")
    ]
    assert (final.done, final.documents_total, final.documents_done, final.documents_changed) == (True, 5, 5, 4)
    assert set(await chunk_ids(pool, kb)) == set(QUESTIONS.values())


async def test_a_file_that_breaks_keeps_its_previous_version(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, pool: AsyncConnectionPool, folder: Path, kb: str
) -> None:
    await sync(stub, kb, folder)
    before = await chunk_ids(pool, kb)
    (folder / "docs" / "warranty.pdf").write_bytes(pdf_bytes(*WARRANTY_PDF)[:300])  # a truncated upload
    final = (await sync(stub, kb, folder))[-1]
    assert [e.source for e in final.errors] == ["docs: warranty.pdf"]
    assert final.documents_deleted == 0
    assert await chunk_ids(pool, kb) == before
    assert (await search(stub, kb, "How many years is the S2 Pro warranty?"))[0].source_uri == "docs/warranty.pdf"


async def test_a_missing_source_is_reported_and_the_other_sources_sync(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, folder: Path, kb: str
) -> None:
    sources = [{"name": "docs", "path": "docs"}, {"name": "archive", "path": "archive"}]
    final = (await sync(stub, kb, folder, json.dumps({"sources": sources})))[-1]
    assert [e.source for e in final.errors] == ["archive"]
    assert "'archive' does not exist" in final.errors[0].reason
    assert final.documents_changed == 4


async def test_changing_the_chunking_reindexes_every_document(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, folder: Path, kb: str
) -> None:
    await sync(stub, kb, folder)
    final = (await sync(stub, kb, folder, spec(chunking={"maxTokens": 64, "overlapTokens": 8})))[-1]
    assert final.documents_changed == 4


async def test_a_second_sync_of_the_same_knowledge_base_is_aborted_while_one_runs(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, pool: AsyncConnectionPool, folder: Path, kb: str
) -> None:
    async with pool.connection() as running:  # stands in for a sync on another replica
        assert await store.try_lock_sync(running, TENANT, kb)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await sync(stub, kb, folder)
        finally:
            await store.unlock_sync(running, TENANT, kb)
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert f"a sync of {TENANT}/{kb} is already running" in str(error.value.details())
    assert (await sync(stub, kb, folder))[-1].done


@pytest.mark.parametrize(
    ("spec_json", "field"),
    [
        ('{"sources": []}', "sources: List should have at least 1 item"),
        (
            '{"sources": [{"name": "docs", "path": "d", "url": "https://x.test"}]}',
            "sources.0: Value error, set exactly one",
        ),
        ('{"sources": [{"name": "d", "path": "d"}], "chunking": {"maxTokens": 50, "overlapTokens": 60}}', "chunking"),
        ("not json", "Invalid JSON"),
    ],
)
async def test_an_invalid_spec_is_invalid_argument_naming_the_field(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, folder: Path, kb: str, spec_json: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await sync(stub, kb, folder, spec_json)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in str(error.value.details())


async def test_a_spec_for_another_embedding_model_is_failed_precondition(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, folder: Path, kb: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await sync(stub, kb, folder, spec(embedding={"model": "embeddinggemma-300m"}))
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'embeddinggemma-300m'" in str(error.value.details())
    assert "'all-MiniLM-L6-v2'" in str(error.value.details())
