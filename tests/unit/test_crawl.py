"""Crawling URL sources against a real HTTP server on loopback: scope, limits, robots.txt, sitemaps."""

from __future__ import annotations

import gzip
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from concierge.api.resources import CrawlSpec, KnowledgeSource
from concierge.retrieval.crawl import (
    CrawlError,
    CrawlResult,
    crawl,
    normalize_url,
    parse_sitemap,
    read_links,
)
from concierge.retrieval.sources import (
    DocumentProblem,
    SourcePolicy,
    SourceProblem,
    crawled_format,
    discover,
    load,
)

HTML = "text/html; charset=utf-8"


class Site:
    """Pages served by a real HTTP server on 127.0.0.1; records every path requested."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, path: str, body: bytes | str, *, status: int = 200, content_type: str = HTML, **headers: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = (status, {"Content-Type": content_type, **headers}, data)

    def page(self, path: str, *links: str, text: str = "") -> None:
        """An HTML page titled by its path, with `text` and links to `links`."""
        anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
        body = text or f"This page is {path}; it explains one thing in plain words."
        self.add(path, f"<html><head><title>{path}</title></head><body><p>{body}</p><ul>{anchors}</ul></body></html>")

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.add(path, b"", status=status, Location=location)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.requests.append(self.path)
            status, headers, body = site.routes.get(self.path, (404, {"Content-Type": "text/plain"}, b"not found"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def served_site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    site = Site(server)
    server.RequestHandlerClass = _handler(site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def site(served_site: Site) -> Site:
    """The module's server with no pages and no requests yet."""
    served_site.routes.clear()
    served_site.requests.clear()
    return served_site


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # As the retrieval server makes it: redirects on by default, which fetches must override.
    async with httpx.AsyncClient(
        timeout=10, follow_redirects=True, headers={"User-Agent": "concierge-retrieval"}
    ) as client:
        yield client


async def run(site: Site, client: httpx.AsyncClient, path: str = "/docs/", **spec: Any) -> CrawlResult:
    return await crawl(
        site.url + path,
        CrawlSpec.model_validate(spec),
        client=client,
        max_bytes=100_000,
        allow_private_networks=True,
        format_of=crawled_format,
    )


def paths(site: Site, result: CrawlResult) -> list[str]:
    return [page.url.removeprefix(site.url) for page in result.pages]


def failures(site: Site, result: CrawlResult) -> list[str]:
    return [url.removeprefix(site.url) for url, _ in result.failures]


# --- links, depth and limits -------------------------------------------------------------


async def test_links_are_followed_breadth_first_up_to_max_depth(site: Site, client: httpx.AsyncClient) -> None:
    site.page("/docs/", "/docs/a", "/docs/b")
    site.page("/docs/a", "/docs/a1")
    site.page("/docs/b", "/docs/b1")
    site.page("/docs/a1", "/docs/a2")
    site.page("/docs/b1")
    site.page("/docs/a2")
    assert paths(site, await run(site, client, maxDepth=2)) == [
        "/docs/",
        "/docs/a",
        "/docs/b",
        "/docs/a1",
        "/docs/b1",
    ]
    assert "/docs/a2" not in site.requests
    assert paths(site, await run(site, client, maxDepth=0)) == ["/docs/"]


async def test_max_pages_stops_the_crawl_at_the_first_pages_found(site: Site, client: httpx.AsyncClient) -> None:
    site.page("/docs/", *[f"/docs/{i}" for i in range(10)])
    for i in range(10):
        site.page(f"/docs/{i}")
    result = await run(site, client, maxPages=4)
    assert paths(site, result) == ["/docs/", "/docs/0", "/docs/1", "/docs/2"]
    assert result.truncated
    assert "/docs/3" not in site.requests


async def test_only_pages_on_the_same_host_and_under_the_start_folder_are_read(
    site: Site, client: httpx.AsyncClient
) -> None:
    port = site.server.server_address[1]
    site.page(
        "/docs/index.html",
        "guide.html",
        "/blog/post",
        f"http://localhost:{port}/docs/other-host",
        "https://example.com/docs/elsewhere",
        f"https://127.0.0.1:{port}/docs/other-scheme",
    )
    site.page("/docs/guide.html")
    site.page("/blog/post")
    result = await run(site, client, path="/docs/index.html")
    assert paths(site, result) == ["/docs/index.html", "/docs/guide.html"]
    assert sorted(site.requests) == ["/docs/guide.html", "/docs/index.html", "/robots.txt"]


async def test_include_and_exclude_patterns_choose_the_pages(site: Site, client: httpx.AsyncClient) -> None:
    site.page("/", "/help/a", "/help/old/b", "/help/c.html", "/shop/d")
    for path in ["/help/a", "/help/old/b", "/help/c.html", "/shop/d"]:
        site.page(path)
    result = await run(site, client, path="/", include=["/help/"], exclude=["/help/old/**", "/**/*.html"])
    # The start page is read for its links but is not a document: it matches no include.
    assert paths(site, result) == ["/help/a"]
    assert "/shop/d" not in site.requests


async def test_fragments_and_repeated_links_read_a_page_once(site: Site, client: httpx.AsyncClient) -> None:
    site.page("/docs/", "/docs/a#intro", "/docs/a#details", "/docs/a", "HTTP://127.0.0.1:{port}/docs/a", "#top")
    site.routes["/docs/"] = (
        200,
        {"Content-Type": HTML},
        site.routes["/docs/"][2].replace(b"{port}", str(site.server.server_address[1]).encode()),
    )
    site.page("/docs/a", "/docs/", "./a")
    result = await run(site, client)
    assert paths(site, result) == ["/docs/", "/docs/a"]
    assert site.requests.count("/docs/a") == 1
    assert all("#" not in page.url for page in result.pages)


async def test_links_that_are_not_documents_are_skipped(site: Site, client: httpx.AsyncClient) -> None:
    site.page(
        "/docs/",
        "mailto:help@example.com",
        "javascript:alert(1)",
        "tel:+15551234",
        "/docs/logo.png",
        "/docs/app.js",
        "/docs/bundle.zip",
        "/docs/download.php",
        "/docs/manual.pdf",
        "/docs/prices.csv",
    )
    site.add("/docs/download.php", b"\x89PNG\r\n", content_type="image/png")
    site.add("/docs/manual.pdf", b"%PDF-1.4 pretend", content_type="application/pdf")
    site.add("/docs/prices.csv", "model,price\nS2,299\n", content_type="text/csv")
    result = await run(site, client)
    assert [(path, page.format) for path, page in zip(paths(site, result), result.pages, strict=True)] == [
        ("/docs/", "html"),
        ("/docs/manual.pdf", "pdf"),
        ("/docs/prices.csv", "csv"),
    ]
    # Only the PHP link had to be asked: its name said nothing; its Content-Type said image.
    assert sorted(site.requests) == [
        "/docs/",
        "/docs/download.php",
        "/docs/manual.pdf",
        "/docs/prices.csv",
        "/robots.txt",
    ]
    assert result.failures == []


async def test_meta_robots_nofollow_and_noindex_are_obeyed(site: Site, client: httpx.AsyncClient) -> None:
    site.page("/docs/", "/docs/hidden", "/docs/dead-end")
    site.add(
        "/docs/hidden",
        '<html><head><meta name="robots" content="noindex"></head><body><a href="/docs/x">x</a></body></html>',
    )
    site.add(
        "/docs/dead-end",
        '<html><head><meta name="robots" content="nofollow"></head><body><p>End.</p>'
        '<a href="/docs/y">y</a></body></html>',
    )
    site.page("/docs/x")
    site.page("/docs/y")
    assert paths(site, await run(site, client)) == ["/docs/", "/docs/dead-end", "/docs/x"]


# --- robots.txt --------------------------------------------------------------------------


async def test_pages_robots_txt_disallows_are_never_requested(site: Site, client: httpx.AsyncClient) -> None:
    site.add(
        "/robots.txt",
        "User-agent: *\nDisallow: /docs/private/\n\nUser-agent: concierge\nDisallow: /docs/drafts/\n",
        content_type="text/plain",
    )
    site.page("/docs/", "/docs/public", "/docs/private/a", "/docs/drafts/b")
    for path in ["/docs/public", "/docs/private/a", "/docs/drafts/b"]:
        site.page(path)
    result = await run(site, client)
    # The group naming our user agent applies, not the * group (RFC 9309).
    assert paths(site, result) == ["/docs/", "/docs/public", "/docs/private/a"]
    assert "/docs/drafts/b" not in site.requests
    site.add("/robots.txt", "User-agent: *\nDisallow: /docs/private/\n", content_type="text/plain")
    assert paths(site, await run(site, client)) == ["/docs/", "/docs/public", "/docs/drafts/b"]


async def test_a_start_page_robots_txt_disallows_fails_the_crawl(site: Site, client: httpx.AsyncClient) -> None:
    site.add("/robots.txt", "User-agent: *\nDisallow: /\n", content_type="text/plain")
    site.page("/docs/")
    with pytest.raises(CrawlError, match=r"robots.txt of http://127.0.0.1:\d+ disallows"):
        await run(site, client)
    assert site.requests == ["/robots.txt"]


async def test_an_unreachable_robots_txt_stops_the_crawl_and_a_missing_one_allows_all(
    site: Site, client: httpx.AsyncClient
) -> None:
    site.page("/docs/")
    assert paths(site, await run(site, client)) == ["/docs/"]  # 404: no rules
    site.add("/robots.txt", "busy", status=503, content_type="text/plain")
    with pytest.raises(CrawlError, match="answered HTTP 503; RFC 9309 forbids crawling"):
        await run(site, client)


# --- sitemaps ----------------------------------------------------------------------------


def urlset(site: Site, *paths: str) -> str:
    entries = "".join(f"<url><loc>{site.url}{path}</loc><lastmod>2025-01-01</lastmod></url>" for path in paths)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'


async def test_a_sitemap_lists_the_pages_of_its_host_wherever_it_lies(site: Site, client: httpx.AsyncClient) -> None:
    site.add(
        "/static/sitemap.xml",
        urlset(site, "/a", "/b", "/a").replace("</urlset>", "<url><loc>https://example.com/c</loc></url></urlset>"),
        content_type="application/xml",
    )
    site.page("/a", "/not-followed")
    site.page("/b")
    result = await run(site, client, path="/static/sitemap.xml", sitemap=True, maxDepth=0)
    assert paths(site, result) == ["/a", "/b"]
    assert "/not-followed" not in site.requests


async def test_a_sitemap_index_is_followed_to_its_sitemaps_also_gzipped(site: Site, client: httpx.AsyncClient) -> None:
    index = (
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"<sitemap><loc>{site.url}/maps/one.xml</loc></sitemap>"
        f"<sitemap><loc>{site.url}/maps/two.xml.gz</loc></sitemap>"
        "</sitemapindex>"
    )
    site.add("/sitemap.xml", index, content_type="text/xml")
    site.add("/maps/one.xml", urlset(site, "/one"), content_type="text/xml")
    site.add(
        "/maps/two.xml.gz", gzip.compress(urlset(site, "/two", "/three").encode()), content_type="application/gzip"
    )
    for path in ["/one", "/two", "/three"]:
        site.page(path)
    assert paths(site, await run(site, client, path="/sitemap.xml", sitemap=True, maxDepth=0)) == [
        "/one",
        "/two",
        "/three",
    ]
    assert paths(site, await run(site, client, path="/sitemap.xml", sitemap=True, maxDepth=0, maxPages=2)) == [
        "/one",
        "/two",
    ]


async def test_sitemap_pages_links_are_followed_when_max_depth_allows(site: Site, client: httpx.AsyncClient) -> None:
    site.add("/sitemap.xml", urlset(site, "/a"), content_type="application/xml")
    site.page("/a", "/b")
    site.page("/b")
    assert paths(site, await run(site, client, path="/sitemap.xml", sitemap=True, maxDepth=1)) == ["/a", "/b"]


async def test_an_unreadable_sitemap_fails_the_crawl(site: Site, client: httpx.AsyncClient) -> None:
    site.add("/sitemap.xml", "<html><body>Not here</body></html>")
    with pytest.raises(CrawlError, match=r"root element is <html>"):
        await run(site, client, path="/sitemap.xml", sitemap=True)
    with pytest.raises(CrawlError, match="HTTP 404"):
        await run(site, client, path="/missing.xml", sitemap=True)


def test_a_sitemap_with_a_doctype_is_refused_so_entities_cannot_expand() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        b"<urlset><url><loc>&b;</loc></url></urlset>"
    )
    with pytest.raises(ValueError, match="DOCTYPE"):
        parse_sitemap(bomb)
    assert parse_sitemap(b"<urlset><url><loc> https://x.test/a </loc></url></urlset>") == (
        "urlset",
        ["https://x.test/a"],
    )


# --- redirects, failures and safety ------------------------------------------------------


async def test_redirects_are_followed_on_the_host_and_refused_off_it(site: Site, client: httpx.AsyncClient) -> None:
    port = site.server.server_address[1]
    site.page("/docs/", "/docs/moved", "/docs/away", "/docs/again")
    site.redirect("/docs/moved", "/docs/new-home", status=301)
    site.redirect("/docs/again", "/docs/new-home")
    site.redirect("/docs/away", f"http://localhost:{port}/docs/stolen")
    site.page("/docs/new-home")
    result = await run(site, client)
    assert paths(site, result) == ["/docs/", "/docs/new-home"]
    assert site.requests.count("/docs/new-home") == 2  # two links to it; the second is a duplicate, dropped
    ((url, reason),) = result.failures
    assert url.endswith("/docs/away")
    assert f"redirects to http://localhost:{port}/docs/stolen, off http://127.0.0.1:{port}" in reason


async def test_a_failing_page_is_recorded_and_the_crawl_goes_on(site: Site, client: httpx.AsyncClient) -> None:
    site.page("/docs/", "/docs/gone", "/docs/broken", "/docs/big", "/docs/fine")
    site.add("/docs/broken", "oops", status=500, content_type="text/plain")
    site.add("/docs/big", "x" * 200_000)
    site.page("/docs/fine")
    result = await run(site, client)
    assert paths(site, result) == ["/docs/", "/docs/fine"]
    reasons = dict(zip(failures(site, result), (reason for _, reason in result.failures), strict=True))
    assert reasons.keys() == {"/docs/gone", "/docs/broken", "/docs/big"}
    assert "answered HTTP 404 Not Found" in reasons["/docs/gone"]
    assert "answered HTTP 500" in reasons["/docs/broken"]
    assert "more than the limit of 100000" in reasons["/docs/big"]


async def test_a_start_page_that_fails_fails_the_crawl(site: Site, client: httpx.AsyncClient) -> None:
    with pytest.raises(CrawlError, match=r"cannot read the start page: GET .* answered HTTP 404"):
        await run(site, client)


async def test_private_addresses_are_refused_unless_allowed(site: Site, client: httpx.AsyncClient) -> None:
    site.page("/docs/")
    with pytest.raises(CrawlError, match=r"127.0.0.1 is at 127.0.0.1, a private, loopback or link-local address"):
        await crawl(
            site.url + "/docs/",
            CrawlSpec(),
            client=client,
            max_bytes=1000,
            allow_private_networks=False,
            format_of=crawled_format,
        )
    assert site.requests == []


# --- through sources.discover and load -----------------------------------------------------


async def test_discover_makes_each_page_a_document_keyed_by_its_url(site: Site, client: httpx.AsyncClient) -> None:
    site.page("/docs/", "/docs/returns#policy", "/docs/gone")
    site.page("/docs/returns", text="Returns are free within 30 days.")
    source = KnowledgeSource.model_validate({"name": "help", "url": site.url + "/docs/", "crawl": {"maxDepth": 1}})
    refs = await discover(source, None, client=client, policy=SourcePolicy(max_bytes=100_000))
    assert [(ref.key, ref.uri, ref.name) for ref in refs] == [
        (site.url + "/docs/", site.url + "/docs/", "docs"),
        (site.url + "/docs/returns", site.url + "/docs/returns", "returns"),
        (site.url + "/docs/gone", site.url + "/docs/gone", "gone"),
    ]
    requests = len(site.requests)
    loaded = await load(refs[1], client=client, max_bytes=100_000)
    assert b"Returns are free within 30 days." in loaded.data
    assert loaded.format == "html"
    assert len(site.requests) == requests  # read once, while crawling
    with pytest.raises(DocumentProblem, match="HTTP 404"):
        await load(refs[2], client=client, max_bytes=100_000)


async def test_a_crawl_that_cannot_start_is_a_source_problem(site: Site, client: httpx.AsyncClient) -> None:
    source = KnowledgeSource.model_validate({"name": "help", "url": site.url + "/docs/", "crawl": {}})
    with pytest.raises(SourceProblem, match="its documents are kept: cannot read the start page"):
        await discover(source, None, client=client, policy=SourcePolicy(max_bytes=1000))


async def test_discover_lists_folders_as_enumerate_does(tmp_path: Path, client: httpx.AsyncClient) -> None:
    (tmp_path / "a.md").write_text("# A")
    source = KnowledgeSource.model_validate({"name": "docs", "path": "."})
    refs = await discover(source, tmp_path, client=client, policy=SourcePolicy(max_bytes=1000))
    assert [ref.key for ref in refs] == ["a.md"]


# --- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("HTTPS://Help.Example.COM", "https://help.example.com/"),
        ("https://help.example.com:443/a/B?x=2&a=1#top", "https://help.example.com/a/B?x=2&a=1"),
        ("http://help.example.com:8080/a/", "http://help.example.com:8080/a/"),
        ("http://[::1]:80/a", "http://[::1]/a"),
        ("mailto:help@example.com", None),
        ("javascript:void(0)", None),
        ("ftp://example.com/file", None),
        ("https://user:secret@example.com/", None),
        ("https://example.com:99999/", None),
    ],
)
def test_urls_are_normalised_only_where_servers_cannot_tell_the_difference(url: str, normal: str | None) -> None:
    assert normalize_url(url) == normal


def test_links_come_from_anchors_in_order_resolved_against_the_base() -> None:
    html = (
        b'<html><head><base href="https://x.test/docs/"></head><body>'
        b'<a href="a">a</a><a href="/b" rel="nofollow">b</a><map><area href="c"></map>'
        b"<a>no href</a><a href=' d '>d</a></body></html>"
    )
    links = read_links(html, "https://x.test/other/page")
    assert links.links == ["https://x.test/docs/a", "https://x.test/docs/c", "https://x.test/docs/d"]
    assert (links.index, links.follow) == (True, True)


async def test_a_redirect_loop_is_a_failure_of_that_page(site: Site, client: httpx.AsyncClient) -> None:
    site.page("/docs/", "/docs/loop")
    site.redirect("/docs/loop", "/docs/loop-again")
    site.redirect("/docs/loop-again", "/docs/loop")
    result = await run(site, client)
    assert paths(site, result) == ["/docs/"]
    assert [reason.split(" redirected")[1] for _, reason in result.failures] == [
        " more than 5 times; link to the final address instead"
    ]


def test_a_crawl_needs_a_url_and_its_patterns_are_url_paths() -> None:
    with pytest.raises(ValueError, match="`crawl` needs a `url` to start from; this source has `path`"):
        KnowledgeSource.model_validate({"name": "docs", "path": "docs", "crawl": {}})
    with pytest.raises(ValueError, match="String should match pattern"):
        KnowledgeSource.model_validate({"name": "docs", "url": "https://x.test/", "crawl": {"include": ["docs/"]}})
    with pytest.raises(ValueError, match="less than or equal to 5"):
        CrawlSpec.model_validate({"maxDepth": 6})
