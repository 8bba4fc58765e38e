"""`concierge customer export | erase` against the real memory service, run as the real command.

The command runs in its own process: it drives gRPC from its own event loop, which must not share
this test process with the session's loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from concierge.local.processes import ServiceProcess
from concierge.v1 import memory_pb2

TENANT, CUSTOMER = "cli-privacy", "cust-erase-me"


def concierge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "concierge", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


async def seed(memory: Any) -> str:
    session = (
        await memory.CreateSession(memory_pb2.CreateSessionRequest(tenant=TENANT, agent="helper", customer_id=CUSTOMER))
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


async def test_export_then_erase_leaves_nothing_about_the_customer(
    memory: Any, memory_service: ServiceProcess, tmp_path: Path
) -> None:
    session_id = await seed(memory)
    out = tmp_path / "export.json"
    address = ["-n", TENANT, "--customer", CUSTOMER, "--memory", memory_service.address]
    exported = concierge("customer", "export", *address, "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "1 sessions, 1 messages, 1 facts" in " ".join(exported.stdout.split())  # Rich wraps lines
    data = json.loads(out.read_text())
    assert session_id in json.dumps(data)
    assert "My name is Ada." in json.dumps(data)

    erased = concierge("customer", "erase", *address, "--yes")
    assert erased.returncode == 0, erased.stderr
    assert "erased 1 sessions, 1 messages" in " ".join(erased.stdout.split())
    again = concierge("customer", "export", *address)
    assert again.returncode == 0, again.stderr
    assert "My name is Ada." not in again.stdout
    assert "is called Ada" not in again.stdout


def test_without_a_memory_service_the_command_says_how_to_name_one(tmp_path: Path) -> None:
    result = concierge(
        "customer", "erase", "-n", TENANT, "--customer", CUSTOMER, "--yes", env={"CONCIERGE_STATE_DIR": str(tmp_path)}
    )
    assert result.returncode == 2
    assert "--memory" in result.stderr
