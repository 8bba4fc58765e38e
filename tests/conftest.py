"""Session fixtures that start real services once, on free loopback ports, stopped by PID.

Layers are marked by folder: tests/unit → unit, tests/integration → integration, tests/e2e → e2e.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from concierge.api.loader import load_paths
from concierge.api.sync import SyncResult, sync_knowledge_base
from concierge.common.grpcio import create_channel
from concierge.db import migrate
from concierge.local.postgres import EmbeddedPostgres, start_embedded_postgres
from concierge.local.processes import ServiceProcess, free_port, start_service
from concierge.v1 import memory_pb2_grpc, retrieval_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
ACME_DIR = ROOT / "examples" / "acme"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if layer in ("unit", "integration", "cluster", "e2e"):
            item.add_marker(getattr(pytest.mark, layer))


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("concierge-state")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(path / "run"))
    return path


@pytest.fixture(scope="session")
def postgres(state_dir: Path) -> Iterator[EmbeddedPostgres]:
    server = start_embedded_postgres(state_dir / "pgdata")
    migrate(server.url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres: EmbeddedPostgres) -> str:
    return postgres.url


def _started(name: str, env: dict[str, str], state_dir: Path) -> Iterator[ServiceProcess]:
    service = start_service(name, env=env, log_dir=state_dir / "logs")
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def embedding_service(state_dir: Path) -> Iterator[ServiceProcess]:
    yield from _started("embedding", {}, state_dir)


@pytest.fixture(scope="session")
def retrieval_service(
    state_dir: Path, postgres_url: str, embedding_service: ServiceProcess
) -> Iterator[ServiceProcess]:
    env = {"CONCIERGE_DATABASE_URL": postgres_url, "CONCIERGE_EMBEDDING_ADDRESS": embedding_service.address}
    yield from _started("retrieval", env, state_dir)


@pytest.fixture(scope="session")
def memory_service(state_dir: Path, postgres_url: str) -> Iterator[ServiceProcess]:
    yield from _started("memory", {"CONCIERGE_DATABASE_URL": postgres_url}, state_dir)


AGENT_METRICS_PORT = free_port()


@pytest.fixture(scope="session")
def agent_service(
    state_dir: Path,
    retrieval_service: ServiceProcess,
    memory_service: ServiceProcess,
    embedding_service: ServiceProcess,
) -> Iterator[ServiceProcess]:
    env = {
        "CONCIERGE_RETRIEVAL_ADDRESS": retrieval_service.address,
        "CONCIERGE_MEMORY_ADDRESS": memory_service.address,
        "CONCIERGE_EMBEDDING_ADDRESS": embedding_service.address,
        "CONCIERGE_RESOURCES_DIR": str(ACME_DIR),
        "CONCIERGE_METRICS_PORT": str(AGENT_METRICS_PORT),
    }
    yield from _started("agent", env, state_dir)


@pytest.fixture(scope="session")
def edge_service(
    state_dir: Path, agent_service: ServiceProcess, memory_service: ServiceProcess
) -> Iterator[ServiceProcess]:
    env = {
        "CONCIERGE_AGENT_ADDRESS": agent_service.address,
        "CONCIERGE_MEMORY_ADDRESS": memory_service.address,
        "CONCIERGE_RESOURCES_DIR": str(ACME_DIR),
        "CONCIERGE_DEFAULT_TENANT": "acme",
    }
    yield from _started("edge", env, state_dir)


@pytest.fixture(scope="session")
async def acme_synced(retrieval_service: ServiceProcess) -> SyncResult:
    """The Acme help center ingested through the retrieval service, as `concierge up` does it."""
    resources = load_paths([ACME_DIR])
    channel = create_channel(retrieval_service.address)
    try:
        (kb,) = resources.knowledge_bases
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        return await sync_knowledge_base(stub, kb, resources.path_of(kb).parent)
    finally:
        await channel.close()


@pytest.fixture
async def memory(memory_service: ServiceProcess) -> AsyncIterator[Any]:
    """A client of the session's memory service."""
    async with create_channel(memory_service.address) as channel:
        yield memory_pb2_grpc.MemoryServiceStub(channel)


def serve_agent(
    folder: Path, documents: list[dict[str, Any]], env: dict[str, str], log_dir: Path
) -> Iterator[ServiceProcess]:
    """An agent process serving `documents` (resource YAML written to `folder`), stopped afterwards."""
    (folder / "resources.yaml").write_text("\n---\n".join(json.dumps(d) for d in documents))
    service = start_service("agent", env={"CONCIERGE_RESOURCES_DIR": str(folder), **env}, log_dir=log_dir)
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()
