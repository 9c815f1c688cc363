"""Word (.docx) documents with python-docx: paragraphs and tables in body order, with headings."""

from __future__ import annotations

from pathlib import Path

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.ingest.extract.package import check_package
from desktop_rag.core.types import Document, Heading, Page


def extract_docx(path: Path) -> Document:
    """Paragraphs and tables (cells joined with `` | ``) in body order; Heading styles are headings.

    Raises:
        ExtractionError: not a Word document (e.g. an old binary .doc renamed) or corrupt.
    """
    check_package(
        path,
        "Word document",
        "not a Word .docx file (it is not a ZIP package; old .doc is not supported)",
    )
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
    except Exception as exc:
        raise ExtractionError(f"corrupt or unsupported Word document ({exc})") from None
    lines: list[str] = []
    headings: list[Heading] = []
    length = 0
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text.strip()
            if not text:
                continue
            style = (block.style.name if block.style is not None else "") or ""
            if style == "Title":
                headings.append(Heading(length, 1, text))
            elif style.startswith("Heading"):
                level = int(style.split()[-1]) if style.split()[-1].isdigit() else 1
                headings.append(Heading(length, level, text))
        elif isinstance(block, Table):
            rows = []
            for row in block.rows:
                cells: list[str] = []
                for cell in row.cells:
                    t = cell.text.strip().replace("\n", " ")
                    if not cells or cells[-1] != t:  # merged cells repeat their text
                        cells.append(t)
                rows.append(" | ".join(cells))
            text = "\n".join(rows).strip()
            if not text:
                continue
        else:
            continue
        lines.append(text)
        length += len(text) + 2
    body = "\n\n".join(lines)
    core_title = (document.core_properties.title or "").strip()
    title = core_title or next((h.text for h in headings if h.level == 1), path.stem)
    return Document(title=title, pages=(Page(None, body, tuple(headings)),), kind="docx")
