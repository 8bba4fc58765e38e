"""`concierge up`: every service on loopback, the YAML applied, the knowledge bases synced.

One supervisor process owns the embedded Postgres and the service processes and stops all
of them on Ctrl-C, leaving the data directory consistent for the next run.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from concierge.api.loader import ResourceSet, dump
from concierge.api.resources import KnowledgeBase
from concierge.api.sync import SyncResult, sync_knowledge_base
from concierge.common.grpcio import create_channel
from concierge.db import migrate
from concierge.local.postgres import EmbeddedPostgres, start_embedded_postgres
from concierge.local.processes import ServiceFailed, ServiceProcess, free_port, start_service
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REPO_UI_DIR = Path(__file__).resolve().parents[3] / "frontend" / "dist"


@dataclass
class Stack:
    """What `up` started, in start order; stopped in reverse."""

    services: dict[str, ServiceProcess] = field(default_factory=dict)
    postgres: EmbeddedPostgres | None = None

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def failed(self) -> ServiceProcess | None:
        return next((s for s in self.services.values() if s.process.poll() is not None), None)


STACK_FILE = "stack.json"


def record_stack(state_dir: Path, addresses: dict[str, str]) -> None:
    """Say where this supervisor's services listen, for CLI commands run beside it."""
    path = state_dir / STACK_FILE
    path.write_text(json.dumps({"pid": os.getpid(), "addresses": addresses}))


def forget_stack(state_dir: Path) -> None:
    (state_dir / STACK_FILE).unlink(missing_ok=True)


def running_stack(state_dir: Path) -> dict[str, str] | None:
    """Addresses of the `concierge up` that owns `state_dir`, if it still runs."""
    try:
        recorded = json.loads((state_dir / STACK_FILE).read_text())
        os.kill(int(recorded["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    addresses = recorded.get("addresses")
    return dict(addresses) if isinstance(addresses, dict) else None


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((host, port)) != 0


def write_resources(resources: ResourceSet, path: Path) -> Path:
    """The validated resources, defaults filled in, as the services read them (like the operator's ConfigMap)."""
    path.mkdir(parents=True, exist_ok=True)
    target = path / "resources.yaml"
    target.write_text(yaml.safe_dump_all([dump(i.resource) for i in resources.items], sort_keys=False))
    return path


def ui_dir() -> Path | None:
    configured = os.environ.get("CONCIERGE_UI_DIR")
    candidate = Path(configured) if configured else REPO_UI_DIR
    return candidate if (candidate / "index.html").is_file() else None


def start_embedding_and_database(stack: Stack, state_dir: Path, host: str) -> tuple[str, list[str]]:
    """Start the embedding service and, unless CONCIERGE_DATABASE_URL names one, embedded Postgres;
    migrate. Returns the database URL and the migrations applied.

    The embedding service spends most of its start-up loading its model and needs no database,
    so it starts first and loads while Postgres starts.
    """
    stack.services["embedding"] = start_service("embedding", env={}, log_dir=state_dir / "logs", host=host)
    database_url = os.environ.get("CONCIERGE_DATABASE_URL")
    if not database_url:
        stack.postgres = start_embedded_postgres(state_dir / "pgdata")
        database_url = stack.postgres.url
    return database_url, migrate(database_url)


def start_stack(stack: Stack, resources: ResourceSet, state_dir: Path, host: str, port: int, console: Console) -> None:
    """Fill `stack` as things start, so a failure half-way still stops what did start."""
    log_dir = state_dir / "logs"
    started_at = time.monotonic()
    with console.status("Starting PostgreSQL…"):
        database_url, applied = start_embedding_and_database(stack, state_dir, host)
    where = f"embedded, data in {state_dir / 'pgdata'}" if stack.postgres else "CONCIERGE_DATABASE_URL"
    console.print(f"[green]✓[/] PostgreSQL ready ({where}; {len(applied)} migrations applied)")

    resources_dir = write_resources(resources, state_dir / "resources")
    ports = {name: free_port(host) for name in ("retrieval", "memory", "agent")}
    addr = {name: f"{host}:{p}" for name, p in ports.items()} | {"embedding": stack.services["embedding"].address}
    namespaces = resources.namespaces
    envs: dict[str, dict[str, str]] = {
        "retrieval": {"CONCIERGE_DATABASE_URL": database_url, "CONCIERGE_EMBEDDING_ADDRESS": addr["embedding"]},
        "memory": {"CONCIERGE_DATABASE_URL": database_url},
        "agent": {
            "CONCIERGE_RETRIEVAL_ADDRESS": addr["retrieval"],
            "CONCIERGE_MEMORY_ADDRESS": addr["memory"],
            "CONCIERGE_EMBEDDING_ADDRESS": addr["embedding"],
            "CONCIERGE_RESOURCES_DIR": str(resources_dir),
        },
        "edge": {
            "CONCIERGE_AGENT_ADDRESS": addr["agent"],
            "CONCIERGE_MEMORY_ADDRESS": addr["memory"],
            "CONCIERGE_RESOURCES_DIR": str(resources_dir),
            **({"CONCIERGE_DEFAULT_TENANT": namespaces[0]} if len(namespaces) == 1 else {}),
            **({"CONCIERGE_UI_DIR": str(d)} if (d := ui_dir()) else {}),
        },
    }
    ports["edge"] = port
    with console.status("Starting services…") as status:
        for name, env in envs.items():
            stack.services[name] = start_service(name, env=env, log_dir=log_dir, port=ports[name], host=host)
        for name, service in stack.services.items():
            status.update(f"Waiting for {name}…")
            service.wait_ready()
            console.print(f"[green]✓[/] {name:<9} {service.address:<16} ready at {time.monotonic() - started_at:4.1f}s")


async def sync_all(
    knowledge_bases: Sequence[KnowledgeBase], resources: ResourceSet, retrieval_address: str, console: Console
) -> list[SyncResult]:
    """Sync each knowledge base through the retrieval service with a live progress bar."""
    channel = create_channel(retrieval_address)
    stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
    results = []
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "docs · {task.fields[chunks]} chunks · {task.fields[rate]} embeddings/s · "
                "{task.fields[errors]} errors · {task.fields[current]}"
            ),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            for kb in knowledge_bases:
                task = progress.add_task(f"sync {kb.key}", total=None, chunks=0, rate=0, errors=0, current="")
                started = time.monotonic()

                def show(
                    p: retrieval_pb2.SyncKnowledgeBaseResponse, task: TaskID = task, started: float = started
                ) -> None:
                    progress.update(
                        task,
                        total=p.documents_total or None,
                        completed=p.documents_done,
                        chunks=p.chunks_total if p.done else p.chunks_written,
                        rate=round(p.chunks_written / max(time.monotonic() - started, 1e-3)),
                        errors=len(p.errors),
                        current="done" if p.done else p.current[:40],
                    )

                results.append(await sync_knowledge_base(stub, kb, resources.path_of(kb).parent, show))
    finally:
        await channel.close()
    return results


def print_summary(console: Console, results: list[SyncResult], resources: ResourceSet, url: str) -> None:
    table = Table(title="Knowledge bases", show_edge=False)
    for col in ("knowledge base", "documents", "re-embedded", "deleted", "chunks", "errors"):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.knowledge_base, str(r.documents), str(r.changed), str(r.deleted), str(r.chunks_total), str(len(r.errors))
        )
    console.print(table)
    for r in results:
        for source, reason in r.errors:
            console.print(f"[yellow]![/] {r.knowledge_base}: {source}: {reason}")
    for agent in resources.agents:
        query = "" if len(resources.namespaces) == 1 else f"?tenant={agent.namespace}&agent={agent.name}"
        console.print(f"Agent [bold]{agent.spec.display_name}[/] ({agent.key}) at {url}{query}")
    console.print(f"\n[bold green]Concierge is ready at {url}[/]  (API docs: {url}docs · Ctrl-C stops everything)")


class StopFlag:
    """Once the stack serves, SIGINT/SIGTERM only set this flag: the main loop then stops cleanly."""

    def __init__(self) -> None:
        self.requested = False

    def arm(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._set)

    def _set(self, _signum: int, _frame: object) -> None:
        self.requested = True


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def wait_until_stopped(stack: Stack, stop: StopFlag, console: Console) -> int:
    """Block until Ctrl-C/SIGTERM (exit 0) or a service dies (exit 1)."""
    while not stop.requested:
        dead = stack.failed()
        if dead is not None:
            console.print(
                f"[red]✗ {dead.name} exited with code {dead.process.returncode}[/]; log tail:\n{dead.log_tail()}"
            )
            return 1
        time.sleep(0.2)
    return 0


def up(resources: ResourceSet, state_dir: Path, host: str, port: int, console: Console) -> int:
    state_dir.mkdir(parents=True, exist_ok=True)
    if not port_free(host, port):
        chosen = free_port(host)
        console.print(f"[yellow]Port {port} is in use; using {chosen} instead (choose one with --port).[/]")
        port = chosen
    # While starting, SIGTERM and SIGHUP (terminal closed) behave like Ctrl-C, so whatever did
    # start is stopped below.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    stack = Stack()
    stop = StopFlag()
    try:
        start_stack(stack, resources, state_dir, host, port, console)
        record_stack(state_dir, {name: service.address for name, service in stack.services.items()})
        retrieval = stack.services["retrieval"].address
        results = asyncio.run(sync_all(resources.knowledge_bases, resources, retrieval, console))
        stop.arm()
        print_summary(console, results, resources, f"http://{host}:{port}/")
        code = wait_until_stopped(stack, stop, console)
    except ServiceFailed as err:
        console.print(f"[red]✗ {err}[/]")
        code = 1
    except grpc.aio.AioRpcError as err:
        console.print(f"[red]✗ {err.code().name}: {err.details()}[/]  (service logs: {state_dir / 'logs'})")
        code = 1
    except psycopg.Error as err:
        console.print(f"[red]✗ PostgreSQL: {err}[/]")
        code = 1
    except KeyboardInterrupt:
        console.print("Interrupted while starting.")
        code = 130
    finally:
        for sig in STOP_SIGNALS:  # a second Ctrl-C must not cut the shutdown short
            signal.signal(sig, signal.SIG_IGN)
        with console.status("Stopping…"):
            stack.stop()
            forget_stack(state_dir)
        console.print("Stopped every service; data kept in " + str(state_dir))
    return code
