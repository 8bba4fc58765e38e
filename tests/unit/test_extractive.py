"""The extractive composer: which sentences it quotes, how it cites them, and when it abstains.

Also its chat client's use of the embedding service (meaning-based scoring, follow-up search, fallback).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import pytest
from agent_framework import Content, Message

from concierge.agent import extractive
from concierge.agent.extractive import (
    answer,
    combined_relevance,
    embedding_texts,
    follow_up_query,
    semantic_relevance,
    small_talk_reply,
    split_units,
    stem,
    terms,
    word_groups,
)
from concierge.agent.extractive_client import ExtractiveChatClient, SentenceEmbedder
from concierge.agent.knowledge import PASSAGES_PROPERTY, TOOL_NAME
from concierge.agent.passages import Passage, cited_indices
from concierge.v1 import embedding_pb2

RETURNS = Passage(
    index=1,
    title="Returns and Refunds",
    section="Return window",
    source_uri="docs/returns.md",
    vector_score=0.62,
    score=0.033,
    text=(
        "You can return any Acme device or accessory within **30 days of the delivery date**. For orders "
        "delivered between 15 November and 31 December, the return window is extended to **31 January** of "
        "the following year.\n\nProducts bought from another retailer must be returned to that retailer."
    ),
)
CHARGING = Passage(
    index=2,
    title="Battery and Charging",
    section="Runtime and charging time",
    source_uri="docs/battery-and-charging.md",
    vector_score=0.55,
    score=0.031,
    text=(
        "| | Sweepy S1 | Sweepy S2 Pro |\n|---|---|---|\n"
        "| Runtime in Standard mode | About 90 minutes | About 150 minutes |\n"
        "| Full charge from empty | About 4 hours | About 5 hours |\n\n"
        "Runtime is shorter on carpet and when Carpet Boost is on."
    ),
)
NOT_CHARGING = Passage(
    index=3,
    title="Battery and Charging",
    section="Battery not charging",
    source_uri="docs/battery-and-charging.md",
    vector_score=0.58,
    score=0.030,
    text=(
        "If the robot does not charge, or shows error E9, check these in order:\n\n"
        "1. **Dock power.** The white light on the front of the dock should be on.\n"
        "2. **Charging contacts.** Wipe the two metal contacts under the robot with a clean, dry cloth.\n"
        "3. **Alignment.** Place the robot on the dock by hand.\n\n"
        "If the robot still does not charge after these steps, contact Acme Support."
    ),
)
MAPS = Passage(
    index=4,
    title="Maps and Zones",
    section="No-go zones",
    source_uri="docs/maps-and-zones.md",
    vector_score=0.41,
    score=0.028,
    text=(
        "A no-go zone is a rectangle on the map that the robot will not enter, for example around a pet's "
        "water bowl, a play area or a rug with tassels. The S2 Pro saves up to 4 maps."
    ),
)

ERRORS = Passage(
    index=5,
    title="Robot Error Codes E1 to E9",
    section="Clearing an error",
    source_uri="docs/error-codes.md",
    document_id="d-errors",
    vector_score=0.62,
    score=0.034,
    text=(
        "After fixing the cause, press the power button to clear the error and continue cleaning. If the same "
        "error returns after you have fixed the cause, restart the robot by holding the power button for "
        "10 seconds, then turn it on again."
    ),
)
RETURN_CONDITION = Passage(
    index=6,
    title="Returns and Refunds",
    section="Condition of returned items",
    source_uri="docs/returns.md",
    document_id="d-returns",
    vector_score=0.48,
    score=0.031,
    text=(
        "- Return the product with all parts, accessories, cables and manuals that came with it.\n"
        "- Remove your robot from your Acme account first, or do a factory reset."
    ),
)
MAINTENANCE = Passage(
    index=7,
    title="Maintenance and Cleaning Schedule",
    section="How often to clean and replace parts",
    source_uri="docs/maintenance.md",
    vector_score=0.5,
    score=0.03,
    text=(
        "| Part | Clean | Replace |\n|---|---|---|\n"
        "| Filter | Tap clean once a week | Every 3 months |\n"
        "| Main brush | Remove hair once a week | Every 6 months |"
    ),
)

MIN = 0.3


def similarities(
    passages: Sequence[Passage], by_phrase: Mapping[str, float], default: float = 0.25
) -> dict[str, float]:
    """What an embedding model would say: each piece's similarity, set by a phrase it contains."""
    return {t: next((v for k, v in by_phrase.items() if k in t), default) for t in embedding_texts(passages)}


def sentences_cited_as(text: str, index: int) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?:])\s+|\n", text) if f"[{index}]" in s]


def test_numeric_question_is_answered_with_the_sentence_holding_the_number() -> None:
    reply = answer("How many days do I have to send my Sweepy back?", [RETURNS, CHARGING, MAPS], min_vector_score=MIN)
    assert not reply.abstained
    assert "30 days of the delivery date [1]." in reply.text
    assert reply.cited[0] == 1


def test_table_row_answers_with_its_column_headers() -> None:
    reply = answer("How long does it take to fully charge the S1?", [CHARGING, RETURNS], min_vector_score=MIN)
    assert reply.text.startswith("Full charge from empty — Sweepy S1: About 4 hours")
    assert "Runtime in Standard mode" not in reply.text
    assert reply.cited == (2,)


def test_described_problem_gets_the_numbered_steps_in_order_with_their_lead_in() -> None:
    reply = answer("my robot sits on the dock but never charges", [NOT_CHARGING, CHARGING], min_vector_score=MIN)
    lines = reply.text.splitlines()
    assert lines[0] == "If the robot does not charge, or shows error E9, check these in order [3]:"
    assert [line[:2] for line in lines[1:4]] == ["1.", "2.", "3."]
    assert "metal contacts" in reply.text


@pytest.mark.parametrize(
    "question",
    [
        "Do you sell a robot lawn mower?",
        "Are you hiring? I'd like to apply for a job.",
        "What's the capital of France?",
    ],
)
def test_abstains_when_the_passages_do_not_cover_the_question(question: str) -> None:
    reply = answer(question, [RETURNS, CHARGING, NOT_CHARGING, MAPS], min_vector_score=MIN)
    assert reply.abstained
    assert reply.cited == ()
    assert reply.text == extractive.ABSTAIN_TEXT
    assert "[" not in reply.text


def test_abstains_when_the_best_passage_is_below_the_similarity_threshold() -> None:
    reply = answer("How many days do I have to return it?", [RETURNS], min_vector_score=0.7)
    assert reply.abstained
    assert reply.cited == ()


def test_every_marker_names_a_passage_that_holds_the_quoted_text() -> None:
    passages = [RETURNS, CHARGING, NOT_CHARGING, MAPS]
    by_index = {p.index: p for p in passages}
    for question in (
        "How long is the return window for orders delivered in December?",
        "How long does a full charge take on the S2 Pro?",
        "Can I stop the robot from entering the play area?",
    ):
        reply = answer(question, passages, min_vector_score=MIN)
        assert not reply.abstained, question
        assert set(cited_indices(reply.text)) == set(reply.cited)
        for n in reply.cited:
            source = re.sub(r"\W+", " ", by_index[n].text.replace("**", "")).lower()
            for quoted in sentences_cited_as(reply.text, n):
                words = re.sub(r"\W+", " ", re.sub(r"\[\d+\]", " ", quoted)).lower().split()
                # Table rows are re-rendered with headers; every quoted word still comes from the passage.
                assert set(words) <= set(source.split()) | set(re.sub(r"\W+", " ", by_index[n].text).lower().split())


def test_answer_uses_at_most_four_units_from_at_most_three_passages() -> None:
    reply = answer("robot charge dock return map", [RETURNS, CHARGING, NOT_CHARGING, MAPS], min_vector_score=MIN)
    assert len(reply.cited) <= 3
    assert len(re.findall(r"\[\d+\]", reply.text)) <= 4


def test_a_question_without_content_words_is_answered_with_a_clarifying_question() -> None:
    reply = answer("how do I do it?", [RETURNS], min_vector_score=MIN)
    assert reply.abstained
    assert reply.text == extractive.CLARIFY_TEXT


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi", "GREETING"),
        ("Hello there!", "GREETING"),
        ("thank you so much", extractive.THANKS_TEXT),
        ("thanks!", extractive.THANKS_TEXT),
        ("ok bye", extractive.GOODBYE_TEXT),
        ("hi, my robot will not charge", None),
        ("thanks, and how long is the warranty?", None),
    ],
)
def test_small_talk_gets_a_short_reply_and_questions_do_not(text: str, expected: str | None) -> None:
    assert small_talk_reply(text, "GREETING") == expected


def test_stemming_meets_inflections_and_general_phrases_but_no_product_vocabulary() -> None:
    assert len({stem(w) for w in ("charge", "charges", "charging", "charged")}) == 1
    assert stem("batteries") == stem("battery")
    assert stem("apply") != stem("app")
    assert terms("send it back") == terms("return")
    # Which words mean the same product is the embedding model's business, not a table in the code.
    assert terms("my vacuum's base") == {stem("vacuum"), stem("base")}
    assert "wifi" in terms("Wi-Fi")
    assert "wifi" in terms("wifi")
    assert {"5", "ghz"} <= terms("5GHz")
    assert terms("United States") <= terms("free delivery in the US")


def test_units_keep_list_items_whole_and_drop_a_sentence_cut_by_chunk_overlap() -> None:
    passage = Passage(
        index=1,
        text=(
            "the previous chunk ended mid-sentence here. The battery lasts about 500 cycles.\n\n"
            "- Filters: every 3 months\n  when used daily\n- Brushes: every 6 months\n\n"
            "This sentence was cut at the chunk"
        ),
    )
    units = split_units(passage)
    assert [(u.kind, u.text) for u in units] == [
        ("sentence", "The battery lasts about 500 cycles."),
        ("item", "Filters: every 3 months when used daily"),
        ("item", "Brushes: every 6 months"),
    ]


def test_sentences_do_not_split_after_abbreviations() -> None:
    assert extractive.split_sentences("Use a soft cloth, e.g. microfibre. Then dry it.") == [
        "Use a soft cloth, e.g. microfibre.",
        "Then dry it.",
    ]
    assert extractive.split_sentences("No. Neither model recognises pet waste.") == [
        "No. Neither model recognises pet waste."
    ]


def test_word_groups_stream_the_exact_text() -> None:
    text = "First line with words [1].\n\n1. A step [1].\n2. Another step [2]."
    groups = word_groups(text, 3)
    assert "".join(groups) == text
    assert all(len(g.split()) <= 3 for g in groups)
    assert len(groups) > 3


# --- scoring by meaning -------------------------------------------------------------------


def test_semantic_relevance_maps_similarity_between_floor_and_full_match_onto_zero_to_one() -> None:
    floor, full = extractive.SIM_FLOOR, extractive.SIM_FLOOR + extractive.SIM_SPAN
    assert semantic_relevance(floor - 0.3) == 0.0
    assert semantic_relevance(floor) == 0.0
    assert semantic_relevance(full) == pytest.approx(1.0)
    assert semantic_relevance(0.99) == 1.0
    assert 0 < semantic_relevance(floor + 0.1) < semantic_relevance(floor + 0.2) < 1


def test_combined_relevance_is_word_overlap_alone_without_a_similarity() -> None:
    assert combined_relevance(0.4, None) == 0.4


def test_combined_relevance_lets_meaning_outrank_shared_words() -> None:
    full = extractive.SIM_FLOOR + extractive.SIM_SPAN
    # A sentence sharing no word but meaning the question beats one sharing words by accident.
    assert combined_relevance(0.0, full) > combined_relevance(0.6, extractive.SIM_FLOOR)
    # With equal meaning, shared words still decide.
    assert combined_relevance(0.6, 0.5) > combined_relevance(0.2, 0.5)
    assert 0.0 <= combined_relevance(0.0, -1.0) <= combined_relevance(1.0, 1.0) == 1.0


def test_meaning_picks_the_return_window_over_a_sentence_that_shares_the_words_return_and_robot() -> None:
    question = "How long do I have to return my robot?"
    passages = [ERRORS, RETURNS, MAPS]
    lexical = answer(question, passages, min_vector_score=MIN)
    assert lexical.text.startswith("If the same error returns")  # the failure this fixes
    reply = answer(
        question,
        passages,
        min_vector_score=MIN,
        similarities=similarities(passages, {"30 days": 0.62, "error returns": 0.45}),
    )
    assert reply.text.startswith("You can return any Acme device or accessory within 30 days")
    assert reply.cited[0] == RETURNS.index
    assert reply.similarity == pytest.approx(0.62)


def test_a_close_meaning_answers_although_the_question_uses_other_words() -> None:
    question = "how often should I swap out the filter thingy?"
    assert answer(question, [MAINTENANCE], min_vector_score=MIN).abstained  # "swap", "thingy" appear nowhere
    reply = answer(
        question, [MAINTENANCE], min_vector_score=MIN, similarities=similarities([MAINTENANCE], {"Filter": 0.7})
    )
    assert not reply.abstained
    assert reply.text.startswith("Filter")
    assert "Every 3 months" in reply.text


def test_a_loose_meaning_does_not_overrule_the_words_the_passages_lack() -> None:
    passages = [RETURNS, CHARGING, MAPS]
    sims = similarities(passages, {}, default=0.5)  # everything vaguely "about robots"
    reply = answer("Do you sell a robot lawn mower?", passages, min_vector_score=MIN, similarities=sims)
    assert reply.abstained
    assert reply.text == extractive.ABSTAIN_TEXT


def test_pieces_missing_from_the_similarities_count_as_unrelated() -> None:
    question = "How long do I have to return my robot?"
    only_error = {t: 0.45 for t in embedding_texts([ERRORS])}
    reply = answer(question, [ERRORS, RETURNS], min_vector_score=MIN, similarities=only_error)
    assert reply.cited[0] == ERRORS.index


def test_embedding_text_puts_the_title_and_section_above_the_piece() -> None:
    (first, *_) = split_units(RETURNS)
    assert first.embedding_text == (
        "Returns and Refunds > Return window\n\n"
        "You can return any Acme device or accessory within 30 days of the delivery date."
    )
    assert len(embedding_texts([RETURNS, RETURNS])) == len(split_units(RETURNS))


def test_subject_words_of_the_knowledge_base_are_not_held_against_the_passages() -> None:
    question = "How long can I return a vacuum?"
    passages = [RETURNS, CHARGING, MAPS]
    assert answer(question, passages, min_vector_score=MIN).abstained  # "vacuum" is in no passage
    reply = answer(question, passages, min_vector_score=MIN, scope="Help center for our robot vacuums.")
    assert "30 days of the delivery date [1]." in reply.text
    # A word the knowledge base does not claim to cover still counts as missing.
    assert answer("How long can I return a lawnmower?", passages, min_vector_score=MIN, scope="robot vacuums").abstained


def test_a_chunk_found_by_two_searches_is_quoted_once_under_its_first_number() -> None:
    again = Passage(**{**RETURNS.to_dict(), "index": 9})
    reply = answer("How many days do I have to send it back?", [RETURNS, again], min_vector_score=MIN)
    assert reply.cited == (1,)


def test_follow_up_searches_the_closest_document_when_it_lacks_the_value_asked_for() -> None:
    question = "How long do I have to return my robot vacuum?"
    passages = [ERRORS, RETURN_CONDITION]
    sims = similarities(passages, {"Remove your robot": 0.48, "error returns": 0.43})
    assert (
        follow_up_query(question, passages, sims)
        == "Returns and Refunds: How long do I have to return my robot vacuum?"
    )


def test_no_follow_up_when_the_closest_document_holds_the_value_or_nothing_is_asked_for() -> None:
    passages = [ERRORS, RETURNS]
    sims = similarities(passages, {"30 days": 0.6})
    assert follow_up_query("How long do I have to return my robot?", passages, sims) is None
    condition = [RETURN_CONDITION]
    assert follow_up_query("Can I return my robot?", condition, similarities(condition, {})) is None


# --- the chat client and the embedding service ----------------------------------------------


class FakeEmbedding:
    """An embedding service whose vectors give each piece the similarity to any query set by a phrase in it."""

    def __init__(self, by_phrase: Mapping[str, float] | None = None, *, fail: bool = False) -> None:
        self.requests: list[embedding_pb2.EmbedRequest] = []
        self.by_phrase = by_phrase or {"30 days": 0.7}
        self.fail = fail

    async def Embed(self, request: embedding_pb2.EmbedRequest, **call_options: Any) -> embedding_pb2.EmbedResponse:
        self.requests.append(request)
        if self.fail:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="connection refused"
            )
        vectors = []
        for text in request.texts:
            if request.kind == embedding_pb2.EMBED_KIND_QUERY:
                similarity = 1.0
            else:
                similarity = next((v for k, v in self.by_phrase.items() if k in text), 0.3)
            vectors.append(embedding_pb2.Vector(values=[similarity, float(np.sqrt(1 - similarity**2))]))
        return embedding_pb2.EmbedResponse(vectors=vectors, model="fake", dimension=2)


def embedder(service: FakeEmbedding) -> SentenceEmbedder:
    return SentenceEmbedder(service, address="embedding:50051", timeout_s=1.0)  # type: ignore[arg-type]


def turn(question: str, *searches: Sequence[Passage]) -> list[Message]:
    """A turn as the client sees it: the question, then each search call with its result."""
    messages = [Message(role="user", contents=[question])]
    for i, found in enumerate(searches):
        call_id = f"call_{i}"
        items = [Content.from_text("passages", additional_properties={PASSAGES_PROPERTY: [p.to_dict() for p in found]})]
        messages.append(
            Message(
                role="assistant", contents=[Content.from_function_call(call_id, TOOL_NAME, arguments={"query": "q"})]
            )
        )
        messages.append(Message(role="tool", contents=[Content.from_function_result(call_id, result=items)]))
    return messages


class Tool:
    name = TOOL_NAME


OPTIONS: dict[str, Any] = {"tools": [Tool()]}


async def test_client_embeds_the_question_as_a_query_and_the_pieces_as_documents_then_answers_by_meaning() -> None:
    service = FakeEmbedding()
    client = ExtractiveChatClient(min_vector_score=MIN, greeting="Hi", embedder=embedder(service))
    (reply,) = await client.decide(turn("How long do I have to return my robot?", [ERRORS, RETURNS]), OPTIONS)
    assert (reply.text or "").startswith("You can return any Acme device or accessory within 30 days")
    kinds = sorted(r.kind for r in service.requests)
    assert kinds == [embedding_pb2.EMBED_KIND_QUERY, embedding_pb2.EMBED_KIND_DOCUMENT]
    (documents,) = [r for r in service.requests if r.kind == embedding_pb2.EMBED_KIND_DOCUMENT]
    assert sorted(documents.texts) == sorted(embedding_texts([ERRORS, RETURNS]))  # sent shortest first


async def test_client_embeds_each_text_once_across_turns() -> None:
    service = FakeEmbedding()
    client = ExtractiveChatClient(min_vector_score=MIN, greeting="Hi", embedder=embedder(service))
    messages = turn("How long do I have to return my robot?", [ERRORS, RETURNS])
    first = await client.decide(messages, OPTIONS)
    calls = len(service.requests)
    again = await client.decide(messages, OPTIONS)
    assert [c.text for c in again] == [c.text for c in first]
    assert len(service.requests) == calls


async def test_client_falls_back_to_shared_words_and_warns_when_the_embedding_service_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = ExtractiveChatClient(min_vector_score=MIN, greeting="Hi", embedder=embedder(FakeEmbedding(fail=True)))
    with caplog.at_level(logging.WARNING):
        (reply,) = await client.decide(turn("How many days do I have to send it back?", [RETURNS, MAPS]), OPTIONS)
    assert "30 days of the delivery date [1]." in (reply.text or "")
    assert "sentence scoring by word overlap only" in caplog.text
    assert "embedding service at embedding:50051 failed Embed: UNAVAILABLE: connection refused" in caplog.text


async def test_client_searches_again_within_the_closest_document_once_per_turn() -> None:
    service = FakeEmbedding({"Remove your robot": 0.48, "error returns": 0.43})
    client = ExtractiveChatClient(min_vector_score=MIN, greeting="Hi", embedder=embedder(service))
    question = "How long do I have to return my robot vacuum?"
    (call,) = await client.decide(turn(question, [ERRORS, RETURN_CONDITION]), OPTIONS)
    assert call.type == "function_call"
    assert call.name == TOOL_NAME
    assert call.arguments == {"query": f"Returns and Refunds: {question}"}
    # After the second search the client answers, whatever it found.
    (reply,) = await client.decide(turn(question, [ERRORS, RETURN_CONDITION], [ERRORS]), OPTIONS)
    assert reply.type == "text"


async def test_client_without_an_embedder_never_searches_twice() -> None:
    client = ExtractiveChatClient(min_vector_score=MIN, greeting="Hi")
    (reply,) = await client.decide(turn("How long do I have to return my robot vacuum?", [RETURN_CONDITION]), OPTIONS)
    assert reply.type == "text"
