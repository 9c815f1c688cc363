"""The chat widgets: the message input and the HTML rendering of a conversation."""

from __future__ import annotations

import html
import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit

from desktop_rag.core.conversations import Message

_CITE = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


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
        for num in (int(x) for x in m.group(1).split(",")):
            if 1 <= num <= n_sources:
                parts.append(f'<a href="cite:{message_index}:{num}">[{num}]</a>')
            else:
                parts.append(f"[{num}]")
        return "".join(parts)

    return _CITE.sub(link, html.escape(text)).replace("\n", "<br>")


def render_conversation(messages: list[Message], streaming: str | None = None) -> str:
    """HTML for the transcript; ``streaming`` is the answer being written (shown last)."""
    out = ["<html><body style='font-size:11pt'>"]
    for i, m in enumerate(messages):
        if m.role == "user":
            out.append(
                "<table width='100%' cellpadding='8' style='margin-top:10px'><tr><td "
                f"style='background:#e8eefc'><b>You</b><br>{html.escape(m.text).replace(chr(10), '<br>')}"
                "</td></tr></table>"
            )
        else:
            body = _linkify(m.text, i, len(m.sources))
            cited = [s for s in m.sources if s.get("cited")]
            foot = ""
            if m.sources:
                names = ", ".join(
                    f"<a href='cite:{i}:{s['n']}'>[{s['n']}]</a>" for s in (cited or m.sources)
                )
                label = "Cited" if cited else "Sources"
                foot = f"<br><span style='color:#666; font-size:9pt'>{label}: {names}</span>"
            out.append(f"<p style='margin:10px 8px'><b>Assistant</b><br>{body}{foot}</p>")
    if streaming is not None:
        text = html.escape(streaming).replace("\n", "<br>") or "<i>thinking…</i>"
        out.append(f"<p style='margin:10px 8px'><b>Assistant</b><br>{text}▍</p>")
    out.append("</body></html>")
    return "".join(out)
