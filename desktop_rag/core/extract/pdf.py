"""PDF extraction with PyMuPDF: page by page, 1-based page numbers, the document's reading order."""

from __future__ import annotations

from pathlib import Path

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.types import Document, Page


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


def extract_pdf(path: Path) -> Document:
    """Extract the text of every page of a PDF.

    PDFs encrypted with an empty user password (common for "no copy" permissions) open normally.

    Raises:
        ExtractionError: the file is not a readable PDF or needs a password.
    """
    import pymupdf

    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:
        raise ExtractionError(f"not a readable PDF ({exc})") from None
    with doc:
        if doc.needs_pass and not doc.authenticate(""):
            raise ExtractionError("password required: this PDF is protected with a password")
        pages = []
        for i in range(doc.page_count):
            page = doc.load_page(i)
            # The default order is the order of the page's content stream, which is the reading
            # order the author's tool wrote; a geometric sort interleaves columns.
            text = page.get_text("text")
            pages.append(Page(number=i + 1, text=text))
        title = _clean_title(doc.metadata.get("title") if doc.metadata else None, path.stem)
    return Document(title=title, pages=tuple(pages), kind="pdf")
