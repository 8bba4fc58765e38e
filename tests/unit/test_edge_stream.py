"""The edge's answer fan-out: frames from agent events, replay of a turn in progress, tenants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from concierge.edge.app import resolve_tenant
from concierge.edge.hub import SessionHub
from concierge.edge.problems import Problem
from concierge.edge.turns import TurnRunner, customer_text, event_frame
from concierge.v1 import agent_pb2, common_pb2, memory_pb2


def test_text_delta_and_citation_events_become_camel_case_frames() -> None:
    delta = event_frame(agent_pb2.ChatResponse(text_delta=agent_pb2.TextDelta(text="Hello")), "m1")
    assert delta == {"type": "text_delta", "replyTo": "m1", "text": "Hello"}
    citation = common_pb2.Citation(index=1, document_title="Returns", source_uri="docs/returns.md", section="Window")
    frame = event_frame(agent_pb2.ChatResponse(citation=citation), "m1")
    assert frame is not None
    assert frame["citation"]["documentTitle"] == "Returns"
    assert frame["citation"]["sourceUri"] == "docs/returns.md"


def test_done_frame_carries_the_stored_message_and_timings() -> None:
    stored = memory_pb2.Message(id="a1", session_id="s", role=memory_pb2.ROLE_ASSISTANT, text="Yes [1]", seq=2)
    frame = event_frame(agent_pb2.ChatResponse(done=agent_pb2.Done(message=stored, first_token_ms=42)), "m1")
    assert frame is not None
    assert frame["message"]["role"] == "assistant"
    assert frame["message"]["seq"] == 2
    assert frame["usage"]["firstTokenMs"] == 42


async def test_subscriber_joining_mid_answer_gets_what_was_streamed_so_far() -> None:
    hub = SessionHub()
    hub.publish("s1", {"type": "text_delta", "replyTo": "m1", "text": "Thirty "})
    hub.publish("s2", {"type": "text_delta", "replyTo": "m9", "text": "other session"})
    with hub.subscribe("s1") as sub:
        assert [f["text"] for f in sub.replay] == ["Thirty "]
        hub.publish("s1", {"type": "text_delta", "replyTo": "m1", "text": "days"})
        hub.publish("s1", {"type": "done", "replyTo": "m1", "message": {}})
        assert sub.queue.get_nowait()["text"] == "days"
        assert sub.queue.get_nowait()["type"] == "done"
    assert not hub.in_flight("s1")
    with hub.subscribe("s1") as late:
        assert late.replay == []


async def test_slow_subscriber_drops_oldest_frames_instead_of_blocking() -> None:
    hub = SessionHub(queue_size=2)
    with hub.subscribe("s") as sub:
        for i in range(3):
            hub.publish("s", {"type": "text_delta", "replyTo": "m", "text": str(i)})
        assert [sub.queue.get_nowait()["text"] for _ in range(2)] == ["1", "2"]


def test_tenant_comes_from_request_or_default_and_must_be_a_namespace_name() -> None:
    assert resolve_tenant("shop", "acme") == "shop"
    assert resolve_tenant(None, "acme") == "acme"
    with pytest.raises(Problem, match="X-Concierge-Tenant"):
        resolve_tenant(None, None)
    with pytest.raises(Problem, match="not a namespace name"):
        resolve_tenant("Bad_Tenant", None)


class ScriptedAgent:
    """In-process stand-in for the agent stub: streams a fixed answer and records overlap."""

    def __init__(self, answer: list[str]) -> None:
        self.answer = answer
        self.running = 0
        self.max_running = 0
        self.asked: list[str] = []
        self.release = asyncio.Event()

    def Chat(self, request: agent_pb2.ChatRequest, timeout: float) -> AsyncIterator[agent_pb2.ChatResponse]:
        return self._stream(request)

    async def _stream(self, request: agent_pb2.ChatRequest) -> AsyncIterator[agent_pb2.ChatResponse]:
        self.asked.append(request.user_message_id)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await self.release.wait()
            for piece in self.answer:
                await asyncio.sleep(0)
                yield agent_pb2.ChatResponse(text_delta=agent_pb2.TextDelta(text=piece))
            stored = memory_pb2.Message(id=f"a-{request.user_message_id}", role=memory_pb2.ROLE_ASSISTANT)
            yield agent_pb2.ChatResponse(done=agent_pb2.Done(message=stored))
        finally:
            self.running -= 1


def user_message(message_id: str, session_id: str = "s1") -> memory_pb2.Message:
    return memory_pb2.Message(id=message_id, session_id=session_id, role=memory_pb2.ROLE_USER, text="q")


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110  (polls state the stand-in changes)
            await asyncio.sleep(0.001)


async def test_answers_of_one_session_run_one_at_a_time_in_order() -> None:
    agent, hub = ScriptedAgent(["a"]), SessionHub()
    runner = TurnRunner(lambda _tenant, _agent: agent, hub, timeout=5)  # type: ignore[arg-type,return-value]
    with hub.subscribe("s1") as sub:
        for i in range(3):
            assert runner.start("acme", "bot", user_message(f"m{i}"))
        await until(lambda: len(agent.asked) == 1)
        agent.release.set()
        await until(lambda: len(agent.asked) == 3 and agent.running == 0)
        await runner.drain()
        done = [f["replyTo"] for f in drain_queue(sub.queue) if f["type"] == "done"]
    assert agent.max_running == 1
    assert done == ["m0", "m1", "m2"]


async def test_a_message_already_being_answered_is_not_answered_twice() -> None:
    agent, hub = ScriptedAgent(["a"]), SessionHub()
    runner = TurnRunner(lambda _tenant, _agent: agent, hub, timeout=5)  # type: ignore[arg-type,return-value]
    assert runner.start("acme", "bot", user_message("m1"))
    assert not runner.start("acme", "bot", user_message("m1"))
    agent.release.set()
    await runner.drain()
    assert agent.asked == ["m1"]
    assert runner.start("acme", "bot", user_message("m1")), "once finished, a resend is answered (replayed) again"
    await runner.drain()


async def test_text_deltas_carry_their_offset_in_the_answer() -> None:
    agent, hub = ScriptedAgent(["Thirty ", "days", "."]), SessionHub()
    agent.release.set()
    runner = TurnRunner(lambda _tenant, _agent: agent, hub, timeout=5)  # type: ignore[arg-type,return-value]
    with hub.subscribe("s1") as sub:
        runner.start("acme", "bot", user_message("m1"))
        await runner.drain()
        deltas = [(f["offset"], f["text"]) for f in drain_queue(sub.queue) if f["type"] == "text_delta"]
    assert deltas == [(0, "Thirty "), (7, "days"), (11, ".")]


def test_agent_error_details_stay_out_of_customer_frames() -> None:
    event = agent_pb2.ChatResponse(error=agent_pb2.Error(code="INTERNAL", message="AuthenticationError: key sk-123"))
    frame = event_frame(event, "m1")
    assert frame is not None
    assert frame["code"] == "internal"
    assert "sk-123" not in frame["message"]


def drain_queue(queue: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


@pytest.mark.parametrize("code", ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"])
def test_a_provider_outage_or_rate_limit_tells_the_customer_to_try_again_shortly(code: str) -> None:
    assert customer_text(code).startswith("The assistant is unavailable right now. Your message is saved")
