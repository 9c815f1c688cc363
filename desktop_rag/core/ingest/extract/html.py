"""HTML as the text a reader sees (BeautifulSoup with lxml): no scripts, styles or hidden parts."""

from __future__ import annotations

import re
from pathlib import Path

from desktop_rag.core.ingest.extract.text import decode_bytes, read_text_file
from desktop_rag.core.types import Document, Heading, Page

_INVISIBLE = {
    "script",
    "style",
    "noscript",
    "template",
    "head",
    "svg",
    "canvas",
    "iframe",
    "object",
}
_BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "aside",
    "nav",
    "li",
    "ul",
    "ol",
    "table",
    "tr",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "blockquote",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "form",
    "address",
    "details",
    "summary",
}
_CELL = {"td", "th"}
_SPACE = re.compile(r"[ \t\r\f\v\n]+")


def html_to_document(markup: str, fallback_title: str) -> Document:
    """Visible text of an HTML string with its h1-h6 headings (offsets into the text)."""
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag

    soup = BeautifulSoup(markup, "lxml")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    parts: list[str] = []
    length = 0
    headings: list[Heading] = []

    def emit(s: str) -> None:
        nonlocal length
        parts.append(s)
        length += len(s)

    def newline() -> None:
        if parts and not parts[-1].endswith("\n"):
            emit("\n")

    def hidden(tag: Tag) -> bool:
        style = str(tag.get("style") or "").replace(" ", "").lower()
        return (
            tag.has_attr("hidden")
            or tag.get("aria-hidden") == "true"
            or "display:none" in style
            or "visibility:hidden" in style
        )

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                s = _SPACE.sub(" ", str(child))
                if node.name == "pre":
                    s = str(child)
                if s.strip() or (s == " " and parts and not parts[-1].endswith((" ", "\n"))):
                    emit(s)
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower()
            if name in _INVISIBLE or hidden(child):
                continue
            if name in _BLOCK:
                newline()
                if name in {"h1", "h2", "h3", "h4", "h5", "h6"}:
                    text = child.get_text(" ", strip=True)
                    if text:
                        headings.append(Heading(length, int(name[1]), text))
            walk(child)
            if name in _BLOCK:
                newline()
            elif name in _CELL:
                emit(" | ")

    walk(soup.body or soup)
    text = "".join(parts)
    text = "\n".join(line.strip(" ") for line in text.split("\n"))
    # Offsets were taken before the strip above; recompute them by finding each heading again.
    fixed: list[Heading] = []
    pos = 0
    for h in headings:
        at = text.find(h.text, pos)
        if at >= 0:
            fixed.append(Heading(at, h.level, h.text))
            pos = at
    if not title:
        title = next((h.text for h in fixed if h.level == 1), fallback_title)
    return Document(title=title, pages=(Page(None, text, tuple(fixed)),), kind="html")


def extract_html(path: Path) -> Document:
    """Visible text of an HTML file (encoding from the BOM, strict UTF-8, or detection)."""
    data = read_text_file(path)
    return html_to_document(data, path.stem)


__all__ = ["decode_bytes", "extract_html", "html_to_document"]
