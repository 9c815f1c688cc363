"""The sources of the answer shown, over the page viewer that shows the one clicked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QListView, QPushButton, QSplitter, QVBoxLayout, QWidget

from desktop_rag.core.engine import Engine
from desktop_rag.core.formats import RENDERED_KINDS, file_kind
from desktop_rag.core.ingest.render import PageRenderer
from desktop_rag.gui.models import SourcesModel
from desktop_rag.gui.tasks import Pool, TaskRunner
from desktop_rag.gui.viewer import PageViewer
from desktop_rag.gui.widgets import section


class SourcesPanel(QSplitter):
    """The source list (top) and the :class:`PageViewer` (bottom). The look-ups in the index
    and the drawing of pages run on ``runner`` (the GUI thread only shows them); the panel owns
    the :class:`PageRenderer` (its worker process is stopped by :meth:`shutdown`).

    Signals: ``summarize_document(path)`` (the selected source's file) and
    ``summarize_sources(sources)`` (the listed citation dicts), from its two buttons.
    """

    summarize_document = Signal(str)
    summarize_sources = Signal(object)

    def __init__(self, engine: Engine, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.engine = engine
        self.runner = runner
        self.notifier = runner.notifier
        self.renderer = PageRenderer()
        self._warmed = False  # the drawing worker was started ahead of the first click
        self.model = SourcesModel()
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setWordWrap(True)
        self.view.setSpacing(3)
        self.view.clicked.connect(lambda idx: self.open_source(self.model.items[idx.row()]))
        self.viewer = PageViewer(runner, self.renderer)
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(section("Sources"))
        layout.addWidget(self.view)
        self.summarize_doc_btn = QPushButton("Summarise document")
        self.summarize_doc_btn.setToolTip("Summarise the whole file of the selected source")
        self.summarize_all_btn = QPushButton("Summarise sources")
        self.summarize_all_btn.setToolTip("Summarise the passages of this answer")
        self.summarize_doc_btn.clicked.connect(self._summarize_selected_document)
        self.summarize_all_btn.clicked.connect(
            lambda: self.summarize_sources.emit(list(self.model.items))
        )
        row = QHBoxLayout()
        row.addWidget(self.summarize_doc_btn)
        row.addWidget(self.summarize_all_btn)
        layout.addLayout(row)
        self._enable_buttons()
        self.addWidget(box)
        self.addWidget(self.viewer)
        self.setSizes([260, 560])

    def set_sources(self, sources: list[dict[str, Any]]) -> None:
        """List ``sources`` (citation dicts, numbered from 1). The first time one of them is a
        page to draw, the drawing worker starts in the background, so the first click does not
        wait for it."""
        self.model.set_items(sources)
        self._enable_buttons()
        if not self._warmed and any(
            file_kind(s.get("file", "")) in RENDERED_KINDS for s in sources
        ):
            self._warmed = True
            if not self.runner.closed:
                sandbox = self.renderer.sandbox
                self.runner.submit(sandbox.warm_up, "Starting the page viewer",
                                   Pool.MISC)  # fmt: skip

    def _enable_buttons(self) -> None:
        has = bool(self.model.items)
        self.summarize_doc_btn.setEnabled(has)
        self.summarize_all_btn.setEnabled(has)

    def _summarize_selected_document(self) -> None:
        items = self.model.items
        if not items:
            return
        idx = self.view.currentIndex()
        source = items[idx.row()] if idx.isValid() and idx.row() < len(items) else items[0]
        self.summarize_document.emit(str(source["file"]))

    def show_citation(self, sources: list[dict[str, Any]], n: int) -> None:
        """List ``sources`` and open (and select) source number ``n``."""
        self.model.set_items(sources)
        self._enable_buttons()
        source = next((s for s in sources if s["n"] == n), None)
        if source is not None:
            self.view.setCurrentIndex(self.model.index(n - 1))
            self.open_source(source)

    def open_source(self, source: dict[str, Any]) -> None:
        """Show a cited passage in the page viewer (at once a placeholder; the page, or the
        text, once looked up and drawn off the GUI thread)."""
        path = Path(source["file"])
        page = int(source.get("page") or 0)
        start, end = int(source.get("start", 0)), int(source.get("end", 0))
        engine = self.engine
        if file_kind(path) in RENDERED_KINDS and page:
            self.viewer.show_pdf(path, page, source["text"],
                                 find_boxes=lambda: engine.passage_boxes(str(path), page, start, end))  # fmt: skip
            return
        self.viewer.show_text_of(path, lambda: engine.page_text(str(path), source.get("page")),
                                 start, end)  # fmt: skip

    def shutdown(self) -> None:
        """Stop the page-drawing worker (call once the task runner's threads are joined)."""
        self.renderer.close()
