"""The services one CLI command needs: the running `concierge up`'s, or ones started for it.

`concierge up` writes the addresses it serves to `<state dir>/stack.json`; `kb sync`, `kb search`
and `eval` use them while that supervisor lives, so they see the same data as the chat. Otherwise
they start embedded Postgres and the services they need themselves, and stop them when they end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from concierge.local.processes import ServiceProcess, start_service
from concierge.local.up import Stack, running_stack, start_embedding_and_database

# A service named here is used as is instead of the running `up`'s or a started one.
ADDRESS_VARIABLES = {
    "embedding": "CONCIERGE_EMBEDDING_ADDRESS",
    "retrieval": "CONCIERGE_RETRIEVAL_ADDRESS",
    "memory": "CONCIERGE_MEMORY_ADDRESS",
}


@dataclass
class Services:
    """Where a command's services listen, and what it started for itself (stopped when it ends)."""

    addresses: dict[str, str]
    log_dir: Path
    host: str
    # Every address of the running `concierge up` (agent and edge included); empty when none runs.
    up: dict[str, str] = field(default_factory=dict)
    stack: Stack = field(default_factory=Stack)

    def start(self, name: str, env: Mapping[str, str]) -> ServiceProcess:
        """Start one more service (e.g. an agent) for this command and wait until it serves."""
        service = start_service(name, env=env, log_dir=self.log_dir, host=self.host)
        self.stack.services[name] = service
        service.wait_ready()
        self.addresses[name] = service.address
        return service


@contextmanager
def local_services(
    state_dir: Path, console: Console, needs: Sequence[str] = ("retrieval",), host: str = "127.0.0.1"
) -> Iterator[Services]:
    """Addresses of `needs` (embedding, retrieval, memory) backed by the state dir's database.

    Each comes from its CONCIERGE_<NAME>_ADDRESS, else from the running `concierge up`, else is
    started here, with embedded Postgres (or CONCIERGE_DATABASE_URL) when retrieval or memory is.
    """
    if unknown := [n for n in needs if n not in ADDRESS_VARIABLES]:
        raise ValueError(f"unknown service {unknown[0]!r}; expected one of {', '.join(ADDRESS_VARIABLES)}")
    services = Services(addresses={}, log_dir=state_dir / "logs", host=host, up=running_stack(state_dir) or {})
    for name in needs:
        if configured := os.environ.get(ADDRESS_VARIABLES[name]):
            services.addresses[name] = configured
        elif name in services.up:
            services.addresses[name] = services.up[name]
    if used := [n for n in needs if n in services.up and services.addresses[n] == services.up[n]]:
        console.print(f"[dim]using the running `concierge up` ({', '.join(f'{n} {services.up[n]}' for n in used)})[/]")
    missing = [n for n in needs if n not in services.addresses]
    try:
        if missing:
            state_dir.mkdir(parents=True, exist_ok=True)
            _start(services, state_dir, missing, console)
        yield services
    finally:
        services.stack.stop()


def _start(services: Services, state_dir: Path, missing: Sequence[str], console: Console) -> None:
    stack, log_dir, host = services.stack, services.log_dir, services.host
    started = time.monotonic()
    with console.status(f"Starting {', '.join(missing)}…") as status:
        database_url = ""
        if "retrieval" in missing or "memory" in missing:
            status.update("Starting PostgreSQL and the embedding service…")
            database_url, _ = start_embedding_and_database(stack, state_dir, host)
        elif "embedding" in missing:
            stack.services["embedding"] = start_service("embedding", env={}, log_dir=log_dir, host=host)
        embedding = services.addresses.get("embedding") or stack.services["embedding"].address
        if "retrieval" in missing:
            env = {"CONCIERGE_DATABASE_URL": database_url, "CONCIERGE_EMBEDDING_ADDRESS": embedding}
            stack.services["retrieval"] = start_service("retrieval", env=env, log_dir=log_dir, host=host)
        if "memory" in missing:
            env = {"CONCIERGE_DATABASE_URL": database_url}
            stack.services["memory"] = start_service("memory", env=env, log_dir=log_dir, host=host)
        for name, service in stack.services.items():
            status.update(f"Waiting for {name}…")
            service.wait_ready()
    for name in missing:
        services.addresses[name] = stack.services[name].address
    console.print(f"[green]✓[/] services ready in {time.monotonic() - started:.1f}s (logs in {log_dir})")


@contextmanager
def retrieval_address(state_dir: Path, console: Console, host: str = "127.0.0.1") -> Iterator[str]:
    """host:port of a retrieval service backed by the state dir's database (or CONCIERGE_DATABASE_URL)."""
    with local_services(state_dir, console, ("retrieval",), host) as services:
        yield services.addresses["retrieval"]
