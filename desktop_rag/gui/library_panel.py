"""The library: indexed folders, the indexing queue and its progress, files not indexed, and
the folder watcher that re-indexes a folder when its files change.

The GUI thread never reads or writes the index here: the list is read (:meth:`LibraryPanel.refresh`)
and a collection removed (:meth:`LibraryPanel.remove_collection`) on the task runner's small-jobs
pool, and the results are shown when they arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_rag.core.engine import Engine
from desktop_rag.core.index.store import CollectionRow
from desktop_rag.core.resources import resources_dir
from desktop_rag.core.types import FileResult, IndexSummary, Progress
from desktop_rag.gui.models import CollectionsModel, IdRole, PathRole, ProblemsModel
from desktop_rag.gui.tasks import Pool, TaskRunner
from desktop_rag.gui.watcher import FolderWatcher
from desktop_rag.gui.widgets import section
from desktop_rag.gui.workers import GeneratorWorker

SAMPLES = resources_dir() / "samples"


def duration(seconds: float) -> str:
    """``45 s``, ``3 min``, ``1 h 20 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


class LibraryPanel(QWidget):
    """The "Library" and "Not indexed" sections and their controller.

    One indexing run at a time; paths asked for meanwhile are queued for the next run.
    ``indexing_finished(summary)`` (None: failed or stopped) ends every run, ``activity_changed``
    says a run started, ended, paused or resumed (for sharing the CPU), ``folders_added`` that
    the user added folders, ``collections_changed(has_any)`` that the list was reloaded,
    ``removed(collection_id)`` that a removal ended (the list already shows it).
    """

    indexing_finished = Signal(object)
    activity_changed = Signal()
    folders_added = Signal()
    collections_changed = Signal(bool)
    removed = Signal(int)
    summarize_requested = Signal(str)  # an indexed folder's path

    def __init__(self, engine: Engine, runner: TaskRunner, *, watch: bool = True,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.engine = engine
        self.runner = runner
        self._worker: GeneratorWorker | None = None
        self._queue: list[str] = []
        self._started = 0.0
        self._initial_done = 0
        self._closing = False
        self._refreshing = False  # a read of the list runs
        self._refresh_waiters: list[Callable[[], object]] = []  # to call after the next read
        self._refresh_again = False
        self._removing: int | None = None  # the collection being removed
        self.watcher = FolderWatcher(runner, self) if watch else None
        if self.watcher is not None:
            self.watcher.changed.connect(lambda root: self.start_index([root]))

        self.collections_model = CollectionsModel()
        self.collections_view = QListView()
        self.collections_view.setModel(self.collections_model)
        self.collections_view.setWordWrap(True)
        self.collections_view.setSpacing(2)
        self.add_btn = QPushButton("Add folder…")
        self.reindex_btn = QPushButton("Re-index")
        self.pause_btn = QPushButton("Pause")
        self.remove_btn = QPushButton("Remove")
        self.summarize_btn = QPushButton("Summarise")
        self.summarize_btn.setToolTip("Summarise the selected folder, every sentence cited")
        self.summarize_btn.clicked.connect(self.summarize_selected)
        self.add_btn.clicked.connect(self.choose_folder)
        self.reindex_btn.clicked.connect(self.reindex_selected)
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.remove_btn.clicked.connect(self.remove_selected)
        self.pause_btn.setEnabled(False)
        buttons = QHBoxLayout()
        for b in (self.add_btn, self.reindex_btn, self.pause_btn, self.remove_btn,
                  self.summarize_btn):  # fmt: skip
            buttons.addWidget(b)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.problems_model = ProblemsModel()
        self.problems_view = QListView()
        self.problems_view.setModel(self.problems_model)
        self.problems_view.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(section("Library"))
        layout.addWidget(self.collections_view, 3)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.progress_label)
        layout.addWidget(section("Not indexed"))
        layout.addWidget(self.problems_view, 2)

    @property
    def indexing(self) -> bool:
        """Whether an indexing run is working now (running and not paused)."""
        return self._worker is not None and not self._worker.cancel_token.paused

    @property
    def worker(self) -> GeneratorWorker | None:
        """The indexing run in progress, if any."""
        return self._worker

    @property
    def busy(self) -> bool:
        """Whether an indexing run or a removal is in progress."""
        return self._worker is not None or self._removing is not None

    def refresh(self, then: Callable[[], object] | None = None) -> None:
        """Reload the collections (and the problem files) from the store, off the GUI thread;
        ``then()`` runs once the list shown is at least as new as the store was now. Requests
        made while a read runs are served together by one more read."""
        if then is not None:
            self._refresh_waiters.append(then)
        if self.runner.closed:
            return
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing, self._refresh_again = True, False
        waiters, self._refresh_waiters = self._refresh_waiters, []
        store = self.engine.store

        def read(cancel: object) -> tuple[list[CollectionRow], list[FileResult]]:
            problems = [FileResult(f.path, f.status, f.reason)  # type: ignore[arg-type]
                        for f in store.files() if f.status in ("failed", "skipped")]  # fmt: skip
            return store.collections(), problems

        self.runner.submit(
            read, "Reading the library", Pool.MISC,
            on_return=lambda rows: self._refreshed(rows, waiters),
            on_error=lambda e: self._refreshed(None, waiters),
        )  # fmt: skip

    def _refreshed(self, rows: tuple[list[CollectionRow], list[FileResult]] | None,
                   waiters: list[Callable[[], object]]) -> None:  # fmt: skip
        self._refreshing = False
        if rows is not None:
            collections, problems = rows
            self.collections_model.set_items(collections)
            self.problems_model.set_items(problems)
            self._show_buttons()
            self.collections_changed.emit(bool(collections))
        for then in waiters:
            then()
        if self._refresh_again or self._refresh_waiters:
            self.refresh()

    def _show_buttons(self) -> None:
        has = bool(self.collections_model.items)
        self.reindex_btn.setEnabled(has and self._removing is None)
        self.remove_btn.setEnabled(has and not self.busy)

    def roots(self) -> list[str]:
        """The folders (and files) in the library."""
        return [c.root for c in self.collections_model.items]

    def start_background(self) -> None:
        """Once the models are loaded: pick up changes made while the app was closed, and
        watch the library's folders."""
        roots = self.roots()
        if roots:
            self.start_index(roots)
        self._watch_all()

    def _watch_all(self, then: Callable[[], object] | None = None) -> None:
        """Watch every folder of the library; ``then()`` once they are watched (or at once)."""
        if self.watcher is not None and not self.runner.closed:
            self.watcher.watch_all(self.roots(), then)
        elif then is not None:
            then()

    def choose_folder(self) -> None:
        """Pick a folder with the system dialog and index it."""
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of documents")
        if folder:
            self.add_paths([folder])

    def try_samples(self) -> None:
        """Index the bundled sample documents."""
        self.add_paths([str(SAMPLES)])

    def add_paths(self, paths: list[str]) -> None:
        """Index dropped or chosen folders and files."""
        if not paths:
            return
        self.folders_added.emit()
        self.start_index(paths)

    def start_index(self, paths: list[str]) -> None:
        """Index ``paths`` now, or after the run (or the removal) in progress."""
        if self.busy:
            self._queue.extend(p for p in paths if p not in self._queue)
            return
        self._started = time.perf_counter()
        self._initial_done = -1
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.progress_label.setText("Scanning…")
        self.pause_btn.setEnabled(True)
        self.pause_btn.setText("Pause")
        self.remove_btn.setEnabled(False)
        engine = self.engine
        self._worker = self.runner.submit(
            lambda cancel: engine.index(paths, cancel), "Indexing", Pool.INDEX,
            on_yield=self._on_progress, on_return=self._on_done,
            on_error=lambda e: self._on_done(None), on_cancel=lambda: self._on_done(None),
        )  # fmt: skip
        self.activity_changed.emit()

    def _on_progress(self, prog: Progress) -> None:
        if self._initial_done < 0:
            self._initial_done = prog.files_done
            self.refresh()
        elif prog.result is not None and prog.result.status == "indexed":
            self.refresh()  # the counts of the folder (one read at a time: bursts coalesce)
        # in thousandths of a file, so one long scan moves the bar page by page
        self.progress.setRange(0, 1000 * max(1, prog.files_total))
        self.progress.setValue(round(1000 * (prog.files_done + prog.file_fraction)))
        done = prog.files_done - self._initial_done
        left = prog.files_total - prog.files_done
        elapsed = time.perf_counter() - self._started
        rate = done / elapsed if elapsed > 0 and done else 0.0
        chunk_rate = prog.chunks_added / elapsed if elapsed > 0 else 0.0
        eta = f" · about {duration(left / rate)} left" if rate > 0 and left else ""
        paused = " · paused" if self._worker and self._worker.cancel_token.paused else ""
        ocr = f" · {prog.ocr_pages} scanned pages read (OCR)" if prog.ocr_pages else ""
        self.progress_label.setText(
            f"{prog.files_done} / {prog.files_total} files · {prog.chunks_added} chunks · "
            f"{chunk_rate:.1f} chunks/s{ocr}{eta}{paused}"
            + (f"\n{prog.current}" if prog.current else "")
        )
        if prog.result is not None:
            self.problems_model.upsert(prog.result)

    def _on_done(self, summary: IndexSummary | None) -> None:
        self._worker = None
        self.activity_changed.emit()
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
        # indexing_finished once the list shows the run's result
        self.refresh(then=lambda: self._finished(summary))

    def _finished(self, summary: IndexSummary | None) -> None:
        # indexing_finished once the folders are watched: a change made then is seen
        self._watch_all(then=lambda: self._announce(summary))

    def _announce(self, summary: IndexSummary | None) -> None:
        self.indexing_finished.emit(summary)
        self._start_queued()

    def _start_queued(self) -> None:
        if self._queue and not self._closing and not self.busy:
            queued, self._queue = self._queue, []
            self.start_index(queued)

    def toggle_pause(self) -> None:
        """Pause or resume the indexing run."""
        w = self._worker
        if w is None:
            return
        if w.cancel_token.paused:
            w.cancel_token.resume()
            self.pause_btn.setText("Pause")
            self.activity_changed.emit()
        else:
            w.cancel_token.pause()
            self.pause_btn.setText("Resume")
            self.activity_changed.emit()
            self.progress_label.setText(self.progress_label.text() + " · paused")

    def _selected(self) -> tuple[int, str] | None:
        idx = self.collections_view.currentIndex()
        if not idx.isValid():
            if len(self.collections_model.items) == 1:
                c = self.collections_model.items[0]
                return c.id, c.root
            return None
        return idx.data(IdRole), idx.data(PathRole)

    def reindex_selected(self) -> None:
        """Re-index the selected collection (or all when none is selected)."""
        sel = self._selected()
        self.start_index([sel[1]] if sel else self.roots())

    def summarize_selected(self) -> None:
        """Ask for a summary of the selected folder (``summarize_requested``)."""
        sel = self._selected()
        if sel is not None:
            self.summarize_requested.emit(sel[1])

    def remove_selected(self) -> None:
        """Forget the selected collection (after confirmation); the folder is untouched."""
        sel = self._selected()
        if sel is None or self.busy:
            return
        answer = QMessageBox.question(self, "Remove folder",
                                      f"Remove {sel[1]} from the library?\nYour files are not touched.")  # fmt: skip
        if answer == QMessageBox.StandardButton.Yes:
            self.remove_collection(sel[0])

    def remove_collection(self, collection_id: int) -> None:
        """Remove a collection from the index and stop watching it, off the GUI thread (seconds
        for a large one): the folder shows "removing…" meanwhile, indexing asked for waits, and
        ``removed(collection_id)`` follows once the list no longer shows it. An error is shown
        in the status bar. Ignored while indexing or another removal runs."""
        if self.busy or self.runner.closed:
            return
        root = next((c.root for c in self.collections_model.items if c.id == collection_id), None)
        self._removing = collection_id
        if root and self.watcher is not None:
            self.watcher.unwatch(root)
        self.collections_model.status[collection_id] = "removing…"
        self.collections_model.set_items(self.collections_model.items)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.progress_label.setText(f"Removing {root or 'the folder'} from the library…")
        self._show_buttons()
        engine = self.engine
        self.runner.submit(
            lambda cancel: engine.remove_collection(collection_id), "Removing the folder",
            Pool.MISC, on_return=lambda _: self._removed(collection_id, True),
            on_error=lambda e: self._removed(collection_id, False),
        )  # fmt: skip

    def _removed(self, collection_id: int, ok: bool) -> None:
        self.collections_model.status.pop(collection_id, None)
        self.progress.setVisible(False)
        self.progress_label.setText("Removed from the library." if ok else "")

        def done() -> None:
            self._removing = None
            self._show_buttons()
            if not ok:
                self._watch_all()  # still in the library: watch it again
            self.removed.emit(collection_id)
            self._start_queued()

        self.refresh(then=done)

    def stop_queue(self) -> None:
        """Start nothing queued any more (the window is closing)."""
        self._closing = True
        self._queue.clear()

    def shutdown(self) -> None:
        """Start nothing queued any more and stop the folder watcher (joins its thread; call
        after the task runner was shut down)."""
        self.stop_queue()
        if self.watcher is not None:
            self.watcher.stop()
