"""One chat turn: resolve the SupportAgent, load history, run the AF agent, store and report the answer.

Yields ChatResponse events; raises ChatError with a gRPC status code and a precise message. The
server decides whether that becomes the call's status (nothing sent yet) or an Error event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from agent_framework import Agent, BaseChatClient, Message

from concierge.agent import context, escalation, handoff, history, prompts, tools
from concierge.agent.config import Settings
from concierge.agent.events import EventMapper
from concierge.agent.extractive_client import SentenceEmbedder, turn_log_fields
from concierge.agent.guard import OutputGuard
from concierge.agent.knowledge import KnowledgeSearch, KnowledgeSearchFailed
from concierge.agent.providers import (
    ProviderConfigError,
    ProviderLimits,
    build_chat_client,
    chat_options,
    describe_failure,
)
from concierge.api.loader import ResourceSet
from concierge.api.resources import EscalationPolicy, EscalationRules, KnowledgeBase, SupportAgent
from concierge.v1 import agent_pb2, common_pb2, memory_pb2, memory_pb2_grpc, retrieval_pb2_grpc

log = logging.getLogger(__name__)

# Customer turns read beyond what the turn-counting rules need: a turn without a retrieval score
# (escalated, failed) does not count for the low-confidence rule.
SIGNAL_SLACK = 2


def signal_turns(rules: EscalationRules) -> int:
    """How many recent customer turns the policy's sentiment and confidence rules look back on."""
    needed = [r.turns for r in (rules.negative_sentiment, rules.low_confidence) if r.enabled]
    return max(needed, default=1) + SIGNAL_SLACK


class ChatError(Exception):
    """A turn failed; `code` is the gRPC status it maps to."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def default_policy(agent: SupportAgent) -> EscalationPolicy:
    """The built-in policy of an agent that names none: a customer who asks for a person reaches the inbox."""
    return EscalationPolicy.model_validate(
        {
            "apiVersion": "concierge.dev/v1alpha1",
            "kind": "EscalationPolicy",
            "metadata": {"name": "default", "namespace": agent.namespace},
            "spec": {},
        }
    )


@dataclass
class AgentRuntime:
    """A SupportAgent with its chat client (or the reason none could be built) and its escalation policy."""

    resource: SupportAgent
    client: BaseChatClient[Any] | None
    policy: EscalationPolicy
    problem: str = ""


def knowledge_scope(agent: SupportAgent, resources: ResourceSet) -> str:
    """What the agent's knowledge bases say they cover: their descriptions, joined."""
    kbs = (resources.get(KnowledgeBase, agent.namespace, name) for name in agent.spec.knowledge_bases)
    return "\n".join(kb.spec.description for kb in kbs if kb is not None and kb.spec.description)


def policy_of(agent: SupportAgent, resources: ResourceSet) -> EscalationPolicy:
    named = agent.spec.escalation_policy
    found = resources.get(EscalationPolicy, agent.namespace, named) if named else None
    return found or default_policy(agent)


def build_runtimes(
    resources: ResourceSet, settings: Settings, embedder: SentenceEmbedder | None = None
) -> dict[tuple[str, str], AgentRuntime]:
    """A runtime per SupportAgent; a misconfigured provider disables only its own agent."""
    runtimes: dict[tuple[str, str], AgentRuntime] = {}
    for agent in resources.agents:
        try:
            client = build_chat_client(
                agent.spec,
                extractive_min_score=settings.extractive_min_score,
                azure_api_version=settings.azure_openai_api_version,
                limits=ProviderLimits.from_settings(settings),
                knowledge_scope=knowledge_scope(agent, resources),
                embedder=embedder,
            )
            runtimes[(agent.namespace, agent.name)] = AgentRuntime(agent, client, policy_of(agent, resources))
            log.info(
                "agent ready tenant=%s agent=%s provider=%s", agent.namespace, agent.name, agent.spec.model.provider
            )
        except ProviderConfigError as err:
            runtimes[(agent.namespace, agent.name)] = AgentRuntime(agent, None, policy_of(agent, resources), str(err))
            log.error("agent disabled tenant=%s agent=%s reason=%s", agent.namespace, agent.name, err)
    return runtimes


def _memory_error(err: grpc.aio.AioRpcError, doing: str, address: str) -> ChatError:
    code = err.code()
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        return ChatError(code, err.details() or doing)
    return ChatError(
        grpc.StatusCode.UNAVAILABLE,
        f"{doing} failed: memory service at {address} returned {code.name}: {err.details()}",
    )


class ChatService:
    """Runs chat turns for the SupportAgents in one resource folder."""

    def __init__(
        self,
        *,
        runtimes: dict[tuple[str, str], AgentRuntime],
        memory: memory_pb2_grpc.MemoryServiceAsyncStub,
        retrieval: retrieval_pb2_grpc.RetrievalServiceAsyncStub,
        settings: Settings,
        dispatcher: handoff.Dispatcher | None = None,
    ) -> None:
        self._runtimes = runtimes
        self._memory = memory
        self._retrieval = retrieval
        self._settings = settings
        self._dispatcher = dispatcher

    def resolve(self, tenant: str, agent: str) -> AgentRuntime:
        runtime = self._runtimes.get((tenant, agent))
        if runtime is None:
            # The same answer whether the agent exists in another namespace or nowhere.
            raise ChatError(grpc.StatusCode.NOT_FOUND, f"SupportAgent {agent!r} not found in namespace {tenant!r}")
        if runtime.client is None:
            raise ChatError(grpc.StatusCode.FAILED_PRECONDITION, f"SupportAgent {tenant}/{agent}: {runtime.problem}")
        return runtime

    async def _conversation(self, request: agent_pb2.ChatRequest, runtime: AgentRuntime) -> context.Conversation:
        spec = runtime.resource.spec
        timeout = self._settings.rpc_timeout_seconds
        address = self._settings.memory_address
        try:
            reply = await self._memory.GetSession(
                memory_pb2.GetSessionRequest(tenant=request.tenant, session_id=request.session_id), timeout=timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _memory_error(err, "reading the session", address) from err
        if reply.session.agent != request.agent:
            raise ChatError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"session {request.session_id} belongs to agent {reply.session.agent!r}, not {request.agent!r}",
            )
        try:
            conversation = await context.load(
                self._memory,
                reply.session,
                request.user_message_id,
                history_turns=spec.memory.history_turns,
                signal_turns=signal_turns(runtime.policy.spec.rules),
                rpc_timeout=timeout,
            )
        except grpc.aio.AioRpcError as err:
            raise _memory_error(err, "loading the conversation history", address) from err
        question = conversation.turn.question
        if question is None:
            raise ChatError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"message {request.user_message_id} is not stored in session {request.session_id}; store the "
                "customer's message with MemoryService.AppendMessage first and pass its id as user_message_id",
            )
        if question.role != memory_pb2.ROLE_USER:
            raise ChatError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"message {request.user_message_id} is not a user message; Chat answers customer messages only",
            )
        return conversation

    async def chat(self, request: agent_pb2.ChatRequest) -> AsyncIterator[agent_pb2.ChatResponse]:
        started = time.monotonic()
        for field in ("tenant", "agent", "session_id", "user_message_id"):
            if not getattr(request, field):
                raise ChatError(grpc.StatusCode.INVALID_ARGUMENT, f"{field} is required")
        runtime = self.resolve(request.tenant, request.agent)
        spec = runtime.resource.spec
        conversation = await self._conversation(request, runtime)
        turn = conversation.turn
        assert turn.question is not None
        assert runtime.client is not None
        log.info(
            "chat started tenant=%s agent=%s session=%s message=%s",
            request.tenant,
            request.agent,
            request.session_id,
            request.user_message_id,
        )
        if turn.stored_reply is not None:
            # A retried turn (the client reconnected): replay the stored answer instead of a second one.
            async for event in self._replay(turn.stored_reply, started):
                yield event
            return
        session = conversation.session
        if session.status not in (memory_pb2.SESSION_STATUS_BOT, memory_pb2.SESSION_STATUS_UNSPECIFIED):
            holder = f"human agent {session.handler!r}" if session.handler else "the support team"
            raise ChatError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"session {session.id} is with {holder} ({memory_pb2.SessionStatus.Name(session.status)}); "
                "the assistant does not answer until it is handed back",
            )
        rules = runtime.policy.spec.rules
        decision = escalation.evaluate_before_answer(rules, conversation.signals)
        if decision is not None:
            async for event in self._escalate_instead(request, runtime, conversation, decision, started):
                yield event
            return

        search = KnowledgeSearch(
            retrieval=self._retrieval,
            retrieval_address=self._settings.retrieval_address,
            tenant=request.tenant,
            knowledge_bases=spec.knowledge_bases,
            top_k=spec.retrieval.top_k,
            timeout=self._settings.rpc_timeout_seconds,
            session_id=request.session_id,
        )
        low = rules.low_confidence.threshold

        def may_escalate() -> bool:
            # The customer's own words, or a search that found nothing good, justify a hand-off;
            # an instruction inside a document does not.
            best = search.best_vector_score
            return tools.customer_wants_human(conversation.customer_texts) or (best is not None and best < low)

        turn_tools = tools.TurnTools(
            memory=self._memory,
            tenant=request.tenant,
            agent=request.agent,
            session=session,
            customer_texts=conversation.customer_texts,
            timeout=self._settings.rpc_timeout_seconds,
            may_escalate=may_escalate,
        )
        system = prompts.instructions(spec, conversation.summary, conversation.notes)
        guard = OutputGuard(
            # Only the agent's own instructions are secret; the summary and notes quote the customer.
            prompts.instructions(spec),
            allowed=lambda: "\n".join([*conversation.customer_texts, *(p.text for p in search.passages)]),
        )
        agent = Agent(
            runtime.client,
            instructions=system,
            name=runtime.resource.name,
            tools=[search.tool(), *turn_tools.tools(attachments=spec.attachments.enabled)],
            default_options=chat_options(spec),  # type: ignore[arg-type]  # a plain ChatOptions dict
        )
        messages = [
            *history.to_messages(conversation.recent, spec.memory.history_turns),
            Message(role="user", contents=[turn.question.text]),
        ]
        mapper = EventMapper()
        first_token_ms = 0
        # This RPC's own task runs the turn, so the chat client's log lines can name it.
        turn_log_fields.set(f"tenant={request.tenant} session={request.session_id}")
        try:
            stream = agent.run(messages, stream=True)
            async for update in stream:
                for event in mapper.map(update):
                    if event.HasField("text_delta"):
                        safe = guard.feed(event.text_delta.text)
                        if not safe:
                            continue
                        event = agent_pb2.ChatResponse(text_delta=agent_pb2.TextDelta(text=safe))
                        first_token_ms = first_token_ms or int((time.monotonic() - started) * 1000)
                    yield event
            await stream.get_final_response()
        except KnowledgeSearchFailed as err:
            raise ChatError(grpc.StatusCode.UNAVAILABLE, str(err)) from err
        except ChatError:
            raise
        except Exception as err:
            failure = describe_failure(spec.model, err, ProviderLimits.from_settings(self._settings))
            # One line per failed turn during an outage; the traceback only when debugging.
            log.warning(
                "model run failed tenant=%s agent=%s session=%s: %s",
                request.tenant,
                request.agent,
                request.session_id,
                failure.message,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            raise ChatError(failure.code, failure.message) from err
        if not mapper.text.strip():
            raise ChatError(grpc.StatusCode.INTERNAL, f"model provider `{spec.model.provider}` returned no text")
        if tail := guard.finish():
            first_token_ms = first_token_ms or int((time.monotonic() - started) * 1000)
            yield agent_pb2.ChatResponse(
                text_delta=agent_pb2.TextDelta(text=f"\n\n{tail}" if guard.tripped and guard.released else tail)
            )
        if guard.tripped:
            log.warning(
                "output guard replaced an answer that repeated the instructions tenant=%s agent=%s session=%s",
                request.tenant,
                request.agent,
                request.session_id,
            )
        citations = [] if guard.tripped else mapper.citations(search.passages)
        for citation in citations:
            yield agent_pb2.ChatResponse(citation=citation)
        confidence = search.best_vector_score
        stored = await self._store_answer(request, guard.answer, citations, confidence)
        signals = escalation.TurnHistory(
            [*conversation.signals[:-1], escalation.TurnSignal(turn.question.text, confidence)],
            conversation.signals.total,
        )
        after: escalation.Decision | None
        if turn_tools.escalation is not None:
            after = escalation.Decision(rule="agent", reason=turn_tools.escalation.reason)
        else:
            after = escalation.evaluate(rules, signals)
        if after is not None:
            yield await self._hand_off(request, runtime, conversation, after)
        total_ms = int((time.monotonic() - started) * 1000)
        log.info(
            "chat finished tenant=%s agent=%s session=%s message=%s passages=%d citations=%d confidence=%s "
            "escalated=%s refused_tools=%s first_token_ms=%d total_ms=%d",
            request.tenant,
            request.agent,
            request.session_id,
            stored.id,
            len(search.passages),
            len(citations),
            f"{confidence:.3f}" if confidence is not None else "none",
            after.rule if after else "no",
            ",".join(turn_tools.refused) or "none",
            first_token_ms,
            total_ms,
        )
        yield agent_pb2.ChatResponse(
            done=agent_pb2.Done(
                message=stored,
                input_tokens=mapper.input_tokens,
                output_tokens=mapper.output_tokens,
                first_token_ms=first_token_ms,
                total_ms=total_ms,
            )
        )

    async def _store_answer(
        self,
        request: agent_pb2.ChatRequest,
        text: str,
        citations: Sequence[common_pb2.Citation] = (),
        confidence: float | None = None,
    ) -> memory_pb2.Message:
        """Store the answer to the request's message (idempotent: a retried turn stores it once)."""
        append = memory_pb2.AppendMessageRequest(
            tenant=request.tenant,
            session_id=request.session_id,
            role=memory_pb2.ROLE_ASSISTANT,
            text=text,
            client_message_id=history.reply_client_id(request.user_message_id),
            reply_to=request.user_message_id,
            citations=citations,
        )
        if confidence is not None:
            append.confidence = confidence
        try:
            stored = await self._memory.AppendMessage(append, timeout=self._settings.rpc_timeout_seconds)
        except grpc.aio.AioRpcError as err:
            raise _memory_error(err, "storing the answer", self._settings.memory_address) from err
        return stored.message

    async def _escalate_instead(
        self,
        request: agent_pb2.ChatRequest,
        runtime: AgentRuntime,
        conversation: context.Conversation,
        decision: escalation.Decision,
        started: float,
    ) -> AsyncIterator[agent_pb2.ChatResponse]:
        """Hand off without answering: the customer is told what the policy says, and it is stored."""
        text = runtime.policy.spec.customer_message
        yield agent_pb2.ChatResponse(text_delta=agent_pb2.TextDelta(text=text))
        first_token_ms = int((time.monotonic() - started) * 1000)
        stored = await self._store_answer(request, text)
        yield await self._hand_off(request, runtime, conversation, decision)
        log.info(
            "chat escalated tenant=%s agent=%s session=%s rule=%s",
            request.tenant,
            request.agent,
            request.session_id,
            decision.rule,
        )
        total_ms = int((time.monotonic() - started) * 1000)
        yield agent_pb2.ChatResponse(
            done=agent_pb2.Done(message=stored, first_token_ms=first_token_ms, total_ms=total_ms)
        )

    async def _hand_off(
        self,
        request: agent_pb2.ChatRequest,
        runtime: AgentRuntime,
        conversation: context.Conversation,
        decision: escalation.Decision,
    ) -> agent_pb2.ChatResponse:
        """Mark the session escalated and queue the webhook call; the Escalation event for the customer."""
        policy = runtime.policy
        timeout = self._settings.rpc_timeout_seconds
        try:
            status = await self._memory.SetSessionStatus(
                memory_pb2.SetSessionStatusRequest(
                    tenant=request.tenant,
                    session_id=request.session_id,
                    status=memory_pb2.SESSION_STATUS_ESCALATED,
                    reason=decision.reason,
                    expect=[memory_pb2.SESSION_STATUS_BOT],
                ),
                timeout=timeout,
            )
            if status.changed and policy.spec.handoff.type == "webhook" and policy.spec.handoff.url is not None:
                key = handoff.idempotency_key(request.session_id, request.user_message_id)
                transcript = [
                    *conversation.recent,
                    *([conversation.turn.question] if conversation.turn.question else []),
                ]
                await self._memory.EnqueueHandoff(
                    memory_pb2.EnqueueHandoffRequest(
                        tenant=request.tenant,
                        session_id=request.session_id,
                        agent=request.agent,
                        url=str(policy.spec.handoff.url),
                        idempotency_key=key,
                        payload_json=handoff.payload(
                            tenant=request.tenant,
                            agent=request.agent,
                            session=status.session,
                            rule=decision.rule,
                            reason=decision.reason,
                            transcript=transcript,
                            key=key,
                        ),
                    ),
                    timeout=timeout,
                )
                if self._dispatcher is not None:
                    self._dispatcher.wake.set()
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.FAILED_PRECONDITION:  # already with a human: nothing to do
                raise _memory_error(err, "handing the session to a human", self._settings.memory_address) from err
        return agent_pb2.ChatResponse(
            escalation=agent_pb2.Escalation(reason=decision.reason, message=policy.spec.customer_message)
        )

    async def _replay(self, stored: memory_pb2.Message, started: float) -> AsyncIterator[agent_pb2.ChatResponse]:
        yield agent_pb2.ChatResponse(text_delta=agent_pb2.TextDelta(text=stored.text))
        first_token_ms = int((time.monotonic() - started) * 1000)
        for citation in stored.citations:
            yield agent_pb2.ChatResponse(citation=citation)
        total_ms = int((time.monotonic() - started) * 1000)
        yield agent_pb2.ChatResponse(
            done=agent_pb2.Done(message=stored, first_token_ms=first_token_ms, total_ms=total_ms)
        )
