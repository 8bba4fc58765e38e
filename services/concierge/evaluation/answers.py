"""`concierge eval answers`: does the agent cite the right document, abstain when it should, and how fast.

Each question is asked in a fresh session, stored through MemoryService.AppendMessage and answered
by AgentService.Chat, as the edge does it; the answer's citations, escalation and timing are scored.
"""

from __future__ import annotations

import re
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import yaml

from concierge.api.loader import ResourceSet, dump
from concierge.api.resources import (
    API_VERSION,
    EscalationPolicy,
    KnowledgeBase,
    Resource,
    SupportAgent,
)
from concierge.evaluation.questions import Question
from concierge.evaluation.retrieval import percentile
from concierge.v1 import agent_pb2, agent_pb2_grpc, memory_pb2, memory_pb2_grpc

R = TypeVar("R", bound=Resource)

EVAL_AGENT = "eval-answers"
# Generous: a hosted model with retries may take a minute; the extractive one answers in well under a second.
TURN_TIMEOUT_SECONDS = 120.0
RPC_TIMEOUT_SECONDS = 10.0

# What an answer that does not answer says: it cannot find or does not know, or it offers a person.
# Covers the extractive provider's own texts (ABSTAIN_TEXT, SEARCH_FAILED_TEXT; a unit test keeps
# them in step) and the usual wording of hosted models told to "say so plainly and offer to connect
# the customer with a member of the support team" (prompts.SOURCE_RULES).
_NOT = r" ?n[o']t"  # "couldn't", "could not", "doesn't", ...
ABSTENTION = re.compile(
    r"\b(?:"
    rf"(?:(?:could|did|was|am|'m){_NOT}|can'?t|cannot|can not|unable to|(?:was|am|'m){_NOT} able to) "
    r"(?:find|search|answer|locate|see)"
    rf"|(?:do|does){_NOT} (?:know|have (?:any )?(?:information|details)|cover|mention)"
    r"|no (?:information|details|mention) (?:about|on|of)"
    rf"|(?:is|are){_NOT} (?:covered|mentioned)|not (?:covered|mentioned) in"
    r"|(?:connect|put) you (?:in touch )?with|hand (?:you|this|the conversation) (?:over )?to"
    r"|member of (?:our|the) (?:\w+ ){0,2}team|(?:human|live|support) agent|(?:a|real) person"
    r")",
    re.IGNORECASE,
)


def abstains(text: str) -> bool:
    """Whether `text` says it cannot answer or offers a person (typographic apostrophes included)."""
    return ABSTENTION.search(text.replace("\u2019", "'")) is not None


@dataclass(frozen=True)
class Cited:
    source_uri: str
    title: str


@dataclass(frozen=True)
class Outcome:
    question: Question
    text: str
    citations: tuple[Cited, ...]
    escalated: bool
    # Milliseconds from storing the question to the first streamed text, and to the `done` event.
    first_token_ms: float | None
    answer_ms: float | None
    # The same two times as the agent measured them (from the start of its turn).
    agent_first_token_ms: int = 0
    agent_total_ms: int = 0
    error: str = ""

    @property
    def cites_expected(self) -> bool:
        return any(self.question.expects(c.source_uri) for c in self.citations)

    @property
    def abstained(self) -> bool:
        """Escalated, or an answer that cites nothing and says it cannot answer or offers a person."""
        return self.escalated or (not self.citations and not self.error and abstains(self.text))

    @property
    def holds_expected_text(self) -> bool | None:
        """Whether the answer holds every `answer_contains` phrase (case-insensitive); None: none given."""
        phrases = self.question.answer_contains
        if not phrases:
            return None
        return all(p.casefold() in self.text.casefold() for p in phrases)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.question.id,
            "kind": self.question.kind,
            "question": self.question.q,
            "expected": list(self.question.pages),
            "answer": self.text,
            "citations": [asdict(c) for c in self.citations],
            "cites_expected": self.cites_expected,
            "abstained": self.abstained,
            "escalated": self.escalated,
            "holds_expected_text": self.holds_expected_text,
            "first_token_ms": _round(self.first_token_ms),
            "answer_ms": _round(self.answer_ms),
            "agent_first_token_ms": self.agent_first_token_ms,
            "agent_total_ms": self.agent_total_ms,
            "error": self.error,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class Figures:
    """Shares of a group of questions, each with the number of questions it is over."""

    answerable: int = 0
    cites_expected: float = 0.0
    wrongly_abstained: float = 0.0
    # Answerable questions with `answer_contains` phrases, and the share whose answer holds them all.
    with_expected_text: int = 0
    holds_expected_text: float = 0.0
    unanswerable: int = 0
    abstained: float = 0.0
    escalated: float = 0.0
    errors: int = 0


@dataclass
class Report:
    agent: str
    provider: str
    knowledge_base: str
    questions: int
    overall: Figures
    by_kind: dict[str, Figures]
    first_token_ms_p50: float
    first_token_ms_p95: float
    answer_ms_p50: float
    answer_ms_p95: float
    answers: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def figures(outcomes: Sequence[Outcome]) -> Figures:
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    checked = [o for o in answerable if o.question.answer_contains]
    result = Figures(
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        with_expected_text=len(checked),
        errors=sum(1 for o in outcomes if o.error),
    )
    if answerable:
        result.cites_expected = statistics.fmean(o.cites_expected for o in answerable)
        result.wrongly_abstained = statistics.fmean(o.abstained for o in answerable)
    if checked:
        result.holds_expected_text = statistics.fmean(bool(o.holds_expected_text) for o in checked)
    if unanswerable:
        result.abstained = statistics.fmean(o.abstained for o in unanswerable)
        result.escalated = statistics.fmean(o.escalated for o in unanswerable)
    return result


def report(agent: SupportAgent, knowledge_base: str, outcomes: Sequence[Outcome]) -> Report:
    kinds = sorted({o.question.kind for o in outcomes})
    first = sorted(o.first_token_ms for o in outcomes if o.first_token_ms is not None)
    total = sorted(o.answer_ms for o in outcomes if o.answer_ms is not None)
    return Report(
        agent=agent.key,
        provider=agent.spec.model.provider,
        knowledge_base=knowledge_base,
        questions=len(outcomes),
        overall=figures(outcomes),
        by_kind={kind: figures([o for o in outcomes if o.question.kind == kind]) for kind in kinds},
        first_token_ms_p50=round(percentile(first, 50), 1),
        first_token_ms_p95=round(percentile(first, 95), 1),
        answer_ms_p50=round(percentile(total, 50), 1),
        answer_ms_p95=round(percentile(total, 95), 1),
        answers=[o.as_dict() for o in outcomes],
    )


# --- asking ---------------------------------------------------------------------------------


@dataclass
class Asker:
    """Asks one question per fresh session of `agent`, as customer `<prefix>-<n>` (erased afterwards)."""

    agent_stub: agent_pb2_grpc.AgentServiceAsyncStub
    memory: memory_pb2_grpc.MemoryServiceAsyncStub
    agent: SupportAgent
    customer_prefix: str = field(default_factory=lambda: f"concierge-eval-{uuid.uuid4().hex[:8]}")
    customers: list[str] = field(default_factory=list)

    async def ask(self, question: Question) -> Outcome:
        """One turn; a failed Chat becomes the outcome's `error`, a failed memory call raises."""
        tenant, name = self.agent.namespace, self.agent.name
        customer = f"{self.customer_prefix}-{len(self.customers)}"
        self.customers.append(customer)
        # A fresh session per question: an escalated session stays escalated and the bot stops answering.
        session = await self.memory.CreateSession(
            memory_pb2.CreateSessionRequest(tenant=tenant, agent=name, customer_id=customer),
            timeout=RPC_TIMEOUT_SECONDS,
        )
        session_id = session.session.id
        started = time.perf_counter()
        stored = await self.memory.AppendMessage(
            memory_pb2.AppendMessageRequest(
                tenant=tenant,
                session_id=session_id,
                role=memory_pb2.ROLE_USER,
                text=question.q,
                client_message_id=str(uuid.uuid4()),
            ),
            timeout=RPC_TIMEOUT_SECONDS,
        )
        request = agent_pb2.ChatRequest(
            tenant=tenant, agent=name, session_id=session_id, user_message_id=stored.message.id, text=question.q
        )
        text: list[str] = []
        cited: list[Cited] = []
        escalated = False
        first: float | None = None
        done: agent_pb2.Done | None = None
        error = ""
        try:
            async for event in self.agent_stub.Chat(request, timeout=TURN_TIMEOUT_SECONDS):
                kind = event.WhichOneof("event")
                if kind == "text_delta" and event.text_delta.text:
                    first = first if first is not None else _ms_since(started)
                    text.append(event.text_delta.text)
                elif kind == "citation":
                    cited.append(Cited(event.citation.source_uri, event.citation.document_title))
                elif kind == "escalation":
                    escalated = True
                elif kind == "error":
                    error = f"{event.error.code}: {event.error.message}"
                elif kind == "done":
                    done = event.done
        except grpc.aio.AioRpcError as err:
            error = f"{err.code().name}: {err.details()}"
        finished = _ms_since(started)
        if done is not None and not text:
            text.append(done.message.text)
        return Outcome(
            question=question,
            text="".join(text),
            citations=tuple(dict.fromkeys(cited)),
            escalated=escalated,
            first_token_ms=first if not error else None,
            answer_ms=finished if done is not None and not error else None,
            agent_first_token_ms=done.first_token_ms if done is not None else 0,
            agent_total_ms=done.total_ms if done is not None else 0,
            error=error,
        )

    async def erase(self) -> int:
        """Delete the evaluation's sessions (messages, hand-offs) so no inbox shows them; how many went."""
        erased = 0
        for customer in self.customers:
            reply = await self.memory.EraseCustomer(
                memory_pb2.EraseCustomerRequest(tenant=self.agent.namespace, customer_id=customer),
                timeout=RPC_TIMEOUT_SECONDS,
            )
            erased += reply.sessions
        self.customers.clear()
        return erased


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


# --- the agent under evaluation -------------------------------------------------------------


class AgentChoiceError(ValueError):
    """The given resources do not name one SupportAgent to evaluate; the message says how to fix it."""


@dataclass(frozen=True)
class EvaluatedAgent:
    """The SupportAgent under evaluation and every resource its agent service loads."""

    agent: SupportAgent
    knowledge_base: KnowledgeBase
    # Its EscalationPolicy, when it names one.
    others: list[Resource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def resources(self) -> list[Resource]:
        return [self.knowledge_base, self.agent, *self.others]

    def write(self, folder: Path) -> Path:
        """The resources as the agent service reads them (CONCIERGE_RESOURCES_DIR), like `up` writes its own."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resources.yaml").write_text(yaml.safe_dump_all([dump(r) for r in self.resources], sort_keys=False))
        return folder


def existing_knowledge_base(namespace: str, name: str, description: str = "") -> KnowledgeBase:
    """A stand-in for a knowledge base that is already synced: the agent service reads only its
    name and description (never its sources), and an agent may only name KBs of its resource set."""
    return KnowledgeBase.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "KnowledgeBase",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "description": description,
                "sources": [{"name": "synced", "inline": [{"title": "synced elsewhere", "content": "-"}]}],
            },
        }
    )


def default_agent(kb: KnowledgeBase) -> SupportAgent:
    """An offline (extractive) SupportAgent that searches `kb` only, with the built-in escalation policy."""
    return SupportAgent.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "SupportAgent",
            "metadata": {"name": EVAL_AGENT, "namespace": kb.namespace},
            "spec": {"displayName": "Evaluation", "model": {"provider": "extractive"}, "knowledgeBases": [kb.name]},
        }
    )


def moved(resource: R, namespace: str, **spec: Any) -> R:
    """A copy of `resource` in `namespace`, with `spec` fields (by their YAML names) replaced."""
    document = dump(resource)
    document.pop("status", None)
    document["metadata"] = {**document["metadata"], "namespace": namespace}
    document["spec"] = {**document["spec"], **spec}
    return type(resource).model_validate(document)


def evaluated_agent(kb: KnowledgeBase, given: ResourceSet | None) -> EvaluatedAgent:
    """The agent of `given` (or the default one) moved to `kb`'s namespace and searching only `kb`.

    Its EscalationPolicy comes along with webhook hand-offs turned into inbox ones, so an evaluation
    never calls a real webhook; a KnowledgeBase of `given` with `kb`'s name lends its description.
    """
    if given is None:
        return EvaluatedAgent(default_agent(kb), kb)
    agents = given.agents
    bound = [a for a in agents if kb.name in a.spec.knowledge_bases]
    if len(bound) == 1 or len(agents) == 1:
        chosen = bound[0] if len(bound) == 1 else agents[0]
    else:
        names = ", ".join(a.key for a in agents) or "none"
        raise AgentChoiceError(
            f"the agent file holds {len(agents)} SupportAgents ({names}) and {len(bound)} of them search "
            f"{kb.name!r}; give a file or folder with exactly one SupportAgent"
        )
    notes: list[str] = []
    policy = given.get(EscalationPolicy, chosen.namespace, chosen.spec.escalation_policy or "")
    others: list[Resource] = []
    if policy is not None:
        if policy.spec.handoff.type == "webhook":
            notes.append(f"hand-offs of {policy.key} go to the built-in inbox during the evaluation, not its webhook")
        others.append(moved(policy, kb.namespace, handoff={"type": "inbox"}))
    same = given.get(KnowledgeBase, chosen.namespace, kb.name)
    if same is not None and same.spec.description and not kb.spec.description:
        kb = moved(kb, kb.namespace, description=same.spec.description)
    agent = moved(chosen, kb.namespace, knowledgeBases=[kb.name])
    return EvaluatedAgent(agent, kb, others, notes)


def serving_agent(resources: ResourceSet, namespace: str, kb: str) -> SupportAgent | None:
    """The agent of a running `concierge up` that answers from `namespace/kb` and hands off to the inbox."""
    for agent in resources.agents:
        if agent.namespace != namespace or kb not in agent.spec.knowledge_bases:
            continue
        policy = resources.get(EscalationPolicy, namespace, agent.spec.escalation_policy or "")
        if policy is None or policy.spec.handoff.type == "inbox":
            return agent
    return None


def agent_of(resources: ResourceSet, kb: KnowledgeBase) -> EvaluatedAgent | None:
    """The one agent of `kb`'s namespace in `resources` that searches `kb`, prepared as `evaluated_agent`
    does (inbox hand-offs); None when there is no such agent or several."""
    tenant = ResourceSet([i for i in resources.items if i.resource.namespace == kb.namespace])
    if sum(kb.name in a.spec.knowledge_bases for a in tenant.agents) != 1:
        return None
    return evaluated_agent(kb, tenant)
