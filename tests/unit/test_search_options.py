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
        content_hash=text,
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
