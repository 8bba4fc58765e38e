"""Syncs one knowledge base: list sources, hash, plan, convert, chunk, embed, write, delete.

Unchanged documents cost a read and a hash; a changed one is replaced in one transaction.

A sync holds a pooled connection only for each short transaction, never while it reads, converts
or embeds: its lock lives on a connection of its own, and a few syncs run at a time (the rest
wait), so searches always find a pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from concierge.api.resources import KnowledgeBaseSpec
from concierge.db import tenant_transaction
from concierge.retrieval import store
from concierge.retrieval.chunking import Chunk, chunk_document, embedding_text, heading_line
from concierge.retrieval.convert import convert
from concierge.retrieval.embedder import EmbeddingClient
from concierge.retrieval.plan import (
    DocKey,
    content_hash,
    index_fingerprint,
    plan_sync,
    source_fingerprint,
    spec_hash,
)
from concierge.retrieval.sources import (
    DocumentProblem,
    DocumentRef,
    LoadedDocument,
    SourcePolicy,
    SourceProblem,
    discover,
    load,
)
from concierge.retrieval.tokens import TokenCounter

log = logging.getLogger(__name__)

# Model inputs carry [CLS] and [SEP] (or the model's equivalents) besides the text.
_SPECIAL_TOKENS = 2
_LOCK_CONNECT_TIMEOUT_S = 10


@dataclass
class SyncProgress:
    """Counters of a running sync; the last one has done=True and chunks_total."""

    documents_total: int = 0
    documents_done: int = 0
    documents_changed: int = 0
    documents_deleted: int = 0
    chunks_written: int = 0
    # (source: document, reason), cumulative.
    errors: list[tuple[str, str]] = field(default_factory=list)
    current: str = ""
    done: bool = False
    chunks_total: int = 0

    def snapshot(self) -> SyncProgress:
        return dataclasses.replace(self, errors=list(self.errors))


def document_metadata(spec: KnowledgeBaseSpec, source_name: str, fmt: str) -> dict[str, str]:
    """What search filters can match on a document: its source's labels, its source and format."""
    source = next(s for s in spec.sources if s.name == source_name)
    return {**source.metadata, "source": source_name, "format": fmt}


class SyncRejected(Exception):
    """The sync cannot start; `code` maps to a gRPC status."""

    def __init__(self, code: Literal["failed_precondition", "aborted"], message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Prepared:
    """A converted and chunked document waiting for its vectors."""

    document: store.DocumentRow
    title: str
    chunks: list[Chunk]
    # What gets embedded per chunk: heading line + text.
    texts: list[str]


class Ingestor:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        lock_conninfo: str,
        embedder: EmbeddingClient,
        count_tokens: TokenCounter,
        http: httpx.AsyncClient,
        max_document_bytes: int,
        embed_batch_size: int,
        concurrency: int,
        allow_private_networks: bool = True,
        source_roots: tuple[Path, ...] = (),
    ) -> None:
        """`lock_conninfo`: libpq URL of the pool's database, for each sync's own lock connection.

        `concurrency`: most syncs that run at once; keep it below the pool size, for searches.
        """
        self._pool = pool
        self._lock_conninfo = lock_conninfo
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        # (tenant, knowledge base) of the syncs running or waiting for a slot in this process.
        self._active: set[tuple[str, str]] = set()
        self._embedder = embedder
        self._count_tokens = count_tokens
        self._http = http
        self._max_bytes = max_document_bytes
        self._policy = SourcePolicy(
            max_bytes=max_document_bytes, allow_private_networks=allow_private_networks, allowed_roots=source_roots
        )
        # Embed several batches' worth at once: the embedding service always has the next one
        # queued, and the client can group passages of similar length.
        self._flush_chunks = embed_batch_size * 4

    async def sync(
        self, *, tenant: str, knowledge_base: str, spec: KnowledgeBaseSpec, base_dir: Path | None
    ) -> AsyncGenerator[SyncProgress, None]:
        """Bring the stored knowledge base in line with its sources, yielding progress."""
        info = await self._embedder.model_info()
        if spec.embedding.model != info.model:
            raise SyncRejected(
                "failed_precondition",
                f"knowledge base {knowledge_base!r} asks for embedding model {spec.embedding.model!r}, but the "
                f"embedding service serves {info.model!r}; set spec.embedding.model to {info.model!r} or point "
                "CONCIERGE_EMBEDDING_ADDRESS at a service with that model",
            )
        key = (tenant, knowledge_base)
        if key in self._active:
            raise SyncRejected(
                "aborted",
                f"a sync of {tenant}/{knowledge_base} is already running or waiting on this server; "
                "retry when it has finished",
            )
        self._active.add(key)
        try:
            if self._slots.locked():
                log.info(
                    "sync waiting for a slot tenant=%s knowledge_base=%s concurrency=%d",
                    tenant,
                    knowledge_base,
                    self._concurrency,
                )
                yield SyncProgress(current="waiting for a free sync slot")
            async with self._slots, self._locked(tenant, knowledge_base):
                async for progress in self._sync_locked(
                    tenant, knowledge_base, spec, base_dir, info.dimension, info.max_tokens
                ):
                    yield progress
        finally:
            self._active.discard(key)

    @asynccontextmanager
    async def _locked(self, tenant: str, knowledge_base: str) -> AsyncIterator[None]:
        """Hold the knowledge base's sync lock, on a connection outside the pool, for the block.

        Closing the connection releases the lock; so does the process dying, since Postgres ends
        the session with its socket. The connection costs a few ms per sync, which is rare.
        """
        async with await psycopg.AsyncConnection.connect(
            self._lock_conninfo, autocommit=True, connect_timeout=_LOCK_CONNECT_TIMEOUT_S
        ) as lock:
            await store.configure_lock_session(lock)
            if not await store.try_lock_sync(lock, tenant, knowledge_base):
                raise SyncRejected(
                    "aborted", f"a sync of {tenant}/{knowledge_base} is already running; retry when it has finished"
                )
            try:
                yield
            finally:
                # Unlock now: the server drops a closed session's locks only when its backend
                # exits, a moment later, and a sync asked for right after this one would be refused.
                with contextlib.suppress(psycopg.Error):
                    await store.unlock_sync(lock, tenant, knowledge_base)

    async def _sync_locked(
        self,
        tenant: str,
        knowledge_base: str,
        spec: KnowledgeBaseSpec,
        base_dir: Path | None,
        dimension: int,
        model_max_tokens: int,
    ) -> AsyncIterator[SyncProgress]:
        started = time.perf_counter()
        model = spec.embedding.model
        max_tokens = min(spec.chunking.max_tokens, model_max_tokens - _SPECIAL_TOKENS)
        fingerprint = index_fingerprint(spec=spec, model=model, dimension=dimension, max_tokens=max_tokens)
        fingerprints = {s.name: source_fingerprint(fingerprint, s.metadata) for s in spec.sources}
        progress = SyncProgress()
        log_fields = f"tenant={tenant} knowledge_base={knowledge_base}"

        async with tenant_transaction(self._pool, tenant) as conn:
            await store.upsert_knowledge_base(
                conn,
                tenant=tenant,
                name=knowledge_base,
                spec_hash=spec_hash(spec),
                model=model,
                dimension=dimension,
                language=spec.language,
            )
            stored = await store.document_hashes(conn, knowledge_base)

        refs: list[DocumentRef] = []
        failed_sources: set[str] = set()
        for source in spec.sources:
            try:
                refs.extend(await discover(source, base_dir, client=self._http, policy=self._policy))
            except SourceProblem as exc:
                failed_sources.add(source.name)
                self._failed(progress, source.name, str(exc), log_fields)
        progress.documents_total = len(refs)
        progress.current = "reading sources"
        yield progress.snapshot()

        # Stage 1: read and hash everything, so the plan (and what to delete) is known up front.
        # Only downloads are kept in memory; files are read again if they changed.
        found: dict[DocKey, str] = {}
        downloaded: dict[DocKey, LoadedDocument] = {}
        unreadable: set[DocKey] = set()
        for ref in refs:
            try:
                loaded = await load(
                    ref,
                    client=self._http,
                    max_bytes=self._max_bytes,
                    allow_private_networks=self._policy.allow_private_networks,
                )
            except DocumentProblem as exc:
                unreadable.add(ref.doc_key)
                progress.documents_done += 1
                self._failed(progress, ref.label, str(exc), log_fields)
                continue
            found[ref.doc_key] = content_hash(loaded.hash_material(), fingerprint=fingerprints[ref.source])
            if ref.url is not None:
                downloaded[ref.doc_key] = loaded
        plan = plan_sync(stored=stored, found=found, unreadable=unreadable, failed_sources=failed_sources)
        log.info(
            "sync planned %s add=%d replace=%d unchanged=%d delete=%d failed=%d",
            log_fields,
            len(plan.add),
            len(plan.replace),
            len(plan.unchanged),
            len(plan.delete),
            len(progress.errors),
        )
        progress.documents_done += len(plan.unchanged)
        yield progress.snapshot()

        # Stage 2: convert and chunk changed documents, embed them in batches, write each one.
        # A batch is embedded and written while the next one is converted: conversion runs in
        # this process and the model in the embedding service, so both cores stay busy.
        changed = set(plan.changed)
        pending: list[_Prepared] = []
        writing: asyncio.Task[None] | None = None
        # Snapshots the writer made after each document, passed on from this loop.
        written: list[SyncProgress] = []
        try:
            for ref in refs:
                if ref.doc_key not in changed:
                    continue
                progress.current = ref.key
                try:
                    if ref.doc_key in downloaded:
                        loaded = downloaded.pop(ref.doc_key)
                    else:
                        loaded = await load(
                            ref,
                            client=self._http,
                            max_bytes=self._max_bytes,
                            allow_private_networks=self._policy.allow_private_networks,
                        )
                    digest = content_hash(loaded.hash_material(), fingerprint=fingerprints[ref.source])
                    pending.append(await asyncio.to_thread(self._prepare, loaded, digest, spec, max_tokens))
                    for snapshot in written:
                        yield snapshot
                    written.clear()
                except DocumentProblem as exc:
                    progress.documents_done += 1
                    self._failed(progress, ref.label, str(exc), log_fields)
                    yield progress.snapshot()
                    continue
                if sum(len(p.chunks) for p in pending) >= self._flush_chunks:
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(
                        self._write(tenant, knowledge_base, spec.language, pending, progress, written)
                    )
                    pending = []
            if writing is not None:
                await writing
            await self._write(tenant, knowledge_base, spec.language, pending, progress, written)
            for snapshot in written:
                yield snapshot
            written.clear()
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writing

        if plan.delete:
            async with tenant_transaction(self._pool, tenant) as conn:
                progress.documents_deleted = await store.delete_documents(conn, knowledge_base, plan.delete)
        async with tenant_transaction(self._pool, tenant) as conn:
            documents, progress.chunks_total = await store.finish_sync(conn, knowledge_base, progress.errors)
            if (
                progress.documents_changed
                or progress.documents_deleted
                or not await store.has_lexeme_stats(conn, knowledge_base)
            ):
                await store.refresh_lexeme_stats(conn, tenant, knowledge_base)
        progress.current = ""
        progress.done = True
        log.info(
            "sync finished %s documents=%d chunks=%d changed=%d deleted=%d chunks_written=%d errors=%d seconds=%.2f",
            log_fields,
            documents,
            progress.chunks_total,
            progress.documents_changed,
            progress.documents_deleted,
            progress.chunks_written,
            len(progress.errors),
            time.perf_counter() - started,
        )
        yield progress.snapshot()

    def _prepare(self, loaded: LoadedDocument, digest: str, spec: KnowledgeBaseSpec, max_tokens: int) -> _Prepared:
        """Convert and chunk one document (CPU-bound: runs in a worker thread)."""
        converted = convert(loaded)
        chunks = chunk_document(
            converted.markdown,
            title=converted.title,
            max_tokens=max_tokens,
            overlap_tokens=spec.chunking.overlap_tokens,
            count_tokens=self._count_tokens,
            slug_anchors=loaded.format == "markdown",
        )
        if not chunks:
            raise DocumentProblem("nothing to index: the document has headings but no text")
        texts = [embedding_text(converted.title, chunk.section, chunk.text) for chunk in chunks]
        ref = loaded.ref
        document = store.DocumentRow(
            source=ref.source,
            key=ref.key,
            uri=ref.uri,
            title=converted.title,
            format=loaded.format,
            content_hash=digest,
            metadata=document_metadata(spec, ref.source, loaded.format),
        )
        return _Prepared(document=document, title=converted.title, chunks=chunks, texts=texts)

    async def _write(
        self,
        tenant: str,
        knowledge_base: str,
        language: str,
        pending: list[_Prepared],
        progress: SyncProgress,
        written: list[SyncProgress],
    ) -> None:
        """Embed the batch's chunks in one go, then write each document in a transaction of its own.

        A snapshot per written document goes to `written`, for the sync loop to pass on.
        """
        if not pending:
            return
        vectors = await self._embedder.embed_documents([text for p in pending for text in p.texts])
        offset = 0
        for prepared in pending:
            rows = [
                store.ChunkRow(
                    ordinal=chunk.ordinal,
                    section=chunk.section_path,
                    heading=heading_line(prepared.title, chunk.section),
                    text=chunk.text,
                    content_hash=hashlib.sha256(text.encode()).hexdigest(),
                    token_count=chunk.token_count,
                    embedding=vectors[offset + i],
                    page=chunk.page,
                    anchor=chunk.anchor,
                )
                for i, (chunk, text) in enumerate(zip(prepared.chunks, prepared.texts, strict=True))
            ]
            offset += len(rows)
            async with tenant_transaction(self._pool, tenant) as conn:
                await store.replace_document(
                    conn,
                    tenant=tenant,
                    knowledge_base=knowledge_base,
                    language=language,
                    document=prepared.document,
                    chunks=rows,
                )
            progress.documents_done += 1
            progress.documents_changed += 1
            progress.chunks_written += len(rows)
            written.append(dataclasses.replace(progress.snapshot(), current=prepared.document.title))

    @staticmethod
    def _failed(progress: SyncProgress, source: str, reason: str, log_fields: str) -> None:
        progress.errors.append((source, reason))
        log.warning("sync error %s item=%r reason=%r", log_fields, source, reason)
