"""The library: indexed folders, the indexing queue and its progress, files not indexed, and
the folder watcher that re-indexes a folder when its files change."""

from __future__ import annotations

import time

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
from desktop_rag.core.errors import UserError
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
    the user added folders, ``collections_changed(has_any)`` that the list was reloaded.
    """

    indexing_finished = Signal(object)
    activity_changed = Signal()
    folders_added = Signal()
    collections_changed = Signal(bool)

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
        self.watcher = FolderWatcher(self) if watch else None
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

    def refresh(self) -> None:
        """Reload the collections (and the problem files) from the store."""
        self.collections_model.set_items(self.engine.store.collections())
        self.problems_model.set_items([
            FileResult(f.path, f.status, f.reason)  # type: ignore[arg-type]
            for f in self.engine.store.files() if f.status in ("failed", "skipped")
        ])  # fmt: skip
        has = bool(self.collections_model.items)
        self.reindex_btn.setEnabled(has)
        self.remove_btn.setEnabled(has and self._worker is None)
        self.collections_changed.emit(has)

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

    def _watch_all(self) -> None:
        if self.watcher is not None:
            for root in self.roots():
                self.watcher.watch(root)

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
        """Index ``paths`` now, or after the run in progress."""
        if self._worker is not None:
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
            if prog.result.status == "indexed":
                self.collections_model.set_items(self.engine.store.collections())

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
        self.refresh()
        self._watch_all()
        self.indexing_finished.emit(summary)
        if self._queue and not self._closing:
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

    def remove_selected(self) -> None:
        """Forget the selected collection (after confirmation); the folder is untouched."""
        sel = self._selected()
        if sel is None or self._worker is not None:
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
            self.runner.notifier.error(exc, "Removing the folder")
        if root and self.watcher is not None:
            self.watcher.unwatch(root)
        self.refresh()

    def shutdown(self) -> None:
        """Start nothing queued any more and stop the folder watcher (joins its thread)."""
        self._closing = True
        self._queue.clear()
        if self.watcher is not None:
            self.watcher.stop()
