"""Configuration of the edge, from CONCIERGE_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCIERGE_", extra="ignore")

    agent_address: str = Field(description="host:port of the agent service.")
    memory_address: str = Field(description="host:port of the memory service.")
    resources_dir: Path = Field(description="Folder of resource YAML: which agents exist per tenant.")
    ui_dir: Path | None = Field(default=None, description="Built React UI (frontend/dist) served at /.")
    default_tenant: str | None = Field(
        default=None, description="Tenant for requests that name none (laptop with a single namespace)."
    )
    rpc_timeout_seconds: float = Field(default=10.0, gt=0, description="Deadline of unary calls.")
    turn_timeout_seconds: float = Field(default=120.0, gt=0, description="Deadline of one streamed answer.")
