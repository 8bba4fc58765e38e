"""Search through a real retrieval server: hybrid ranking, citations, scores, validation."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest

from concierge.local.processes import ServiceProcess
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

TENANT = "search-tests"

FAQ = [
    {"title": "Opening hours", "content": "# Opening hours\n\nOur phone line is open Monday to Friday, 8am to 8pm."},
    {"title": "Spare parts", "content": "The replacement side brush for the S1 has part number XJ-4471 and costs $12."},
    {"title": "Pets", "content": "Sweepy robots pick up pet hair from carpets and hard floors."},
    {"title": "Noise", "content": "In quiet mode the robot runs at 55 dB, about as loud as a conversation."},
    {"title": "Maps", "content": "The robot stores up to four floor maps and recognises each floor automatically."},
    {"title": "Mopping", "content": "The S2 Pro mops with a water tank of 300 ml; the S1 only vacuums."},
    {"title": "Stairs", "content": "Cliff sensors stop the robot from falling down stairs."},
    {"title": "Charging", "content": "A full charge takes about four hours on the dock."},
]
POLICIES = [{"title": "Returns", "content": "You can return a robot within 30 days of delivery."}]

if TYPE_CHECKING:
    Stub = retrieval_pb2_grpc.RetrievalServiceAsyncStub


@pytest.fixture(scope="module")
async def stub(retrieval_service: ServiceProcess) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(retrieval_service.address) as channel:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


async def sync_inline(stub: Stub, kb: str, documents: list[dict[str, str]]) -> retrieval_pb2.SyncKnowledgeBaseResponse:
    spec = json.dumps({"sources": [{"name": "faq", "inline": documents}]})
    request = retrieval_pb2.SyncKnowledgeBaseRequest(tenant=TENANT, knowledge_base=kb, spec_json=spec)
    messages = [m async for m in stub.SyncKnowledgeBase(request, timeout=120)]
    assert messages[-1].done
    assert not messages[-1].errors
    return messages[-1]


@pytest.fixture(scope="module")
async def faq(stub: Stub) -> str:
    kb = f"faq-{uuid.uuid4().hex[:8]}"
    await sync_inline(stub, kb, FAQ)
    return kb


@pytest.fixture(scope="module")
async def policies(stub: Stub) -> str:
    kb = f"policies-{uuid.uuid4().hex[:8]}"
    await sync_inline(stub, kb, POLICIES)
    return kb


async def search(stub: Stub, kbs: list[str], query: str, top_k: int = 3) -> list[retrieval_pb2.SearchHit]:
    request = retrieval_pb2.SearchRequest(tenant=TENANT, knowledge_bases=kbs, query=query, top_k=top_k)
    return list((await stub.Search(request, timeout=30)).hits)


async def test_hits_carry_citation_fields_and_scores(stub: Stub, faq: str) -> None:
    hits = await search(stub, [faq], "When can I call you on the phone?")
    top = hits[0]
    assert (top.knowledge_base, top.document_title, top.source_uri) == (
        faq,
        "Opening hours",
        "inline:faq/Opening hours",
    )
    assert top.text == "Our phone line is open Monday to Friday, 8am to 8pm."
    assert uuid.UUID(top.chunk_id)
    assert uuid.UUID(top.document_id)
    assert 0.3 < top.vector_score <= 1.0
    assert top.score > 0
    assert top.vector_rank == 1
    assert top.text_rank >= 1
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


async def test_every_hit_has_its_cosine_score_even_when_only_full_text_found_it(stub: Stub, faq: str) -> None:
    hits = await search(stub, [faq], "XJ-4471", top_k=8)
    assert all(-1.0 <= h.vector_score <= 1.0 and h.vector_score != 0.0 for h in hits)


async def test_an_exact_part_number_is_found_by_full_text(stub: Stub, faq: str) -> None:
    top = (await search(stub, [faq], "XJ-4471"))[0]
    assert (top.document_title, top.text_rank) == ("Spare parts", 1)


async def test_a_question_matches_passages_that_share_only_some_of_its_words(stub: Stub, faq: str) -> None:
    # "floors" alone links the question to the Maps passage; AND-matching would find nothing.
    hits = await search(stub, [faq], "does it remember several floors of my house", top_k=8)
    assert any(h.document_title == "Maps" and h.text_rank > 0 for h in hits)


async def test_a_query_without_words_is_answered_by_vector_search_alone(stub: Stub, faq: str) -> None:
    hits = await search(stub, [faq], "?!", top_k=3)
    assert len(hits) == 3
    assert all(h.text_rank == 0 and h.vector_rank > 0 for h in hits)


async def test_top_k_defaults_to_five_and_limits_the_hits(stub: Stub, faq: str) -> None:
    assert len(await search(stub, [faq], "robot", top_k=0)) == 5
    assert len(await search(stub, [faq], "robot", top_k=2)) == 2


async def test_several_knowledge_bases_are_searched_together(stub: Stub, faq: str, policies: str) -> None:
    hits = await search(stub, [faq, policies], "How many days do I have to return a robot?", top_k=3)
    assert hits[0].knowledge_base == policies
    assert faq in {h.knowledge_base for h in await search(stub, [faq, policies], "pet hair", top_k=3)}


async def test_a_knowledge_base_never_synced_gives_no_hits(stub: Stub) -> None:
    assert await search(stub, ["never-synced"], "anything") == []


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"tenant": TENANT, "knowledge_bases": ["faq"], "query": "  "}, "query is empty"),
        ({"tenant": TENANT, "knowledge_bases": [], "query": "hours"}, "knowledge_bases is empty"),
        ({"tenant": "", "knowledge_bases": ["faq"], "query": "hours"}, "tenant is required"),
        ({"tenant": TENANT, "knowledge_bases": ["faq"], "query": "hours", "top_k": 51}, "between 1 and 50, got 51"),
        ({"tenant": TENANT, "knowledge_bases": ["faq"], "query": "hours", "top_k": -1}, "between 1 and 50, got -1"),
    ],
)
async def test_a_bad_search_request_is_invalid_argument_saying_why(
    stub: Stub, request_fields: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Search(retrieval_pb2.SearchRequest(**request_fields), timeout=10)  # type: ignore[arg-type]
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in str(error.value.details())


async def test_deleting_a_knowledge_base_removes_its_documents_and_hits(stub: Stub) -> None:
    kb = f"doomed-{uuid.uuid4().hex[:8]}"
    await sync_inline(stub, kb, FAQ[:3])
    assert await search(stub, [kb], "opening hours")
    reply = await stub.DeleteKnowledgeBase(
        retrieval_pb2.DeleteKnowledgeBaseRequest(tenant=TENANT, knowledge_base=kb), timeout=30
    )
    assert reply.documents_deleted == 3
    assert await search(stub, [kb], "opening hours") == []
    # Deleting again is harmless: nothing is left to delete.
    again = await stub.DeleteKnowledgeBase(
        retrieval_pb2.DeleteKnowledgeBaseRequest(tenant=TENANT, knowledge_base=kb), timeout=30
    )
    assert again.documents_deleted == 0
