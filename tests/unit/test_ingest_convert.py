"""Conversion to Markdown with MarkItDown: titles, cleaning, and damaged files refused."""

from __future__ import annotations

import pytest
from documents import docx_bytes, pdf_bytes

from concierge.api.resources import InlineDocument
from concierge.retrieval.convert import choose_title, clean_text, convert
from concierge.retrieval.sources import DocumentProblem, DocumentRef, LoadedDocument


def loaded(data: bytes, fmt: str, name: str = "file") -> LoadedDocument:
    ref = DocumentRef(source="docs", key=name, uri=name, name=name, format=fmt)
    return LoadedDocument(ref=ref, data=data, format=fmt)


def test_title_is_the_given_one_then_the_first_h1_then_the_file_name() -> None:
    assert choose_title("  Shipping   rates ", "# Other", "a.html") == "Shipping rates"
    assert choose_title(None, "intro\n\n# Returns policy #\n\n# Second", "a.md") == "Returns policy"
    assert choose_title("", "## not level one", "refund-timing_v2.md") == "Refund timing v2"


def test_html_becomes_markdown_with_its_title_and_without_scripts() -> None:
    html = (
        b"<html><head><title>Shipping</title><script>track()</script></head>"
        b"<body><h2>Rates</h2><p>Free over $49.</p></body></html>"
    )
    converted = convert(loaded(html, "html", "shipping.html"))
    assert converted.title == "Shipping"
    assert "## Rates" in converted.markdown
    assert "Free over $49." in converted.markdown
    assert "track()" not in converted.markdown


def test_a_pdf_becomes_text_titled_by_its_file_name() -> None:
    converted = convert(loaded(pdf_bytes("The warranty lasts two years."), "pdf", "warranty-terms.pdf"))
    assert "The warranty lasts two years." in converted.markdown
    assert converted.title == "Warranty terms"


def test_a_docx_heading_becomes_the_title() -> None:
    converted = convert(loaded(docx_bytes("Care+ terms", "Accidental damage is covered."), "docx", "care.docx"))
    assert converted.title == "Care+ terms"
    assert "Accidental damage is covered." in converted.markdown


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        (b"hello, I am not a PDF", "pdf", "not a valid PDF"),
        (b"%PDF-1.4\nthe rest is garbage", "pdf", "damaged or not a PDF"),
        (pdf_bytes("cut short")[:200], "pdf", "cannot convert the pdf document"),
        (b"plain text", "docx", "not a valid DOCX"),
        (b"PK\x03\x04 not really a zip", "docx", "cannot convert the docx document"),
    ],
)
def test_a_damaged_file_is_a_document_problem(data: bytes, fmt: str, reason: str) -> None:
    with pytest.raises(DocumentProblem, match=reason):
        convert(loaded(data, fmt))


def test_a_document_without_text_is_a_document_problem() -> None:
    with pytest.raises(DocumentProblem, match="no text found"):
        convert(loaded(b"<html><body>  <div> </div> </body></html>", "html"))


def test_inline_markdown_is_taken_as_written_with_the_given_title() -> None:
    inline = InlineDocument(title="Opening hours", content="We are open **9-5**.\r\n")
    ref = DocumentRef(
        source="s",
        key="Opening hours",
        uri="inline:s/Opening hours",
        name="Opening hours",
        format="markdown",
        inline=inline,
    )
    converted = convert(LoadedDocument(ref=ref, data=inline.content.encode(), format="markdown"))
    assert (converted.title, converted.markdown) == ("Opening hours", "We are open **9-5**.")


def test_clean_text_removes_nuls_and_turns_page_breaks_into_paragraph_breaks() -> None:
    assert clean_text("a\x00b  \r\npage one\x0cpage two\n\n\n\nend") == "ab\npage one\n\npage two\n\nend"
