"""Where the edge sends a tenant's requests: its agents' and memory's gRPC addresses.

On a laptop every tenant shares one agent and one memory service, and the agents come from the
resource YAML. In a cluster each tenant has its own services, listed in the route table the
operator publishes (`concierge.api.routes`); the mounted file is re-read when it changes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from pydantic import ValidationError

from concierge.api.loader import describe_errors, load_paths
from concierge.api.routes import Route, RouteTable
from concierge.common.grpcio import create_channel

log = logging.getLogger(__name__)
RECHECK_SECONDS = 1.0


class Routes:
    """The current route table, and whether it could be read."""

    def __init__(self, read: Callable[[], list[Route]], source: Path | None = None) -> None:
        self._read = read
        self._source = source
        self._routes: list[Route] = []
        self._version: float | None = None
        self._checked = 0.0
        self.problem: str | None = None
        self._refresh(force=True)

    @classmethod
    def from_resources(cls, resources_dir: Path, agent_address: str, memory_address: str) -> Routes:
        """Laptop: the agents in the resource YAML, all served by one agent and one memory service."""
        resources = load_paths([resources_dir])
        routes = [Route.of(a, agent_address=agent_address, memory_address=memory_address) for a in resources.agents]
        return cls(lambda: routes)

    @classmethod
    def from_file(cls, path: Path) -> Routes:
        """Cluster: the operator's route table, re-read whenever the mounted file changes."""
        return cls(lambda: RouteTable.model_validate_json(path.read_bytes()).agents, source=path)

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (self._source is None or now - self._checked < RECHECK_SECONDS):
            return
        self._checked = now
        try:
            version = os.stat(self._source).st_mtime if self._source is not None else 0.0
            if version == self._version and not force:
                return
            self._routes = self._read()
            self._version, self.problem = version, None
        except FileNotFoundError:
            self._routes, self.problem = [], f"route table {self._source} does not exist yet"
        except (OSError, ValidationError, ValueError) as err:
            # Keep serving the last good table; readiness reports the problem.
            detail = describe_errors(err) if isinstance(err, ValidationError) else str(err)
            self.problem = f"route table {self._source} is invalid: {detail}"
            log.error("%s", self.problem)

    def agents_of(self, tenant: str) -> list[Route]:
        self._refresh()
        return [r for r in self._routes if r.tenant == tenant]

    def agent(self, tenant: str, name: str) -> Route | None:
        return next((r for r in self.agents_of(tenant) if r.name == name), None)

    def memory_address(self, tenant: str) -> str | None:
        return next((r.memory_address for r in self.agents_of(tenant)), None)


class Channels:
    """One long-lived gRPC channel per address, opened on first use."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def get(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = create_channel(address)
        return self._channels[address]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
