"""Entry point of the `concierge` command: up, serve, validate, crds, kb, eval."""

from __future__ import annotations

import importlib
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console

from concierge.api.loader import ResourceError, load_paths
from concierge.cli import customers, evaluate, kb
from concierge.cli.resources import EXIT_INVALID, load_or_exit

app = typer.Typer(
    name="concierge",
    help="Concierge: customer-support AI agents declared as Kubernetes resources.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(kb.app, name="kb")
app.add_typer(evaluate.app, name="eval")
app.add_typer(customers.app, name="customer")
console = Console()
err_console = Console(stderr=True)

ROOT = Path(__file__).resolve().parents[3]
CRDS_DIR = ROOT / "crds"
CHART_CRDS_DIR = ROOT / "charts" / "concierge-crds" / "templates"


class ServiceName(StrEnum):
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


@app.command()
def up(
    files: list[Path] = typer.Option(..., "-f", "--file", help="Resource YAML files or folders (repeatable)."),
    port: int = typer.Option(8080, min=1, max=65535, help="Port of the web UI and API."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    state_dir: Path = typer.Option(
        Path(".concierge"), envvar="CONCIERGE_STATE_DIR", help="Where the embedded database and logs live."
    ),
) -> None:
    """Run every service on this machine with the resources in FILES, until Ctrl-C."""
    from concierge.local.up import up as run_up

    resources = load_or_exit(files, err_console, nothing_done="nothing was started")
    counts = {
        kind: len(items)
        for kind, items in (
            ("KnowledgeBase", resources.knowledge_bases),
            ("SupportAgent", resources.agents),
            ("EscalationPolicy", resources.policies),
        )
    }
    console.print(
        "[green]✓[/] valid: "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + f" in namespace(s) {', '.join(resources.namespaces)}"
    )
    raise typer.Exit(run_up(resources, state_dir.resolve(), host, port, console))


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="Resource YAML files or folders.")) -> None:
    """Check resource YAML without starting anything (exit 2 when invalid)."""
    try:
        resources = load_paths(files)
    except ResourceError as err:
        for problem in err.problems:
            err_console.print(f"✗ {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INVALID) from None
    for item in resources.items:
        console.print(f"✓ {item.path}: {item.resource.KIND} {item.resource.key}", highlight=False)


@app.command()
def crds(
    out: Path = typer.Option(CRDS_DIR, "--out", "-o", help="Folder to write the CRD YAML into."),
    chart_out: Path = typer.Option(
        CHART_CRDS_DIR, "--chart-out", help="Templates folder of the concierge-crds chart (its copies)."
    ),
    check: bool = typer.Option(
        False, help="Only check that the files in --out and --chart-out are current (exit 1 if not)."
    ),
) -> None:
    """Write the CustomResourceDefinitions generated from the resource models, and the chart's copies."""
    from concierge.api.crds import all_crds, render, render_for_chart

    files: dict[Path, str] = {}
    for name, definition in all_crds().items():
        files[out / name] = render(definition)
        files[chart_out / name] = render_for_chart(definition)
    stale = []
    for path, text in files.items():
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        console.print(f"wrote {path}", highlight=False)
    if stale:
        err_console.print(f"✗ out of date: {', '.join(stale)}; run `concierge crds`")
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
