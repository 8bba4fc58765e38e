"""Cuts a Markdown document into passages for embedding, measured in model tokens.

Headings become section paths; paragraphs pack up to the budget with overlap; tables and code stay whole.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from concierge.retrieval.tokens import TokenCounter

SECTION_SEPARATOR = " > "

BlockKind = Literal["prose", "list", "table", "code"]

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_EMPTY_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TABLE_ROW = re.compile(r"^ {0,3}\|")
_TABLE_DELIMITER = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r"^ {0,3}([-*+]|\d{1,9}[.)])[ \t]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?[^\s)>]*>?(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
_EMPHASIS = re.compile(r"\*\*|__|\*|`")
# `## Heading {#id}` (Pandoc/kramdown heading attributes): convert.py writes HTML ids this way.
_HEADING_ID = re.compile(r"[ \t]*\{#([^}\s]+)\}[ \t]*$")
_SLUG_DROP = re.compile(r"[^\w\- ]")
PAGE_BREAK = "\x0c"


@dataclass(frozen=True)
class Block:
    """A structural unit of the document: a paragraph, list, table or fenced code block."""

    kind: BlockKind
    section: tuple[str, ...]
    text: str
    # 1-based page in a paged document (PDF text has a form feed per page), else 0.
    page: int = 0
    # Fragment id of the innermost heading above the block that has one.
    anchor: str = ""


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    section: tuple[str, ...]
    # Clean text shown to people; the embedded text adds `heading_line` in front.
    text: str
    token_count: int
    page: int = 0
    anchor: str = ""

    @property
    def section_path(self) -> str:
        return SECTION_SEPARATOR.join(self.section)


def heading_line(title: str, section: Sequence[str]) -> str:
    """The line `Title > Section > Subsection`: what a chunk is about, even when its text is short."""
    return SECTION_SEPARATOR.join(part for part in (title, *section) if part)


def embedding_text(title: str, section: Sequence[str], text: str) -> str:
    """The text that is embedded for a chunk: its heading line, a blank line, its text."""
    heading = heading_line(title, section)
    return f"{heading}\n\n{text}" if heading else text


def chunk_document(
    markdown: str,
    *,
    title: str,
    max_tokens: int,
    overlap_tokens: int,
    count_tokens: TokenCounter,
    slug_anchors: bool = False,
) -> list[Chunk]:
    """Chunks of `markdown` whose embedded text (heading line + text) fits `max_tokens`.

    `slug_anchors`: headings without an explicit `{#id}` get GitHub's slug of their text as
    anchor (right for Markdown files; an HTML page's ids come with its headings).
    """
    chunks: list[Chunk] = []
    blocks = parse_blocks(plain_links(markdown), title=title, slug_anchors=slug_anchors)
    # A chunk never spans two sections or two pages, so its citation names one place.
    for (section, anchor, _), group in itertools.groupby(blocks, key=lambda b: (b.section, b.anchor, b.page)):
        # The heading line is embedded with every chunk, so it spends part of the budget; a
        # floor keeps absurdly long headings from leaving no room for text.
        budget = max(max_tokens - count_tokens(heading_line(title, section)), max_tokens // 4, 8)
        overlap = min(overlap_tokens, budget // 2)
        pieces = [piece for index, block in enumerate(group) for piece in _pieces(block, index, budget, count_tokens)]
        for text, page in _pack(pieces, budget, overlap, count_tokens):
            chunks.append(
                Chunk(
                    ordinal=len(chunks),
                    section=section,
                    text=text,
                    token_count=count_tokens(text),
                    page=page,
                    anchor=anchor,
                )
            )
    return chunks


def plain_links(markdown: str) -> str:
    """Links and images as their text only: URLs and link titles are noise to embed and to read."""
    return _LINK.sub(r"\1", markdown)


def github_slug(heading: str) -> str:
    """The fragment id GitHub (and most Markdown renderers) give a heading."""
    return _SLUG_DROP.sub("", heading.strip().lower()).replace(" ", "-")


def parse_blocks(markdown: str, *, title: str = "", slug_anchors: bool = False) -> list[Block]:
    """Blocks in document order, each with the path of headings it sits under, its page and anchor.

    A first-level heading equal to the title is left out of paths: it would only repeat the title.
    """
    lines = markdown.split("\n")  # not splitlines(): it also splits at the form feeds that mark pages
    # (level, text, anchor) of the headings above the current line.
    stack: list[tuple[int, str, str]] = []
    blocks: list[Block] = []
    paragraph: list[str] = []
    page = 1 if PAGE_BREAK in markdown else 0

    def section() -> tuple[str, ...]:
        path = [text for _, text, _ in stack]
        if path and stack[0][0] == 1 and title and path[0].casefold() == title.strip().casefold():
            path = path[1:]
        return tuple(path)

    def block(kind: BlockKind, text: str) -> Block:
        anchor = next((a for _, _, a in reversed(stack) if a), "")
        return Block(kind, section(), text, page, anchor)

    def flush() -> None:
        if paragraph:
            kind: BlockKind = "list" if _LIST_ITEM.match(paragraph[0]) else "prose"
            blocks.append(block(kind, "\n".join(paragraph).strip()))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if fence := _FENCE.match(line):
            flush()
            marker = fence.group(1)
            closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
            end = i + 1
            while end < len(lines) and not closing.match(lines[end]):
                end += 1
            # An unclosed fence runs to the end of the document, as in CommonMark.
            blocks.append(block("code", "\n".join(lines[i : end + 1])))
            i = end + 1
            continue
        if heading := _HEADING.match(line):
            flush()
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            raw = heading.group(2)
            explicit = _HEADING_ID.search(raw)
            raw = raw[: explicit.start()] if explicit else raw
            text = _plain(raw)
            if text:
                anchor = explicit.group(1) if explicit else github_slug(text) if slug_anchors else ""
                stack.append((level, text, anchor))
        elif line.strip(" \t") == PAGE_BREAK:
            flush()
            page += 1
        elif _EMPTY_HEADING.match(line) or _RULE.match(line) or not line.strip():
            flush()
        elif _TABLE_ROW.match(line):
            flush()
            end = i
            while end < len(lines) and _TABLE_ROW.match(lines[end]):
                end += 1
            blocks.append(block("table", "\n".join(row.strip() for row in lines[i:end])))
            i = end
            continue
        else:
            paragraph.append(line.rstrip())
        i += 1
    flush()
    return [block for block in blocks if block.text.strip()]


# --- packing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: int
    kind: BlockKind
    # Pieces of the same block continue each other: joined by `joiner`, not a paragraph break.
    block: int
    joiner: str
    page: int = 0


def _pieces(block: Block, index: int, budget: int, count: TokenCounter) -> list[_Piece]:
    """The block whole, or, when it alone exceeds the budget, cut at its natural seams.

    Prose and lists become sentences and items that the packer fills chunks with (so a lead-in
    sentence stays with the first items); tables and code become parts that each repeat the
    header or fence, so every part still renders as a table or code.
    """
    tokens = count(block.text)
    joiner = " " if block.kind == "prose" else "\n"
    if tokens <= budget:
        return [_Piece(block.text, tokens, block.kind, index, joiner, block.page)]
    if block.kind == "table":
        parts = _split_table(block.text, budget, count)
    elif block.kind == "code":
        parts = _split_code(block.text, budget, count)
    else:
        parts = [part for unit in _units(block.kind, block.text) for part in _pack_units([unit], joiner, budget, count)]
    return [_Piece(text, count(text), block.kind, index, joiner, block.page) for text in parts]


def _units(kind: BlockKind, text: str) -> list[str]:
    if kind == "list":
        return [line for line in text.splitlines() if line.strip()]
    # Soft line breaks (PDF text, wrapped Markdown) are not boundaries; sentences are.
    return _SENTENCE_END.split(" ".join(line.strip() for line in text.splitlines()))


def _pack(pieces: list[_Piece], budget: int, overlap: int, count: TokenCounter) -> list[tuple[str, int]]:
    """Greedily fill chunks with whole pieces; a new chunk repeats the tail of the last prose.

    Returns each chunk's text and the page of its first piece.
    """
    chunks: list[list[_Piece]] = []
    current: list[_Piece] = []
    used = 0
    for piece in pieces:
        if current and used + piece.tokens > budget:
            chunks.append(current)
            tail = _tail(current, overlap, count) if overlap else []
            carried = sum(p.tokens for p in tail)
            current, used = ([*tail], carried) if tail and carried + piece.tokens <= budget else ([], 0)
        current.append(piece)
        used += piece.tokens
    if current:
        chunks.append(current)
    return [(_render(chunk), chunk[0].page) for chunk in chunks]


def _render(pieces: list[_Piece]) -> str:
    parts = [pieces[0].text]
    for before, piece in itertools.pairwise(pieces):
        parts.append(piece.joiner if piece.block == before.block else "\n\n")
        parts.append(piece.text)
    return "".join(parts).strip()


def _tail(chunk: list[_Piece], overlap: int, count: TokenCounter) -> list[_Piece]:
    """The chunk's last sentences or list items within `overlap` tokens, to start the next one.

    Tables and code are never carried over: half of one as context misleads more than it helps.
    A last sentence longer than the overlap is carried as its last words.
    """
    taken: list[_Piece] = []
    used = 0
    for piece in reversed(chunk):
        if piece.kind not in ("prose", "list"):
            break
        units = _units(piece.kind, piece.text)
        kept: list[str] = []
        for unit in reversed(units):
            tokens = count(unit)
            if used + tokens > overlap:
                break
            kept.insert(0, unit)
            used += tokens
        if kept:
            text = piece.joiner.join(kept)
            taken.insert(0, _Piece(text, count(text), piece.kind, piece.block, piece.joiner, piece.page))
        if len(kept) < len(units):
            break
    last = chunk[-1]
    if not taken and last.kind in ("prose", "list"):
        words = last.text.split()
        kept = []
        while words and used + (tokens := count(words[-1])) <= overlap:
            kept.insert(0, words.pop())
            used += tokens
        if kept:
            text = " ".join(kept)
            taken.append(_Piece(text, count(text), last.kind, last.block, " ", last.page))
    return taken


def _pack_units(units: Sequence[str], joiner: str, budget: int, count: TokenCounter) -> Iterator[str]:
    """Join consecutive units up to the budget; a unit over budget is cut between words."""
    current: list[str] = []
    used = 0
    for unit in units:
        if not current and not unit.strip():
            continue  # a part never starts with blank lines
        tokens = count(unit)
        if tokens > budget:
            if current:
                yield joiner.join(current)
                current, used = [], 0
            yield from _split_words(unit, budget, count)
            continue
        if current and used + tokens > budget:
            yield joiner.join(current)
            current, used = [], 0
        current.append(unit)
        used += tokens
    if current:
        yield joiner.join(current)


def _split_words(text: str, budget: int, count: TokenCounter) -> Iterator[str]:
    current: list[str] = []
    used = 0
    for word in text.split():
        tokens = count(word)
        if tokens > budget:
            # A single "word" over budget (a pasted blob): cut it by characters.
            if current:
                yield " ".join(current)
                current, used = [], 0
            step = max(1, len(word) * budget // tokens)
            yield from (word[i : i + step] for i in range(0, len(word), step))
            continue
        if current and used + tokens > budget:
            yield " ".join(current)
            current, used = [], 0
        current.append(word)
        used += tokens
    if current:
        yield " ".join(current)


def _split_table(text: str, budget: int, count: TokenCounter) -> list[str]:
    """Groups of rows, each under a copy of the header so every part still reads as a table."""
    lines = text.splitlines()
    header_size = 2 if len(lines) > 1 and _TABLE_DELIMITER.match(lines[1]) else 1
    header = "\n".join(lines[:header_size])
    room = budget - count(header)
    if room < budget // 4:  # a header too big to repeat: fall back to plain rows
        return list(_pack_units(lines, "\n", budget, count))
    return [f"{header}\n{rows}" for rows in _pack_units(lines[header_size:], "\n", room, count)]


def _split_code(text: str, budget: int, count: TokenCounter) -> list[str]:
    """Groups of lines, each re-fenced so every part still renders as code."""
    lines = text.splitlines()
    opening = lines[0]
    fence = _FENCE.match(opening)
    marker = fence.group(1) if fence else "```"
    closed = len(lines) > 1 and lines[-1].strip().startswith(marker[0] * len(marker))
    body = lines[1:-1] if closed else lines[1:]
    room = max(budget - count(opening) - count(marker), budget // 2)
    return [f"{opening}\n{part}\n{marker}" for part in _pack_units(body, "\n", room, count)]


def _plain(heading: str) -> str:
    """Heading text without link targets and emphasis marks, for section paths."""
    return _EMPHASIS.sub("", _LINK.sub(r"\1", heading)).strip()
