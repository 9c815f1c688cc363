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
        meta = _clean_title(doc.metadata.get("title") if doc.metadata else None, "")
        cover = _cover_title(doc.load_page(0)) if doc.page_count else ""
        title = meta or cover or path.stem
        # The file name often says what the title does not (a period, a ticker, a version).
        if title != path.stem and sum(ch.isalpha() for ch in path.stem) >= 3:
            title = f"{path.stem}: {title}"
    return Document(title=title, pages=tuple(pages), kind="pdf")


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
