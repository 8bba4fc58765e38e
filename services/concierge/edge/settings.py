"""Configuration of the edge, from CONCIERGE_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from concierge.memory.validation import MAX_ATTACHMENT_CHARS


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCIERGE_", extra="ignore")

    routes_file: Path | None = Field(
        default=None,
        description="Cluster: the route table the operator publishes (ConfigMap `concierge-routes`, key "
        "`routes.json`, mounted as a file): each tenant's agents and their agent and memory addresses.",
    )
    agent_address: str | None = Field(default=None, description="Laptop: host:port of the one agent service.")
    memory_address: str | None = Field(default=None, description="Laptop: host:port of the one memory service.")
    resources_dir: Path | None = Field(
        default=None, description="Laptop: folder of resource YAML, which agents exist per tenant."
    )
    ui_dir: Path | None = Field(default=None, description="Built React UI (frontend/dist) served at /.")
    default_tenant: str | None = Field(
        default=None, description="Tenant for requests that name none (laptop with a single namespace)."
    )
    rpc_timeout_seconds: float = Field(default=10.0, gt=0, description="Deadline of unary calls.")
    turn_timeout_seconds: float = Field(default=120.0, gt=0, description="Deadline of one streamed answer.")
    attachment_max_chars: int = Field(
        default=100_000,
        ge=1000,
        le=MAX_ATTACHMENT_CHARS,
        description="Text kept of one attachment (the rest is cut and the attachment marked truncated); at most "
        "what the memory service stores.",
    )
    attachment_conversions: int = Field(
        default=2, ge=1, le=32, description="Uploads converted at once (MarkItDown, in worker threads)."
    )

    @model_validator(mode="after")
    def _one_way_to_route(self) -> EdgeSettings:
        if self.routes_file is None:
            self.laptop()
        return self

    def laptop(self) -> tuple[Path, str, str]:
        """The laptop's resources folder, agent and memory addresses; all three are needed without a route table."""
        values = {
            "CONCIERGE_RESOURCES_DIR": self.resources_dir,
            "CONCIERGE_AGENT_ADDRESS": self.agent_address,
            "CONCIERGE_MEMORY_ADDRESS": self.memory_address,
        }
        if self.resources_dir is None or self.agent_address is None or self.memory_address is None:
            missing = ", ".join(name for name, value in values.items() if value is None)
            raise ValueError(
                "set CONCIERGE_ROUTES_FILE (cluster: the operator's route table) or all of CONCIERGE_RESOURCES_DIR, "
                f"CONCIERGE_AGENT_ADDRESS and CONCIERGE_MEMORY_ADDRESS (missing: {missing})"
            )
        return self.resources_dir, self.agent_address, self.memory_address
