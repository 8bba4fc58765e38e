"""Turns a document's bytes into Markdown with MarkItDown, and finds its title.

CPU-bound and blocking: callers run `convert` in a worker thread.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from concierge.retrieval.html import main_content
from concierge.retrieval.sources import DocumentProblem, LoadedDocument

_FIRST_H1 = re.compile(r"^ {0,3}#[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
# Binary formats start with a signature; without it MarkItDown would fall back to reading
# the bytes as plain text and index garbage.
_SIGNATURES = {"pdf": (b"%PDF-",), "docx": (b"PK\x03\x04",), "pptx": (b"PK\x03\x04",), "xlsx": (b"PK\x03\x04",)}
_EXTENSIONS = {
    "markdown": ".md",
    "text": ".txt",
    "html": ".html",
    "pdf": ".pdf",
    "docx": ".docx",
    "pptx": ".pptx",
    "xlsx": ".xlsx",
    "csv": ".csv",
}
# Office files are zip packages; the folder of their main part tells the three apart.
_PACKAGE_FOLDERS = {"docx": "word/", "pptx": "ppt/", "xlsx": "xl/"}
_MAX_UNPACKED_BYTES = 512 * 1024 * 1024

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
    elif fmt == "json":
        text, found_title = json_to_markdown(document.data)
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
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").replace("\x0c", "\n\n\x0c\n\n")
    text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))  # a lone form feed marks a page
    return _MANY_BLANK_LINES.sub("\n\n", text).strip()


def _markitdown(document: LoadedDocument) -> tuple[str, str | None]:
    from markitdown import StreamInfo

    fmt = document.format
    signatures = _SIGNATURES.get(fmt)
    if signatures and not document.data.startswith(signatures):
        raise DocumentProblem(f"not a valid {fmt.upper()} file: it does not start with the {fmt.upper()} signature")
    if fmt in _PACKAGE_FOLDERS:
        _check_package(fmt, document.data)
    extension = _EXTENSIONS[fmt]
    info = StreamInfo(extension=extension, filename=document.ref.name)
    data = main_content(document.data).encode() if fmt == "html" else document.data
    if fmt == "csv":
        data = comma_separated(data)
    try:
        result: Any = _converter().convert_stream(io.BytesIO(data), stream_info=info)
    except Exception as exc:  # MarkItDown raises many types; the message is what matters
        reason = str(exc).strip().splitlines()
        detail = next((line.strip(" -") for line in reason if "threw" in line), reason[-1] if reason else "")
        raise DocumentProblem(f"cannot convert the {fmt} document: {type(exc).__name__}: {detail}") from exc
    text = str(result.text_content or "")
    if signatures and text.startswith(tuple(s.decode("latin-1") for s in signatures)):
        # MarkItDown's plain-text fallback took over: the real converter could not parse it.
        raise DocumentProblem(f"cannot convert the {fmt} document: the file is damaged or not a {fmt.upper()}")
    if fmt == "pptx":
        text, first_title = tidy_slides(text)
        return text, first_title or choose_title(None, "", document.ref.name)
    if fmt == "xlsx":
        text = tidy_sheets(text)
    return text, result.title


def _check_package(fmt: str, data: bytes) -> None:
    """Refuse a damaged zip, another Office format under this name, or a zip bomb."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as package:
            entries = package.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
        raise DocumentProblem(f"cannot convert the {fmt} document: it is not a readable zip package ({exc})") from exc
    folder = _PACKAGE_FOLDERS[fmt]
    if not any(entry.filename.startswith(folder) for entry in entries):
        folders = {entry.filename.split("/")[0] + "/" for entry in entries}
        kind = next((k for k, v in _PACKAGE_FOLDERS.items() if v in folders), None)
        hint = f"; it is a {kind.upper()}: rename it to .{kind}" if kind else ""
        raise DocumentProblem(f"not a valid {fmt.upper()} file: the package has no {folder} part{hint}")
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > _MAX_UNPACKED_BYTES:
        raise DocumentProblem(
            f"cannot convert the {fmt} document: it unpacks to {unpacked} bytes, more than {_MAX_UNPACKED_BYTES}"
        )


def _converter() -> Any:
    """One MarkItDown per worker thread: cheap to keep, and no sharing of converter state."""
    converter = getattr(_local, "markitdown", None)
    if converter is None:
        from markitdown import MarkItDown

        converter = _local.markitdown = MarkItDown(enable_plugins=False)
    return converter


# --- format-specific tidying -----------------------------------------------------------

_SLIDE_MARK = re.compile(r"^<!-- Slide number: (\d+) -->$")
_TITLE_LINE = re.compile(r"^# \S")
# pandas writes NaN for empty cells and `Unnamed: 3` for empty header cells.
_EMPTY_CELL = re.compile(r"(?<=\|) (?:NaN|Unnamed: \d+) (?=\|)")
_BLANK_ROW = re.compile(r"^\|[\s|]*$")


def tidy_slides(markdown: str) -> tuple[str, str | None]:
    """Each slide under a `# ` heading (its title, or `Slide N`); also the first real slide title.

    MarkItDown marks slides with HTML comments, which the chunker would index as text, and
    writes untitled slides without a heading, which would merge them into the slide before.
    """
    lines = markdown.split("\n")
    out: list[str] = []
    first_title: str | None = None
    for i, line in enumerate(lines):
        mark = _SLIDE_MARK.match(line.strip())
        if mark is None:
            out.append(line)
            continue
        following = next((text for text in lines[i + 1 :] if text.strip()), "")
        if _TITLE_LINE.match(following):
            first_title = first_title or following[2:].strip()
        else:
            out.extend(["", f"# Slide {mark.group(1)}", ""])
    return "\n".join(out), first_title


def tidy_sheets(markdown: str) -> str:
    """Sheets' tables without pandas' `NaN` and `Unnamed: N` fillers, and empty sheets' stubs."""
    lines = [_EMPTY_CELL.sub("  ", _EMPTY_CELL.sub("  ", line)) for line in markdown.split("\n")]
    return "\n".join(line for line in lines if not _BLANK_ROW.match(line))


def comma_separated(data: bytes) -> bytes:
    """CSV with `;`, tab or `|` between fields (spreadsheet exports in many locales) rewritten with commas.

    MarkItDown only splits at commas; anything else would become a one-column table.
    """
    try:
        text = data.decode("utf-8-sig")
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except (UnicodeDecodeError, csv.Error):
        return data  # not UTF-8, or no delimiter to be sure of: MarkItDown reads it as it is
    if dialect.delimiter == ",":
        return data
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(csv.reader(io.StringIO(text, newline=""), dialect))
    return buffer.getvalue().encode()


_LABEL_KEYS = ("title", "name", "question", "label", "id", "key")
_MAX_JSON_DEPTH = 24
_LONG_TEXT = 200
_MAX_TABLE_COLUMNS = 8


def json_to_markdown(data: bytes) -> tuple[str, str | None]:
    """JSON as readable Markdown, so both searches find it; also a title from a top-level `title`/`name`.

    Nested keys become headings, scalars `- **key**: value` lines, lists of flat records tables;
    raw JSON would be embedded as punctuation and split inside values.
    """
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DocumentProblem(f"not valid JSON: it is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise DocumentProblem(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise DocumentProblem("not readable JSON: it is nested too deeply") from exc
    out: list[str] = []
    _json_block(value, 2, 0, out)
    title = None
    if isinstance(value, dict):
        title = next((v for k in ("title", "name") if isinstance(v := value.get(k), str) and v.strip()), None)
    return "\n".join(out), title


def _json_block(value: Any, level: int, depth: int, out: list[str]) -> None:
    if depth > _MAX_JSON_DEPTH:
        out.extend(["```json", json.dumps(value, ensure_ascii=False), "```", ""])
    elif isinstance(value, dict):
        nested = []
        for key, item in value.items():
            if isinstance(item, dict | list):
                if item:  # an empty container would be a heading over nothing
                    nested.append((str(key), item))
            else:
                _json_field(str(key), item, out)
        out.append("")
        for key, item in nested:
            out.extend([_json_heading(level, key), ""])
            _json_block(item, level + 1, depth + 1, out)
    elif isinstance(value, list):
        if _json_table(value, out):
            return
        for index, item in enumerate(value, 1):
            if isinstance(item, dict | list):
                out.extend(["", _json_heading(level, _json_label(item, index)), ""])
                _json_block(item, level + 1, depth + 1, out)
            else:
                out.append(f"- {_json_scalar(item)}")
        out.append("")
    else:
        out.extend([_json_scalar(value), ""])


def _json_field(key: str, value: Any, out: list[str]) -> None:
    if isinstance(value, str) and ("\n" in value.strip() or len(value) > _LONG_TEXT):
        out.extend(["", f"**{key}**", "", value.strip(), ""])
    else:
        out.append(f"- **{key}**: {_json_scalar(value)}")


def _json_table(items: list[Any], out: list[str]) -> bool:
    """Write a list of flat records (same few keys, short values) as a table; False if it is not one."""
    if len(items) < 2 or not all(isinstance(item, dict) for item in items):
        return False
    columns: dict[str, None] = {}
    for item in items:
        for key, cell in item.items():
            if isinstance(cell, dict | list) or (isinstance(cell, str) and len(cell) > _LONG_TEXT):
                return False
            columns[str(key)] = None
    if len(columns) > _MAX_TABLE_COLUMNS:
        return False
    keys = list(columns)
    out.append("| " + " | ".join(_json_cell(k) for k in keys) + " |")
    out.append("| " + " | ".join("---" for _ in keys) + " |")
    for item in items:
        cells = [_json_cell(_json_scalar(item[k])) if k in item else "" for k in keys]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return True


def _json_heading(level: int, text: str) -> str:
    text = " ".join(text.split()) or "(empty)"
    return f"{'#' * level} {text}" if level <= 6 else f"**{text}**"


def _json_label(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for key in _LABEL_KEYS:
            label = item.get(key)
            if isinstance(label, str | int) and not isinstance(label, bool) and str(label).strip():
                return str(label)
    return f"Item {index}"


def _json_scalar(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.split())
    return json.dumps(value)


def _json_cell(text: str) -> str:
    return text.replace("|", "\\|")
