"""`concierge customer export | erase`: a customer's right of access and right to erasure.

Talks to the memory service of a running `concierge up` (or the one `--memory` names, e.g. a
port-forwarded tenant memory service in a cluster).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import typer
from rich.console import Console

from concierge.common.grpcio import create_channel
from concierge.local.up import running_stack
from concierge.v1 import memory_pb2, memory_pb2_grpc

app = typer.Typer(help="Export or erase everything stored about one customer.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

TENANT = typer.Option(..., "-n", "--namespace", help="The tenant (namespace) the customer belongs to.")
CUSTOMER = typer.Option(..., "--customer", help="The customerId sessions were created with.")
MEMORY = typer.Option(None, "--memory", help="host:port of the memory service (default: the running `up`).")
STATE_DIR = typer.Option(Path(".concierge"), envvar="CONCIERGE_STATE_DIR", help="State dir of a running `up`.")


def memory_address(explicit: str | None, state_dir: Path) -> str:
    if explicit:
        return explicit
    stack = running_stack(state_dir.resolve())
    if stack is None or "memory" not in stack:
        err_console.print(
            f"[red]✗ no running `concierge up` owns {state_dir}; start it, or name a memory service with --memory[/]"
        )
        raise typer.Exit(2)
    return stack["memory"]


async def _call(address: str, method: str, request: object) -> object:
    async with create_channel(address) as channel:
        stub = memory_pb2_grpc.MemoryServiceStub(channel)
        return await getattr(stub, method)(request, timeout=120)


def run(address: str, method: str, request: object) -> object:
    try:
        return asyncio.run(_call(address, method, request))
    except grpc.aio.AioRpcError as err:
        err_console.print(f"[red]✗ {err.code().name}: {err.details()}[/]")
        raise typer.Exit(1) from None


@app.command()
def export(
    namespace: str = TENANT,
    customer: str = CUSTOMER,
    out: Path = typer.Option(None, "-o", "--out", help="Write the JSON here (default: stdout)."),
    memory: str | None = MEMORY,
    state_dir: Path = STATE_DIR,
) -> None:
    """Everything stored about the customer: sessions, messages, attachments, facts, hand-offs (JSON)."""
    reply = run(
        memory_address(memory, state_dir),
        "ExportCustomer",
        memory_pb2.ExportCustomerRequest(tenant=namespace, customer_id=customer),
    )
    assert isinstance(reply, memory_pb2.ExportCustomerResponse)
    text = json.dumps(json.loads(reply.export_json), indent=2, ensure_ascii=False)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"[green]✓[/] {out}: {reply.sessions} sessions, {reply.messages} messages, {reply.facts} facts")


@app.command()
def erase(
    namespace: str = TENANT,
    customer: str = CUSTOMER,
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    memory: str | None = MEMORY,
    state_dir: Path = STATE_DIR,
) -> None:
    """Delete every session, message, attachment, fact and hand-off of the customer; it cannot be undone."""
    address = memory_address(memory, state_dir)
    if not yes and not typer.confirm(f"Erase everything about customer {customer!r} in {namespace!r}?"):
        raise typer.Exit(1)
    reply = run(address, "EraseCustomer", memory_pb2.EraseCustomerRequest(tenant=namespace, customer_id=customer))
    assert isinstance(reply, memory_pb2.EraseCustomerResponse)
    console.print(
        f"[green]✓[/] erased {reply.sessions} sessions, {reply.messages} messages, {reply.attachments} attachments, "
        f"{reply.facts} facts and {reply.handoffs} hand-offs of {customer!r} in {namespace!r}"
    )
