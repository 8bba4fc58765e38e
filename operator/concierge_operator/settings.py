"""Configuration of the operator, read from CONCIERGE_OPERATOR_* variables (the Helm chart sets them)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GRPC_PORT = 50051
FIELD_MANAGER = "concierge-operator"


class OperatorSettings(BaseSettings):
    """Where the operator's objects point and what they run (env prefix `CONCIERGE_OPERATOR_`)."""

    model_config = SettingsConfigDict(env_prefix="CONCIERGE_OPERATOR_", env_ignore_empty=True, extra="ignore")

    namespace: str = Field(
        default="concierge",
        min_length=1,
        description="Release namespace: where the edge, the embedding services and the database Secret live.",
    )
    image: str = Field(
        default="ghcr.io/example/concierge:0.1.0",
        min_length=1,
        description="Image of the retrieval, memory and agent Deployments (one image, `concierge serve <name>`).",
    )
    image_pull_policy: str = Field(default="IfNotPresent", description="Pull policy of those Deployments.")
    database_secret: str = Field(
        default="concierge-database",
        min_length=1,
        description="Secret in the release namespace whose key `url` is the PostgreSQL URL; the operator copies "
        "it into each tenant namespace that runs retrieval or memory.",
    )
    embedding_addresses: dict[str, str] = Field(
        default_factory=lambda: {"all-MiniLM-L6-v2": f"concierge-embedding-all-minilm-l6-v2.concierge.svc:{GRPC_PORT}"},
        description="Embedding model id -> host:port of the embedding Service that serves it (JSON).",
    )
    retrieval_address: str = Field(
        default=f"concierge-retrieval.{{namespace}}.svc:{GRPC_PORT}",
        description="Where the operator reaches a tenant's retrieval service to sync and to delete a "
        "knowledge base; `{namespace}` is replaced by the tenant namespace.",
    )
    sources_dir: str = Field(
        default="/var/lib/concierge/sources",
        description="Folder relative `path` sources resolve against inside the retrieval pods.",
    )
    sync_timeout_seconds: float = Field(default=3600.0, gt=0, description="Longest one sync may take.")
    retry_seconds: float = Field(
        default=15.0, gt=0, description="Wait before retrying a sync, a deletion or a missing reference."
    )
    refresh_check_seconds: float = Field(
        default=30.0, gt=0, description="How often knowledge bases are checked for a due refresh (reads only)."
    )
    resync_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often every resource is reconciled again (reads; writes only what drifted, e.g. a hand "
        "edit of an owned object or a newly labelled source ConfigMap).",
    )
    network_policies: bool = Field(
        default=True,
        description="Write NetworkPolicies that keep tenant services reachable only from their namespace and the edge.",
    )
