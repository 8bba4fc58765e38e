"""EscalationPolicy rules: human requests in four languages, keywords, sentiment, turn-based rules, priority."""

from __future__ import annotations

from typing import Any

import pytest

from concierge.agent import escalation
from concierge.agent import escalation_lexicon as lexicon
from concierge.agent.escalation import (
    NEGATIVE_THRESHOLD,
    Decision,
    TurnSignal,
    evaluate,
    evaluate_before_answer,
    fold,
    human_request,
    keyword_in,
    sentiment,
)
from concierge.api.resources import EscalationRules

# --- explicit request for a human ---------------------------------------------------------

ASKS_FOR_A_HUMAN = [
    # English
    ("Can I talk to a human?", "talk to a human"),
    ("I want a real person", "want a real person"),
    ("operator please", "operator please"),
    ("LIVE AGENT!!", "LIVE AGENT!!"),
    ("Please connect me with a customer service rep", "connect me with a customer service rep"),
    ("I need to speak with someone real", "speak with someone real"),
    ("let me talk to your manager", "talk to your manager"),
    ("Transfer me to an agent, please.", "Transfer me to an agent"),
    ("I don't want to talk to a bot anymore", "don't want to talk to a bot"),
    ("hello?? is anyone there", "is anyone there"),
    ("Representative.", "Representative."),
    ("I don't want to wait, get me a human", "get me a human"),
    ("Why can't I talk to a human?", "talk to a human"),
    # German
    ("Ich möchte mit einem Menschen sprechen", "mit einem Menschen sprechen"),
    ("Kann ich bitte mit einem Mitarbeiter reden?", "mit einem Mitarbeiter reden"),
    ("Ich will einen echten Menschen!", "will einen echten Menschen"),
    ("Ich möchte den Kundendienst sprechen", "möchte den Kundendienst"),
    ("Verbinden Sie mich bitte mit einem Mitarbeiter", "Verbinden Sie mich bitte mit einem Mitarbeiter"),
    ("Mitarbeiter bitte", "Mitarbeiter bitte"),
    ("Ich moechte mit einem Menschen sprechen", "mit einem Menschen sprechen"),
    ("Warum kann ich nicht mit einem Menschen sprechen?", "mit einem Menschen sprechen"),
    # French
    ("Je voudrais parler à un humain", "voudrais parler à un humain"),
    ("Puis-je parler a une personne ?", "parler a une personne"),
    ("Je veux parler à un conseiller", "veux parler à un conseiller"),
    ("un vrai humain svp", "un vrai humain svp"),
    ("Mettez-moi en relation avec un agent humain", "Mettez-moi en relation avec un agent humain"),
    ("J'ai besoin d'un conseiller", "besoin d'un conseiller"),
    ("Je ne veux plus parler à un robot", "plus parler à un robot"),
    # Spanish
    ("Quiero hablar con una persona", "hablar con una persona"),
    ("¿Puedo hablar con un humano?", "hablar con un humano"),
    ("necesito hablar con un agente", "hablar con un agente"),
    ("Quiero una persona real", "Quiero una persona real"),
    ("Páseme con un asesor, por favor", "Páseme con un asesor"),
    ("¿Me pueden comunicar con un asesor?", "con un asesor"),
    ("No quiero hablar con un bot", "No quiero hablar con un bot"),
]


@pytest.mark.parametrize(("text", "phrase"), ASKS_FOR_A_HUMAN, ids=[text for text, _ in ASKS_FOR_A_HUMAN])
def test_an_explicit_request_for_a_human_is_found_and_quoted_in_the_customers_words(text: str, phrase: str) -> None:
    assert human_request(text) == phrase


DOES_NOT_ASK_FOR_A_HUMAN = [
    # naming a human is not asking for one
    "Is the Sweepy a human-like robot?",
    "The person who delivered it was rude",
    "Can an agent in the app reset my map?",
    "Do you support humanitarian organisations?",
    "I need the manager app",
    "How do I contact support?",
    "I'm tired of the robot getting stuck",
    # negated
    "I don't need to talk to a human, just tell me the warranty",
    "Ich möchte nicht mit einem Menschen sprechen",
    "No quiero hablar con una persona, solo dime el horario",
    # a question about who is answering
    "Am I talking to a real person?",
    "Êtes-vous un vrai humain ?",
    "¿Eres una persona real?",
    "Bin ich mit einem echten Menschen verbunden?",
    # someone already met
    "The live agent I spoke to yesterday was great",
    "A customer service rep told me it was covered",
    "Der Mitarbeiter war unfreundlich",
    "Ich habe schon mit einem Mitarbeiter gesprochen",
    "L'agent humain m'a raccroché au nez",
    "La personne qui a livré le colis était impolie",
    "Hablé con un asesor ayer",
    # the product is a robot: refusing it is not refusing the bot
    "Ich will keinen Roboter mehr",
    "J'en ai marre de ce robot, il se bloque",
]


@pytest.mark.parametrize("text", DOES_NOT_ASK_FOR_A_HUMAN)
def test_mentioning_a_human_without_asking_for_one_is_not_a_request(text: str) -> None:
    assert human_request(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "can i talk to a human",
        "CAN I TALK TO A HUMAN???",
        "Can I talk to a   human !",
        "can i talk to a HUMAN, please",
        "Je voudrais parler a un humain",
        "JE VOUDRAIS PARLER À UN HUMAIN",
        "Ich möchte mit einem Menschen sprechen",
        "ich mochte mit einem menschen sprechen",
        "¿puedo hablar con un humano?",
        "Puedo hablar con un humano",
    ],
)
def test_case_accents_and_punctuation_do_not_matter(text: str) -> None:
    assert human_request(text) is not None


# --- keywords -----------------------------------------------------------------------------

KEYWORD_CASES = [
    (["fire"], "My dock caught fire!", "fire"),
    (["fire"], "there are FIRES everywhere", "fire"),
    (["fire"], "The firewall blocks the app", None),
    (["fire"], "a smoke-filled room and fire-damaged carpet", "fire"),
    (["smoke"], "a smoke-filled room", "smoke"),
    (["burning smell"], "There's a Burning   Smell coming from it", "burning smell"),
    (["burning smell"], "the smell of burning toast", None),
    (["legal action"], "we will take legal-action", "legal action"),
    (["Rückerstattung"], "Ich will eine RUCKERSTATTUNG", "Rückerstattung"),
    (["démission"], "ma demission", "démission"),
    (["lawyer"], "my lawyer's letter", "lawyer"),
    (["avocat"], "j'appelle l'avocat", "avocat"),
    (["sue"], "pursue it", None),
    (["lawyer", "fraud"], "this is fraud, my lawyer agrees", "lawyer"),
    (["", "  "], "anything", None),
]


@pytest.mark.parametrize(("keywords", "text", "expected"), KEYWORD_CASES)
def test_keywords_match_whole_words_and_phrases_in_any_case_or_accents(
    keywords: list[str], text: str, expected: str | None
) -> None:
    found = keyword_in(keywords, text)
    assert (found[0] if found else None) == expected


# --- sentiment ----------------------------------------------------------------------------

UPSET = [
    "This is useless",
    "You are the worst assistant ever",
    "I'm not happy with this at all",
    "Thanks for nothing",
    "Das ist nutzlos",
    "Ich bin nicht zufrieden",
    "Das ist eine Frechheit!",
    "C'est nul",
    "Franchement, c'est n'importe quoi",
    "ça ne sert à rien",
    "Es pésimo",
    "No sirve para nada",
    "Estoy harto de esto",
    "The robot is great but your support is useless",
    "😡😡",
]


@pytest.mark.parametrize("text", UPSET)
def test_an_upset_customer_scores_below_the_threshold(text: str) -> None:
    assert sentiment(text) < NEGATIVE_THRESHOLD


NOT_UPSET = [
    "How do I cancel my subscription?",
    "My Sweepy shows error E12 and doesn't start",  # a broken product is a fact, not a mood
    "The dock's waste bag is full",
    "The suction is bad",  # mild, and not amplified
    "not bad",
    "nicht schlecht",
    "pas mal",
    "no está mal",
    "Kannst du mal schauen?",  # German "mal" is "once", not "bad"
    "Der Roboter saugt das Bad nicht",  # German "Bad" is a bathroom
    "Thanks, that was helpful!",
    "Merci beaucoup, c'est parfait",
    "Vielen Dank, super!",
    "¡Muchas gracias, genial!",
]


@pytest.mark.parametrize("text", NOT_UPSET)
def test_a_calm_or_pleased_customer_scores_above_the_threshold(text: str) -> None:
    assert sentiment(text) >= NEGATIVE_THRESHOLD


@pytest.mark.parametrize(
    ("negated", "plain"),
    [
        ("not bad", "bad"),
        ("nicht schlecht", "schlecht"),
        ("c'est pas mal", "c'est mal"),
        ("no está mal", "está mal"),
        ("not helpful", "helpful"),
        ("nicht hilfreich", "hilfreich"),
        ("je n'aime pas", "j'aime"),
        ("no me gusta", "me gusta"),
        ("Das gefällt mir nicht", "Das gefällt mir"),
    ],
)
def test_negation_reverses_the_sentiment_of_a_word(negated: str, plain: str) -> None:
    assert (sentiment(negated) > 0) != (sentiment(plain) > 0)
    assert sentiment(negated) != 0


@pytest.mark.parametrize(
    ("stronger", "weaker"),
    [
        ("very bad", "bad"),
        ("sehr schlecht", "schlecht"),
        ("vraiment nul", "nul"),
        ("muy malo", "malo"),
        ("USELESS", "useless"),
        ("Terrible!!!", "Terrible"),
        ("very helpful", "helpful"),
    ],
)
def test_intensifiers_capitals_and_exclamations_amplify(stronger: str, weaker: str) -> None:
    assert abs(sentiment(stronger)) > abs(sentiment(weaker))


def test_sentiment_is_between_minus_one_and_one_and_zero_without_feelings() -> None:
    assert sentiment("") == 0
    assert sentiment("Where is the serial number?") == 0
    assert -1 < sentiment("WORST. SERVICE. EVER. USELESS, PATHETIC, RIDICULOUS!!!!!") < -0.9
    assert 0.9 < sentiment("Thank you so much, amazing, perfect, wonderful help!!!") < 1


# --- the rules over turns -----------------------------------------------------------------


def rules(**overrides: Any) -> EscalationRules:
    """Every rule off, then the ones a test turns on."""
    base: dict[str, Any] = {
        "human_request": False,
        "keywords": [],
        "negative_sentiment": {"enabled": False, "turns": 2},
        "low_confidence": {"enabled": False, "turns": 2, "threshold": 0.35},
        "max_turns": 0,
    }
    return EscalationRules.model_validate(base | overrides)


def turns(*texts: str, confidences: list[float | None] | None = None) -> list[TurnSignal]:
    scores = confidences or [None] * len(texts)
    return [TurnSignal(text, score) for text, score in zip(texts, scores, strict=True)]


def scored(*confidences: float | None) -> list[TurnSignal]:
    return [TurnSignal("How do I descale it?", c) for c in confidences]


UPSET_TURN = "This is useless!"
CALM_TURN = "Where is the filter?"


@pytest.mark.parametrize(
    ("n", "history", "fires"),
    [
        (2, [CALM_TURN, UPSET_TURN], False),
        (2, [UPSET_TURN, UPSET_TURN], True),
        (3, [UPSET_TURN, UPSET_TURN], False),  # fewer turns than N
        (3, [CALM_TURN, UPSET_TURN, UPSET_TURN], False),
        (3, [UPSET_TURN, UPSET_TURN, UPSET_TURN], True),
        (2, [UPSET_TURN, CALM_TURN, UPSET_TURN], False),  # not in a row
        (1, [CALM_TURN, UPSET_TURN], True),
    ],
)
def test_negative_sentiment_fires_when_the_last_n_turns_are_all_upset(n: int, history: list[str], fires: bool) -> None:
    decision = evaluate(rules(negative_sentiment={"enabled": True, "turns": n}), turns(*history))
    assert (decision is not None and decision.rule == "negative_sentiment") == fires


@pytest.mark.parametrize(
    ("n", "confidences", "fires"),
    [
        (2, [0.8, 0.2], False),
        (2, [0.2, 0.2], True),
        (2, [0.2], False),  # fewer scored turns than N
        (3, [0.9, 0.1, 0.1], False),
        (3, [0.1, 0.1, 0.1], True),
        (2, [0.2, 0.35], False),  # at the threshold is not below it
        (2, [0.2, None, 0.2], True),  # a turn without a confidence is skipped
        (2, [0.2, 0.2, None], True),  # the current turn before retrieval
        (2, [0.8, 0.2, None], False),
        (2, [None, None], False),
    ],
)
def test_low_confidence_fires_when_the_last_n_scored_turns_are_below_the_threshold(
    n: int, confidences: list[float | None], fires: bool
) -> None:
    policy = rules(low_confidence={"enabled": True, "turns": n, "threshold": 0.35})
    decision = evaluate(policy, scored(*confidences))
    assert (decision is not None and decision.rule == "low_confidence") == fires


@pytest.mark.parametrize(("count", "fires"), [(4, False), (5, True), (6, True)])
def test_max_turns_fires_when_the_conversation_reaches_the_limit(count: int, fires: bool) -> None:
    decision = evaluate(rules(max_turns=5), turns(*[CALM_TURN] * count))
    assert (decision is not None and decision.rule == "max_turns") == fires


def test_human_request_and_keywords_look_only_at_the_current_turn() -> None:
    policy = rules(human_request=True, keywords=["lawyer"])
    assert evaluate(policy, turns("I want a human", "my lawyer says hi", CALM_TURN)) is None
    assert evaluate(policy, turns(CALM_TURN, "I want a human")) == Decision(
        "human_request", 'the customer asked for a human ("want a human")'
    )


EVERYTHING_ON = rules(
    human_request=True,
    keywords=["lawyer"],
    negative_sentiment={"enabled": True, "turns": 2},
    low_confidence={"enabled": True, "turns": 2, "threshold": 0.35},
    max_turns=3,
)


@pytest.mark.parametrize(
    ("history", "rule"),
    [
        (["This is useless!", "Useless!!", "Useless! I want a human, my lawyer agrees!"], "human_request"),
        (["This is useless!", "Useless!!", "Useless, my lawyer will hear of this!"], "keyword"),
        (["This is useless!", "Useless!!", "Useless!!!"], "negative_sentiment"),
        ([CALM_TURN, "Useless!!", "Useless!!!"], "negative_sentiment"),
        ([CALM_TURN, CALM_TURN, CALM_TURN], "low_confidence"),
        ([CALM_TURN, CALM_TURN], "low_confidence"),
    ],
)
def test_when_several_rules_fire_the_highest_priority_wins(history: list[str], rule: str) -> None:
    decision = evaluate(EVERYTHING_ON, turns(*history, confidences=[0.1] * len(history)))
    assert decision is not None
    assert decision.rule == rule


def test_max_turns_fires_last() -> None:
    decision = evaluate(EVERYTHING_ON, turns(CALM_TURN, CALM_TURN, CALM_TURN, confidences=[0.9, 0.1, 0.1]))
    assert decision is not None
    assert decision.rule == "low_confidence"
    decision = evaluate(EVERYTHING_ON, turns(CALM_TURN, CALM_TURN, CALM_TURN, confidences=[0.1, 0.9, 0.1]))
    assert decision is not None
    assert decision.rule == "max_turns"


def test_before_the_answer_low_confidence_is_not_evaluated() -> None:
    history = turns(CALM_TURN, CALM_TURN, confidences=[0.1, 0.1])
    assert evaluate_before_answer(EVERYTHING_ON, history) is None
    assert evaluate_before_answer(EVERYTHING_ON, [*history, TurnSignal(CALM_TURN, None)]) == Decision(
        "max_turns", "the conversation reached 3 customer turns (limit 3)"
    )
    assert evaluate_before_answer(EVERYTHING_ON, turns(CALM_TURN, "talk to a human please")) is not None


# Each turn would fire every rule, were it on.
TRIGGERING = turns("Useless!!", "Useless!! I want a human, my lawyer agrees!", confidences=[0.1, 0.1])


@pytest.mark.parametrize(
    ("rule", "on", "off"),
    [
        ("human_request", {"human_request": True}, {"human_request": False}),
        ("keyword", {"keywords": ["lawyer"]}, {"keywords": []}),
        (
            "negative_sentiment",
            {"negative_sentiment": {"enabled": True, "turns": 1}},
            {"negative_sentiment": {"enabled": False, "turns": 1}},
        ),
        (
            "low_confidence",
            {"low_confidence": {"enabled": True, "turns": 1, "threshold": 1.0}},
            {"low_confidence": {"enabled": False, "turns": 1, "threshold": 1.0}},
        ),
        ("max_turns", {"max_turns": 1}, {"max_turns": 0}),
    ],
)
def test_a_disabled_rule_never_fires(rule: str, on: dict[str, Any], off: dict[str, Any]) -> None:
    decision = evaluate(rules(**on), TRIGGERING)
    assert decision is not None
    assert decision.rule == rule
    assert evaluate(rules(**off), TRIGGERING) is None


def test_with_every_rule_off_nothing_fires() -> None:
    assert evaluate(rules(), TRIGGERING) is None
    assert evaluate(EVERYTHING_ON, []) is None


def test_reasons_are_short_and_quote_what_triggered_them() -> None:
    assert evaluate(rules(keywords=["lawyer", "fire"]), turns("FIRES everywhere")) == Decision(
        "keyword", 'the customer used the escalation keyword "fire" ("FIRES")'
    )
    assert evaluate(rules(keywords=["fire"]), turns("The dock caught FIRE")) == Decision(
        "keyword", 'the customer used the escalation keyword "fire"'
    )
    upset = evaluate(rules(negative_sentiment={"enabled": True, "turns": 2}), turns(UPSET_TURN, "Pathetic."))
    assert upset == Decision(
        "negative_sentiment", 'the customer sounded upset in the last 2 customer turns ("Pathetic.")'
    )
    low = evaluate(rules(low_confidence={"enabled": True, "turns": 2, "threshold": 0.35}), scored(0.12, 0.3))
    assert low == Decision(
        "low_confidence", "the knowledge base did not cover the last 2 questions (best similarity 0.30, threshold 0.35)"
    )
    long_text = "human " + "please " * 30
    decision = evaluate(rules(human_request=True), turns(long_text))
    assert decision is not None
    assert decision.reason.endswith(' please…")')
    assert len(decision.reason) < 120


# --- the lexicon --------------------------------------------------------------------------


def test_the_lexicon_is_written_in_normalised_form() -> None:
    words = [word for valences in lexicon.VALENCE.values() for word in valences]
    words += [*lexicon.NEGATORS, *lexicon.INTENSIFIERS, *lexicon.DOWNTONERS, *lexicon.LANGUAGE_ONLY]
    words += [word for stopwords in lexicon.STOPWORDS.values() for word in stopwords]
    assert [word for word in words if fold(word) != word] == []


def test_no_function_word_is_claimed_by_two_languages() -> None:
    seen: dict[str, str] = {}
    for language, stopwords in lexicon.STOPWORDS.items():
        for word in stopwords:
            assert seen.setdefault(word, language) == language, f"{word!r} is in {seen[word]} and {language}"


def test_max_turns_counts_the_whole_conversation_not_only_the_recent_turns() -> None:
    rules = EscalationRules(max_turns=100)
    recent = [TurnSignal(text="and another thing", confidence=0.9)] * 3
    assert evaluate(rules, escalation.TurnHistory(recent, total=99)) is None
    decision = evaluate(rules, escalation.TurnHistory(recent, total=100))
    assert decision is not None
    assert decision.rule == "max_turns"
    assert "100 customer turns" in decision.reason
