"""The main window: library panel, chat, sources and page viewer.

All long work runs on thread pools through :class:`~desktop_rag.gui.workers.GeneratorWorker`:
one pool for indexing, one for everything that touches the LLM (so one thread at a time uses the
``Llama``), one for small jobs (model import). The window never blocks on them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QThreadPool, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_rag.core.conversations import ConversationStore, Message
from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import UserError
from desktop_rag.core.models import list_models
from desktop_rag.core.resources import resources_dir
from desktop_rag.core.types import Answer, EvidenceFound, FileResult, IndexSummary, Progress
from desktop_rag.gui.chat import ChatInput, render_conversation
from desktop_rag.gui.models import (
    CollectionsModel,
    ConversationsModel,
    IdRole,
    PathRole,
    ProblemsModel,
    SourcesModel,
)
from desktop_rag.gui.viewer import PageViewer
from desktop_rag.gui.watcher import FolderWatcher
from desktop_rag.gui.workers import GeneratorWorker

log = logging.getLogger(__name__)

SAMPLES = resources_dir() / "samples"


def _duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``1 h 20 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _section(title: str) -> QLabel:
    label = QLabel(f"<b>{title}</b>")
    label.setContentsMargins(0, 6, 0, 0)
    return label


class MainWindow(QMainWindow):
    """The desktop_rag window. Signals let tests (and the window itself) follow long work."""

    ready = Signal()
    indexing_finished = Signal(object)  # IndexSummary, or None if it failed or was cancelled
    answer_finished = Signal(object)  # Answer, or None if it failed

    def __init__(self, engine: Engine | None = None, *, watch: bool = True) -> None:
        super().__init__()
        self.engine = engine or Engine()
        self.conversations = ConversationStore(self.engine.paths.data / "conversations.sqlite3")
        self.index_pool = QThreadPool(self)
        self.index_pool.setMaxThreadCount(1)
        self.llm_pool = QThreadPool(self)
        self.llm_pool.setMaxThreadCount(1)
        self.misc_pool = QThreadPool(self)
        self.misc_pool.setMaxThreadCount(2)
        self._workers: set[GeneratorWorker] = set()
        self._index_worker: GeneratorWorker | None = None
        self._index_queue: list[str] = []
        self._index_started = 0.0
        self._index_initial_done = 0
        self._answer_worker: GeneratorWorker | None = None
        self._streaming: str | None = None
        self._streaming_evidence: list[dict[str, Any]] = []
        self._render_pending = False
        self._closing = False
        self.conversation_id: int | None = None
        self.messages: list[Message] = []
        self.watcher = FolderWatcher(self) if watch else None
        if self.watcher is not None:
            self.watcher.changed.connect(lambda root: self.start_index([root]))

        self.setWindowTitle("desktop_rag")
        self.resize(1360, 820)
        self.setAcceptDrops(True)
        self._build()
        self.refresh_collections()
        self.refresh_conversations()
        self._render_timer = QTimer(self)
        self._render_timer.setInterval(40)
        self._render_timer.timeout.connect(self._flush_render)
        self._render_timer.start()
        QTimer.singleShot(0, self._warm_up)

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        # Library panel
        self.collections_model = CollectionsModel()
        self.collections_view = QListView()
        self.collections_view.setModel(self.collections_model)
        self.collections_view.setWordWrap(True)
        self.collections_view.setSpacing(2)
        self.add_btn = QPushButton("Add folder…")
        self.reindex_btn = QPushButton("Re-index")
        self.pause_btn = QPushButton("Pause")
        self.remove_btn = QPushButton("Remove")
        self.add_btn.clicked.connect(self.choose_folder)
        self.reindex_btn.clicked.connect(self.reindex_selected)
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.remove_btn.clicked.connect(self.remove_selected)
        self.pause_btn.setEnabled(False)
        buttons = QHBoxLayout()
        for b in (self.add_btn, self.reindex_btn, self.pause_btn, self.remove_btn):
            buttons.addWidget(b)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.problems_model = ProblemsModel()
        self.problems_view = QListView()
        self.problems_view.setModel(self.problems_model)
        self.problems_view.setWordWrap(True)
        self.conversations_model = ConversationsModel()
        self.conversations_view = QListView()
        self.conversations_view.setModel(self.conversations_model)
        self.conversations_view.setWordWrap(True)
        self.conversations_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conversations_view.clicked.connect(
            lambda idx: self.open_conversation(idx.data(IdRole))
        )
        new_btn = QPushButton("New chat")
        new_btn.clicked.connect(self.new_chat)
        export_btn = QPushButton("Export…")
        export_btn.clicked.connect(self.export_conversation)
        conv_buttons = QHBoxLayout()
        conv_buttons.addWidget(new_btn)
        conv_buttons.addWidget(export_btn)

        library = QWidget()
        lib = QVBoxLayout(library)
        lib.addWidget(_section("Library"))
        lib.addWidget(self.collections_view, 3)
        lib.addLayout(buttons)
        lib.addWidget(self.progress)
        lib.addWidget(self.progress_label)
        lib.addWidget(_section("Not indexed"))
        lib.addWidget(self.problems_view, 2)
        lib.addWidget(_section("Conversations"))
        lib.addWidget(self.conversations_view, 3)
        lib.addLayout(conv_buttons)

        # Empty state
        empty = QFrame()
        empty.setObjectName("dropArea")
        empty.setStyleSheet(
            "#dropArea { border: 3px dashed #9aa7b8; border-radius: 16px; background: #f6f8fb; }"
        )
        el = QVBoxLayout(empty)
        el.addStretch(2)
        headline = QLabel("<h1>Drop a folder here, or choose one</h1>")
        headline.setStyleSheet("border: none")
        sub = QLabel(
            "PDF, Word, HTML, Markdown and text files are indexed on this computer.<br>"
            "Nothing leaves the machine. Ask questions and click the numbered sources to see the page."
        )
        sub.setStyleSheet("border: none; color: #445")
        for w in (headline, sub):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            el.addWidget(w)
        row = QHBoxLayout()
        row.addStretch(1)
        choose = QPushButton("Choose folder…")
        choose.clicked.connect(self.choose_folder)
        samples = QPushButton("Try the sample documents")
        samples.clicked.connect(self.try_samples)
        samples.setEnabled(SAMPLES.is_dir())
        for b in (choose, samples):
            b.setMinimumHeight(40)
            b.setMinimumWidth(200)
            row.addWidget(b)
        row.addStretch(1)
        el.addLayout(row)
        el.addStretch(3)
        self.empty_state = QWidget()
        eo = QVBoxLayout(self.empty_state)
        eo.setContentsMargins(30, 30, 30, 30)
        eo.addWidget(empty)

        # Chat
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
        self.stop_btn.clicked.connect(self.stop_generation)
        self.copy_btn = QPushButton("Copy answer")
        self.copy_btn.clicked.connect(self.copy_answer)
        side = QVBoxLayout()
        for b in (self.send_btn, self.stop_btn, self.copy_btn):
            side.addWidget(b)
        side.addStretch(1)
        input_row = QHBoxLayout()
        input_row.addWidget(self.input, 1)
        input_row.addLayout(side)
        # Style bar: a LoRA adapter per conversation and its strength (LoRA scale).
        self.style_combo = QComboBox()
        self.style_combo.setMinimumWidth(200)
        self.style_combo.setToolTip(
            "Answer style: a LoRA adapter changes how the model writes, not what it knows"
        )
        self.style_slider = QSlider(Qt.Orientation.Horizontal)
        self.style_slider.setRange(0, 150)  # LoRA scale x 100
        self.style_slider.setValue(100)
        self.style_slider.setFixedWidth(140)
        self.style_slider.setToolTip("Style strength (LoRA scale 0 to 1.5)")
        self.style_value = QLabel("1.00")
        self.style_value.setMinimumWidth(34)
        import_adapter_btn = QPushButton("Import adapter…")
        import_adapter_btn.clicked.connect(self.import_adapter)
        self._fill_adapters()
        self.style_combo.currentIndexChanged.connect(self._on_style_changed)
        self.style_slider.valueChanged.connect(self._on_style_changed)
        style_row = QHBoxLayout()
        style_row.addWidget(QLabel("Style:"))
        style_row.addWidget(self.style_combo)
        style_row.addWidget(QLabel("Strength:"))
        style_row.addWidget(self.style_slider)
        style_row.addWidget(self.style_value)
        style_row.addStretch(1)
        style_row.addWidget(import_adapter_btn)
        self._on_style_changed()
        chat = QWidget()
        cl = QVBoxLayout(chat)
        cl.addLayout(style_row)
        cl.addWidget(self.transcript, 1)
        cl.addLayout(input_row)

        self.center = QStackedWidget()
        self.center.addWidget(self.empty_state)
        self.center.addWidget(chat)
        self.chat_page = chat

        # Sources and viewer
        self.sources_model = SourcesModel()
        self.sources_view = QListView()
        self.sources_view.setModel(self.sources_model)
        self.sources_view.setWordWrap(True)
        self.sources_view.setSpacing(3)
        self.sources_view.clicked.connect(
            lambda idx: self.open_source(self.sources_model.items[idx.row()])
        )
        self.viewer = PageViewer()
        right = QSplitter()
        right.setOrientation(Qt.Orientation.Vertical)
        sources_box = QWidget()
        sb = QVBoxLayout(sources_box)
        sb.setContentsMargins(0, 0, 0, 0)
        sb.addWidget(_section("Sources"))
        sb.addWidget(self.sources_view)
        right.addWidget(sources_box)
        right.addWidget(self.viewer)
        right.setSizes([260, 560])

        splitter = QSplitter()
        splitter.addWidget(library)
        splitter.addWidget(self.center)
        splitter.addWidget(right)
        splitter.setSizes([290, 560, 610])
        self.setCentralWidget(splitter)

        # Toolbar and menus
        tb = self.addToolBar("Main")
        tb.setMovable(False)
        tb.addWidget(QLabel(" Model: "))
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(260)
        self._fill_models()
        self.model_combo.currentIndexChanged.connect(self._on_model_chosen)
        tb.addWidget(self.model_combo)
        import_action = QAction("Import GGUF model…", self)
        import_action.triggered.connect(self.import_model)
        tb.addAction(import_action)
        settings_action = QAction("Settings…", self)
        settings_action.triggered.connect(self.open_settings)
        tb.addAction(settings_action)

        file_menu = self.menuBar().addMenu("&File")
        for text, slot, key in (("Add folder…", self.choose_folder, "Ctrl+O"),
                                ("Try the sample documents", self.try_samples, None),
                                ("Export conversation as Markdown…", self.export_conversation, "Ctrl+E"),
                                ("Quit", self.close, "Ctrl+Q")):  # fmt: skip
            act = file_menu.addAction(text)
            act.triggered.connect(slot)
            if key:
                act.setShortcut(QKeySequence(key))
        chat_menu = self.menuBar().addMenu("&Chat")
        new_act = chat_menu.addAction("New chat")
        new_act.setShortcut(QKeySequence("Ctrl+N"))
        new_act.triggered.connect(self.new_chat)
        stop_act = chat_menu.addAction("Stop answer (Esc)")
        stop_act.triggered.connect(self.stop_generation)
        models_menu = self.menuBar().addMenu("&Models")
        models_menu.addAction(import_action)
        models_menu.addAction("Import LoRA adapter…").triggered.connect(
            lambda: self.import_adapter()
        )
        models_menu.addAction(settings_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("Open log folder").triggered.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.engine.paths.logs)))
        )
        help_menu.addAction("About desktop_rag").triggered.connect(self._about)
        QShortcut(QKeySequence("Esc"), self, activated=self.stop_generation)

        self.status_label = QLabel("Starting…")
        self.statusBar().addPermanentWidget(self.status_label)

    # -- helpers -----------------------------------------------------------------------------
    def _run(self, pool: QThreadPool, worker: GeneratorWorker) -> GeneratorWorker:
        self._workers.add(worker)
        worker.signals.finished.connect(lambda w=worker: self._workers.discard(w))
        pool.start(worker)
        return worker

    def show_error(self, exc: BaseException, what: str) -> None:
        """A user-facing error: the message in the status bar (details go to the log file)."""
        message = str(exc) if isinstance(exc, UserError) else f"{what} failed: {exc}"
        log.warning("%s: %s", what, exc)
        self.statusBar().showMessage(message.replace("\n", " — "), 15000)

    def _warm_up(self) -> None:
        """Load the models in the background, then pick up changes made while the app was closed."""
        self.status_label.setText("Loading models…")

        def load(cancel: Any) -> None:
            self.engine.embedder.load()
            _ = self.engine.vectors
            self.engine.prepare_llm()  # loads the LLM and caches the system prompt's evaluation

        w = GeneratorWorker(load, "loading models")
        w.signals.returned.connect(self._on_ready)
        w.signals.errored.connect(lambda e: (self.show_error(e, "Loading the models"),
                                             self.status_label.setText("Model error")))  # fmt: skip
        self._run(self.llm_pool, w)

    def _on_ready(self, _: object) -> None:
        self.status_label.setText(f"Ready · {self.engine.llm_model.name}")
        self.status_label.setToolTip("")
        warning = self.engine.thresholds().warning  # (the embedder was loaded by _warm_up)
        if warning:  # an embedding model without calibrated abstention thresholds
            self.status_label.setText(self.status_label.text() + " · ⚠ uncalibrated thresholds")
            self.status_label.setToolTip(warning[0].upper() + warning[1:] + ".")
            self.statusBar().showMessage(f"Warning: {warning}", 30000)
        roots = [c.root for c in self.collections_model.items]
        if roots:
            self.start_index(roots)
        if self.watcher is not None:
            for r in roots:
                self.watcher.watch(r)
        self.ready.emit()

    # -- library -----------------------------------------------------------------------------
    def refresh_collections(self) -> None:
        """Reload the collections (and the problem files) from the store."""
        self.collections_model.set_items(self.engine.store.collections())
        self.problems_model.set_items([
            FileResult(f.path, f.status, f.reason)  # type: ignore[arg-type]
            for f in self.engine.store.files() if f.status in ("failed", "skipped")
        ])  # fmt: skip
        has = bool(self.collections_model.items)
        self.center.setCurrentWidget(self.chat_page if has or self.messages else self.empty_state)
        self.reindex_btn.setEnabled(has)
        self.remove_btn.setEnabled(has and self._index_worker is None)

    def choose_folder(self) -> None:
        """Pick a folder with the system dialog and index it."""
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of documents")
        if folder:
            self.add_paths([folder])

    def try_samples(self) -> None:
        """Index the bundled sample documents."""
        self.add_paths([str(SAMPLES)])

    def add_paths(self, paths: list[str]) -> None:
        """Index dropped or chosen folders and files (the drop slot)."""
        if not paths:
            return
        self.center.setCurrentWidget(self.chat_page)
        self.start_index(paths)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.add_paths(paths)

    def start_index(self, paths: list[str]) -> None:
        """Index ``paths`` now, or after the run in progress."""
        if self._index_worker is not None:
            for p in paths:
                if p not in self._index_queue:
                    self._index_queue.append(p)
            return
        self._index_started = time.perf_counter()
        self._index_initial_done = -1
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.progress_label.setText("Scanning…")
        self.pause_btn.setEnabled(True)
        self.pause_btn.setText("Pause")
        self.remove_btn.setEnabled(False)
        w = GeneratorWorker(lambda cancel: self.engine.index(paths, cancel), "indexing")
        self._index_worker = w
        self._share_cpu()
        w.signals.yielded.connect(self._on_progress)
        w.signals.returned.connect(self._on_index_done)
        w.signals.errored.connect(
            lambda e: (self.show_error(e, "Indexing"), self._on_index_done(None))
        )
        w.signals.cancelled.connect(lambda: self._on_index_done(None))
        self._run(self.index_pool, w)

    def _on_progress(self, prog: Progress) -> None:
        if self._index_initial_done < 0:
            self._index_initial_done = prog.files_done
            self.refresh_collections()
        self.progress.setRange(0, max(1, prog.files_total))
        self.progress.setValue(prog.files_done)
        done = prog.files_done - self._index_initial_done
        left = prog.files_total - prog.files_done
        elapsed = time.perf_counter() - self._index_started
        rate = done / elapsed if elapsed > 0 and done else 0.0
        chunk_rate = prog.chunks_added / elapsed if elapsed > 0 else 0.0
        eta = f" · about {_duration(left / rate)} left" if rate > 0 and left else ""
        paused = (
            " · paused" if self._index_worker and self._index_worker.cancel_token.paused else ""
        )
        self.progress_label.setText(
            f"{prog.files_done} / {prog.files_total} files · {prog.chunks_added} chunks · "
            f"{chunk_rate:.1f} chunks/s{eta}{paused}"
            + (f"\n{prog.current}" if prog.current else "")
        )
        if prog.result is not None:
            self.problems_model.upsert(prog.result)
            if prog.result.status == "indexed":
                self.collections_model.set_items(self.engine.store.collections())

    def _on_index_done(self, summary: IndexSummary | None) -> None:
        self._index_worker = None
        self._share_cpu()
        self.progress.setVisible(False)
        self.pause_btn.setEnabled(False)
        if summary is not None:
            self.progress_label.setText(
                f"Indexed {summary.indexed} new or changed files ({summary.chunks_added} chunks) in "
                f"{summary.elapsed_s:.0f} s · {summary.unchanged} unchanged · {summary.removed} removed"
                + (f" · {len(summary.problems)} not indexed" if summary.problems else "")
            )
        else:
            self.progress_label.setText("Indexing stopped; what was indexed is kept.")
        self.refresh_collections()
        if self.watcher is not None:
            for c in self.collections_model.items:
                self.watcher.watch(c.root)
        self.indexing_finished.emit(summary)
        if self._index_queue and not self._closing:
            queued, self._index_queue = self._index_queue, []
            self.start_index(queued)

    def _share_cpu(self) -> None:
        """Give the cores to whichever of indexing and answering runs (half each when both do)."""
        w = self._index_worker
        indexing = w is not None and not w.cancel_token.paused
        self.engine.share_cpu(indexing=indexing, answering=self._answer_worker is not None)

    def toggle_pause(self) -> None:
        """Pause or resume the indexing run."""
        w = self._index_worker
        if w is None:
            return
        if w.cancel_token.paused:
            w.cancel_token.resume()
            self.pause_btn.setText("Pause")
            self._share_cpu()
        else:
            w.cancel_token.pause()
            self.pause_btn.setText("Resume")
            self._share_cpu()
            self.progress_label.setText(self.progress_label.text() + " · paused")

    def _selected_collection(self) -> tuple[int, str] | None:
        idx = self.collections_view.currentIndex()
        if not idx.isValid():
            if len(self.collections_model.items) == 1:
                c = self.collections_model.items[0]
                return c.id, c.root
            return None
        return idx.data(IdRole), idx.data(PathRole)

    def reindex_selected(self) -> None:
        """Re-index the selected collection (or all when none is selected)."""
        sel = self._selected_collection()
        self.start_index([sel[1]] if sel else [c.root for c in self.collections_model.items])

    def remove_selected(self) -> None:
        """Forget the selected collection (after confirmation); the folder is untouched."""
        sel = self._selected_collection()
        if sel is None or self._index_worker is not None:
            return
        answer = QMessageBox.question(self, "Remove folder",
                                      f"Remove {sel[1]} from the library?\nYour files are not touched.")  # fmt: skip
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_collection(sel[0])

    def remove_collection(self, collection_id: int) -> None:
        """Remove a collection from the index and stop watching it."""
        root = next((c.root for c in self.collections_model.items if c.id == collection_id), None)
        try:
            self.engine.remove_collection(collection_id)
        except UserError as exc:
            self.show_error(exc, "Removing the folder")
        if root and self.watcher is not None:
            self.watcher.unwatch(root)
        self.refresh_collections()

    # -- chat --------------------------------------------------------------------------------
    def send(self) -> None:
        """Ask the question in the input box."""
        text = self.input.toPlainText().strip()
        if not text or self._answer_worker is not None:
            return
        if self.engine.store.chunk_count() == 0:
            self.statusBar().showMessage("Nothing is indexed yet: add a folder first.", 8000)
            return
        self.input.clear()
        if self.conversation_id is None:
            self.conversation_id = self.conversations.create(text[:80])
        adapter, scale = self.current_style()
        self.conversations.set_style(self.conversation_id, adapter, scale)
        msg = Message("user", text)
        msg.id = self.conversations.add(self.conversation_id, msg)
        self.messages.append(msg)
        self._streaming = ""
        self._streaming_evidence = []
        self._last_answer: Answer | None = None
        self.center.setCurrentWidget(self.chat_page)
        self.send_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        collections = self.collections_model.searched_ids()
        w = GeneratorWorker(lambda cancel: self.engine.ask(text, collections=collections, cancel=cancel,
                                                           adapter=adapter, adapter_scale=scale),
                            "answering")  # fmt: skip
        w.signals.yielded.connect(self._on_answer_item)
        w.signals.returned.connect(lambda _: self._on_answer_done(stopped=False))
        w.signals.cancelled.connect(lambda: self._on_answer_done(stopped=True))
        w.signals.errored.connect(self._on_answer_error)
        self._answer_worker = w
        self._share_cpu()
        self._request_render()
        self._run(self.llm_pool, w)
        self.refresh_conversations()

    def _on_answer_item(self, item: object) -> None:
        if isinstance(item, Answer):
            self._last_answer = item
            self.sources_model.set_items(item.to_json()["citations"])  # type: ignore[arg-type]
        elif isinstance(item, EvidenceFound):
            self._streaming_evidence = [e.to_json() for e in item.evidence]
            self._request_render()
        elif self._streaming is not None:
            self._streaming += str(item)
            self._request_render()

    def _on_answer_done(self, stopped: bool) -> None:
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
        if self.conversation_id is not None:
            msg.id = self.conversations.add(self.conversation_id, msg)
        self.messages.append(msg)
        self._finish_answer()
        if answer is not None:
            t = answer.timings
            style = (
                f" · style {answer.adapter} ×{answer.adapter_scale:.2f}" if answer.adapter else ""
            )
            warn = f" · Warning: {answer.warnings[0]}" if answer.warnings else ""
            self.statusBar().showMessage(
                f"Retrieval {t.retrieval_ms:.0f} ms · first token {t.ttft_s:.1f} s · "
                f"{t.tokens_per_s:.0f} tokens/s{style}{warn}",
                15000 if warn else 10000,
            )
        self.answer_finished.emit(answer)

    def _on_answer_error(self, exc: BaseException) -> None:
        self.show_error(exc, "Answering")
        self._finish_answer()
        self.answer_finished.emit(None)

    def _finish_answer(self) -> None:
        self._answer_worker = None
        self._share_cpu()
        self._streaming = None
        self._streaming_evidence = []
        self.send_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)
        self._render_now()
        self.refresh_conversations()

    def stop_generation(self) -> None:
        """Stop the answer being written (Esc)."""
        if self._answer_worker is not None:
            self._answer_worker.quit()

    def _request_render(self) -> None:
        self._render_pending = True

    def _flush_render(self) -> None:
        if self._render_pending:
            self._render_now()

    def _render_now(self) -> None:
        self._render_pending = False
        self.transcript.setHtml(
            render_conversation(self.messages, self._streaming, self._streaming_evidence)
        )
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _on_anchor(self, url: QUrl) -> None:
        parts = url.toString().split(":")
        if len(parts) == 3 and parts[0] == "evidence":
            self._open_evidence(int(parts[1]), int(parts[2]))
            return
        if len(parts) != 3 or parts[0] != "cite":
            return
        msg_index, n = int(parts[1]), int(parts[2])
        if not 0 <= msg_index < len(self.messages):
            return
        sources = self.messages[msg_index].sources
        self.sources_model.set_items(sources)
        source = next((s for s in sources if s["n"] == n), None)
        if source is not None:
            self.sources_view.setCurrentIndex(self.sources_model.index(n - 1))
            self.open_source(source)

    def _open_evidence(self, msg_index: int, j: int) -> None:
        """Open evidence sentence ``j`` of a message (``len(messages)``: the answer being
        written) in the viewer, the sentence itself highlighted."""
        if msg_index == len(self.messages):
            evidence = self._streaming_evidence
        elif 0 <= msg_index < len(self.messages):
            evidence = self.messages[msg_index].checked.get("evidence") or []
        else:
            return
        if 0 <= j < len(evidence):
            self.open_source(evidence[j])

    def open_source(self, source: dict[str, Any]) -> None:
        """Show a cited passage in the page viewer."""
        path = Path(source["file"])
        if not path.exists():
            self.statusBar().showMessage(f"{path} no longer exists.", 8000)
            return
        if path.suffix.lower() == ".pdf" and source.get("page"):
            self.viewer.show_pdf(path, int(source["page"]), source["text"])
            return
        row = self.engine.store.file_by_path(str(path))
        text = self.engine.store.page_text(row.id, source.get("page")) if row else None
        if text is None:
            self.statusBar().showMessage(f"{path.name} is not indexed any more.", 8000)
            return
        self.viewer.show_text(path, text, int(source.get("start", 0)), int(source.get("end", 0)))

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
        self.statusBar().showMessage("Answer copied.", 3000)

    def new_chat(self) -> None:
        """Start a new conversation (Ctrl+N)."""
        if self._answer_worker is not None:
            return
        self.conversation_id = None
        self.messages = []
        self.sources_model.set_items([])
        self._render_now()
        self.input.setFocus()

    def refresh_conversations(self) -> None:
        """Reload the conversation list."""
        self.conversations_model.set_items(self.conversations.list())

    def open_conversation(self, conversation_id: int) -> None:
        """Show a saved conversation."""
        if self._answer_worker is not None:
            return
        self.conversation_id = conversation_id
        self.messages = self.conversations.messages(conversation_id)
        self.set_style(*self.conversations.style(conversation_id))
        last = next((m for m in reversed(self.messages) if m.role == "assistant"), None)
        self.sources_model.set_items(last.sources if last else [])
        self.center.setCurrentWidget(self.chat_page)
        self._render_now()

    def export_conversation(self, path: str | None = None) -> None:
        """Save the current conversation as Markdown."""
        if self.conversation_id is None:
            self.statusBar().showMessage("No conversation to export.", 4000)
            return
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export conversation", "conversation.md",
                                                  "Markdown (*.md)")  # fmt: skip
        if path:
            Path(path).write_text(
                self.conversations.to_markdown(self.conversation_id), encoding="utf-8"
            )
            self.statusBar().showMessage(f"Saved {path}", 5000)

    # -- answer style (LoRA adapters) --------------------------------------------------------
    def _fill_adapters(self, select: str | None = None) -> None:
        from desktop_rag.core.generate.adapters import list_adapters

        current = select if select is not None else self.style_combo.currentData()
        self.style_combo.blockSignals(True)
        self.style_combo.clear()
        self.style_combo.addItem("None (base model)", None)
        for a in list_adapters(self.engine.paths):
            self.style_combo.addItem(a.name, a.name)
            self.style_combo.setItemData(
                self.style_combo.count() - 1,
                f"{a.description or a.name}\n{a.base_architecture}, rank {a.rank}, "
                f"{a.bytes / 1e6:.1f} MB, {'bundled' if a.bundled else 'imported'}",
                Qt.ItemDataRole.ToolTipRole,
            )
        idx = self.style_combo.findData(current) if current else 0
        self.style_combo.setCurrentIndex(max(0, idx))
        self.style_combo.blockSignals(False)

    def current_style(self) -> tuple[str | None, float]:
        """The chosen style adapter (None for the base model) and its LoRA scale."""
        return self.style_combo.currentData(), self.style_slider.value() / 100.0

    def set_style(self, adapter: str | None, scale: float) -> None:
        """Show ``adapter`` (if still available) at ``scale`` in the style bar."""
        idx = self.style_combo.findData(adapter) if adapter else 0
        self.style_combo.setCurrentIndex(max(0, idx))
        self.style_slider.setValue(round(scale * 100))
        self._on_style_changed()

    def _on_style_changed(self, *_: object) -> None:
        adapter, scale = self.current_style()
        self.style_slider.setEnabled(adapter is not None)
        self.style_value.setEnabled(adapter is not None)
        self.style_value.setText(f"{scale:.2f}")
        if self.conversation_id is not None and self._answer_worker is None:
            self.conversations.set_style(self.conversation_id, adapter, scale)

    def import_adapter(self, path: str | None = None) -> None:
        """Import a GGUF LoRA adapter into the adapters folder (validated first)."""
        if not path:
            path, _ = QFileDialog.getOpenFileName(
                self, "Import LoRA adapter", "", "GGUF LoRA adapters (*.gguf)"
            )
        if not path:
            return
        from desktop_rag.core.generate.adapters import import_adapter

        w = GeneratorWorker(lambda cancel: import_adapter(Path(path), self.engine.paths),
                            "importing an adapter")  # fmt: skip
        w.signals.returned.connect(self._on_adapter_imported)
        w.signals.errored.connect(lambda e: (self.show_error(e, "Importing the adapter"),
                                             QMessageBox.warning(self, "Import LoRA adapter", str(e))))  # fmt: skip
        self._run(self.misc_pool, w)

    def _on_adapter_imported(self, info: Any) -> None:
        self._fill_adapters(select=info.name)
        self._on_style_changed()
        self.statusBar().showMessage(
            f"Imported the adapter {info.name} ({info.base_architecture}, rank {info.rank}); "
            "it is now the style of this chat.",
            8000,
        )

    # -- models and settings -----------------------------------------------------------------
    def _fill_models(self) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        current = self.engine.settings.llm_model
        for m in list_models():
            if m.kind != "llm":
                continue
            label = f"{m.name} ({m.bytes / 1e6:.0f} MB{', bundled' if m.bundled else ''})"
            self.model_combo.addItem(label, None if m.bundled else m.name)
            if (current is None and m.bundled) or current == m.name:
                self.model_combo.setCurrentIndex(self.model_combo.count() - 1)
        self.model_combo.blockSignals(False)

    def _on_model_chosen(self, index: int) -> None:
        name = self.model_combo.itemData(index)
        self.status_label.setText("Loading model…")

        def switch(cancel: Any) -> None:
            self.engine.set_llm_model(name)
            self.engine.prepare_llm()

        w = GeneratorWorker(switch, "switching model")
        w.signals.returned.connect(lambda _: (self.status_label.setText(f"Ready · {self.engine.llm_model.name}"),
                                              self._save_settings()))  # fmt: skip
        w.signals.errored.connect(lambda e: (self.show_error(e, "Loading the model"),
                                             self.status_label.setText("Model error")))  # fmt: skip
        self._run(self.llm_pool, w)

    def import_model(self, path: str | None = None) -> None:
        """Import a GGUF model file into the models folder (validated; nothing is downloaded)."""
        if not path:
            path, _ = QFileDialog.getOpenFileName(
                self, "Import GGUF model", "", "GGUF models (*.gguf)"
            )
        if not path:
            return
        from desktop_rag.core.generate.gguf import import_model

        self.statusBar().showMessage(f"Importing {Path(path).name}…")
        w = GeneratorWorker(lambda cancel: import_model(Path(path)), "importing a model")
        w.signals.returned.connect(self._on_imported)
        w.signals.errored.connect(lambda e: (self.show_error(e, "Importing the model"),
                                             QMessageBox.warning(self, "Import GGUF model", str(e))))  # fmt: skip
        self._run(self.misc_pool, w)

    def _on_imported(self, info: Any) -> None:
        self._fill_models()
        ctx = f"{info.context_length:,} tokens" if info.context_length else "unknown"
        self.statusBar().showMessage(f"Imported {info.path.name}", 8000)
        QMessageBox.information(
            self, "Model imported",
            f"<b>{info.name}</b><br>Architecture: {info.architecture}<br>Parameters: {info.parameters_label}"
            f"<br>Quantization: {info.quantization}<br>Context length: {ctx}<br>Size: {info.bytes / 1e6:.0f} MB"
            "<br><br>Choose it in the Model list to use it.",
        )  # fmt: skip

    def open_settings(self) -> None:
        """The settings dialog."""
        from desktop_rag.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.engine.settings, self)
        if dialog.exec():
            old_ctx = self.engine.settings.context_size
            dialog.apply()
            self._save_settings()
            if self.engine.settings.context_size != old_ctx:
                self._on_model_chosen(self.model_combo.currentIndex())  # reload in the background

    def _save_settings(self) -> None:
        try:
            self.engine.settings.save(self.engine.paths.settings_file)
        except OSError as exc:
            self.show_error(exc, "Saving the settings")

    def _about(self) -> None:
        from desktop_rag import __version__

        QMessageBox.about(self, "About desktop_rag",
                          f"desktop_rag {__version__}<br>Offline document assistant.<br>Data: {self.engine.paths.data}"
                          f"<br>Log: {self.engine.paths.logs}")  # fmt: skip

    # -- shutdown ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Cancel all work, wait for the threads, stop watching, close files (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self._render_timer.stop()
        for w in list(self._workers):
            w.quit()
        for pool in (self.index_pool, self.llm_pool, self.misc_pool):
            pool.waitForDone(-1)
        if self.watcher is not None:
            self.watcher.stop()
        self.engine.close()
        self.conversations.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
