"""Reads web pages for URL sources: one page, the pages a start page links to, or a sitemap's pages.

Every request is checked hop by hop (http(s) only, optionally no private addresses, a crawl stays
on its origin, robots.txt obeyed) and every body is capped, so a spec cannot aim the server elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import mimetypes
import re
import socket
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser
from xml.parsers import expat

import httpx
from bs4 import BeautifulSoup, Tag

from concierge.api.resources import CrawlSpec

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
FETCH_CONCURRENCY = 4
# RFC 9309 asks crawlers to read at least 500 KiB of robots.txt.
_ROBOTS_MAX_BYTES = 512 * 1024
# Sitemap files read for one source (an index and the sitemaps it lists), and how deep indexes nest.
_MAX_SITEMAP_FILES = 50
_MAX_SITEMAP_NESTING = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# The built-in table only: the machine's /etc/mime.types must not change which links are followed.
_MIMETYPES = mimetypes.MimeTypes(filenames=())

# (mimetype without parameters, URL) -> document format, or None when it is not a document.
FormatOf = Callable[[str, str], "str | None"]


class FetchError(Exception):
    """One URL could not be read; the message says what failed and how to fix it."""


class NotADocument(Exception):
    """The URL answered with something that is not a document (an image, a zip): skipped, not an error."""


class CrawlError(Exception):
    """The crawl cannot be trusted as a whole (start page, sitemap or robots.txt unreadable)."""


@dataclass(frozen=True)
class Response:
    url: str
    status: int
    mimetype: str
    data: bytes = field(repr=False)
    format: str | None = None


@dataclass(frozen=True)
class Page:
    url: str
    data: bytes = field(repr=False)
    format: str


@dataclass
class CrawlResult:
    """Documents found, in breadth-first order, and the pages that failed (url, reason)."""

    pages: list[Page] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    # Links left out by robots.txt, or pages that were not documents.
    skipped: int = 0
    # True when max_pages stopped the crawl before it ran out of links.
    truncated: bool = False


# --- URLs ------------------------------------------------------------------------------


def normalize_url(url: str) -> str | None:
    """`url` in the form used as a document key, or None if it is not an http(s) URL of a host.

    Scheme and host lower-cased, default port and fragment dropped, empty path made `/`; the
    rest (path case, query order) is kept, since servers may tell those apart.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def check_url(url: str, *, allow_private_networks: bool) -> None:
    """Raise FetchError unless `url` is http(s) and, when so configured, on a public address."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise FetchError(f"{url}: only http and https URLs are read, not {parts.scheme or 'scheme-less'} URLs")
    host = parts.hostname
    if not host:
        raise FetchError(f"{url}: the URL names no host")
    if allow_private_networks:
        return
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or _DEFAULT_PORTS[parts.scheme], type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise FetchError(f"{url}: cannot resolve host {host!r}: {exc}") from exc
        # IPv6 results may carry a zone (`fe80::1%eth0`), which ip_address does not parse.
        addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    for address in sorted(addresses, key=str):
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if not (mapped or address).is_global:
            raise FetchError(
                f"{url}: {host} is at {address}, a private, loopback or link-local address; this server "
                "refuses those (CONCIERGE_FETCH_ALLOW_PRIVATE_NETWORKS=false)"
            )


def looks_like_a_page(url: str, format_of: FormatOf) -> bool:
    """False for links whose file name says they are no document (images, scripts, archives)."""
    path = urlsplit(url).path
    if not PurePosixPath(path).suffix:
        return True
    mimetype, encoding = _MIMETYPES.guess_type(path, strict=False)
    if encoding is not None:
        return False
    return mimetype is None or format_of(mimetype, url) is not None


# --- fetching --------------------------------------------------------------------------


async def fetch(
    url: str,
    *,
    client: httpx.AsyncClient,
    max_bytes: int,
    allow_private_networks: bool,
    format_of: FormatOf | None = None,
    stay_on: str | None = None,
    robots: Robots | None = None,
    truncate: bool = False,
) -> Response:
    """GET `url`, following redirects by hand so each hop is checked again.

    `format_of`: decides from the Content-Type whether the body is wanted (NotADocument if not),
    before it is read. `stay_on`: an origin every hop must keep. `robots`: rules every hop must
    pass. `truncate`: keep the first `max_bytes` of a longer body instead of failing.
    Raises FetchError for HTTP errors (status >= 400 is returned only with `truncate`).
    """
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        await check_url(current, allow_private_networks=allow_private_networks)
        if stay_on is not None and origin_of(current) != stay_on:
            raise FetchError(
                f"{url} redirects to {current}, off {stay_on}; a crawl only reads pages of the host it starts on"
            )
        if robots is not None and not robots.allows(current):
            raise NotADocument(f"robots.txt disallows {current}")
        try:
            async with client.stream("GET", current, follow_redirects=False) as response:
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    current = urljoin(current, location)
                    continue
                if response.status_code >= 400 and not truncate:
                    raise FetchError(
                        f"GET {current} answered HTTP {response.status_code} {response.reason_phrase}".rstrip()
                    )
                mimetype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                fmt = format_of(mimetype, current) if format_of is not None else None
                if format_of is not None and fmt is None:
                    raise NotADocument(f"{current} is {mimetype or 'of no declared type'}, not a document format")
                data = await _read_body(response, max_bytes, truncate)
                return Response(url=current, status=response.status_code, mimetype=mimetype, data=data, format=fmt)
        except httpx.HTTPError as exc:
            raise FetchError(f"GET {current} failed: {type(exc).__name__}: {exc}") from exc
    raise FetchError(f"GET {url} redirected more than {MAX_REDIRECTS} times; link to the final address instead")


async def _read_body(response: httpx.Response, max_bytes: int, truncate: bool) -> bytes:
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(
            f"download is {declared} bytes, more than the limit of {max_bytes} (CONCIERGE_MAX_DOCUMENT_BYTES)"
        )
    body = bytearray()
    # aiter_bytes decompresses: the limit holds for what is kept, so a gzip bomb stops early too.
    async for part in response.aiter_bytes():
        body.extend(part)
        if len(body) > max_bytes:
            if truncate:
                return bytes(body[:max_bytes])
            raise FetchError(f"download exceeds the limit of {max_bytes} bytes (CONCIERGE_MAX_DOCUMENT_BYTES)")
    return bytes(body)


# --- robots.txt ------------------------------------------------------------------------


class Robots:
    """The robots.txt rules of one origin for our user agent."""

    def __init__(self, parser: RobotFileParser, agent: str) -> None:
        self._parser = parser
        self._agent = agent

    def allows(self, url: str) -> bool:
        return self._parser.can_fetch(self._agent, url)

    @classmethod
    def allow_all(cls, agent: str = "*") -> Robots:
        parser = RobotFileParser()
        parser.parse([])
        return cls(parser, agent)


async def read_robots(origin: str, *, client: httpx.AsyncClient, allow_private_networks: bool) -> Robots:
    """robots.txt of `origin`, read as RFC 9309 says: missing (4xx) allows all, unreachable allows nothing."""
    url = f"{origin}/robots.txt"
    agent = client.headers.get("user-agent", "concierge")
    try:
        response = await fetch(
            url,
            client=client,
            max_bytes=_ROBOTS_MAX_BYTES,
            allow_private_networks=allow_private_networks,
            truncate=True,
        )
    except FetchError as exc:
        raise CrawlError(f"cannot read robots.txt, so nothing may be crawled: {exc}") from exc
    if response.status >= 500:
        raise CrawlError(
            f"robots.txt at {url} answered HTTP {response.status}; RFC 9309 forbids crawling until it can be "
            "read: the next sync tries again"
        )
    parser = RobotFileParser(url)
    parser.parse(response.data.decode("utf-8", errors="replace").splitlines() if response.status < 400 else [])
    return Robots(parser, agent)


# --- links and sitemaps ----------------------------------------------------------------


@dataclass(frozen=True)
class PageLinks:
    links: list[str]
    # <meta name="robots" content="noindex, nofollow">
    index: bool = True
    follow: bool = True


def read_links(html: bytes, url: str) -> PageLinks:
    """Absolute targets of the page's <a>/<area> links, in document order (CPU-bound)."""
    soup = BeautifulSoup(html, "html.parser")
    directives: set[str] = set()
    for meta in soup.find_all("meta"):
        if isinstance(meta, Tag) and str(meta.get("name", "")).lower() in ("robots", "concierge"):
            directives |= {d.strip().lower() for d in str(meta.get("content", "")).split(",")}
    base = url
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        base = urljoin(url, str(base_tag["href"]))
    links = []
    for anchor in soup.find_all(["a", "area"], href=True):
        if not isinstance(anchor, Tag):
            continue
        rel = anchor.get("rel")
        if "nofollow" in (list(rel) if isinstance(rel, list) else str(rel or "").split()):
            continue
        links.append(urljoin(base, str(anchor["href"]).strip()))
    index = not directives & {"noindex", "none"}
    follow = not directives & {"nofollow", "none"}
    return PageLinks(links=links if follow else [], index=index, follow=follow)


class _NoDoctype(Exception):
    pass


def parse_sitemap(data: bytes) -> tuple[Literal["urlset", "sitemapindex"], list[str]]:
    """The kind of a sitemap and its <loc> URLs; raises ValueError for anything else.

    Parsed with expat and no DTD allowed, so entities cannot expand (no "billion laughs") and
    nothing external is loaded.
    """
    if data[:2] == b"\x1f\x8b":
        raise ValueError("gzip data must be unpacked first")
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    root: list[str] = []
    stack: list[str] = []
    text: list[str] = []
    locs: list[str] = []

    def refuse_doctype(*_: object) -> None:
        raise _NoDoctype

    def start(name: str, _attributes: dict[str, str]) -> None:
        local = name.rsplit(" ", 1)[-1]
        if not root:
            root.append(local)
        stack.append(local)
        text.clear()

    def end(_name: str) -> None:
        local = stack.pop()
        if local == "loc" and stack and stack[-1] in ("url", "sitemap"):
            locs.append("".join(text).strip())

    def characters(chunk: str) -> None:
        if stack and stack[-1] == "loc":
            text.append(chunk)

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    try:
        parser.Parse(data, True)
    except _NoDoctype:
        raise ValueError("it has a DOCTYPE, which sitemaps never need and which is refused") from None
    except expat.ExpatError as exc:
        raise ValueError(f"it is not well-formed XML: {exc}") from None
    kind = root[0] if root else ""
    if kind not in ("urlset", "sitemapindex"):
        raise ValueError(f"its root element is <{kind}>, not <urlset> or <sitemapindex>")
    return ("urlset" if kind == "urlset" else "sitemapindex"), locs


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        unpacked = unpacker.decompress(data, max_bytes)
    except zlib.error as exc:
        raise ValueError(f"it is not valid gzip: {exc}") from None
    if unpacker.unconsumed_tail:
        raise ValueError(f"it unpacks to more than the limit of {max_bytes} bytes")
    return unpacked


# --- scope -----------------------------------------------------------------------------


def _path_pattern(pattern: str) -> re.Pattern[str]:
    """A glob (`*` within a segment, `**` across) or, without wildcards, a prefix."""
    if not any(c in pattern for c in "*?"):
        return re.compile(re.escape(pattern) + ".*", re.DOTALL)
    parts = []
    for token in re.split(r"(\*\*|\*|\?)", pattern):
        parts.append({"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token)))
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True)
class Scope:
    """Which URLs a crawl may read: its origin, and the include/exclude paths (or the start folder)."""

    origin: str
    folder: str
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def of(cls, start: str, spec: CrawlSpec) -> Scope:
        # A sitemap lists pages anywhere on its host (robots.txt may point at it from elsewhere).
        path = "/" if spec.sitemap else urlsplit(start).path
        return cls(
            origin=origin_of(start),
            folder=path[: path.rfind("/") + 1] or "/",
            include=tuple(_path_pattern(p) for p in spec.include),
            exclude=tuple(_path_pattern(p) for p in spec.exclude),
        )

    def allows(self, url: str) -> bool:
        if origin_of(url) != self.origin:
            return False
        path = urlsplit(url).path
        if any(p.fullmatch(path) for p in self.exclude):
            return False
        if self.include:
            return any(p.fullmatch(path) for p in self.include)
        return path.startswith(self.folder)


# --- the crawl -------------------------------------------------------------------------


class _Crawl:
    def __init__(
        self,
        spec: CrawlSpec,
        scope: Scope,
        robots: Robots,
        *,
        client: httpx.AsyncClient,
        max_bytes: int,
        allow_private_networks: bool,
        format_of: FormatOf,
        concurrency: int,
    ) -> None:
        self.spec = spec
        self.scope = scope
        self.robots = robots
        self.client = client
        self.max_bytes = max_bytes
        self.allow_private_networks = allow_private_networks
        self.format_of = format_of
        self.slots = asyncio.Semaphore(concurrency)
        self.result = CrawlResult()
        # Every URL scheduled or reached by a redirect: each page is read once.
        self.seen: set[str] = set()

    async def sitemap_pages(self, url: str) -> list[str]:
        """Page URLs listed by the sitemap at `url` and the sitemaps it indexes, within scope."""
        pages: list[str] = []
        queue: list[tuple[str, int]] = [(url, 0)]
        read = 0
        while queue and len(pages) < self.spec.max_pages:
            sitemap_url, nesting = queue.pop(0)
            if read == _MAX_SITEMAP_FILES:
                log.warning("sitemap files beyond the limit ignored limit=%d url=%s", _MAX_SITEMAP_FILES, sitemap_url)
                break
            read += 1
            kind, locs = await self._read_sitemap(sitemap_url)
            for loc in locs:
                target = normalize_url(urljoin(sitemap_url, loc))
                if target is None or origin_of(target) != self.scope.origin:
                    self.result.skipped += 1
                    continue
                if kind == "sitemapindex":
                    if nesting + 1 < _MAX_SITEMAP_NESTING:
                        queue.append((target, nesting + 1))
                    else:
                        log.warning("sitemap nested too deeply, ignored url=%s", target)
                elif target not in self.seen and self.scope.allows(target) and self.robots.allows(target):
                    self.seen.add(target)
                    pages.append(target)
                    if len(pages) == self.spec.max_pages:
                        self.result.truncated = True
                        break
                else:
                    self.result.skipped += 1
        return pages

    async def _read_sitemap(self, url: str) -> tuple[Literal["urlset", "sitemapindex"], list[str]]:
        try:
            response = await fetch(
                url,
                client=self.client,
                max_bytes=self.max_bytes,
                allow_private_networks=self.allow_private_networks,
                stay_on=self.scope.origin,
            )
            data = response.data
            if data[:2] == b"\x1f\x8b":
                data = await asyncio.to_thread(_gunzip, data, self.max_bytes)
            return await asyncio.to_thread(parse_sitemap, data)
        except (FetchError, NotADocument) as exc:
            raise CrawlError(f"cannot read sitemap {url}: {exc}") from exc
        except ValueError as exc:
            raise CrawlError(f"sitemap {url} cannot be read: {exc}") from exc

    async def run(self, seeds: list[str], *, start_page: str | None) -> CrawlResult:
        self.seen.update(seeds)
        frontier = seeds
        scheduled = len(seeds)
        for depth in range(self.spec.max_depth + 1):
            if not frontier:
                break
            visits = await asyncio.gather(*(self._visit(url) for url in frontier))
            follow = depth < self.spec.max_depth
            next_frontier: list[str] = []
            for url, visit in zip(frontier, visits, strict=True):
                if isinstance(visit, str):
                    if url == start_page:
                        raise CrawlError(f"cannot read the start page: {visit}")
                    self.result.failures.append((url, visit))
                    continue
                if visit is None:
                    self.result.skipped += 1
                    continue
                page, links = visit
                if page is not None:
                    self.result.pages.append(page)
                for link in links if follow else []:
                    if scheduled >= self.spec.max_pages:
                        self.result.truncated = True
                        break
                    target = normalize_url(link)
                    if target is None or target in self.seen:
                        continue
                    self.seen.add(target)
                    if not (
                        self.scope.allows(target)
                        and looks_like_a_page(target, self.format_of)
                        and self.robots.allows(target)
                    ):
                        self.result.skipped += 1
                        continue
                    next_frontier.append(target)
                    scheduled += 1
            frontier = next_frontier
        return self.result

    async def _visit(self, url: str) -> tuple[Page | None, list[str]] | str | None:
        """(the page if it is a document, its links), a failure reason, or None when skipped."""
        async with self.slots:
            try:
                response = await fetch(
                    url,
                    client=self.client,
                    max_bytes=self.max_bytes,
                    allow_private_networks=self.allow_private_networks,
                    format_of=self.format_of,
                    stay_on=self.scope.origin,
                    robots=self.robots,
                )
            except FetchError as exc:
                return str(exc)
            except NotADocument as exc:
                log.debug("crawl skipped url=%s reason=%s", url, exc)
                return None
        final = normalize_url(response.url) or url
        if final != url:
            if final in self.seen:
                return None  # a redirect to a page that is read anyway
            self.seen.add(final)
        assert response.format is not None
        links = PageLinks(links=[])
        if response.format == "html":
            links = await asyncio.to_thread(read_links, response.data, final)
        keep = links.index and self.scope.allows(final)
        page = Page(url=final, data=response.data, format=response.format) if keep else None
        return page, links.links


async def crawl(
    start_url: str,
    spec: CrawlSpec,
    *,
    client: httpx.AsyncClient,
    max_bytes: int,
    allow_private_networks: bool,
    format_of: FormatOf,
    concurrency: int = FETCH_CONCURRENCY,
) -> CrawlResult:
    """Read the pages of a crawl, breadth first, within `spec`'s limits.

    Raises CrawlError when the start page, a sitemap or robots.txt cannot be read: then what was
    found is incomplete and must not replace what is stored. A page that fails is a failure in
    the result and the crawl goes on.
    """
    start = normalize_url(start_url)
    if start is None:
        raise CrawlError(f"{start_url!r} is not an http(s) URL of a host")
    await _check(start, allow_private_networks)
    scope = Scope.of(start, spec)
    robots = await read_robots(scope.origin, client=client, allow_private_networks=allow_private_networks)
    run = _Crawl(
        spec,
        scope,
        robots,
        client=client,
        max_bytes=max_bytes,
        allow_private_networks=allow_private_networks,
        format_of=format_of,
        concurrency=concurrency,
    )
    if spec.sitemap:
        seeds = await run.sitemap_pages(start)
        if not seeds:
            log.warning("sitemap lists no page in scope url=%s include=%s", start, spec.include)
        result = await run.run(seeds, start_page=None)
    else:
        if not robots.allows(start):
            raise CrawlError(
                f"robots.txt of {scope.origin} disallows {start} for this crawler; ask the site to allow it "
                "or start from another page"
            )
        result = await run.run([start], start_page=start)
    log.info(
        "crawl finished url=%s pages=%d failed=%d skipped=%d truncated=%s",
        start,
        len(result.pages),
        len(result.failures),
        result.skipped,
        result.truncated,
    )
    return result


async def _check(url: str, allow_private_networks: bool) -> None:
    try:
        await check_url(url, allow_private_networks=allow_private_networks)
    except FetchError as exc:
        raise CrawlError(str(exc)) from exc
