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

from desktop_rag.core.errors import Cancelled, ExtractionError, UnsupportedFileError
from desktop_rag.core.formats import file_kind
from desktop_rag.core.types import Document, Heading, Page

#: Characters that are invisible on screen but reach the model: zero-width spaces and joiners,
#: word joiner and invisible operators, BOM, Mongolian vowel separator, bidi embedding/override/
#: isolate controls and marks (Trojan Source, Boucher & Anderson 2021), and Unicode tag characters
#: (used to smuggle hidden instructions to language models).
INVISIBLE_RE = re.compile(
    "[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u180e\u061c\U000e0000-\U000e007f]"
)

# Bump a format's version when its extractor's output changes: files indexed with another
# version are extracted again on the next run (see Indexer.pipeline). pdf 2: table rows on one
# line, headings from bold and large type carried across pages. pdf 3: financial statements' titles
# are headings (in any type) with their tables' units and column dates, other headings nest under
# them. pdf 4: those filing rules (and "Item N." levels, PART lines dropped) only in documents
# detected as filings or financial reports (core/text/filings.py).
EXTRACTOR_VERSIONS: dict[str, int] = {"pdf": 4}

#: The formats whose text can come from text recognition (OCR): their pipeline names whether OCR
#: was on, so turning it on or off extracts them again.
OCR_KINDS = frozenset({"pdf", "image", "eml", "msg"})


#: Format name -> ``module:function`` under this package (imported only when a file of that format
#: is read, so the parsers' libraries stay out of start-up).
_EXTRACTORS: dict[str, str] = {
    "pdf": "pdf:extract_pdf",
    "docx": "docx:extract_docx",
    "pptx": "pptx:extract_pptx",
    "xlsx": "sheets:extract_xlsx",
    "csv": "sheets:extract_csv",
    "epub": "epub:extract_epub",
    "odt": "odt:extract_odt",
    "eml": "mail:extract_eml",
    "msg": "mail:extract_msg",
    "image": "ocr:extract_image",
    "html": "html:extract_html",
    "markdown": "text:extract_markdown",
    "text": "text:extract_text",
}


def _extractor(kind: str) -> Callable[[Path], Document]:
    import importlib

    module, _, name = _EXTRACTORS[kind].partition(":")
    fn: Callable[[Path], Document] = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    return fn


def extract(
    path: Path, *, ocr: bool = True, on_ocr_page: Callable[[int, int], None] | None = None
) -> Document:
    """Extract the text of ``path`` page by page.

    ``ocr``: recognise the text of scanned PDF pages and of images (off: images are skipped and
    scanned pages stay empty); ``on_ocr_page(done, total)`` is called before the first page (0
    done) and after each page recognised.

    Raises:
        UnsupportedFileError: the suffix is not a supported type, or there is no text (skipped).
        ExtractionError: the file could not be read; the message is the human reason.
    """
    kind = file_kind(path)
    if kind is None:
        suffix = path.suffix.lower() or "(no extension)"
        raise UnsupportedFileError(f"unsupported file type {suffix}")
    if kind == "image" and not ocr:
        raise UnsupportedFileError(
            "an image: its text can only be read by text recognition (OCR), which is turned off"
        )
    try:
        if kind == "pdf":
            doc = _extractor(kind)(path, ocr=ocr, on_ocr_page=on_ocr_page)  # type: ignore[call-arg]
        elif kind == "image":
            doc = _extractor(kind)(path, on_ocr_page=on_ocr_page)  # type: ignore[call-arg]
        elif kind in ("eml", "msg"):  # attachments: scans recognised or not, as the setting says
            doc = _extractor(kind)(path, ocr=ocr)  # type: ignore[call-arg]
        else:
            doc = _extractor(kind)(path)
    except (ExtractionError, Cancelled):
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
        if kind == "pdf" and not ocr:
            raise UnsupportedFileError(
                "no extractable text (a scanned PDF? text recognition (OCR) is turned off)"
            )
        if kind == "pdf":
            raise UnsupportedFileError("no text: neither a text layer nor recognisable text")
        raise UnsupportedFileError("the document contains no text")
    return doc


def strip_invisible(page: Page) -> Page:
    """The page without :data:`INVISIBLE_RE` characters, heading and OCR box offsets moved to
    match."""
    removed = [m.start() for m in INVISIBLE_RE.finditer(page.text)]
    if not removed:
        return page

    def moved(offset: int) -> int:
        return offset - bisect.bisect_left(removed, offset)

    text = INVISIBLE_RE.sub("", page.text)
    headings = tuple(
        Heading(moved(h.offset), h.level, INVISIBLE_RE.sub("", h.text)) for h in page.headings
    )
    boxes = tuple(replace(b, start=moved(b.start), end=moved(b.end)) for b in page.boxes)
    return replace(page, text=text, headings=headings, boxes=boxes)
