"""Every supported file format, synced through a real retrieval server, ends up as searchable chunks.

Postgres (embedded, with pgvector), the embedding model and both services are real processes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from documents import docx_bytes, pdf_bytes, pptx_bytes, xlsx_bytes

from concierge.local.processes import ServiceProcess
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

TENANT = "format-tests"

# file name -> (content, a question only that file answers, words its best hit must contain)
DOCUMENTS: dict[str, tuple[bytes, str, str]] = {
    "returns.md": (
        b"# Returns\n\nA robot can be returned within 30 days of delivery for a full refund.\n",
        "How many days do I have to return the robot?",
        "30 days",
    ),
    "opening-hours.txt": (
        b"Our phone support is open Monday to Friday from 8am to 6pm Central Time.\n",
        "When can I call phone support?",
        "Monday to Friday",
    ),
    "shipping.html": (
        b"<html><head><title>Shipping</title></head><body><main><h1>Shipping</h1>"
        b"<p>Standard shipping is free on orders over $49; express shipping costs $15.</p></main></body></html>",
        "How much does express shipping cost?",
        "$15",
    ),
    "warranty.pdf": (
        pdf_bytes("Warranty", "The vacuum motor is covered by a warranty for two years from purchase."),
        "How long is the motor warranty?",
        "two years",
    ),
    "care-plus.docx": (
        docx_bytes("Care+ plan", "Care+ pays for accidental damage such as drops, spills and pet bites."),
        "Does Care+ cover damage from my dog biting the robot?",
        "pet bites",
    ),
    "training.pptx": (
        pptx_bytes(
            ("Cleaning the brush roll", "Cut tangled hair off the brush roll with scissors once a week."),
            ("Replacing filters", "Replace the HEPA filter every three months."),
        ),
        "How often should the HEPA filter be replaced?",
        "every three months",
    ),
    "price-list.xlsx": (
        xlsx_bytes({"Spare parts": [["Part", "Price (USD)"], ["Side brush", 12], ["Lithium battery pack", 89]]}),
        "What is the price of a replacement lithium battery pack?",
        "Lithium battery pack | 89",
    ),
    "stores.csv": (
        b"city,store address,opening days\nDenver,1200 Larimer Street,Tuesday to Sunday\n"
        b"Austin,500 Congress Avenue,Monday to Saturday\n",
        "What is the address of the Denver store?",
        "1200 Larimer Street",
    ),
    "error-codes.json": (
        json.dumps(
            {
                "title": "Error codes",
                "codes": [
                    {"code": "E17", "meaning": "The cliff sensor is dirty: wipe the sensors under the bumper."},
                    {"code": "E42", "meaning": "The wheel is stuck: remove hair wrapped around the wheel axle."},
                ],
            }
        ).encode(),
        "What does error E42 mean?",
        "wheel is stuck",
    ),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, (content, _, _) in DOCUMENTS.items():
        (docs / name).write_bytes(content)
    return tmp_path


@pytest.fixture(scope="module")
async def stub(retrieval_service: ServiceProcess) -> AsyncIterator[retrieval_pb2_grpc.RetrievalServiceAsyncStub]:
    async with grpc.aio.insecure_channel(retrieval_service.address) as channel:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


async def sync(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, kb: str, folder: Path, sources: list[dict[str, object]]
) -> retrieval_pb2.SyncKnowledgeBaseResponse:
    request = retrieval_pb2.SyncKnowledgeBaseRequest(
        tenant=TENANT, knowledge_base=kb, spec_json=json.dumps({"sources": sources}), base_dir=str(folder)
    )
    messages = [message async for message in stub.SyncKnowledgeBase(request, timeout=300)]
    return messages[-1]


async def search(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, kb: str, query: str
) -> list[retrieval_pb2.SearchHit]:
    request = retrieval_pb2.SearchRequest(tenant=TENANT, knowledge_bases=[kb], query=query, top_k=3)
    return list((await stub.Search(request, timeout=30)).hits)


async def test_every_format_in_a_folder_is_synced_and_answers_its_question(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, folder: Path
) -> None:
    kb = f"kb-{uuid.uuid4().hex[:8]}"
    final = await sync(stub, kb, folder, [{"name": "docs", "path": "docs"}])
    assert (final.done, list(final.errors)) == (True, [])
    assert final.documents_total == final.documents_changed == len(DOCUMENTS)
    for name, (_, question, answer) in DOCUMENTS.items():
        hits = await search(stub, kb, question)
        assert hits, question
        assert hits[0].source_uri == f"docs/{name}", (question, [h.source_uri for h in hits])
        assert answer in hits[0].text, (question, hits[0].text)


async def test_titles_come_from_each_format_s_own_title(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, folder: Path
) -> None:
    kb = f"kb-{uuid.uuid4().hex[:8]}"
    await sync(stub, kb, folder, [{"name": "docs", "path": "docs"}])
    titles = {}
    for _, question, _ in DOCUMENTS.values():
        hit = (await search(stub, kb, question))[0]
        titles[hit.source_uri] = (hit.document_title, hit.section)
    assert titles["docs/training.pptx"] == ("Cleaning the brush roll", "Replacing filters")
    assert titles["docs/price-list.xlsx"] == ("Price list", "Spare parts")
    assert titles["docs/stores.csv"] == ("Stores", "")
    assert titles["docs/error-codes.json"] == ("Error codes", "codes")


async def test_inline_csv_and_json_documents_are_searchable(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, folder: Path
) -> None:
    kb = f"kb-{uuid.uuid4().hex[:8]}"
    inline = [
        {"title": "Loyalty tiers", "format": "csv", "content": "tier,discount\nSilver,5%\nGold,10%\nPlatinum,15%\n"},
        {"title": "Gift cards", "format": "json", "content": json.dumps({"expiry": "Gift cards never expire."})},
    ]
    final = await sync(stub, kb, folder, [{"name": "notes", "inline": inline}])
    assert (final.done, list(final.errors), final.documents_changed) == (True, [], 2)
    hit = (await search(stub, kb, "What discount does the Gold tier get?"))[0]
    assert (hit.source_uri, "Gold | 10%" in hit.text) == ("inline:notes/Loyalty tiers", True)
    hit = (await search(stub, kb, "Do gift cards expire?"))[0]
    assert (hit.source_uri, hit.text) == ("inline:notes/Gift cards", "- **expiry**: Gift cards never expire.")
