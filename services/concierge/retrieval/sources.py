"""Lists and reads the documents of a knowledge base's sources: inline text, files, URLs, crawls.

Folders are listed by globs relative to the spec's folder and kept inside the allowed roots;
URLs go through crawl.py's checked fetches; every failure names its cause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx

from concierge.api.resources import InlineDocument, KnowledgeSource
from concierge.retrieval import crawl
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
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".csv": "csv",
    ".json": "json",
}
FORMAT_BY_MIMETYPE = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/json": "json",
    "text/json": "json",
}
# Content types that say nothing about the format: the URL's file extension decides. Servers
# send text/plain for .md, .csv and .json files too, so a known extension wins over it.
_UNSPECIFIC_MIMETYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "text/plain"})


class SourceProblem(Exception):
    """A whole source could not be listed; its stored documents are kept."""


class DocumentProblem(Exception):
    """One document could not be read or converted; its stored version is kept."""


@dataclass(frozen=True)
class SourcePolicy:
    """What a sync may read: how much per document, which networks, which folders."""

    max_bytes: int
    # False: URLs whose host is at a private, loopback or link-local address are refused.
    allow_private_networks: bool = True
    # Folders that `path` sources must stay inside, after `..` and symlinks are resolved; empty: anywhere.
    allowed_roots: tuple[Path, ...] = ()
    fetch_concurrency: int = crawl.FETCH_CONCURRENCY


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
    # Body already read while listing (a crawled page): `load` returns it instead of fetching again.
    fetched: bytes | None = field(default=None, repr=False)
    # Why the document cannot be read, found while listing: `load` raises it as a DocumentProblem.
    problem: str | None = None

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


async def discover(
    source: KnowledgeSource, base_dir: Path | None, *, client: httpx.AsyncClient, policy: SourcePolicy
) -> list[DocumentRef]:
    """The documents `source` holds now; raises SourceProblem when they cannot be known.

    Unlike `enumerate_source` it crawls: a crawled page is read here (links need the page), so its
    ref carries the body, or the reason it failed, for `load` to hand on.
    """
    if source.url is not None and source.crawl is not None:
        return await _crawl_refs(source, client, policy)
    return await asyncio.to_thread(enumerate_source, source, base_dir, allowed_roots=policy.allowed_roots)


def enumerate_source(
    source: KnowledgeSource, base_dir: Path | None, *, allowed_roots: Sequence[Path] = ()
) -> list[DocumentRef]:
    """The documents `source` holds now, in a stable order, without network; raises SourceProblem.

    `allowed_roots`: folders that paths must stay inside (see `SourcePolicy`).
    """
    if source.inline is not None:
        return _inline_refs(source.name, source.inline)
    if source.url is not None:
        url = str(source.url)
        if source.crawl is not None:
            raise SourceProblem(f"{url} is crawled, which needs `discover`; this caller can only list single URLs")
        return [DocumentRef(source=source.name, key=url, uri=url, name=_url_name(url), format=None, url=url)]
    assert source.path is not None  # the spec validator guarantees exactly one kind
    roots = [root.resolve() for root in allowed_roots]
    root = resolve_path(source.path, base_dir, roots)
    if root.is_file():
        fmt = FORMAT_BY_EXTENSION.get(root.suffix.lower())
        if fmt is None:
            raise SourceProblem(f"{root.name}: unsupported file type; supported: {', '.join(FORMAT_BY_EXTENSION)}")
        return [_file_ref(source.name, root, root.name, fmt, base_dir, roots)]
    if not root.is_dir():
        raise SourceProblem(f"path {source.path!r} does not exist (resolved to {root})")
    refs = []
    for path in list_folder(root, source.include):
        fmt = FORMAT_BY_EXTENSION.get(path.suffix.lower())
        if fmt is None:
            log.debug("file skipped source=%s reason=unsupported_type", source.name)
            continue
        refs.append(_file_ref(source.name, path, path.relative_to(root).as_posix(), fmt, base_dir, roots))
    if not refs:
        # An empty folder is a valid state (its old documents get deleted), but worth a note.
        log.warning("source has no documents source=%s path=%s include=%s", source.name, root, source.include)
    return refs


def resolve_path(path: str, base_dir: Path | None, allowed_roots: Sequence[Path] = ()) -> Path:
    """`path` made absolute; with `allowed_roots`, refused (SourceProblem) if it really lies outside them."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute():
        if base_dir is None:
            raise SourceProblem(f"path {path!r} is relative but the sync request has no base_dir to resolve it against")
        candidate = base_dir / candidate
    if allowed_roots and (reason := outside_roots(candidate, allowed_roots)):
        raise SourceProblem(f"path {path!r} {reason}")
    return candidate


def outside_roots(path: Path, roots: Sequence[Path]) -> str | None:
    """Why `path` is not inside any of `roots` (resolved folders), or None if it is.

    Resolving first follows `..` and every symlink, so neither can lead out of a root.
    """
    real = path.resolve()
    if any(real.is_relative_to(root) for root in roots):
        return None
    allowed = ", ".join(str(root) for root in roots)
    return (
        f"resolves to {real}, outside the folders sources may read ({allowed}); "
        "keep documents there, without '..' or symlinks that lead out"
    )


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


def _file_ref(source: str, path: Path, key: str, fmt: str, base_dir: Path | None, roots: Sequence[Path]) -> DocumentRef:
    problem = outside_roots(path, roots) if roots else None
    # Confined files are read at their resolved place, the one that was checked.
    readable = path.resolve() if roots and problem is None else path
    return DocumentRef(
        source=source,
        key=key,
        uri=_display(path, base_dir),
        name=path.name,
        format=fmt,
        path=readable,
        problem=f"file {problem}" if problem else None,
    )


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


def _url_name(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).name or urlsplit(url).hostname or url


async def _crawl_refs(source: KnowledgeSource, client: httpx.AsyncClient, policy: SourcePolicy) -> list[DocumentRef]:
    assert source.url is not None
    assert source.crawl is not None
    try:
        result = await crawl.crawl(
            str(source.url),
            source.crawl,
            client=client,
            max_bytes=policy.max_bytes,
            allow_private_networks=policy.allow_private_networks,
            format_of=crawled_format,
            concurrency=policy.fetch_concurrency,
        )
    except crawl.CrawlError as exc:
        raise SourceProblem(f"crawl of {source.url} failed, its documents are kept: {exc}") from exc
    refs = [
        DocumentRef(
            source=source.name,
            key=page.url,
            uri=page.url,
            name=_url_name(page.url),
            format=page.format,
            url=page.url,
            fetched=page.data,
        )
        for page in result.pages
    ]
    for url, reason in result.failures:
        refs.append(
            DocumentRef(source=source.name, key=url, uri=url, name=_url_name(url), format=None, url=url, problem=reason)
        )
    return refs


def crawled_format(mimetype: str, url: str) -> str | None:
    """Format of a download from its Content-Type, or its URL's extension when the type is unspecific."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    if mimetype in _UNSPECIFIC_MIMETYPES and suffix in FORMAT_BY_EXTENSION:
        return FORMAT_BY_EXTENSION[suffix]
    if mimetype.endswith("+json"):
        return "json"
    return FORMAT_BY_MIMETYPE.get(mimetype)


def download_format(mimetype: str, url: str) -> str | None:
    """As `crawled_format`; a single URL sent without any Content-Type is taken as HTML."""
    return crawled_format(mimetype, url) or ("html" if mimetype == "" else None)


async def load(
    ref: DocumentRef, *, client: httpx.AsyncClient, max_bytes: int, allow_private_networks: bool = True
) -> LoadedDocument:
    """Read the document's bytes; raises DocumentProblem with the reason."""
    if ref.problem is not None:
        raise DocumentProblem(ref.problem)
    if ref.fetched is not None:
        assert ref.format is not None
        return LoadedDocument(ref, ref.fetched, ref.format)
    if ref.inline is not None:
        return LoadedDocument(ref, ref.inline.content.encode(), ref.inline.format)
    if ref.path is not None:
        assert ref.format is not None
        data = await asyncio.to_thread(_read_file, ref.path, max_bytes)
        return LoadedDocument(ref, data, ref.format)
    assert ref.url is not None
    return await _fetch(ref, client, max_bytes, allow_private_networks)


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


async def _fetch(
    ref: DocumentRef, client: httpx.AsyncClient, max_bytes: int, allow_private_networks: bool
) -> LoadedDocument:
    assert ref.url is not None
    try:
        response = await crawl.fetch(
            ref.url,
            client=client,
            max_bytes=max_bytes,
            allow_private_networks=allow_private_networks,
            format_of=download_format,
        )
    except (crawl.FetchError, crawl.NotADocument) as exc:
        supported = ", ".join(sorted(set(FORMAT_BY_EXTENSION.values())))
        hint = f" (supported formats: {supported})" if isinstance(exc, crawl.NotADocument) else ""
        raise DocumentProblem(f"{exc}{hint}") from exc
    assert response.format is not None
    return LoadedDocument(ref, response.data, response.format)
