"""The chat widgets: the message input, the HTML of a conversation and the transcript view that
shows it incrementally (:class:`TranscriptView`)."""

from __future__ import annotations

import html
import re
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QTextBrowser, QWidget

from desktop_rag.core.answer_text import NOT_SHOWN
from desktop_rag.core.conversations import Message
from desktop_rag.core.text.citations import CITE_RE, label_of, marker_numbers


class ChatInput(QPlainTextEdit):
    """Enter sends (``submitted``), Shift+Enter adds a line."""

    submitted = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(event)


def _linkify(text: str, message_index: int, n_sources: int) -> str:
    """Escape ``text`` and turn ``[n]`` markers of given sources into ``cite:`` links."""

    def link(m: re.Match[str]) -> str:
        parts = []
        for num in marker_numbers(m.group(1)):
            if 1 <= num <= n_sources:
                parts.append(f'<a href="cite:{message_index}:{num}">[{num}]</a>')
            else:
                parts.append(f"[{num}]")
        return "".join(parts)

    return CITE_RE.sub(link, html.escape(text)).replace("\n", "<br>")


# Unsupported claims: a figure or name no given source holds, and a sentence none supports.
_CLAIM_STYLE = "background:#ffd9d9; color:#9b0000; text-decoration:underline"
_SENTENCE_STYLE = "background:#fff1c2"


def _marked(text: str, checks: list[dict[str, Any]], message_index: int, n_sources: int) -> str:
    """``text`` as HTML with citation links and its unsupported claims marked: figures and
    names on red with a "?" after them, sentences on yellow."""
    if not checks:
        return _linkify(text, message_index, n_sources)
    sentence = [False] * len(text)
    claim = [False] * len(text)
    ends: set[int] = set()
    for c in checks:
        if c.get("supported", True):
            continue
        a, b = max(0, int(c["start"])), min(len(text), int(c["end"]))
        target = sentence if c["kind"] == "sentence" else claim
        for i in range(a, b):
            target[i] = True
        if c["kind"] != "sentence":
            ends.add(b)
    out, i = [], 0
    while i < len(text):
        j = i
        while (
            j < len(text)
            and (sentence[j], claim[j]) == (sentence[i], claim[i])
            and (j == i or j not in ends)
        ):
            j += 1
        piece = _linkify(text[i:j], message_index, n_sources)
        if claim[i]:
            piece = f"<span style='{_CLAIM_STYLE}'>{piece}</span><sup style='color:#9b0000'>?</sup>"
        if sentence[i]:
            piece = f"<span style='{_SENTENCE_STYLE}'>{piece}</span>"
        out.append(piece)
        i = j
    return "".join(out)


def _evidence_html(evidence: list[dict[str, Any]], message_index: int) -> str:
    """The quoted evidence sentences, each a link to its highlighted passage."""
    rows = []
    for j, e in enumerate(evidence):
        label = html.escape(label_of(e))
        quote = html.escape(" ".join(str(e["text"]).split()))
        rows.append(
            f"<a href='evidence:{message_index}:{j}' style='color:#1d1d1d; text-decoration:none'>"
            f"“{quote}”</a> <a href='evidence:{message_index}:{j}'>[{e['n']}] {label}</a>"
        )
    return (
        "<table width='100%' cellpadding='6' style='margin:4px 0'><tr><td style='background:#f2f5f0;"
        " border-left:3px solid #5b8c51'><span style='color:#3f6b36; font-size:9pt'><b>From your "
        "documents</b></span><br>" + "<br>".join(rows) + "</td></tr></table>"
    )


def _note(checked: dict[str, Any]) -> str:
    """A line saying what the claim check found (empty when everything is supported)."""
    if checked.get("grounded") is False:
        return ""
    bad = [c for c in checked.get("checks") or [] if not c.get("supported")]
    if not bad:
        return ""
    claims = [c for c in bad if c["kind"] != "sentence"]
    parts = []
    if claims:
        parts.append(f"{len(claims)} figure{'s' if len(claims) != 1 else ''} or name"
                     f"{'s' if len(claims) != 1 else ''} <span style='{_CLAIM_STYLE}'>marked</span> "
                     "not found in the sources")  # fmt: skip
    sentences = len(bad) - len(claims)
    if sentences:
        parts.append(f"{sentences} sentence{'s' if sentences != 1 else ''} "
                     f"<span style='{_SENTENCE_STYLE}'>marked</span> no source supports")  # fmt: skip
    return "<br><span style='color:#9b0000; font-size:9pt'>Check: " + "; ".join(parts) + "</span>"


#: The transcript's base font size (points); the small print (sources, check notes) is 9 pt.
FONT_PT = 11.0

_THINKING = "<i>thinking…</i>"
_CURSOR = "▍"  # the end of the answer being written


def _text_html(text: str) -> str:
    """Plain ``text`` as HTML (escaped, newlines as line breaks)."""
    return html.escape(text).replace("\n", "<br>")


def _assistant_html(evidence_html: str, body: str) -> str:
    """An assistant message: "Assistant", the evidence block (may be empty) and the body, in
    one table. Every message is one top-level table so that it can be appended with
    ``QTextCursor.insertHtml`` and replaced alone: inserted HTML that begins with a paragraph
    merges it into the block at the cursor and loses its margins, a table keeps them."""
    # The 10 px above "Assistant" is the table's: a cell's first paragraph loses its top margin.
    return ("<table width='100%' cellpadding='0' cellspacing='0' style='margin-top:10px'><tr><td>"
            "<p style='margin:0 8px 2px 8px'><b>Assistant</b></p>"
            f"{evidence_html}<p style='margin:2px 8px 10px 8px'>{body}</p></td></tr></table>")  # fmt: skip


def message_html(index: int, message: Message) -> str:
    """HTML for message ``index`` of a conversation (its links name ``index``): one table."""
    m = message
    if m.role == "user":
        return ("<table width='100%' cellpadding='8' style='margin-top:10px'><tr><td "
                f"style='background:#e8eefc'><b>You</b><br>{_text_html(m.text)}</td></tr></table>")  # fmt: skip
    evidence = m.checked.get("evidence") or []
    failed = m.checked.get("grounded") is False
    if failed and evidence:
        body = f"<i>{html.escape(NOT_SHOWN)}</i>"
    else:
        # A failed answer's checks point into the model's text, which is not the text shown.
        checks = [] if failed else m.checked.get("checks") or []
        body = _marked(m.text, checks, index, len(m.sources))
    cited = [s for s in m.sources if s.get("cited")]
    foot = ""
    if m.sources:
        names = ", ".join(
            f"<a href='cite:{index}:{s['n']}'>[{s['n']}]</a>" for s in (cited or m.sources)
        )
        label = "Cited" if cited else "Sources"
        foot = f"<br><span style='color:#666; font-size:9pt'>{label}: {names}</span>"
    quotes = _evidence_html(evidence, index) if evidence else ""
    return _assistant_html(quotes, f"{body}{_note(m.checked)}{foot}")


def streaming_html(index: int, text: str, evidence: list[dict[str, Any]] | None = None) -> str:
    """HTML for the answer being written as message ``index``: its ``text`` so far ("thinking…"
    while empty) under the ``evidence`` found for it, and a cursor mark at its end."""
    quotes = _evidence_html(evidence, index) if evidence else ""
    return _assistant_html(quotes, f"{_text_html(text) or _THINKING}{_CURSOR}")


def render_conversation(
    messages: list[Message],
    streaming: str | None = None,
    streaming_evidence: list[dict[str, Any]] | None = None,
) -> str:
    """HTML for the whole transcript; ``streaming`` is the answer being written (shown last,
    under ``streaming_evidence``, the evidence items found for it). The reference that
    :class:`TranscriptView`'s incremental document equals (set into a document whose default
    font is :data:`FONT_PT` points)."""
    out = ["<html><body>"]
    out += [message_html(i, m) for i, m in enumerate(messages)]
    if streaming is not None:
        out.append(streaming_html(len(messages), streaming, streaming_evidence))
    out.append("</body></html>")
    return "".join(out)


class TranscriptView(QTextBrowser):
    """The transcript, kept up to date incrementally: a finished message is appended once, the
    answer being written is the last table of the document and the only part ever replaced,
    and its text grows by appending the pieces streamed (no re-render of what came before).

    Links (``cite:i:n``, ``evidence:i:j``) are reported by ``anchorClicked`` (links are not
    followed). The view follows the end of the transcript while it grows, unless the person
    scrolled up.
    """

    #: Within this many pixels of the bottom, the view counts as following the end.
    FOLLOW_SLACK_PX = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        font = self.font()
        font.setPointSizeF(FONT_PT)
        self.setFont(font)  # the document's default font: the base size of every message
        self._count = 0  # messages shown (finished ones)
        self._stream_start: int | None = None  # where the answer being written starts
        self._tail: QTextCursor | None = None  # just before its cursor mark (None: "thinking…")
        self._tail_format = QTextCharFormat()
        self._stream_text = ""
        self._stream_evidence: list[dict[str, Any]] = []

    @property
    def message_count(self) -> int:
        """How many finished messages the document shows."""
        return self._count

    @property
    def stream_position(self) -> int | None:
        """The document position where the answer being written starts (None: none is)."""
        return self._stream_start

    @property
    def streaming(self) -> bool:
        """Whether an answer being written is shown."""
        return self._stream_start is not None

    def following(self) -> bool:
        """Whether the view is at (or near) the end, so growth should keep it there."""
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - self.FOLLOW_SLACK_PX

    def scroll_to_end(self) -> None:
        """Show the end of the transcript."""
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _end_cursor(self) -> QTextCursor:
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        return cursor

    def clear_messages(self, placeholder: str = "") -> None:
        """Show nothing (or the HTML ``placeholder``, e.g. while a conversation loads)."""
        self.document().setHtml(f"<html><body>{placeholder}</body></html>")
        self._count = 0
        self._stream_start = self._tail = None
        self._stream_text, self._stream_evidence = "", []

    def append_messages(self, messages: list[Message], start: int) -> None:
        """Append ``messages``, numbered from ``start`` (= :attr:`message_count`), after the
        messages shown; an answer being written stays last."""
        if not messages:
            return
        follow = self.following()
        stream = self._stream_start is not None
        if stream:
            self._remove_stream()
        cursor = self._end_cursor()
        cursor.beginEditBlock()
        for k, m in enumerate(messages):
            cursor.insertHtml(message_html(start + k, m))
        cursor.endEditBlock()
        self._count = start + len(messages)
        if stream:
            self._insert_stream()
        if follow:
            self.scroll_to_end()

    def show_messages(self, messages: list[Message]) -> None:
        """Show exactly ``messages`` (a full render: another conversation was opened)."""
        self.clear_messages()
        self.append_messages(messages, 0)
        self.scroll_to_end()

    # -- the answer being written ------------------------------------------------------------
    def start_stream(self) -> None:
        """Show an answer being written ("thinking…") after the messages shown."""
        self._stream_text, self._stream_evidence = "", []
        if self._stream_start is not None:
            self._remove_stream()
        self._insert_stream()
        self.scroll_to_end()

    def set_stream_evidence(self, evidence: list[dict[str, Any]]) -> None:
        """Show ``evidence`` above the answer being written (re-renders that answer alone)."""
        if self._stream_start is None:
            return
        follow = self.following()
        self._stream_evidence = list(evidence)
        self._remove_stream()
        self._insert_stream()
        if follow:
            self.scroll_to_end()

    def append_stream_text(self, piece: str) -> None:
        """Add ``piece`` to the answer being written: inserted before its cursor mark, in the
        answer's own character format (the first piece replaces "thinking…")."""
        if self._stream_start is None or not piece:
            return
        follow = self.following()
        self._stream_text += piece
        if self._tail is None:
            self._remove_stream()
            self._insert_stream()
        else:
            # "\u2028" is the line separator that "<br>" becomes: the text reads as a render.
            self._tail.insertText(piece.replace("\n", "\u2028"), self._tail_format)
        if follow:
            self.scroll_to_end()

    def finish_stream(self, message: Message | None) -> None:
        """Replace the answer being written by the finished ``message`` (rendered once, with
        its links, marks and evidence) or, with None, remove it."""
        follow = self.following()
        if self._stream_start is not None:
            self._remove_stream()
        if message is not None:
            self.append_messages([message], self._count)
        if follow:
            self.scroll_to_end()

    def _insert_stream(self) -> None:
        cursor = self._end_cursor()
        self._stream_start = cursor.position()
        cursor.insertHtml(streaming_html(self._count, self._stream_text, self._stream_evidence))
        self._tail = None
        if self._stream_text:
            mark = self.document().find(_CURSOR, self._stream_start)
            if not mark.isNull():
                tail = QTextCursor(self.document())
                tail.setPosition(mark.selectionStart())
                self._tail = tail
                self._tail_format = mark.charFormat()  # the format the answer's text has

    def _remove_stream(self) -> None:
        assert self._stream_start is not None
        cursor = QTextCursor(self.document())
        cursor.setPosition(self._stream_start)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        self._stream_start = self._tail = None
