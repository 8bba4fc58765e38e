"""`concierge eval retrieval | answers`: measure search and answer quality on a question set."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import grpc
import typer
from rich.console import Console
from rich.table import Table

from concierge.api.loader import ResourceError, ResourceSet, load_paths
from concierge.api.resources import KnowledgeBase, SupportAgent
from concierge.api.sync import sync_knowledge_base
from concierge.cli.resources import EXIT_INVALID, load_or_exit
from concierge.common.grpcio import create_channel
from concierge.evaluation import answers as answer_eval
from concierge.evaluation import retrieval as evaluation
from concierge.evaluation.questions import Question, QuestionFileError, load_questions
from concierge.local.processes import ServiceFailed
from concierge.local.session import Services, local_services, retrieval_address
from concierge.v1 import agent_pb2_grpc, memory_pb2_grpc, retrieval_pb2, retrieval_pb2_grpc

app = typer.Typer(help="Measure retrieval and answer quality on a question set.", no_args_is_help=True)
console = Console(stderr=True)

QUESTIONS = typer.Option(
    ...,
    "--questions",
    help="JSON Lines of {id, q, pages, kind} (or {question, expected, answer_contains} as in examples/acme).",
)
INCLUDE = typer.Option(
    [], "--include", help="Glob of corpus files to index (repeatable); default: every supported format."
)
AS_JSON = typer.Option(False, "--json", help="Print the report as JSON on stdout.")
STATE_DIR = typer.Option(
    Path(".concierge"), envvar="CONCIERGE_STATE_DIR", help="State dir of the embedded database (as for `up`)."
)


class KnowledgeBaseMissing(Exception):
    """--kb names a knowledge base with no documents in the database used."""


class WarmUpFailed(Exception):
    """The first (untimed) question failed: the agent cannot answer at all, e.g. a provider without its key."""


def questions_or_exit(path: Path) -> list[Question]:
    try:
        return load_questions(path)
    except QuestionFileError as err:
        console.print(f"[red]✗ {err}[/]", soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_INVALID) from None


async def sync_corpus(stub: retrieval_pb2_grpc.RetrievalServiceAsyncStub, kb: KnowledgeBase, corpus: Path) -> None:
    """Index the corpus folder as `kb` (incrementally: an unchanged corpus re-embeds nothing)."""
    with console.status(f"Syncing {corpus} …") as status:

        def show(p: retrieval_pb2.SyncKnowledgeBaseResponse) -> None:
            status.update(f"Syncing {corpus}: {p.documents_done}/{p.documents_total}")

        result = await sync_knowledge_base(stub, kb, corpus, show)
    console.print(
        f"[green]✓[/] corpus: {result.documents} documents, {result.chunks_total} chunks "
        f"({result.changed} re-embedded, {len(result.errors)} errors)"
    )


@app.command()
def retrieval(
    questions_file: Path = QUESTIONS,
    corpus: Path = typer.Option(..., "--corpus", help="Folder of documents; `pages` are paths relative to it."),
    modes: list[str] = typer.Option(["hybrid"], "--mode", help="vector, text, hybrid or all (repeatable)."),
    include: list[str] = INCLUDE,
    min_score: float = typer.Option(
        0.3, min=0.0, max=1.0, help="Cosine below which a hit does not count; no hit left means abstain."
    ),
    as_json: bool = AS_JSON,
    state_dir: Path = STATE_DIR,
) -> None:
    """Index CORPUS (incrementally) and report recall@5, MRR@10, abstention and latency per mode."""
    chosen = list(evaluation.MODES) if "all" in modes else modes
    if unknown := [m for m in chosen if m not in evaluation.MODES]:
        raise typer.BadParameter(f"unknown mode {unknown[0]!r}; use vector, text, hybrid or all", param_hint="--mode")
    if not corpus.is_dir():
        raise typer.BadParameter(f"{corpus} is not a folder", param_hint="--corpus")
    questions = questions_or_exit(questions_file)
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
        await sync_corpus(stub, kb, corpus)
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


# --- answers --------------------------------------------------------------------------------


@app.command()
def answers(
    questions_file: Path = QUESTIONS,
    corpus: Path | None = typer.Option(
        None, "--corpus", help="Folder of documents to index and ask about, as for `eval retrieval`."
    ),
    include: list[str] = INCLUDE,
    kb_name: str | None = typer.Option(
        None, "--kb", help="A knowledge base synced before (e.g. by `kb sync` or `up`) to ask about instead."
    ),
    namespace: str = typer.Option("default", "--namespace", "-n", help="Namespace (tenant) of --kb."),
    agent_file: Path | None = typer.Option(
        None,
        "--agent-file",
        help="SupportAgent YAML (a file, or a folder with its EscalationPolicy) to evaluate instead of an offline "
        "extractive agent; it is moved into the knowledge base's namespace and searches only that knowledge base.",
    ),
    as_json: bool = AS_JSON,
    state_dir: Path = STATE_DIR,
) -> None:
    """Ask every question in a new session; report cited documents, abstention and time to first token."""
    if (corpus is None) == (kb_name is None):
        raise typer.BadParameter("give either --corpus DIR or --kb NAME (with -n NAMESPACE)", param_hint="--corpus")
    if corpus is not None and not corpus.is_dir():
        raise typer.BadParameter(f"{corpus} is not a folder", param_hint="--corpus")
    if include and corpus is None:
        raise typer.BadParameter("--include selects files of --corpus; a --kb is evaluated as synced")
    questions = questions_or_exit(questions_file)
    given = load_or_exit([agent_file], console, nothing_done="nothing was evaluated") if agent_file else None
    if corpus is not None:
        kb = evaluation.corpus_knowledge_base(corpus, include or None)
    else:
        assert kb_name is not None
        kb = answer_eval.existing_knowledge_base(namespace, kb_name)
    try:
        chosen = answer_eval.evaluated_agent(kb, given)
    except answer_eval.AgentChoiceError as err:
        console.print(f"[red]✗ {agent_file}: {err}[/]", soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    state = state_dir.resolve()
    with (
        local_services(state, console, ("embedding", "retrieval", "memory")) as services,
        tempfile.TemporaryDirectory(prefix="concierge-eval-agent-") as resources_dir,
    ):
        try:
            asyncio.run(_prepare_knowledge_base(services.addresses["retrieval"], kb, corpus, questions[0]))
            reuse = corpus is None and given is None
            agent, address = _agent_service(services, state, chosen, Path(resources_dir), reuse=reuse)
            report = asyncio.run(_ask_all(address, services.addresses["memory"], agent, kb, questions))
        except KnowledgeBaseMissing as err:
            console.print(f"[red]✗ {err}[/]", soft_wrap=True, highlight=False)
            raise typer.Exit(EXIT_INVALID) from None
        except (ServiceFailed, WarmUpFailed) as err:
            console.print(f"[red]✗ {err}[/]")
            raise typer.Exit(1) from None
        except grpc.aio.AioRpcError as err:
            console.print(f"[red]✗ {err.code().name}: {err.details()}[/]  (service logs: {services.log_dir})")
            raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        print_answers(Console(width=max(Console().width, 120)), report)
    if report.overall.errors:
        console.print(f"[red]✗ {report.overall.errors} question(s) ended in an error (see `error` in --json)[/]")
        raise typer.Exit(1)


async def _prepare_knowledge_base(address: str, kb: KnowledgeBase, corpus: Path | None, probe: Question) -> None:
    """Sync the corpus, or make sure the named knowledge base has documents to answer from."""
    channel = create_channel(address)
    try:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        if corpus is not None:
            await sync_corpus(stub, kb, corpus)
            return
        request = retrieval_pb2.SearchRequest(
            tenant=kb.namespace, knowledge_bases=[kb.name], query=probe.q, top_k=1, min_score=0.0
        )
        if not (await stub.Search(request, timeout=30, wait_for_ready=True)).hits:
            raise KnowledgeBaseMissing(
                f"knowledge base {kb.key} has no documents in this database; sync it first "
                f"(`concierge kb sync -f <its YAML>` with the same --state-dir), or check -n and --kb"
            )
    finally:
        await channel.close()


def _agent_service(
    services: Services, state_dir: Path, chosen: answer_eval.EvaluatedAgent, resources_dir: Path, *, reuse: bool
) -> tuple[SupportAgent, str]:
    """The agent to ask and its address: the running `up`'s when it serves the knowledge base, else one
    started here with the chosen agent's resources (as `up` starts it)."""
    kb = chosen.knowledge_base
    if reuse and "agent" in services.up:
        try:
            running = load_paths([state_dir / "resources"])
        except ResourceError:
            running = ResourceSet()
        if agent := answer_eval.serving_agent(running, kb.namespace, kb.name):
            console.print(f"[dim]asking {agent.key} of the running `concierge up` ({services.up['agent']})[/]")
            return agent, services.up["agent"]
        # `up` serves the knowledge base with an agent that hands off to a webhook: evaluate that
        # agent in a process of our own, with inbox hand-offs.
        chosen = answer_eval.agent_of(running, kb) or chosen
    for note in chosen.notes:
        console.print(f"[yellow]![/] {note}")
    env = {
        "CONCIERGE_RETRIEVAL_ADDRESS": services.addresses["retrieval"],
        "CONCIERGE_MEMORY_ADDRESS": services.addresses["memory"],
        "CONCIERGE_EMBEDDING_ADDRESS": services.addresses["embedding"],
        "CONCIERGE_RESOURCES_DIR": str(chosen.write(resources_dir)),
    }
    agent = chosen.agent
    with console.status(f"Starting the agent service for {agent.key} ({agent.spec.model.provider})…"):
        service = services.start("agent", env)
    console.print(f"[green]✓[/] agent {agent.key} ({agent.spec.model.provider}) at {service.address}")
    return agent, service.address


async def _ask_all(
    agent_address: str, memory_address: str, agent: SupportAgent, kb: KnowledgeBase, questions: list[Question]
) -> answer_eval.Report:
    agent_channel, memory_channel = create_channel(agent_address), create_channel(memory_address)
    asker = answer_eval.Asker(
        agent_pb2_grpc.AgentServiceStub(agent_channel), memory_pb2_grpc.MemoryServiceStub(memory_channel), agent
    )
    try:
        # One untimed question first: times are reported for a warm agent (connections, caches, models loaded).
        warm = await asker.ask(questions[0])
        if warm.error:
            raise WarmUpFailed(f"the agent failed the warm-up question: {warm.error}")
        outcomes = []
        with console.status("Asking…") as status:
            for number, question in enumerate(questions, start=1):
                status.update(f"Asking {number}/{len(questions)}: {question.q[:60]}")
                outcomes.append(await asker.ask(question))
        return answer_eval.report(agent, kb.key, outcomes)
    finally:
        erased = await asker.erase()
        console.print(f"[dim]erased the evaluation's {erased} sessions[/]")
        await agent_channel.close()
        await memory_channel.close()


def print_answers(out: Console, report: answer_eval.Report) -> None:
    table = Table(title=f"Answers of {report.agent} ({report.provider}) from {report.knowledge_base}")
    answerable = ["group", "answerable", "cites expected", "holds text", "wrongly abstained"]
    columns = [*answerable, "unanswerable", "abstained or escalated", "escalated"]
    for column in columns:
        table.add_column(column, justify="left" if column == "group" else "right", no_wrap=column == "group")
    for name, f in [("all", report.overall), *report.by_kind.items()]:
        answered, unanswered = f.answerable > 0, f.unanswerable > 0
        table.add_row(
            name,
            str(f.answerable) if answered else "",
            f"{f.cites_expected:.3f}" if answered else "",
            f"{f.holds_expected_text:.3f} (n={f.with_expected_text})" if f.with_expected_text else "",
            f"{f.wrongly_abstained:.3f}" if answered else "",
            str(f.unanswerable) if unanswered else "",
            f"{f.abstained:.3f}" if unanswered else "",
            f"{f.escalated:.3f}" if unanswered else "",
        )
    out.print(table)
    out.print(
        f"time to first token p50 {report.first_token_ms_p50:.0f} ms, p95 {report.first_token_ms_p95:.0f} ms; "
        f"full answer p50 {report.answer_ms_p50:.0f} ms, p95 {report.answer_ms_p95:.0f} ms "
        f"({report.questions} questions, one at a time, after one warm-up question)"
    )
    misses = [a for a in report.answers if _missed(a)]
    if not misses:
        return
    table = Table(title=f"Misses ({len(misses)}; every answer with --json)")
    for column in ("id", "expected", "cited", "answer"):
        table.add_column(column, overflow="fold")
    for a in misses:
        answer = " ".join(str(a["answer"]).split())
        if a["error"]:
            answer = f"error {a['error']}"
        elif a["escalated"]:
            answer = "(escalated)"
        elif a["abstained"]:
            answer = "(abstained)"
        cited = "\n".join(dict.fromkeys(c["source_uri"] for c in a["citations"]))
        table.add_row(
            a["id"], "\n".join(a["expected"]) or "(none)", cited, answer[:100] + ("…" if len(answer) > 100 else "")
        )
    out.print(table)


def _missed(answer: dict[str, object]) -> bool:
    if answer["error"]:
        return True
    if answer["expected"]:
        return not answer["cites_expected"] or bool(answer["abstained"])
    return not answer["abstained"]
