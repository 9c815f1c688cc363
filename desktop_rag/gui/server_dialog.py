"""Inference servers and our own API in the window.

- :class:`AddServerDialog`: add a team's OpenAI-compatible server as a model (name, URL, model
  name, API key, timeout, context window); it is written by a worker
  (:func:`~desktop_rag.core.models.add_server_model`: the key goes to a user-only file) and
  then chosen in the Model list.
- :class:`ApiControl`: start and stop ``desktop-rag serve``'s API inside the app (the same
  engine and model owner as the chat, so API requests queue behind the window's questions),
  with its address in the status bar and the bearer token one click away. Starting (binding,
  uvicorn's start) and stopping (joining its thread) run on a worker, never on the GUI thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from desktop_rag.core.servers import DEFAULT_CONTEXT, DEFAULT_TIMEOUT_S, address_warning
from desktop_rag.gui.tasks import Pool, TaskRunner

if TYPE_CHECKING:
    from desktop_rag.api.server import ApiServer
    from desktop_rag.core.engine import Engine


class AddServerDialog(QDialog):
    """The fields of one inference server; :meth:`values` gives them to
    :func:`~desktop_rag.core.models.add_server_model`. The address warning (a public host)
    shows as the URL is typed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add inference server")
        form = QFormLayout(self)
        self.name = QLineEdit()
        self.name.setPlaceholderText("team-server")
        self.url = QLineEdit()
        self.url.setPlaceholderText("http://10.0.0.5:8080/v1")
        self.model = QLineEdit()
        self.model.setPlaceholderText("the name its /v1/models lists")
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("none")
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1, 3600)
        self.timeout.setValue(DEFAULT_TIMEOUT_S)
        self.timeout.setSuffix(" s")
        self.context = QSpinBox()
        self.context.setRange(512, 1_048_576)
        self.context.setSingleStep(1024)
        self.context.setValue(DEFAULT_CONTEXT)
        self.context.setSuffix(" tokens")
        self.warning = QLabel()
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #a15c00;")
        note = QLabel(
            "llama.cpp's llama-server, llama_cpp.server, vLLM, Ollama (…:11434/v1) or LM Studio. "
            "Retrieval, evidence and the claim check stay on this machine; the question and "
            "the passages it is answered from are sent to the server."
        )
        note.setWordWrap(True)
        form.addRow(note)
        form.addRow("Name:", self.name)
        form.addRow("URL:", self.url)
        form.addRow("Model:", self.model)
        form.addRow("API key:", self.key)
        form.addRow("Timeout:", self.timeout)
        form.addRow("Context window:", self.context)
        form.addRow(self.warning)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.url.textChanged.connect(self._check_url)

    def _check_url(self, text: str) -> None:
        warning = address_warning(text.strip()) if "://" in text else None
        self.warning.setText(f"⚠ {warning[0].upper()}{warning[1:]}." if warning else "")

    def values(self) -> dict[str, Any]:
        """The keyword arguments of ``add_server_model`` (the key None when left empty)."""
        return {
            "name": self.name.text().strip(),
            "url": self.url.text().strip(),
            "model": self.model.text().strip(),
            "api_key": self.key.text().strip() or None,
            "timeout_s": float(self.timeout.value()),
            "context": int(self.context.value()),
        }


class ApiControl(QObject):
    """Our own API (:class:`~desktop_rag.api.server.ApiServer`) started and stopped from the
    Models menu: :attr:`toggle_action` (Start / Stop local API), :attr:`copy_token_action`, and
    :attr:`status_label` with the address while it runs. ``changed`` carries the address, or ""
    when stopped."""

    changed = Signal(str)

    def __init__(self, engine: Engine, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.runner = runner
        self.server: ApiServer | None = None
        self._busy = False
        self.toggle_action = QAction("Start local API", self)
        self.toggle_action.setToolTip(
            "Serve an OpenAI-compatible API on 127.0.0.1:8765 answering from your documents "
            "with their sources (as `desktop-rag serve`)"
        )
        self.toggle_action.triggered.connect(self.toggle)
        self.copy_token_action = QAction("Copy API token", self)
        self.copy_token_action.setEnabled(False)
        self.copy_token_action.triggered.connect(self._copy_token)
        self.status_label = QLabel("")
        self.status_label.hide()

    @property
    def address(self) -> str | None:
        """The address served, or None when stopped."""
        return self.server.address if self.server is not None and self.server.running else None

    def toggle(self) -> None:
        """Start the API when stopped, stop it when running (a worker does the work)."""
        if self._busy or self.runner.closed:
            return
        self._busy = True
        self.toggle_action.setEnabled(False)
        if self.server is None:
            self.runner.submit(self._start, "Starting the local API", Pool.MISC,
                               on_return=self._started, on_error=self._failed)  # fmt: skip
        else:
            server = self.server
            self.runner.submit(lambda cancel: server.stop(), "Stopping the local API", Pool.MISC,
                               on_return=lambda _: self._stopped(),
                               on_error=self._failed)  # fmt: skip

    def _start(self, cancel: Any) -> ApiServer:
        from desktop_rag.api.server import ApiServer

        server = ApiServer(self.engine)
        server.start()
        return server

    def _started(self, server: ApiServer) -> None:
        self.server = server
        self._busy = False
        self.toggle_action.setEnabled(True)
        self.toggle_action.setText("Stop local API")
        self.copy_token_action.setEnabled(True)
        self.status_label.setText(f"API: {server.address}")
        self.status_label.setToolTip(
            f"An OpenAI-compatible API answers from your documents at {server.address}/v1 "
            "(bearer token: Models > Copy API token)"
        )
        self.status_label.show()
        self.runner.notifier.info(f"Local API listening on {server.address}/v1", 8000)
        self.changed.emit(server.address)

    def _stopped(self) -> None:
        self.server = None
        self._busy = False
        self.toggle_action.setEnabled(True)
        self.toggle_action.setText("Start local API")
        self.copy_token_action.setEnabled(False)
        self.status_label.hide()
        self.status_label.setText("")
        self.runner.notifier.info("Local API stopped", 5000)
        self.changed.emit("")

    def _failed(self, exc: BaseException) -> None:
        self._busy = False
        self.toggle_action.setEnabled(True)

    def _copy_token(self) -> None:
        if self.server is not None:
            QGuiApplication.clipboard().setText(self.server.token)
            self.runner.notifier.info("API token copied to the clipboard", 5000)

    def shutdown(self) -> None:
        """Stop the API when the window closes (its thread joined; open streams get the
        server's grace period)."""
        server, self.server = self.server, None
        if server is not None:
            server.stop(timeout=10)
