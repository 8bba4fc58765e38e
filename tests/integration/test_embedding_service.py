"""The embedding service as a real `concierge serve embedding` process with the offline model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest

from concierge.local.processes import ServiceProcess
from concierge.v1 import embedding_pb2, embedding_pb2_grpc


@pytest.fixture(scope="module")
async def stub(embedding_service: ServiceProcess) -> AsyncIterator[embedding_pb2_grpc.EmbeddingServiceAsyncStub]:
    async with grpc.aio.insecure_channel(embedding_service.address) as channel:
        yield embedding_pb2_grpc.EmbeddingServiceStub(channel)


async def embed(
    stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub,
    texts: list[str],
    kind: embedding_pb2.EmbedKind.ValueType = embedding_pb2.EMBED_KIND_DOCUMENT,
) -> np.ndarray:
    reply = await stub.Embed(embedding_pb2.EmbedRequest(texts=texts, kind=kind), timeout=30)
    assert (reply.model, reply.dimension) == ("all-MiniLM-L6-v2", 384)
    return np.array([v.values for v in reply.vectors], dtype=np.float32)


async def test_embed_returns_one_unit_length_384_dimension_vector_per_text(
    stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub,
) -> None:
    vectors = await embed(stub, ["Refunds take five days.", "Reset the Wi-Fi module.", ""])
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-5)


async def test_a_question_is_closest_to_the_passage_that_answers_it(
    stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub,
) -> None:
    passages = await embed(stub, ["Refunds reach your card within five business days.", "Pair the robot over Wi-Fi."])
    query = await embed(stub, ["how long until I get my money back?"], embedding_pb2.EMBED_KIND_QUERY)
    similarity = passages @ query[0]
    assert similarity[0] > similarity[1]


async def test_concurrent_calls_each_get_the_vectors_of_their_own_texts(
    stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub,
) -> None:
    texts = [f"Error code E{i} means the robot is stuck near obstacle number {i}." for i in range(24)]
    alone = await embed(stub, texts)
    together = await asyncio.gather(*(embed(stub, [text]) for text in texts))
    for i, vectors in enumerate(together):
        # Batched bfloat16 passes pad differently from a lone pass: equal up to rounding.
        assert float(vectors[0] @ alone[i]) > 0.999


async def test_model_info_reports_the_model_its_dimension_and_max_tokens(
    stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub,
) -> None:
    info = await stub.GetModelInfo(embedding_pb2.GetModelInfoRequest(), timeout=10)
    assert (info.model, info.dimension, info.max_tokens) == ("all-MiniLM-L6-v2", 384, 256)


async def test_an_empty_texts_list_is_invalid_argument(stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Embed(embedding_pb2.EmbedRequest(texts=[]), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "texts is empty" in str(error.value.details())


async def test_too_many_texts_is_invalid_argument_naming_the_count_and_the_limit(
    stub: embedding_pb2_grpc.EmbeddingServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.Embed(embedding_pb2.EmbedRequest(texts=["x"] * 300), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "got 300, at most 256" in str(error.value.details())
