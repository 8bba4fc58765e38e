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

# Prompts of models whose mounted copy may lack them in config_sentence_transformers.json, by
# model id (CONCIERGE_EMBEDDING_MODEL_ID). EmbeddingGemma was trained with these; without them
# its retrieval quality drops.
KNOWN_PROMPTS: dict[str, dict[str, str]] = {
    "embeddinggemma-300m": {"query": "task: search result | query: ", "document": "title: none | text: "},
    "google/embeddinggemma-300m": {"query": "task: search result | query: ", "document": "title: none | text: "},
}
# Dimensions a Matryoshka-trained model keeps its quality at, by model id.
MATRYOSHKA_DIMENSIONS: dict[str, tuple[int, ...]] = {
    "embeddinggemma-300m": (768, 512, 256, 128),
    "google/embeddinggemma-300m": (768, 512, 256, 128),
}


def resolve_prompts(model_id: str, own: dict[str, str], *, query: str | None, document: str | None) -> dict[Kind, str]:
    """Per kind: the configured prompt, else the model's own, else the one known for its id, else none."""
    known = KNOWN_PROMPTS.get(model_id, {})

    def pick(kind: str, configured: str | None) -> str:
        if configured is not None:
            return configured
        return own.get(kind) or known.get(kind, "")

    return {"query": pick("query", query), "document": pick("document", document), "raw": ""}


def output_dimension(model_id: str, full: int, wanted: int | None) -> int:
    """The vector length to serve: the full one, or a Matryoshka size the model supports."""
    if wanted is None or wanted == full:
        return full
    if wanted > full:
        raise ValueError(
            f"CONCIERGE_EMBEDDING_DIMENSIONS={wanted} exceeds the model's {full} dimensions; choose at most {full}"
        )
    sizes = MATRYOSHKA_DIMENSIONS.get(model_id)
    if sizes is not None and wanted not in sizes:
        raise ValueError(
            f"{model_id} keeps its quality only at {', '.join(map(str, sizes))} dimensions; "
            f"set CONCIERGE_EMBEDDING_DIMENSIONS to one of them (got {wanted})"
        )
    return wanted


def truncate(vectors: npt.NDArray[Any], dimension: int) -> Vectors:
    """The first `dimension` components of each row, unit length again (Matryoshka truncation)."""
    return normalize(np.asarray(vectors)[:, :dimension])


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

        if settings.embedding_threads is not None:
            torch.set_num_threads(settings.embedding_threads)
        started = time.perf_counter()
        model = SentenceTransformer(settings.embedding_model_path, device=settings.embedding_device)
        if settings.embedding_dtype == "bfloat16":
            model = model.to(torch.bfloat16)
        model.eval()
        own_prompts = {name: text or "" for name, text in (model.prompts or {}).items()}
        prompts = resolve_prompts(
            settings.embedding_model_id,
            own_prompts,
            query=settings.embedding_query_prompt,
            document=settings.embedding_document_prompt,
        )
        full, max_tokens = model.get_embedding_dimension(), model.max_seq_length
        if not full or not max_tokens:
            raise SystemExit(
                f"embedding: {settings.embedding_model_path} does not declare its dimension and maximum sequence "
                "length; point CONCIERGE_EMBEDDING_MODEL_PATH at a sentence-transformers model folder"
            )
        try:
            dimension = output_dimension(settings.embedding_model_id, full, settings.embedding_dimensions)
        except ValueError as exc:
            raise SystemExit(f"embedding: {exc}") from None
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
        return truncate(tensor.float().cpu().numpy(), self.info.dimension)


def normalize(vectors: npt.NDArray[Any]) -> Vectors:
    """L2-normalise rows in float32: normalising in bfloat16 leaves norms up to 1.004."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    result: Vectors = np.zeros_like(out)
    # A zero vector stays zero rather than becoming NaN.
    np.divide(out, norms, out=result, where=norms > 0)
    return result
