"""A retrieval service for one CLI command: the running `concierge up`'s, or one started for it.

`concierge up` writes the addresses it serves to `<state dir>/stack.json`; `kb sync`, `kb search`
and `eval` use them while that supervisor lives, so they see the same data as the chat. Otherwise
they start embedded Postgres, the embedding and the retrieval service themselves, and stop them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from concierge.local.processes import start_service
from concierge.local.up import Stack, running_stack, start_embedding_and_database


@contextmanager
def retrieval_address(state_dir: Path, console: Console, host: str = "127.0.0.1") -> Iterator[str]:
    """host:port of a retrieval service backed by the state dir's database (or CONCIERGE_DATABASE_URL)."""
    if configured := os.environ.get("CONCIERGE_RETRIEVAL_ADDRESS"):
        yield configured
        return
    if (running := running_stack(state_dir)) and "retrieval" in running:
        console.print(f"[dim]using the running `concierge up` ({running['retrieval']})[/]")
        yield running["retrieval"]
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack()
    log_dir = state_dir / "logs"
    started = time.monotonic()
    try:
        with console.status("Starting PostgreSQL and the embedding and retrieval services…") as status:
            database_url, _ = start_embedding_and_database(stack, state_dir, host)
            embedding = stack.services["embedding"].address
            env = {"CONCIERGE_DATABASE_URL": database_url, "CONCIERGE_EMBEDDING_ADDRESS": embedding}
            stack.services["retrieval"] = start_service("retrieval", env=env, log_dir=log_dir, host=host)
            for name, service in stack.services.items():
                status.update(f"Waiting for {name}…")
                service.wait_ready()
        console.print(f"[green]✓[/] services ready in {time.monotonic() - started:.1f}s (logs in {log_dir})")
        yield stack.services["retrieval"].address
    finally:
        stack.stop()
