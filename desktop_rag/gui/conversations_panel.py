"""The saved conversations: the list, New chat, Export, and the conversation being shown.

The panel owns the :class:`ConversationStore` and the current conversation (its id and
messages); it saves every message and style change. Opening one or starting a new one is asked
for with ``open_requested`` / ``new_requested``: the chat decides (not while it answers).

No SQLite or file access runs on the GUI thread: the store is opened, read and written by jobs
that run one after another, in the order asked, on the task runner's :attr:`Pool.MISC` (one
worker drains the queue while it has jobs). The messages shown live in memory and change at
once; their saving follows. A conversation being opened arrives with ``loaded`` (a later open or
a new chat drops an earlier open's result).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QListView, QPushButton, QVBoxLayout, QWidget

from desktop_rag.core.conversations import ConversationStore, Message
from desktop_rag.core.types import CancelToken
from desktop_rag.gui.models import ConversationsModel, IdRole
from desktop_rag.gui.tasks import Pool, TaskRunner
from desktop_rag.gui.widgets import section


@dataclass
class ConversationTarget:
    """The conversation new messages go to: ``id`` is None until its first question has been
    saved (set by that job on the worker thread; the jobs after it read it there)."""

    id: int | None = None


@dataclass
class _Job:
    """A store job: ``run(store)`` on the worker, then ``done(result)`` on the GUI thread
    (or, when it raised, the error shown and ``failed(error)``); ``what`` names it in an error
    message ("Saving the conversation")."""

    run: Callable[[ConversationStore], Any]
    done: Callable[[Any], object] | None
    what: str
    failed: Callable[[BaseException], object] | None = None


class ConversationsPanel(QWidget):
    """The "Conversations" section; :attr:`conversation_id` and :attr:`messages` are the
    conversation shown (None and [] for a new chat, until its first question is saved).

    Signals: ``open_requested(id)`` and ``new_requested`` (a click), ``loaded(id, adapter,
    scale)`` (a conversation asked for with :meth:`open` is current now, its messages in
    :attr:`messages`), ``open_failed(id)`` (it could not be read: the error was shown, the
    current conversation did not change), ``exported(path)`` and ``saved`` (every job asked
    for has run).
    """

    open_requested = Signal(int)
    new_requested = Signal()
    loaded = Signal(int, object, float)
    open_failed = Signal(int)
    exported = Signal(str)
    saved = Signal()

    def __init__(self, path: Path, runner: TaskRunner, parent: QWidget | None = None) -> None:
        """``path``: the conversation database (``conversations.sqlite3``), opened by the first
        job; ``runner``: where the jobs run and their errors are shown."""
        super().__init__(parent)
        self.path = path
        self.runner = runner
        self.notifier = runner.notifier
        self.store: ConversationStore | None = None  # opened on the worker
        self.conversation_id: int | None = None
        self.messages: list[Message] = []
        self._target = ConversationTarget()
        self._open_seq = 0  # the latest open asked for; an older one's result is dropped
        self._queue: deque[_Job] = deque()
        self._lock = threading.Lock()  # guards _queue and _draining
        self._draining = False
        self.model = ConversationsModel()
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setWordWrap(True)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.clicked.connect(lambda idx: self.open_requested.emit(idx.data(IdRole)))
        new_btn = QPushButton("New chat")
        new_btn.clicked.connect(self.new_requested)
        export_btn = QPushButton("Export…")
        export_btn.clicked.connect(lambda: self.export())
        buttons = QHBoxLayout()
        buttons.addWidget(new_btn)
        buttons.addWidget(export_btn)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(section("Conversations"))
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)
        self.refresh()

    # -- the job queue -----------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """Whether jobs asked for have not all run yet."""
        with self._lock:
            return self._draining or bool(self._queue)

    def _submit(self, run: Callable[[ConversationStore], Any],
                done: Callable[[Any], object] | None = None,
                what: str = "Saving the conversation",
                failed: Callable[[BaseException], object] | None = None) -> None:  # fmt: skip
        """Queue ``run(store)``; start the worker that drains the queue unless it runs."""
        with self._lock:
            self._queue.append(_Job(run, done, what, failed))
            start = not self._draining
            self._draining = True
        if not start:
            return
        try:
            self.runner.submit(self._drain, "Saving the conversation", Pool.MISC,
                               on_yield=self._on_job_done, on_return=lambda _: self._on_drained(),
                               on_cancel=self._on_drained, on_error=lambda _: self._on_drained())  # fmt: skip
        except RuntimeError:  # the runner was shut down: close_store runs what is left
            with self._lock:
                self._draining = False

    def _open_store(self) -> ConversationStore:
        if self.store is None:
            self.store = ConversationStore(self.path)
        return self.store

    def _drain(self, cancel: CancelToken) -> Iterator[tuple[_Job, Any, BaseException | None]]:
        """On the worker: run the queued jobs in order, yielding ``(job, result, error)`` for
        each. Not cancelled midway: each job is a short write that must not be lost."""
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                job = self._queue.popleft()
            try:
                yield job, job.run(self._open_store()), None
            except Exception as exc:  # one failed job neither stops the others nor the app
                yield job, None, exc

    def _on_job_done(self, item: tuple[_Job, Any, BaseException | None]) -> None:
        job, result, error = item
        if error is not None:
            self.notifier.error(error, job.what)
            if job.failed is not None:
                job.failed(error)
        elif job.done is not None:
            job.done(result)

    def _on_drained(self) -> None:
        if not self.pending:
            self.saved.emit()

    # -- the list and the current conversation -----------------------------------------------
    def refresh(self) -> None:
        """Reload the conversation list (in the background)."""
        self._submit(lambda store: store.list(), self.model.set_items, "Listing the conversations")

    def start_new(self) -> None:
        """Show no conversation: the next question starts a new one (an open still loading is
        dropped)."""
        self._open_seq += 1
        self.conversation_id = None
        self.messages = []
        self._target = ConversationTarget()

    def open(self, conversation_id: int) -> None:
        """Load ``conversation_id`` in the background; ``loaded`` says when it is current
        (unless another open or a new chat came first)."""
        self._open_seq += 1
        seq = self._open_seq

        def run(store: ConversationStore) -> tuple[list[Message], tuple[str | None, float]]:
            return store.messages(conversation_id), store.style(conversation_id)

        def done(result: tuple[list[Message], tuple[str | None, float]]) -> None:
            if seq != self._open_seq:
                return  # stale: something else was asked for since
            messages, (adapter, scale) = result
            self.conversation_id = conversation_id
            self.messages = messages
            self._target = ConversationTarget(conversation_id)
            self.loaded.emit(conversation_id, adapter, scale)

        def failed(_: BaseException) -> None:
            if seq == self._open_seq:
                self.open_failed.emit(conversation_id)

        self._submit(run, done, "Opening the conversation", failed)

    def add_question(self, text: str, adapter: str | None, scale: float) -> None:
        """Add a question, saved (starting a conversation titled after it if none is current)
        with the style it is asked with."""
        message = Message("user", text)
        self.messages.append(message)
        target = self._target

        def run(store: ConversationStore) -> tuple[int, int]:
            if target.id is None:
                target.id = store.create(text[:80])
            store.set_style(target.id, adapter, scale)
            return target.id, store.add(target.id, message)

        def done(ids: tuple[int, int]) -> None:
            message.id = ids[1]
            if self._target is target:
                self.conversation_id = ids[0]
            self.refresh()

        self._submit(run, done)

    @property
    def target(self) -> ConversationTarget:
        """The conversation new messages go to now (pass it back to :meth:`add_exchange`)."""
        return self._target

    def is_current(self, target: ConversationTarget) -> bool:
        """Whether ``target`` (from :attr:`target`, earlier) is the conversation shown now."""
        return target is self._target or (target.id is not None and target.id == self._target.id)

    def add_exchange(self, target: ConversationTarget, question: str, message: Message) -> None:
        """Save ``question`` and its answer ``message`` to ``target``'s conversation, which is
        not the one shown (a summary that finished after the user moved on); a conversation
        that was never saved (an empty new chat) is created, titled after ``question``."""

        def run(store: ConversationStore) -> None:
            if target.id is None:
                target.id = store.create(question[:80])
            store.add(target.id, Message("user", question))
            message.id = store.add(target.id, message)

        self._submit(run, lambda _: self.refresh())

    def add_answer(self, message: Message) -> None:
        """Add an answer, saved to the current conversation (kept in memory when there is
        none)."""
        self.messages.append(message)
        target = self._target

        def run(store: ConversationStore) -> int | None:
            return None if target.id is None else store.add(target.id, message)

        def done(message_id: int | None) -> None:
            message.id = message_id
            self.refresh()

        self._submit(run, done)

    def save_style(self, adapter: str | None, scale: float) -> None:
        """Remember the style of the current conversation (none: nothing to do)."""
        target = self._target
        if target.id is None and not self.messages:
            return  # a new chat with no question yet: its first question saves its style

        def run(store: ConversationStore) -> None:
            if target.id is not None:
                store.set_style(target.id, adapter, scale)

        self._submit(run)

    def export(self, path: str | None = None) -> None:
        """Save the current conversation as Markdown, in the background (asks where when
        ``path`` is not given); ``exported(path)`` when written, the notifier shows a failure."""
        target = self._target
        if target.id is None and self.conversation_id is None:
            self.notifier.info("No conversation to export.", 4000)
            return
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export conversation", "conversation.md",
                                                  "Markdown (*.md)")  # fmt: skip
        if not path:
            return
        out = Path(path)

        def run(store: ConversationStore) -> None:
            if target.id is None:
                raise OSError("the conversation has not been saved")
            out.write_text(store.to_markdown(target.id), encoding="utf-8")

        def done(_: None) -> None:
            self.notifier.info(f"Saved {out}", 5000)
            self.exported.emit(str(out))

        self._submit(run, done, "Exporting the conversation")

    def close_store(self) -> None:
        """Run what is still queued (the runner is shut down: here, on this thread) and close
        the conversation database. Call only once the runner's workers have ended."""
        with self._lock:
            jobs, self._queue = list(self._queue), deque()
        for job in jobs:
            try:
                job.run(self._open_store())
            except Exception as exc:
                self.notifier.error(exc, job.what)
        if self.store is not None:
            self.store.close()
