"""The document formats desktop_rag reads: which file suffix is which format, and what a page of
each format is called in a citation. The one table extraction, the indexer, citations and the
viewer read (a new format is added here and in ``core/ingest/extract``)."""

from __future__ import annotations

import os
from pathlib import PurePath

#: Suffix (lower case) -> format name.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".csv": "csv",
    ".tsv": "csv",
    ".epub": "epub",
    ".odt": "odt",
    ".eml": "eml",
    ".msg": "msg",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".tif": "image",
    ".tiff": "image",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
}

#: What a 1-based page number counts in a format (others: "page"): a deck's slides, a workbook's
#: sheets, a book's chapters (spine order), an email's parts (the message, then each attachment).
PAGE_UNITS: dict[str, str] = {
    "pptx": "slide",
    "xlsx": "sheet",
    "epub": "chapter",
    "eml": "part",
    "msg": "part",
}

#: Formats whose extracted lines are spreadsheet rows (``citations.row_line``): their labels name
#: the rows a passage spans.
ROW_KINDS = frozenset({"xlsx", "csv"})

#: Formats whose pages the viewer renders as pictures (PyMuPDF opens images as documents, a TIFF's
#: frames as pages); the others are shown as their text.
RENDERED_KINDS = frozenset({"pdf", "image"})


def file_kind(path: str | os.PathLike[str]) -> str | None:
    """The format name for a file path or name from its suffix, or None if we do not index that
    type."""
    return SUPPORTED_SUFFIXES.get(PurePath(os.fspath(path).replace("\\", "/")).suffix.lower())
