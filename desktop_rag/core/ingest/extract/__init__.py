"""Text extraction: one small module per format, dispatched on the file suffix.

:func:`extract` returns a :class:`~desktop_rag.core.types.Document` or raises
:class:`~desktop_rag.core.errors.ExtractionError` (failed) /
:class:`~desktop_rag.core.errors.UnsupportedFileError` (skipped) with a human reason.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from desktop_rag.core.errors import ExtractionError, UnsupportedFileError
from desktop_rag.core.types import Document, Heading, Page

#: Characters that are invisible on screen but reach the model: zero-width spaces and joiners,
#: word joiner and invisible operators, BOM, Mongolian vowel separator, bidi embedding/override/
#: isolate controls and marks (Trojan Source, Boucher & Anderson 2021), and Unicode tag characters
#: (used to smuggle hidden instructions to language models).
INVISIBLE_RE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u180e\u061c\U000e0000-\U000e007f]"
)

#: Suffix (lower case) -> format name.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
}

# Bump a format's version when its extractor's output changes: files indexed with another
# version are extracted again on the next run (see Indexer.pipeline). pdf 2: table rows on one
# line, headings from bold and large type carried across pages. pdf 3: financial statements' titles
# are headings (in any type) with their tables' units and column dates, other headings nest under
# them.
EXTRACTOR_VERSIONS: dict[str, int] = {"pdf": 3}


def file_kind(path: Path) -> str | None:
    """The format name for ``path`` from its suffix, or None if we do not index that type."""
    return SUPPORTED_SUFFIXES.get(path.suffix.lower())


def _extractor(kind: str) -> Callable[[Path], Document]:
    if kind == "pdf":
        from desktop_rag.core.ingest.extract.pdf import extract_pdf

        return extract_pdf
    if kind == "docx":
        from desktop_rag.core.ingest.extract.docx import extract_docx

        return extract_docx
    if kind == "pptx":
        from desktop_rag.core.ingest.extract.pptx import extract_pptx

        return extract_pptx
    if kind == "html":
        from desktop_rag.core.ingest.extract.html import extract_html

        return extract_html
    if kind == "markdown":
        from desktop_rag.core.ingest.extract.text import extract_markdown

        return extract_markdown
    from desktop_rag.core.ingest.extract.text import extract_text

    return extract_text


def extract(path: Path) -> Document:
    """Extract the text of ``path`` page by page.

    Raises:
        UnsupportedFileError: the suffix is not a supported type (the file is skipped).
        ExtractionError: the file could not be read; the message is the human reason.
    """
    kind = file_kind(path)
    if kind is None:
        suffix = path.suffix.lower() or "(no extension)"
        raise UnsupportedFileError(f"unsupported file type {suffix}")
    try:
        doc = _extractor(kind)(path)
    except ExtractionError:
        raise
    except PermissionError:
        raise ExtractionError("permission denied") from None
    except FileNotFoundError:
        raise ExtractionError("the file disappeared while it was being read") from None
    except MemoryError:
        raise ExtractionError("the file is too large to read into memory") from None
    except Exception as exc:  # a parser bug or a corrupt file must not stop the run
        raise ExtractionError(f"could not read this {kind.upper()} file: {exc}") from exc
    doc = replace(doc, title=INVISIBLE_RE.sub("", doc.title),
                  pages=tuple(strip_invisible(p) for p in doc.pages))  # fmt: skip
    if not any(p.text.strip() for p in doc.pages):
        if kind == "pdf":
            raise UnsupportedFileError(
                "no extractable text (a scanned PDF? text recognition (OCR) is not supported)"
            )
        raise UnsupportedFileError("the document contains no text")
    return doc


def strip_invisible(page: Page) -> Page:
    """The page without :data:`INVISIBLE_RE` characters, heading offsets moved to match."""
    removed = [m.start() for m in INVISIBLE_RE.finditer(page.text)]
    if not removed:
        return page
    text = INVISIBLE_RE.sub("", page.text)
    headings = tuple(
        Heading(h.offset - bisect.bisect_left(removed, h.offset), h.level,
                INVISIBLE_RE.sub("", h.text))
        for h in page.headings
    )  # fmt: skip
    return Page(page.number, text, headings)
