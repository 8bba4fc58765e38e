"""The offline `extractive` model: answers a question only with sentences taken from retrieved passages.

Pure functions: split passages into sentences, list items and table rows; score them against the
question by meaning (cosine similarities computed by the caller, when it has them) and by shared words;
quote up to 4 of them (or one whole procedure) from 1 to 3 passages with [n] markers; or abstain.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from typing import Literal

from concierge.agent.passages import Passage

ABSTAIN_TEXT = (
    "I'm sorry, I couldn't find that in our help center, so I'd rather not guess. "
    "Would you like me to connect you with a member of our support team?"
)
CLARIFY_TEXT = "Could you tell me a little more about what you need help with?"
THANKS_TEXT = "You're welcome! Is there anything else I can help you with?"
GOODBYE_TEXT = "Thanks for getting in touch. Have a great day!"

MAX_UNITS = 4
MAX_STEPS = 8
MAX_PASSAGES = 3
# Weight multipliers: an error code or model name in the question (E2, S1), and question words
# that name what the best passages are about (their title or section).
IDENTIFIER_BOOST = 3.0
TOPIC_BOOST = 1.3
# A numbered procedure answers a how-to question if its best step scores this share of the best unit.
STEPS_CUTOFF = 0.25
# A unit joins the answer only if it scores at least this share of the best unit.
RELATIVE_CUTOFF = 0.5
# ... and at least this share when it comes from another passage than the best unit.
OTHER_PASSAGE_CUTOFF = 0.7
# Share of the question's (weighted) content words the best quoted unit must cover.
MIN_COVERAGE = 0.2
# Share of the question's weight that may be absent from every passage before we abstain.
MAX_MISSING = 0.5
# A unit holding the kind of value the question asks for (a price, a duration...) scores this much
# more; more with similarities, which differ less between units than word overlap does.
INTENT_BONUS = 1.4
SEMANTIC_INTENT_BONUS = 1.7
# How much a passage's retrieval rank discounts its units: by word overlap alone, and with meaning.
RANK_DECAY = 0.15
SEMANTIC_RANK_DECAY = 0.05
# Meaning (cosine similarity of a unit to the question). Calibrated on all-MiniLM-L6-v2, whose
# similarities of unrelated support sentences sit around 0.1-0.3 and of good answers around 0.5-0.9:
# below SIM_FLOOR counts as unrelated, SIM_FLOOR + SIM_SPAN as a perfect match.
SIM_FLOOR = 0.2
SIM_SPAN = 0.5
# Meaning's share of a unit's relevance; the rest is word overlap.
SEMANTIC_WEIGHT = 0.7
# A quoted unit this similar answers the question even when it uses none of the question's words
# ("swap the filter" / "Replace: every 3 months"), so the word-based abstention tests are waived.
SIM_CONFIDENT = 0.6

# --- text normalisation ---------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# General English function words, contractions and chat pleasantries: what carries no topic.
STOPWORDS = _words(
    """
    a about above after again against all also am an and any anymore are as at be because been before
    being below between both but by can could did do does doing done down during each even ever few for
    from further get gets getting got had has have having he her here hers herself him himself his how i
    if in into is it its itself just know let like may me might more most much must my myself need no
    nor not now of off on once only or other our ours ourselves out over own please really same say
    she should so some still such sure than that the their theirs them themselves then there these they
    thing things think this those through to too under until up us very want was we were what when where
    which while who whom why will with would yes yet you your yours yourself yourselves hi hello hey
    thanks thank ok okay help supposed going go gonna wanna tell anyone someone something anything
    actually maybe one im ive id dont doesnt didnt cant wont isnt arent youre whats theres
    always never ago keep keeps kept take takes took taking put puts make makes made give gives come comes
    came see seem show happen happens happened work works worked working
    """
)

# Phrases rewritten before tokenising, so multi-word meanings match single help-center words.
PHRASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bsend(?:ing)? (?:\w+ ){0,2}back\b"), "return"),
    (re.compile(r"\b(?:get|getting|have) (?:\w+ ){0,2}money back\b"), "refund"),
    (re.compile(r"\bmoney back\b"), "refund"),
    (re.compile(r"\bstop (?:paying|payment)\b"), "cancel"),
    (re.compile(r"\bwi[- ]?fi\b"), "wifi"),
    (re.compile(r"\b(\d+)\s*(ghz|mhz|gb|mb|mah|cm|mm|kg|m)\b"), r"\1 \2"),
]
_UPPER_ABBREVIATIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(?:US|USA|U\.S\.)(?=\W|$)"), "United States"),
    (re.compile(r"\bUK\b"), "United Kingdom"),
    (re.compile(r"\bEU\b"), "European Union"),
]
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
_DIGIT_SPLIT = re.compile(r"(?<=\d)(?=[a-z]{2,})|(?<=[a-z]{2})(?=\d)")


def stem(word: str) -> str:
    """A light suffix stripper: enough to meet `charge`, `charges`, `charging` and `charged`."""
    w = word.lower().removesuffix("'s")
    if len(w) <= 3 or w.isdigit():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    elif w.endswith("lly") and len(w) == 5:
        w = w[:-1]  # fully → full
    elif w.endswith("ly") and len(w) > 5:
        w = w[:-2]  # monthly → month, but apply stays apply
    if len(w) > 4 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]  # runn → run
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


def terms(text: str) -> set[str]:
    """Content-word stems of `text` (stopwords dropped); hyphenated words count whole and split."""
    for pattern, replacement in _UPPER_ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    lowered = text.lower().replace("\u2019", "'")  # typographic apostrophe
    for pattern, replacement in PHRASES:
        lowered = pattern.sub(replacement, lowered)
    out: set[str] = set()
    for raw in _WORD.findall(lowered):
        parts = [raw, *raw.split("-")] if "-" in raw else [raw]
        for part in parts:
            for piece in _DIGIT_SPLIT.split(part.replace("'", "")):
                if piece and piece not in STOPWORDS and not (len(piece) == 1 and piece.isalpha()):
                    out.add(stem(piece.replace("-", "")))
    return out


# --- splitting passages into answerable units ----------------------------------------------

UnitKind = Literal["sentence", "item", "row"]

_SECTION_PARTS = re.compile("\\s+[>\u203a/]\\s+")  # "A > B", "A \u203a B" or "A / B"
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*([-*•+]|\d{1,2}[.)])\s+(.*)$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_ABBREVIATIONS = _words("e.g i.e etc vs approx no nr st mr mrs ms dr inc ltd co p.o fig min max")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”')\]]*\s+(?=[\"“(\[]?[A-Z0-9])")
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|`|(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w))")


@dataclass
class Unit:
    """One sentence, list item or table row of a passage: the smallest piece an answer quotes."""

    passage: Passage
    rank: int
    position: int
    block: int
    kind: UnitKind
    text: str
    marker: str = ""
    heading: str = ""
    # Table rows keep their cells so the answer can show only the columns that matter.
    cells: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    terms: set[str] = field(default_factory=set)
    context_terms: set[str] = field(default_factory=set)
    # Cosine similarity of `embedding_text` to the question, when an embedding model is available.
    similarity: float | None = None
    score: float = 0.0

    @property
    def numbered(self) -> bool:
        return self.kind == "item" and self.marker[:1].isdigit()

    @property
    def embedding_text(self) -> str:
        """What is embedded for this unit: its text under the heading line, as retrieval embeds chunks."""
        parts = [self.passage.title, *_SECTION_PARTS.split(self.passage.section)]
        if self.heading and self.heading != parts[-1]:
            parts.append(self.heading)  # a heading inside the chunk
        heading = " > ".join(p for p in parts if p)
        # Measured on examples/acme: with the heading line, 3 more of 54 questions answered.
        return f"{heading}\n\n{self.text}" if heading else self.text


def clean_inline(text: str) -> str:
    text = _MARKDOWN_LINK.sub(r"\1", text)
    text = _EMPHASIS.sub("", text)
    return " ".join(text.split())


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph; does not split after common abbreviations or initials."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()].rstrip("\"”')]")
        last_word = before.rsplit(" ", 1)[-1].rstrip(".").lower()
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue
        pieces.append(text[start : match.start()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    merged: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        # "Yes." or "No." alone says nothing; keep it with the sentence that explains it.
        if merged and len(merged[-1].split()) < 3:
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged


def _cells(line: str) -> list[str]:
    return [clean_inline(c) for c in line.strip().strip("|").split("|")]


def render_row(cells: Sequence[str], header: Sequence[str], keep: Sequence[int] | None = None) -> str:
    """A table row as a sentence a customer can read: `Label — Column: value; Column: value.`"""
    columns = range(1, len(cells)) if keep is None else keep
    if len(header) != len(cells):
        body = "; ".join(c for c in cells if c)
    else:
        parts = [f"{header[i]}: {cells[i]}" if header[i] else cells[i] for i in columns if cells[i]]
        body = f"{cells[0]} — {'; '.join(parts)}" if cells[0] else "; ".join(parts)
    return body if body.endswith((".", "!", "?")) else body + "."


def split_units(passage: Passage, rank: int = 1) -> list[Unit]:
    """Cut a passage into units, keeping list items whole and table rows with their header."""
    units: list[Unit] = []
    # Until the chunk shows a heading of its own, its units sit under the last part of its section.
    heading = _SECTION_PARTS.split(passage.section)[-1] if passage.section else ""
    block = 0
    header: list[str] = []
    in_table = False
    paragraph: list[str] = []

    def add(kind: UnitKind, text: str, marker: str = "", cells: list[str] | None = None) -> None:
        text = clean_inline(text)
        if text:
            units.append(Unit(passage, rank, len(units), block, kind, text, marker, heading, cells or [], list(header)))

    def flush_paragraph() -> None:
        nonlocal block
        if paragraph:
            for sentence in split_sentences(clean_inline(" ".join(paragraph))):
                add("sentence", sentence)
            paragraph.clear()
            block += 1

    lines = passage.text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            flush_paragraph()
            continue
        if m := _HEADING.match(line):
            flush_paragraph()
            heading = clean_inline(m.group(2))
            block += 1
            continue
        if stripped.startswith("|"):
            flush_paragraph()
            if _TABLE_SEPARATOR.match(stripped):
                continue
            next_line = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if not in_table and _TABLE_SEPARATOR.match(next_line):
                header = _cells(stripped)
            else:
                cells = _cells(stripped)
                add("row", render_row(cells, header), cells=cells)
            in_table = True
            continue
        if in_table:
            in_table, header = False, []
            block += 1
        if m := _LIST_ITEM.match(line):
            if paragraph:
                flush_paragraph()
            elif units and units[-1].kind != "item":
                block += 1
            add("item", m.group(2), m.group(1))
            continue
        if units and units[-1].kind == "item" and not paragraph and line[:1] in (" ", "\t"):
            units[-1].text = clean_inline(f"{units[-1].text} {stripped}")  # a wrapped list item
            continue
        if units and units[-1].kind == "item" and not paragraph:
            block += 1
        paragraph.append(stripped)
    flush_paragraph()
    return _drop_fragments(units)


def _drop_fragments(units: list[Unit]) -> list[Unit]:
    """Chunk overlap cuts sentences: drop a first sentence that starts mid-way and a last one cut short."""
    if units and units[0].kind == "sentence" and units[0].text[:1].islower():
        units = units[1:]
    if units and units[-1].kind == "sentence" and not units[-1].text.endswith((".", "!", "?", ":", '"', "”", ")")):
        units = units[:-1]
    return units


# --- question analysis and scoring ----------------------------------------------------------

# What kind of value a question asks for, and what such a value looks like in a passage.
_INTENT_QUESTIONS: dict[str, re.Pattern[str]] = {
    "price": re.compile(
        r"\bhow much (is|are|does|do|will|would|for|to)\b(?! (it|that) take)|\b(cost|costs|price|prices|fee|fees|"
        r"charge for|spend|pay for)\b"
    ),
    "duration": re.compile(r"\bhow (long|soon|late|early)\b|\bwhen will\b|\bhow many (days|hours|weeks|minutes)\b"),
    "frequency": re.compile(r"\bhow often\b"),
    "count": re.compile(r"\bhow (many|big|far|old)\b"),
    "phone": re.compile(r"\bphone\b|\bnumber to call\b|\bcall (you|us)\b"),
    "hours": re.compile(r"\bwhat (time|times|hours|days)\b|\bopening hours\b|\bwhen (can|are|is)\b"),
}
_INTENT_ANSWERS: dict[str, re.Pattern[str]] = {
    "price": re.compile(
        r"[$£€]\s?\d|\d\s?(usd|eur|gbp|dollars?|euros?|pounds?)\b|\bfree\b|\bno (fee|charge|cost)\b", re.I
    ),
    "duration": re.compile(
        r"\d\s*(?:[\u2013-]\s*\d+\s*)?(seconds?|minutes?|min|hours?|hrs?|days?|business days|weeks?|months?|years?)\b"
        r"|\b(same|next) (business )?day\b",
        re.I,
    ),
    "frequency": re.compile(
        r"\bevery\b|\bonce\b|\btwice\b|\b\d+ times\b|\bper (day|week|month|year)\b|\bdaily\b|\bweekly\b", re.I
    ),
    "count": re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|twelve)\b", re.I),
    "phone": re.compile(r"\+?\d[\d ().-]{7,}\d"),
    "hours": re.compile(r"\d{1,2}[:.]\d{2}|\b\d{1,2} ?(am|pm)\b|\b(monday|friday|saturday|sunday|weekdays?)\b", re.I),
}
# When something happened ("I got it last week") is part of the story, not of the question.
_NARRATIVE_TIME = re.compile(
    r"\b(last|this|next|past) (week|month|year|night|weekend|time)\b|\b(a|one|two|few|couple of|some) "
    r"(days?|weeks?|months?) ago\b|\b(yesterday|today|tonight|this morning)\b",
    re.IGNORECASE,
)
# "how long" asks for a duration; the word "long" itself is not what the customer is asking about.
_QUESTION_PHRASES = re.compile(r"\bhow (long|much|many|often|soon|far)\b", re.IGNORECASE)
_PROCEDURE = re.compile(
    r"\bhow (do|can|should|would|to)\b|\bsteps?\b|\bwhat (should|do|can) i do\b|\bsupposed to do\b|\bfix\b"
)
_QUESTION_START = re.compile(
    r"^\s*(who|what|when|where|why|how|which|can|could|do|does|did|is|are|was|were|will|would|should|may|have|has)\b",
    re.IGNORECASE,
)
_IDENTIFIER = re.compile(r"^(?=.*[a-z])(?=.*\d)[a-z0-9]+$")
_SMALL_TALK_GREETING = _words("hi hello hey hiya howdy morning afternoon evening good there yo")
_SMALL_TALK_THANKS = _words("thanks thank you thx ty cheers great perfect awesome ok okay much so lot many")
_SMALL_TALK_BYE = _words("bye goodbye see ya later cya have a nice day good")


_CLAUSE_BREAK = re.compile(
    r"[.?!;]+\s*|,?\s+(?:and|or|but|also)\s+(?=(?:is|are|do|does|can|will|would|should|could|how|what|when|where|"
    r"which|who|why)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Question:
    text: str
    terms: frozenset[str]
    # The parts of a compound question ("Will Care+ pay for that and is there a fee?"); each
    # deserves a sentence of the answer.
    clauses: tuple[frozenset[str], ...]
    # Kinds of value asked for ("price", "duration", ...): a unit that holds one answers better.
    intents: frozenset[str]
    # How-to questions, and problems described without a question ("it won't charge"), want steps.
    wants_steps: bool

    @classmethod
    def parse(cls, text: str) -> Question:
        lowered = text.lower()
        is_question = "?" in text or bool(_QUESTION_START.match(text))
        plain = _NARRATIVE_TIME.sub(" ", _QUESTION_PHRASES.sub(" ", text))
        clauses = tuple(c for part in _CLAUSE_BREAK.split(plain) if (c := frozenset(terms(part))))
        return cls(
            text=text,
            terms=frozenset(terms(plain)),
            clauses=clauses,
            intents=frozenset(name for name, pattern in _INTENT_QUESTIONS.items() if pattern.search(lowered)),
            wants_steps=bool(_PROCEDURE.search(lowered)) or not is_question,
        )

    def without(self, dropped: Set[str]) -> Question:
        """The question minus `dropped` words (unchanged if nothing would be left)."""
        if not dropped or self.terms <= dropped:
            return self
        clauses = tuple(c - dropped for c in self.clauses if c - dropped)
        return replace(self, terms=self.terms - dropped, clauses=clauses)

    def answered_by(self, text: str) -> bool:
        """Whether `text` holds a value of the kind the question asks for."""
        return any(_INTENT_ANSWERS[intent].search(text) for intent in self.intents)


def small_talk_reply(text: str, greeting: str) -> str | None:
    """A short polite reply to a greeting, thanks or goodbye with no question in it; else None."""
    words = re.findall(r"[a-z]+", text.lower())
    if not words or len(words) > 8:
        return None
    word_set = set(words)
    if word_set <= _SMALL_TALK_THANKS and word_set & {"thanks", "thank", "thx", "ty", "cheers"}:
        return THANKS_TEXT
    if word_set <= _SMALL_TALK_BYE | _SMALL_TALK_THANKS and word_set & {"bye", "goodbye", "cya"}:
        return GOODBYE_TEXT
    if word_set <= _SMALL_TALK_GREETING:
        return greeting
    return None


def term_weights(question: Question, units: Sequence[Unit]) -> dict[str, float]:
    """Inverse frequency of each question word among the candidate units.

    Words the passages never mention get the highest weight: a question about something the
    passages lack (a lawn mower, a job) then leaves much of its weight uncovered and we abstain.
    """
    n = len(units)
    weights = {}
    for t in question.terms:
        containing = sum(1 for u in units if t in u.terms or t in u.context_terms)
        weights[t] = math.log(1 + (n + 1) / (1 + containing))
        if _IDENTIFIER.match(t):
            # An error code or model (E2, S1) pins the answer down more than any story word.
            weights[t] *= IDENTIFIER_BOOST
    # Words that name what the best passages are about (their title or section) are the topic of
    # the question, even though the on-topic passages repeat them often.
    topical = set().union(*(u.context_terms for u in units if u.rank <= 2)) if units else set()
    for t in question.terms & topical:
        weights[t] *= TOPIC_BOOST
    return weights


def _passage_factor(unit: Unit) -> float:
    # Retrieval already ranked the passages; keep that signal, damped so that a better sentence
    # further down can still win (more so when the sentence's meaning is known).
    decay = RANK_DECAY if unit.similarity is None else SEMANTIC_RANK_DECAY
    return (0.6 + max(unit.passage.vector_score, 0.0)) / (1 + decay * (unit.rank - 1))


def _coverage(question: Question, unit: Unit, weights: dict[str, float]) -> float:
    """Weight of the question words a unit covers: its own words fully, its headings' words half."""
    own = question.terms & unit.terms
    return sum(weights[t] for t in own) + 0.5 * sum(weights[t] for t in (question.terms & unit.context_terms) - own)


def _match(question: Question, unit: Unit, weights: dict[str, float]) -> tuple[float, float]:
    """Weight of question words in the unit itself, and in its headings (also when in both: a
    sentence about returns in the Returns article is more on topic than one in passing elsewhere)."""
    direct = sum(weights[t] for t in question.terms & unit.terms)
    context = sum(weights[t] for t in question.terms & unit.context_terms)
    return direct, context


def semantic_relevance(similarity: float) -> float:
    """A cosine similarity mapped onto 0..1: unrelated text (below SIM_FLOOR) scores 0."""
    return min(1.0, max(0.0, (similarity - SIM_FLOOR) / SIM_SPAN))


def combined_relevance(lexical: float, similarity: float | None) -> float:
    """How well a unit matches the question, 0..1: the lexical share alone, or blended with meaning."""
    if similarity is None:
        return lexical
    return (1 - SEMANTIC_WEIGHT) * lexical + SEMANTIC_WEIGHT * semantic_relevance(similarity)


def score_units(question: Question, units: list[Unit], weights: dict[str, float]) -> None:
    """Set `score` on every unit: relevance (words, and meaning when known) times passage rank times intent."""
    total = sum(weights.values()) or 1.0
    first_under_heading: dict[tuple[int, str], int] = {}
    for u in units:
        first_under_heading.setdefault((id(u.passage), u.heading), u.position)
    for u in units:
        direct, context = _match(question, u, weights)
        near_heading = u.position <= first_under_heading[(id(u.passage), u.heading)] + 2
        # Without meaning, a unit must share a word with the question itself, or sit right under a
        # matching heading (FAQ answers often repeat none of the question's words).
        lexical_gate = direct > 0 or bool(context and u.heading and near_heading)
        if not lexical_gate and (u.similarity is None or semantic_relevance(u.similarity) == 0):
            u.score = 0.0
            continue
        # Covering more of the question counts more than the sum of its words: a row naming both
        # "battery" and "S2 Pro" beats rows naming only "S2 Pro".
        covered = _coverage(question, u, weights) / total
        lexical = (direct + 0.5 * context) / (1.5 * total) * (0.5 + covered) / 1.5 if lexical_gate else 0.0
        score = combined_relevance(lexical, u.similarity) * _passage_factor(u)
        if question.answered_by(u.text):
            score *= INTENT_BONUS if u.similarity is None else SEMANTIC_INTENT_BONUS
        if question.wants_steps and u.numbered:
            score *= 1.25
        length = len(u.text.split())
        if length > 45:
            score *= 0.8
        elif length < 4:
            score *= 0.6
        u.score = score


# "...cannot be used with it": the sentence leans on the one before it for its subject.
_BACK_REFERENCE = re.compile(
    r"^(it|its|this|these|they|their|those|that|such)\b|\b(with|to|for|of|on|from|use|using) (it|them)\b", re.IGNORECASE
)


def _dedupe_key(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


# --- selection and composition --------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the extractive model says: the text with [n] markers and the passages it cites."""

    text: str
    cited: tuple[int, ...]
    abstained: bool
    coverage: float = 0.0
    missing: float = 0.0
    similarity: float | None = None


def _list_after(unit: Unit, units: Sequence[Unit]) -> list[Unit]:
    """The list items that directly follow `unit` in its passage (the list a `...:` sentence introduces)."""
    out: list[Unit] = []
    for u in units:
        if u.passage is not unit.passage or u.position <= unit.position:
            continue
        if u.kind != "item" or (out and u.block != out[0].block):
            break
        out.append(u)
    return out[:MAX_STEPS]


def _step_number(unit: Unit) -> int:
    return int(unit.marker.rstrip(".)"))


def _steps(question: Question, units: list[Unit], best: Unit) -> list[Unit] | None:
    """For a how-to question or a described problem: the best numbered procedure, with its lead-in.

    Chunking can split a long list across passages; items of the same document section are merged
    back by their numbers, each still citing the passage it came from.
    """
    blocks: dict[tuple[int, int], list[Unit]] = {}
    for u in units:
        if u.numbered and u.rank <= MAX_PASSAGES:
            blocks.setdefault((u.passage.index, u.block), []).append(u)
    if not blocks:
        return None

    def lead_score(first: Unit) -> float:
        before = [
            u.score
            for u in units
            if u.passage is first.passage and u.kind == "sentence" and u.position < first.position
        ]
        return max(before, default=0.0)

    # A procedure counts with the sentence that introduces it ("Most noise comes from hair...").
    def strength(items: list[Unit]) -> float:
        return max(i.score for i in items) + lead_score(items[0])

    block = max(blocks.values(), key=strength)
    if strength(block) < STEPS_CUTOFF * best.score:
        return None
    source = (block[0].passage.document_id or block[0].passage.source_uri, block[0].passage.section)
    by_number: dict[int, Unit] = {}
    for u in sorted(units, key=lambda u: u.rank):
        if u.numbered and (u.passage.document_id or u.passage.source_uri, u.passage.section) == source:
            by_number.setdefault(_step_number(u), u)
    numbers = sorted(by_number)
    # Only a run of consecutive numbers is one list (1 2 3 4), not two lists of the same section.
    start = numbers.index(_step_number(block[0]))
    while start > 0 and numbers[start - 1] == numbers[start] - 1:
        start -= 1
    run = [by_number[numbers[start]]]
    for n in numbers[start + 1 :]:
        if n != _step_number(run[-1]) + 1:
            break
        run.append(by_number[n])
    steps = run[:MAX_STEPS]
    first = steps[0]
    step_keys = [_dedupe_key(u.text) for u in steps]
    lead = [
        u
        for u in units
        if u.passage is first.passage
        and u.kind == "sentence"
        and u.position < first.position
        and u.score > 0
        and not any(_dedupe_key(u.text) in key for key in step_keys)
    ]
    if lead:
        chosen = [max(lead, key=lambda u: u.score)]
    elif first.heading and question.terms & terms(first.heading):
        # No sentence introduces the steps, but their heading ("E2 - Main brush jammed") does.
        chosen = [replace(first, kind="sentence", text=f"{first.heading}:", position=first.position - 1, marker="")]
    else:
        chosen = []
    return chosen + steps


def select_units(question: Question, units: list[Unit], weights: dict[str, float]) -> list[Unit]:
    """Pick what the answer quotes: the best unit, then units that add to it, from at most 3 passages."""
    ranked = sorted((u for u in units if u.score > 0), key=lambda u: -u.score)
    if not ranked:
        return []
    best = ranked[0]
    if question.wants_steps and (steps := _steps(question, units, best)) is not None:
        return steps
    chosen = [best]
    covered = set(question.terms & best.terms)
    seen = {_dedupe_key(best.text)}
    passages = {best.passage.index}
    total = sum(weights.values()) or 1.0

    def admissible(u: Unit) -> bool:
        key = _dedupe_key(u.text)
        if u in chosen or any(key in s or s in key for s in seen):
            return False
        if u.passage.index not in passages and len(passages) >= MAX_PASSAGES:
            return False
        # A step or bullet torn from its list misleads (an exclusion read as a promise).
        in_best_list = u.passage is best.passage and u.block == best.block
        return not (u.kind == "item" and not in_best_list and (u.numbered or u.score < 0.6 * best.score))

    def take(u: Unit) -> None:
        chosen.append(u)
        covered.update(question.terms & u.terms)
        seen.add(_dedupe_key(u.text))
        passages.add(u.passage.index)

    # Each part of a compound question gets its best unit, even one that scores lower overall.
    for clause in question.clauses if len(question.clauses) > 1 else ():
        if sum(weights[t] for t in clause & covered) >= 0.5 * sum(weights[t] for t in clause):
            continue
        candidate = next((u for u in ranked if clause & u.terms and admissible(u)), None)
        if candidate is not None and candidate.score >= 0.1 * best.score and len(chosen) < MAX_UNITS:
            take(candidate)
    for u in ranked[1:]:
        if len(chosen) >= MAX_UNITS:
            break
        if not admissible(u):
            continue
        new_terms = (question.terms & u.terms) - covered
        if u.kind != "sentence" and (question.terms & u.terms) < (question.terms & best.terms):
            # A row or item that matches only part of what the best one matches is a weaker alternative.
            continue
        # Another table row repeats the same columns: only a near-equal one is worth showing.
        cutoff = 0.75 if u.kind == "row" and best.kind == "row" else RELATIVE_CUTOFF
        # A unit that answers another part of the question may score lower, as long as it comes
        # from a passage about as relevant as the best one.
        answers_more = (
            sum(weights[t] for t in new_terms) >= 0.25 * total
            and u.score >= 0.3 * best.score
            and u.passage.vector_score >= best.passage.vector_score - 0.1
        )
        if u.passage is not best.passage:
            # Another passage's sentence is often only loosely related; it must nearly match the
            # best one, or answer something the best one does not.
            cutoff = max(cutoff, OTHER_PASSAGE_CUTOFF)
        if u.score >= cutoff * best.score or answers_more:
            take(u)
    for u in list(chosen):
        if u.kind == "sentence" and u.text.endswith(":"):
            # A sentence that ends in a colon introduces a list; the list is the answer.
            chosen.extend(i for i in _list_after(u, units) if i not in chosen)
    for anchor in [u for u in chosen[:2] if u.kind == "sentence"]:
        # A sentence leans on its neighbours: the one before often names the subject, the one after
        # gives the detail. Add them when relevant (a lone sentence always gets its follower).
        neighbours = {u.position: u for u in units if u.passage is anchor.passage and u.block == anchor.block}
        before, after = neighbours.get(anchor.position - 1), neighbours.get(anchor.position + 1)
        refers_back = bool(_BACK_REFERENCE.search(anchor.text))
        if (
            before is not None
            and len(chosen) < MAX_UNITS
            and admissible(before)
            and (before.score >= 0.3 * best.score or refers_back)
        ):
            take(before)
        if (
            after is not None
            and len(chosen) < MAX_UNITS
            and admissible(after)
            and len(after.text.split()) <= 40
            and (len(chosen) == 1 or after.score >= 0.3 * best.score)
        ):
            take(after)
    return chosen


def _with_marker(text: str, index: int) -> str:
    text = text.rstrip()
    if text.endswith(":"):
        return f"{text[:-1].rstrip()} [{index}]:"
    if text.endswith((".", "!", "?", ";")):
        end = "." if text[-1] == ";" else text[-1]
        return f"{text[:-1].rstrip()} [{index}]{end}"
    return f"{text} [{index}]."


def _row_text(unit: Unit, question: Question, weights: dict[str, float]) -> str:
    """A table row showing its label and the columns the question is about (all when none match)."""
    if len(unit.header) != len(unit.cells) or len(unit.cells) <= 2:
        return unit.text
    relevance = {
        i: sum(weights.get(t, 0.0) for t in question.terms & terms(f"{unit.header[i]} {unit.cells[i]}"))
        for i in range(1, len(unit.cells))
    }
    top = max(relevance.values())
    if top == 0:
        return unit.text
    keep = {i for i, r in relevance.items() if r >= 0.5 * top}
    for intent in question.intents:
        # "What's your phone number?" matches the Phone row, not the column holding the number.
        pattern = _INTENT_ANSWERS[intent]
        if not any(pattern.search(unit.cells[i]) for i in keep):
            keep |= {i for i in relevance if pattern.search(unit.cells[i])}.intersection(
                [next((i for i in relevance if pattern.search(unit.cells[i])), -1)]
            )
    return render_row(unit.cells, unit.header, sorted(keep))


def compose(units: list[Unit], question: Question, weights: dict[str, float]) -> str:
    """Units grouped by passage (best first), in document order inside each; list items one per line."""
    order: list[int] = []
    for u in units:
        if u.passage.index not in order:
            order.append(u.passage.index)
    paragraphs: list[tuple[str, str]] = []  # (kind, text)
    for index in order:
        prose: list[str] = []
        for u in sorted((u for u in units if u.passage.index == index), key=lambda u: u.position):
            if u.kind == "item":
                if prose:
                    paragraphs.append(("prose", " ".join(prose)))
                    prose = []
                marker = u.marker if u.numbered else "-"
                paragraphs.append(("item", f"{marker} {_with_marker(u.text, index)}"))
            else:
                text = _row_text(u, question, weights) if u.kind == "row" else u.text
                prose.append(_with_marker(text, index))
        if prose:
            paragraphs.append(("prose", " ".join(prose)))
    out = ""
    for i, (kind, text) in enumerate(paragraphs):
        if i == 0:
            out = text
            continue
        previous_kind, previous_text = paragraphs[i - 1]
        # Items stack line by line, and a lead-in that ends in ':' runs straight into its list.
        tight = kind == "item" and (previous_kind == "item" or previous_text.endswith(":"))
        out += ("\n" if tight else "\n\n") + text
    return out


def candidate_units(passages: Sequence[Passage]) -> list[Unit]:
    """Every unit of `passages`, ranked by passage score, with their words and their headings' words.

    A chunk found by two searches of one turn counts once, under its first number.
    """
    units: list[Unit] = []
    seen: set[str] = set()
    unique = []
    for passage in passages:
        key = passage.chunk_id or passage.text
        if key not in seen:
            seen.add(key)
            unique.append(passage)
    for rank, passage in enumerate(sorted(unique, key=lambda p: -p.score), start=1):
        for u in split_units(passage, rank):
            u.terms = terms(u.text if u.kind != "row" else " ".join([*u.cells, *u.header]))
            u.context_terms = terms(" ".join((u.heading, passage.section, passage.title)))
            units.append(u)
    return units


def embedding_texts(passages: Sequence[Passage]) -> list[str]:
    """The texts to embed for semantic scoring (each once): pass their similarities to `answer`."""
    return list(dict.fromkeys(u.embedding_text for u in candidate_units(passages)))


def answer(
    question_text: str,
    passages: Sequence[Passage],
    *,
    min_vector_score: float,
    similarities: Mapping[str, float] | None = None,
    scope: str = "",
) -> Answer:
    """Answer from the passages alone, or abstain when they do not cover the question.

    `similarities` maps each of `embedding_texts(passages)` to its cosine similarity to the question;
    without it, units are scored by word overlap alone. `scope` says what the knowledge bases cover
    (their descriptions): a question word found there but in no passage names the help center's
    subject ("robot vacuum"), not something it lacks ("lawn mower"), and is left out.
    """
    question = Question.parse(question_text)
    if not question.terms:
        return Answer(CLARIFY_TEXT, (), abstained=True)
    if not passages or max(p.vector_score for p in passages) < min_vector_score:
        return Answer(ABSTAIN_TEXT, (), abstained=True)
    units = candidate_units(passages)
    if similarities is not None:
        for u in units:
            u.similarity = similarities.get(u.embedding_text, 0.0)
    everywhere = set().union(*(u.terms | u.context_terms for u in units)) if units else set()
    question = question.without((question.terms & terms(scope)) - everywhere)
    weights = term_weights(question, units)
    total = sum(weights.values()) or 1.0
    missing = sum(w for t, w in weights.items() if t not in everywhere) / total
    score_units(question, units, weights)
    chosen = select_units(question, units, weights)
    # A unit covers the question by its words, or by its meaning.
    coverage = max(
        (max(_coverage(question, u, weights) / total, semantic_relevance(u.similarity or 0.0)) for u in chosen),
        default=0.0,
    )
    best_similarity = max((u.similarity for u in chosen if u.similarity is not None), default=None)
    # Abstain when half of what the question is about appears nowhere in the passages (a lawn
    # mower, a student discount), or when no chosen unit covers enough of it on its own, unless
    # a quoted unit means nearly what the question asks in other words ("swap" the filter: "Replace").
    confident = best_similarity is not None and best_similarity >= SIM_CONFIDENT
    if not chosen or (not confident and (missing >= MAX_MISSING or coverage < MIN_COVERAGE)):
        return Answer(ABSTAIN_TEXT, (), abstained=True, coverage=coverage, missing=missing, similarity=best_similarity)
    cited = tuple(dict.fromkeys(u.passage.index for u in chosen))
    return Answer(
        compose(chosen, question, weights),
        cited,
        abstained=False,
        coverage=coverage,
        missing=missing,
        similarity=best_similarity,
    )


def follow_up_query(question_text: str, passages: Sequence[Passage], similarities: Mapping[str, float]) -> str | None:
    """A second search, within the document closest in meaning to the question, when the question asks
    for a value (a duration, a price...) that nothing retrieved from that document holds; else None.

    Retrieval ranks whole chunks: the right document often comes back with a neighbouring section
    ("Condition of returned items") instead of the one holding the number ("Return window").
    """
    question = Question.parse(question_text)
    if not question.intents:
        return None
    units = [u for u in candidate_units(passages) if u.embedding_text in similarities]
    if not units:
        return None
    best = max(units, key=lambda u: similarities[u.embedding_text])
    document = best.passage.document_id or best.passage.source_uri
    in_document = [u for u in units if (u.passage.document_id or u.passage.source_uri) == document]
    if not best.passage.title or any(question.answered_by(u.text) for u in in_document):
        return None
    return f"{best.passage.title}: {question_text}"


def word_groups(text: str, size: int = 3) -> list[str]:
    """`text` cut into deltas of `size` words (whitespace kept), as a model would stream it."""
    tokens = re.findall(r"\S+\s*|\s+", text)
    return ["".join(tokens[i : i + size]) for i in range(0, len(tokens), size)]
