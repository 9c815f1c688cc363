"""Spreadsheets: Excel workbooks (.xlsx/.xlsm, with openpyxl) and CSV/TSV tables (csv module).

Every data row becomes one line written by :func:`~desktop_rag.core.text.citations.row_line`
(``Row 12 | Date = 2024-01-31 | Tonnes = 1200``: the row number as the spreadsheet shows it, each
value named by its column), so a cited passage's label names its rows ("book.xlsx, sheet 2, rows
14–40") and a quoted row says what its numbers are. The header row is also a heading, so the
chunker puts it in the context line of every chunk of the table. A first row holding a number or
a date is data, not a header (:func:`looks_like_header`): rows are then written by position.
Rows are separated by blank lines: the chunker starts and ends chunks at paragraph boundaries
first, so a chunk (and its overlap with the previous one) begins at a row's start and its label
covers every row it shows.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.ingest.extract.package import check_zip_sizes
from desktop_rag.core.ingest.extract.text import read_text_file
from desktop_rag.core.text.citations import CELL_SEP, row_line
from desktop_rag.core.types import Document, Heading, Page

#: Refuse a workbook with more filled cells than this (about 100 MB of text for typical cells):
#: the whole file is refused rather than indexed in part, so no answer rests on half a table.
MAX_CELLS = 2_000_000
#: Refuse a workbook or table whose extracted text exceeds this many characters (as text files).
MAX_CHARS = 64 * 1024 * 1024
#: The last row of an Excel worksheet; a row beyond it means a crafted or corrupt sheet.
EXCEL_MAX_ROW = 1_048_576
#: How much of a CSV file the dialect sniffer reads (characters).
SNIFF_CHARS = 64 * 1024

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_CANDIDATE_DELIMITERS = ",;\t|"
_PERCENT_DECIMALS = re.compile(r"\.(0+)\s*%")
# A number as cells show them (1200, -3.5, 1,200.00, (42), $12, 15%, 0,45) or an ISO date/time.
_DATA_CELL = re.compile(r"^[-+(]?[$€£¥]?\s?\d[\d,.\s]*%?\)?$|^\d{4}-\d{2}-\d{2}|^\d{1,2}:\d{2}")


def looks_like_header(cells: Sequence[str]) -> bool:
    """Whether a table's first non-empty row names its columns: it has at least one filled cell
    and none of them is a number or a date (which would make it the first data row)."""
    filled = [c for c in cells if c]
    return bool(filled) and not any(_DATA_CELL.match(c) for c in filled)


class _Lines:
    """The text of one page built line by line (blank lines between), with heading offsets and a
    running character count against :data:`MAX_CHARS`."""

    def __init__(self, total: list[int]) -> None:
        self.parts: list[str] = []
        self.headings: list[Heading] = []
        self.length = 0
        self._total = total  # shared by all pages of a document: [characters so far]

    def add(self, line: str, heading_level: int | None = None) -> None:
        offset = self.length + 2 if self.parts else 0
        if heading_level is not None:
            self.headings.append(Heading(offset, heading_level, line))
        self.parts.append(line)
        self.length = offset + len(line)
        self._total[0] += len(line) + 2
        if self._total[0] > MAX_CHARS:
            raise ExtractionError(
                f"too large: the table holds more than {MAX_CHARS / 1e6:.0f} MB of text "
                "(the limit for one document; it was not indexed)"
            )

    def page(self, number: int | None) -> Page:
        return Page(number, "\n\n".join(self.parts), tuple(self.headings))


def _clean_text(value: str) -> str:
    """A cell's text on one line: surrounding whitespace stripped, inner runs (newlines within a
    cell included) collapsed to one space."""
    return " ".join(value.split())


def _format_number(value: float) -> str:
    """A number as Excel's General format shows it: no spurious ``.0``, 15 significant digits
    (so the binary noise of ``0.1 + 0.2`` does not show)."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


def _format_time(value: dt.time) -> str:
    return value.isoformat(timespec="seconds" if value.second else "minutes")


def cell_text(value: Any, number_format: str = "General") -> str:
    """A cell value as a person reads it: ISO dates (``2024-01-31``; with a time part or a format
    showing hours, ``2024-01-31 14:30``, seconds only when not zero), numbers without a spurious
    ``.0``, percentages as formatted (``0.153`` in ``0.0%`` -> ``15.3%``), booleans ``TRUE`` /
    ``FALSE``, text on one line; None is ``""``. Other number formats (currency, thousands
    separators) are not applied: the number itself is what is searched and cited."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        shows_time = value.time() != dt.time(0) or "h" in number_format.lower()
        if not shows_time:
            return value.date().isoformat()
        return f"{value.date().isoformat()} {_format_time(value.time())}"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return _format_time(value)
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, int | float):
        section = number_format.split(";", 1)[0]
        if "%" in section and '"%"' not in section and "\\%" not in section:
            match = _PERCENT_DECIMALS.search(section)
            decimals = len(match.group(1)) if match else 0
            return f"{value * 100:.{decimals}f}%"
        return _format_number(float(value)) if isinstance(value, float) else str(value)
    return _clean_text(str(value))


def _trimmed(cells: Sequence[str]) -> list[str]:
    """The cells without trailing empty ones (inner empty cells stay, so columns line up)."""
    end = len(cells)
    while end and not cells[end - 1]:
        end -= 1
    return list(cells[:end])


def _check_not_encrypted_ole(path: Path) -> None:
    """An OLE compound file that holds an ``EncryptedPackage`` stream is a password-protected
    .xlsx (Office encrypts a workbook into an OLE container); say so rather than ".xls"."""
    overlap = len(_ENCRYPTED_STREAM)
    tail = b""
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            if _ENCRYPTED_STREAM in tail + block:
                raise ExtractionError(
                    "this Excel workbook is password-protected (encrypted workbooks are not "
                    "supported; save a copy without a password to index it)"
                )
            tail = block[-overlap:]


def extract_xlsx(path: Path) -> Document:
    """One :class:`Page` per sheet of an Excel .xlsx/.xlsm workbook, read with openpyxl in
    read-only mode (cached values of formulas: a formula never calculated and saved by Excel, e.g.
    one written by a script, reads as an empty cell).

    ``Page.number`` is the sheet's 1-based position in the workbook's tab order, so "sheet 3" is
    the third tab. A chart sheet holds no cells: it keeps its number as an empty page, as an empty
    worksheet does, so the numbers of the sheets after it still match their tabs. Hidden (and
    very hidden) sheets are indexed (they are data the file holds and shares), with ``(hidden)``
    after their name.

    A sheet's text: its name (level-1 heading at offset 0), then the header row's cells joined with
    `` | `` (a level-2 heading, so it is in the context line of every chunk of the sheet), then one
    line per non-empty data row, ``Row 12 | Date = 2024-01-31 | Tonnes = 1200`` with the row
    number Excel shows (1-based; :func:`~desktop_rag.core.text.citations.row_line`). The header
    row is the first non-empty row of the sheet when :func:`looks_like_header` (a title above the
    table becomes the "header"); otherwise there is none and rows are written by position
    (``Row 3 | a | b``). Cells are formatted by :func:`cell_text`; trailing empty cells are dropped, inner
    ones kept as empty strings. Document title: the workbook's Title property, else the file stem.

    Raises:
        ExtractionError: not an .xlsx (an old binary .xls or a password-protected workbook, both
            OLE files), a ZIP bomb (see ``check_zip_sizes``), a ZIP that is not a workbook, a
            corrupt workbook, or more than :data:`MAX_CELLS` filled cells or :data:`MAX_CHARS`
            characters of text (the workbook is then refused as a whole, not indexed in part).
    """
    if not zipfile.is_zipfile(path):
        with path.open("rb") as fh:
            is_ole = fh.read(len(_OLE_MAGIC)) == _OLE_MAGIC
        if is_ole:
            _check_not_encrypted_ole(path)
        raise ExtractionError(
            "not an Excel .xlsx file (it is not a ZIP package; old .xls is not supported)"
        )
    check_zip_sizes(path, "Excel workbook")
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    if "[Content_Types].xml" not in names or "_rels/.rels" not in names:
        raise ExtractionError("not an Excel workbook (a ZIP package without a workbook in it)")
    import openpyxl
    from openpyxl.chartsheet import Chartsheet

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise ExtractionError(f"corrupt or unsupported Excel workbook ({exc})") from None
    try:
        total_chars = [0]
        cells_seen = 0
        pages: list[Page] = []
        for number, name in enumerate(wb.sheetnames, start=1):
            sheet = wb[name]
            lines = _Lines(total_chars)
            header: list[str] = []
            if not isinstance(sheet, Chartsheet):
                sheet.reset_dimensions()  # the declared size may be wrong: read every row
                for row_number, row in enumerate(sheet.iter_rows(), start=1):
                    if row_number > EXCEL_MAX_ROW:
                        raise ExtractionError(
                            f"corrupt Excel workbook (sheet {name!r} has rows beyond Excel's "
                            f"{EXCEL_MAX_ROW:,} rows)"
                        )
                    cells = _trimmed([cell_text(c.value, c.number_format) for c in row])
                    if not cells:
                        continue
                    cells_seen += sum(1 for c in cells if c)
                    if cells_seen > MAX_CELLS:
                        raise ExtractionError(
                            f"too large: the workbook has more than {MAX_CELLS:,} filled cells "
                            "(the limit for one document; it was not indexed)"
                        )
                    if not lines.parts:
                        hidden = getattr(sheet, "sheet_state", "visible") != "visible"
                        lines.add(f"{name} (hidden)" if hidden else name, heading_level=1)
                        if looks_like_header(cells):
                            header = cells
                            lines.add(CELL_SEP.join(cells), heading_level=2)
                            continue
                        header = []
                    lines.add(row_line(row_number, cells, header))
            pages.append(lines.page(number))
        title = (wb.properties.title or "").strip() if wb.properties is not None else ""
    except (ExtractionError, MemoryError):
        raise
    except Exception as exc:
        raise ExtractionError(f"corrupt or unsupported Excel workbook ({exc})") from None
    finally:
        wb.close()
    return Document(title=title or path.stem, pages=tuple(pages), kind="xlsx")


def _consistency(sample: str, delimiter: str, quotechar: str) -> float:
    """The share of the sample's non-blank records that have as many fields as its first one
    (0 when that one has a single field): how well ``delimiter`` cuts the sample into a table."""
    counts: list[int] = []
    try:
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter,
                            quotechar=quotechar)  # fmt: skip
        counts = [len(r) for r in reader if any(f.strip() for f in r)]
    except csv.Error:
        return 0.0
    if not counts or counts[0] < 2:
        return 0.0
    return sum(1 for c in counts if c == counts[0]) / len(counts)


def _dialect(text: str, suffix: str) -> dict[str, Any]:
    """The CSV dialect of ``text`` as ``csv.reader`` keyword arguments: tab-separated for .tsv;
    else csv.Sniffer's guess on the first :data:`SNIFF_CHARS` characters (delimiters
    ``, ; TAB |``), with its delimiter replaced by another that cuts the sample into a more
    regular table (the sniffer prefers ``,`` and can take the decimal commas of a ``;`` file for
    the delimiter); ``,`` and ``"`` when the sniffer cannot tell."""
    if suffix == ".tsv":
        return {"delimiter": "\t", "quotechar": '"', "doublequote": True}
    sample = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # no half record at the end
    params: dict[str, Any] = {"delimiter": ",", "quotechar": '"', "doublequote": True}
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=_CANDIDATE_DELIMITERS)
        # Quotes inside a quoted field are always doubled (RFC 4180, Excel): the sniffer says
        # "not doubled" whenever its sample has none, and would then misread the rest of the file.
        params = {"delimiter": sniffed.delimiter, "quotechar": sniffed.quotechar or '"',
                  "doublequote": True, "skipinitialspace": sniffed.skipinitialspace}  # fmt: skip
    except csv.Error:
        pass
    scores = {d: _consistency(sample, d, params["quotechar"]) for d in _CANDIDATE_DELIMITERS}
    best = max(scores, key=lambda d: (scores[d], d == params["delimiter"]))
    if scores[best] > scores.get(params["delimiter"], 0.0):
        params["delimiter"] = best
    return params


def extract_csv(path: Path) -> Document:
    """A CSV or TSV table as one :class:`Page` (``number`` None), titled with the file stem.

    The file is decoded as text files are (BOMs, UTF-8, else the detected code page such as
    Windows-1252); the dialect is sniffed (see :func:`_dialect`; .tsv files are tab-separated).
    Text: the header row (the first non-empty record, when :func:`looks_like_header`) with its
    cells joined by `` | `` as a level-1 heading (in the context line of every chunk), then one
    line per non-empty record, ``Row 7 | Port = Brest | High water = 06:12`` (by position,
    ``Row 7 | a | b``, without a header), numbered as a spreadsheet opening the file would number it (1-based
    records, header included, so the first data row under a header on line 1 is row 2; a quoted
    field spanning several lines is one record; blank records are skipped but counted). Cells are
    stripped and put on one line; trailing empty cells are dropped.

    Raises:
        ExtractionError: the file is too large or binary (see ``read_text_file``; NUL characters
            also mark it binary), its quoting is malformed (an unclosed quote, text right after a
            closing quote), or a field exceeds the csv module's field size limit.
    """
    text = read_text_file(path)
    if "\x00" in text:
        raise ExtractionError("this looks like a binary file, not a CSV table")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True,
                        **_dialect(text, path.suffix.lower()))  # fmt: skip
    lines = _Lines([0])
    header: list[str] = []
    try:
        for number, record in enumerate(reader, start=1):
            cells = _trimmed([_clean_text(f) for f in record])
            if not cells:
                continue
            if not lines.parts and looks_like_header(cells):
                header = cells
                lines.add(CELL_SEP.join(cells), heading_level=1)
                continue
            lines.add(row_line(number, cells, header))
    except csv.Error as exc:
        limit = csv.field_size_limit()
        line = reader.line_num
        if "field limit" in str(exc):
            raise ExtractionError(
                f"malformed CSV: a field near line {line} is longer than {limit:,} characters "
                "(an unclosed quote?)"
            ) from None
        raise ExtractionError(f"malformed CSV near line {line} ({exc})") from None
    return Document(title=path.stem, pages=(lines.page(None),), kind="csv")
