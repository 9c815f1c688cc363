"""The main window: the panels laid out, the menus, and the signals between the panels.

Each panel is a widget with its own controller: :class:`LibraryPanel` (folders, indexing),
:class:`ConversationsPanel` (saved chats), :class:`ChatPanel` with its :class:`StyleBar`,
:class:`SourcesPanel` (sources and the page viewer) and :class:`ModelsPanel` (model chooser,
settings, model loading). All long work runs through one :class:`TaskRunner`, and every message
to the user goes through one :class:`Notifier`; the window never blocks on the work.

Closing: the first close cancels all work and says what it waits for ("Stopping indexing…") in
the status bar; a timer polls the task runner (the event loop keeps running) for up to
:data:`CLOSE_WAIT_MS`; then the window closes for real, and right after (on the next turn of the
event loop, or in :func:`desktop_rag.gui.app.run` once the loop ended) it shuts down: the engine
closed, the model's owner thread joined, the folder watcher stopped. The window is gone before
that teardown runs, so a slow one (saving a large vector index) freezes nothing one can see.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_rag.core.engine import Engine
from desktop_rag.gui.chat_panel import ChatPanel
from desktop_rag.gui.compare_dialog import CompareDialog
from desktop_rag.gui.conversations_panel import ConversationsPanel
from desktop_rag.gui.library_panel import SAMPLES, LibraryPanel
from desktop_rag.gui.models_panel import ModelsPanel
from desktop_rag.gui.server_dialog import ApiControl
from desktop_rag.gui.sources_panel import SourcesPanel
from desktop_rag.gui.style_bar import StyleBar
from desktop_rag.gui.tasks import Notifier, TaskRunner
from desktop_rag.gui.widgets import EmptyState

log = logging.getLogger(__name__)

#: How long a close waits for indexing and generation to stop (ms) before giving up on them.
CLOSE_WAIT_MS = 3000
#: How often the close path looks whether they stopped (ms).
CLOSE_POLL_MS = 20


class MainWindow(QMainWindow):
    """The desktop_rag window. Its signals let tests, benchmarks (and the window itself) follow
    the long work: ``ready`` once the models are loaded, ``indexing_finished(summary)`` (None:
    failed or stopped), ``answer_finished(answer)`` (None: failed) and ``closing`` when a close
    begins (the window then waits for the work to stop: see :meth:`closeEvent`)."""

    ready = Signal()
    indexing_finished = Signal(object)
    answer_finished = Signal(object)
    closing = Signal()

    def __init__(self, engine: Engine | None = None, *, watch: bool = True) -> None:
        super().__init__()
        self.engine = engine or Engine()
        self._closing = False  # shutdown() ran
        self._close_timer: QTimer | None = None  # polls while a close waits for the work
        self._close_started = 0.0
        self._may_close = False  # the close path is done: the next close event is accepted
        #: After :meth:`shutdown`: whether every worker thread ended and the engine was closed.
        self.closed_cleanly: bool | None = None
        self.setWindowTitle("desktop_rag")
        self.resize(1360, 820)
        self.setAcceptDrops(True)
        self.notifier = Notifier(self.statusBar(), self, log_dir=self.engine.paths.logs)
        self.runner = TaskRunner(self.notifier, self)

        self.library = LibraryPanel(self.engine, self.runner, watch=watch)
        self.conversations = ConversationsPanel(
            self.engine.paths.data / "conversations.sqlite3", self.runner
        )
        self.style_bar = StyleBar(self.engine.paths, self.runner)
        self.chat = ChatPanel(self.engine, self.runner, self.conversations, self.style_bar,
                              self.library.collections_model.searched_ids)  # fmt: skip
        self.sources = SourcesPanel(self.engine, self.runner)
        self.models = ModelsPanel(self.engine, self.runner)
        self.api = ApiControl(self.engine, self.runner, self)
        self.empty_state = EmptyState(SAMPLES.is_dir())
        self._layout()
        self.compare_dialog: CompareDialog | None = None
        self._menus()
        self._wire()
        self.library.refresh()
        QTimer.singleShot(0, self.models.load)

    def _layout(self) -> None:
        left = QWidget()
        column = QVBoxLayout(left)
        column.addWidget(self.library, 7)  # its two lists and the conversations' list: about 3:2:3
        column.addWidget(self.conversations, 4)
        self.chat_page = QWidget()
        page = QVBoxLayout(self.chat_page)
        page.addWidget(self.style_bar)
        page.addWidget(self.chat, 1)
        self.center = QStackedWidget()
        self.center.addWidget(self.empty_state)
        self.center.addWidget(self.chat_page)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.center)
        splitter.addWidget(self.sources)
        splitter.setSizes([290, 560, 610])
        self.setCentralWidget(splitter)
        tb = self.addToolBar("Main")
        tb.setMovable(False)
        tb.addWidget(self.models)
        tb.addAction(self.models.import_action)
        tb.addAction(self.models.settings_action)
        self.statusBar().addPermanentWidget(self.api.status_label)
        self.statusBar().addPermanentWidget(self.models.status_label)

    def open_compare(self) -> CompareDialog:
        """Show the Compare dialog (one, kept; its clicks open pages in the viewer)."""
        if self.compare_dialog is None:
            self.compare_dialog = CompareDialog(self.engine, self.runner, self)
            self.compare_dialog.open_source.connect(self.sources.open_source)
        self.compare_dialog.show()
        self.compare_dialog.raise_()
        return self.compare_dialog

    def _menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for text, slot, key in (("Add folder…", self.library.choose_folder, "Ctrl+O"),
                                ("Try the sample documents", self.library.try_samples, None),
                                ("Export conversation as Markdown…",
                                 lambda: self.conversations.export(), "Ctrl+E"),
                                ("Quit", self.close, "Ctrl+Q")):  # fmt: skip
            act = file_menu.addAction(text)
            act.triggered.connect(slot)
            if key:
                act.setShortcut(QKeySequence(key))
        chat_menu = self.menuBar().addMenu("&Chat")
        new_act = chat_menu.addAction("New chat")
        new_act.setShortcut(QKeySequence("Ctrl+N"))
        new_act.triggered.connect(self.chat.new_chat)
        chat_menu.addAction("Stop answer (Esc)").triggered.connect(self.chat.stop)
        chat_menu.addSeparator()
        chat_menu.addAction("Summarise the selected folder").triggered.connect(
            self.library.summarize_selected
        )
        compare_act = chat_menu.addAction("Compare two documents…")
        compare_act.setShortcut(QKeySequence("Ctrl+Shift+C"))
        compare_act.triggered.connect(self.open_compare)
        models_menu = self.menuBar().addMenu("&Models")
        models_menu.addAction(self.models.import_action)
        models_menu.addAction("Import LoRA adapter…").triggered.connect(
            lambda: self.style_bar.import_adapter()
        )
        models_menu.addAction(self.models.add_server_action)
        models_menu.addSeparator()
        models_menu.addAction(self.api.toggle_action)
        models_menu.addAction(self.api.copy_token_action)
        models_menu.addSeparator()
        models_menu.addAction(self.models.settings_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("Open log folder").triggered.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.engine.paths.logs)))
        )
        help_menu.addAction("About desktop_rag").triggered.connect(self._about)
        QShortcut(QKeySequence("Esc"), self).activated.connect(self.chat.stop)

    def _wire(self) -> None:
        library, chat, sources = self.library, self.chat, self.sources
        self.empty_state.choose.connect(library.choose_folder)
        self.empty_state.samples.connect(library.try_samples)
        library.folders_added.connect(self.show_chat)
        library.collections_changed.connect(
            lambda has: self.show_chat() if has or chat.messages else self.show_empty_state()
        )
        library.activity_changed.connect(self._share_cpu)
        library.indexing_finished.connect(self.indexing_finished)
        self.conversations.open_requested.connect(chat.open_conversation)
        self.conversations.new_requested.connect(chat.new_chat)
        chat.activated.connect(self.show_chat)
        chat.busy_changed.connect(self._share_cpu)
        chat.sources_changed.connect(sources.set_sources)
        chat.citation_clicked.connect(sources.show_citation)
        chat.evidence_clicked.connect(sources.open_source)
        chat.answer_finished.connect(self.answer_finished)
        library.summarize_requested.connect(
            lambda root: chat.summarize(f"the folder {Path(root).name}", target=root)
        )
        sources.summarize_document.connect(
            lambda path: chat.summarize(Path(path).name, target=path)
        )
        sources.summarize_sources.connect(
            lambda items: chat.summarize("the sources of this answer", sources=items)
        )
        self.models.ready.connect(self._on_ready)

    # -- the scripting surface (tests, benchmarks) -------------------------------------------
    @property
    def input(self) -> QPlainTextEdit:
        """The question box."""
        return self.chat.input

    def send(self) -> None:
        """Ask the question in the question box."""
        self.chat.send()

    def add_paths(self, paths: list[str]) -> None:
        """Index folders and files, as if dropped on the window."""
        self.library.add_paths(paths)

    # -- between the panels ------------------------------------------------------------------
    def show_chat(self) -> None:
        """Show the chat (rather than the empty state)."""
        self.center.setCurrentWidget(self.chat_page)

    def show_empty_state(self) -> None:
        """Show the drop area (nothing indexed, no conversation shown)."""
        self.center.setCurrentWidget(self.empty_state)

    def _on_ready(self) -> None:
        self.library.start_background()
        self.ready.emit()

    def _share_cpu(self) -> None:
        """Give the cores to whichever of indexing and answering runs (half each when both do)."""
        self.engine.share_cpu(indexing=self.library.indexing, answering=self.chat.busy)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.library.add_paths(paths)

    def _about(self) -> None:
        from desktop_rag import __version__

        QMessageBox.about(self, "About desktop_rag",
                          f"desktop_rag {__version__}<br>Offline document assistant.<br>Data: {self.engine.paths.data}"
                          f"<br>Log: {self.engine.paths.logs}")  # fmt: skip

    # -- shutdown ----------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = -1) -> bool:
        """Cancel all work, join the worker threads (waiting up to ``timeout_ms``; -1: as long as
        it takes), stop watching, close files (idempotent). Returns whether every worker thread
        ended (:meth:`TaskRunner.idle`); if one did not, the engine is left open for it."""
        if self._closing:
            return self.runner.idle(max(0, timeout_ms))
        self._closing = True
        self.closed_cleanly = self._shutdown(timeout_ms)
        return self.closed_cleanly

    def _shutdown(self, timeout_ms: int) -> bool:
        self.chat.shutdown()
        joined = self.runner.shutdown(timeout_ms)
        self.library.shutdown()
        if not joined:
            log.error("a worker thread still runs after %d ms: the engine is left open", timeout_ms)
            return False
        self.sources.shutdown()
        self.api.shutdown()  # before the engine closes: its requests use it
        self.engine.close(wait_background=False)  # a window closes now: stop an ONNX export
        self.conversations.close_store()
        return True

    def closeEvent(self, event: QCloseEvent) -> None:
        """The first close cancels all work and waits for it (up to :data:`CLOSE_WAIT_MS`, on
        a timer: the event loop keeps running), then shuts down and closes the window; closes
        asked for meanwhile are ignored."""
        if self._may_close or self._closing:
            super().closeEvent(event)
            if not self._closing:
                QTimer.singleShot(0, lambda: self.shutdown(timeout_ms=0))
            return
        event.ignore()
        if self._close_timer is None:
            self._begin_close()

    def _begin_close(self) -> None:
        self._close_started = time.monotonic()
        self.closing.emit()
        if self.library.worker is not None:
            what = "Stopping indexing…"
        elif self.chat.busy:
            what = "Stopping the answer…"
        else:
            what = "Closing…"
        self.notifier.info(what)
        self.chat.shutdown()
        self.library.stop_queue()
        self.runner.begin_shutdown()
        self._close_timer = QTimer(self)
        self._close_timer.setInterval(CLOSE_POLL_MS)
        self._close_timer.timeout.connect(self._poll_close)
        self._close_timer.start()
        self._poll_close()

    def _poll_close(self) -> None:
        waited_ms = (time.monotonic() - self._close_started) * 1000
        if not self.runner.idle(0) and waited_ms < CLOSE_WAIT_MS:
            return
        if self._close_timer is not None:
            self._close_timer.stop()
        if waited_ms >= CLOSE_WAIT_MS:
            log.warning("closing: work still running after %.0f ms: %s", waited_ms,
                        [w.name for w in self.runner.running])  # fmt: skip
        else:
            log.info("closing: the work stopped in %.0f ms", waited_ms)
        self._may_close = True
        self.close()
