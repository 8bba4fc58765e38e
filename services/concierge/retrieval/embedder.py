"""Client of the embedding service over one long-lived channel, with a deadline on every call.

Large passage lists go out as Embed calls of `batch_size`, a few in flight to keep the batcher busy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import numpy as np
import numpy.typing as npt

from concierge.v1 import embedding_pb2, embedding_pb2_grpc

Vectors = npt.NDArray[np.float32]


class EmbeddingUnavailable(Exception):
    """The embedding service failed or could not be reached; the message says which and where."""


@dataclass(frozen=True)
class ModelInfo:
    model: str
    dimension: int
    max_tokens: int


class EmbeddingClient:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        address: str,
        timeout_s: float,
        query_timeout_s: float,
        batch_size: int,
        in_flight: int = 2,
    ) -> None:
        self._stub = embedding_pb2_grpc.EmbeddingServiceStub(channel)
        self._address = address
        self._timeout = timeout_s
        self._query_timeout = query_timeout_s
        self._batch_size = batch_size
        self._in_flight = asyncio.Semaphore(in_flight)
        self._info: ModelInfo | None = None

    async def model_info(self) -> ModelInfo:
        """The served model, asked once: a process serves one model for its whole life."""
        if self._info is None:
            try:
                reply = await self._stub.GetModelInfo(
                    embedding_pb2.GetModelInfoRequest(), timeout=self._query_timeout, wait_for_ready=True
                )
            except grpc.aio.AioRpcError as exc:
                raise self._unavailable("GetModelInfo", exc) from exc
            self._info = ModelInfo(model=reply.model, dimension=reply.dimension, max_tokens=reply.max_tokens)
        return self._info

    async def embed_queries(self, texts: Sequence[str]) -> Vectors:
        """Several queries in one call (a question and its parts), one row each.

        Not behind the in-flight limit: a running sync must not hold up searches.
        """
        return await self._embed(list(texts), embedding_pb2.EMBED_KIND_QUERY, self._query_timeout)

    async def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """One row per text, in order."""
        if not texts:
            info = await self.model_info()
            return np.zeros((0, info.dimension), dtype=np.float32)
        # Batches of similar length: a forward pass pads every text to its longest one, so mixing a
        # heading-only chunk with a full one wastes most of the pass (measured 2-3x slower).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        batches = [ordered[i : i + self._batch_size] for i in range(0, len(ordered), self._batch_size)]
        parts = await asyncio.gather(*(self._embed_limited(batch) for batch in batches))
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(parts)
        return vectors

    async def _embed_limited(self, texts: Sequence[str]) -> Vectors:
        async with self._in_flight:
            return await self._embed(texts, embedding_pb2.EMBED_KIND_DOCUMENT, self._timeout)

    async def _embed(self, texts: Sequence[str], kind: embedding_pb2.EmbedKind.ValueType, deadline_s: float) -> Vectors:
        request = embedding_pb2.EmbedRequest(texts=list(texts), kind=kind)
        try:
            # wait_for_ready: ride out a restart of the embedding service within the deadline.
            reply = await self._stub.Embed(request, timeout=deadline_s, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            raise self._unavailable("Embed", exc) from exc
        return np.array([vector.values for vector in reply.vectors], dtype=np.float32)

    def _unavailable(self, method: str, exc: grpc.aio.AioRpcError) -> EmbeddingUnavailable:
        return EmbeddingUnavailable(
            f"embedding service at {self._address} failed {method}: {exc.code().name}: {exc.details()} "
            "(check CONCIERGE_EMBEDDING_ADDRESS and that `concierge serve embedding` is running)"
        )
