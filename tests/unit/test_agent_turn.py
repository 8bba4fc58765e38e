"""The extractive chat client inside a real AF Agent tool loop, with an in-process retrieval stand-in."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from agent_framework import Agent, Message

from concierge.agent.events import EventMapper
from concierge.agent.extractive import ABSTAIN_TEXT
from concierge.agent.extractive_client import ExtractiveChatClient
from concierge.agent.knowledge import KnowledgeSearch, KnowledgeSearchFailed
from concierge.v1 import agent_pb2, retrieval_pb2

HITS = [
    retrieval_pb2.SearchHit(
        chunk_id="c-returns",
        knowledge_base="acme-help-center",
        document_id="d-returns",
        document_title="Returns and Refunds",
        source_uri="docs/returns.md",
        section="Return window",
        text="You can return any Acme device or accessory within 30 days of the delivery date.",
        score=0.033,
        vector_score=0.58,
    ),
    retrieval_pb2.SearchHit(
        chunk_id="c-refunds",
        knowledge_base="acme-help-center",
        document_id="d-returns",
        document_title="Returns and Refunds",
        source_uri="docs/returns.md",
        section="Refunds",
        text="Refunds go back to the original payment method within 5 business days.",
        score=0.031,
        vector_score=0.44,
    ),
]


class FakeRetrieval:
    """Records Search requests and answers with fixed hits (or fails, like a dead server)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.requests: list[retrieval_pb2.SearchRequest] = []
        self.fail = fail

    async def Search(self, request: retrieval_pb2.SearchRequest, **call_options: Any) -> Any:
        self.requests.append(request)
        if self.fail:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="connection refused"
            )
        return retrieval_pb2.SearchResponse(hits=HITS)


def knowledge(retrieval: FakeRetrieval, knowledge_bases: list[str] | None = None) -> KnowledgeSearch:
    return KnowledgeSearch(
        retrieval=retrieval,  # type: ignore[arg-type]
        retrieval_address="retrieval:50051",
        tenant="acme",
        knowledge_bases=["acme-help-center"] if knowledge_bases is None else knowledge_bases,
        top_k=5,
        timeout=5,
    )


async def run_turn(search: KnowledgeSearch, question: str) -> tuple[list[agent_pb2.ChatResponse], EventMapper]:
    client = ExtractiveChatClient(min_vector_score=0.3, greeting="Hello from Acme!")
    agent = Agent(client, instructions="Be helpful.", name="acme-support", tools=[search.tool()])
    mapper = EventMapper()
    events: list[agent_pb2.ChatResponse] = []
    stream = agent.run([Message(role="user", contents=[question])], stream=True)
    async for update in stream:
        events.extend(mapper.map(update))
    await stream.get_final_response()
    return events, mapper


async def test_extractive_agent_searches_with_the_question_then_answers_from_the_result() -> None:
    retrieval = FakeRetrieval()
    search = knowledge(retrieval)
    events, mapper = await run_turn(search, "How many days do I have to return my robot?")
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[:2] == ["tool_call", "tool_call"]
    assert json.loads(events[0].tool_call.arguments_json) == {"query": "How many days do I have to return my robot?"}
    assert kinds.count("text_delta") > 3
    assert "within 30 days of the delivery date [1]." in mapper.text
    assert [c.source_uri for c in mapper.citations(search.passages)] == ["docs/returns.md"]
    (request,) = retrieval.requests
    assert (request.tenant, list(request.knowledge_bases), request.top_k) == ("acme", ["acme-help-center"], 5)


async def test_the_model_cannot_choose_where_the_tool_searches() -> None:
    retrieval = FakeRetrieval()
    tool = knowledge(retrieval).tool()
    assert set(tool.parameters()["properties"]) == {"query"}
    await tool.invoke(arguments={"query": "returns", "tenant": "globex", "knowledge_bases": ["globex-secrets"]})
    assert [(r.tenant, list(r.knowledge_bases)) for r in retrieval.requests] == [("acme", ["acme-help-center"])]


async def test_passage_numbers_continue_across_searches_in_one_turn() -> None:
    search = knowledge(FakeRetrieval())
    first = await search.search("returns")
    second = await search.search("refunds")
    assert [p.index for p in first + second] == [1, 2, 3, 4]
    assert [p.index for p in search.passages] == [1, 2, 3, 4]


async def test_retrieval_failure_stops_the_turn_with_a_precise_error() -> None:
    search = knowledge(FakeRetrieval(fail=True))
    with pytest.raises(KnowledgeSearchFailed) as caught:
        await run_turn(search, "How long is the return window?")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert str(caught.value) == (
        "knowledge search failed: retrieval service at retrieval:50051 returned UNAVAILABLE: connection refused"
    )


async def test_an_agent_without_knowledge_bases_never_calls_retrieval_and_abstains() -> None:
    retrieval = FakeRetrieval()
    _, mapper = await run_turn(knowledge(retrieval, []), "How long is the return window?")
    assert retrieval.requests == []
    assert mapper.text == ABSTAIN_TEXT


async def test_greeting_is_answered_without_a_tool_call() -> None:
    retrieval = FakeRetrieval()
    events, mapper = await run_turn(knowledge(retrieval), "hello")
    assert all(e.WhichOneof("event") == "text_delta" for e in events)
    assert mapper.text == "Hello from Acme!"
    assert retrieval.requests == []
