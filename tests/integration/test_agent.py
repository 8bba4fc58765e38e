"""The agent service as a real process: acme questions answered from the synced help center.

Real memory, retrieval and embedding processes on loopback; the acme knowledge base is synced once
per session (`acme_synced`). A second agent process with a dead retrieval address shows errors.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from concierge.agent.extractive import ABSTAIN_TEXT
from concierge.common.grpcio import create_channel
from concierge.local.processes import ServiceProcess, free_port, start_service
from concierge.v1 import agent_pb2, agent_pb2_grpc, common_pb2, memory_pb2

pytestmark = pytest.mark.usefixtures("acme_synced")

ROOT = Path(__file__).resolve().parents[2]
ACME_DIR = ROOT / "examples" / "acme"
TENANT = "acme"
AGENT = "acme-support"


@dataclass
class Turn:
    events: list[agent_pb2.ChatResponse] = field(default_factory=list)
    user_message: memory_pb2.Message | None = None

    def kinds(self) -> list[str]:
        return [str(e.WhichOneof("event")) for e in self.events]

    @property
    def text(self) -> str:
        return "".join(e.text_delta.text for e in self.events if e.HasField("text_delta"))

    @property
    def citations(self) -> list[common_pb2.Citation]:
        return [e.citation for e in self.events if e.HasField("citation")]

    @property
    def tool_calls(self) -> list[agent_pb2.ToolCall]:
        return [e.tool_call for e in self.events if e.HasField("tool_call")]

    @property
    def done(self) -> agent_pb2.Done:
        assert self.kinds()[-1] == "done", self.kinds()
        return self.events[-1].done


@pytest.fixture
async def agent(agent_service: ServiceProcess) -> AsyncIterator[Any]:
    async with create_channel(agent_service.address) as channel:
        yield agent_pb2_grpc.AgentServiceStub(channel)


async def new_session(memory: Any, tenant: str = TENANT, agent_name: str = AGENT) -> str:
    reply = await memory.CreateSession(memory_pb2.CreateSessionRequest(tenant=tenant, agent=agent_name), timeout=10)
    return str(reply.session.id)


async def store_question(memory: Any, session_id: str, text: str, tenant: str = TENANT) -> memory_pb2.Message:
    reply = await memory.AppendMessage(
        memory_pb2.AppendMessageRequest(
            tenant=tenant,
            session_id=session_id,
            role=memory_pb2.ROLE_USER,
            text=text,
            client_message_id=str(uuid.uuid4()),
        ),
        timeout=10,
    )
    return reply.message


async def chat(
    agent: Any, session_id: str, message: memory_pb2.Message, *, tenant: str = TENANT, agent_name: str = AGENT
) -> Turn:
    turn = Turn(user_message=message)
    request = agent_pb2.ChatRequest(
        tenant=tenant, agent=agent_name, session_id=session_id, user_message_id=message.id, text=message.text
    )
    async for event in agent.Chat(request, timeout=60):
        turn.events.append(event)
    return turn


async def ask(agent: Any, memory: Any, text: str) -> tuple[str, Turn]:
    session_id = await new_session(memory)
    message = await store_question(memory, session_id, text)
    return session_id, await chat(agent, session_id, message)


async def test_answer_streams_deltas_before_done_and_cites_the_document_holding_it(agent: Any, memory: Any) -> None:
    session_id, turn = await ask(agent, memory, "How much do I have to spend to get free delivery in the US?")
    kinds = turn.kinds()
    # search first, then text in several deltas, then citations, then done
    assert kinds[:2] == ["tool_call", "tool_call"]
    started, finished = turn.tool_calls
    assert (started.name, started.finished, finished.finished) == ("search_knowledge", False, True)
    assert "free delivery" in started.arguments_json
    assert finished.call_id == started.call_id
    assert finished.result_summary.startswith("5 passages")
    assert kinds.count("text_delta") >= 3
    assert kinds.index("citation") > max(i for i, k in enumerate(kinds) if k == "text_delta")
    assert kinds[-1] == "done"

    assert "$49" in turn.text
    markers = sorted({int(n) for n in re.findall(r"\[(\d+)\]", turn.text)})
    assert [c.index for c in sorted(turn.citations, key=lambda c: c.index)] == markers
    assert any(c.source_uri.endswith("shipping.html") for c in turn.citations)
    for c in turn.citations:
        assert c.document_title
        assert c.chunk_id
        assert c.snippet
        assert c.knowledge_base == "acme-help-center"

    done = turn.done
    assert done.message.role == memory_pb2.ROLE_ASSISTANT
    assert done.message.text == turn.text
    assert done.message.reply_to == turn.user_message.id  # type: ignore[union-attr]
    assert done.message.client_message_id == f"reply:{turn.user_message.id}"  # type: ignore[union-attr]
    assert 0 < done.first_token_ms <= done.total_ms

    stored = await memory.ListMessages(memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id), timeout=10)
    assert [m.role for m in stored.messages] == [memory_pb2.ROLE_USER, memory_pb2.ROLE_ASSISTANT]
    assert stored.messages[1] == done.message
    assert list(stored.messages[1].citations) == turn.citations


async def test_procedure_question_gets_numbered_steps_from_the_right_article(agent: Any, memory: Any) -> None:
    _, turn = await ask(agent, memory, "The robot sits on its base all night but the battery never charges up. Help!")
    assert "metal contacts" in turn.text
    assert re.search(r"^1\. ", turn.text, re.MULTILINE)
    assert {c.source_uri for c in turn.citations} == {"docs/battery-and-charging.md"}


async def test_return_window_question_is_answered_from_the_returns_policy(agent: Any, memory: Any) -> None:
    # "returns" and "robot" also occur in the error-codes article, and retrieval ranks the "Return window"
    # chunk sixth of five: the answer needs meaning-based scoring and a second search in the returns policy.
    _, turn = await ask(agent, memory, "How long do I have to return my robot vacuum?")
    assert "30 days" in turn.text
    assert "docs/returns.md" in {c.source_uri for c in turn.citations}


async def test_out_of_scope_question_abstains_and_cites_nothing(agent: Any, memory: Any) -> None:
    _session_id, turn = await ask(agent, memory, "Do you sell a robot lawn mower?")
    assert turn.text == ABSTAIN_TEXT
    assert turn.citations == []
    assert turn.tool_calls  # it did look before saying so
    assert list(turn.done.message.citations) == []


async def test_greeting_gets_a_short_reply_without_searching(agent: Any, memory: Any) -> None:
    _, turn = await ask(agent, memory, "Hi!")
    assert turn.tool_calls == []
    assert turn.citations == []
    assert turn.text.startswith("Hi, I'm the Acme Support assistant!")


async def test_retried_turn_replays_the_stored_answer_instead_of_a_second_one(agent: Any, memory: Any) -> None:
    session_id = await new_session(memory)
    message = await store_question(memory, session_id, "How often should I replace the filter?")
    first = await chat(agent, session_id, message)
    again = await chat(agent, session_id, message)
    assert again.done.message == first.done.message
    assert again.text == first.text
    assert again.tool_calls == []
    stored = await memory.ListMessages(memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id), timeout=10)
    assert len(stored.messages) == 2


async def test_unknown_agent_is_not_found(agent: Any, memory: Any) -> None:
    session_id = await new_session(memory, agent_name="no-such-agent")
    message = await store_question(memory, session_id, "hello?")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chat(agent, session_id, message, agent_name="no-such-agent")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "SupportAgent 'no-such-agent' not found in namespace 'acme'"


async def test_another_tenant_cannot_use_the_acme_agent(agent: Any, memory: Any) -> None:
    session_id = await new_session(memory, tenant="globex")
    message = await store_question(memory, session_id, "How long is the warranty?", tenant="globex")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chat(agent, session_id, message, tenant="globex")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "SupportAgent 'acme-support' not found in namespace 'globex'"


async def test_session_of_another_tenant_is_not_found(agent: Any, memory: Any) -> None:
    foreign = await new_session(memory, tenant="globex", agent_name=AGENT)
    message = await store_question(memory, foreign, "What is the warranty?", tenant="globex")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chat(agent, foreign, message)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"session {foreign} not found in namespace 'acme'" in (caught.value.details() or "")


async def test_question_that_was_never_stored_is_refused(agent: Any, memory: Any) -> None:
    session_id = await new_session(memory)
    ghost = memory_pb2.Message(id=str(uuid.uuid4()), text="How long is the warranty?")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await chat(agent, session_id, ghost)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "store the customer's message with MemoryService.AppendMessage first" in (caught.value.details() or "")


@pytest.fixture(scope="module")
def agent_without_retrieval(state_dir: Path, memory_service: ServiceProcess) -> Iterator[ServiceProcess]:
    """An agent whose retrieval address has nothing listening, as when retrieval is down."""
    env = {
        "CONCIERGE_RETRIEVAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "CONCIERGE_MEMORY_ADDRESS": memory_service.address,
        "CONCIERGE_RESOURCES_DIR": str(ACME_DIR),
    }
    service = start_service("agent", env=env, log_dir=state_dir / "logs" / "agent-without-retrieval")
    try:
        service.wait_ready()
        yield service
    finally:
        service.stop()


async def test_retrieval_down_mid_stream_becomes_an_error_event(
    agent_without_retrieval: ServiceProcess, memory: Any
) -> None:
    session_id = await new_session(memory)
    message = await store_question(memory, session_id, "How long is the warranty on the S2 Pro?")
    async with create_channel(agent_without_retrieval.address) as channel:
        turn = await chat(agent_pb2_grpc.AgentServiceStub(channel), session_id, message)
    assert turn.kinds() == ["tool_call", "error"]
    error = turn.events[-1].error
    assert error.code == "UNAVAILABLE"
    assert "knowledge search failed: retrieval service at 127.0.0.1:" in error.message
    stored = await memory.ListMessages(memory_pb2.ListMessagesRequest(tenant=TENANT, session_id=session_id), timeout=10)
    assert [m.role for m in stored.messages] == [memory_pb2.ROLE_USER]


async def test_memory_down_before_the_stream_starts_is_the_call_status(
    state_dir: Path, retrieval_service: ServiceProcess
) -> None:
    env = {
        "CONCIERGE_RETRIEVAL_ADDRESS": retrieval_service.address,
        "CONCIERGE_MEMORY_ADDRESS": f"127.0.0.1:{free_port()}",
        "CONCIERGE_RESOURCES_DIR": str(ACME_DIR),
    }
    service = start_service("agent", env=env, log_dir=state_dir / "logs" / "agent-without-memory")
    try:
        service.wait_ready()
        async with create_channel(service.address) as channel:
            request = agent_pb2.ChatRequest(
                tenant=TENANT, agent=AGENT, session_id=str(uuid.uuid4()), user_message_id=str(uuid.uuid4())
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in agent_pb2_grpc.AgentServiceStub(channel).Chat(request, timeout=30):
                    pass
    finally:
        service.stop()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "reading the session failed: memory service at 127.0.0.1:" in (caught.value.details() or "")
