"""Word (.docx) documents with python-docx: paragraphs and tables in body order, with headings."""

from __future__ import annotations

import zipfile
from pathlib import Path

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.types import Document, Heading, Page

#: Refuse a .docx whose ZIP members declare more than this many uncompressed bytes in total, or
#: one member expanding more than MAX_RATIO times (ZIP bombs; a real document is far below both).
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_RATIO = 200


def check_zip_sizes(path: Path, kind: str = "Word document") -> None:
    """Refuse a ZIP bomb by the sizes its central directory declares (nothing is decompressed).

    Raises:
        ExtractionError: the declared sizes exceed :data:`MAX_UNPACKED_BYTES` or a member's
            compression ratio exceeds :data:`MAX_RATIO` (for members over 1 MB).
    """
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionError(f"corrupt {kind} ({exc})") from None
    total = sum(i.file_size for i in infos)
    if total > MAX_UNPACKED_BYTES:
        raise ExtractionError(
            f"refused: the package declares {total / 1e6:,.0f} MB of content when unpacked "
            f"(limit {MAX_UNPACKED_BYTES / 1e6:,.0f} MB; a ZIP bomb?)"
        )
    for i in infos:
        if i.file_size > 1024 * 1024 and i.file_size > MAX_RATIO * max(1, i.compress_size):
            raise ExtractionError(
                f"refused: {i.filename} expands {i.file_size / max(1, i.compress_size):,.0f} "
                "times when unpacked (a ZIP bomb?)"
            )


def extract_docx(path: Path) -> Document:
    """Paragraphs and tables (cells joined with `` | ``) in body order; Heading styles are headings.

    Raises:
        ExtractionError: not a Word document (e.g. an old binary .doc renamed) or corrupt.
    """
    if not zipfile.is_zipfile(path):
        raise ExtractionError(
            "not a Word .docx file (it is not a ZIP package; old .doc is not supported)"
        )
    check_zip_sizes(path)
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
