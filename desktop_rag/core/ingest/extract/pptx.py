"""PowerPoint (.pptx) slide decks with python-pptx: one page per slide, the slide number as the
page number (1-based, the order of the deck), so a citation says which slide to open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.ingest.extract.package import check_package
from desktop_rag.core.types import Document, Heading, Page


def _shape_texts(shapes: Any) -> Iterator[str]:
    """The text of each shape in reading order (top to bottom, then left to right), group shapes
    opened, tables as rows of cells joined with `` | `` (as PDF and Word tables are)."""

    def position(shape: Any) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=position):
        if getattr(shape, "shapes", None) is not None:
            yield from _shape_texts(shape.shapes)  # a group
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = []
            for row in shape.table.rows:
                cells: list[str] = []
                for cell in row.cells:
                    text = " ".join(cell.text.split())
                    if not cells or cells[-1] != text:  # merged cells repeat their text
                        cells.append(text)
                rows.append(" | ".join(cells))
            text = "\n".join(r for r in rows if r.strip(" |"))
            if text:
                yield text
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            paragraphs = (" ".join(p.text.split()) for p in shape.text_frame.paragraphs)
            text = "\n".join(p for p in paragraphs if p)
            if text:
                yield text


def extract_pptx(path: Path) -> Document:
    """One :class:`Page` per slide (``number`` = slide number): the title as a level-1 heading,
    then the other shapes' text and tables, then the speaker notes under a "Notes" heading.
    Slides without any text are kept as empty pages, so numbers always match the deck.

    Raises:
        ExtractionError: not a PowerPoint .pptx (e.g. an old binary .ppt renamed), a ZIP bomb,
            or corrupt.
    """
    check_package(
        path,
        "PowerPoint deck",
        "not a PowerPoint .pptx file (it is not a ZIP package; old .ppt is not supported)",
    )
    import pptx

    try:
        deck = pptx.Presentation(str(path))
    except Exception as exc:
        raise ExtractionError(f"corrupt or unsupported PowerPoint deck ({exc})") from None
    pages: list[Page] = []
    first_title = ""
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
        parts: list[str] = []
        headings: list[Heading] = []
        if title:
            headings.append(Heading(0, 1, title))
            parts.append(title)
            first_title = first_title or title
        others = [
            s for s in slide.shapes if title_shape is None or s.shape_id != title_shape.shape_id
        ]
        parts += list(_shape_texts(others))
        if slide.has_notes_slide:
            notes = " ".join((slide.notes_slide.notes_text_frame.text or "").split())
            if notes:
                offset = len("\n\n".join(parts)) + 2 if parts else 0
                headings.append(Heading(offset, 2, "Notes"))
                parts.append(f"Notes\n{notes}")
        pages.append(Page(number, "\n\n".join(parts), tuple(headings)))
    if not pages:
        raise ExtractionError("the deck has no slides")
    core_title = (deck.core_properties.title or "").strip()
    return Document(title=core_title or first_title or path.stem, pages=tuple(pages), kind="pptx")
