"""EPUB e-books (EPUB 2 and 3) with the standard library's zipfile and lxml: one page per item of
the book's reading order (the OPF spine), so a citation says which chapter to open.

No e-book library is used (ebooklib is AGPL-3.0): an EPUB is a ZIP package of XML files.
Every XML file of the package is parsed with :func:`safe_xml`, which neither expands entities
nor reads a DTD or anything else outside the package (billion laughs, XXE); chapters go through
the HTML extractor (BeautifulSoup's lxml HTML parser, which expands no entities) after their
DOCTYPE is removed.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.ingest.extract.html import html_to_document
from desktop_rag.core.ingest.extract.package import open_package
from desktop_rag.core.ingest.extract.text import decode_bytes
from desktop_rag.core.types import Document, Heading, Page

#: Font obfuscation (IDPF and Adobe): fonts only, the text stays readable; not DRM.
FONT_OBFUSCATION = frozenset(
    {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
)
_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_HTML_SUFFIXES = (".xhtml", ".html", ".htm", ".xht")
_OPF_TYPE = "application/oebps-package+xml"
# A DOCTYPE with its internal subset: removed before the HTML parser sees a chapter (the parser
# would show the subset as text; it never expands its entities).
_DOCTYPE = re.compile(r"<!DOCTYPE\b[^\[>]*(?:\[.*?\]\s*)?>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


def safe_xml(data: bytes, what: str, *, recover: bool = False) -> Any:
    """Parse XML ``data`` without entity expansion, DTD loading or network access.

    Entity references stay unexpanded ``Entity`` nodes (skip them when reading text). With
    ``recover``, XML that is not well-formed is parsed as far as it goes (as readers do).

    Raises:
        ExtractionError: ``data`` is not XML (``what`` names it in the message), or it declares
            entities that would expand without bound (libxml2 refuses those even unexpanded).
    """
    from lxml import etree

    def parse(recovering: bool) -> Any:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                                 load_dtd=False, recover=recovering)  # fmt: skip
        return etree.fromstring(data, parser)

    try:
        root = parse(False)
    except (etree.XMLSyntaxError, ValueError) as exc:
        if "amplification" in str(exc) or "entity loop" in str(exc).lower():
            raise ExtractionError(
                f"refused: the {what} declares entities that expand without bound "
                '(a "billion laughs" file?)'
            ) from None
        if not recover:
            raise ExtractionError(f"corrupt {what} ({exc})") from None
        try:
            root = parse(True)
        except (etree.XMLSyntaxError, ValueError) as exc2:
            raise ExtractionError(f"corrupt {what} ({exc2})") from None
    if root is None:
        raise ExtractionError(f"corrupt {what} (no XML content)")
    return root


def local(tag: object) -> str:
    """The local name of an element's tag (``{ns}name`` -> ``name``; '' for comments, entities)."""
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _elements(root: Any, name: str) -> list[Any]:
    """Every element under ``root`` (itself included) whose local name is ``name``."""
    return [e for e in root.iter() if local(e.tag) == name]


def _text(element: Any) -> str:
    """The element's text with entity references left out, whitespace collapsed."""
    parts: list[str] = []

    def walk(e: Any) -> None:
        if isinstance(e.tag, str):
            parts.append(e.text or "")
            for child in e:
                walk(child)
        if e is not element:
            parts.append(e.tail or "")

    walk(element)
    return _SPACE.sub(" ", "".join(parts)).strip()


def resolve(base_dir: str, href: str) -> str | None:
    """The package member an ``href`` of a file in ``base_dir`` points to, or None when it points
    outside the package (``..`` above its root, an absolute path, another scheme or host).

    ``href`` is URL-encoded (``%20``); a ``#fragment`` or ``?query`` is dropped.
    """
    href = href.strip().replace("\\", "/")
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith("/"):
        return None
    path = unquote(parts.path)
    if not path:
        return None
    member = posixpath.normpath(posixpath.join(base_dir, path))
    if member in {".", ".."} or member.startswith(("../", "/")):
        return None
    return member


class _Package:
    """Name lookup in the ZIP: exact, then as written (not decoded), then ignoring case."""

    def __init__(self, z: zipfile.ZipFile) -> None:
        self.z = z
        self.names = {n for n in z.namelist() if not n.endswith("/")}
        self.lower = {n.lower(): n for n in self.names}

    def find(self, member: str) -> str | None:
        if member in self.names:
            return member
        return self.lower.get(member.lower())

    def read(self, member: str) -> bytes | None:
        name = self.find(member)
        return self.z.read(name) if name is not None else None


def _check_drm(pkg: _Package, spine_members: set[str]) -> None:
    """Raise when META-INF/encryption.xml encrypts text (not just obfuscated fonts)."""
    data = pkg.read("META-INF/encryption.xml")
    if data is None:
        return
    root = safe_xml(data, "EPUB encryption list", recover=True)
    for enc in _elements(root, "EncryptedData"):
        methods = [m.get("Algorithm", "") for m in _elements(enc, "EncryptionMethod")]
        if methods and all(m in FONT_OBFUSCATION for m in methods):
            continue
        for ref in _elements(enc, "CipherReference"):
            member = resolve("", ref.get("URI", ""))
            if member is None:
                continue
            if member in spine_members or member.lower().endswith(_HTML_SUFFIXES):
                raise ExtractionError("the book is DRM-protected (encrypted); it cannot be read")


def _rootfile(pkg: _Package) -> str:
    """The package document's (OPF) member name, from META-INF/container.xml."""
    data = pkg.read("META-INF/container.xml")
    if data is None:
        raise ExtractionError("not an EPUB book (the package has no META-INF/container.xml)")
    root = safe_xml(data, "EPUB book (META-INF/container.xml)", recover=True)
    rootfiles = _elements(root, "rootfile")
    rootfiles.sort(key=lambda r: r.get("media-type", _OPF_TYPE) != _OPF_TYPE)  # OPF ones first
    for rf in rootfiles:
        full_path = (rf.get("full-path") or "").strip()
        for candidate in (full_path, resolve("", full_path)):
            found = pkg.find(candidate) if candidate else None
            if found is not None:
                return found
    if not rootfiles:
        raise ExtractionError("not an EPUB book (META-INF/container.xml names no package document)")
    name = rootfiles[0].get("full-path", "")
    raise ExtractionError(f"corrupt EPUB book (its package document {name} is missing)")


def _toc_titles(
    pkg: _Package, manifest: dict[str, tuple[str, str, str]], toc_id: str
) -> dict[str, str]:
    """Member -> title from the EPUB 3 navigation document, else the EPUB 2 NCX (the first entry
    pointing at a member wins; unreadable tables of contents give no titles)."""
    titles: dict[str, str] = {}
    nav = next((m for m, _, props in manifest.values() if "nav" in props.split()), None)
    ncx = manifest.get(toc_id, ("", "", ""))[0] or next(
        (m for m, mt, _ in manifest.values() if mt == "application/x-dtbncx+xml"), ""
    )
    try:
        if nav is not None and (data := pkg.read(nav)) is not None:
            from bs4 import BeautifulSoup

            soup = BeautifulSoup(_DOCTYPE.sub("", decode_bytes(data), count=1), "lxml")
            navs = soup.find_all("nav")
            toc = next((n for n in navs if "toc" in str(n.get("epub:type", "")).split()), None)
            for a in (toc or soup).find_all("a", href=True):
                member = resolve(posixpath.dirname(nav), str(a["href"]))
                title = a.get_text(" ", strip=True)
                if member and title:
                    titles.setdefault(member, title)
        if not titles and ncx and (data := pkg.read(ncx)) is not None:
            root = safe_xml(data, "EPUB table of contents", recover=True)
            for point in _elements(root, "navPoint"):
                label = next(iter(_elements(point, "text")), None)
                content = next(iter(_elements(point, "content")), None)
                if label is None or content is None:
                    continue
                member = resolve(posixpath.dirname(ncx), content.get("src", ""))
                title = _text(label)
                if member and title:
                    titles.setdefault(member, title)
    except Exception:  # a broken table of contents costs only the titles, never the book
        pass
    return titles


def _with_toc_title(page: Page, title: str | None) -> Page:
    """Add the table of contents' ``title`` as a level-1 heading to a page without headings, where
    a line of its first 500 characters reads exactly that title (offsets must point at the text)."""
    if page.headings or not title:
        return page
    offset = 0
    for line in page.text[:500].split("\n"):
        if _SPACE.sub(" ", line).strip() == title:
            at = offset + len(line) - len(line.lstrip())
            return Page(page.number, page.text, (Heading(at, 1, title),))
        offset += len(line) + 1
    return page


def extract_epub(path: Path) -> Document:
    """One :class:`Page` per item of the spine (the book's reading order), ``number`` its 1-based
    position there ("chapter N" in citations, although a long chapter may be split over several
    items and a short book may hold several chapters in one).

    Choices: every spine item gets a page, ``linear="no"`` ones (notes, answer keys the reader
    opens from links) included, in spine order, so numbers are spine positions; items without text
    (a cover image page) and items that are not XHTML (an SVG page) or are missing from the
    package are kept as empty pages, so numbering never shifts. A page's text and h1-h6 headings
    are the chapter's visible text (:func:`html_to_document`); a chapter without headings gets its
    table of contents title (nav document, else NCX) as a level-1 heading where its text shows
    that title as a line. The title is the OPF's first ``dc:title``, else the file name stem.

    Raises:
        ExtractionError: not a ZIP package, no container or package document, a ZIP bomb, a spine
            item pointing outside the package, DRM encryption (font obfuscation alone is fine),
            or a corrupt package document.
    """
    with open_package(path, "EPUB book", "not an EPUB book (it is not a ZIP package)") as z:
        pkg = _Package(z)
        opf_name = _rootfile(pkg)
        opf = safe_xml(z.read(opf_name), "EPUB book (its package document)", recover=True)
        opf_dir = posixpath.dirname(opf_name)
        manifest: dict[str, tuple[str, str, str]] = {}  # id -> (member, media type, properties)
        hrefs: dict[str, str] = {}
        for item in _elements(opf, "item"):
            item_id, href = item.get("id", ""), item.get("href", "")
            member = resolve(opf_dir, href)
            hrefs[item_id] = href
            if item_id and member is not None:
                manifest[item_id] = (member, (item.get("media-type") or "").strip().lower(),
                                     item.get("properties") or "")  # fmt: skip
        spine = next(iter(_elements(opf, "spine")), None)
        refs = _elements(spine, "itemref") if spine is not None else []
        members: list[tuple[str, str] | None] = []  # (member, media type) per spine item
        for number, ref in enumerate(refs, start=1):
            idref = ref.get("idref", "")
            if hrefs.get(idref, "").strip() and idref not in manifest:
                raise ExtractionError(
                    f"refused: chapter {number} points outside the book package ({hrefs[idref]})"
                )
            entry = manifest.get(idref)
            members.append((entry[0], entry[1]) if entry else None)
        _check_drm(pkg, {m[0] for m in members if m})
        toc_titles = _toc_titles(pkg, manifest, spine.get("toc", "") if spine is not None else "")
        pages: list[Page] = []
        for number, item in enumerate(members, start=1):
            page = Page(number, "")
            if item is not None:
                member, media_type = item
                is_html = media_type in _HTML_TYPES or (
                    not media_type and member.lower().endswith(_HTML_SUFFIXES)
                )
                data = pkg.read(member) if is_html else None
                if data is not None:
                    page = _chapter(number, data, path.stem)
                    page = _with_toc_title(page, toc_titles.get(member))
            pages.append(page)
    title = next((t for t in map(_text, _elements(opf, "title")) if t), path.stem)
    return Document(title=title, pages=tuple(pages), kind="epub")


def _chapter(number: int, data: bytes, fallback_title: str) -> Page:
    """A chapter's visible text and headings (an undecodable chapter is an empty page)."""
    try:
        markup = decode_bytes(data)
    except ExtractionError:
        return Page(number, "")
    doc = html_to_document(_DOCTYPE.sub("", markup, count=1), fallback_title)
    page = doc.pages[0]
    return Page(number, page.text, page.headings)
