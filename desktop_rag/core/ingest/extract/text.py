"""Plain text and Markdown, with encoding detection (charset-normalizer)."""

from __future__ import annotations

import re
from pathlib import Path

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.types import Document, Heading, Page

_WESTERN = ("cp1252", "latin_1", "iso8859_15")
_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_SETEXT = re.compile(r"^([^\n]+)\n(=+|-+)[ \t]*$", re.MULTILINE)


#: Refuse text-like files larger than this many bytes (a log dump is not a document).
MAX_TEXT_BYTES = 64 * 1024 * 1024


def read_text_file(path: Path) -> str:
    """Read a text file and decode it: BOMs first, then strict UTF-8, then charset-normalizer.

    Raises:
        ExtractionError: the file is too large, or is binary rather than text.
    """
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise ExtractionError(
            f"too large for a text document ({size / 1e6:.0f} MB; the limit is "
            f"{MAX_TEXT_BYTES / 1e6:.0f} MB)"
        )
    data = path.read_bytes()
    return decode_bytes(data)


def decode_bytes(data: bytes) -> str:
    """Decode document bytes to text; see :func:`read_text_file`."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise ExtractionError("this looks like a binary file, not text")
    # Short Western European texts decode without "chaos" in several single-byte code pages and the
    # detector may rank e.g. cp1250 first; Windows-1252 is by far the most common of them, so it
    # wins a tie.
    for m in matches:
        if m.encoding in _WESTERN and m.chaos <= best.chaos + 0.01:
            return str(m)
    return str(best)


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def extract_text(path: Path) -> Document:
    """A plain text file as one page (``number`` None)."""
    text = _normalise_newlines(read_text_file(path))
    return Document(
        title=_first_line_title(text, path.stem), pages=(Page(None, text),), kind="text"
    )


def markdown_headings(text: str) -> tuple[Heading, ...]:
    """ATX (``# Title``) and setext (underlined) headings with their character offsets."""
    found = [Heading(m.start(), len(m.group(1)), m.group(2).strip()) for m in _ATX.finditer(text)]
    for m in _SETEXT.finditer(text):
        line = m.group(1).strip()
        if line and not line.startswith(("#", "-", "=", "|", ">")):
            found.append(Heading(m.start(), 1 if m.group(2)[0] == "=" else 2, line))
    return tuple(sorted(found, key=lambda h: h.offset))


def extract_markdown(path: Path) -> Document:
    """A Markdown file as one page; its headings travel with the chunks as context."""
    text = _normalise_newlines(read_text_file(path))
    headings = markdown_headings(text)
    title = next((h.text for h in headings if h.level == 1), None) or path.stem
    return Document(title=title, pages=(Page(None, text, headings),), kind="markdown")


def _first_line_title(text: str, fallback: str) -> str:
    # A first short line followed by a blank line reads as a title (common in plain-text articles).
    head = text.lstrip()[:400].split("\n")
    if len(head) > 1 and 0 < len(head[0].strip()) <= 200 and not head[1].strip():
        return head[0].strip()
    return fallback
