"""One chat turn: resolve the SupportAgent, load history, run the AF agent, store and report the answer.

Yields ChatResponse events; raises ChatError with a gRPC status code and a precise message. The
server decides whether that becomes the call's status (nothing sent yet) or an Error event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from agent_framework import Agent, BaseChatClient, Message

from concierge.agent import history, prompts
from concierge.agent.config import Settings
from concierge.agent.events import EventMapper
from concierge.agent.extractive_client import SentenceEmbedder, turn_log_fields
from concierge.agent.knowledge import KnowledgeSearch, KnowledgeSearchFailed
from concierge.agent.providers import ProviderConfigError, build_chat_client, chat_options
from concierge.api.loader import ResourceSet
from concierge.api.resources import KnowledgeBase, SupportAgent
from concierge.v1 import agent_pb2, memory_pb2, memory_pb2_grpc, retrieval_pb2_grpc

log = logging.getLogger(__name__)

HISTORY_PAGE = 200


class ChatError(Exception):
    """A turn failed; `code` is the gRPC status it maps to."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class AgentRuntime:
    """A SupportAgent with its chat client, or the reason no client could be built."""

    resource: SupportAgent
    client: BaseChatClient[Any] | None
    problem: str = ""


def knowledge_scope(agent: SupportAgent, resources: ResourceSet) -> str:
    """What the agent's knowledge bases say they cover: their descriptions, joined."""
    kbs = (resources.get(KnowledgeBase, agent.namespace, name) for name in agent.spec.knowledge_bases)
    return "\n".join(kb.spec.description for kb in kbs if kb is not None and kb.spec.description)


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
                knowledge_scope=knowledge_scope(agent, resources),
                embedder=embedder,
            )
            runtimes[(agent.namespace, agent.name)] = AgentRuntime(agent, client)
            log.info(
                "agent ready tenant=%s agent=%s provider=%s", agent.namespace, agent.name, agent.spec.model.provider
            )
        except ProviderConfigError as err:
            runtimes[(agent.namespace, agent.name)] = AgentRuntime(agent, None, str(err))
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
    ) -> None:
        self._runtimes = runtimes
        self._memory = memory
        self._retrieval = retrieval
        self._settings = settings

    def resolve(self, tenant: str, agent: str) -> AgentRuntime:
        runtime = self._runtimes.get((tenant, agent))
        if runtime is None:
            # The same answer whether the agent exists in another namespace or nowhere.
            raise ChatError(grpc.StatusCode.NOT_FOUND, f"SupportAgent {agent!r} not found in namespace {tenant!r}")
        if runtime.client is None:
            raise ChatError(grpc.StatusCode.FAILED_PRECONDITION, f"SupportAgent {tenant}/{agent}: {runtime.problem}")
        return runtime

    async def _turn(self, request: agent_pb2.ChatRequest) -> history.Turn:
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
        # ListMessages pages oldest first and has no "newest N" query, so read the whole session.
        messages: list[memory_pb2.Message] = []
        after = 0
        while True:
            try:
                page = await self._memory.ListMessages(
                    memory_pb2.ListMessagesRequest(
                        tenant=request.tenant, session_id=request.session_id, after_seq=after, limit=HISTORY_PAGE
                    ),
                    timeout=timeout,
                )
            except grpc.aio.AioRpcError as err:
                raise _memory_error(err, "loading the conversation history", address) from err
            messages.extend(page.messages)
            if not page.next_after_seq:
                break
            after = page.next_after_seq
        turn = history.find_turn(messages, request.user_message_id)
        if turn.question is None:
            raise ChatError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"message {request.user_message_id} is not stored in session {request.session_id}; store the "
                "customer's message with MemoryService.AppendMessage first and pass its id as user_message_id",
            )
        if turn.question.role != memory_pb2.ROLE_USER:
            raise ChatError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"message {request.user_message_id} is not a user message; Chat answers customer messages only",
            )
        return turn

    async def chat(self, request: agent_pb2.ChatRequest) -> AsyncIterator[agent_pb2.ChatResponse]:
        started = time.monotonic()
        for field in ("tenant", "agent", "session_id", "user_message_id"):
            if not getattr(request, field):
                raise ChatError(grpc.StatusCode.INVALID_ARGUMENT, f"{field} is required")
        runtime = self.resolve(request.tenant, request.agent)
        spec = runtime.resource.spec
        turn = await self._turn(request)
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

        search = KnowledgeSearch(
            retrieval=self._retrieval,
            retrieval_address=self._settings.retrieval_address,
            tenant=request.tenant,
            knowledge_bases=spec.knowledge_bases,
            top_k=spec.retrieval.top_k,
            timeout=self._settings.rpc_timeout_seconds,
            session_id=request.session_id,
        )
        agent = Agent(
            runtime.client,
            instructions=prompts.instructions(spec),
            name=runtime.resource.name,
            tools=[search.tool()],
            default_options=chat_options(spec),  # type: ignore[arg-type]  # a plain ChatOptions dict
        )
        messages = [
            *history.to_messages(turn.earlier, spec.memory.history_turns),
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
                    if event.HasField("text_delta") and not first_token_ms:
                        first_token_ms = int((time.monotonic() - started) * 1000)
                    yield event
            await stream.get_final_response()
        except KnowledgeSearchFailed as err:
            raise ChatError(grpc.StatusCode.UNAVAILABLE, str(err)) from err
        except ChatError:
            raise
        except Exception as err:
            log.exception(
                "model run failed tenant=%s agent=%s session=%s", request.tenant, request.agent, request.session_id
            )
            raise ChatError(
                grpc.StatusCode.UNAVAILABLE,
                f"model provider `{spec.model.provider}` failed: {type(err).__name__}: {err}",
            ) from err
        if not mapper.text.strip():
            raise ChatError(grpc.StatusCode.INTERNAL, f"model provider `{spec.model.provider}` returned no text")

        citations = mapper.citations(search.passages)
        for citation in citations:
            yield agent_pb2.ChatResponse(citation=citation)
        try:
            stored = await self._memory.AppendMessage(
                memory_pb2.AppendMessageRequest(
                    tenant=request.tenant,
                    session_id=request.session_id,
                    role=memory_pb2.ROLE_ASSISTANT,
                    text=mapper.text,
                    client_message_id=history.reply_client_id(request.user_message_id),
                    reply_to=request.user_message_id,
                    citations=citations,
                ),
                timeout=self._settings.rpc_timeout_seconds,
            )
        except grpc.aio.AioRpcError as err:
            raise _memory_error(err, "storing the answer", self._settings.memory_address) from err
        total_ms = int((time.monotonic() - started) * 1000)
        log.info(
            "chat finished tenant=%s agent=%s session=%s message=%s passages=%d citations=%d "
            "first_token_ms=%d total_ms=%d",
            request.tenant,
            request.agent,
            request.session_id,
            stored.message.id,
            len(search.passages),
            len(citations),
            first_token_ms,
            total_ms,
        )
        yield agent_pb2.ChatResponse(
            done=agent_pb2.Done(
                message=stored.message,
                input_tokens=mapper.input_tokens,
                output_tokens=mapper.output_tokens,
                first_token_ms=first_token_ms,
                total_ms=total_ms,
            )
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
