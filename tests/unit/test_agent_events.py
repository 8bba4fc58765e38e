"""Mapping Agent Framework updates to ChatResponse events, and citations from [n] markers."""

from __future__ import annotations

import json

from agent_framework import AgentResponseUpdate, Content

from concierge.agent.events import EventMapper
from concierge.agent.knowledge import PASSAGES_PROPERTY
from concierge.agent.passages import Passage, cited_indices, format_passages, snippet

PASSAGES = [
    Passage(
        index=1,
        text="You can return any Acme device within 30 days of the delivery date. Gift cards cannot be returned.",
        title="Returns and Refunds",
        section="Return window",
        knowledge_base="acme-help-center",
        document_id="doc-1",
        source_uri="docs/returns.md",
        chunk_id="chunk-1",
        score=0.033,
        vector_score=0.61,
    ),
    Passage(index=2, text="Refunds take 3 to 10 business days.", title="Returns and Refunds", section="Refunds"),
]


def update(*contents: Content) -> AgentResponseUpdate:
    return AgentResponseUpdate(role="assistant", contents=list(contents))


def result_with_passages(call_id: str) -> Content:
    item = Content.from_text(
        format_passages(PASSAGES), additional_properties={PASSAGES_PROPERTY: [p.to_dict() for p in PASSAGES]}
    )
    return Content.from_function_result(call_id, result=[item])


def test_text_deltas_pass_through_in_order_and_build_the_answer() -> None:
    mapper = EventMapper()
    events = [e for part in ("Within ", "30 days ", "[1].") for e in mapper.map(update(Content.from_text(part)))]
    assert [e.text_delta.text for e in events] == ["Within ", "30 days ", "[1]."]
    assert mapper.text == "Within 30 days [1]."


def test_tool_call_is_announced_once_its_streamed_arguments_are_complete() -> None:
    mapper = EventMapper()
    fragments = [
        Content.from_function_call("call-1", "search_knowledge", arguments=""),
        Content.from_function_call("", "", arguments='{"query": "ret'),
        Content.from_function_call("", "", arguments='urn window"}'),
    ]
    events = [e for c in fragments for e in mapper.map(update(c))]
    assert len(events) == 1
    started = events[0].tool_call
    assert (started.call_id, started.name, started.finished) == ("call-1", "search_knowledge", False)
    assert json.loads(started.arguments_json) == {"query": "return window"}


def test_finished_tool_call_summarises_passages_without_their_text() -> None:
    mapper = EventMapper()
    mapper.map(update(Content.from_function_call("c1", "search_knowledge", arguments={"query": "refund"})))
    (event,) = mapper.map(update(result_with_passages("c1")))
    finished = event.tool_call
    assert finished.finished
    assert finished.call_id == "c1"
    assert finished.name == "search_knowledge"
    assert finished.result_summary == (
        "2 passages: [1] Returns and Refunds > Return window; [2] Returns and Refunds > Refunds"
    )
    details = json.loads(finished.arguments_json)
    assert [p["index"] for p in details["passages"]] == [1, 2]
    assert "30 days" not in finished.arguments_json


def test_a_result_without_a_seen_call_still_yields_a_started_and_finished_pair() -> None:
    mapper = EventMapper()
    events = mapper.map(update(Content.from_function_result("c9", result="ok")))
    assert [(e.tool_call.call_id, e.tool_call.finished) for e in events] == [("c9", False), ("c9", True)]


def test_failed_tool_result_is_reported_as_failed() -> None:
    mapper = EventMapper()
    mapper.map(update(Content.from_function_call("c1", "search_knowledge", arguments={"query": "x"})))
    (event,) = mapper.map(update(Content.from_function_result("c1", result="Error", exception="boom")))
    assert event.tool_call.result_summary == "failed: boom"


def test_usage_is_summed_and_replaced_by_running_totals() -> None:
    mapper = EventMapper()
    mapper.map(update(Content.from_usage({"input_token_count": 10, "output_token_count": 2})))
    mapper.map(update(Content.from_usage({"input_token_count": 5, "output_token_count": 1})))
    assert (mapper.input_tokens, mapper.output_tokens) == (15, 3)
    mapper.map(update(Content.from_usage({"input_token_count": 40, "output_token_count": 9}, merge_mode="replace")))
    assert (mapper.input_tokens, mapper.output_tokens) == (40, 9)


def test_one_citation_per_cited_passage_in_order_of_first_mention() -> None:
    mapper = EventMapper()
    mapper.map(update(Content.from_text("Refunds take a while [2]. Returns within 30 days [1][2]. Nope [7].")))
    citations = mapper.citations(PASSAGES)
    assert [c.index for c in citations] == [2, 1]
    first = citations[1]
    assert (first.document_title, first.section, first.source_uri, first.chunk_id) == (
        "Returns and Refunds",
        "Return window",
        "docs/returns.md",
        "chunk-1",
    )
    assert first.knowledge_base == "acme-help-center"
    assert first.document_id == "doc-1"
    assert abs(first.score - 0.033) < 1e-6
    assert first.snippet.startswith("You can return any Acme device within 30 days")


def test_markers_are_parsed_in_all_common_shapes() -> None:
    assert cited_indices("a [1] b [2, 3] c [3][4] d [1,5] e [x] f [12a]") == [1, 2, 3, 4, 5]


def test_snippet_picks_the_sentence_that_supports_the_answer() -> None:
    text = "Intro line. Gift cards cannot be returned. Something else entirely."
    assert snippet(text, "Gift cards are not returnable, sorry").startswith("Gift cards cannot be returned.")
    assert len(snippet("word " * 200, "")) <= 301


def test_passages_reach_the_model_numbered_with_their_source() -> None:
    text = format_passages(PASSAGES)
    assert text.startswith("[1] Returns and Refunds > Return window\nYou can return")
    assert "\n\n[2] Returns and Refunds > Refunds\n" in text
    assert format_passages([]) == "No passages found in the knowledge base for this query."
