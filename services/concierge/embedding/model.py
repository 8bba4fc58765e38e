"""Loads one sentence-transformers model and turns texts into L2-normalised float32 vectors.

Called only from the batcher's worker thread; nothing here knows about gRPC or asyncio.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from concierge.embedding.config import Settings

log = logging.getLogger(__name__)

Kind = Literal["query", "document", "raw"]
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ModelInfo:
    model: str
    dimension: int
    max_tokens: int


class Encoder:
    """A loaded model plus the prompts that distinguish queries from passages."""

    def __init__(self, model: Any, *, info: ModelInfo, prompts: dict[Kind, str]) -> None:
        self._model = model
        self.info = info
        self.prompts = prompts

    @classmethod
    def load(cls, settings: Settings) -> Encoder:
        # Must be set before sentence-transformers/huggingface_hub read it: a missing local file
        # should fail fast instead of trying the network.
        os.environ["HF_HUB_OFFLINE"] = "1"
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        # A tqdm bar per load would break the one-line-per-event log format.
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        started = time.perf_counter()
        model = SentenceTransformer(settings.embedding_model_path, device=settings.embedding_device)
        if settings.embedding_dtype == "bfloat16":
            model = model.to(torch.bfloat16)
        model.eval()
        own_prompts = {name: text or "" for name, text in (model.prompts or {}).items()}
        prompts: dict[Kind, str] = {
            "query": _prompt(settings.embedding_query_prompt, own_prompts.get("query", "")),
            "document": _prompt(settings.embedding_document_prompt, own_prompts.get("document", "")),
            "raw": "",
        }
        dimension, max_tokens = model.get_embedding_dimension(), model.max_seq_length
        if not dimension or not max_tokens:
            raise SystemExit(
                f"embedding: {settings.embedding_model_path} does not declare its dimension and maximum sequence "
                "length; point CONCIERGE_EMBEDDING_MODEL_PATH at a sentence-transformers model folder"
            )
        info = ModelInfo(model=settings.embedding_model_id, dimension=dimension, max_tokens=max_tokens)
        log.info(
            "model loaded model=%s dimension=%d max_tokens=%d dtype=%s device=%s seconds=%.1f",
            info.model,
            info.dimension,
            info.max_tokens,
            settings.embedding_dtype,
            settings.embedding_device,
            time.perf_counter() - started,
        )
        return cls(model, info=info, prompts=prompts)

    def encode(self, texts: list[str], kind: Kind) -> Vectors:
        """Vectors of `texts` (one row each), unit length, float32 whatever the model's dtype."""
        if not texts:
            return np.zeros((0, self.info.dimension), dtype=np.float32)
        prompt = self.prompts[kind] or None
        tensor: Any = self._model.encode(
            texts,
            prompt=prompt,
            batch_size=len(texts),
            convert_to_tensor=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return normalize(tensor.float().cpu().numpy())


def normalize(vectors: npt.NDArray[Any]) -> Vectors:
    """L2-normalise rows in float32: normalising in bfloat16 leaves norms up to 1.004."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    result: Vectors = np.zeros_like(out)
    # A zero vector stays zero rather than becoming NaN.
    np.divide(out, norms, out=result, where=norms > 0)
    return result


def _prompt(configured: str | None, model_default: str) -> str:
    return model_default if configured is None else configured
