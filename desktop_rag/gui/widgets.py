"""Small widgets the panels share: section titles and the empty state (the drop area)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


def section(title: str) -> QLabel:
    """A bold section title."""
    label = QLabel(f"<b>{title}</b>")
    label.setContentsMargins(0, 6, 0, 0)
    return label


class EmptyState(QWidget):
    """What the window shows before anything is indexed: drop a folder, choose one, or try the
    sample documents (``choose`` and ``samples`` are emitted by its buttons)."""

    choose = Signal()
    samples = Signal()

    def __init__(self, samples_available: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        area = QFrame()
        area.setObjectName("dropArea")
        area.setStyleSheet(
            "#dropArea { border: 3px dashed #9aa7b8; border-radius: 16px; background: #f6f8fb; }"
        )
        el = QVBoxLayout(area)
        el.addStretch(2)
        headline = QLabel("<h1>Drop a folder here, or choose one</h1>")
        headline.setStyleSheet("border: none")
        sub = QLabel(
            "PDF, Word, PowerPoint, HTML, Markdown and text files are indexed on this computer.<br>"
            "Nothing leaves the machine. Ask questions and click the numbered sources to see the page."
        )
        sub.setStyleSheet("border: none; color: #445")
        for w in (headline, sub):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            el.addWidget(w)
        row = QHBoxLayout()
        row.addStretch(1)
        choose = QPushButton("Choose folder…")
        choose.clicked.connect(self.choose)
        samples = QPushButton("Try the sample documents")
        samples.clicked.connect(self.samples)
        samples.setEnabled(samples_available)
        for b in (choose, samples):
            b.setMinimumHeight(40)
            b.setMinimumWidth(200)
            row.addWidget(b)
        row.addStretch(1)
        el.addLayout(row)
        el.addStretch(3)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(30, 30, 30, 30)
        outer.addWidget(area)


def ask_gguf_file(parent: QWidget, title: str, kind: str, path: str | None = None) -> str | None:
    """``path`` if given, else a GGUF file the person picks (``kind``: "GGUF models" in the
    file filter); None when they cancel."""
    if not path:
        path, _ = QFileDialog.getOpenFileName(parent, title, "", f"{kind} (*.gguf)")
    return path or None
