"""gRPC wiring of the retrieval service: request validation, status codes, and start-up.

`run()` migrates the database, opens the pool and the embedding channel, then serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import grpc
import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from concierge.api.resources import KnowledgeBaseSpec
from concierge.common import grpcio, logs
from concierge.db import migrate, open_pool, tenant_transaction
from concierge.retrieval import store
from concierge.retrieval.config import Settings, load_settings
from concierge.retrieval.embedder import EmbeddingClient, EmbeddingUnavailable
from concierge.retrieval.ingest import Ingestor, SyncProgress, SyncRejected
from concierge.retrieval.rerank import CrossEncoderReranker
from concierge.retrieval.search import Searcher, SearchMode, SearchQuery, SearchRejected, SearchSettings
from concierge.retrieval.tokens import load_token_counter
from concierge.retrieval.translate import ISO_BY_CONFIG, QueryTranslator
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 5
MAX_TOP_K = 50
MAX_FILTERS = 16
_MODES: dict[int, SearchMode] = {
    retrieval_pb2.SEARCH_MODE_HYBRID: "hybrid",
    retrieval_pb2.SEARCH_MODE_VECTOR: "vector",
    retrieval_pb2.SEARCH_MODE_TEXT: "text",
}

Context = grpc.aio.ServicerContext[Any, Any]


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    def __init__(self, *, ingestor: Ingestor, searcher: Searcher, pool: AsyncConnectionPool) -> None:
        self._ingestor = ingestor
        self._searcher = searcher
        self._pool = pool

    async def SyncKnowledgeBase(
        self, request: retrieval_pb2.SyncKnowledgeBaseRequest, context: Context
    ) -> AsyncIterator[retrieval_pb2.SyncKnowledgeBaseResponse]:
        await _require(context, tenant=request.tenant, knowledge_base=request.knowledge_base)
        try:
            spec = KnowledgeBaseSpec.model_validate_json(request.spec_json)
        except ValidationError as exc:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"spec_json is not a valid KnowledgeBase spec: {_describe(exc)}",
            )
        base_dir = Path(request.base_dir) if request.base_dir else None
        if base_dir is not None and not base_dir.is_dir():
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"base_dir {request.base_dir!r} is not a directory on the retrieval server",
            )
        log.info(
            "sync started tenant=%s knowledge_base=%s sources=%d",
            request.tenant,
            request.knowledge_base,
            len(spec.sources),
        )
        try:
            # aclosing: if the client goes away, the sync's finally blocks (lock release) still run.
            async with contextlib.aclosing(
                self._ingestor.sync(
                    tenant=request.tenant, knowledge_base=request.knowledge_base, spec=spec, base_dir=base_dir
                )
            ) as progress_stream:
                async for progress in progress_stream:
                    yield _progress_message(progress)
        except SyncRejected as exc:
            code = grpc.StatusCode.ABORTED if exc.code == "aborted" else grpc.StatusCode.FAILED_PRECONDITION
            await _abort(context, code, str(exc))
        except EmbeddingUnavailable as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        except Exception as exc:  # the stored state stays consistent: each document is one transaction
            log.exception("sync failed tenant=%s knowledge_base=%s", request.tenant, request.knowledge_base)
            await _abort(context, grpc.StatusCode.INTERNAL, f"sync failed: {type(exc).__name__}: {exc}")

    async def Search(self, request: retrieval_pb2.SearchRequest, context: Context) -> retrieval_pb2.SearchResponse:
        await _require(context, tenant=request.tenant)
        if not request.query.strip():
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "query is empty: send the customer's question")
        if not request.knowledge_bases:
            await _abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "knowledge_bases is empty: name at least one to search"
            )
        top_k = request.top_k or DEFAULT_TOP_K
        if not 1 <= top_k <= MAX_TOP_K:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"top_k must be between 1 and {MAX_TOP_K}, got {request.top_k}",
            )
        if not 0.0 <= request.min_score <= 1.0:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"min_score is a cosine similarity between 0 and 1, got {request.min_score}",
            )
        if problem := filter_problem(request.filters):
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, problem)
        query = SearchQuery(
            tenant=request.tenant,
            knowledge_bases=list(request.knowledge_bases),
            text=request.query,
            top_k=top_k,
            mode=_MODES.get(request.mode, "hybrid"),
            min_score=request.min_score,
            filters=dict(request.filters),
        )
        try:
            result = await self._searcher.search(query)
        except SearchRejected as exc:
            await _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except EmbeddingUnavailable as exc:
            await _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        except psycopg.errors.QueryCanceled:
            await _abort(
                context,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "search took longer than CONCIERGE_SEARCH_STATEMENT_TIMEOUT_MS in the database",
            )
        except Exception as exc:
            log.exception("search failed tenant=%s", request.tenant)
            await _abort(context, grpc.StatusCode.INTERNAL, f"search failed: {type(exc).__name__}: {exc}")
        return retrieval_pb2.SearchResponse(
            hits=[
                retrieval_pb2.SearchHit(
                    chunk_id=hit.chunk_id,
                    knowledge_base=hit.knowledge_base,
                    document_id=hit.document_id,
                    document_key=hit.document_key,
                    document_title=hit.document_title,
                    source_uri=hit.source_uri,
                    section=hit.section,
                    text=hit.text,
                    page=hit.page,
                    anchor=hit.anchor,
                    score=hit.score,
                    vector_score=hit.vector_score,
                    vector_rank=hit.vector_rank,
                    text_rank=hit.text_rank,
                    rerank_score=hit.rerank_score,
                )
                for hit in result.hits
            ],
            best_vector_score=result.best_vector_score,
        )

    async def DeleteKnowledgeBase(
        self, request: retrieval_pb2.DeleteKnowledgeBaseRequest, context: Context
    ) -> retrieval_pb2.DeleteKnowledgeBaseResponse:
        await _require(context, tenant=request.tenant, knowledge_base=request.knowledge_base)
        async with tenant_transaction(self._pool, request.tenant) as conn:
            deleted = await store.delete_knowledge_base(conn, request.knowledge_base)
        log.info(
            "knowledge base deleted tenant=%s knowledge_base=%s documents=%d",
            request.tenant,
            request.knowledge_base,
            deleted,
        )
        return retrieval_pb2.DeleteKnowledgeBaseResponse(documents_deleted=deleted)


def filter_problem(filters: Mapping[str, str]) -> str | None:
    """Why these metadata filters cannot be used, or None."""
    if len(filters) > MAX_FILTERS:
        return f"at most {MAX_FILTERS} filters, got {len(filters)}"
    for key, value in filters.items():
        if not key.strip():
            return "a filter key is empty: use `source`, `format` or a key of the source's metadata"
        if len(key) > 63 or len(value) > 256:
            return f"filter {key[:63]!r} is too long: keys up to 63 and values up to 256 characters"
    return None


def _progress_message(progress: SyncProgress) -> retrieval_pb2.SyncKnowledgeBaseResponse:
    return retrieval_pb2.SyncKnowledgeBaseResponse(
        documents_total=progress.documents_total,
        documents_done=progress.documents_done,
        documents_changed=progress.documents_changed,
        documents_deleted=progress.documents_deleted,
        chunks_written=progress.chunks_written,
        errors=[retrieval_pb2.SourceError(source=source, reason=reason) for source, reason in progress.errors],
        current=progress.current,
        done=progress.done,
        chunks_total=progress.chunks_total,
    )


def _describe(exc: ValidationError) -> str:
    """`sources.0.path: Input should be a valid string; ...`: the field path as the spec spells it."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}" for error in exc.errors()
    )


async def _require(context: Context, **fields: str) -> None:
    for name, value in fields.items():
        if not value:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{name} is required")


async def _abort(context: Context, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # it raises; this tells type checkers so


def translator(folder: str) -> QueryTranslator | None:
    """A translator when the folder holds any dictionary into a configured language."""
    if not folder or not Path(folder).is_dir():
        return None
    found = QueryTranslator(Path(folder))
    languages = sorted({source for target in ISO_BY_CONFIG for source in found.languages(target)})
    log.info("query translation dictionaries=%s languages=%s", folder, ",".join(languages) or "none")
    return found if languages else None


async def _serve(settings: Settings, host: str, port: int) -> None:
    pool = await open_pool(settings.database_url, role=settings.database_role, max_size=settings.database_pool_size)
    # One channel for the process: connection setup is paid once, not per request.
    channel = grpcio.create_channel(settings.embedding_address)
    http = httpx.AsyncClient(
        timeout=settings.fetch_timeout_s, follow_redirects=True, headers={"User-Agent": "concierge-retrieval"}
    )
    embedder = EmbeddingClient(
        channel,
        address=settings.embedding_address,
        timeout_s=settings.embedding_timeout_s,
        query_timeout_s=settings.embedding_query_timeout_s,
        batch_size=settings.embedding_batch_size,
    )
    ingestor = Ingestor(
        pool=pool,
        lock_conninfo=settings.database_url,
        embedder=embedder,
        count_tokens=load_token_counter(settings.tokenizer_path),
        http=http,
        max_document_bytes=settings.max_document_bytes,
        embed_batch_size=settings.embedding_batch_size,
        concurrency=settings.sync_concurrency,
        allow_private_networks=settings.fetch_allow_private_networks,
        source_roots=tuple(settings.source_roots),
    )
    searcher = Searcher(
        pool=pool,
        embedder=embedder,
        settings=SearchSettings(
            candidates=settings.search_candidates,
            min_candidates=settings.search_min_candidates,
            ef_search=settings.search_ef_search,
            statement_timeout_ms=settings.search_statement_timeout_ms,
            rrf_k=settings.search_rrf_k,
            vector_weight=settings.search_vector_weight,
            text_weight=settings.search_text_weight,
            duplicate_similarity=settings.search_duplicate_similarity,
            text_terms=settings.search_text_terms,
            text_match_rows=settings.search_text_match_rows,
            query_parts=settings.search_query_parts,
            part_weight=settings.search_part_weight,
            document_decay=settings.search_document_decay,
            document_window=settings.search_document_window,
            document_margin=settings.search_document_margin,
            document_support=settings.search_document_support,
            document_chunks_per_round=settings.search_document_chunks_per_round,
            rerank_candidates=settings.rerank_candidates,
        ),
        reranker=CrossEncoderReranker.load(settings.reranker_model_path) if settings.reranker_model_path else None,
        translator=translator(settings.search_dictionaries_dir),
    )
    servicer = RetrievalServicer(ingestor=ingestor, searcher=searcher, pool=pool)

    def register(server: grpc.aio.Server) -> list[str]:
        retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(servicer, server)
        return [retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"].full_name]

    async def stop() -> None:
        await http.aclose()
        await channel.close()
        await pool.close()

    await grpcio.serve(name="retrieval", host=host, port=port, register=register, on_stop=stop)


def run(*, host: str, port: int) -> None:
    """Migrate, then serve until SIGTERM/SIGINT."""
    logs.configure("retrieval")
    settings = load_settings()
    started = time.perf_counter()
    applied = migrate(settings.database_url) if settings.database_migrate else []
    log.info("database ready migrations_applied=%d seconds=%.2f", len(applied), time.perf_counter() - started)
    asyncio.run(_serve(settings, host, port))
