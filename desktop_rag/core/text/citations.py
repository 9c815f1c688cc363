"""Citation markers and source labels: the one definition every client uses.

An answer cites its numbered sources as ``[2]``, ``[1, 3]`` or ``[1; 3]`` (1 to 3 digits each).
The prompt, the answer check, the command line and the chat window all read markers with
:data:`CITE_RE` and name a source with :func:`source_label`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from desktop_rag.core.formats import PAGE_UNITS, ROW_KINDS, file_kind

if TYPE_CHECKING:
    from desktop_rag.core.types import Hit

# One marker: "[" numbers separated by "," or ";" "]"; group 1 holds the numbers.
CITE_RE = re.compile(r"\[(\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*)\]")


def marker_numbers(marker_body: str) -> list[int]:
    """The numbers of one marker's group 1 (``"1, 3"`` -> ``[1, 3]``), valid or not."""
    return [int(p) for p in re.split(r"[,;]", marker_body)]


def cited_numbers(text: str, n_sources: int) -> list[int]:
    """Distinct valid source numbers (1..``n_sources``) cited in ``text``, in order of appearance."""
    seen: list[int] = []
    for m in CITE_RE.finditer(text):
        for n in marker_numbers(m.group(1)):
            if 1 <= n <= n_sources and n not in seen:
                seen.append(n)
    return seen


def clean_citations(text: str, n_sources: int) -> str:
    """Remove ``[n]`` markers that do not name a given source (the model invented them)."""

    def keep(m: re.Match[str]) -> str:
        valid = [n for n in marker_numbers(m.group(1)) if 1 <= n <= n_sources]
        return "[" + ", ".join(map(str, valid)) + "]" if valid else ""

    return CITE_RE.sub(keep, text).strip()


#: The separator of a table row's cells in extracted text (PDF, OCR, Word, PowerPoint and
#: spreadsheet rows alike); the viewer finds a table row by it.
CELL_SEP = " | "

#: A row line's prefix (see :func:`row_line`); group 1 is the row number as the spreadsheet shows it.
ROW_RE = re.compile(r"^Row (\d+) \| ", re.MULTILINE)


def row_line(number: int, cells: Sequence[str], header: Sequence[str] = ()) -> str:
    """One spreadsheet row as a text line, ``number`` as the spreadsheet numbers it (1-based,
    header row included), so a passage's label can name its rows.

    With the table's ``header``, each value is named by its column:
    ``Row 12 | Date = 2024-01-31 | Cargo = grain | Tonnes = 1200`` (empty cells left out; a value
    under an empty header cell stands alone). A row then says what its numbers are wherever it is
    quoted (evidence, a small model's prompt) and matches questions that name the column. Without
    a header: ``Row 12 | a | b | c`` (empty cells kept, so columns stay aligned). No ``:`` after
    the row number: the chunker takes a colon for a sentence end and could start a chunk there.
    """
    if header:
        named = [f"{header[i]} = {v}" if i < len(header) and header[i] else v
                 for i, v in enumerate(cells) if v]  # fmt: skip
        return f"Row {number}{CELL_SEP}" + CELL_SEP.join(named)
    return f"Row {number}{CELL_SEP}" + CELL_SEP.join(cells)


def source_label(hit: Hit) -> str:
    """``file name, page N`` (1-based page; ``slide N`` in a deck, see :data:`~desktop_rag.core.formats.PAGE_UNITS`; rows
    added for spreadsheets), or the file name alone for documents without pages."""
    return label_for(hit.path, hit.page, hit.text)


def label_of(source: Mapping[str, Any]) -> str:
    """:func:`label_for` of a source or evidence item as an answer's JSON stores it (``"file"``,
    ``"page"``, ``"text"``)."""
    return label_for(str(source["file"]), source.get("page"), str(source.get("text") or ""))


def label_for(path: str, page: int | None, text: str = "") -> str:
    """:func:`source_label` of a source known by its ``path`` (or file name), 1-based ``page``
    (None or 0: no pages) and the cited ``text``, as stored in an answer's JSON (``"file"``,
    ``"page"``, ``"text"``): ``deck.pptx, slide 3``, ``book.xlsx, sheet 2, rows 14-40``,
    ``table.csv, row 7``, ``report.pdf, page 12``."""
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    kind = file_kind(name)
    label = f"{name}, {PAGE_UNITS.get(kind or '', 'page')} {page}" if page else name
    if kind in ROW_KINDS and text:
        rows = [int(n) for n in ROW_RE.findall(text)]
        if rows:
            first, last = min(rows), max(rows)
            label += f", row {first}" if first == last else f", rows {first}\u2013{last}"
    return label
