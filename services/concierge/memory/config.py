"""Configuration of the memory service, read from CONCIERGE_* environment variables.

`load_settings()` turns a missing or malformed variable into one clear message.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from concierge.common.settings import load


class Settings(BaseSettings):
    """Memory service settings (env prefix `CONCIERGE_`)."""

    model_config = SettingsConfigDict(env_prefix="CONCIERGE_", extra="ignore")

    database_url: str = Field(
        min_length=1, description="PostgreSQL URL, e.g. postgresql://user:pass@host:5432/concierge."
    )
    database_role: str = Field(
        default="concierge_app",
        description="Role the pooled connections switch to; it must not bypass row-level security.",
    )
    database_migrate: bool = Field(
        default=True,
        description="Apply pending migrations at start. False where the login may not change the schema (a "
        "tenant's own login in a cluster: the operator migrates).",
    )
    database_pool_size: int = Field(default=8, ge=1, le=200, description="Most pooled connections.")
    max_message_chars: int = Field(default=20_000, ge=1, le=1_000_000, description="Longest message text accepted.")


def load_settings() -> Settings:
    """Settings from the environment; raises SystemExit naming each bad variable and how to fix it."""
    return load(Settings, "memory", _HINTS)


_HINTS = {
    "CONCIERGE_DATABASE_URL": "the PostgreSQL URL of the Concierge database "
    "(e.g. postgresql://concierge:secret@postgres:5432/concierge)",
}
