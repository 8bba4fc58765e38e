"""`concierge kb sync | search`: knowledge bases from the command line, same RPCs as the operator."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path

import grpc
import typer
from rich.console import Console
from rich.table import Table

from concierge.cli.resources import EXIT_INVALID, load_or_exit
from concierge.common.grpcio import create_channel
from concierge.local.session import retrieval_address
from concierge.local.up import sync_all
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

app = typer.Typer(help="Sync and search knowledge bases.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

STATE_DIR = typer.Option(
    Path(".concierge"), envvar="CONCIERGE_STATE_DIR", help="State dir of the embedded database (as for `up`)."
)


class Mode(StrEnum):
    hybrid = "hybrid"
    vector = "vector"
    text = "text"


MODES = {
    Mode.hybrid: retrieval_pb2.SEARCH_MODE_HYBRID,
    Mode.vector: retrieval_pb2.SEARCH_MODE_VECTOR,
    Mode.text: retrieval_pb2.SEARCH_MODE_TEXT,
}


@app.command()
def sync(
    files: list[Path] = typer.Option(..., "-f", "--file", help="KnowledgeBase YAML files or folders (repeatable)."),
    state_dir: Path = STATE_DIR,
) -> None:
    """Bring the stored knowledge bases in FILES in line with their sources (incremental)."""
    resources = load_or_exit(files, err_console, nothing_done="nothing was synced")
    if not resources.knowledge_bases:
        err_console.print("[red]✗ no KnowledgeBase in the given files[/]")
        raise typer.Exit(EXIT_INVALID)
    with retrieval_address(state_dir.resolve(), console) as address:
        try:
            results = asyncio.run(sync_all(resources.knowledge_bases, resources, address, console))
        except grpc.aio.AioRpcError as err:
            err_console.print(f"[red]✗ {err.code().name}: {err.details()}[/]")
            raise typer.Exit(1) from None
    failed = False
    for result in results:
        console.print(
            f"{result.knowledge_base}: {result.documents} documents, {result.changed} re-embedded, "
            f"{result.deleted} deleted, {result.chunks_total} chunks, {len(result.errors)} errors",
            highlight=False,
        )
        for source, reason in result.errors:
            failed = True
            console.print(f"  [yellow]![/] {source}: {reason}", highlight=False)
    raise typer.Exit(1 if failed else 0)


def parse_filters(values: list[str]) -> dict[str, str]:
    filters = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE (e.g. --filter format=pdf)", param_hint="--filter")
        filters[key.strip()] = wanted
    return filters


@app.command()
def search(
    question: str = typer.Argument(..., help="What to look for, as a customer would ask it."),
    kb: list[str] = typer.Option(..., "--kb", help="Knowledge base name (repeatable)."),
    tenant: str = typer.Option("default", "--namespace", "-n", help="Namespace (tenant) of the knowledge bases."),
    top_k: int = typer.Option(5, "--top-k", min=1, max=50, help="How many passages to return."),
    mode: Mode = typer.Option(Mode.hybrid, help="Which index to search."),
    min_score: float = typer.Option(0.0, min=0.0, max=1.0, help="Drop passages below this cosine similarity."),
    filters: list[str] = typer.Option([], "--filter", help="KEY=VALUE metadata filter (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
    state_dir: Path = STATE_DIR,
) -> None:
    """Search knowledge bases and show the passages with their citations and scores."""
    request = retrieval_pb2.SearchRequest(
        tenant=tenant,
        knowledge_bases=kb,
        query=question,
        top_k=top_k,
        mode=MODES[mode],
        min_score=min_score,
        filters=parse_filters(filters),
    )
    with retrieval_address(state_dir.resolve(), err_console) as address:
        try:
            reply = asyncio.run(_search(address, request))
        except grpc.aio.AioRpcError as err:
            err_console.print(f"[red]✗ {err.code().name}: {err.details()}[/]")
            raise typer.Exit(EXIT_INVALID if err.code() == grpc.StatusCode.INVALID_ARGUMENT else 1) from None
    if as_json:
        hits = [
            {
                "title": h.document_title,
                "uri": h.source_uri,
                "anchor": h.anchor,
                "page": h.page,
                "section": h.section,
                "score": round(h.score, 5),
                "vector_score": round(h.vector_score, 4),
                "vector_rank": h.vector_rank,
                "text_rank": h.text_rank,
                "text": h.text,
            }
            for h in reply.hits
        ]
        print(json.dumps({"best_vector_score": round(reply.best_vector_score, 4), "hits": hits}, indent=2))
        return
    if not reply.hits:
        console.print(f"No passage above min score {min_score} (best cosine {reply.best_vector_score:.3f}).")
        return
    table = Table(show_lines=True)
    for column in ("#", "source", "cosine", "ranks v/t", "passage"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(reply.hits, start=1):
        where = hit.source_uri + (f"#{hit.anchor}" if hit.anchor else "") + (f" p.{hit.page}" if hit.page else "")
        table.add_row(
            str(rank),
            f"[bold]{hit.document_title}[/]\n{hit.section}\n[dim]{where}[/]",
            f"{hit.vector_score:.3f}",
            f"{hit.vector_rank or '-'}/{hit.text_rank or '-'}",
            hit.text[:400] + ("…" if len(hit.text) > 400 else ""),
        )
    console.print(table)


async def _search(address: str, request: retrieval_pb2.SearchRequest) -> retrieval_pb2.SearchResponse:
    channel = create_channel(address)
    try:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        return await stub.Search(request, timeout=30, wait_for_ready=True)
    finally:
        await channel.close()
