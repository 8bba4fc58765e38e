"""The extractive composer: which sentences it quotes, how it cites them, and when it abstains."""

from __future__ import annotations

import re

import pytest

from concierge.agent import extractive
from concierge.agent.extractive import answer, small_talk_reply, split_units, stem, terms, word_groups
from concierge.agent.passages import Passage, cited_indices

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

MIN = 0.3


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


def test_stemming_meets_inflections_and_synonyms() -> None:
    assert len({stem(w) for w in ("charge", "charges", "charging", "charged")}) == 1
    assert stem("batteries") == stem("battery")
    assert stem("apply") != stem("app")
    assert terms("send it back") == terms("return")
    assert terms("my vacuum's base") == terms("robot dock")
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
