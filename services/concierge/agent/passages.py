"""Knowledge passages as the search tool hands them to a model, and the citations built from them.

Pure: numbering, the text a model reads, the [n] markers found in an answer, Citation messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from concierge.v1 import common_pb2, retrieval_pb2

SNIPPET_CHARS = 300
# [1], [2, 3], [1][2] and [1,2] all cite; anything else in brackets does not.
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_PIECES = re.compile(r"(?<=[.!?])\s+|\n+")
_WORDS = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk, numbered as the model sees it ([index])."""

    index: int
    text: str
    title: str = ""
    section: str = ""
    knowledge_base: str = ""
    document_id: str = ""
    source_uri: str = ""
    chunk_id: str = ""
    score: float = 0.0
    vector_score: float = 0.0

    @classmethod
    def from_hit(cls, index: int, hit: retrieval_pb2.SearchHit) -> Passage:
        return cls(
            index=index,
            text=hit.text,
            title=hit.document_title,
            section=hit.section,
            knowledge_base=hit.knowledge_base,
            document_id=hit.document_id,
            source_uri=hit.source_uri,
            chunk_id=hit.chunk_id,
            score=hit.score,
            vector_score=hit.vector_score,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Passage:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @property
    def heading(self) -> str:
        """`Title > Section` as shown to models and people."""
        return " > ".join(p for p in (self.title, self.section) if p)


def format_passages(passages: Sequence[Passage]) -> str:
    """The tool result a language model reads: numbered passages with their source."""
    if not passages:
        return "No passages found in the knowledge base for this query."
    blocks = [f"[{p.index}] {p.heading or p.source_uri}\n{p.text.strip()}" for p in passages]
    return "\n\n".join(blocks)


def summarize(passages: Sequence[Passage]) -> str:
    """A short, JSON-safe line for the finished tool-call event (no passage text)."""
    if not passages:
        return "no passages found"
    sources = "; ".join(f"[{p.index}] {p.heading or p.source_uri}" for p in passages)
    return f"{len(passages)} passages: {sources}"


def cited_indices(text: str) -> list[int]:
    """Passage numbers cited in `text`, in order of first appearance, without repeats."""
    seen: list[int] = []
    for match in _MARKER.finditer(text):
        for number in match.group(1).split(","):
            n = int(number)
            if n not in seen:
                seen.append(n)
    return seen


def snippet(text: str, answer: str = "", limit: int = SNIPPET_CHARS) -> str:
    """The part of a passage that supports `answer`: its sentence or line sharing most words with it."""
    pieces = [p for p in (" ".join(x.split()) for x in _PIECES.split(text)) if p]
    if not pieces:
        return ""
    start = 0
    if answer:
        answer_words = set(_WORDS.findall(answer.lower()))
        overlaps = [len(set(_WORDS.findall(p.lower())) & answer_words) for p in pieces]
        start = max(range(len(pieces)), key=lambda i: (overlaps[i], -i))
    flat = " ".join(pieces[start:])
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0]
    return cut + "…"


def citations_for(text: str, passages: Iterable[Passage]) -> list[common_pb2.Citation]:
    """One Citation per passage the answer cites; markers that match no passage are ignored."""
    by_index = {p.index: p for p in passages}
    return [
        common_pb2.Citation(
            index=p.index,
            knowledge_base=p.knowledge_base,
            document_id=p.document_id,
            document_title=p.title,
            source_uri=p.source_uri,
            section=p.section,
            snippet=snippet(p.text, _cited_text(text, p.index)),
            chunk_id=p.chunk_id,
            score=p.score,
        )
        for n in cited_indices(text)
        if (p := by_index.get(n)) is not None
    ]


def _cited_text(text: str, index: int) -> str:
    """The sentences and lines of `text` that carry the marker [index]."""
    parts = _PIECES.split(text)
    return " ".join(p for p in parts if any(index == n for n in cited_indices(p)))
