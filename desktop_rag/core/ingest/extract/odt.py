"""OpenDocument text (.odt, LibreOffice Writer) with the standard library's zipfile and lxml: the
body of content.xml in order, with its headings, as one page (an .odt stores no page breaks of its
own: pagination is the word processor's layout).

No ODF library is used (odfpy is unmaintained). content.xml and meta.xml are parsed with
:func:`~desktop_rag.core.ingest.extract.epub.safe_xml`: no entity expansion (billion laughs), no
DTD, file or network access (XXE).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.ingest.extract.epub import local, safe_xml
from desktop_rag.core.ingest.extract.package import open_package
from desktop_rag.core.types import Document, Heading, Page

_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_DRAW = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
_DC = "http://purl.org/dc/elements/1.1/"
_STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"

#: The mimetype of a text document (and its template, master and web variants start with it).
TEXT_MIMETYPE = "application/vnd.oasis.opendocument.text"
_OTHER_TYPES = {
    "spreadsheet": "a spreadsheet (.ods)",
    "presentation": "a presentation (.odp)",
    "graphics": "a drawing (.odg)",
    "formula": "a formula (.odf)",
    "chart": "a chart (.odc)",
    "database": "a database (.odb)",
    "image": "an image (.odi)",
}
#: Generated indexes (table of contents, alphabetical index, ...): they repeat the headings and
#: text with page numbers, so they are left out; tracked deletions, forms and declarations hold no
#: text of the document.
_SKIPPED = {
    f"{{{_TEXT}}}{name}"
    for name in (
        "tracked-changes", "table-of-content", "alphabetical-index", "illustration-index",
        "table-index", "object-index", "user-index", "bibliography", "sequence-decls",
        "variable-decls", "user-field-decls", "dde-connection-decls",
    )
} | {f"{{{_OFFICE}}}forms", f"{{{_OFFICE}}}annotation", f"{{{_OFFICE}}}annotation-end"}  # fmt: skip
_WS = re.compile(r"[ \t\r\n]+")
_MAX_REPEAT = 64


class _Body:
    """Blocks of text (joined with a blank line) with the headings' offsets, and the notes."""

    def __init__(self, title_styles: frozenset[str] = frozenset({"Title"})) -> None:
        self.title_styles = title_styles  # paragraph styles that are the "Title" style
        self.blocks: list[str] = []
        self.headings: list[Heading] = []
        self.length = 0
        self.notes: list[str] = []
        self.floating: list[str] = []  # text boxes met inside the current paragraph

    def add(self, text: str, level: int | None = None) -> None:
        text = text.strip()
        if text:
            if level is not None:
                self.headings.append(Heading(self.length, level, text))
            self.blocks.append(text)
            self.length += len(text) + 2
        floating, self.floating = self.floating, []
        for box in floating:
            self.add(box)

    # -- inline content -------------------------------------------------------------------------

    def inline(self, element: Any) -> str:
        """A paragraph's or heading's text as displayed: runs of XML white space collapse to one
        space (ODF's rule), ``text:s`` / ``text:tab`` / ``text:line-break`` give spaces, a tab and
        a line break; a note leaves its mark (``[1]``) and its text goes to :attr:`notes`."""
        out: list[str] = []

        def put(s: str | None, raw: bool = False) -> None:
            if not s:
                return
            if not raw:
                s = _WS.sub(" ", s)
                if s.startswith(" ") and (not out or out[-1].endswith((" ", "\n", "\t"))):
                    s = s[1:]
            out.append(s)

        def walk(e: Any) -> None:
            put(e.text)
            for child in e:
                tag = child.tag
                if not isinstance(tag, str) or tag in _SKIPPED:
                    pass  # entity references (never expanded), comments, annotations
                elif tag == f"{{{_TEXT}}}s":
                    put(" " * min(_count(child, "c"), 1000), raw=True)
                elif tag == f"{{{_TEXT}}}tab":
                    put("\t", raw=True)
                elif tag == f"{{{_TEXT}}}line-break":
                    put("\n", raw=True)
                elif tag == f"{{{_TEXT}}}note":
                    mark = self._note(child)
                    if mark:
                        put(f"[{mark}]", raw=True)
                elif tag == f"{{{_TEXT}}}number":
                    put(_plain(child) + " ", raw=True)  # a numbered heading's or item's number
                elif tag in {f"{{{_DRAW}}}frame", f"{{{_DRAW}}}text-box"}:
                    self._boxes(child)
                elif tag == f"{{{_TEXT}}}ruby-text":
                    pass
                else:  # spans, links, fields, bookmarks, ruby base
                    walk(child)
                put(child.tail)

        walk(element)
        return "".join(out).strip()

    def _note(self, note: Any) -> str:
        citation = next((c for c in note if local(c.tag) == "note-citation"), None)
        body = next((c for c in note if local(c.tag) == "note-body"), None)
        mark = _plain(citation) if citation is not None else ""
        if body is not None:
            text = " ".join(t for t in (self.inline(p) for p in _paragraphs(body)) if t)
            if text:
                self.notes.append(f"[{mark}] {text}" if mark else text)
        return mark

    def _boxes(self, frame: Any) -> None:
        for box in (e for e in frame.iter() if e.tag == f"{{{_DRAW}}}text-box"):
            text = "\n".join(t for t in (self.inline(p) for p in _paragraphs(box)) if t)
            if text:
                self.floating.append(text)

    # -- blocks ---------------------------------------------------------------------------------

    def block(self, element: Any) -> None:
        for child in element:
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIPPED:
                continue
            if tag == f"{{{_TEXT}}}h":
                self.add(self.inline(child), _level(child))
            elif tag == f"{{{_TEXT}}}p":
                is_title = child.get(f"{{{_TEXT}}}style-name") in self.title_styles
                self.add(self.inline(child), 1 if is_title else None)
            elif tag == f"{{{_TEXT}}}list":
                self._list(child)
            elif tag == f"{{{_TABLE}}}table":
                self.add("\n".join(r for r in self._rows(child) if r.strip(" |")))
            else:  # sections, frames anchored to the page, soft page breaks, unknown containers
                self.block(child)

    def _list(self, lst: Any) -> None:
        """A list as one block, an item's paragraphs one per line (nested lists included); a
        heading inside a list item keeps its offset."""
        lines: list[tuple[str, int | None]] = []

        def walk(e: Any) -> None:
            for child in e:
                tag = child.tag
                if not isinstance(tag, str) or tag in _SKIPPED:
                    continue
                if tag in {f"{{{_TEXT}}}p", f"{{{_TEXT}}}h"}:
                    text = self.inline(child)
                    if text:
                        level = _level(child) if tag == f"{{{_TEXT}}}h" else None
                        lines.append((text, level))
                elif tag == f"{{{_TABLE}}}table":
                    lines.extend((r, None) for r in self._rows(child) if r.strip(" |"))
                else:  # list items, list headers, nested lists
                    walk(child)

        walk(lst)
        offset = self.length
        for text, level in lines:
            if level is not None:
                self.headings.append(Heading(offset, level, text))
            offset += len(text) + 1
        text = "\n".join(t for t, _ in lines)
        if text:
            self.blocks.append(text)
            self.length += len(text) + 2

    def _rows(self, table: Any) -> list[str]:
        """Rows as cells joined with `` | `` (as Word tables are); trailing empty cells dropped,
        merged-away (covered) cells left out."""
        rows: list[str] = []
        for child in table:
            tag = child.tag
            if tag == f"{{{_TABLE}}}table-row":
                cells: list[str] = []
                for cell in child:
                    if cell.tag != f"{{{_TABLE}}}table-cell":
                        continue
                    text = " ".join(self._cell_texts(cell))
                    repeat = _count(cell, "number-columns-repeated", _TABLE) if text else 1
                    cells.extend([text] * min(repeat, _MAX_REPEAT))
                while cells and not cells[-1]:
                    cells.pop()
                rows.append(" | ".join(cells))
            elif isinstance(tag, str) and local(tag) in {
                "table-header-rows", "table-rows", "table-row-group"
            }:  # fmt: skip
                rows.extend(self._rows(child))
        return rows

    def _cell_texts(self, cell: Any) -> list[str]:
        texts: list[str] = []
        for child in cell:
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIPPED:
                continue
            if tag in {f"{{{_TEXT}}}p", f"{{{_TEXT}}}h"}:
                texts.append(" ".join(self.inline(child).split()))
            elif tag == f"{{{_TABLE}}}table":  # a nested table, flattened
                texts.extend(r for r in self._rows(child) if r.strip(" |"))
            else:
                texts.extend(self._cell_texts(child))
        return [t for t in texts if t]


def _count(element: Any, name: str, ns: str = _TEXT) -> int:
    try:
        return max(1, int(element.get(f"{{{ns}}}{name}", "1")))
    except ValueError:
        return 1


def _level(heading: Any) -> int:
    return _count(heading, "outline-level")


def _paragraphs(element: Any) -> list[Any]:
    return [e for e in element.iter() if e.tag in {f"{{{_TEXT}}}p", f"{{{_TEXT}}}h"}]


def _plain(element: Any) -> str:
    """Text of an element without entity references, white space collapsed."""
    parts: list[str] = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):
            parts.append(_plain(child))
        parts.append(child.tail or "")
    return " ".join("".join(parts).split())


def extract_odt(path: Path) -> Document:
    """The document body as one :class:`Page` (``number`` None) with its headings.

    Headings (``text:h``) take their level from ``text:outline-level``, a paragraph in the
    "Title" style is a level-1 heading (as in Word documents); paragraphs are blocks
    separated by a blank line; a list is one block, an item per line; a table is one block, a row
    per line, cells joined with `` | ``; text boxes follow their paragraph. Footnotes and endnotes
    leave their mark (``[1]``) in the text and are gathered at the end under a level-1 "Notes"
    heading. Comments (annotations), tracked deletions and generated indexes (table of contents)
    are left out. The title is meta.xml's ``dc:title``, else the first level-1 heading, else the
    file name stem.

    Raises:
        ExtractionError: not a ZIP package, a ZIP bomb, another OpenDocument type (a spreadsheet
            renamed .odt), no content.xml, password protection, or corrupt XML.
    """
    not_zip = "not an OpenDocument .odt file (it is not a ZIP package)"
    with open_package(path, "OpenDocument file", not_zip) as z:
        names = set(z.namelist())
        if "mimetype" in names:
            mimetype = z.read("mimetype")[:200].decode("ascii", "replace").strip()
            _check_mimetype(mimetype)
        if "META-INF/manifest.xml" in names:
            manifest = safe_xml(z.read("META-INF/manifest.xml"), "OpenDocument manifest",
                                recover=True)  # fmt: skip
            if any(local(e.tag) == "encryption-data" for e in manifest.iter()):
                raise ExtractionError("the document is password-protected; it cannot be read")
        if "content.xml" not in names:
            raise ExtractionError("not an OpenDocument .odt file (the package has no content.xml)")
        content = safe_xml(z.read("content.xml"), "OpenDocument file (content.xml)")
        meta = safe_xml(z.read("meta.xml"), "OpenDocument metadata", recover=True) if (
            "meta.xml" in names
        ) else None  # fmt: skip
    office_text = next((e for e in content.iter() if e.tag == f"{{{_OFFICE}}}text"), None)
    if office_text is None:
        kinds = {local(e.tag) for e in content.iter() if e.getparent() is not None
                 and e.getparent().tag == f"{{{_OFFICE}}}body"}  # fmt: skip
        what = next((_OTHER_TYPES[k] for k in sorted(kinds) if k in _OTHER_TYPES), None)
        raise ExtractionError(
            "not an OpenDocument text document "
            + (f"(it is {what})" if what else "(content.xml holds no text body)")
        )
    body = _Body(_title_styles(content))
    body.block(office_text)
    if body.notes:
        notes = body.notes
        body.add("Notes", 1)
        for note in notes:
            body.add(note)
    title = ""
    if meta is not None:
        title = next((_plain(e) for e in meta.iter() if e.tag == f"{{{_DC}}}title"), "")
    title = title or next((h.text for h in body.headings if h.level == 1), path.stem)
    text = "\n\n".join(body.blocks)
    return Document(title=title, pages=(Page(None, text, tuple(body.headings)),), kind="odt")


def _title_styles(content: Any) -> frozenset[str]:
    """The "Title" paragraph style and the automatic styles derived from it (LibreOffice names a
    title paragraph's style ``P1`` when it has direct formatting)."""
    names = {"Title"}
    for e in content.iter(f"{{{_STYLE}}}style"):
        if e.get(f"{{{_STYLE}}}parent-style-name") == "Title":
            names.add(e.get(f"{{{_STYLE}}}name", ""))
    return frozenset(names)


def _check_mimetype(mimetype: str) -> None:
    """Refuse another OpenDocument type or package by its ``mimetype`` member."""
    if mimetype.startswith(TEXT_MIMETYPE):
        return
    kind = mimetype.removeprefix("application/vnd.oasis.opendocument.").split("-")[0]
    what = _OTHER_TYPES.get(kind, "another kind of package") if mimetype else "an unknown package"
    raise ExtractionError(f"not an OpenDocument text document (it is {what}: {mimetype or '?'})")
