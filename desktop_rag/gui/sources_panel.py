"""The sources of the answer shown, over the page viewer that shows the one clicked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListView, QSplitter, QVBoxLayout, QWidget

from desktop_rag.core.engine import Engine
from desktop_rag.core.formats import RENDERED_KINDS, file_kind
from desktop_rag.gui.models import SourcesModel
from desktop_rag.gui.tasks import Notifier
from desktop_rag.gui.viewer import PageViewer
from desktop_rag.gui.widgets import section


class SourcesPanel(QSplitter):
    """The source list (top) and the :class:`PageViewer` (bottom)."""

    def __init__(self, engine: Engine, notifier: Notifier, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Vertical, parent)
        self.engine = engine
        self.notifier = notifier
        self.model = SourcesModel()
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setWordWrap(True)
        self.view.setSpacing(3)
        self.view.clicked.connect(lambda idx: self.open_source(self.model.items[idx.row()]))
        self.viewer = PageViewer()
        box = QWidget()
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(section("Sources"))
        layout.addWidget(self.view)
        self.addWidget(box)
        self.addWidget(self.viewer)
        self.setSizes([260, 560])

    def set_sources(self, sources: list[dict[str, Any]]) -> None:
        """List ``sources`` (citation dicts, numbered from 1)."""
        self.model.set_items(sources)

    def show_citation(self, sources: list[dict[str, Any]], n: int) -> None:
        """List ``sources`` and open (and select) source number ``n``."""
        self.model.set_items(sources)
        source = next((s for s in sources if s["n"] == n), None)
        if source is not None:
            self.view.setCurrentIndex(self.model.index(n - 1))
            self.open_source(source)

    def open_source(self, source: dict[str, Any]) -> None:
        """Show a cited passage in the page viewer."""
        path = Path(source["file"])
        if not path.exists():
            self.notifier.info(f"{path} no longer exists.", 8000)
            return
        if file_kind(path) in RENDERED_KINDS and source.get("page"):
            page, start, end = (
                int(source["page"]),
                int(source.get("start", 0)),
                int(source.get("end", 0)),
            )
            boxes = self.engine.passage_boxes(str(path), page, start, end)  # OCR'd pages only
            self.viewer.show_pdf(path, page, source["text"], boxes)
            return
        text = self.engine.page_text(str(path), source.get("page"))
        if text is None:
            self.notifier.info(f"{path.name} is not indexed any more.", 8000)
            return
        self.viewer.show_text(path, text, int(source.get("start", 0)), int(source.get("end", 0)))
