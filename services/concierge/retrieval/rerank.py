"""Optional second stage of search: a cross-encoder reads query and passage together and rescores.

Off by default (it costs a forward pass per candidate); set CONCIERGE_RERANKER_MODEL_PATH to a
sentence-transformers CrossEncoder folder, e.g. a mounted copy of ms-marco-MiniLM-L-6-v2.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Reranker(Protocol):
    async def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance of each passage to the query, higher is better."""
        ...


class RerankerUnavailable(Exception):
    """The configured reranker model cannot be loaded; the message says where and why."""


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder, loaded once, run in a worker thread."""

    def __init__(self, model: Any, *, batch_size: int = 16) -> None:
        self._model = model
        self._batch_size = batch_size
        # One forward pass at a time: torch already uses every core for one.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str, *, max_length: int = 512) -> CrossEncoderReranker:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise RerankerUnavailable(
                f"CONCIERGE_RERANKER_MODEL_PATH={path!r} has no config.json: point it at a cross-encoder "
                "model folder (for example a mounted copy of cross-encoder/ms-marco-MiniLM-L-6-v2)"
            )
        from sentence_transformers import CrossEncoder

        started = time.perf_counter()
        try:
            model = CrossEncoder(str(folder), device="cpu", max_length=max_length, local_files_only=True)
        except Exception as exc:
            raise RerankerUnavailable(f"cannot load the reranker from {path}: {type(exc).__name__}: {exc}") from exc
        log.info("reranker loaded path=%s seconds=%.2f", path, time.perf_counter() - started)
        return cls(model)

    async def score(self, query: str, passages: Sequence[str]) -> list[float]:
        if not passages:
            return []
        return await asyncio.to_thread(self._predict, [(query, passage) for passage in passages])

    def _predict(self, pairs: list[tuple[str, str]]) -> list[float]:
        with self._lock:
            scores = self._model.predict(pairs, batch_size=self._batch_size, show_progress_bar=False)
        return [float(s) for s in scores]
