"""The style bar over the chat: a LoRA adapter per conversation and its strength (LoRA scale).

The adapters are listed (each file's GGUF header read) on the task runner's small-jobs pool; a
style asked for before the list arrives is chosen when it does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QWidget,
)

from desktop_rag.core.paths import AppPaths
from desktop_rag.gui.tasks import Pool, TaskRunner
from desktop_rag.gui.widgets import ask_gguf_file


class StyleBar(QWidget):
    """Chooses the answer style: ``changed(adapter, scale)`` when the choice changes (adapter
    None: the base model), ``filled`` each time the list was (re)filled. Lists and imports
    adapters in the background."""

    changed = Signal(object, float)
    filled = Signal()

    def __init__(self, paths: AppPaths, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.paths = paths
        self.runner = runner
        self._wanted: str | None = None  # a style asked for that the list does not hold yet
        self.combo = QComboBox()
        self.combo.setMinimumWidth(200)
        self.combo.setToolTip(
            "Answer style: a LoRA adapter changes how the model writes, not what it knows"
        )
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 150)  # LoRA scale x 100
        self.slider.setValue(100)
        self.slider.setFixedWidth(140)
        self.slider.setToolTip("Style strength (LoRA scale 0 to 1.5)")
        self.value = QLabel("1.00")
        self.value.setMinimumWidth(34)
        import_btn = QPushButton("Import adapter…")
        import_btn.clicked.connect(lambda: self.import_adapter())
        self.combo.addItem("None (base model)", None)
        self.fill()
        self.combo.currentIndexChanged.connect(self._on_changed)
        self.slider.valueChanged.connect(self._on_changed)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Style:"))
        row.addWidget(self.combo)
        row.addWidget(QLabel("Strength:"))
        row.addWidget(self.slider)
        row.addWidget(self.value)
        row.addStretch(1)
        row.addWidget(import_btn)
        self._show_state()

    def fill(self) -> None:
        """List the available adapters in the background, keeping the choice (``filled``
        follows; ``changed`` only if a style asked for meanwhile is now chosen)."""
        if self.runner.closed:
            return
        from desktop_rag.core.generate.adapters import list_adapters

        paths = self.paths
        self.runner.submit(lambda cancel: list_adapters(paths), "Listing the style adapters",
                           Pool.MISC, on_return=self._fill)  # fmt: skip

    def _fill(self, adapters: list[Any], select: str | None = None) -> None:
        """Show ``adapters`` (AdapterInfo), keeping (or choosing) ``select``."""
        current = select or self._wanted or self.combo.currentData()
        wanted, self._wanted = self._wanted, None
        before = self.current_style()
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem("None (base model)", None)
        for a in adapters:
            self.combo.addItem(a.name, a.name)
            self.combo.setItemData(
                self.combo.count() - 1,
                f"{a.description or a.name}\n{a.base_architecture}, rank {a.rank}, "
                f"{a.bytes / 1e6:.1f} MB, {'bundled' if a.bundled else 'imported'}",
                Qt.ItemDataRole.ToolTipRole,
            )
        idx = self.combo.findData(current) if current else 0
        self.combo.setCurrentIndex(max(0, idx))
        self.combo.blockSignals(False)
        if wanted is not None and self.current_style() != before:
            self._on_changed()
        self.filled.emit()

    def current_style(self) -> tuple[str | None, float]:
        """The chosen style adapter (None for the base model) and its LoRA scale."""
        return self.combo.currentData(), self.slider.value() / 100.0

    def set_style(self, adapter: str | None, scale: float) -> None:
        """Show ``adapter`` (if available; if the list has not arrived yet, once it does) at
        ``scale``."""
        idx = self.combo.findData(adapter) if adapter else 0
        self._wanted = adapter if idx < 0 else None
        self.combo.setCurrentIndex(max(0, idx))
        self.slider.setValue(round(scale * 100))
        self._on_changed()

    def _show_state(self) -> None:
        adapter, scale = self.current_style()
        self.slider.setEnabled(adapter is not None)
        self.value.setEnabled(adapter is not None)
        self.value.setText(f"{scale:.2f}")

    def _on_changed(self, *_: object) -> None:
        self._show_state()
        self.changed.emit(*self.current_style())

    def import_adapter(self, path: str | None = None) -> None:
        """Import a GGUF LoRA adapter into the adapters folder (validated first, in the
        background); it becomes the chosen style."""
        path = ask_gguf_file(self, "Import LoRA adapter", "GGUF LoRA adapters", path)
        if path is None:
            return
        from desktop_rag.core.generate.adapters import import_adapter, list_adapters

        source, paths = Path(path), self.paths

        def job(cancel: Any) -> tuple[Any, list[Any]]:
            return import_adapter(source, paths), list_adapters(paths)

        self.runner.submit(job, "Importing the adapter", Pool.MISC, dialog="Import LoRA adapter",
                           on_return=self._on_imported)  # fmt: skip

    def _on_imported(self, imported: tuple[Any, list[Any]]) -> None:
        info, adapters = imported
        self._wanted = None
        self._fill(adapters, select=info.name)
        self._on_changed()
        self.runner.notifier.info(
            f"Imported the adapter {info.name} ({info.base_architecture}, rank {info.rank}); "
            "it is now the style of this chat.",
            8000,
        )
