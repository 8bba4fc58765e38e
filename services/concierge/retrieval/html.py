"""Reduces a web page to its content before conversion: no menus, sidebars, footers or scripts.

Help centres and documentation sites wrap every article in the same navigation; indexed, that
chrome repeats in thousands of chunks and outranks the article. Headings keep their ids as
`{#id}` so citations can link to the section.
"""

from __future__ import annotations

from bs4 import BeautifulSoup, Tag

# Page chrome by element and by ARIA role; `header`/`footer` only outside the chosen content.
_CHROME_TAGS = ("script", "style", "noscript", "template", "nav", "aside", "form", "iframe", "svg", "button")
_CHROME_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary", "menu", "menubar", "dialog")
_OUTER_CHROME_TAGS = ("header", "footer")
# Permalink markers next to headings ("¶", "#", "🔗") and screen-reader-only skip links.
_PERMALINK_CLASSES = ("headerlink", "anchorjs-link", "heading-anchor", "anchor-link", "skip-link")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def main_content(html: bytes | str) -> str:
    """The page's title and main content as HTML, with heading ids written into the heading text."""
    soup = BeautifulSoup(html, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for element in soup.find_all(_CHROME_TAGS):
        element.decompose()
    for element in soup.select(", ".join(f'[role="{role}"]' for role in _CHROME_ROLES) + ', [aria-hidden="true"]'):
        element.decompose()
    for element in soup.find_all(class_=list(_PERMALINK_CLASSES)):
        element.decompose()
    root = _content_root(soup)
    if root is None:
        return str(soup)
    title = _without_site_name(title, root)
    if root.name in ("body", "html"):
        for element in root.find_all(_OUTER_CHROME_TAGS):
            element.decompose()
    for heading in root.find_all(_HEADINGS):
        if anchor := _heading_id(heading):
            heading.append(f" {{#{anchor}}}")
    head = f"<title>{_escape(title)}</title>" if title else ""
    content = root.decode_contents() if root.name == "body" else str(root)
    return f"<html><head>{head}</head><body>{content}</body></html>"


def _without_site_name(title: str, root: Tag) -> str:
    """ "Refunds — Acme Help Center" becomes "Refunds" when the page's `<h1>` says "Refunds".

    Sites append their name to every `<title>`; repeated in every chunk's heading line, it only
    makes all pages look alike to the embedding.
    """
    h1 = root.find("h1")
    heading = " ".join(h1.get_text(" ", strip=True).split()) if isinstance(h1, Tag) else ""
    if heading and title != heading and title.startswith(heading) and title[len(heading) :].strip()[:1] in "—-|·:»":
        return heading
    return title


def _content_root(soup: BeautifulSoup) -> Tag | None:
    """`<main>` or `role=main`, else the longest `<article>`, else `<body>`."""
    for candidate in (soup.find("main"), soup.select_one('[role="main"]')):
        if isinstance(candidate, Tag):
            return candidate
    articles = [a for a in soup.find_all("article") if isinstance(a, Tag)]
    if articles:
        return max(articles, key=lambda a: len(a.get_text(" ", strip=True)))
    body = soup.body
    return body if isinstance(body, Tag) else None


def _heading_id(heading: Tag) -> str:
    """The heading's id, or its section's (`<section id=…><h2>`), or an inner `<a id|name>`."""
    if value := heading.get("id"):
        return str(value)
    parent = heading.parent
    if isinstance(parent, Tag) and parent.name in ("section", "div") and parent.get("id"):
        first = parent.find(_HEADINGS)
        if first is heading:
            return str(parent["id"])
    inner = heading.find("a", attrs={"id": True}) or heading.find("a", attrs={"name": True})
    if isinstance(inner, Tag):
        return str(inner.get("id") or inner.get("name"))
    return ""


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
