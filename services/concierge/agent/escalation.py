"""EscalationPolicy rules, evaluated on every customer turn: when should a human take over?

Pure: an explicit request for a human (English, German, French, Spanish), keywords, negative sentiment
over N turns, low retrieval confidence over N turns and conversation length, checked in that priority.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final, Literal

from concierge.agent import escalation_lexicon as lexicon
from concierge.agent.escalation_lexicon import Language
from concierge.api.resources import EscalationRules

# The policy's rules, and "agent": the model itself chose to hand off (set by the turn loop, never here).
Rule = Literal["human_request", "keyword", "negative_sentiment", "low_confidence", "max_turns", "agent"]

# A turn counts as negative below this sentiment. A single strong word ("useless", "nutzlos") scores
# about -0.54, a mild one ("bad") -0.25 unless amplified ("very bad", "bad!!"), a negated positive
# ("not happy", "nicht zufrieden") about -0.42, so mild grumbling alone does not escalate.
NEGATIVE_THRESHOLD: Final = -0.3
# VADER's normalisation of a valence sum into -1..1: sum / sqrt(sum² + ALPHA).
SENTIMENT_ALPHA: Final = 15.0
# A negated word keeps this share of its valence, reversed: "not happy" is clearly negative,
# "not bad" only mildly positive.
NEGATED_POSITIVE: Final = -0.9
NEGATED_NEGATIVE: Final = -0.6
NEGATION_SCOPE: Final = 3  # words after a negator that it still flips
INTENSIFIER_BOOST: Final = 0.5  # valence added per "very", "sehr", "très", "muy" before a word
DOWNTONER_CUT: Final = 0.5  # valence taken away by "slightly", "etwas", "un peu"
CAPS_BOOST: Final = 0.5  # valence added to a sentiment word in CAPITALS
EXCLAMATION_BOOST: Final = 0.3  # valence added per "!", up to MAX_EXCLAMATIONS
MAX_EXCLAMATIONS: Final = 3
BEFORE_CONTRAST: Final = 0.5  # "great robot but useless support": what follows "but" matters more
AFTER_CONTRAST: Final = 1.5
NEGATION_WINDOW: Final = 4  # words before a human request that may negate it ("I really don't need…")
MAX_QUOTE: Final = 80  # characters of the customer's words quoted in a reason


@dataclass(frozen=True)
class TurnSignal:
    """One past or current customer turn."""

    text: str  # the customer's message
    confidence: float | None  # best retrieval similarity of the answer to it (None: not searched / unknown)


@dataclass(frozen=True)
class Decision:
    """Which rule escalates the conversation, and why, in words for the support team and the webhook."""

    rule: Rule
    reason: str


# --- text normalisation -------------------------------------------------------------------

# ' and its look-alikes: right and left single quotes, grave, acute, modifier letter apostrophe
_APOSTROPHES: Final = frozenset("'\u2019\u2018`\u00b4\u02bc")
_CLAUSE_MARKS: Final = frozenset(".,;:!?¡¿")


def normalise(text: str) -> tuple[str, list[int]]:
    """`text` in lower case without accents, punctuation other than clause marks, apostrophes and
    hyphens turned into single spaces; and for each character, the index of the character of `text`
    it comes from (to quote the customer's own words back)."""
    chars: list[str] = []
    origin: list[int] = []

    def emit(char: str, index: int) -> None:
        if char == " " and (not chars or chars[-1] == " "):
            return
        chars.append(char)
        origin.append(index)

    for index, char in enumerate(text):
        if char in _APOSTROPHES:
            emit("'", index)
            continue
        for part in unicodedata.normalize("NFKD", char):
            if unicodedata.combining(part):
                continue
            for folded in part.casefold():
                if folded.isalnum() or folded in "'-" or folded in _CLAUSE_MARKS:
                    emit(folded, index)
                else:
                    emit(" ", index)
    if chars and chars[-1] == " ":
        chars.pop()
        origin.pop()
    return "".join(chars), origin


def fold(text: str) -> str:
    """`text` in lower case without accents, as the lexicon writes its words."""
    return normalise(text)[0]


def _quote(text: str) -> str:
    """The customer's words on one line, shortened at a word boundary to MAX_QUOTE characters."""
    text = " ".join(text.split())
    if len(text) <= MAX_QUOTE:
        return text
    cut = text[: MAX_QUOTE - 1]
    return (cut[: cut.rfind(" ")] if " " in cut else cut) + "…"


# --- explicit request for a human ---------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    requests: tuple[re.Pattern[str], ...]
    bare: tuple[re.Pattern[str], ...]
    refusals: tuple[re.Pattern[str], ...]
    negation: re.Pattern[str]
    identity: re.Pattern[str]
    definite: re.Pattern[str]
    past: re.Pattern[str]
    report: re.Pattern[str]


def _compile(patterns: lexicon.RequestPatterns) -> _Compiled:
    def each(sources: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(source) for source in sources)

    return _Compiled(
        requests=each(patterns.requests),
        bare=each(patterns.bare),
        refusals=each(patterns.refusals),
        negation=re.compile(patterns.negation),
        identity=re.compile(patterns.identity),
        definite=re.compile(patterns.definite),
        past=re.compile(patterns.past),
        report=re.compile(patterns.report),
    )


_REQUESTS: Final[dict[Language, _Compiled]] = {
    language: _compile(patterns) for language, patterns in lexicon.HUMAN_REQUEST.items()
}
_STANDALONE: Final = re.compile(lexicon.STANDALONE)
_CLAUSE_BREAK: Final = re.compile(lexicon.CLAUSE_BREAK)
_WHY: Final = re.compile(lexicon.WHY)

_Kind = Literal["request", "bare", "refusal"]


def _clause_before(norm: str, start: int) -> str:
    """The text of the clause that a match at `start` belongs to, up to the match."""
    prefix = norm[:start]
    breaks = list(_CLAUSE_BREAK.finditer(prefix))
    return prefix[breaks[-1].end() :].lstrip() if breaks else prefix


def _is_request(norm: str, match: re.Match[str], guards: _Compiled, kind: _Kind) -> bool:
    """Whether a phrase that names a human really asks for one, judging by the words around it."""
    if kind == "refusal":
        return True
    clause = _clause_before(norm, match.start())
    last_words = " ".join(clause.split()[-NEGATION_WINDOW:])
    if guards.negation.search(last_words) and not _WHY.search(clause):
        return False  # "I don't need a human", unless "why can I not talk to a human?"
    if guards.identity.search(clause):
        return False  # "am I talking to a real person?"
    if kind == "bare":
        if guards.definite.search(clause) or guards.past.search(clause):
            return False  # "the live agent…", "I already spoke to a live agent"
        if guards.report.search(norm[match.end() :]):
            return False  # "a customer service rep told me…"
    return True


def human_request(text: str) -> str | None:
    """The customer's words that ask for a human ("can I talk to a person"), or None.

    Matches phrases per language over the normalised text (case, accents and punctuation do not matter)
    and rejects those that are negated ("I don't need a human"), ask who is answering ("are you a real
    person?") or report the past ("the live agent I spoke to…").
    """
    norm, origin = normalise(text)
    if not norm:
        return None
    if _STANDALONE.match(norm):
        return text.strip()
    found: list[re.Match[str]] = []
    for guards in _REQUESTS.values():
        groups: tuple[tuple[_Kind, tuple[re.Pattern[str], ...]], ...] = (
            ("request", guards.requests),
            ("bare", guards.bare),
            ("refusal", guards.refusals),
        )
        for kind, patterns in groups:
            for pattern in patterns:
                match = next((m for m in pattern.finditer(norm) if _is_request(norm, m, guards, kind)), None)
                if match is not None:
                    found.append(match)
    if not found:
        return None
    first = min(found, key=lambda m: (m.start(), -m.end()))
    return text[origin[first.start()] : origin[first.end() - 1] + 1]


# --- keywords -----------------------------------------------------------------------------


@cache
def _keyword_pattern(keyword: str) -> re.Pattern[str] | None:
    """Whole words or a phrase, any case or accents, words apart by spaces or hyphens; a final word of
    3+ letters also matches its plural in -s/-es ("fire" → "fires", "smoke-filled", never "firewall")."""
    words = re.findall(r"[\w']+", fold(keyword))
    if not words:
        return None
    body = r"[\s-]+".join(re.escape(word) for word in words)
    plural = "(?:e?s)?" if len(words[-1]) >= 3 and words[-1].isalpha() else ""
    return re.compile(rf"(?<!\w){body}{plural}(?!\w)")


def keyword_in(keywords: Sequence[str], text: str) -> tuple[str, str] | None:
    """The first configured keyword found in `text`, with the customer's words that matched it."""
    norm, origin = normalise(text)
    for keyword in keywords:
        pattern = _keyword_pattern(keyword)
        match = pattern.search(norm) if pattern else None
        if match is not None:
            return keyword.strip(), text[origin[match.start()] : origin[match.end() - 1] + 1]
    return None


# --- sentiment ----------------------------------------------------------------------------

_TOKEN: Final = re.compile("[^\\W_]+(?:['\u2019][^\\W_]+)*|[.,;:!?¡¿]")
_ELISION: Final = re.compile(r"^([a-z]+)'(.+)$")
_PHRASES: Final[dict[Language, dict[tuple[str, ...], float]]] = {
    language: {tuple(entry.split()): valence for entry, valence in words.items() if " " in entry}
    for language, words in lexicon.VALENCE.items()
}
_LONGEST_PHRASE: Final = max(len(phrase) for phrases in _PHRASES.values() for phrase in phrases)
_EMOJI: Final = re.compile("|".join(re.escape(e) for e in sorted(lexicon.EMOJI, key=len, reverse=True)))


@dataclass(frozen=True)
class _Token:
    word: str  # folded; a clause mark for punctuation
    caps: bool  # written in capitals ("USELESS")


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(unicodedata.normalize("NFC", text)):
        raw = match.group()
        word = fold(raw)
        caps = len(raw) >= 2 and raw.isupper()
        elided = _ELISION.match(word)
        if elided and elided.group(1) in lexicon.ELISIONS:
            tokens += [_Token(elided.group(1), False), _Token(elided.group(2), caps)]
        else:
            tokens.append(_Token(word, caps))
    return tokens


def _language(words: Sequence[str]) -> Language | None:
    """The language whose function words the text uses most, if one clearly does."""
    counts = {lang: sum(word in stop for word in words) for lang, stop in lexicon.STOPWORDS.items()}
    ranked = sorted(counts.values(), reverse=True)
    if ranked[0] == 0 or ranked[0] == ranked[1]:
        return None
    return max(counts, key=lambda lang: counts[lang])


def _valence(word: str, language: Language) -> float | None:
    own = lexicon.VALENCE[language].get(word)
    if own is not None or word in lexicon.LANGUAGE_ONLY:
        return own
    for other in lexicon.LANGUAGES:
        found = lexicon.VALENCE[other].get(word)
        if found is not None:
            return found
    return None


def _phrase_at(words: Sequence[str], start: int) -> tuple[int, float] | None:
    """The longest lexicon phrase starting at `start` (any language), as (length, valence)."""
    for length in range(min(_LONGEST_PHRASE, len(words) - start), 1, -1):
        key = tuple(words[start : start + length])
        for phrases in _PHRASES.values():
            if key in phrases:
                return length, phrases[key]
    return None


def _is_negator(words: Sequence[str], index: int) -> bool:
    word = words[index]
    if word in ("peu", "poco") and index > 0 and words[index - 1] in lexicon.SOFTENING_ARTICLES:
        return False  # "un peu", "un poco" soften rather than negate
    return word in lexicon.NEGATORS or word.endswith("n't")


def _is_downtoner(words: Sequence[str], index: int) -> bool:
    word = words[index]
    if word in ("peu", "poco"):
        return index > 0 and words[index - 1] in lexicon.SOFTENING_ARTICLES
    return word in lexicon.DOWNTONERS


def _word_score(words: Sequence[str], index: int, valence: float, caps: bool) -> float:
    """One sentiment word's valence after the intensifiers, downtoners and negators around it."""
    magnitude = abs(valence)
    for back in range(1, 3):
        if index - back < 0 or words[index - back] in _CLAUSE_MARKS:
            break
        if words[index - back] in lexicon.INTENSIFIERS:
            magnitude += INTENSIFIER_BOOST
        elif _is_downtoner(words, index - back):
            magnitude = max(0.0, magnitude - DOWNTONER_CUT)
    if caps:
        magnitude += CAPS_BOOST
    score = math.copysign(magnitude, valence)
    negated = False
    for back in range(1, NEGATION_SCOPE + 1):
        if index - back < 0 or words[index - back] in _CLAUSE_MARKS:
            break
        if _is_negator(words, index - back):
            negated = True
            break
    if not negated:
        for ahead in range(1, 3):
            if index + ahead >= len(words) or words[index + ahead] in _CLAUSE_MARKS:
                break
            if words[index + ahead] in lexicon.POST_NEGATORS:
                negated = True
                break
    if negated:
        score *= NEGATED_POSITIVE if score > 0 else NEGATED_NEGATIVE
    return score


def sentiment(text: str) -> float:
    """How the customer feels, from -1 (furious) to 1 (delighted); 0 when the words say nothing.

    A lexicon scorer in the manner of VADER, for English, German, French and Spanish: word and phrase
    valences, negation ("not bad", "nicht schlecht", "pas mal", "no está mal"), intensifiers ("very",
    "sehr", "très", "muy") and downtoners, CAPITALS, "!" and emoji as amplifiers, and "but" shifting the
    weight to what follows. Facts about a broken product ("it doesn't work") are neutral on purpose.
    """
    tokens = _tokens(text)
    words = [token.word for token in tokens]
    language = _language(words) or "en"
    contrast = max((i for i, word in enumerate(words) if word in lexicon.CONTRAST), default=-1)
    total = 0.0
    index = 0
    while index < len(words):
        phrase = _phrase_at(words, index)
        if phrase is not None:
            length, valence = phrase
            score = valence + math.copysign(CAPS_BOOST, valence) * any(t.caps for t in tokens[index : index + length])
        else:
            length = 1
            word = words[index]
            found = _valence(word, language)
            next_has_valence = index + 1 < len(words) and _valence(words[index + 1], language) is not None
            if found is None or (word in lexicon.INTENSIFIERS and next_has_valence):
                index += 1
                continue  # "super nul": "super" intensifies rather than praises
            score = _word_score(words, index, found, tokens[index].caps)
        if contrast >= 0:
            score *= BEFORE_CONTRAST if index < contrast else AFTER_CONTRAST
        total += score
        index += length
    total += sum(lexicon.EMOJI[m.group()] for m in _EMOJI.finditer(text))
    if total:
        total += math.copysign(EXCLAMATION_BOOST * min(text.count("!"), MAX_EXCLAMATIONS), total)
    return total / math.sqrt(total * total + SENTIMENT_ALPHA)


# --- the rules ----------------------------------------------------------------------------


def _human_request_rule(rules: EscalationRules, turns: Sequence[TurnSignal]) -> Decision | None:
    if not rules.human_request:
        return None
    phrase = human_request(turns[-1].text)
    if phrase is None:
        return None
    return Decision("human_request", f'the customer asked for a human ("{_quote(phrase)}")')


def _keyword_rule(rules: EscalationRules, turns: Sequence[TurnSignal]) -> Decision | None:
    found = keyword_in(rules.keywords, turns[-1].text)
    if found is None:
        return None
    keyword, written = found
    said = "" if fold(written) == fold(keyword) else f' ("{_quote(written)}")'
    return Decision("keyword", f'the customer used the escalation keyword "{keyword}"{said}')


def upset(text: str) -> bool:
    """Whether a message reads as upset (the negative-sentiment rule's test for one turn)."""
    return sentiment(text) < NEGATIVE_THRESHOLD


def _negative_sentiment_rule(rules: EscalationRules, turns: Sequence[TurnSignal]) -> Decision | None:
    rule = rules.negative_sentiment
    if not rule.enabled or len(turns) < rule.turns:
        return None
    recent = turns[-rule.turns :]
    if not all(upset(turn.text) for turn in recent):
        return None
    span = "the last customer turn" if rule.turns == 1 else f"the last {rule.turns} customer turns"
    return Decision("negative_sentiment", f'the customer sounded upset in {span} ("{_quote(turns[-1].text)}")')


def _low_confidence_rule(rules: EscalationRules, turns: Sequence[TurnSignal]) -> Decision | None:
    rule = rules.low_confidence
    if not rule.enabled:
        return None
    scored = [turn.confidence for turn in turns if turn.confidence is not None]
    if len(scored) < rule.turns:
        return None
    recent = scored[-rule.turns :]
    if not all(confidence < rule.threshold for confidence in recent):
        return None
    span = "the last question" if rule.turns == 1 else f"the last {rule.turns} questions"
    return Decision(
        "low_confidence",
        f"the knowledge base did not cover {span} (best similarity {max(recent):.2f}, threshold {rule.threshold:.2f})",
    )


class TurnHistory(list[TurnSignal]):
    """The recent customer turns, and how many the whole conversation has (it may be longer)."""

    def __init__(self, turns: Sequence[TurnSignal], total: int) -> None:
        super().__init__(turns)
        self.total = max(total, len(turns))


def _max_turns_rule(rules: EscalationRules, turns: Sequence[TurnSignal]) -> Decision | None:
    count = turns.total if isinstance(turns, TurnHistory) else len(turns)
    if rules.max_turns <= 0 or count < rules.max_turns:
        return None
    return Decision("max_turns", f"the conversation reached {count} customer turns (limit {rules.max_turns})")


_Check = Callable[[EscalationRules, Sequence[TurnSignal]], Decision | None]
# In priority order: the first rule that fires decides.
_CHECKS: Final[tuple[tuple[Rule, _Check], ...]] = (
    ("human_request", _human_request_rule),
    ("keyword", _keyword_rule),
    ("negative_sentiment", _negative_sentiment_rule),
    ("low_confidence", _low_confidence_rule),
    ("max_turns", _max_turns_rule),
)


def _first(rules: EscalationRules, turns: Sequence[TurnSignal], skip: frozenset[Rule]) -> Decision | None:
    if not turns:
        return None
    for rule, check in _CHECKS:
        if rule not in skip:
            decision = check(rules, turns)
            if decision is not None:
                return decision
    return None


def evaluate(rules: EscalationRules, turns: Sequence[TurnSignal]) -> Decision | None:
    """The rule that escalates the conversation now, or None.

    `turns` are the customer's turns, oldest first; the last is the current one. Human request and
    keywords look at the current turn; negative sentiment needs its last N turns all upset; low
    confidence the last N turns that have a confidence (a turn not searched yet is skipped); max turns
    counts every turn. When several fire, the first of human_request, keyword, negative_sentiment,
    low_confidence, max_turns wins.
    """
    return _first(rules, turns, frozenset())


def evaluate_before_answer(rules: EscalationRules, turns: Sequence[TurnSignal]) -> Decision | None:
    """`evaluate` without low confidence: the rules that can fire before retrieval runs."""
    return _first(rules, turns, frozenset({"low_confidence"}))
