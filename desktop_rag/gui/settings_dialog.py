"""The settings dialog: context size, temperature, number of sources, CPU threads, text
recognition (OCR) of scans while indexing, data location."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from desktop_rag.core.generate.llm import default_threads
from desktop_rag.core.settings import Settings


class SettingsDialog(QDialog):
    """Edits a :class:`Settings`; :meth:`apply` writes the values back."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        form = QFormLayout(self)
        self.context = QSpinBox()
        self.context.setRange(512, 131072)
        self.context.setSingleStep(512)
        self.context.setValue(settings.context_size)
        self.context.setSuffix(" tokens")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(settings.temperature)
        self.top_k = QSpinBox()
        self.top_k.setRange(1, 20)
        self.top_k.setValue(settings.top_k)
        self.threads = QSpinBox()
        self.threads.setRange(0, max(1, default_threads()))
        self.threads.setSpecialValueText(f"all cores ({default_threads()})")
        self.threads.setValue(settings.threads)
        self.ocr = QCheckBox("Recognise the text of scanned pages and images (OCR)")
        self.ocr.setChecked(settings.ocr)
        self.ocr.setToolTip(
            "Scanned PDF pages and PNG, JPEG and TIFF images are read by text recognition while "
            "indexing: a few seconds a page, all on this computer. Changing it reads PDFs and "
            "images again on the next indexing run."
        )
        self.data_dir = QLineEdit(settings.data_dir or "")
        self.data_dir.setPlaceholderText("default user data folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.data_dir, 1)
        row.addWidget(browse)
        form.addRow("Context size", self.context)
        form.addRow("Temperature", self.temperature)
        form.addRow("Number of sources", self.top_k)
        form.addRow("CPU threads", self.threads)
        form.addRow("Indexing", self.ocr)
        form.addRow("Data location", row)
        form.addRow(QLabel("<small>A new data location takes effect at the next start.</small>"))
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Data location")
        if folder:
            self.data_dir.setText(folder)

    def apply(self) -> None:
        """Copy the widget values into the settings object."""
        s = self.settings
        s.context_size = self.context.value()
        s.temperature = round(self.temperature.value(), 2)
        s.top_k = self.top_k.value()
        s.threads = self.threads.value()
        s.ocr = self.ocr.isChecked()
        s.data_dir = self.data_dir.text().strip() or None
