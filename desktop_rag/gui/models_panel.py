"""The model chooser (toolbar), model import, the settings dialog, and loading the models.

Everything that loads the LLM runs on the LLM pool (the model's own work runs on its owner
thread). Listing the models folder, reading model files and writing the settings file run on the
small-jobs pool: the GUI thread only shows their results.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QMessageBox, QWidget

from desktop_rag.core.engine import Engine
from desktop_rag.core.models import ModelInfo, list_models
from desktop_rag.core.settings import Settings
from desktop_rag.gui.tasks import Pool, TaskRunner
from desktop_rag.gui.widgets import ask_gguf_file

_TOOLTIP = Qt.ItemDataRole.ToolTipRole


def _backend_text(engine: Engine) -> str:
    """The backend's label, and after a newline the address warning of a public server (on a
    worker: it reads the servers file)."""
    from desktop_rag.core.servers import address_warning

    info = engine.llm_model
    warning = address_warning(info.server.url) if info.server else None
    return info.label + (f"\n{warning}" if warning else "")


class ModelsPanel(QWidget):
    """The "Model:" chooser with its actions (:attr:`import_action`, :attr:`settings_action`)
    and the model status (:attr:`status_label`, for the status bar). ``ready`` is emitted once
    :meth:`load` has loaded the models, ``filled`` each time the chooser was (re)filled."""

    ready = Signal()
    filled = Signal()

    def __init__(self, engine: Engine, runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.runner = runner
        self.notifier = runner.notifier
        self._save_lock = threading.Lock()  # one settings write at a time, the newest last
        self._to_save: Settings | None = None
        self.combo = QComboBox()
        self.combo.setMinimumWidth(260)
        self.fill()
        self.combo.currentIndexChanged.connect(self._on_chosen)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(QLabel(" Model: "))
        row.addWidget(self.combo)
        self.import_action = QAction("Import GGUF model…", self)
        self.import_action.triggered.connect(lambda: self.import_model())
        self.add_server_action = QAction("Add inference server…", self)
        self.add_server_action.setToolTip(
            "Answer with a team's OpenAI-compatible server (llama-server, vLLM, Ollama, LM Studio)"
        )
        self.add_server_action.triggered.connect(lambda: self.add_server())
        self.settings_action = QAction("Settings…", self)
        self.settings_action.triggered.connect(self.open_settings)
        self.status_label = QLabel("Starting…")

    def fill(self) -> None:
        """List the LLMs (bundled and imported) in the background, the one in use selected (no
        reload); ``filled`` follows."""
        if self.runner.closed:
            return
        self.runner.submit(lambda cancel: list_models(), "Listing the models", Pool.MISC,
                           on_return=self._fill)  # fmt: skip

    def _fill(self, models: list[ModelInfo]) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        current = self.engine.settings.llm_model
        for m in models:
            if m.kind != "llm":
                continue
            if m.server is not None:
                label = f"{m.name} (server {m.server.host}:{m.server.port}, {m.server.model})"
            else:
                label = f"{m.name} ({m.bytes / 1e6:.0f} MB{', bundled' if m.bundled else ''})"
            self.combo.addItem(label, None if m.bundled else m.name)
            if m.server is not None:
                self.combo.setItemData(self.combo.count() - 1, m.server.label, _TOOLTIP)
            if (current is None and m.bundled) or current == m.name:
                self.combo.setCurrentIndex(self.combo.count() - 1)
        self.combo.blockSignals(False)
        self.filled.emit()

    def load(self) -> None:
        """Load the models in the background; ``ready`` follows."""
        self.status_label.setText("Loading models…")
        engine = self.engine

        def load(cancel: Any) -> tuple[str, str | None]:
            engine.warm_up()
            # (both read model files: here, not on the GUI thread)
            return _backend_text(engine), engine.thresholds().warning

        self.runner.submit(load, "Loading the models", Pool.LLM, on_return=self._on_loaded,
                           on_error=self._on_model_error)  # fmt: skip

    def _on_model_error(self, exc: BaseException) -> None:
        """A model that did not load or a server that did not answer: the status bar says so
        (the full reason in its tooltip); questions still get their evidence."""
        self.status_label.setText("Model error")
        self.status_label.setToolTip(str(exc))

    def _on_loaded(self, loaded: tuple[str, str | None]) -> None:
        name, warning = loaded
        self._show_backend(name)
        if warning:  # an embedding model without calibrated abstention thresholds
            self.status_label.setText(self.status_label.text() + " · ⚠ uncalibrated thresholds")
            self.status_label.setToolTip(warning[0].upper() + warning[1:] + ".")
            self.notifier.info(f"Warning: {warning}", 30000)
        self.ready.emit()

    def _on_chosen(self, index: int) -> None:
        name = self.combo.itemData(index)
        self.status_label.setText("Loading model…")
        engine = self.engine

        def switch(cancel: Any) -> str:
            try:
                engine.switch_llm(name)
            finally:  # a server that is down now stays chosen: it may be up at the question
                if engine.settings.llm_model == name:
                    self._to_save = copy.deepcopy(engine.settings)
                    self._write_settings()  # the new choice is saved before "Ready" shows
            return _backend_text(engine)

        self.runner.submit(switch, "Loading the model", Pool.LLM, on_return=self._show_backend,
                           on_error=self._on_model_error)  # fmt: skip

    def _show_backend(self, text: str) -> None:
        """The status bar's "Ready · …" naming the backend that answers (a server: its name,
        address and model, with a warning when the address is public)."""
        label, _, warning = text.partition("\n")
        self.status_label.setText(f"Ready · {label}" + (" · ⚠ public address" if warning else ""))
        self.status_label.setToolTip(warning)
        if warning:
            self.notifier.info(f"Warning: {warning}", 30000)

    def add_server(self, values: dict[str, Any] | None = None) -> None:
        """Ask for a server (:class:`~desktop_rag.gui.server_dialog.AddServerDialog`; tests pass
        ``values``), add it on a worker, then list and choose it (which checks it)."""
        if values is None:
            from desktop_rag.gui.server_dialog import AddServerDialog

            dialog = AddServerDialog(self)
            if not dialog.exec():
                return
            values = dialog.values()
        from desktop_rag.core.models import add_server_model

        def job(cancel: Any) -> tuple[str, list[ModelInfo]]:
            info = add_server_model(**values)
            return info.name, list_models()

        self.runner.submit(job, "Adding the server", Pool.MISC, dialog="Add inference server",
                           on_return=self._on_server_added)  # fmt: skip

    def _on_server_added(self, added: tuple[str, list[ModelInfo]]) -> None:
        name, models = added
        self._fill(models)
        self.notifier.info(f"Added server {name}", 8000)
        index = self.combo.findData(name)
        if index >= 0 and index != self.combo.currentIndex():
            self.combo.setCurrentIndex(index)  # chosen: _on_chosen checks and saves it

    def import_model(self, path: str | None = None) -> None:
        """Import a GGUF model file into the models folder (validated; nothing is downloaded)."""
        path = ask_gguf_file(self, "Import GGUF model", "GGUF models", path)
        if path is None:
            return
        from desktop_rag.core.generate.gguf import import_model

        source = Path(path)
        self.notifier.info(f"Importing {source.name}…")

        def job(cancel: Any) -> tuple[Any, list[ModelInfo]]:
            return import_model(source), list_models()

        self.runner.submit(job, "Importing the model", Pool.MISC, dialog="Import GGUF model",
                           on_return=self._on_imported)  # fmt: skip

    def _on_imported(self, imported: tuple[Any, list[ModelInfo]]) -> None:
        info, models = imported
        self._fill(models)
        ctx = f"{info.context_length:,} tokens" if info.context_length else "unknown"
        self.notifier.info(f"Imported {info.path.name}", 8000)
        QMessageBox.information(
            self, "Model imported",
            f"<b>{info.name}</b><br>Architecture: {info.architecture}<br>Parameters: {info.parameters_label}"
            f"<br>Quantization: {info.quantization}<br>Context length: {ctx}<br>Size: {info.bytes / 1e6:.0f} MB"
            "<br><br>Choose it in the Model list to use it.",
        )  # fmt: skip

    def open_settings(self) -> None:
        """The settings dialog; a new context size reloads the model in the background."""
        from desktop_rag.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.engine.settings, self)
        if dialog.exec():
            old_ctx = self.engine.settings.context_size
            dialog.apply()
            self.save_settings()
            if self.engine.settings.context_size != old_ctx:
                self._on_chosen(self.combo.currentIndex())

    def save_settings(self) -> None:
        """Write the settings file in the background (an error is shown, not raised); writes
        asked for in a row end with the newest values."""
        if self.runner.closed:
            return
        self._to_save = copy.deepcopy(self.engine.settings)  # the GUI thread changes them
        self.runner.submit(lambda cancel: self._write_settings(), "Saving the settings",
                           Pool.MISC)  # fmt: skip

    def _write_settings(self) -> None:
        """Write the newest snapshot not written yet (on a worker thread; raises OSError)."""
        with self._save_lock:
            newest, self._to_save = self._to_save, None
            if newest is None:
                return  # an earlier job already wrote the newest values
            newest.save(self.engine.paths.settings_file)
