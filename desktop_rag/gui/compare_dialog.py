"""Compare… : two indexed documents side by side, as a table of the figures that differ and
lists of what both say and what only one says; a click opens the cited page in the viewer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_rag.core.engine import Engine
from desktop_rag.core.tasks.compare import CompareProgress, Comparison, compare
from desktop_rag.gui.tasks import Pool, TaskRunner
from desktop_rag.gui.workers import GeneratorWorker

_SOURCE = Qt.ItemDataRole.UserRole  # a cell's or row's source dict (file, page, text, offsets)


class CompareDialog(QDialog):
    """Choose two indexed documents (and an optional aspect) and compare them
    (:func:`desktop_rag.core.tasks.compare.compare`) on the task runner: progress below, Stop
    cancels, the result in four tabs. The list of documents and the comparison run off the GUI
    thread.

    Signals: ``open_source(source)`` a passage or figure was clicked (a citation dict: file,
    page, text, start, end); ``finished_comparison(comparison)`` (None: failed or stopped).
    """

    open_source = Signal(object)
    finished_comparison = Signal(object)

    def __init__(self, engine: Engine, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare two documents")
        self.resize(980, 640)
        self.engine = engine
        self.runner = runner
        self._worker: GeneratorWorker | None = None
        self.comparison: Comparison | None = None
        self.doc_a, self.doc_b = QComboBox(), QComboBox()
        self.aspect = QLineEdit()
        self.aspect.setPlaceholderText('optional: only this aspect, e.g. "revenue"')
        form = QFormLayout()
        form.addRow("First document", self.doc_a)
        form.addRow("Second document", self.doc_b)
        form.addRow("Aspect", self.aspect)
        self.compare_btn = QPushButton("Compare")
        self.stop_btn = QPushButton("Stop")
        self.compare_btn.clicked.connect(self.start)
        self.stop_btn.clicked.connect(self.stop)
        self.compare_btn.setEnabled(False)
        self.stop_btn.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.compare_btn)
        buttons.addWidget(self.stop_btn)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("Loading the list of documents…")
        self.figures = QTableWidget(0, 4)
        self.figures.setHorizontalHeaderLabels(["Line item", "Statement", "First", "Second"])
        self.figures.horizontalHeader().setStretchLastSection(True)
        self.figures.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.figures.cellClicked.connect(self._figure_clicked)
        self.only_a, self.only_b, self.both = QListWidget(), QListWidget(), QListWidget()
        self.changed = QListWidget()
        for view in (self.changed, self.only_a, self.only_b, self.both):
            view.setWordWrap(True)
            view.itemClicked.connect(self._passage_clicked)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.figures, "Figures that differ")
        self.tabs.addTab(self.changed, "Changed passages")
        self.tabs.addTab(self.only_a, "Only in the first")
        self.tabs.addTab(self.only_b, "Only in the second")
        self.tabs.addTab(self.both, "What both say")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.tabs, 1)
        engine_store = engine.store

        def indexed(_: object) -> list[str]:
            return [f.path for f in engine_store.files() if f.status == "indexed" and f.chunks]

        runner.submit(indexed, "Listing the documents", Pool.MISC, on_return=self._listed)

    # -- the documents -----------------------------------------------------------------------
    def _listed(self, paths: list[str]) -> None:
        for combo in (self.doc_a, self.doc_b):
            combo.clear()
            for p in paths:
                combo.addItem(Path(p).name, p)
        if len(paths) >= 2:
            self.doc_b.setCurrentIndex(1)
            self.compare_btn.setEnabled(True)
            self.status.setText(f"{len(paths)} indexed documents.")
        else:
            self.status.setText("Index at least two documents to compare them.")

    def choose(self, a: str, b: str) -> None:
        """Select the documents ``a`` and ``b`` (their paths) once the list is there."""
        for combo, path in ((self.doc_a, a), (self.doc_b, b)):
            i = combo.findData(path)
            if i >= 0:
                combo.setCurrentIndex(i)

    # -- comparing -----------------------------------------------------------------------------
    def start(self) -> None:
        """Compare the two chosen documents (off the GUI thread)."""
        a, b = self.doc_a.currentData(), self.doc_b.currentData()
        if self._worker is not None or not a or not b:
            return
        aspect = self.aspect.text().strip() or None
        engine = self.engine
        self.comparison = None
        self.compare_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.setText("Comparing…")
        self._worker = self.runner.submit(
            lambda cancel: compare(engine, a, b, aspect=aspect, cancel=cancel),
            "Comparing", Pool.MISC, on_yield=self._on_item,
            on_return=lambda _: self._done(), on_cancel=self._done,
            on_error=lambda _: self._done(),
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the comparison that runs."""
        if self._worker is not None:
            self._worker.quit()

    def _on_item(self, item: object) -> None:
        if isinstance(item, CompareProgress):
            self.progress.setRange(0, max(1, item.total))
            self.progress.setValue(item.done)
            left = f", about {item.eta_s:.0f} s left" if item.eta_s is not None else ""
            self.status.setText(f"Comparing: {item.stage}{left}")
        elif isinstance(item, Comparison):
            self.comparison = item
            self._show(item)

    def _done(self) -> None:
        self._worker = None
        self.compare_btn.setEnabled(True)
        self.stop_btn.setEnabled(False)
        self.progress.setVisible(False)
        if self.comparison is None:
            self.status.setText("The comparison was stopped or failed (see the status line).")
        self.finished_comparison.emit(self.comparison)

    def _show(self, c: Comparison) -> None:
        name_a, name_b = Path(c.a).name, Path(c.b).name
        self.figures.setHorizontalHeaderLabels(["Line item", "Statement", name_a, name_b])
        self.figures.setRowCount(len(c.figures_differ))
        for r, f in enumerate(c.figures_differ):
            cells = [f["item"], f["statement"], _figure_text(f["a"]), _figure_text(f["b"])]
            for col, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                if col >= 2:
                    side = f["a"] if col == 2 else f["b"]
                    cell.setData(_SOURCE, {"file": side["file"], "page": side["page"],
                                           "text": str(side["value"]), "start": 0, "end": 0})  # fmt: skip
                self.figures.setItem(r, col, cell)
        self.figures.resizeColumnsToContents()
        for view, items in ((self.only_a, c.only_a), (self.only_b, c.only_b)):
            view.clear()
            for p in items:
                _add(view, f"{p['topic']} — page {p['page']}: {_excerpt(p['text'])}", p)
        self.changed.clear()
        for ch in c.changed:
            _add(self.changed, f"{ch['topic'] or 'Passage'} — {name_a} page {ch['a']['page']}, "
                               f"{name_b} page {ch['b']['page']}: {_changes_text(ch)}", ch["b"])  # fmt: skip
        self.both.clear()
        for p in c.both:
            _add(self.both, f"{p['topic']} — {name_a} page {p['a']['page']}, {name_b} page "
                            f"{p['b']['page']}: {_excerpt(p['a']['text'])}", p["a"])  # fmt: skip
        self.tabs.setTabText(0, f"Figures that differ ({len(c.figures_differ)})")
        self.tabs.setTabText(1, f"Changed passages ({len(c.changed)})")
        self.tabs.setTabText(2, f"Only in {name_a} ({len(c.only_a)})")
        self.tabs.setTabText(3, f"Only in {name_b} ({len(c.only_b)})")
        self.tabs.setTabText(4, f"What both say ({len(c.both)})")
        self.status.setText(
            f"{len(c.figures_differ)} figures differ, {c.figures_same} are the same; "
            f"{c.timings.get('total_s', 0.0):.1f} s. Click a figure or passage to see its page."
        )

    def _figure_clicked(self, row: int, col: int) -> None:
        cell = self.figures.item(row, col)
        source = cell.data(_SOURCE) if cell is not None else None
        if source:
            self.open_source.emit(source)

    def _passage_clicked(self, item: QListWidgetItem) -> None:
        source = item.data(_SOURCE)
        if source:
            self.open_source.emit(source)

    def done(self, code: int) -> None:
        self.stop()
        super().done(code)


def _figure_text(side: dict[str, Any]) -> str:
    where = ", ".join(x for x in (side.get("period") or "", f"page {side['page']}") if x)
    return f"{side['value']} ({where})"


def _changes_text(change: dict[str, Any]) -> str:
    """A changed passage's edits as "…context [old → new] context…" (or its removed and added
    sentences when no sentence was edited)."""
    if change["edits"]:
        parts = [f"…{e['before']} [{e['a'] or '∅'} → {e['b'] or '∅'}] {e['after']}…"
                 for e in change["edits"][:4]]  # fmt: skip
        more = len(change["edits"]) - 4
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return "; ".join([*(f"removed: {_excerpt(t, 90)}" for t in change["removed"][:2]),
                      *(f"added: {_excerpt(t, 90)}" for t in change["added"][:2])])  # fmt: skip


def _excerpt(text: str, limit: int = 180) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _add(view: QListWidget, text: str, source: dict[str, Any]) -> None:
    item = QListWidgetItem(text)
    item.setData(_SOURCE, source)
    view.addItem(item)
