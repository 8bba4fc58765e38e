"""Main-content extraction of web pages before conversion."""

from __future__ import annotations

from concierge.retrieval.html import main_content

PAGE = """<html><head><title>Refunds — Acme Help Center</title><script>var tracking = 1;</script></head>
<body>
<header><a href="/">Acme</a> Sign in</header>
<nav>Home · Orders · Refunds · Warranty</nav>
<div class="sidebar" role="complementary">Popular: reset your router</div>
<main>
  <h1>Refunds<a class="headerlink" href="#refunds">¶</a></h1>
  <section id="timing"><h2>How long it takes</h2><p>Refunds reach your card within 14 days.</p></section>
  <h2 id="store-credit">Store credit</h2><p>Choose store credit for an instant refund.</p>
  <div aria-hidden="true">decorative</div>
</main>
<footer>© Acme · Privacy</footer>
</body></html>"""


def test_only_the_main_content_is_kept() -> None:
    html = main_content(PAGE)
    assert "Refunds reach your card within 14 days." in html
    for chrome in ("Sign in", "Orders", "reset your router", "Privacy", "tracking", "decorative", "¶"):
        assert chrome not in html


def test_heading_ids_are_written_into_the_headings() -> None:
    html = main_content(PAGE)
    assert "How long it takes {#timing}" in html
    assert "Store credit {#store-credit}" in html


def test_the_site_name_is_cut_from_the_title_when_the_h1_names_the_page() -> None:
    assert "<title>Refunds</title>" in main_content(PAGE)
    other = "<html><head><title>Acme FAQ</title></head><body><h1>Questions</h1><p>x</p></body></html>"
    assert "<title>Acme FAQ</title>" in main_content(other)


def test_a_page_without_main_uses_the_longest_article_or_the_body() -> None:
    articles = "<body><article><p>short</p></article><article><p>the long article text here</p></article></body>"
    assert "the long article text here" in main_content(articles)
    assert "short" not in main_content(articles)
    body = "<body><header>Top</header><p>Plain body text.</p><footer>Bottom</footer></body>"
    html = main_content(body)
    assert "Plain body text." in html
    assert "Top" not in html
    assert "Bottom" not in html


def test_bytes_are_decoded_as_declared_and_an_xhtml_declaration_is_no_obstacle() -> None:
    xhtml = (
        '<?xml version="1.0" encoding="utf-8"?>\n<html><head><title>Café</title></head><body><p>Crème</p></body></html>'
    )
    assert main_content(xhtml.encode()) == "<html><head><title>Café</title></head><body><p>Crème</p></body></html>"
    latin = '<html><head><meta charset="iso-8859-1"></head><body><p>Ñandú</p></body></html>'.encode("iso-8859-1")
    assert "<p>Ñandú</p>" in main_content(latin)
    assert main_content(b"  \n ") == ""
