"""Configuration of the agent service, read from CONCIERGE_* environment variables.

`load_settings()` turns a missing or malformed variable into one clear message.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from concierge.common.settings import load


class Settings(BaseSettings):
    """Agent service settings (env prefix `CONCIERGE_`)."""

    model_config = SettingsConfigDict(env_prefix="CONCIERGE_", extra="ignore")

    retrieval_address: str = Field(min_length=1, description="host:port of the retrieval service.")
    memory_address: str = Field(min_length=1, description="host:port of the memory service.")
    resources_dir: Path = Field(
        description="Folder of resource YAML (SupportAgents, KnowledgeBases, EscalationPolicies) this agent serves."
    )
    extractive_min_score: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="The extractive model abstains when the best passage's cosine similarity is below this.",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the Prometheus /metrics endpoint (concierge_active_sessions feeds the HPA); unset: none.",
    )
    rpc_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="Deadline of each call to memory/retrieval."
    )
    embedding_address: str | None = Field(
        default=None,
        min_length=1,
        description="host:port of the embedding service. When set, the extractive model scores sentences "
        "by meaning as well as by shared words; unset (or when a call fails), by shared words only.",
    )
    # A turn's pieces take ~40-140 ms to embed when none is cached yet, but several hundred ms when
    # the embedding service is busy syncing. Word-only scoring picks worse sentences, so the
    # deadline is generous: it only bounds how long a stuck embedding service can delay an answer.
    embedding_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Deadline of the extractive model's Embed calls; past it, that turn scores by shared words.",
    )
    handoff_max_attempts: int = Field(
        default=6, ge=1, le=50, description="Webhook hand-off attempts before the delivery is dead-lettered."
    )
    handoff_base_delay_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="Wait before the second webhook attempt; doubles each time (max 5 min)."
    )
    retention_interval_seconds: float = Field(
        default=3600, ge=10, description="How often each agent's spec.memory.retentionDays is applied."
    )
    azure_openai_api_version: str = Field(default="2024-10-21", description="API version for provider `azure-openai`.")
    # The edge gives a whole turn 120 s; with the defaults one model call and its retries take at most ~92 s.
    model_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Hosted model providers: longest wait to connect, for the answer to start and between two "
        "pieces of a streamed answer; past it the request counts as failed (and is retried if it had not started).",
    )
    model_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Hosted model providers: retries of a request that got 408/409/429/5xx, a connection error or "
        "a timeout, after the provider's Retry-After or else an exponential backoff (0.5 s, 1 s, 2 s ... less "
        "up to 25 % jitter).",
    )
    model_max_retry_after_seconds: float = Field(
        default=15.0,
        ge=0,
        le=120,
        description="Hosted model providers: a 429/5xx whose Retry-After asks for a longer wait is not retried; "
        "the turn fails at once with RESOURCE_EXHAUSTED (429) or UNAVAILABLE.",
    )


_HINTS = {
    "CONCIERGE_RETRIEVAL_ADDRESS": "the host:port of the retrieval service (e.g. retrieval:50051)",
    "CONCIERGE_MEMORY_ADDRESS": "the host:port of the memory service (e.g. memory:50051)",
    "CONCIERGE_RESOURCES_DIR": "a folder of SupportAgent/KnowledgeBase YAML (e.g. examples/acme)",
}


def load_settings() -> Settings:
    """Settings from the environment; raises SystemExit naming each bad variable and how to fix it."""
    settings = load(Settings, "agent", _HINTS)
    if not settings.resources_dir.is_dir():
        raise SystemExit(
            f"agent: CONCIERGE_RESOURCES_DIR={settings.resources_dir} is not a folder; "
            "point it at the folder holding the SupportAgent YAML"
        )
    return settings
