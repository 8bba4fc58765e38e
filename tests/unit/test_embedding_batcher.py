"""Micro-batching: concurrent Embed calls share forward passes, off the event loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import numpy as np
import pytest

from concierge.embedding.batcher import MicroBatcher
from concierge.embedding.model import Kind, Vectors, normalize


class FakeModel:
    """Encodes text "n" as a vector whose first value is n: callers can check they got theirs."""

    def __init__(self) -> None:
        self.passes: list[tuple[Kind, list[str]]] = []
        self.threads: set[str] = set()

    def encode(self, texts: list[str], kind: Kind) -> Vectors:
        self.passes.append((kind, list(texts)))
        self.threads.add(threading.current_thread().name)
        return np.array([[float(t), 1.0 if kind == "query" else 0.0] for t in texts], dtype=np.float32)


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
async def batcher(model: FakeModel) -> AsyncIterator[MicroBatcher]:
    batcher = MicroBatcher(model.encode, max_batch_size=16, max_wait_s=0.05)
    batcher.start()
    yield batcher
    await batcher.close()


async def test_concurrent_requests_share_one_forward_pass(batcher: MicroBatcher, model: FakeModel) -> None:
    results = await asyncio.gather(*(batcher.embed([str(i)], "document") for i in range(10)))
    assert [len(texts) for _, texts in model.passes] == [10]
    assert batcher.stats.requests == 10
    assert list(batcher.stats.pass_sizes) == [10]
    assert [float(r[0][0]) for r in results] == [float(i) for i in range(10)]


async def test_requests_that_queue_during_a_pass_share_the_next_one(model: FakeModel) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(texts: list[str], kind: Kind) -> Vectors:
        started.set()
        release.wait(timeout=10)  # the pass runs until the test lets it finish
        return model.encode(texts, kind)

    batcher = MicroBatcher(slow, max_batch_size=16, max_wait_s=0)
    batcher.start()
    try:
        first = asyncio.ensure_future(batcher.embed(["0"], "document"))
        assert await asyncio.to_thread(started.wait, 10)
        rest = [asyncio.ensure_future(batcher.embed([str(i)], "document")) for i in range(1, 6)]
        await asyncio.sleep(0)  # let them enqueue
        release.set()
        await asyncio.gather(first, *rest)
    finally:
        await batcher.close()
    assert [len(texts) for _, texts in model.passes] == [1, 5]


async def test_passes_never_exceed_the_max_batch_size(batcher: MicroBatcher, model: FakeModel) -> None:
    await asyncio.gather(*(batcher.embed([str(i)], "document") for i in range(40)))
    sizes = [len(texts) for _, texts in model.passes]
    assert sum(sizes) == 40
    assert max(sizes) == 16


async def test_each_caller_gets_its_own_vectors_in_order(batcher: MicroBatcher) -> None:
    requests = [[str(10 * i + j) for j in range(i + 1)] for i in range(6)]
    results = await asyncio.gather(*(batcher.embed(texts, "document") for texts in requests))
    for texts, vectors in zip(requests, results, strict=True):
        assert vectors[:, 0].tolist() == [float(t) for t in texts]


async def test_queries_and_documents_get_separate_passes(batcher: MicroBatcher, model: FakeModel) -> None:
    query, document = await asyncio.gather(batcher.embed(["1"], "query"), batcher.embed(["2"], "document"))
    assert sorted(kind for kind, _ in model.passes) == ["document", "query"]
    assert (query[0][1], document[0][1]) == (1.0, 0.0)


async def test_a_request_larger_than_the_batch_is_split_into_passes(batcher: MicroBatcher, model: FakeModel) -> None:
    vectors = await batcher.embed([str(i) for i in range(40)], "document")
    assert [len(texts) for _, texts in model.passes] == [16, 16, 8]
    assert vectors[:, 0].tolist() == [float(i) for i in range(40)]


async def test_a_lone_request_is_answered_after_max_wait_at_most(model: FakeModel) -> None:
    batcher = MicroBatcher(model.encode, max_batch_size=16, max_wait_s=0.01)
    batcher.start()
    try:
        vectors = await asyncio.wait_for(batcher.embed(["7"], "query"), timeout=5)
    finally:
        await batcher.close()
    assert vectors[0][0] == 7.0


async def test_the_model_runs_on_the_worker_thread_not_the_event_loop(batcher: MicroBatcher, model: FakeModel) -> None:
    await batcher.embed(["1"], "document")
    assert model.threads
    assert threading.current_thread().name not in model.threads
    assert all(name.startswith("encode") for name in model.threads)


async def test_a_model_failure_reaches_every_waiter_and_the_batcher_keeps_serving(model: FakeModel) -> None:
    calls = 0

    def flaky(texts: list[str], kind: Kind) -> Vectors:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("out of memory")
        return model.encode(texts, kind)

    batcher = MicroBatcher(flaky, max_batch_size=16, max_wait_s=0.05)
    batcher.start()
    try:
        results = await asyncio.gather(*(batcher.embed(["1"], "document") for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        assert (await batcher.embed(["2"], "document"))[0][0] == 2.0
    finally:
        await batcher.close()


async def test_a_cancelled_request_is_not_encoded(model: FakeModel) -> None:
    batcher = MicroBatcher(model.encode, max_batch_size=16, max_wait_s=0.2)
    batcher.start()
    try:
        gone = asyncio.ensure_future(batcher.embed(["1"], "document"))
        await asyncio.sleep(0)  # let it enqueue
        gone.cancel()
        kept = await batcher.embed(["2"], "document")
    finally:
        await batcher.close()
    assert [texts for _, texts in model.passes] == [["2"]]
    assert kept[0][0] == 2.0


async def test_embed_before_start_is_an_error(model: FakeModel) -> None:
    batcher = MicroBatcher(model.encode, max_batch_size=4, max_wait_s=0)
    with pytest.raises(RuntimeError, match="start"):
        await batcher.embed(["1"], "document")


def test_normalize_gives_unit_vectors_in_float32_and_leaves_zero_vectors_zero() -> None:
    vectors = normalize(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float64))
    assert vectors.dtype == np.float32
    assert vectors.tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
