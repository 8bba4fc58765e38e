"""Conversion to Markdown (MarkItDown, and our own for JSON): titles, cleaning, each format, damage refused."""

from __future__ import annotations

import json

import pytest
from documents import docx_bytes, pdf_bytes, pptx_bytes, xlsx_bytes

from concierge.api.resources import InlineDocument
from concierge.retrieval.convert import choose_title, clean_text, comma_separated, convert, json_to_markdown
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
        (b"PK\x03\x04 not really a zip", "pptx", "cannot convert the pptx document: it is not a readable zip"),
        (docx_bytes("A", "b"), "xlsx", "not a valid XLSX file: the package has no xl/ part; it is a DOCX"),
        (xlsx_bytes({"S": [["a"]]}), "pptx", "not a valid PPTX file: the package has no ppt/ part; it is a XLSX"),
        (b'{"a": 1,}', "json", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 9"),
        (b"\xff\xfe{}", "json", "not valid JSON: it is not UTF-8 text"),
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


def test_clean_text_removes_nuls_and_puts_page_breaks_on_a_line_of_their_own() -> None:
    assert clean_text("a\x00b  \r\npage one\x0cpage two\n\n\n\nend") == "ab\npage one\n\n\x0c\n\npage two\n\nend"


def test_a_pptx_puts_each_slide_under_its_title_and_titles_untitled_ones_by_number() -> None:
    deck = pptx_bytes(
        ("Battery care", "Charge the battery fully before first use."),
        ("", "Empty the dust bin after every run."),
        ("Mopping", "Fill the tank with cold water only."),
    )
    converted = convert(loaded(deck, "pptx", "training-deck.pptx"))
    assert converted.title == "Battery care"
    assert converted.markdown == (
        "# Battery care\nCharge the battery fully before first use.\n\n"
        "# Slide 2\n\nEmpty the dust bin after every run.\n\n"
        "# Mopping\nFill the tank with cold water only."
    )


def test_a_pptx_without_slide_titles_is_titled_by_its_file_name() -> None:
    converted = convert(loaded(pptx_bytes(("", "Only words.")), "pptx", "sales_kickoff.pptx"))
    assert converted.title == "Sales kickoff"


def test_an_xlsx_becomes_one_table_per_sheet_without_pandas_fillers() -> None:
    workbook = xlsx_bytes(
        {
            "Prices": [["Model", "Price", None], ["S2", 299, None], ["S2 Pro", 499, "mops too"]],
            "Empty": [],
        }
    )
    converted = convert(loaded(workbook, "xlsx", "price-list.xlsx"))
    assert converted.title == "Price list"
    assert converted.markdown == (
        "## Prices\n| Model | Price |  |\n| --- | --- | --- |\n| S2 | 299 |  |\n| S2 Pro | 499 | mops too |\n\n## Empty"
    )


@pytest.mark.parametrize(
    "data",
    [b"model,price\nS2,299\n", b"\xef\xbb\xbfmodel;price\r\nS2;299\r\n", b"model\tprice\nS2\t299\n"],
)
def test_a_csv_becomes_a_table_whatever_its_delimiter(data: bytes) -> None:
    converted = convert(loaded(data, "csv", "prices.csv"))
    assert (converted.title, converted.markdown) == ("Prices", "| model | price |\n| --- | --- |\n| S2 | 299 |")


def test_only_delimiters_other_than_commas_are_rewritten() -> None:
    assert comma_separated(b"a,b\n1,2\n") == b"a,b\n1,2\n"
    assert comma_separated(b'q;a\n"x, y";z\n') == b'q,a\n"x, y",z\n'
    assert comma_separated(b"\xff\xfe") == b"\xff\xfe"


def test_json_becomes_headings_fields_and_tables_titled_by_its_title_key() -> None:
    document = {
        "title": "Store FAQ",
        "contact": {"email": "help@example.com", "hours": {"weekdays": "9-17"}},
        "faqs": [
            {"question": "Can I return a robot?", "answer": "Yes, within 30 days.", "tags": ["returns"]},
            {"question": "Do you ship abroad?", "answer": "Only to Canada.", "tags": []},
        ],
        "prices": [{"model": "S2", "price": 299}, {"model": "S2 Pro", "price": 499.5, "sale": True}],
        "regions": ["US", "CA"],
        "notes": "Line one.\nLine two.",
    }
    converted = convert(loaded(json.dumps(document).encode(), "json", "faq.json"))
    assert converted.title == "Store FAQ"
    assert converted.markdown == (
        "- **title**: Store FAQ\n\n"
        "**notes**\n\nLine one.\nLine two.\n\n"
        "## contact\n\n- **email**: help@example.com\n\n### hours\n\n- **weekdays**: 9-17\n\n"
        "## faqs\n\n"
        "### Can I return a robot?\n\n- **question**: Can I return a robot?\n- **answer**: Yes, within 30 days.\n\n"
        "#### tags\n\n- returns\n\n"
        "### Do you ship abroad?\n\n- **question**: Do you ship abroad?\n- **answer**: Only to Canada.\n\n"
        "## prices\n\n| model | price | sale |\n| --- | --- | --- |\n| S2 | 299 |  |\n| S2 Pro | 499.5 | true |\n\n"
        "## regions\n\n- US\n- CA"
    )


def test_a_json_document_converts_to_searchable_markdown() -> None:
    data = json.dumps([{"sku": "S2-DOCK", "name": "Charging dock", "note": "Fits S2 | S2 Pro"}] * 2).encode()
    converted = convert(loaded(data, "json", "parts.json"))
    assert converted.title == "Parts"
    assert converted.markdown == (
        "| sku | name | note |\n| --- | --- | --- |\n"
        "| S2-DOCK | Charging dock | Fits S2 \\| S2 Pro |\n| S2-DOCK | Charging dock | Fits S2 \\| S2 Pro |"
    )


def test_deeply_nested_json_ends_in_a_code_block_instead_of_ever_deeper_headings() -> None:
    value: object = "bottom"
    for _ in range(40):
        value = {"k": value}
    markdown, _ = json_to_markdown(json.dumps(value).encode())
    assert "**k**" in markdown
    assert "```json" in markdown
    assert '"bottom"' in markdown


def test_inline_csv_and_json_are_converted_like_files() -> None:
    inline = InlineDocument(title="Prices", content="model,price\nS2,299\n", format="csv")
    ref = DocumentRef(source="s", key="Prices", uri="inline:s/Prices", name="Prices", format="csv", inline=inline)
    converted = convert(LoadedDocument(ref=ref, data=inline.content.encode(), format="csv"))
    assert (converted.title, converted.markdown) == ("Prices", "| model | price |\n| --- | --- |\n| S2 | 299 |")
