"""The chat: the transcript with the answer streaming into it, the question box, Send, Stop and
Copy answer. Questions run on the LLM pool; the transcript is re-rendered at most every 40 ms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTextBrowser, QVBoxLayout, QWidget

from desktop_rag.core.conversations import Message
from desktop_rag.core.engine import Engine
from desktop_rag.core.types import Answer, EvidenceFound
from desktop_rag.gui.chat import ChatInput, render_conversation
from desktop_rag.gui.conversations_panel import ConversationsPanel
from desktop_rag.gui.style_bar import StyleBar
from desktop_rag.gui.tasks import Pool, TaskRunner
from desktop_rag.gui.workers import GeneratorWorker

RENDER_MS = 40


class ChatPanel(QWidget):
    """Asks questions and shows the conversation held by a :class:`ConversationsPanel`, in the
    style chosen in a :class:`StyleBar` (the style bar itself is laid out by the window).

    Signals: ``answer_finished(answer)`` (None: failed), ``busy_changed`` (an answer started or
    ended), ``activated`` (the chat should be shown), ``sources_changed(list)`` (the sources of
    the answer shown), ``citation_clicked(sources, n)`` and ``evidence_clicked(source)``.
    """

    answer_finished = Signal(object)
    busy_changed = Signal()
    activated = Signal()
    sources_changed = Signal(object)
    citation_clicked = Signal(object, int)
    evidence_clicked = Signal(object)

    def __init__(self, engine: Engine, runner: TaskRunner, conversations: ConversationsPanel,
                 style_bar: StyleBar, searched: Callable[[], list[int] | None],
                 parent: QWidget | None = None) -> None:  # fmt: skip
        """``searched()`` gives the collections a question searches (None: all)."""
        super().__init__(parent)
        self.engine = engine
        self.runner = runner
        self.notifier = runner.notifier
        self.conversations = conversations
        self.style_bar = style_bar
        self._searched = searched
        self._worker: GeneratorWorker | None = None
        self._streaming: str | None = None
        self._streaming_evidence: list[dict[str, Any]] = []
        self._last_answer: Answer | None = None
        self._render_pending = False
        style_bar.changed.connect(self._on_style_changed)

        self.transcript = QTextBrowser()
        self.transcript.setOpenLinks(False)
        self.transcript.anchorClicked.connect(self._on_anchor)
        self.input = ChatInput()
        self.input.setPlaceholderText(
            "Ask about your documents… (Enter sends, Shift+Enter for a new line)"
        )
        self.input.setFixedHeight(80)
        self.input.submitted.connect(self.send)
        self.send_btn = QPushButton("Send")
        self.send_btn.clicked.connect(self.send)
        self.stop_btn = QPushButton("Stop")
        self.stop_btn.setEnabled(False)
        self.stop_btn.clicked.connect(self.stop)
        self.copy_btn = QPushButton("Copy answer")
        self.copy_btn.clicked.connect(self.copy_answer)
        side = QVBoxLayout()
        for b in (self.send_btn, self.stop_btn, self.copy_btn):
            side.addWidget(b)
        side.addStretch(1)
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addLayout(side)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.transcript, 1)
        layout.addLayout(input_row)

        self._render_timer = QTimer(self)
        self._render_timer.setInterval(RENDER_MS)
        self._render_timer.timeout.connect(self._flush_render)
        self._render_timer.start()

    @property
    def messages(self) -> list[Message]:
        """The messages of the conversation shown."""
        return self.conversations.messages

    @property
    def busy(self) -> bool:
        """Whether an answer is being written."""
        return self._worker is not None

    @property
    def worker(self) -> GeneratorWorker | None:
        """The worker writing the answer, if any."""
        return self._worker

    # -- asking ------------------------------------------------------------------------------
    def send(self) -> None:
        """Ask the question in the input box."""
        text = self.input.toPlainText().strip()
        if not text or self._worker is not None:
            return
        if self.engine.store.chunk_count() == 0:
            self.notifier.info("Nothing is indexed yet: add a folder first.", 8000)
            return
        self.input.clear()
        adapter, scale = self.style_bar.current_style()
        self.conversations.add_question(text, adapter, scale)
        self._streaming = ""
        self._streaming_evidence = []
        self._last_answer = None
        self.activated.emit()
        self.send_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        collections = self._searched()
        engine = self.engine
        self._worker = self.runner.submit(
            lambda cancel: engine.ask(text, collections=collections, cancel=cancel,
                                      adapter=adapter, adapter_scale=scale),
            "Answering", Pool.LLM, on_yield=self._on_item,
            on_return=lambda _: self._on_done(stopped=False),
            on_cancel=lambda: self._on_done(stopped=True), on_error=self._on_error,
        )  # fmt: skip
        self.busy_changed.emit()
        self._request_render()
        self.conversations.refresh()

    def _on_item(self, item: object) -> None:
        if isinstance(item, Answer):
            self._last_answer = item
            self.sources_changed.emit(item.to_json()["citations"])
        elif isinstance(item, EvidenceFound):
            self._streaming_evidence = [e.to_json() for e in item.evidence]
            self._request_render()
        elif self._streaming is not None:
            self._streaming += str(item)
            self._request_render()

    def _on_done(self, stopped: bool) -> None:
        answer = self._last_answer
        text = answer.text if answer is not None else (self._streaming or "")
        if stopped:
            text = (text + " [stopped]").strip()
        data = answer.to_json() if answer is not None else {}
        sources = data.get("citations", [])
        checked = {key: data[key] for key in ("evidence", "checks", "grounded") if key in data}
        if answer is None and self._streaming_evidence:
            checked = {"evidence": self._streaming_evidence}
        msg = Message("assistant", text, sources, checked=checked)  # type: ignore[arg-type]
        self.conversations.add_answer(msg)
        self._finish()
        if answer is not None:
            t = answer.timings
            style = (
                f" · style {answer.adapter} ×{answer.adapter_scale:.2f}" if answer.adapter else ""
            )
            warn = f" · Warning: {answer.warnings[0]}" if answer.warnings else ""
            self.notifier.info(
                f"Retrieval {t.retrieval_ms:.0f} ms · first token {t.ttft_s:.1f} s · "
                f"{t.tokens_per_s:.0f} tokens/s{style}{warn}",
                15000 if warn else 10000,
            )
        self.answer_finished.emit(answer)

    def _on_error(self, exc: BaseException) -> None:
        self._finish()
        self.answer_finished.emit(None)

    def _finish(self) -> None:
        self._worker = None
        self.busy_changed.emit()
        self._streaming = None
        self._streaming_evidence = []
        self.send_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)
        self.render_now()
        self.conversations.refresh()

    def stop(self) -> None:
        """Stop the answer being written (Esc)."""
        if self._worker is not None:
            self._worker.quit()

    # -- conversations -----------------------------------------------------------------------
    def new_chat(self) -> None:
        """Start a new conversation (not while an answer is being written)."""
        if self._worker is not None:
            return
        self.conversations.start_new()
        self.sources_changed.emit([])
        self.render_now()
        self.input.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        """Show a saved conversation, in its style (not while an answer is being written)."""
        if self._worker is not None:
            return
        self.style_bar.set_style(*self.conversations.load(conversation_id))
        last = next((m for m in reversed(self.messages) if m.role == "assistant"), None)
        self.sources_changed.emit(last.sources if last else [])
        self.activated.emit()
        self.render_now()

    def _on_style_changed(self, adapter: str | None, scale: float) -> None:
        if self._worker is None:
            self.conversations.save_style(adapter, scale)

    # -- the transcript ----------------------------------------------------------------------
    def _request_render(self) -> None:
        self._render_pending = True

    def _flush_render(self) -> None:
        if self._render_pending:
            self.render_now()

    def render_now(self) -> None:
        """Render the transcript (and scroll to its end)."""
        self._render_pending = False
        self.transcript.setHtml(
            render_conversation(self.messages, self._streaming, self._streaming_evidence)
        )
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _on_anchor(self, url: QUrl) -> None:
        parts = url.toString().split(":")
        if len(parts) != 3 or parts[0] not in ("cite", "evidence"):
            return
        msg_index, n = int(parts[1]), int(parts[2])
        if parts[0] == "evidence":
            self._open_evidence(msg_index, n)
        elif 0 <= msg_index < len(self.messages):
            self.citation_clicked.emit(self.messages[msg_index].sources, n)

    def _open_evidence(self, msg_index: int, j: int) -> None:
        """Open evidence sentence ``j`` of a message (``len(messages)``: the answer being
        written), the sentence itself highlighted."""
        if msg_index == len(self.messages):
            evidence = self._streaming_evidence
        elif 0 <= msg_index < len(self.messages):
            evidence = self.messages[msg_index].checked.get("evidence") or []
        else:
            return
        if 0 <= j < len(evidence):
            self.evidence_clicked.emit(evidence[j])

    def copy_answer(self) -> None:
        """Copy the last answer (with its source list) to the clipboard."""
        answer = next((m for m in reversed(self.messages) if m.role == "assistant"), None)
        if answer is None:
            return
        lines = []
        for e in answer.checked.get("evidence") or []:
            where = f", page {e['page']}" if e.get("page") else ""
            lines.append(
                f"“{' '.join(str(e['text']).split())}” [{e['n']}] ({Path(e['file']).name}{where})"
            )
        lines += [answer.text, ""]
        for s in answer.sources:
            where = f", page {s['page']}" if s.get("page") else ""
            lines.append(f"[{s['n']}] {Path(s['file']).name}{where}")
        QGuiApplication.clipboard().setText("\n".join(lines).strip())
        self.notifier.info("Answer copied.", 3000)

    def shutdown(self) -> None:
        """Stop re-rendering (the window is closing)."""
        self._render_timer.stop()
