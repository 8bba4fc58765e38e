"""Lists and reads the documents of a knowledge base's sources: inline text, files, URLs.

Folders are listed by globs relative to the spec's folder; every failure names its cause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx

from concierge.api.resources import InlineDocument, KnowledgeSource
from concierge.retrieval.plan import DocKey

log = logging.getLogger(__name__)

FORMAT_BY_EXTENSION = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
FORMAT_BY_MIMETYPE = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}


class SourceProblem(Exception):
    """A whole source could not be listed; its stored documents are kept."""


class DocumentProblem(Exception):
    """One document could not be read or converted; its stored version is kept."""


@dataclass(frozen=True)
class DocumentRef:
    """A document a source holds, before it is read."""

    source: str
    key: str
    # Shown in citations: path relative to the spec's folder, URL, or inline:<source>/<title>.
    uri: str
    # File name (or inline title): title of last resort.
    name: str
    # None for URLs: the response's Content-Type decides.
    format: str | None
    path: Path | None = None
    url: str | None = None
    inline: InlineDocument | None = None

    @property
    def doc_key(self) -> DocKey:
        return (self.source, self.key)

    @property
    def label(self) -> str:
        """How errors name the document: `source: key`."""
        return f"{self.source}: {self.key}"


@dataclass(frozen=True)
class LoadedDocument:
    ref: DocumentRef
    data: bytes
    format: str

    def hash_material(self) -> bytes:
        """Everything from the source that decides the document's chunks."""
        return b"\0".join([self.format.encode(), self.ref.name.encode(), self.data])


def enumerate_source(source: KnowledgeSource, base_dir: Path | None) -> list[DocumentRef]:
    """The documents `source` holds now, in a stable order; raises SourceProblem."""
    if source.inline is not None:
        return _inline_refs(source.name, source.inline)
    if source.url is not None:
        url = str(source.url)
        name = PurePosixPath(urlsplit(url).path).name or urlsplit(url).hostname or url
        return [DocumentRef(source=source.name, key=url, uri=url, name=name, format=None, url=url)]
    assert source.path is not None  # the spec validator guarantees exactly one kind
    root = resolve_path(source.path, base_dir)
    if root.is_file():
        fmt = FORMAT_BY_EXTENSION.get(root.suffix.lower())
        if fmt is None:
            raise SourceProblem(f"{root.name}: unsupported file type; supported: {', '.join(FORMAT_BY_EXTENSION)}")
        return [_file_ref(source.name, root, root.name, fmt, base_dir)]
    if not root.is_dir():
        raise SourceProblem(f"path {source.path!r} does not exist (resolved to {root})")
    refs = []
    for path in list_folder(root, source.include):
        fmt = FORMAT_BY_EXTENSION.get(path.suffix.lower())
        if fmt is None:
            log.debug("file skipped source=%s reason=unsupported_type", source.name)
            continue
        refs.append(_file_ref(source.name, path, path.relative_to(root).as_posix(), fmt, base_dir))
    if not refs:
        # An empty folder is a valid state (its old documents get deleted), but worth a note.
        log.warning("source has no documents source=%s path=%s include=%s", source.name, root, source.include)
    return refs


def resolve_path(path: str, base_dir: Path | None) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        return candidate
    if base_dir is None:
        raise SourceProblem(f"path {path!r} is relative but the sync request has no base_dir to resolve it against")
    return base_dir / candidate


def list_folder(root: Path, include: Sequence[str]) -> list[Path]:
    """Files under `root` matched by any `include` glob (`**` spans folders), hidden ones left out."""
    found: set[Path] = set()
    for pattern in include:
        parts = PurePosixPath(pattern).parts
        if not pattern or pattern.startswith("/") or ".." in parts:
            raise SourceProblem(f"include pattern {pattern!r} must be relative to the folder and not use '..'")
        for path in root.glob(pattern):
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts):
                continue  # .git, editor swap files and the like are never documents
            if path.is_file():
                found.add(path)
    return sorted(found)


def _file_ref(source: str, path: Path, key: str, fmt: str, base_dir: Path | None) -> DocumentRef:
    return DocumentRef(source=source, key=key, uri=_display(path, base_dir), name=path.name, format=fmt, path=path)


def _display(path: Path, base_dir: Path | None) -> str:
    if base_dir is not None:
        try:
            return path.relative_to(base_dir).as_posix()
        except ValueError:
            pass
    return str(path)


def _inline_refs(source: str, documents: Sequence[InlineDocument]) -> list[DocumentRef]:
    refs = []
    seen: dict[str, int] = {}
    for document in documents:
        # Titles identify inline documents; repeats get a counter so each keeps its own rows.
        seen[document.title] = seen.get(document.title, 0) + 1
        key = document.title if seen[document.title] == 1 else f"{document.title} ({seen[document.title]})"
        refs.append(
            DocumentRef(
                source=source,
                key=key,
                uri=f"inline:{source}/{key}",
                name=document.title,
                format=document.format,
                inline=document,
            )
        )
    return refs


async def load(ref: DocumentRef, *, client: httpx.AsyncClient, max_bytes: int) -> LoadedDocument:
    """Read the document's bytes; raises DocumentProblem with the reason."""
    if ref.inline is not None:
        return LoadedDocument(ref, ref.inline.content.encode(), ref.inline.format)
    if ref.path is not None:
        assert ref.format is not None
        data = await asyncio.to_thread(_read_file, ref.path, max_bytes)
        return LoadedDocument(ref, data, ref.format)
    assert ref.url is not None
    return await _fetch(ref, client, max_bytes)


def _read_file(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentProblem(
                f"file is {size} bytes, more than the limit of {max_bytes} (CONCIERGE_MAX_DOCUMENT_BYTES)"
            )
        return path.read_bytes()
    except OSError as exc:
        raise DocumentProblem(f"cannot read file: {exc.strerror or exc}") from exc


async def _fetch(ref: DocumentRef, client: httpx.AsyncClient, max_bytes: int) -> LoadedDocument:
    assert ref.url is not None
    try:
        async with client.stream("GET", ref.url) as response:
            if response.status_code >= 400:
                raise DocumentProblem(f"GET {ref.url} answered HTTP {response.status_code} {response.reason_phrase}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise DocumentProblem(f"download is {declared} bytes, more than the limit of {max_bytes}")
            body = bytearray()
            async for part in response.aiter_bytes():
                body.extend(part)
                if len(body) > max_bytes:
                    raise DocumentProblem(f"download exceeds the limit of {max_bytes} bytes")
            mimetype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    except httpx.HTTPError as exc:
        raise DocumentProblem(f"GET {ref.url} failed: {type(exc).__name__}: {exc}") from exc
    suffix = PurePosixPath(urlsplit(ref.url).path).suffix.lower()
    fmt = FORMAT_BY_MIMETYPE.get(mimetype) or FORMAT_BY_EXTENSION.get(suffix) or "html"
    return LoadedDocument(ref, bytes(body), fmt)
