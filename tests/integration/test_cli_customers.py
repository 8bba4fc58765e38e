"""`concierge customer export | erase` against the real memory service."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from concierge.cli.main import app
from concierge.common.grpcio import create_channel
from concierge.local.processes import ServiceProcess
from concierge.v1 import memory_pb2, memory_pb2_grpc

TENANT, CUSTOMER = "cli-privacy", "cust-erase-me"


async def seed(address: str) -> str:
    async with create_channel(address) as channel:
        memory = memory_pb2_grpc.MemoryServiceStub(channel)
        session = (
            await memory.CreateSession(
                memory_pb2.CreateSessionRequest(tenant=TENANT, agent="helper", customer_id=CUSTOMER)
            )
        ).session
        await memory.AppendMessage(
            memory_pb2.AppendMessageRequest(
                tenant=TENANT,
                session_id=session.id,
                role=memory_pb2.ROLE_USER,
                text="My name is Ada.",
                client_message_id="m1",
            )
        )
        await memory.RememberFact(
            memory_pb2.RememberFactRequest(
                tenant=TENANT, customer_id=CUSTOMER, agent="helper", session_id=session.id, text="is called Ada"
            )
        )
        return str(session.id)


def test_export_then_erase_leaves_nothing_about_the_customer(memory_service: ServiceProcess, tmp_path: Path) -> None:
    session_id = asyncio.run(seed(memory_service.address))
    runner = CliRunner()
    out = tmp_path / "export.json"
    exported = runner.invoke(
        app,
        [
            "customer",
            "export",
            "-n",
            TENANT,
            "--customer",
            CUSTOMER,
            "--memory",
            memory_service.address,
            "-o",
            str(out),
        ],
    )
    assert exported.exit_code == 0, exported.output
    assert "1 sessions, 1 messages, 1 facts" in " ".join(exported.output.split())  # Rich wraps lines
    data = json.loads(out.read_text())
    assert session_id in json.dumps(data)
    assert "My name is Ada." in json.dumps(data)

    erased = runner.invoke(
        app, ["customer", "erase", "-n", TENANT, "--customer", CUSTOMER, "--memory", memory_service.address, "--yes"]
    )
    assert erased.exit_code == 0, erased.output
    assert "erased 1 sessions, 1 messages" in " ".join(erased.output.split())
    again = runner.invoke(
        app, ["customer", "export", "-n", TENANT, "--customer", CUSTOMER, "--memory", memory_service.address]
    )
    assert again.exit_code == 0, again.output
    assert "My name is Ada." not in again.output
    assert "is called Ada" not in again.output


def test_without_a_memory_service_the_command_says_how_to_name_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["customer", "erase", "-n", TENANT, "--customer", CUSTOMER, "--yes"],
        env={"CONCIERGE_STATE_DIR": str(tmp_path)},
    )
    assert result.exit_code == 2
    assert "--memory" in result.output
