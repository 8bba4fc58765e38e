"""Micro-batching of concurrent embedding requests into one worker thread.

Requests arriving within `max_wait` of each other share a forward pass, several times cheaper than one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from concierge.embedding.model import Kind, Vectors

log = logging.getLogger(__name__)

EncodeFn = Callable[[list[str], Kind], Vectors]


@dataclass
class _Request:
    texts: list[str]
    kind: Kind
    future: asyncio.Future[Vectors]
    arrived: float


@dataclass
class BatcherStats:
    """Counters for logs and tests: how well concurrent requests were combined."""

    requests: int = 0
    batches: int = 0
    texts: int = 0
    # Texts per forward pass, most recent last (bounded).
    pass_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))


def worker_thread() -> ThreadPoolExecutor:
    """The single thread a model is loaded and run on.

    Torch keeps an OpenMP thread team per calling thread; a model loaded on one thread and run
    on another leaves two teams competing for the cores (measured 10 ms per query instead of 4.5).
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")


class MicroBatcher:
    """Queue `embed()` calls and encode them together, at most `max_batch_size` texts per pass."""

    def __init__(
        self,
        encode: EncodeFn,
        *,
        max_batch_size: int,
        max_wait_s: float,
        worker: ThreadPoolExecutor | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self._encode = encode
        self._max_batch = max_batch_size
        self._max_wait = max_wait_s
        self._pending: deque[_Request] = deque()
        self._wakeup = asyncio.Event()
        # One thread: the model is not made faster by concurrent calls, only slower. The caller
        # may hand over the thread that loaded the model (see `worker_thread`); the batcher owns it.
        self._executor = worker or worker_thread()
        self._task: asyncio.Task[None] | None = None
        self.stats = BatcherStats()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="embedding-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for request in self._pending:
            if not request.future.done():
                request.future.set_exception(RuntimeError("embedding service is shutting down"))
        self._pending.clear()
        self._executor.shutdown(wait=True)

    async def embed(self, texts: Sequence[str], kind: Kind) -> Vectors:
        """Vectors for `texts`, in order, once the batch they joined has been encoded."""
        if self._task is None:
            raise RuntimeError("MicroBatcher.start() must be called before embed()")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Vectors] = loop.create_future()
        self._pending.append(_Request(list(texts), kind, future, loop.time()))
        self.stats.requests += 1
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Wait for company only while the oldest request is younger than max_wait: requests
            # that queued up during the previous pass have already waited long enough.
            deadline = self._pending[0].arrived + self._max_wait
            while self._queued_texts() < self._max_batch and (remaining := deadline - loop.time()) > 0:
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._encode_batch, batch)
            except Exception as exc:  # every waiter must hear about the failure, not hang
                log.exception("batch failed requests=%d", len(batch))
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            for request, vectors in zip(batch, results, strict=True):
                if not request.future.done():
                    request.future.set_result(vectors)
            log.debug(
                "batch encoded requests=%d texts=%d ms=%.1f",
                len(batch),
                sum(len(r.texts) for r in batch),
                (time.perf_counter() - started) * 1000,
            )

    def _queued_texts(self) -> int:
        return sum(len(r.texts) for r in self._pending)

    def _take(self) -> list[_Request]:
        """Oldest requests up to max_batch texts; a single larger request goes alone."""
        batch: list[_Request] = []
        size = 0
        while self._pending:
            request = self._pending[0]
            if request.future.done():  # the caller went away (deadline, cancel)
                self._pending.popleft()
                continue
            if batch and size + len(request.texts) > self._max_batch:
                break
            batch.append(self._pending.popleft())
            size += len(request.texts)
        return batch

    def _encode_batch(self, batch: list[_Request]) -> list[Vectors]:
        """Runs in the worker thread: one pass per kind (prompts differ) and per max_batch slice."""
        positions: dict[Kind, list[tuple[int, int]]] = {}
        texts_by_kind: dict[Kind, list[str]] = {}
        for i, request in enumerate(batch):
            texts = texts_by_kind.setdefault(request.kind, [])
            positions.setdefault(request.kind, []).extend((i, j) for j in range(len(request.texts)))
            texts.extend(request.texts)
        rows: dict[tuple[int, int], Vectors] = {}
        for kind, texts in texts_by_kind.items():
            for start in range(0, len(texts), self._max_batch):
                piece = texts[start : start + self._max_batch]
                vectors = self._encode(piece, kind)
                self.stats.batches += 1
                self.stats.texts += len(piece)
                self.stats.pass_sizes.append(len(piece))
                for offset, row in enumerate(vectors):
                    rows[positions[kind][start + offset]] = row
        out: list[Vectors] = []
        for i, request in enumerate(batch):
            if request.texts:
                out.append(np.stack([rows[(i, j)] for j in range(len(request.texts))]))
            else:
                out.append(np.zeros((0, 0), dtype=np.float32))
        return out
