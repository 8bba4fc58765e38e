"""Turns a document's bytes into Markdown with MarkItDown, and finds its title.

CPU-bound and blocking: callers run `convert` in a worker thread.
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from concierge.retrieval.sources import DocumentProblem, LoadedDocument

_FIRST_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
# Binary formats start with a signature; without it MarkItDown would fall back to reading
# the bytes as plain text and index garbage.
_SIGNATURES = {"pdf": (b"%PDF-",), "docx": (b"PK\x03\x04",)}
_EXTENSIONS = {"markdown": ".md", "text": ".txt", "html": ".html", "pdf": ".pdf", "docx": ".docx"}

_local = threading.local()


@dataclass(frozen=True)
class Converted:
    markdown: str
    title: str


def convert(document: LoadedDocument) -> Converted:
    """Markdown and title of the document; raises DocumentProblem when it cannot be read."""
    fmt = document.format
    if fmt in ("markdown", "text") and document.ref.inline is not None:
        text, found_title = document.data.decode(), None
    else:
        text, found_title = _markitdown(document)
    markdown = clean_text(text)
    if not markdown.strip():
        raise DocumentProblem(f"no text found in the {fmt} document (scanned images are not read)")
    inline_title = document.ref.inline.title if document.ref.inline is not None else None
    return Converted(markdown=markdown, title=choose_title(inline_title or found_title, markdown, document.ref.name))


def choose_title(given: str | None, markdown: str, name: str) -> str:
    """The converter's (or author's) title, else the first `# ` heading, else the file name.

    A file name is made readable for citations: `warranty-terms.pdf` becomes "Warranty terms".
    """
    if given and given.strip():
        return " ".join(given.split())
    if heading := _FIRST_H1.search(markdown):
        return heading.group(1).strip()
    words = " ".join(PurePosixPath(name).stem.replace("_", " ").replace("-", " ").split())
    return words[:1].upper() + words[1:] if words else name


def clean_text(text: str) -> str:
    """Text Postgres can store and the chunker can read: no NULs, form feeds as breaks."""
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").replace("\x0c", "\n\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _MANY_BLANK_LINES.sub("\n\n", text).strip()


def _markitdown(document: LoadedDocument) -> tuple[str, str | None]:
    from markitdown import StreamInfo

    fmt = document.format
    signatures = _SIGNATURES.get(fmt)
    if signatures and not document.data.startswith(signatures):
        raise DocumentProblem(f"not a valid {fmt.upper()} file: it does not start with the {fmt.upper()} signature")
    extension = _EXTENSIONS[fmt]
    info = StreamInfo(extension=extension, filename=document.ref.name)
    try:
        result: Any = _converter().convert_stream(io.BytesIO(document.data), stream_info=info)
    except Exception as exc:  # MarkItDown raises many types; the message is what matters
        reason = str(exc).strip().splitlines()
        detail = next((line.strip(" -") for line in reason if "threw" in line), reason[-1] if reason else "")
        raise DocumentProblem(f"cannot convert the {fmt} document: {type(exc).__name__}: {detail}") from exc
    text = str(result.text_content or "")
    if signatures and text.startswith(tuple(s.decode("latin-1") for s in signatures)):
        # MarkItDown's plain-text fallback took over: the real converter could not parse it.
        raise DocumentProblem(f"cannot convert the {fmt} document: the file is damaged or not a {fmt.upper()}")
    return text, result.title


def _converter() -> Any:
    """One MarkItDown per worker thread: cheap to keep, and no sharing of converter state."""
    converter = getattr(_local, "markitdown", None)
    if converter is None:
        from markitdown import MarkItDown

        converter = _local.markitdown = MarkItDown(enable_plugins=False)
    return converter
