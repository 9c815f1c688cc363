"""Email messages: MIME ``.eml`` (the standard library's :mod:`email`) and Outlook ``.msg``
(:mod:`olefile`), with their attachments.

A message is a :class:`Document` of numbered parts (``Page.number`` 1..n, cited as
``mail.eml, part 2``):

* part 1 is the message itself: the subject on the first line (a level-1 heading at offset 0),
  then ``From:``, ``To:``, ``Cc:``, ``Bcc:`` and ``Date:`` lines (RFC 2047 words decoded,
  addresses as ``Name <addr>``), an ``Attachments:`` line naming every attachment with what became
  of it (``report.pdf (part 2)``, ``photo.heic (not indexed)``, ``bomb.docx (could not be read:
  reason)``), a blank line and the body (text/plain preferred, else the visible text of the HTML
  body, whose headings are kept one level down);
* then one part per attachment whose type we index (by its file name's suffix, as for files on
  disk), in the order of the message: the attachment's own pages joined by blank lines under a
  level-1 heading ``Attachment: <name>`` at offset 0, the attachment's headings one level down.
  Attached messages (``message/rfc822`` parts, ``.eml``/``.msg`` files, Outlook embedded
  messages) are read the same way, recursively, and become one part each.

Attachments are extracted by the extractor of their type from a private temporary folder (under
a fixed safe file name; the attachment's own name is only shown), which is removed right after.
An attachment that cannot be read does not fail the message; limits (:data:`MAX_DEPTH`,
:data:`MAX_ATTACHMENTS`, :data:`MAX_ATTACHMENT_BYTES`) bound the work a hostile message can cause,
and what they leave out is named in part 1 and logged.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import email.utils
import logging
import mimetypes
import re
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, MIMEPart
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.formats import file_kind
from desktop_rag.core.ingest.extract import extract
from desktop_rag.core.ingest.extract.text import decode_bytes
from desktop_rag.core.types import Document, Heading, Page

log = logging.getLogger(__name__)

#: Refuse message files larger than this many bytes.
MAX_MESSAGE_BYTES = 100 * 1024 * 1024
#: Attached messages are read down to this depth (the file itself is depth 0).
MAX_DEPTH = 3
#: At most this many attachments are read per file, nested messages' attachments included.
MAX_ATTACHMENTS = 50
#: At most this many attachment bytes (decoded) are read per file, nested messages included.
MAX_ATTACHMENT_BYTES = 200 * 1024 * 1024
#: Attachment names are shortened to this many characters (their suffix kept).
MAX_NAME_CHARS = 120
#: Headers of which a file must have at least one to be read as an email message.
_MAIL_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "received",
     "content-type", "sender", "reply-to", "return-path", "in-reply-to", "references",
     "delivered-to", "x-mailer", "user-agent", "thread-topic", "x-original-to"}
)  # fmt: skip
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "sender", "reply-to"})
_SURROGATE = re.compile("[\udc80-\udcff]")
_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,10}")
_WINDOWS_CODEPAGES = {65001: "utf-8", 20127: "ascii", 1200: "utf-16-le", 1201: "utf-16-be",
                      50220: "iso2022_jp", 50221: "iso2022_jp", 50222: "iso2022_jp",
                      51932: "euc_jp", 51949: "euc_kr", 52936: "hz", 54936: "gb18030",
                      20866: "koi8_r", 21866: "koi8_u", 10000: "mac_roman"}  # fmt: skip


# --- the parts a message is made of (common to .eml and .msg) ------------------------------------


@dataclass
class _Budget:
    """What the attachments of one file (nested messages included) have used of the limits."""

    attachments: int = 0
    bytes: int = 0
    ocr: bool = True  # scanned PDF attachments and images are recognised (Settings.ocr)


@dataclass
class _Attachment:
    """One attachment as found in a message, not yet read.

    ``load`` returns its bytes (``size`` of them when known beforehand); ``message`` reads it as
    an attached message at a given depth; ``note`` says why it is not read at all.
    """

    name: str
    load: Callable[[], bytes] | None = None
    size: int | None = None
    message: Callable[[int, _Budget], Document] | None = None
    note: str = ""


@dataclass
class _Message:
    """The fields of a message, decoded, ready to be laid out by :func:`_render`."""

    subject: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # ("From", "Ann <a@b.org>")
    body: str = ""
    body_headings: tuple[Heading, ...] = ()
    attachments: list[_Attachment] = field(default_factory=list)
    more: int = 0  # attachments past MAX_ATTACHMENTS that were not even looked at


def _render(msg: _Message, kind: str, fallback_title: str, depth: int, budget: _Budget) -> Document:
    """Lay out a message as parts: the message, then one part per attachment read."""
    listing: list[str] = []
    pages: list[Page] = []
    for att in msg.attachments:
        name = att.name
        if att.note:
            listing.append(f"{name} ({att.note})")
            continue
        try:
            page = _read_attachment(att, depth, budget, len(pages) + 2)
        except _NotRead as why:
            listing.append(f"{name} ({why})")
            continue
        except ExtractionError as exc:
            listing.append(f"{name} (could not be read: {_one_line(exc.message)})")
            continue
        except Exception as exc:  # a parser bug or a corrupt attachment must not fail the message
            log.info("attachment %r could not be read", name, exc_info=True)
            listing.append(
                f"{name} (could not be read: {_one_line(str(exc)) or type(exc).__name__})"
            )
            continue
        pages.append(page)
        listing.append(f"{name} (part {page.number})")
    if msg.more:
        listing.append(f"{msg.more} more not read (the limit is {MAX_ATTACHMENTS} attachments)")

    lines: list[str] = []
    headings: list[Heading] = []
    if msg.subject:
        headings.append(Heading(0, 1, msg.subject))
        lines.append(msg.subject)
    lines += [f"{label}: {value}" for label, value in msg.headers if value]
    if listing:
        lines.append("Attachments: " + ", ".join(listing))
    text = "\n".join(lines)
    if msg.body.strip():
        start = len(text) + 2 if text else 0
        text = f"{text}\n\n{msg.body}" if text else msg.body
        headings += [Heading(start + h.offset, h.level + 1, h.text) for h in msg.body_headings]
    first = Page(1, text, tuple(headings))
    return Document(title=msg.subject or fallback_title, pages=(first, *pages), kind=kind)


class _NotRead(Exception):
    """An attachment left out by a limit or by its type; the message is the note shown."""


def _read_attachment(att: _Attachment, depth: int, budget: _Budget, number: int) -> Page:
    """Read one attachment into one page (``number``), within the budget.

    Raises:
        _NotRead: a limit or the attachment's type leaves it out.
        ExtractionError: it could not be read (the reason is shown).
    """
    kind = file_kind(Path(att.name))
    if att.message is None and kind is None:
        raise _NotRead("not indexed")
    if budget.attachments >= MAX_ATTACHMENTS:
        log.info("attachment limit (%d) reached: %s not read", MAX_ATTACHMENTS, att.name)
        raise _NotRead(f"not read: the limit is {MAX_ATTACHMENTS} attachments")
    is_message = att.message is not None or kind in ("eml", "msg")
    if is_message and depth >= MAX_DEPTH:
        log.info("message nested more than %d deep: %s not read", MAX_DEPTH, att.name)
        raise _NotRead(f"not read: messages nested more than {MAX_DEPTH} deep")
    if att.size is not None and budget.bytes + att.size > MAX_ATTACHMENT_BYTES:
        log.info("attachment byte limit reached: %s not read", att.name)
        raise _NotRead(f"not read: attachments over {MAX_ATTACHMENT_BYTES // 2**20} MB in all")
    budget.attachments += 1
    if att.message is not None:
        doc = att.message(depth + 1, budget)
    else:
        assert att.load is not None
        data = att.load()
        budget.bytes += len(data)
        if budget.bytes > MAX_ATTACHMENT_BYTES:
            log.info("attachment byte limit reached: %s not read", att.name)
            raise _NotRead(f"not read: attachments over {MAX_ATTACHMENT_BYTES // 2**20} MB in all")
        if kind == "eml":
            doc = _eml_document(_parse_eml(data), att.name, depth + 1, budget)
        elif kind == "msg":
            doc = _msg_from_bytes(data, att.name, depth + 1, budget)
        else:
            doc = _extract_bytes(data, Path(att.name).suffix, budget.ocr)
    return _one_page(f"Attachment: {att.name}", doc, number)


def _extract_bytes(data: bytes, suffix: str, ocr: bool) -> Document:
    """Extract a file's bytes with the extractor of ``suffix`` (``ocr`` as for
    :func:`~desktop_rag.core.ingest.extract.extract`): written under a fixed safe name in a
    private temporary folder, removed afterwards."""
    suffix = suffix if _SAFE_SUFFIX.fullmatch(suffix) else ""
    with tempfile.TemporaryDirectory(prefix="desktop-rag-mail-", ignore_cleanup_errors=True) as d:
        path = Path(d) / f"attachment{suffix}"
        path.write_bytes(data)
        return extract(path, ocr=ocr)


def _one_page(title: str, doc: Document, number: int) -> Page:
    """``doc``'s pages as one page under a level-1 ``title`` heading, its headings one level down
    (a heading a PDF page carries over from the page before is not repeated)."""
    parts = [title]
    headings = [Heading(0, 1, title)]
    length = len(title)
    path: list[Heading] = []
    for page in doc.pages:
        text = page.text.rstrip()
        if not text:
            continue
        start = length + 2
        for h in page.headings:
            if h.offset > len(text):
                continue
            moved = Heading(start + h.offset, h.level + 1, h.text)
            if h.offset == 0 and any((p.level, p.text) == (moved.level, h.text) for p in path):
                continue  # carried over from the previous page
            while path and path[-1].level >= moved.level:
                path.pop()
            path.append(moved)
            headings.append(moved)
        parts.append(text)
        length = start + len(text)
    return Page(number, "\n\n".join(parts), tuple(headings))


def _clean_name(raw: str | None, index: int, content_type: str) -> str:
    """A safe display name for an attachment: printable characters of its base name only (no
    folders, no NUL or control characters), at most :data:`MAX_NAME_CHARS`; else
    ``attachment-N`` with the extension of its content type."""
    name = "".join(ch for ch in _unsurrogate(raw or "") if ch.isprintable())
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in {"", ".", ".."}:
        ext = (
            ".eml" if content_type == "message/rfc822" else mimetypes.guess_extension(content_type)
        )
        name = f"attachment-{index}{ext or ''}"
    if len(name) > MAX_NAME_CHARS:
        suffix = Path(name).suffix
        suffix = suffix if _SAFE_SUFFIX.fullmatch(suffix) else ""
        name = name[: MAX_NAME_CHARS - len(suffix) - 1] + "\u2026" + suffix
    return name


def _html_text(markup: str) -> tuple[str, tuple[Heading, ...]]:
    """The visible text of an HTML body and its headings (blank lines around it trimmed)."""
    from desktop_rag.core.ingest.extract.html import html_to_document

    page = html_to_document(markup, "").pages[0]
    lead = len(page.text) - len(page.text.lstrip("\n"))
    text = page.text.strip("\n")
    return text, tuple(Heading(h.offset - lead, h.level, h.text) for h in page.headings)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _unsurrogate(text: str, charset: str | None = None) -> str:
    """Text with raw 8-bit bytes (surrogate escapes, as the email parser keeps them) decoded:
    UTF-8 when valid, else ``charset`` (the message's), else Windows-1252, the usual one of
    unlabelled 8-bit headers (detection is unreliable on a few words)."""
    if not _SURROGATE.search(text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        codec = codecs.lookup(charset or "cp1252").name
    except LookupError:
        codec = "cp1252"
    return data.decode(codec if codec != "ascii" else "cp1252", errors="replace")


def _decode(data: bytes, charset: str | None) -> str:
    """Bytes as text in ``charset``; detected when it is missing, unknown or wrong (8-bit data
    declared ASCII); never fails."""
    if charset:
        try:
            codec = codecs.lookup(charset).name
        except LookupError:
            codec = ""
        if codec and not (codec == "ascii" and not data.isascii()):
            return data.decode(codec, errors="replace")
    try:
        return decode_bytes(data)
    except ExtractionError:
        return data.decode("utf-8", errors="replace")


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _address(name: str, addr: str) -> str:
    name, addr = _one_line(name).strip("'\" "), _one_line(addr)
    if name and addr and name.lower() != addr.lower():
        return f'"{name}" <{addr}>' if "," in name or ";" in name else f"{name} <{addr}>"
    return addr or name


# --- .eml ----------------------------------------------------------------------------------------


def extract_eml(path: Path, *, ocr: bool = True) -> Document:
    """A MIME email message (``.eml``, RFC 5322) as parts: the message, then its attachments (see
    the module docstring for the layout). The body is text/plain when there is one, else the
    visible text of text/html; bodies are decoded with their declared charset, detected when it
    is missing or wrong. A ``message/rfc822`` part or an attached ``.eml``/``.msg`` file is read
    as a nested message (down to :data:`MAX_DEPTH`). Images inside a ``multipart/related`` (the
    pictures of an HTML body) are not attachments and are left out.

    A file without any email header (From, To, Subject, Date, Message-ID, ...) is refused rather
    than indexed as text: it is not a message, and its parts would be meaningless.

    Raises:
        ExtractionError: larger than :data:`MAX_MESSAGE_BYTES`, or not an email message.
    """
    _check_size(path, "an email message")
    with path.open("rb") as f:
        msg = email.message_from_binary_file(f, _class=EmailMessage, policy=email.policy.default)
    return _eml_document(msg, path.stem, 0, _Budget(ocr=ocr))


def _check_size(path: Path, what: str) -> None:
    size = path.stat().st_size
    if size > MAX_MESSAGE_BYTES:
        raise ExtractionError(
            f"too large for {what} ({size / 1e6:,.0f} MB; the limit is "
            f"{MAX_MESSAGE_BYTES / 1e6:,.0f} MB)"
        )


def _parse_eml(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, _class=EmailMessage, policy=email.policy.default)


def _eml_document(msg: EmailMessage, fallback: str, depth: int, budget: _Budget) -> Document:
    """The document of a parsed message at ``depth`` (its attachments one deeper)."""
    if not any(k.lower() in _MAIL_HEADERS for k, _ in msg.raw_items()):
        raise ExtractionError("not an email message (no headers found)")
    out = _Message(subject=_header(msg, "subject"))
    out.headers = [(label, _header(msg, label.lower())) for label in ("From", "To", "Cc", "Bcc")]
    out.headers.append(("Date", _header(msg, "date")))
    body = msg.get_body(preferencelist=("plain", "html"))
    texts: list[str] = []
    if body is not None:
        text, out.body_headings = _text_of(body)
        texts.append(text)
    elif not msg.is_multipart() and msg.get_content_maintype() != "text":
        out.attachments.append(_eml_attachment(msg, 1))  # the whole message is one file
    index = len(out.attachments)
    for part in _eml_parts(msg, body):
        if part.get_content_maintype() == "text" and _is_inline_text(part):
            text, _ = _text_of(part)  # a second body part (text after an attachment, ...)
            texts.append(text)
            continue
        index += 1
        if len(out.attachments) >= MAX_ATTACHMENTS:
            out.more += 1
            continue
        out.attachments.append(_eml_attachment(part, index))
    out.body = "\n\n".join(t.strip("\n") for t in texts if t.strip())
    return _render(out, "eml", fallback, depth, budget)


def _is_inline_text(part: MIMEPart) -> bool:
    """A text/plain or text/html part shown inline, without a file name: more of the body."""
    return (
        part.get_content_subtype() in ("plain", "html")
        and not part.is_attachment()
        and not part.get_filename()
    )


def _eml_parts(container: MIMEPart, body: MIMEPart | None) -> Iterator[MIMEPart]:
    """The parts after the body, in message order: attachments and further text parts; nested
    multiparts opened (their own body first), pictures of a multipart/related body left out."""
    stack = [(container, _attachments(container, body))]
    while stack:
        parent, parts = stack[-1]
        part = next(parts, None)
        if part is None:
            stack.pop()
            continue
        if part is body:
            continue
        if part.get_content_maintype() == "multipart":
            if len(stack) < 20:  # deeper is not a real message
                inner = part.get_body(preferencelist=("plain", "html"))
                if inner is not None and inner is not body:
                    yield inner
                stack.append((part, _attachments(part, inner, body)))
            continue
        if parent.get_content_type() == "multipart/related" and not part.is_attachment():
            continue  # a picture or style sheet of the HTML body
        yield part


def _attachments(part: MIMEPart, *skip: MIMEPart | None) -> Iterator[MIMEPart]:
    for sub in part.iter_attachments():
        if isinstance(sub, MIMEPart) and not any(sub is k for k in skip):
            yield sub


def _eml_attachment(part: MIMEPart, index: int) -> _Attachment:
    ctype = part.get_content_type()
    raw_name = part.get_filename()
    if part.get_content_maintype() == "message" and ctype in ("message/rfc822", "message/global"):
        payload = part.get_payload()
        inner: EmailMessage | None = None
        if isinstance(payload, list) and payload and isinstance(payload[0], EmailMessage):
            inner = payload[0]
        if inner is None:  # an encoded message: parse its bytes
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                inner = _parse_eml(data)
        if inner is not None:
            if not raw_name:
                subject = _header(inner, "subject")
                raw_name = f"{subject[:80]}.eml" if subject else None
            name = _clean_name(raw_name, index, "message/rfc822")
            found = inner

            def read(depth: int, budget: _Budget) -> Document:
                return _eml_document(found, name, depth, budget)

            return _Attachment(name, message=read)
    name = _clean_name(raw_name, index, ctype)
    if part.is_multipart():  # message/delivery-status and the like
        return _Attachment(name, note="not indexed")

    def load() -> bytes:
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""

    return _Attachment(name, load=load)


def _text_of(part: MIMEPart) -> tuple[str, tuple[Heading, ...]]:
    """A text part's text (HTML as its visible text, with its headings)."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = str(part.get_payload()).encode("utf-8", "surrogateescape")
    text = _decode(data, part.get_content_charset())
    if part.get_content_subtype() == "html":
        return _html_text(text)
    text = _normalise(text)
    if str(part.get_param("format") or "").lower() == "flowed":
        text = _unflow(text, str(part.get_param("delsp") or "").lower() == "yes")
    return text, ()


def _unflow(text: str, delsp: bool) -> str:
    """Join the soft line breaks of format=flowed text (RFC 3676)."""
    out: list[str] = []
    joining = False
    for line in text.split("\n"):
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if joining:
            out[-1] += line
        else:
            out.append(line)
        joining = line.endswith(" ") and line != "-- "
        if joining and delsp:
            out[-1] = out[-1][:-1]
    return "\n".join(out)


def _header(msg: EmailMessage, name: str) -> str:
    """A header's value on one line: encoded words decoded, addresses as ``Name <addr>``."""
    raw = next((str(v) for k, v in msg.raw_items() if k.lower() == name), None)
    if raw is None:
        return ""
    if _SURROGATE.search(raw):  # raw 8-bit bytes (against the standard, but common)
        text = _one_line(_unsurrogate(raw, msg.get_content_charset()))
        if name in _ADDRESS_HEADERS:
            found = [_address(n, a) for n, a in email.utils.getaddresses([text]) if n or a]
            return ", ".join(found) or text
        return text
    try:
        value = msg[name]
        addresses = getattr(value, "addresses", None) if name in _ADDRESS_HEADERS else None
        if addresses:
            return ", ".join(_address(a.display_name, a.addr_spec) for a in addresses)
        return _one_line(_unsurrogate(str(value)))
    except Exception:  # a header the parser trips over: decode its words ourselves
        from email.header import decode_header, make_header

        try:
            return _one_line(str(make_header(decode_header(raw))))
        except Exception:
            return _one_line(raw)


# --- .msg ----------------------------------------------------------------------------------------

_PT_LONG = 0x0003
_PT_BOOLEAN = 0x000B
_PT_SYSTIME = 0x0040
_PROPS = "__properties_version1.0"


def extract_msg(path: Path, *, ocr: bool = True) -> Document:
    """An Outlook message (``.msg``, MS-OXMSG: an OLE compound file of MAPI properties) as parts:
    the message, then its attachments (see the module docstring for the layout).

    Read: subject, sender, recipients (To/Cc/Bcc from the recipient table, else the display
    lists), the submit or delivery time (UTC), the plain-text body (else the visible text of the
    HTML body; an RTF-only body is not read and part 1 says so), file attachments and embedded
    messages (recursively, down to :data:`MAX_DEPTH`). Hidden attachments (the pictures of an
    HTML body) are left out; OLE objects and attachments by reference are named, not read.

    Raises:
        ExtractionError: larger than :data:`MAX_MESSAGE_BYTES`, not an OLE compound file, corrupt,
            or an OLE file that holds no message (an old Office document renamed).
    """
    _check_size(path, "an Outlook message")
    import olefile

    if not olefile.isOleFile(str(path)):
        raise ExtractionError("not an Outlook .msg file (it is not an OLE compound file)")
    try:
        ole = olefile.OleFileIO(str(path))
    except Exception as exc:
        raise ExtractionError(f"not an Outlook .msg file (corrupt compound file: {exc})") from None
    with ole:
        return msg_document(ole, path.stem, ocr=ocr)


def _msg_from_bytes(data: bytes, fallback: str, depth: int, budget: _Budget) -> Document:
    import olefile

    if not olefile.isOleFile(data=data):
        raise ExtractionError("not an Outlook .msg file (it is not an OLE compound file)")
    try:
        ole = olefile.OleFileIO(data)
    except Exception as exc:
        raise ExtractionError(f"not an Outlook .msg file (corrupt compound file: {exc})") from None
    with ole:
        # Read fully inside the ``with``: nested readers need the file open.
        return _msg_document(_MsgReader(ole), (), fallback, depth, budget, 32)


def msg_document(ole: Any, fallback_title: str, *, ocr: bool = True) -> Document:
    """The document of an opened Outlook message (an :class:`olefile.OleFileIO`, or an object with
    its ``listdir``, ``openstream``, ``get_size`` and ``exists``); ``fallback_title`` is the title
    when the message has no subject. The seam :func:`extract_msg` reads files through.

    Raises:
        ExtractionError: the OLE file holds no message properties.
    """
    return _msg_document(_MsgReader(ole), (), fallback_title, 0, _Budget(ocr=ocr), 32)


class _MsgReader:
    """MAPI properties of a .msg file: ``__substg1.0_<ID><TYPE>`` streams and the fixed-size
    values of ``__properties_version1.0`` in each storage (``prefix``: the storage's path)."""

    def __init__(self, ole: Any) -> None:
        self.ole = ole
        self.paths: dict[tuple[str, ...], list[str]] = {}
        for p in ole.listdir(streams=True, storages=True):
            self.paths[tuple(s.lower() for s in p)] = list(p)

    def has(self, prefix: tuple[str, ...], name: str) -> bool:
        return (*prefix, name.lower()) in self.paths

    def children(self, prefix: tuple[str, ...], start: str) -> list[tuple[str, ...]]:
        n, start = len(prefix), start.lower()
        return sorted(k for k in self.paths if len(k) == n + 1 and k[:n] == prefix
                      and k[n].startswith(start))  # fmt: skip

    def read(self, prefix: tuple[str, ...], name: str) -> bytes | None:
        key = (*prefix, name.lower())
        if key not in self.paths:
            return None
        try:
            data: bytes = self.ole.openstream(self.paths[key]).read()
        except OSError:  # a storage, not a stream
            return None
        return data

    def size(self, prefix: tuple[str, ...], name: str) -> int:
        return int(self.ole.get_size(self.paths[(*prefix, name.lower())]))

    def props(self, prefix: tuple[str, ...], header: int) -> dict[int, tuple[int, bytes]]:
        """Property id -> (type, 8 value bytes) of the fixed-size properties of a storage
        (``header``: 32 bytes for a message, 24 for an embedded one, 8 for the others)."""
        data = self.read(prefix, _PROPS) or b""
        out: dict[int, tuple[int, bytes]] = {}
        for at in range(header, len(data) - 15, 16):
            ptype, pid = struct.unpack_from("<HH", data, at)
            out.setdefault(pid, (ptype, data[at + 8 : at + 16]))
        return out

    def string(self, prefix: tuple[str, ...], prop: str, codec: str | None) -> str:
        """A string property (``prop``: 4 hex digits): UTF-16 (001F) or 8-bit (001E, ``codec``)."""
        data = self.read(prefix, f"__substg1.0_{prop}001F")
        if data is not None:
            return data.decode("utf-16-le", errors="replace").replace("\x00", "")
        data = self.read(prefix, f"__substg1.0_{prop}001E")
        if data is not None:
            return _decode(data.replace(b"\x00", b""), codec)
        return ""


def _long(props: dict[int, tuple[int, bytes]], pid: int) -> int | None:
    found = props.get(pid)
    if found is None or found[0] not in (_PT_LONG, _PT_BOOLEAN):
        return None
    return int(struct.unpack_from("<I", found[1])[0])


def _systime(props: dict[int, tuple[int, bytes]], *pids: int) -> datetime | None:
    for pid in pids:
        found = props.get(pid)
        if found is None or found[0] != _PT_SYSTIME:
            continue
        ticks = struct.unpack_from("<Q", found[1])[0]  # 100 ns since 1601-01-01 UTC
        try:
            when = datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=ticks // 10)
        except OverflowError:
            continue
        if when.year > 1980:
            return when
    return None


def _codepage(number: int | None) -> str | None:
    if not number:
        return None
    name = _WINDOWS_CODEPAGES.get(number) or f"cp{number}"
    if 28591 <= number <= 28606:
        name = f"iso8859_{number - 28590}"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _msg_document(
    r: _MsgReader, prefix: tuple[str, ...], fallback: str, depth: int, budget: _Budget, header: int
) -> Document:
    if not r.children(prefix, "__substg1.0_"):
        raise ExtractionError(
            "not an Outlook .msg file (an OLE file without message properties: an old Office "
            "document?)"
        )
    props = r.props(prefix, header)
    codec = _codepage(_long(props, 0x3FFD)) or _codepage(_long(props, 0x3FDE))

    def s(p: tuple[str, ...], prop: str) -> str:
        return _one_line(r.string(p, prop, codec))

    out = _Message(subject=s(prefix, "0037"))
    sender_name = s(prefix, "0C1A") or s(prefix, "0042")
    sender_addr = next((a for prop in ("5D01", "0C1F", "5D02", "0065")
                        if "@" in (a := s(prefix, prop))), "")  # fmt: skip
    recipients: dict[int, list[str]] = {1: [], 2: [], 3: []}
    for rp in r.children(prefix, "__recip_version1.0_#"):
        rtype = _long(r.props(rp, 8), 0x0C15) or 1
        addr = next((a for prop in ("39FE", "3003") if "@" in (a := s(rp, prop))), "")
        entry = _address(s(rp, "3001"), addr)
        if entry and rtype in recipients:
            recipients[rtype].append(entry)
    when = _systime(props, 0x0039, 0x0E06)
    out.headers = [
        ("From", _address(sender_name, sender_addr)),
        ("To", ", ".join(recipients[1]) or s(prefix, "0E04")),
        ("Cc", ", ".join(recipients[2]) or s(prefix, "0E03")),
        ("Bcc", ", ".join(recipients[3]) or s(prefix, "0E02")),
        ("Date", email.utils.format_datetime(when) if when else ""),
    ]
    body = _normalise(r.string(prefix, "1000", codec))
    if body.strip():
        out.body = body.strip("\n")
    else:
        html = r.read(prefix, "__substg1.0_10130102")
        markup = _decode(html, _codepage(_long(props, 0x3FDE)) or codec) if html else ""
        markup = markup or r.string(prefix, "1013", codec)
        if markup.strip():
            out.body, out.body_headings = _html_text(markup)
        elif r.has(prefix, "__substg1.0_10090102"):
            out.body = "(the message body is in RTF only and was not read)"
    for index, ap in enumerate(r.children(prefix, "__attach_version1.0_#"), start=1):
        aprops = r.props(ap, 8)
        if _long(aprops, 0x7FFE):  # PR_ATTACHMENT_HIDDEN: a picture of the HTML body
            continue
        if len(out.attachments) >= MAX_ATTACHMENTS:
            out.more += 1
            continue
        out.attachments.append(_msg_attachment(r, ap, index, aprops, codec, s))
    return _render(out, "msg", fallback, depth, budget)


def _msg_attachment(
    r: _MsgReader,
    ap: tuple[str, ...],
    index: int,
    aprops: dict[int, tuple[int, bytes]],
    codec: str | None,
    s: Callable[[tuple[str, ...], str], str],
) -> _Attachment:
    raw_name = s(ap, "3707") or s(ap, "3704") or s(ap, "3001")
    inner = (*ap, "__substg1.0_3701000d")
    if inner in r.paths:
        if not r.has(inner, _PROPS) or _long(aprops, 0x3705) not in (None, 5):
            return _Attachment(
                _clean_name(raw_name, index, ""), note="an embedded object, not read"
            )
        subject = s(inner, "0037")
        name = raw_name or subject or "message"
        name = _clean_name(name if name.lower().endswith(".msg") else f"{name[:80]}.msg", index, "")

        def read(depth: int, budget: _Budget) -> Document:
            return _msg_document(r, inner, name, depth, budget, 24)

        return _Attachment(name, message=read)
    name = _clean_name(raw_name, index, s(ap, "370E").lower() or "application/octet-stream")
    data = "__substg1.0_37010102"
    if not r.has(ap, data):
        return _Attachment(name, note="a link to a file, not its content")
    return _Attachment(name, load=lambda: r.read(ap, data) or b"", size=r.size(ap, data))
