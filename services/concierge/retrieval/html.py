"""Reduces a web page to its content before conversion: no menus, sidebars, footers or scripts.

Help centres and documentation sites wrap every article in the same navigation; indexed, that
chrome repeats in thousands of chunks and outranks the article. Headings keep their ids as
`{#id}` so citations can link to the section. Parsed with lxml (libxml2): a sync converts pages
on the cores the embedding model wants, and Python's own parser took 140 ms a page.
"""

from __future__ import annotations

import re
from html import escape

import lxml.html
from bs4.dammit import UnicodeDammit
from lxml import etree

# Page chrome by element and by ARIA role; `header`/`footer` only outside the chosen content.
_CHROME_TAGS = ("script", "style", "noscript", "template", "nav", "aside", "form", "iframe", "svg", "button")
_CHROME_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary", "menu", "menubar", "dialog")
_OUTER_CHROME_TAGS = ("header", "footer")
# Permalink markers next to headings ("¶", "#", "🔗") and screen-reader-only skip links.
_PERMALINK_CLASSES = ("headerlink", "anchorjs-link", "heading-anchor", "anchor-link", "skip-link")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_CHROME = etree.XPath(
    " | ".join(f"//{tag}" for tag in _CHROME_TAGS)
    + " | //*["
    + " or ".join(f'@role="{role}"' for role in _CHROME_ROLES)
    + ' or @aria-hidden="true" or '
    + " or ".join(f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')" for name in _PERMALINK_CLASSES)
    + "]"
)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_HEADING_PATH = " | ".join(f".//{tag}" for tag in _HEADINGS)


def main_content(html: bytes | str) -> str:
    """The page's title and main content as HTML, with heading ids written into the heading text."""
    try:
        document = _parse(html)
    except etree.ParserError:  # nothing but whitespace or comments
        return ""
    title_element = document.find(".//title")
    title = _text(title_element) if title_element is not None else ""
    for element in _CHROME(document):
        if element.getparent() is not None:  # the document element itself cannot be dropped
            element.drop_tree()
    root = _content_root(document)
    if root is None:
        return lxml.html.tostring(document, encoding="unicode")
    title = _without_site_name(title, root)
    if root.tag in ("body", "html"):
        for element in list(root.iter(*_OUTER_CHROME_TAGS)):  # a list: the tree changes as they go
            element.drop_tree()
    for heading in root.xpath(_HEADING_PATH):
        if anchor := _heading_id(heading):
            _append_text(heading, f" {{#{anchor}}}")
    head = f"<title>{escape(title, quote=False)}</title>" if title else ""
    if root.tag == "body":
        content = escape(root.text or "", quote=False) + "".join(
            lxml.html.tostring(child, encoding="unicode") for child in root
        )
    else:
        content = lxml.html.tostring(root, encoding="unicode", with_tail=False)
    return f"<html><head>{head}</head><body>{content}</body></html>"


def _parse(html: bytes | str) -> lxml.html.HtmlElement:
    """The document; bytes decoded as the page declares, else as detected (as BeautifulSoup does)."""
    text = (UnicodeDammit(html, is_html=True).unicode_markup or "") if isinstance(html, bytes) else html
    # lxml refuses text that still declares an encoding in an XML declaration (XHTML pages).
    return lxml.html.document_fromstring(_XML_DECLARATION.sub("", text, count=1))


def _without_site_name(title: str, root: lxml.html.HtmlElement) -> str:
    """ "Refunds — Acme Help Center" becomes "Refunds" when the page's `<h1>` says "Refunds".

    Sites append their name to every `<title>`; repeated in every chunk's heading line, it only
    makes all pages look alike to the embedding.
    """
    h1 = root.find(".//h1")
    heading = " ".join(_text(h1).split()) if h1 is not None else ""
    if heading and title != heading and title.startswith(heading) and title[len(heading) :].strip()[:1] in "—-|·:»":
        return heading
    return title


def _content_root(document: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    """`<main>` or `role=main`, else the longest `<article>`, else `<body>`."""
    main = document.find(".//main")
    if main is not None:
        return main
    for element in document.iter(etree.Element):
        if element.get("role") == "main":
            return element
    articles = document.findall(".//article")
    if articles:
        return max(articles, key=lambda a: len(_text(a)))
    return document.find(".//body")


def _heading_id(heading: lxml.html.HtmlElement) -> str:
    """The heading's id, or its section's (`<section id=…><h2>`), or an inner `<a id|name>`."""
    if value := heading.get("id"):
        return str(value)
    parent = heading.getparent()
    if parent is not None and parent.tag in ("section", "div") and parent.get("id"):
        first = parent.xpath(_HEADING_PATH)
        if first and first[0] is heading:
            return str(parent.get("id"))
    for anchor in heading.iter("a"):
        if value := anchor.get("id") or anchor.get("name"):
            return str(value)
    return ""


def _append_text(element: lxml.html.HtmlElement, text: str) -> None:
    """Text added at the end of the element's content."""
    if len(element):
        last = element[-1]
        last.tail = (last.tail or "") + text
    else:
        element.text = (element.text or "") + text


def _text(element: lxml.html.HtmlElement) -> str:
    """The element's text pieces, each stripped, joined by a space (BeautifulSoup's get_text(" ", strip=True))."""
    return " ".join(piece.strip() for piece in element.itertext() if piece.strip())
