"""The edge's answer fan-out: frames from agent events, replay of a turn in progress, tenants."""

from __future__ import annotations

import pytest

from concierge.edge.app import resolve_tenant
from concierge.edge.hub import SessionHub
from concierge.edge.problems import Problem
from concierge.edge.turns import event_frame
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
