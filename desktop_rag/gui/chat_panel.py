"""The chat: the transcript with the answer streaming into it, the question box, Send, Stop and
Copy answer. Questions run on the LLM pool. The transcript is incremental
(:class:`~desktop_rag.gui.chat.TranscriptView`): a finished message is rendered once, the pieces
of the answer being written are appended at most every 40 ms, and opening a long conversation
loads it off the GUI thread and renders it a batch at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from desktop_rag.core.answer_text import message_text
from desktop_rag.core.conversations import Message
from desktop_rag.core.engine import Engine
from desktop_rag.core.generate.owner import Priority
from desktop_rag.core.tasks.summarize import (
    Summary,
    SummaryProgress,
    summarize,
    summary_progress_text,
)
from desktop_rag.core.types import Answer, CancelToken, EvidenceFound, Hit
from desktop_rag.gui.chat import ChatInput, TranscriptView
from desktop_rag.gui.conversations_panel import ConversationsPanel, ConversationTarget
from desktop_rag.gui.style_bar import StyleBar
from desktop_rag.gui.tasks import Pool, TaskRunner
from desktop_rag.gui.workers import GeneratorWorker

#: The streamed text is added to the transcript at most this often (ms).
RENDER_MS = 40
#: Messages rendered per event-loop turn when a conversation is shown (bench/chat_render.py:
#: 10 checked answers and questions take about 10 ms with their layout and paint).
BATCH = 10
_OPENING = "<p style='margin:10px 8px; color:#666'><i>Opening the conversation…</i></p>"


class ChatPanel(QWidget):
    """Asks questions and shows the conversation held by a :class:`ConversationsPanel`, in the
    style chosen in a :class:`StyleBar` (the style bar itself is laid out by the window).

    Signals: ``answer_finished(answer)`` (None: failed), ``busy_changed`` (an answer started or
    ended), ``activated`` (the chat should be shown), ``sources_changed(list)`` (the sources of
    the answer shown), ``citation_clicked(sources, n)``, ``evidence_clicked(source)`` and
    ``conversation_shown(id)`` (an opened conversation is fully rendered).
    """

    answer_finished = Signal(object)
    busy_changed = Signal()
    activated = Signal()
    sources_changed = Signal(object)
    citation_clicked = Signal(object, int)
    evidence_clicked = Signal(object)
    conversation_shown = Signal(int)

    def __init__(self, engine: Engine, runner: TaskRunner, conversations: ConversationsPanel,
                 style_bar: StyleBar, searched: Callable[[], list[int] | None],
                 parent: QWidget | None = None) -> None:  # fmt: skip
        """``searched()`` gives the collections a question searches (None: all)."""
        super().__init__(parent)
        self.engine = engine
        self.runner = runner
        self.notifier = runner.notifier
        self._summary_worker: GeneratorWorker | None = None  # a summary written in the background
        # done, waiting for an answer to end: (question, summary, the conversation asked from)
        self._pending_summaries: list[tuple[str, Answer, ConversationTarget]] = []
        self.conversations = conversations
        self.style_bar = style_bar
        self._searched = searched
        self._worker: GeneratorWorker | None = None
        self._checking = False  # a question waits for the "anything indexed?" check
        self._opening: int | None = None  # the conversation being loaded or rendered
        self._show_seq = 0  # the latest full render asked for; older batches stop
        self._streaming: str | None = None
        self._streaming_evidence: list[dict[str, Any]] = []
        self._unshown = ""  # streamed text not in the transcript yet
        self._evidence_unshown = False
        self._last_answer: Answer | None = None
        style_bar.changed.connect(self._on_style_changed)
        conversations.loaded.connect(self._on_loaded)
        conversations.open_failed.connect(self._on_open_failed)

        self.transcript = TranscriptView()
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
        """Whether an answer or a summary is being written (the model is in use)."""
        return self._worker is not None or self._summary_worker is not None

    @property
    def worker(self) -> GeneratorWorker | None:
        """The worker writing the answer, if any."""
        return self._worker

    @property
    def opening(self) -> bool:
        """Whether a conversation is being loaded or rendered (no question is sent meanwhile)."""
        return self._opening is not None

    # -- asking ------------------------------------------------------------------------------
    def send(self) -> None:
        """Ask the question in the input box: first, off the GUI thread, whether anything is
        indexed (an SQLite count), then the question itself on the LLM pool."""
        text = self.input.toPlainText().strip()
        if not text or self._worker is not None or self._checking or self._opening is not None:
            return
        self._checking = True
        self.send_btn.setEnabled(False)
        store = self.engine.store

        def checked(count: int) -> None:
            self._checking = False
            self.send_btn.setEnabled(self._worker is None)
            if count == 0:
                self.notifier.info("Nothing is indexed yet: add a folder first.", 8000)
            else:
                self._ask(text)

        def failed(_: BaseException) -> None:
            self._checking = False
            self.send_btn.setEnabled(self._worker is None)

        self.runner.submit(lambda cancel: store.chunk_count(), "Checking the index", Pool.MISC,
                           on_return=checked, on_error=failed)  # fmt: skip

    def _ask(self, text: str) -> None:
        if self._worker is not None or self._opening is not None:
            return
        if self.input.toPlainText().strip() == text:
            self.input.clear()
        adapter, scale = self.style_bar.current_style()
        collections = self._searched()
        engine = self.engine
        self.start_answer(
            text,
            lambda cancel: engine.ask(text, collections=collections, cancel=cancel,
                                      adapter=adapter, adapter_scale=scale),
            adapter, scale,
        )  # fmt: skip

    def start_answer(self, question: str, work: Callable[[CancelToken], Iterator[object]],
                     adapter: str | None = None, scale: float = 1.0) -> None:  # fmt: skip
        """Add ``question`` to the conversation (saved with its style ``adapter``/``scale``)
        and stream the answer ``work(cancel)`` yields, as ``Engine.ask`` does: an
        :class:`EvidenceFound`, the answer's text in pieces (``str``), then the
        :class:`Answer`. Runs on the LLM pool; nothing happens while an answer is written."""
        if self._worker is not None:
            return
        self.conversations.add_question(question, adapter, scale)
        self._sync()
        self._streaming = ""
        self._streaming_evidence = []
        self._unshown, self._evidence_unshown = "", False
        self._last_answer = None
        self.transcript.start_stream()
        self.activated.emit()
        self.send_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        self._worker = self.runner.submit(
            work, "Answering", Pool.LLM, on_yield=self._on_item,
            on_return=lambda _: self._on_done(stopped=False),
            on_cancel=lambda: self._on_done(stopped=True), on_error=self._on_error,
        )  # fmt: skip
        self.busy_changed.emit()

    def summarize(
        self, title: str, target: str | None = None, sources: list[dict[str, Any]] | None = None
    ) -> None:
        """Summarise ``target`` (an indexed file or folder) or the passages ``sources`` (an
        answer's citation dicts) in the background (see
        :mod:`desktop_rag.core.tasks.summarize`): the chat stays free, and questions asked
        meanwhile go ahead of the summary's model calls (background priority at the model's
        owner). Progress shows in the status line and Stop ends it when no answer is being
        written. When done, "Summarise ``title``" and the summary (every sentence cited and
        checked) are added to the conversation it was asked from: shown, after any answer being
        written, when that conversation is still the one shown; else saved to it, with a note.
        One summary at a time."""
        if self._summary_worker is not None:
            self.notifier.info("A summary is being written already; Stop ends it.", 5000)
            return
        engine = self.engine
        hits = None
        if sources is not None:
            hits = [Hit(0, 0, str(s["file"]), s.get("page"), int(s.get("start", 0)),
                        int(s.get("end", 0)), str(s.get("text", "")), "", 0.0)
                    for s in sources]  # fmt: skip
        question = f"Summarise {title}"
        asked_in = self.conversations.target
        result: list[Answer] = []

        def work(cancel: CancelToken) -> Iterator[object]:
            return summarize(engine, target, hits=hits, cancel=cancel, priority=Priority.BACKGROUND)

        def on_item(item: object) -> None:
            if isinstance(item, SummaryProgress):
                self.notifier.info(f"Summarising: {summary_progress_text(item)}", 5000)
            elif isinstance(item, Summary):
                result.append(item.as_answer())

        def done(_: object = None) -> None:
            self._summary_worker = None
            self.busy_changed.emit()
            if result:
                self._pending_summaries.append((question, result[0], asked_in))
                self._show_summaries()
            else:
                self.notifier.info("The summary was stopped.", 5000)
                self.answer_finished.emit(None)

        def failed(_: BaseException) -> None:
            self._summary_worker = None
            self.busy_changed.emit()
            self.answer_finished.emit(None)

        self._summary_worker = self.runner.submit(
            work, "Summarising", Pool.BACKGROUND, on_yield=on_item, on_return=done,
            on_cancel=done, on_error=failed,
        )  # fmt: skip
        self.stop_btn.setEnabled(True)
        self.busy_changed.emit()
        self.notifier.info(f"Summarising {title}… (you can keep asking meanwhile)", 5000)

    def _show_summaries(self) -> None:
        """Add the finished summaries to the conversations they were asked from, unless an
        answer is being written or a conversation is being opened (then after it): the one
        shown gets them in its transcript, another one has them saved, with a note."""
        if self._worker is not None or self._opening is not None:
            return
        while self._pending_summaries:
            question, answer, target = self._pending_summaries.pop(0)
            if not self.conversations.is_current(target):
                self.conversations.add_exchange(target, question, Message.from_answer(answer))
                self.notifier.info(
                    f"{question}: done, saved to the conversation it was asked from", 10000
                )
                self.answer_finished.emit(answer)
                continue
            self.conversations.add_question(question, None, 1.0)
            self.conversations.add_answer(Message.from_answer(answer))
            self.sources_changed.emit(answer.to_json()["citations"])
            self._sync()
            cited = sum(c.cited for c in answer.citations)
            how = (
                "written by the model, checked" if answer.generated else "quoted from the documents"
            )
            self.notifier.info(f"Summary: {cited} passages cited, {how}", 10000)
            self.activated.emit()
            self.answer_finished.emit(answer)
        self.stop_btn.setEnabled(self._worker is not None)

    def _on_item(self, item: object) -> None:
        if isinstance(item, Answer):
            self._last_answer = item
            self.sources_changed.emit(item.to_json()["citations"])
        elif isinstance(item, EvidenceFound):
            self._streaming_evidence = [e.to_json() for e in item.evidence]
            self._evidence_unshown = True
        elif self._streaming is not None:
            self._streaming += str(item)
            self._unshown += str(item)

    def _on_done(self, stopped: bool) -> None:
        answer = self._last_answer
        msg = Message.from_answer(answer, stopped=stopped, streamed=self._streaming or "",
                                  streamed_evidence=self._streaming_evidence)  # fmt: skip
        self.conversations.add_answer(msg)
        self._finish(msg)
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
        self._show_summaries()  # a summary that finished meanwhile comes after the answer

    def _on_error(self, exc: BaseException) -> None:
        self._finish(None)
        self.answer_finished.emit(None)
        self._show_summaries()

    def _finish(self, message: Message | None) -> None:
        """The answer ended: ``message`` (None: failed, nothing to keep) replaces the answer
        being written in the transcript, rendered once with its links and marks."""
        self._worker = None
        self.busy_changed.emit()
        self._streaming = None
        self._streaming_evidence = []
        self._unshown, self._evidence_unshown = "", False
        self.send_btn.setEnabled(True)
        self.stop_btn.setEnabled(self._summary_worker is not None)
        self.transcript.finish_stream(None)
        self._sync()  # the answer (in the conversation now), rendered once

    def stop(self) -> None:
        """Stop the answer being written (Esc), or else the summary being written."""
        if self._worker is not None:
            self._worker.quit()
        elif self._summary_worker is not None:
            self._summary_worker.quit()

    # -- conversations -----------------------------------------------------------------------
    def new_chat(self) -> None:
        """Start a new conversation (not while an answer is being written)."""
        if self._worker is not None:
            return
        self._opening = None
        self.conversations.start_new()
        self.sources_changed.emit([])
        self.render_now()
        self.input.setFocus()

    def open_conversation(self, conversation_id: int) -> None:
        """Show a saved conversation, in its style (not while an answer is being written): a
        placeholder at once, the messages once loaded off the GUI thread
        (``conversation_shown`` when they are all rendered)."""
        if self._worker is not None:
            return
        self._opening = conversation_id
        self._show_seq += 1
        self.transcript.clear_messages(_OPENING)
        self.activated.emit()
        self.conversations.open(conversation_id)

    def _on_loaded(self, conversation_id: int, adapter: str | None, scale: float) -> None:
        if self._opening != conversation_id:
            return
        self.style_bar.set_style(adapter, scale)
        last = next((m for m in reversed(self.messages) if m.role == "assistant"), None)
        self.sources_changed.emit(last.sources if last else [])
        self._show_seq += 1
        seq = self._show_seq
        self.transcript.clear_messages()
        self._render_batch(seq, conversation_id)

    def _on_open_failed(self, conversation_id: int) -> None:
        if self._opening == conversation_id:  # the error is shown; the chat shown stays
            self._opening = None
            self.render_now()
            self._show_summaries()

    def _render_batch(self, seq: int, conversation_id: int) -> None:
        """Append the next :data:`BATCH` messages, then yield to the event loop."""
        if seq != self._show_seq:
            return  # another conversation (or a new chat) was asked for
        start = self.transcript.message_count
        self.transcript.append_messages(self.messages[start : start + BATCH], start)
        if self.transcript.message_count < len(self.messages):
            QTimer.singleShot(0, lambda: self._render_batch(seq, conversation_id))
            return
        self.transcript.scroll_to_end()
        self._opening = None
        self.conversation_shown.emit(conversation_id)
        self._show_summaries()  # one that finished while this conversation opened

    def _on_style_changed(self, adapter: str | None, scale: float) -> None:
        if self._worker is None:
            self.conversations.save_style(adapter, scale)

    # -- the transcript ----------------------------------------------------------------------
    def _sync(self) -> None:
        """Append the messages the transcript does not show yet."""
        start = self.transcript.message_count
        self.transcript.append_messages(self.messages[start:], start)

    def _flush_render(self) -> None:
        """Show what was streamed since the last tick: new evidence (the answer being written
        re-rendered alone), else the new text appended."""
        if not self.transcript.streaming:
            return
        if self._evidence_unshown:
            self._evidence_unshown = False
            self.transcript.set_stream_evidence(self._streaming_evidence)
        if self._unshown:
            piece, self._unshown = self._unshown, ""
            self.transcript.append_stream_text(piece)

    def render_now(self) -> None:
        """Render the whole transcript again (a full render; scrolls to its end)."""
        self._show_seq += 1
        self.transcript.show_messages(self.messages)
        if self._streaming is not None:
            self.transcript.start_stream()
            if self._streaming_evidence:
                self.transcript.set_stream_evidence(self._streaming_evidence)
            self.transcript.append_stream_text(self._streaming)
            self._unshown, self._evidence_unshown = "", False

    def _on_anchor(self, url: QUrl) -> None:
        parts = url.toString().split(":")
        if len(parts) != 3 or parts[0] not in ("cite", "evidence"):
            return
        try:
            msg_index, n = int(parts[1]), int(parts[2])
        except ValueError:
            return
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
        """Copy the last answer to the clipboard as the window shows it: its evidence, its
        marks and its sources (:func:`~desktop_rag.core.answer_text.message_text`)."""
        answer = next((m for m in reversed(self.messages) if m.role == "assistant"), None)
        if answer is None:
            return
        QGuiApplication.clipboard().setText(message_text(answer))
        self.notifier.info("Answer copied.", 3000)

    def shutdown(self) -> None:
        """Stop re-rendering (the window is closing)."""
        self._render_timer.stop()
        self._show_seq += 1
