"""The edge's upload checks: which files are read, how their text is cut, what the agent is told."""

from __future__ import annotations

import pytest
from documents import docx_bytes, pdf_pages

from concierge.edge.attachments import (
    Extracted,
    attachment_format,
    attachment_note,
    extract,
    looks_binary,
    problem_of,
    safe_filename,
)
from concierge.retrieval.sources import DocumentProblem


@pytest.mark.parametrize(
    ("filename", "content_type", "expected"),
    [
        ("manual.PDF", "application/octet-stream", "pdf"),
        ("notes.md", "text/plain", "markdown"),
        ("table.csv", "", "csv"),
        ("offer.docx", "", "docx"),
        ("deck.pptx", "", "pptx"),
        ("sheet.xlsx", "", "xlsx"),
        ("data.json", "", "json"),
        ("page.htm", "", "html"),
        ("blob", "application/pdf", "pdf"),
        ("blob", "application/problem+json", "json"),
        ("photo.png", "image/png", None),
        ("setup.exe", "application/octet-stream", None),
        ("blob", "application/octet-stream", None),
    ],
)
def test_format_comes_from_the_extension_then_the_content_type(
    filename: str, content_type: str, expected: str | None
) -> None:
    assert attachment_format(filename, content_type) == expected


def test_filename_loses_folders_and_control_characters_and_keeps_its_extension() -> None:
    assert safe_filename("C:\\Users\\ana\\Desktop\\manual.pdf") == "manual.pdf"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("bad\nname\x00.txt") == "bad name .txt"
    assert safe_filename("") == "attachment"
    long = safe_filename("x" * 400 + ".docx")
    assert len(long) == 255
    assert long.endswith(".docx")


def test_a_program_renamed_to_text_is_binary() -> None:
    assert looks_binary(b"MZ\x90\x00\x03\x00\x00\x00")
    assert not looks_binary("Grüße, the Sweepy beeps twice".encode())


def test_pdf_text_is_extracted_with_its_page_count() -> None:
    extracted = extract(
        pdf_pages("Error E42 means the brush is stuck.", "Page two.", "Page three."), "m.pdf", "pdf", 10_000
    )
    assert "Error E42" in extracted.text
    assert extracted.pages == 3
    assert not extracted.truncated
    assert extracted.chars == len(extracted.text)


def test_long_text_is_cut_to_the_limit_and_marked_truncated() -> None:
    extracted = extract(("word " * 1000).encode(), "long.txt", "text", 1000)
    assert len(extracted.text) == 1000
    assert extracted.truncated
    assert extracted.chars > 1000
    assert extracted.pages is None


def test_docx_is_read_through_the_knowledge_converter() -> None:
    extracted = extract(docx_bytes("Warranty", "Two years on the motor."), "w.docx", "docx", 10_000)
    assert extracted.text.startswith("# Warranty")


def test_a_file_that_is_not_what_its_name_says_is_unsupported_and_an_empty_one_unreadable() -> None:
    with pytest.raises(DocumentProblem) as not_pdf:
        extract(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "photo.pdf", "pdf", 10_000)
    assert problem_of(not_pdf.value, "photo.pdf", "pdf").status == 415
    with pytest.raises(DocumentProblem) as empty:
        extract(b"   \n\n  ", "blank.txt", "text", 10_000)
    problem = problem_of(empty.value, "blank.txt", "text")
    assert problem.status == 422
    assert "no text found" in problem.detail


def test_the_note_names_the_file_the_attachment_id_and_the_size_of_its_text() -> None:
    note = attachment_note("manual.pdf", "a1", "pdf", Extracted(text="x" * 100, chars=12_345, truncated=True, pages=12))
    assert note == (
        'Customer attached "manual.pdf" (attachment a1, PDF, 12 pages, 12,345 characters of text, '
        "only the first 100 are kept)."
    )
    one = attachment_note("a.md", "a2", "markdown", Extracted(text="hi", chars=2, truncated=False, pages=None))
    assert one == 'Customer attached "a.md" (attachment a2, Markdown, 2 characters of text).'
