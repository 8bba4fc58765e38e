"""Pure parts of search: near-duplicate removal and filter validation."""

from __future__ import annotations

import uuid

import numpy as np

from concierge.retrieval.search import drop_near_duplicates
from concierge.retrieval.server import filter_problem
from concierge.retrieval.store import HitRow


def row(text: str, vector: list[float]) -> HitRow:
    embedding = np.array(vector, dtype=np.float32)
    return HitRow(
        chunk_id=uuid.uuid4(),
        knowledge_base="kb",
        document_id=uuid.uuid4(),
        document_key=text,
        title="t",
        uri="u",
        section="",
        text=text,
        page=0,
        anchor="",
        vector_score=0.5,
        embedding=embedding / np.linalg.norm(embedding),
    )


def test_repeated_text_and_near_identical_vectors_are_dropped_keeping_the_first() -> None:
    first = row("Refunds take 14 days.", [1, 0, 0])
    same_text = row("refunds  take 14 days.", [0, 1, 0])
    near_copy = row("Refunds take 15 days.", [0.999, 0.01, 0])
    other = row("We ship in 2 days.", [0, 0, 1])
    assert drop_near_duplicates([first, same_text, near_copy, other], 0.97) == [first, other]
    assert drop_near_duplicates([first, same_text, near_copy, other], 1.0) == [first, near_copy, other]


def test_filters_must_have_keys_and_reasonable_sizes() -> None:
    assert filter_problem({"product": "router", "format": "pdf"}) is None
    assert "empty" in (filter_problem({"": "x"}) or "")
    assert "too long" in (filter_problem({"k" * 64: "x"}) or "")
    assert "at most" in (filter_problem({str(i): "x" for i in range(17)}) or "")


def test_questions_of_several_clauses_are_split_and_one_part_questions_are_not() -> None:
    from concierge.retrieval.search import query_parts

    question = "download a zip from a URL, unpack it into a temp folder, and clean the folder up afterwards"
    assert query_parts(question, most=4) == [
        "download a zip from a URL",
        "unpack it into a temp folder",
        "clean the folder up afterwards",
    ]
    assert query_parts("how do I get a refund for my order?", most=4) == []
    assert query_parts(question, most=0) == []


def test_rare_words_weigh_more_and_only_the_rarest_select_candidates() -> None:
    from concierge.retrieval.search import matching_terms, weigh_terms

    counts = [("file", 4000), ("json", 140), ("accent", 5), ("unknown", 0), ("escap", 197)]
    terms = weigh_terms(counts, total=24000, most=3)
    assert [t.lexeme for t in terms] == ["accent", "json", "escap"]
    assert terms[0].weight > terms[1].weight > terms[2].weight > 0
    assert matching_terms(dict(counts), terms, budget=100) == 1  # the rarest always
    assert matching_terms(dict(counts), terms, budget=200) == 2
    assert matching_terms(dict(counts), terms, budget=2000) == 3


def test_documents_can_be_ranked_by_the_evidence_of_several_chunks() -> None:
    from concierge.retrieval.fusion import Fused
    from concierge.retrieval.search import by_document

    a1, a2, b1, b2, b3 = (uuid.uuid4() for _ in range(5))
    page_a, page_b = uuid.uuid4(), uuid.uuid4()
    fused = [Fused(a1, 0.0330), Fused(b1, 0.0325), Fused(b2, 0.0320), Fused(b3, 0.0315), Fused(a2, 0.0300)]
    document_of = {a1: page_a, a2: page_a, b1: page_b, b2: page_b, b3: page_b}
    cosine_of = {a1: 0.60, a2: 0.40, b1: 0.58, b2: 0.55, b3: 0.50}

    def order(decay: float, margin: float, per_round: int = 1, support: int = 1) -> list[uuid.UUID]:
        ranked = by_document(
            fused, document_of, cosine_of, decay=decay, margin=margin, per_round=per_round, support=support
        )
        return [f.id for f in ranked]

    # Best chunk only: page A first; chunks come one per document per round.
    assert order(0.0, 0.1) == [a1, b1, a2, b2, b3]
    # Summed evidence: page B's three close passages outrank page A's one.
    assert order(0.5, 0.1) == [b1, a1, b2, a2, b3]
    # ...but not when page B's best passage is clearly further from the question than A's.
    assert order(0.5, 0.01) == [a1, b1, a2, b2, b3]
    assert order(0.5, 0.1, per_round=2) == [b1, b2, a1, a2, b3]
    # Three passages are a pattern; with four required, page B has too few and its best one decides.
    assert order(0.5, 0.1, support=3) == [b1, a1, b2, a2, b3]
    assert order(0.5, 0.1, support=4) == [a1, b1, a2, b2, b3]
