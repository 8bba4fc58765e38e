"""gRPC wiring of the embedding service: validates requests and hands them to the batcher.

The model loads before the port opens, so health checks say SERVING only once vectors can be made.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
from cachetools import LRUCache

from concierge.common import grpcio, logs
from concierge.common.settings import load
from concierge.embedding.batcher import MicroBatcher, worker_thread
from concierge.embedding.config import Settings
from concierge.embedding.model import Encoder, Kind, Vectors
from concierge.v1 import embedding_pb2, embedding_pb2_grpc

log = logging.getLogger(__name__)

_KINDS: dict[int, Kind] = {
    embedding_pb2.EMBED_KIND_QUERY: "query",
    embedding_pb2.EMBED_KIND_DOCUMENT: "document",
    # Unspecified means "no prompt": the text is embedded exactly as sent.
    embedding_pb2.EMBED_KIND_UNSPECIFIED: "raw",
}


class QueryCache:
    """Vectors of recent queries: customers ask the same few questions, and a hit costs no forward pass."""

    def __init__(self, size: int) -> None:
        self._entries: LRUCache[str, Vectors] | None = LRUCache(maxsize=size) if size else None
        self.hits = 0
        self.misses = 0

    async def embed(self, texts: list[str], compute: Callable[[list[str]], Awaitable[Vectors]]) -> Vectors:
        if self._entries is None:
            return await compute(texts)
        entries = self._entries
        missing = list(dict.fromkeys(t for t in texts if t not in entries))
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        if missing:
            for text, vector in zip(missing, await compute(missing), strict=True):
                entries[text] = vector
        return np.stack([entries[t] for t in texts])


class EmbeddingServicer(embedding_pb2_grpc.EmbeddingServiceServicer):
    def __init__(self, encoder: Encoder, batcher: MicroBatcher, settings: Settings) -> None:
        self._encoder = encoder
        self._batcher = batcher
        self._max_texts = settings.embedding_max_texts_per_request
        self.query_cache = QueryCache(settings.embedding_query_cache_size)

    async def Embed(
        self, request: embedding_pb2.EmbedRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> embedding_pb2.EmbedResponse:
        count = len(request.texts)
        if count == 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"texts is empty: send between 1 and {self._max_texts} texts"
            )
        if count > self._max_texts:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"too many texts: got {count}, at most {self._max_texts} per Embed call; split the request "
                "(or raise CONCIERGE_EMBEDDING_MAX_TEXTS_PER_REQUEST)",
            )
        kind = _KINDS.get(request.kind)
        if kind is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown kind {request.kind}; use QUERY or DOCUMENT")
            raise AssertionError("unreachable")  # abort raises; this tells mypy `kind` is set
        try:
            if kind == "query":
                vectors = await self.query_cache.embed(list(request.texts), lambda t: self._batcher.embed(t, "query"))
            else:
                vectors = await self._batcher.embed(list(request.texts), kind)
        except Exception as exc:  # the batcher has logged it; the caller gets the cause, not UNKNOWN
            await context.abort(grpc.StatusCode.INTERNAL, f"embedding failed: {type(exc).__name__}: {exc}")
            raise AssertionError("unreachable") from exc
        info = self._encoder.info
        return embedding_pb2.EmbedResponse(
            vectors=[embedding_pb2.Vector(values=row.tolist()) for row in vectors],
            model=info.model,
            dimension=info.dimension,
        )

    async def GetModelInfo(
        self, request: embedding_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> embedding_pb2.GetModelInfoResponse:
        info = self._encoder.info
        return embedding_pb2.GetModelInfoResponse(
            model=info.model, dimension=info.dimension, max_tokens=info.max_tokens
        )


async def _serve(settings: Settings, encoder: Encoder, worker: ThreadPoolExecutor, host: str, port: int) -> None:
    batcher = MicroBatcher(
        encoder.encode,
        max_batch_size=settings.embedding_max_batch_size,
        max_wait_s=settings.embedding_max_wait_ms / 1000,
        worker=worker,
    )
    batcher.start()
    servicer = EmbeddingServicer(encoder, batcher, settings)

    def register(server: grpc.aio.Server) -> list[str]:
        embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server(servicer, server)
        return [embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name]

    async def stop() -> None:
        await batcher.close()
        log.info(
            "batcher stopped requests=%d passes=%d texts=%d query_cache_hits=%d query_cache_misses=%d",
            batcher.stats.requests,
            batcher.stats.batches,
            batcher.stats.texts,
            servicer.query_cache.hits,
            servicer.query_cache.misses,
        )

    await grpcio.serve(name="embedding", host=host, port=port, register=register, on_stop=stop)


def run(*, host: str, port: int) -> None:
    """Load the model, then serve until SIGTERM/SIGINT."""
    logs.configure("embedding")
    settings = load(Settings, "embedding")
    worker = worker_thread()
    encoder = worker.submit(Encoder.load, settings).result()
    # The model's hundreds of thousands of Python objects never die: keep the collector from
    # walking them again in every full collection (a pause that lands on whoever is waiting).
    gc.freeze()
    asyncio.run(_serve(settings, encoder, worker, host, port))
