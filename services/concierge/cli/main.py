"""Entry point of the `concierge` command: up, serve, crds, kb."""

from __future__ import annotations

import importlib
from enum import Enum

import typer

app = typer.Typer(
    name="concierge",
    help="Concierge: customer-support AI agents declared as Kubernetes resources.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class ServiceName(str, Enum):
    embedding = "embedding"
    retrieval = "retrieval"
    memory = "memory"
    agent = "agent"
    edge = "edge"


@app.command()
def serve(
    name: ServiceName = typer.Argument(help="Which service to run."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(..., min=1, max=65535, help="Port to listen on."),
) -> None:
    """Run one service in the foreground (configuration from CONCIERGE_* variables)."""
    module = importlib.import_module(f"concierge.{name.value}.server")
    module.run(host=host, port=port)


if __name__ == "__main__":
    app()
