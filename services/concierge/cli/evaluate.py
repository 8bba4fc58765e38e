"""`concierge eval retrieval`: measure search quality on a question set over a corpus folder."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import typer
from rich.console import Console
from rich.table import Table

from concierge.api.resources import KnowledgeBase
from concierge.api.sync import sync_knowledge_base
from concierge.common.grpcio import create_channel
from concierge.evaluation import retrieval as evaluation
from concierge.evaluation.questions import Question, QuestionFileError, load_questions
from concierge.local.session import retrieval_address
from concierge.v1 import retrieval_pb2, retrieval_pb2_grpc

app = typer.Typer(help="Measure retrieval and answer quality on a question set.", no_args_is_help=True)
console = Console(stderr=True)

EXIT_INVALID = 2


@app.command()
def retrieval(
    questions_file: Path = typer.Option(..., "--questions", help="JSON Lines of {id, q, pages, kind}."),
    corpus: Path = typer.Option(..., "--corpus", help="Folder of documents; `pages` are paths relative to it."),
    modes: list[str] = typer.Option(["hybrid"], "--mode", help="vector, text, hybrid or all (repeatable)."),
    include: list[str] = typer.Option(
        [], "--include", help="Glob of corpus files to index (repeatable); default: every supported format."
    ),
    min_score: float = typer.Option(
        0.3, min=0.0, max=1.0, help="Cosine below which a hit does not count; no hit left means abstain."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    state_dir: Path = typer.Option(
        Path(".concierge"), envvar="CONCIERGE_STATE_DIR", help="State dir of the embedded database (as for `up`)."
    ),
) -> None:
    """Index CORPUS (incrementally) and report recall@5, MRR@10, abstention and latency per mode."""
    chosen = list(evaluation.MODES) if "all" in modes else modes
    if unknown := [m for m in chosen if m not in evaluation.MODES]:
        raise typer.BadParameter(f"unknown mode {unknown[0]!r}; use vector, text, hybrid or all", param_hint="--mode")
    if not corpus.is_dir():
        raise typer.BadParameter(f"{corpus} is not a folder", param_hint="--corpus")
    try:
        questions = load_questions(questions_file)
    except QuestionFileError as err:
        console.print(f"[red]✗ {err}[/]", soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    kb = evaluation.corpus_knowledge_base(corpus, include or None)
    with retrieval_address(state_dir.resolve(), console) as address:
        try:
            reports = asyncio.run(_evaluate(address, kb, corpus, questions, chosen, min_score))
        except grpc.aio.AioRpcError as err:
            console.print(f"[red]✗ {err.code().name}: {err.details()}[/]")
            raise typer.Exit(1) from None
    if as_json:
        print(json.dumps([r.as_dict() for r in reports], indent=2))
    else:
        print_reports(Console(width=max(Console().width, 110)), reports)


async def _evaluate(
    address: str,
    kb: KnowledgeBase,
    corpus: Path,
    questions: list[Question],
    modes: list[str],
    min_score: float,
) -> list[evaluation.Report]:
    channel = create_channel(address)
    try:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        with console.status(f"Syncing {corpus} …") as status:

            def show(p: retrieval_pb2.SyncKnowledgeBaseResponse) -> None:
                status.update(f"Syncing {corpus}: {p.documents_done}/{p.documents_total}")

            result = await sync_knowledge_base(stub, kb, corpus, show)
        console.print(
            f"[green]✓[/] corpus: {result.documents} documents, {result.chunks_total} chunks "
            f"({result.changed} re-embedded, {len(result.errors)} errors)"
        )
        # One untimed pass first: latency is reported for a warm service (caches, dictionaries loaded).
        await evaluation.run(stub, kb, questions, mode="hybrid", min_score=min_score)
        reports = []
        for mode in modes:
            outcomes = await evaluation.run(stub, kb, questions, mode=mode, min_score=min_score)
            reports.append(evaluation.report(mode, min_score, outcomes))
        return reports
    finally:
        await channel.close()


def print_reports(out: Console, reports: list[evaluation.Report]) -> None:
    table = Table(title="Retrieval quality (document level)")
    for column in ("mode", "group", "n", "recall@5", "MRR@10", "wrongly abstained", "abstain (unanswerable)"):
        table.add_column(column, justify="right" if column != "mode" else "left")
    for report in reports:
        groups = [("all", report.overall), *report.by_kind.items()]
        for name, figures in groups:
            answered = figures.answerable > 0
            table.add_row(
                report.mode,
                name,
                str(figures.answerable or figures.unanswerable),
                f"{figures.recall_at_5:.3f}" if answered else "",
                f"{figures.mrr_at_10:.3f}" if answered else "",
                f"{figures.wrongly_abstained:.3f}" if answered else "",
                f"{figures.abstain_rate:.3f} (n={figures.unanswerable})" if figures.unanswerable else "",
            )
        table.add_section()
    out.print(table)
    for report in reports:
        out.print(f"{report.mode}: latency p50 {report.latency_ms_p50:.1f} ms, p95 {report.latency_ms_p95:.1f} ms")
