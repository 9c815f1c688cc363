"""PDF extraction with PyMuPDF: page by page, 1-based page numbers, the document's reading order."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.ingest.extract.ocr import OcrProgress, needs_ocr, recognise_page
from desktop_rag.core.text.citations import CELL_SEP
from desktop_rag.core.text.filings import detect_genre, is_financial
from desktop_rag.core.text.statements import statement_of_heading, statement_of_title
from desktop_rag.core.types import Document, Heading, Page

log = logging.getLogger(__name__)


def _clean_title(raw: str | None, fallback: str) -> str:
    title = (raw or "").strip()
    # Producers often leave "Untitled", "Microsoft Word - x.doc" or a file path as the title.
    letters = sum(ch.isalpha() for ch in title)
    if (
        letters < 3
        or title.lower() in {"untitled", "title"}
        or title.lower().endswith((".doc", ".docx", ".pdf"))
    ):
        # An accession number, "Untitled" or a file name says less than the file's own name.
        return fallback
    return title


def extract_pdf(
    path: Path, *, ocr: bool = True, on_ocr_page: OcrProgress | None = None
) -> Document:
    """Extract the text of every page of a PDF.

    PDFs encrypted with an empty user password (common for "no copy" permissions) open normally.
    With ``ocr``, pages without a usable text layer (:func:`~.ocr.needs_ocr`: scans) are
    recognised (:func:`~.ocr.recognise_page`), keeping their page number and the boxes of their
    text; ``on_ocr_page(done, total)`` is called before the first (``done`` 0) and after each
    recognised page. If the OCR engine
    cannot start, the text-layer pages are still returned (the reason is logged).

    Raises:
        ExtractionError: the file is not a readable PDF or needs a password; or it has no text
            layer and OCR could not start (the message says why).
    """
    import pymupdf

    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:
        raise ExtractionError(f"not a readable PDF ({exc})") from None
    with doc:
        if doc.needs_pass and not doc.authenticate(""):
            raise ExtractionError("password required: this PDF is protected with a password")
        body = body_font_size(doc)
        # The default order is the order of the page's content stream, which is the reading
        # order the author's tool wrote; a geometric sort interleaves columns.
        lines: list[list[_Row]] = []
        scans: list[int] = []  # pages to recognise (0-based)
        for i in range(doc.page_count):
            page = doc.load_page(i)
            lines.append(page_rows(page))
            if ocr and needs_ocr(page, _rows_text(lines[-1])):
                scans.append(i)
        recognised: dict[int, Page] = {}
        if scans and on_ocr_page is not None:
            on_ocr_page(0, len(scans))
        for done, i in enumerate(scans, start=1):
            try:
                recognised[i] = recognise_page(doc.load_page(i), i + 1)
            except ExtractionError as exc:
                if not any(rows for rows in lines):
                    raise
                log.warning("%s: pages without text not recognised: %s", path, exc.message)
                break
            if on_ocr_page is not None:
                on_ocr_page(done, len(scans))
        texts = [recognised[i].text if i in recognised else _rows_text(rows)
                 for i, rows in enumerate(lines)]  # fmt: skip
        # The filing rules (statement titles, "Item N.", PART lines) only where the document's
        # own text says it is a filing or a financial report.
        genre, basis = detect_genre(texts)
        filing = is_financial(genre)
        pages = []
        carried: list[Heading] = []  # the section a page continues from the pages before it
        for i, rows in enumerate(lines):
            scan = recognised.get(i)
            if scan is not None:
                text = scan.text
                found = [(h.offset, h.level, h.text) for h in scan.headings]
            else:
                text, found = _layout(rows, body, filing=filing)
            if filing and not _continues_table(text, found):
                carried = [h for h in carried if statement_of_heading(h.text) is None]
            heads = [Heading(0, h.level, h.text) for h in carried]
            own = [Heading(off, level, title) for off, level, title in found]
            boxes = scan.boxes if scan is not None else ()
            pages.append(Page(i + 1, text, tuple(heads + own), boxes))
            # A statement's title goes on to the next page once at most (a statement longer
            # than two pages repeats its title).
            carried = [h for h in _open_sections(heads + own)
                       if not filing or statement_of_heading(h.text) is None
                       or any(h is o for o in own)]  # fmt: skip
        meta = _clean_title(doc.metadata.get("title") if doc.metadata else None, "")
        if 0 in recognised:  # a scanned cover: its tallest line
            cover = next((h.text for h in recognised[0].headings), "")
        else:
            cover = _cover_title(doc.load_page(0)) if doc.page_count else ""
        title = meta or cover or path.stem
        # The file name often says what the title does not (a period, a ticker, a version).
        if title != path.stem and sum(ch.isalpha() for ch in path.stem) >= 3:
            title = f"{path.stem}: {title}"
    return Document(title=title, pages=tuple(pages), kind="pdf", genre=genre, genre_basis=basis)


# Text a reader cannot see is not indexed: it is where prompt injections hide ("hidden text" in
# OWASP LLM01). Below MIN_VISIBLE_PT points a glyph is a speck (legal fine print is 6 pt or more);
# a contrast ratio under MIN_CONTRAST (WCAG 2.x relative-luminance formula; 1.0 = identical colours,
# WCAG asks 4.5 for body text) is white on white.
MIN_VISIBLE_PT = 2.0
MIN_CONTRAST = 1.3
_FILLED, _STROKED = 16, 32  # MuPDF's fz_stext char flags FZ_STEXT_FILLED / FZ_STEXT_STROKED


def _luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour with channels in [0, 1]."""

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    """WCAG 2.x contrast ratio of two sRGB colours (channels in [0, 1]): 1.0 (same) to 21.0."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _rgb(srgb: int) -> tuple[float, float, float]:
    return ((srgb >> 16 & 255) / 255, (srgb >> 8 & 255) / 255, (srgb & 255) / 255)


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _contains_centre(rect: tuple[float, ...], bbox: tuple[float, ...]) -> bool:
    x, y = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    return rect[0] <= x <= rect[2] and rect[1] <= y <= rect[3]


def hidden_reason(span: dict[str, Any], page: object, cache: dict[str, list[Any]]) -> str | None:
    """Why a text span of ``page.get_text("dict")`` is invisible to a reader, or None if visible.

    Hidden: fully transparent or neither filled nor stroked (render mode 3) unless it lies over
    an image (that is how OCR text layers of scanned pages are made, and they must stay
    searchable); smaller than :data:`MIN_VISIBLE_PT`; or coloured within :data:`MIN_CONTRAST` of
    what is under it (the topmost filled vector shape under the span's centre, else the white
    page; text over an image is kept, its background is unknown). ``cache`` holds the page's
    images and drawings, computed the first time they are needed.
    """
    if not span["text"].strip():
        return None
    bbox = tuple(span["bbox"])
    flags = span.get("char_flags")
    invisible = span.get("alpha", 255) == 0 or (
        flags is not None and not flags & (_FILLED | _STROKED)
    )
    if invisible or span["size"] < MIN_VISIBLE_PT or _luminance(_rgb(span["color"])) > 0.6:
        if "images" not in cache:
            cache["images"] = [tuple(i["bbox"]) for i in page.get_image_info()]  # type: ignore[attr-defined]
        if any(_overlaps(bbox, im) for im in cache["images"]):
            return None
    if invisible:
        return "invisible"
    if span["size"] < MIN_VISIBLE_PT:
        return "microscopic"
    colour = _rgb(span["color"])
    if _luminance(colour) <= 0.6:  # dark text: only a dark fill could hide it (rare; skip cost)
        return None
    if "fills" not in cache:
        cache["fills"] = [
            (tuple(d["rect"]), tuple(d["fill"][:3]))
            for d in page.get_drawings()  # type: ignore[attr-defined]
            if d.get("fill") is not None and len(d["fill"]) >= 3 and d.get("fill_opacity", 1) > 0.5
        ]
    background = (1.0, 1.0, 1.0)
    for rect, fill in cache["fills"]:  # in paint order: the last one under the text is on top
        if _contains_centre(rect, bbox):
            background = fill
    if contrast_ratio(colour, background) < MIN_CONTRAST:
        return "same colour as its background"
    return None


# A line of cells: consecutive lines of the content stream on one baseline, left to right, are
# one table row. Filings print a statement's row label and each figure as separate text lines;
# kept apart, a chunk boundary or the sentence splitter separates "Total net sales" from
# "82,959". Joined with CELL_SEP, a row reads and is retrieved as one line.
_ATTACH_NEXT = frozenset({"$", "€", "£", "¥", "("})  # printed in their own cell before a figure
_ATTACH_PREV = frozenset({"%", ")", "%)"})
_BOLD = 16  # MuPDF span flag TEXT_FONT_BOLD
MAX_HEADING_WORDS = 15


def _same_row(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether line box ``b`` continues line box ``a`` to its right on the same baseline."""
    h = min(a[3] - a[1], b[3] - b[1])
    return h > 0 and abs((a[1] + a[3]) - (b[1] + b[3])) / 2 < 0.5 * h and b[0] >= a[2] - 1.0


def _join_cells(cells: list[str]) -> str:
    out: list[str] = []
    glue = False
    for cell in cells:
        if out and (glue or cell in _ATTACH_PREV):
            out[-1] += cell
        else:
            out.append(cell)
        glue = cell in _ATTACH_NEXT
    return CELL_SEP.join(out)


def _heading_level(text: str, filing: bool = True) -> int | None:
    """The level of a heading line, or None for a line that cannot be a heading.

    In a filing or financial report (``filing``): 2 for an "Item 2." heading, 3 for the title
    of a financial statement (:func:`~desktop_rag.core.text.statements.statement_of_title`: its
    line items nest under it) and for "Notes to the financial statements", 4 for any other;
    None for a part title (PART I: it would crowd the context line out). In any other document
    every heading is level 3 ("Part II", "Item 1." and "Balance sheet" included)."""
    words = text.split()
    if not words or len(words) > MAX_HEADING_WORDS or sum(ch.isalpha() for ch in text) < 5:
        return None
    if text.endswith((",", ":")) or not text[0].isalpha():
        return None
    if not filing:
        return 3
    if words[0].upper() == "PART":
        return None
    if words[0].lower() == "item" and len(words) > 1 and words[1][:1].isdigit():
        return 2
    if statement_of_title(text) is not None or text.lower().startswith("notes to "):
        return 3  # the notes end the statements: their headings nest under neither
    return 4


_Row = tuple[tuple[float, ...], list[str], bool, float]  # bbox, cells, bold, size


def page_layout(
    page: object, body_size: float | None = None, *, filing: bool = True
) -> tuple[str, list[tuple[int, int, str]]]:
    """The page's visible text with table rows on one line, and its headings.

    Text: the lines of ``page.get_text("dict")`` in the content stream's order (the author's
    reading order), less the spans a reader cannot see (:func:`hidden_reason`); consecutive lines
    on one baseline, left to right, are joined into one row with :data:`CELL_SEP` (currency
    signs and closing brackets stay with their figure). Headings: (character offset, level,
    text) of single-cell lines set in bold, or at least 1.5 pt larger than ``body_size`` (the
    document's most common size), and never smaller than it less 0.3 pt (table column heads are
    bold but small); with ``filing`` (a filing or financial report, see
    :mod:`desktop_rag.core.text.filings`), also the title lines of financial statements in any
    type, with their table's header. See :func:`_heading_level` for the levels. The text does
    not depend on ``filing``.
    """
    return _layout(page_rows(page), body_size, filing=filing)


def page_rows(page: object) -> list[_Row]:
    """The visible lines of ``page`` as rows of cells (see :func:`page_layout`): (bbox, cells,
    bold, size in pt)."""
    import pymupdf

    tp = page.get_textpage(flags=pymupdf.TEXTFLAGS_TEXT)  # type: ignore[attr-defined]
    data = page.get_text("dict", textpage=tp)  # type: ignore[attr-defined]
    cache: dict[str, list[Any]] = {}
    rows: list[_Row] = []
    for block in data["blocks"]:
        for line in block.get("lines", []):
            spans = [sp for sp in line["spans"] if hidden_reason(sp, page, cache) is None]
            text = "".join(sp["text"] for sp in spans)
            if not text.strip():
                continue
            inked = [sp for sp in spans if sp["text"].strip()]
            bold = all(sp["flags"] & _BOLD for sp in inked)
            size = max(sp["size"] for sp in inked)
            bbox = tuple(line["bbox"])
            if rows and _same_row(rows[-1][0], bbox):
                prev = rows[-1]
                merged = (prev[0][0], min(prev[0][1], bbox[1]), bbox[2], max(prev[0][3], bbox[3]))
                rows[-1] = (merged, [*prev[1], text.strip()], False, max(prev[3], size))
            else:
                rows.append((bbox, [text.rstrip()], bold, size))
    return rows


def _rows_text(rows: Sequence[_Row]) -> str:
    return "".join((_join_cells(r[1]) if len(r[1]) > 1 else r[1][0]) + "\n" for r in rows)


def _layout(
    rows: Sequence[_Row], body_size: float | None, *, filing: bool
) -> tuple[str, list[tuple[int, int, str]]]:
    parts: list[str] = []
    headings: list[tuple[int, int, str]] = []
    pos = 0
    for i, (_, cells, bold, size) in enumerate(rows):
        line = _join_cells(cells) if len(cells) > 1 else cells[0]
        if len(cells) == 1 and body_size is not None:
            title = " ".join(line.split())
            level = _heading_level(title, filing)
            big = size >= body_size + 1.5
            # A statement's title (and the notes') is a heading in any type in a filing:
            # filers set it in body type too.
            anytype = filing and level == 3
            if level is not None and (big or anytype or (bold and size >= body_size - 0.3)):
                if anytype and statement_of_title(title) is not None:
                    header = table_header([r[1] for r in rows[i + 1 : i + 1 + HEADER_ROWS]])
                    title = f"{title} · {header}" if header else title
                headings.append((pos + len(line) - len(line.lstrip()), level, title))
        parts.append(line + "\n")
        pos += len(line) + 1
    return "".join(parts), headings


HEADER_ROWS = 10  # a statement's column header is within this many lines under its title
_MONTHS = (r"(?:January|February|March|April|May|June|July|August|September|October|November"
           r"|December|Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?"
           r"|Dec\.?)")  # fmt: skip
_DATE = re.compile(rf"{_MONTHS}\s+\d{{1,2}},?\s*(?:19|20)\d\d", re.IGNORECASE)
_MONTH_DAY = re.compile(rf"{_MONTHS}\s+\d{{1,2}},?", re.IGNORECASE)
_YEAR = re.compile(r"(?:19|20)\d\d")
_SPAN = re.compile(
    r"(?:(?:three|six|nine|twelve|3|6|9|12|thirteen|twenty-six|thirty-nine)\s+months?|quarter"
    r"|(?:fiscal\s+)?year|(?:thirteen|twenty-six|thirty-nine|\d+)\s+weeks)\s+ended",
    re.IGNORECASE,
)
_UNITS = re.compile(r"\bin\s+(millions|thousands|billions)\b", re.IGNORECASE)
# A units line: "(In millions, except ...)", "In thousands", "(Dollars in millions)".
_UNITS_LINE = re.compile(r"^[(\[]|^(?:\$|u\.?s\.?\s+)?(?:dollars|amounts)?\s*in\s", re.IGNORECASE)


def table_header(lines: Sequence[Sequence[str]]) -> str:
    """The column header of a financial statement from the lines under its title (each a list
    of cells): its units, its period spans and its column dates, e.g. "in millions · Three
    Months Ended | Nine Months Ended · July 1 2023 | June 25 2022"; "" when none.

    Read until the first line that is none of these (the first row label). Dates printed over
    two lines ("July 1," then "2023", or a row of days over a row of years) are put together in
    column order. Added to the title's heading, the header goes into the context line of every
    chunk of the statement, so a figure far down the table keeps its units and period.
    """
    units = ""
    spans: list[str] = []
    dates: list[str] = []
    days: list[str] = []
    for cells in lines:
        for cell in cells:
            text = " ".join(cell.split())
            if not text:
                continue
            if not units and _UNITS_LINE.match(text) and (m := _UNITS.search(text)):
                units = f"in {m.group(1).lower()}"
            elif text.startswith("(") and text.endswith(")"):
                continue  # (Unaudited), (In millions, ...)
            elif _SPAN.fullmatch(text.rstrip(":")):
                if text not in spans:
                    spans.append(text)
            elif _DATE.fullmatch(text):
                dates.append(text)
            elif _MONTH_DAY.fullmatch(text):
                days.append(text.rstrip(","))
            elif _YEAR.fullmatch(text):
                if days:
                    dates.append(f"{days.pop(0)} {text}")
            else:
                return _header(units, spans, dates)
    return _header(units, spans, dates)


def _header(units: str, spans: list[str], dates: list[str]) -> str:
    seen = list(dict.fromkeys(" ".join(d.replace(",", " ").split()) for d in dates))
    return " · ".join(p for p in (units, " | ".join(spans), " | ".join(seen)) if p)


def visible_text(page: object) -> str:
    """The page's visible text, table rows on one line (see :func:`page_layout`)."""
    return page_layout(page)[0]


def body_font_size(doc: object, sample: int = 12) -> float | None:
    """The most common font size (pt, to 0.1) over up to ``sample`` pages spread over ``doc``,
    weighted by characters; None for a document without text."""
    from collections import Counter

    n = doc.page_count  # type: ignore[attr-defined]
    counts: Counter[float] = Counter()
    for i in sorted({int(k * n / sample) for k in range(sample)} if n else set()):
        try:
            for block in doc.load_page(i).get_text("dict")["blocks"]:  # type: ignore[attr-defined]
                for line in block.get("lines", []):
                    for sp in line["spans"]:
                        counts[round(sp["size"], 1)] += len(sp["text"].strip())
        except Exception:  # a damaged page must not fail the document
            continue
    return counts.most_common(1)[0][0] if counts else None


def _continues_table(text: str, found: Sequence[tuple[int, int, str]], lines: int = 6) -> bool:
    """Whether a page begins with table rows: at least two of its first ``lines`` lines before
    its own first heading are rows of cells (a statement continued from the page before)."""
    end = found[0][0] if found else len(text)
    head = [ln for ln in text[:end].splitlines() if ln.strip()][:lines]
    return sum(CELL_SEP in ln for ln in head) >= 2


def _open_sections(headings: Sequence[Heading]) -> list[Heading]:
    """The headings still open at the end of a page (the last one of each level, outermost
    first): the next page's text continues under them until a heading of its own."""
    stack: list[Heading] = []
    for h in headings:
        while stack and stack[-1].level >= h.level:
            stack.pop()
        stack.append(h)
    return stack


def _cover_title(page: object) -> str:
    """The largest text on the first page (within 80% of the largest font size), up to 3 lines:
    on covers, reports and papers that is the title or the issuer's name."""
    spans: list[tuple[float, str]] = []
    try:
        for block in page.get_text("dict")["blocks"]:  # type: ignore[attr-defined]
            for line in block.get("lines", []):
                text = " ".join(s["text"].strip() for s in line["spans"] if s["text"].strip())
                size = max((s["size"] for s in line["spans"] if s["text"].strip()), default=0.0)
                if sum(ch.isalpha() for ch in text) >= 3:
                    spans.append((size, " ".join(text.split())))
    except Exception:  # a damaged first page must not fail the document
        return ""
    if not spans:
        return ""
    top = max(size for size, _ in spans)
    lines: list[str] = []
    for size, text in spans:
        if size >= 0.8 * top and text not in lines and len(text) <= 120:
            lines.append(text)
        if len(lines) == 3:
            break
    return " · ".join(lines)
