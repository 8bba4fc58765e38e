"""Hybrid search of a tenant's knowledge bases: pgvector HNSW plus Postgres full-text, fused.

Both lists are fused by weighted reciprocal rank; near-duplicate chunks are dropped, an optional
cross-encoder reorders the best candidates, and every hit carries its cosine for confidence checks.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from psycopg_pool import AsyncConnectionPool

from concierge.db import tenant_transaction
from concierge.retrieval import store
from concierge.retrieval.embedder import EmbeddingClient
from concierge.retrieval.fusion import Fused, RankedList, reciprocal_rank_fusion
from concierge.retrieval.rerank import Reranker
from concierge.retrieval.translate import QueryTranslator, Translation, words

log = logging.getLogger(__name__)

SearchMode = Literal["hybrid", "vector", "text"]


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    knowledge_base: str
    document_id: str
    document_key: str
    document_title: str
    source_uri: str
    section: str
    text: str
    page: int
    anchor: str
    score: float
    vector_score: float
    vector_rank: int
    text_rank: int
    rerank_score: float = 0.0


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    # Best cosine among the vector candidates, before min_score dropped any.
    best_vector_score: float


@dataclass(frozen=True)
class SearchSettings:
    candidates: int = 4
    min_candidates: int = 50
    ef_search: int = 100
    statement_timeout_ms: int = 5000
    rrf_k: int = 30
    vector_weight: float = 1.0
    # Full text alone finds less than the vectors (recall@5 0.69 against 0.88 on the Python docs).
    text_weight: float = 0.7
    # Two hits whose vectors are at least this similar say the same thing; the lower one goes.
    duplicate_similarity: float = 0.97
    # How many fused candidates the reranker (when configured) reorders.
    rerank_candidates: int = 20
    # A question of several clauses is also searched clause by clause (vector index), each list
    # fused with this weight: "download a zip, unpack it into a temp folder" needs two pages.
    query_parts: int = 4
    part_weight: float = 0.5
    # Documents are ranked by their chunks' fused scores, each next chunk weighted this much
    # less; hits then come `document_chunks_per_round` per document, best documents first.
    document_decay: float = 0.7
    # Only the best top_k times this many fused chunks count as a document's evidence.
    document_window: int = 1
    # Only documents whose best chunk is this close (cosine) to the best chunk of all add up evidence.
    document_margin: float = 0.1
    # Only documents with at least this many fused chunks add them up: a second loose match is no pattern.
    document_support: int = 3
    document_chunks_per_round: int = 2
    # Most query lexemes full-text search ranks by; the rarest are kept.
    text_terms: int = 12
    # Candidates come from the rarest lexemes whose chunks add up to at most this many rows
    # (always at least the rarest one); the others only add to the ranking.
    text_match_rows: int = 2000


@dataclass(frozen=True)
class SearchQuery:
    tenant: str
    knowledge_bases: Sequence[str]
    text: str
    top_k: int
    mode: SearchMode = "hybrid"
    min_score: float = 0.0
    filters: Mapping[str, str] = field(default_factory=dict)


class SearchRejected(Exception):
    """The knowledge bases cannot be searched as asked (FAILED_PRECONDITION)."""


_CLAUSE_BREAK = re.compile(r",?\s+(?:and|then|but|or)\s+|[.?!;:]\s+|,\s*", re.IGNORECASE)


def query_parts(text: str, *, most: int, min_words: int = 3) -> list[str]:
    """The clauses of a question that asks several things at once, or [] for a one-part question."""
    if most < 2:
        return []
    parts = [part.strip() for part in _CLAUSE_BREAK.split(text) if len(part.split()) >= min_words]
    return parts[:most] if len(parts) >= 2 else []


def weigh_terms(counts: Sequence[tuple[str, int]], *, total: int, most: int) -> list[store.WeightedLexeme]:
    """The query's lexemes that occur in the knowledge bases, rarest first, weighted by BM25's IDF.

    Natural questions ("how long until my refund arrives?") rarely have every word in one
    passage, so a chunk matches with any of them and scores the IDF of those it holds: rare,
    telling words count most, and words most chunks contain almost nothing. Only the `most`
    rarest are kept, which bounds the work of ranking a long question.
    """
    total = max(total, 1)
    weighted = [
        (store.WeightedLexeme(lexeme, math.log(1 + (total - df + 0.5) / (df + 0.5))), df)
        for lexeme, df in counts
        if df > 0
    ]
    return [term for term, _ in sorted(weighted, key=lambda t: (-t[0].weight, t[0].lexeme))[:most]]


def matching_terms(counts: Mapping[str, int], terms: Sequence[store.WeightedLexeme], *, budget: int) -> int:
    """How many of the rarest terms select candidates: the rarest, then more while their chunks fit `budget`.

    A fixed row budget, not a share of the knowledge base: at a million chunks even two common
    words match a quarter of it, and ranking those rows is what makes full text slow.
    """
    chosen, rows = 0, 0
    for term in terms:
        rows += counts[term.lexeme]
        if chosen >= 1 and rows > budget:
            break
        chosen += 1
    return chosen


def drop_near_duplicates(rows: Sequence[store.HitRow], similarity: float) -> list[store.HitRow]:
    """Rows in order, without any whose text, or vector, repeats a row kept before it.

    The same paragraph often sits in several documents (a policy quoted in an FAQ, a page and its
    printable copy); showing it twice wastes the answer's budget and a citation slot. Texts are
    compared without case and spacing; vectors catch near-copies (a changed date, a typo).
    """
    kept: list[store.HitRow] = []
    seen_texts: set[str] = set()
    for row in rows:
        text = " ".join(row.text.split()).casefold()
        if text in seen_texts:
            continue
        if kept and similarity < 1.0:
            previous = np.stack([k.embedding for k in kept])
            if float(np.max(previous @ row.embedding)) >= similarity:
                continue
        seen_texts.add(text)
        kept.append(row)
    return kept


def by_document(
    fused: Sequence[Fused[uuid.UUID]],
    document_of: Mapping[uuid.UUID, uuid.UUID],
    cosine_of: Mapping[uuid.UUID, float],
    *,
    decay: float,
    margin: float,
    per_round: int,
    support: int = 1,
) -> list[Fused[uuid.UUID]]:
    """Fused chunks regrouped so the documents with the most evidence come first.

    Among documents whose best chunk is about as close to the question as the closest chunk of
    all (cosine within `margin`), a document scores the fused scores of its chunks, each next
    one weighted `decay` times the one before: a page that several passages point to beats one
    with a single lucky passage. A document further behind, or with fewer than `support` chunks
    among them, keeps its best chunk's score, so a few weak passages never outvote one that
    clearly answers. Chunks are then taken in rounds, `per_round` per document in document
    order, so the first hits span several documents.
    """
    per_document: dict[uuid.UUID, list[Fused[uuid.UUID]]] = {}
    for item in fused:  # best first
        per_document.setdefault(document_of.get(item.id, item.id), []).append(item)
    closest = {d: max((cosine_of.get(c.id, -1.0) for c in chunks), default=-1.0) for d, chunks in per_document.items()}
    top = max(closest.values(), default=-1.0)
    score = {
        d: sum(c.score * decay**i for i, c in enumerate(chunks))
        if closest[d] >= top - margin and len(chunks) >= support
        else chunks[0].score
        for d, chunks in per_document.items()
    }
    documents = sorted(per_document, key=lambda d: -score[d])
    ordered: list[Fused[uuid.UUID]] = []
    for start in range(0, max((len(c) for c in per_document.values()), default=0), per_round):
        for document in documents:
            ordered.extend(per_document[document][start : start + per_round])
    return ordered


class Searcher:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        embedder: EmbeddingClient,
        settings: SearchSettings,
        reranker: Reranker | None = None,
        translator: QueryTranslator | None = None,
    ) -> None:
        self._pool = pool
        self._embedder = embedder
        self._settings = settings
        self._reranker = reranker
        self._translator = translator

    async def search(self, query: SearchQuery) -> SearchResult:
        """Full-text in one short transaction while the query is embedded, then vectors in another.

        No pooled connection is held while the embedding service is awaited: during its restart
        that wait lasts up to the query deadline, and every search in it would pin a connection.
        The full-text query overlaps the embedding call; embedding first and then one transaction
        was as fast on a 200-chunk knowledge base but 1-1.5 ms slower (p50) on a 3,300-chunk one.
        """
        started = time.perf_counter()
        settings = self._settings
        top_k = query.top_k
        # Room for what dedupe and the score threshold drop, and for the reranker to choose from.
        wanted = max(top_k * 2, settings.rerank_candidates if self._reranker else 0)
        # Lists deep enough that a chunk both rank fairly well gets credit from both, even for a small top_k.
        limit = max(top_k * settings.candidates, settings.min_candidates)
        # Translation looks the knowledge bases up already; the full-text step reuses what it found.
        known, translation = await self._translate(query) if self._translator is not None else (None, None)
        text = translation.text if translation is not None else query.text
        parts = query_parts(text, most=settings.query_parts) if query.mode != "text" else []
        embedding = asyncio.create_task(self._embedder.embed_queries([text, *parts]))
        try:
            found, text_lists = await self._text_candidates(query, text, limit, known)
            if not found:
                return SearchResult(hits=[], best_vector_score=0.0)
            await self._check_models(found)
            vectors = await embedding
        finally:
            if not embedding.done():
                embedding.cancel()
            elif not embedding.cancelled():
                embedding.exception()  # retrieved, so an early return does not log "never retrieved"
        names = [kb.name for kb in found]
        async with tenant_transaction(self._pool, query.tenant) as conn:
            await store.configure_search(
                conn, statement_timeout_ms=settings.statement_timeout_ms, ef_search=settings.ef_search
            )
            vector = vectors[0]
            nearest = await store.vector_candidates(
                conn, knowledge_bases=names, vector=vector, limit=limit, filters=query.filters
            )
            document_of = {chunk: document for chunk, _, document in nearest}
            cosine_of = {chunk: cosine for chunk, cosine, _ in nearest}
            document_of.update((chunk, document) for text_list in text_lists for chunk, document in text_list)
            lists = []
            if query.mode != "text":
                lists.append(RankedList([chunk for chunk, _, _ in nearest], settings.vector_weight))
            if query.mode != "vector":
                lists.append(RankedList(_interleave([[c for c, _ in t] for t in text_lists]), settings.text_weight))
            for part_vector in vectors[1:]:
                near_part = await store.vector_candidates(
                    conn, knowledge_bases=names, vector=part_vector, limit=limit, filters=query.filters
                )
                document_of.update((chunk, document) for chunk, _, document in near_part)
                for chunk, cosine, _ in near_part:  # a clause's neighbour counts at its own similarity
                    cosine_of[chunk] = max(cosine, cosine_of.get(chunk, -1.0))
                lists.append(RankedList([chunk for chunk, _, _ in near_part], settings.part_weight))
            fused = by_document(
                reciprocal_rank_fusion(lists, k=settings.rrf_k, limit=top_k * settings.document_window),
                document_of,
                cosine_of,
                decay=settings.document_decay,
                margin=settings.document_margin,
                per_round=settings.document_chunks_per_round,
                support=settings.document_support,
            )[:wanted]
            rows = await store.hits(conn, [f.id for f in fused], vector)
        best = max((score for _, score, _ in nearest), default=0.0)
        ranks = {f.id: (f.score, *_list_ranks(f.ranks, query.mode)) for f in fused}
        ordered = drop_near_duplicates(
            [
                rows[f.id]
                for f in fused
                if f.id in rows and (not query.min_score or rows[f.id].vector_score >= query.min_score)
            ],
            settings.duplicate_similarity,
        )
        rerank_scores: dict[uuid.UUID, float] = {}
        if self._reranker is not None and ordered:
            head = ordered[: settings.rerank_candidates]
            scores = await self._reranker.score(query.text, [f"{r.title}\n{r.section}\n{r.text}" for r in head])
            rerank_scores = {r.chunk_id: s for r, s in zip(head, scores, strict=True)}
            head = sorted(head, key=lambda r: -rerank_scores[r.chunk_id])
            ordered = head + ordered[settings.rerank_candidates :]
        hits = [_hit(row, *ranks[row.chunk_id], rerank_scores.get(row.chunk_id, 0.0)) for row in ordered[:top_k]]
        log.info(
            "search tenant=%s knowledge_bases=%s mode=%s translated_from=%s top_k=%d filters=%d vector_candidates=%d "
            "text_candidates=%d hits=%d best_vector_score=%.3f ms=%.1f",
            query.tenant,
            ",".join(names),
            query.mode,
            translation.source_language if translation is not None else "-",
            top_k,
            len(query.filters),
            len(nearest),
            sum(len(t) for t in text_lists),
            len(hits),
            best,
            (time.perf_counter() - started) * 1000,
        )
        return SearchResult(hits=hits, best_vector_score=best)

    async def _check_models(self, found: Sequence[store.KnowledgeBaseRow]) -> None:
        info = await self._embedder.model_info()  # asked once per process, then cached
        stale = [kb for kb in found if kb.model != info.model or kb.dimension != info.dimension]
        if stale:
            raise SearchRejected(
                "knowledge bases indexed with another embedding model than the one served "
                f"({info.model}, {info.dimension} dimensions): "
                + ", ".join(f"{kb.name} ({kb.model}, {kb.dimension})" for kb in stale)
                + "; sync them again"
            )

    async def _translate(self, query: SearchQuery) -> tuple[list[store.KnowledgeBaseRow] | None, Translation | None]:
        """The knowledge bases found (None if not looked up), and the query in their language when it
        is clearly in another one (else None).

        The language whose stop words the question uses most, by Postgres' own stop-word lists,
        if it clearly beats the knowledge base's language (two or more stop words more, and at
        least a third of the words): short or mixed questions stay as asked.
        """
        assert self._translator is not None
        question_words = words(query.text)
        if len(question_words) < 3:
            return None, None
        async with tenant_transaction(self._pool, query.tenant) as conn:
            found = await store.knowledge_bases(conn, query.knowledge_bases)
            if not found:
                return found, None
            target = found[0].language
            candidates = self._translator.languages(target)
            if not candidates:
                return found, None
            content = await store.content_words(conn, question_words, [target, *candidates])
        stop_words = {language: len(question_words) - len(kept) for language, kept in content.items()}
        best = max(candidates, key=lambda language: stop_words.get(language, 0))
        margin = stop_words.get(best, 0) - stop_words.get(target, 0)
        if margin < 2 or stop_words.get(best, 0) < len(question_words) / 3:
            return found, None
        return found, await asyncio.to_thread(self._translator.translate, content[best], best, target)

    async def _text_candidates(
        self, query: SearchQuery, text: str, limit: int, found: list[store.KnowledgeBaseRow] | None
    ) -> tuple[list[store.KnowledgeBaseRow], list[list[tuple[uuid.UUID, uuid.UUID]]]]:
        """The knowledge bases that exist (`found`, if already known), and full-text candidates per
        language (one transaction)."""
        settings = self._settings
        async with tenant_transaction(self._pool, query.tenant) as conn:
            await store.configure_search(
                conn, statement_timeout_ms=settings.statement_timeout_ms, ef_search=settings.ef_search
            )
            if found is None:
                found = await store.knowledge_bases(conn, query.knowledge_bases)
            missing = sorted(set(query.knowledge_bases) - {kb.name for kb in found})
            if missing:
                log.warning("search of unknown knowledge bases tenant=%s missing=%s", query.tenant, ",".join(missing))
            text_lists: list[list[tuple[uuid.UUID, uuid.UUID]]] = []
            # Vector mode needs no text list.
            by_language = sorted(found, key=lambda kb: kb.language) if query.mode != "vector" else []
            for language, group in itertools.groupby(by_language, key=lambda kb: kb.language):
                kbs = list(group)
                names = [kb.name for kb in kbs]
                counts = await store.query_lexemes(conn, knowledge_bases=names, language=language, query=text)
                total = sum(kb.chunk_count for kb in kbs)
                terms = weigh_terms(counts, total=total, most=settings.text_terms)
                budget = settings.text_match_rows
                text_lists.append(
                    await store.text_candidates(
                        conn,
                        knowledge_bases=names,
                        language=language,
                        terms=terms,
                        match=matching_terms(dict(counts), terms, budget=budget),
                        limit=limit,
                        filters=query.filters,
                    )
                )
        return found, text_lists


def _list_ranks(ranks: Sequence[int], mode: SearchMode) -> tuple[int, int]:
    """(vector rank, text rank) from the fused ranks of the lists that `mode` searched."""
    if mode == "vector":
        return ranks[0], 0
    if mode == "text":
        return 0, ranks[0]
    return ranks[0], ranks[1]


def _hit(row: store.HitRow, score: float, vector_rank: int, text_rank: int, rerank_score: float) -> SearchHit:
    return SearchHit(
        chunk_id=str(row.chunk_id),
        knowledge_base=row.knowledge_base,
        document_id=str(row.document_id),
        document_key=row.document_key,
        document_title=row.title,
        source_uri=row.uri,
        section=row.section,
        text=row.text,
        page=row.page,
        anchor=row.anchor,
        score=score,
        vector_score=row.vector_score,
        vector_rank=vector_rank,
        text_rank=text_rank,
        rerank_score=rerank_score,
    )


def _interleave(lists: Sequence[Sequence[uuid.UUID]]) -> list[uuid.UUID]:
    """One ranked list from per-language lists: rank 1 of each, then rank 2 of each, ..."""
    if len(lists) == 1:
        return list(lists[0])
    return [item for group in itertools.zip_longest(*lists) for item in group if item is not None]
