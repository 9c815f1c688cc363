"""The chat widgets: the message input and the HTML rendering of a conversation."""

from __future__ import annotations

import html
import re
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit

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


def render_conversation(
    messages: list[Message],
    streaming: str | None = None,
    streaming_evidence: list[dict[str, Any]] | None = None,
) -> str:
    """HTML for the transcript; ``streaming`` is the answer being written (shown last, under
    ``streaming_evidence``, the evidence items found for it)."""
    out = ["<html><body style='font-size:11pt'>"]
    for i, m in enumerate(messages):
        if m.role == "user":
            out.append(
                "<table width='100%' cellpadding='8' style='margin-top:10px'><tr><td "
                f"style='background:#e8eefc'><b>You</b><br>{html.escape(m.text).replace(chr(10), '<br>')}"
                "</td></tr></table>"
            )
        else:
            evidence = m.checked.get("evidence") or []
            if m.checked.get("grounded") is False and evidence:
                body = ("<i>The model's answer did not match your documents, so it is not shown; "
                        "what they say is quoted above.</i>")  # fmt: skip
            else:
                body = _marked(m.text, m.checked.get("checks") or [], i, len(m.sources))
            cited = [s for s in m.sources if s.get("cited")]
            foot = ""
            if m.sources:
                names = ", ".join(
                    f"<a href='cite:{i}:{s['n']}'>[{s['n']}]</a>" for s in (cited or m.sources)
                )
                label = "Cited" if cited else "Sources"
                foot = f"<br><span style='color:#666; font-size:9pt'>{label}: {names}</span>"
            quotes = _evidence_html(evidence, i) if evidence else ""
            out.append(f"<p style='margin:10px 8px 2px 8px'><b>Assistant</b></p>{quotes}"
                       f"<p style='margin:2px 8px 10px 8px'>{body}{_note(m.checked)}{foot}</p>")  # fmt: skip
    if streaming is not None:
        quotes = _evidence_html(streaming_evidence, len(messages)) if streaming_evidence else ""
        text = html.escape(streaming).replace("\n", "<br>") or "<i>thinking…</i>"
        out.append(f"<p style='margin:10px 8px 2px 8px'><b>Assistant</b></p>{quotes}"
                   f"<p style='margin:2px 8px 10px 8px'>{text}▍</p>")  # fmt: skip
    out.append("</body></html>")
    return "".join(out)
