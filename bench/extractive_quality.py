"""Answer quality and time to first token of the offline `extractive` model, lexical vs semantic scoring.

Usage: python bench/extractive_quality.py [--rounds 2] [--only lexical|semantic] [--show-failures]
                                          [--services-path DIR]
Starts its own embedded Postgres, embedding, retrieval and memory services and two agents (one
without CONCIERGE_EMBEDDING_ADDRESS: lexical scoring; one with it: semantic scoring) on loopback,
syncs examples/acme, then asks every question of examples/acme/questions.jsonl and of the
paraphrase set below through the agent's gRPC Chat. Prints figures; asserts nothing. Takes about
a minute; nothing is left behind (temporary data directory).

An answerable question passes when the answer contains its `answer_contains` phrase and cites its
expected document ("pass"); "lead" also asks that the answer's first quoted passage comes from that
document. An unanswerable question passes when the agent abstains. Latency: `first_token_ms` as the
agent reports it (from the start of the turn: history, search, scoring, first delta) and the agent's
`sentence scoring` log lines (the Embed calls alone). Other load on the machine moves these figures.

To measure another version (e.g. before a change): `git archive HEAD | tar -x -C /tmp/before` and pass
`--services-path /tmp/before/services`; the services then run that tree's code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from concierge.agent.extractive import ABSTAIN_TEXT
from concierge.api.loader import load_paths
from concierge.api.sync import sync_knowledge_base
from concierge.common.grpcio import create_channel
from concierge.db import migrate
from concierge.local.postgres import start_embedded_postgres
from concierge.local.processes import ServiceProcess, start_service
from concierge.v1 import agent_pb2, agent_pb2_grpc, memory_pb2, memory_pb2_grpc, retrieval_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
ACME_DIR = ROOT / "examples" / "acme"

# Customer-style phrasings of facts in examples/acme/docs, written before any result was seen:
# (question, expected document, phrase the answer must contain). An empty document: must abstain.
PARAPHRASES: list[tuple[str, str, str]] = [
    ("How long do I have to return my robot vacuum?", "docs/returns.md", "30 days"),
    ("what's the restocking fee if I opened the box", "docs/returns.md", "10%"),
    ("do you ship to Canada", "docs/shipping.html", "Canada"),
    ("How long will delivery take to the UK?", "docs/shipping.html", "2\u20134 business days"),
    ("Is there a charge to cancel Care+?", "docs/cancel-subscription.md", "no cancellation fee"),
    ("How much does the S1 cost?", "docs/pricing-and-plans.md", "$299"),
    ("how long is the warranty on the S1", "docs/warranty-terms.pdf", "1 year"),
    ("Can I wash the filter under the tap?", "docs/maintenance.md", "Do not wash the filter"),
    ("how many times can I claim accidental damage with Care+ in a year", "docs/care-plus-terms.docx", "up to 2"),
    ("How long is the password reset link good for?", "docs/account-management.md", "60 minutes"),
    ("what happens if I type my password wrong too many times", "docs/account-management.md", "30 minutes"),
    ("Does the robot have a camera?", "docs/privacy-and-data.md", "No Sweepy robot has a camera"),
    ("How long does the battery last before I need a new one?", "docs/battery-and-charging.md", "500 full charge"),
    ("how long does it take to charge the S2 Pro fully", "docs/battery-and-charging.md", "About 5 hours"),
    ("What's the email address for support?", "docs/contact-support.html", "support@acmehome.example"),
    ("is phone support available on weekends", "docs/contact-support.html", "Monday to Friday"),
    ("how often do I need to change the dust bag on the auto-empty dock", "docs/auto-empty-dock.md", "60 days"),
    ("Will my schedule still run if the battery is low?", "docs/scheduling.md", "20%"),
    ("what time does do not disturb start", "docs/scheduling.md", "22:00"),
    ("Can the robot go up the stairs by itself?", "docs/faq.md", "No robot in our range can climb stairs"),
    ("How do I factory reset my robot?", "docs/faq.md", "15 seconds"),
    ("Can I pay for Care+ with Klarna?", "docs/billing-and-payments.md", "not with Klarna"),
    ("When will I see my refund on my card?", "docs/returns.md", "3 to 10 business days"),
    ("How do I get a return label?", "docs/returns.md", "prepaid return label"),
    ("Can I return a gift card?", "docs/returns.md", "Gift cards"),
    ("Does my Sweepy work with WPA3?", "docs/wifi-requirements.md", "WPA2-Personal"),
    ("How much is a pack of filters?", "docs/spare-parts.html", "$14.99"),
    ("What's the cost of the yearly Care+ plan for one device?", "docs/pricing-and-plans.md", "$79"),
    ("How long until my data is deleted after I close my account?", "docs/privacy-and-data.md", "30 days"),
    ("How long do you keep my cleaning history?", "docs/privacy-and-data.md", "12 months"),
    ("Is it ok to use my robot outside on the patio?", "docs/faq.md", "indoor use only"),
    ("what do I do if my parcel never showed up", "docs/shipping.html", "14 days"),
    ("will the mop pad go in the washing machine", "docs/maintenance.md", "60 °C"),
    ("how many devices can I put on the Household plan", "docs/pricing-and-plans.md", "Up to 5"),
    ("Is there a military discount?", "", ""),
    ("Do you sell a window-cleaning robot?", "", ""),
    ("What's the name of your CEO?", "", ""),
    ("Can I trade in my old Roomba for store credit?", "", ""),
]


@dataclass(frozen=True)
class Case:
    question: str
    expected: tuple[str, ...]
    contains: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.expected)


@dataclass
class Result:
    case: Case
    text: str
    cited: list[str]
    first_token_ms: int
    passed: bool


def load_cases(path: Path) -> list[Case]:
    cases = []
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            cases.append(Case(row["question"], tuple(row["expected"]), tuple(row["answer_contains"])))
    return cases


def paraphrase_cases() -> list[Case]:
    return [Case(q, (doc,) if doc else (), (phrase,) if phrase else ()) for q, doc, phrase in PARAPHRASES]


def judge(case: Case, text: str, cited: list[str]) -> bool:
    if not case.answerable:
        return text == ABSTAIN_TEXT
    return all(p.lower() in text.lower() for p in case.contains) and any(d in cited for d in case.expected)


async def ask(agent: Any, memory: Any, case: Case) -> Result:
    session = await memory.CreateSession(memory_pb2.CreateSessionRequest(tenant="acme", agent="acme-support"))
    stored = await memory.AppendMessage(
        memory_pb2.AppendMessageRequest(
            tenant="acme",
            session_id=session.session.id,
            role=memory_pb2.ROLE_USER,
            text=case.question,
            client_message_id=str(uuid.uuid4()),
        ),
        timeout=10,
    )
    request = agent_pb2.ChatRequest(
        tenant="acme", agent="acme-support", session_id=session.session.id, user_message_id=stored.message.id
    )
    text, cited, first = "", [], 0
    async for event in agent.Chat(request, timeout=60):
        kind = event.WhichOneof("event")
        if kind == "text_delta":
            text += event.text_delta.text
        elif kind == "citation":
            cited.append(event.citation.source_uri)
        elif kind == "done":
            first = event.done.first_token_ms
        elif kind == "error":
            text = f"ERROR {event.error.code}: {event.error.message}"
    return Result(case, text, cited, first, judge(case, text, cited))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def leads(result: Result) -> bool:
    """Whether the answer's first quoted passage comes from the expected document."""
    return result.passed and bool(result.cited) and result.cited[0] in result.case.expected


def report(name: str, label: str, results: list[Result], show_failures: bool) -> None:
    answerable = [r for r in results if r.case.answerable]
    unanswerable = [r for r in results if not r.case.answerable]
    print(
        f"{name:<10} {label:<9} answerable pass {sum(r.passed for r in answerable):>2}/{len(answerable)}"
        f"  lead {sum(leads(r) for r in answerable):>2}/{len(answerable)}"
        f"  unanswerable abstained {sum(r.passed for r in unanswerable)}/{len(unanswerable)}"
    )
    if show_failures:
        for r in results:
            if not r.passed or (r.case.answerable and not leads(r)):
                answer = " ".join(r.text.split())[:220]
                tag = "FAIL" if not r.passed else "LEAD"
                print(f"    {tag} {r.case.question!r}\n         cited={list(dict.fromkeys(r.cited))} answer={answer!r}")


def embed_times(log_path: Path) -> list[float]:
    """Milliseconds of each Embed call the agent logged (`sentence scoring ... embed_ms=N`)."""
    if not log_path.exists():
        return []
    return [float(m) for m in re.findall(r"sentence scoring .*?embed_ms=([\d.]+)", log_path.read_text())]


def follow_ups(log_path: Path) -> int:
    """Turns in which the agent searched twice (a follow-up search)."""
    if not log_path.exists():
        return 0
    return len(re.findall(r"knowledge searched .*", log_path.read_text())) - len(
        re.findall(r"chat finished .*", log_path.read_text())
    )


async def run(args: argparse.Namespace, services: dict[str, ServiceProcess]) -> None:
    resources = load_paths([ACME_DIR])
    async with create_channel(services["retrieval"].address) as channel:
        (kb,) = resources.knowledge_bases
        synced = await sync_knowledge_base(retrieval_pb2_grpc.RetrievalServiceStub(channel), kb, ACME_DIR)
    print(f"synced {synced.documents} documents, {synced.chunks_total} chunks\n", file=sys.stderr)
    sets = {"acme": load_cases(args.questions), "paraphrase": paraphrase_cases()}
    memory_channel = create_channel(services["memory"].address)
    memory = memory_pb2_grpc.MemoryServiceStub(memory_channel)
    latencies: dict[tuple[str, int], list[float]] = {}
    try:
        for label in args.agents:
            async with create_channel(services[f"agent-{label}"].address) as channel:
                agent = agent_pb2_grpc.AgentServiceStub(channel)
                # Warm-up with a question of neither set: connections and first-call costs are paid once.
                await ask(agent, memory, Case("What does the Acme Home app do?", (), ()))
                for round_ in range(args.rounds):
                    latencies[(label, round_)] = []
                    for name, cases in sets.items():
                        results = [await ask(agent, memory, c) for c in cases]
                        latencies[(label, round_)].extend(r.first_token_ms for r in results if r.first_token_ms)
                        if round_ == 0:
                            report(name, label, results, args.show_failures)
    finally:
        await memory_channel.close()
    print("\nfirst_token_ms (round 1: every question new to the agent; later rounds: the same questions again)")
    for (label, round_), values in latencies.items():
        print(
            f"{label:<9} round {round_ + 1}: {len(values)} answers, p50 {statistics.median(values):.0f}, "
            f"p95 {pct(values, 0.95):.0f}, max {max(values):.0f}"
        )
    for label in args.agents:
        log_path = services[f"agent-{label}"].log_path
        print(f"{label:<9} turns with a follow-up search: {follow_ups(log_path)}")
        embeds = embed_times(log_path)[1:]  # not the warm-up
        if embeds:
            half = len(embeds) // args.rounds if args.rounds > 1 else len(embeds)
            for name, part in (("round 1", embeds[:half]), ("later", embeds[half:])):
                if part:
                    print(
                        f"{label:<9} Embed calls ({name}, {len(part)} scorings): p50 {statistics.median(part):.1f} ms,"
                        f" p95 {pct(part, 0.95):.1f} ms, max {max(part):.1f} ms"
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, default=ACME_DIR / "questions.jsonl")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over both sets (round 2+: pieces cached)")
    parser.add_argument("--only", choices=["lexical", "semantic"], help="run one agent only")
    parser.add_argument("--show-failures", action="store_true", help="print each failed question and its answer")
    parser.add_argument("--services-path", type=Path, help="run the services from this tree's `services` folder")
    args = parser.parse_args()
    args.agents = [args.only] if args.only else ["lexical", "semantic"]

    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp:
        state = Path(tmp)
        logs = state / "logs"
        if args.services_path:
            # The children are `python -m concierge`: PYTHONPATH comes before the installed tree.
            os.environ["PYTHONPATH"] = str(args.services_path.resolve())
        postgres = start_embedded_postgres(state / "pgdata")
        services: dict[str, ServiceProcess] = {}
        try:
            migrate(postgres.url)
            services["embedding"] = start_service("embedding", env={}, log_dir=logs)
            services["embedding"].wait_ready()
            database = {"CONCIERGE_DATABASE_URL": postgres.url}
            services["retrieval"] = start_service(
                "retrieval",
                env={**database, "CONCIERGE_EMBEDDING_ADDRESS": services["embedding"].address},
                log_dir=logs,
            )
            services["memory"] = start_service("memory", env=database, log_dir=logs)
            base = {
                "CONCIERGE_RETRIEVAL_ADDRESS": services["retrieval"].address,
                "CONCIERGE_MEMORY_ADDRESS": services["memory"].address,
                "CONCIERGE_RESOURCES_DIR": str(ACME_DIR),
            }
            for label in args.agents:
                env = dict(base)
                if label == "semantic":
                    env["CONCIERGE_EMBEDDING_ADDRESS"] = services["embedding"].address
                services[f"agent-{label}"] = start_service("agent", env=env, log_dir=logs / label)
            for service in services.values():
                service.wait_ready()
            asyncio.run(run(args, services))
        finally:
            for service in reversed(list(services.values())):
                service.stop()
            postgres.stop()


if __name__ == "__main__":
    main()
