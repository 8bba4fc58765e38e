"""`concierge eval retrieval`: page-level recall@5, MRR@10, abstention and latency of search.

Chunks are collapsed into distinct documents, each at its first rank, before scoring, so a
document that fills the top five with its chunks counts once (as the eval set's README asks).
"""

from __future__ import annotations

import hashlib
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from concierge.api.resources import API_VERSION, KnowledgeBase
from concierge.evaluation.questions import Question, same_document
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

EVAL_TENANT = "eval"
MODES = {
    "hybrid": retrieval_pb2.SEARCH_MODE_HYBRID,
    "vector": retrieval_pb2.SEARCH_MODE_VECTOR,
    "text": retrieval_pb2.SEARCH_MODE_TEXT,
}
# Enough chunks for ten distinct documents even when the best ones have several chunks each.
CHUNKS_PER_QUESTION = 50


@dataclass(frozen=True)
class Outcome:
    question: Question
    # Distinct document keys, best first.
    ranking: list[str]
    abstained: bool
    seconds: float

    @property
    def recall_at_5(self) -> float:
        pages = self.question.pages
        return sum(any(same_document(key, page) for key in self.ranking[:5]) for page in pages) / len(pages)

    @property
    def reciprocal_rank_at_10(self) -> float:
        ranks = enumerate(self.ranking[:10], start=1)
        return next((1 / rank for rank, key in ranks if self.question.expects(key)), 0.0)


@dataclass
class Figures:
    """Metrics of a group of questions, each with the number of questions it averages."""

    answerable: int = 0
    recall_at_5: float = 0.0
    mrr_at_10: float = 0.0
    wrongly_abstained: float = 0.0
    unanswerable: int = 0
    abstain_rate: float = 0.0


@dataclass
class Report:
    mode: str
    questions: int
    min_score: float
    overall: Figures
    by_kind: dict[str, Figures]
    latency_ms_p50: float
    latency_ms_p95: float
    misses: list[dict[str, object]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def corpus_knowledge_base(corpus: Path, include: Sequence[str] | None = None) -> KnowledgeBase:
    """The corpus folder as a KnowledgeBase of the eval tenant, named after the folder and globs.

    The same folder and globs give the same name, so a second run re-embeds nothing.
    """
    corpus = corpus.resolve()
    digest = hashlib.sha256(f"{corpus}\0{'|'.join(include or [])}".encode()).hexdigest()[:8]
    source: dict[str, object] = {"name": "corpus", "path": str(corpus)}
    if include:
        source["include"] = list(include)
    slug = re.sub(r"[^a-z0-9]+", "-", corpus.name.lower()).strip("-")[:40] or "corpus"
    return KnowledgeBase.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "KnowledgeBase",
            "metadata": {"name": f"{slug}-{digest}", "namespace": EVAL_TENANT},
            "spec": {"sources": [source]},
        }
    )


def document_ranking(hits: Sequence[retrieval_pb2.SearchHit]) -> list[str]:
    """Distinct document keys in the order of their best chunk."""
    ranking: list[str] = []
    for hit in hits:
        if hit.document_key not in ranking:
            ranking.append(hit.document_key)
    return ranking


async def run(
    stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub,
    kb: KnowledgeBase,
    questions: Sequence[Question],
    *,
    mode: str,
    min_score: float,
) -> list[Outcome]:
    """Ask every question once, one at a time (latency is per search, as a user would see it)."""
    outcomes = []
    for question in questions:
        started = time.perf_counter()
        reply = await stub.Search(
            retrieval_pb2.SearchRequest(
                tenant=kb.namespace,
                knowledge_bases=[kb.name],
                query=question.q,
                top_k=CHUNKS_PER_QUESTION,
                mode=MODES[mode],
                min_score=min_score,
            ),
            timeout=30,
        )
        seconds = time.perf_counter() - started
        outcomes.append(
            Outcome(question=question, ranking=document_ranking(reply.hits), abstained=not reply.hits, seconds=seconds)
        )
    return outcomes


def figures(outcomes: Sequence[Outcome]) -> Figures:
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    result = Figures(answerable=len(answerable), unanswerable=len(unanswerable))
    if answerable:
        result.recall_at_5 = statistics.fmean(o.recall_at_5 for o in answerable)
        result.mrr_at_10 = statistics.fmean(o.reciprocal_rank_at_10 for o in answerable)
        result.wrongly_abstained = statistics.fmean(o.abstained for o in answerable)
    if unanswerable:
        result.abstain_rate = statistics.fmean(o.abstained for o in unanswerable)
    return result


def report(mode: str, min_score: float, outcomes: Sequence[Outcome]) -> Report:
    kinds = sorted({o.question.kind for o in outcomes})
    latencies = sorted(o.seconds * 1000 for o in outcomes)
    return Report(
        mode=mode,
        questions=len(outcomes),
        min_score=min_score,
        overall=figures(outcomes),
        by_kind={kind: figures([o for o in outcomes if o.question.kind == kind]) for kind in kinds},
        latency_ms_p50=percentile(latencies, 50),
        latency_ms_p95=percentile(latencies, 95),
        misses=[
            {"id": o.question.id, "kind": o.question.kind, "expected": list(o.question.pages), "got": o.ranking[:5]}
            for o in outcomes
            if o.question.answerable and o.recall_at_5 < 1
        ],
    )


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * p // 100))
    return float(sorted_values[int(rank) - 1])
