"""The built-in page viewer: a PDF page or an image rendered with PyMuPDF with the cited passage
highlighted (found in the page's text layer, or, on a scanned page, where OCR recognised it), or a
text document with the passage highlighted in its text."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QImage,
    QPainter,
    QPixmap,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_rag.core.text.citations import CELL_SEP
from desktop_rag.core.types import TextBox

log = logging.getLogger(__name__)

HIGHLIGHT = QColor(255, 214, 0, 110)


def passage_rects(page: Any, passage: str) -> list[Any]:
    """PDF rectangles (PyMuPDF ``Rect``) covering ``passage`` on ``page``, searched line by line."""
    rects: list[Any] = []
    for line in passage.splitlines():
        line = " ".join(line.split())
        # Short fragments ("2022", "$") occur all over a page: matching them would scatter the
        # highlight; the passage's longer lines locate it.
        if len(line) < 6:
            continue
        if CELL_SEP.strip() in line:  # a table row (pdf.page_layout): find its label, take the row
            label = next((c.strip() for c in line.split(CELL_SEP.strip()) if len(c.strip()) >= 3),
                         "")  # fmt: skip
            found = page.search_for(label[:120])[:1] if label else []
            if found:
                r = found[0]
                width = page.rect.x1 - page.rect.x0
                rects.append(type(r)(r.x0, r.y0, max(r.x1, page.rect.x1 - 0.06 * width), r.y1))
            if found or not label:
                continue
        rects.extend(page.search_for(line[:120])[:1])
    return rects


class PageViewer(QWidget):
    """Shows one source: file name and page, zoom, previous/next page, open in system viewer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self.page = 1
        self.page_count = 0
        self.zoom = 1.5
        self.passage = ""
        self.cited_page: int | None = None
        self.highlight_rects: list[Any] = []
        self.boxes: tuple[TextBox, ...] = ()
        self._doc: Any = None

        self.title = QLabel("Click a citation or a source to see it here.")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.prev_btn = QPushButton("◀")
        self.next_btn = QPushButton("▶")
        self.zoom_out_btn = QPushButton("−")
        self.zoom_in_btn = QPushButton("+")
        self.open_btn = QPushButton("Open in system viewer")
        for b, tip in ((self.prev_btn, "Previous page"), (self.next_btn, "Next page"),
                       (self.zoom_out_btn, "Zoom out"), (self.zoom_in_btn, "Zoom in")):  # fmt: skip
            b.setToolTip(tip)
            b.setFixedWidth(34)
        self.prev_btn.clicked.connect(lambda: self.go_to(self.page - 1))
        self.next_btn.clicked.connect(lambda: self.go_to(self.page + 1))
        self.zoom_in_btn.clicked.connect(lambda: self.set_zoom(self.zoom * 1.25))
        self.zoom_out_btn.clicked.connect(lambda: self.set_zoom(self.zoom / 1.25))
        self.open_btn.clicked.connect(self.open_external)

        bar = QHBoxLayout()
        for w in (self.prev_btn, self.next_btn, self.zoom_out_btn, self.zoom_in_btn):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.open_btn)

        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.image)
        self.scroll.setWidgetResizable(True)
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.scroll)
        self.stack.addWidget(self.text)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)
        self._update_buttons()

    # -- showing a source --------------------------------------------------------------------
    def show_pdf(self, path: Path, page: int, passage: str, boxes: Sequence[TextBox] = ()) -> None:
        """Open ``path`` (a PDF or an image) at 1-based ``page`` and highlight ``passage`` there:
        at ``boxes`` (where OCR recognised it, in points) when given, else where the page's text
        layer has it."""
        import pymupdf

        self._close_doc()
        self.path, self.passage, self.cited_page = Path(path), passage, page
        self.boxes = tuple(boxes)
        try:
            self._doc = pymupdf.open(path)
            if self._doc.needs_pass:
                self._doc.authenticate("")
            self.page_count = self._doc.page_count
        except Exception as exc:
            self._show_error(f"Cannot open {Path(path).name}: {exc}")
            return
        self.stack.setCurrentWidget(self.scroll)
        # Fit the page width to the panel, but never below 100% (72 dpi) so text stays readable;
        # the zoom buttons adjust from there.
        width = self._doc.load_page(min(max(page, 1), self.page_count) - 1).rect.width
        room = self.scroll.viewport().width() - 8
        if width > 0 and room > 100:
            self.zoom = min(4.0, max(1.0, room / width))
        self.go_to(page)

    def show_text(self, path: Path, text: str, start: int, end: int) -> None:
        """Show a text document with characters ``start:end`` highlighted and scrolled into view."""
        self._close_doc()
        self.path, self.passage, self.cited_page = Path(path), text[start:end], None
        self.page, self.page_count = 1, 1
        self.stack.setCurrentWidget(self.text)
        self.text.setPlainText(text)
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(max(0, start))
        cursor.setPosition(min(len(text), end), QTextCursor.MoveMode.KeepAnchor)
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(255, 214, 0, 160))
        cursor.mergeCharFormat(fmt)
        self.highlight_rects = [(start, end)]
        end_cursor = QTextCursor(self.text.document())
        end_cursor.setPosition(min(len(text), end))
        self.text.setTextCursor(end_cursor)
        self.text.ensureCursorVisible()
        start_cursor = QTextCursor(self.text.document())
        start_cursor.setPosition(max(0, start))
        self.text.setTextCursor(start_cursor)
        self.text.ensureCursorVisible()
        self.title.setText(f"<b>{Path(path).name}</b> — cited passage highlighted")
        self._update_buttons()

    def go_to(self, page: int) -> None:
        """Render 1-based ``page`` of the open PDF (highlight only on the cited page)."""
        if self._doc is None or not 1 <= page <= self.page_count:
            return
        self.page = page
        pdf_page = self._doc.load_page(page - 1)
        if page != self.cited_page:
            self.highlight_rects = []
        elif self.boxes:
            self.highlight_rects = [_rect(b.x0, b.y0, b.x1, b.y1) for b in self.boxes]
        else:
            self.highlight_rects = passage_rects(pdf_page, self.passage)
        pix = pdf_page.get_pixmap(matrix=_matrix(self.zoom), alpha=False)
        image = QImage(
            pix.samples, pix.width, pix.height, pix.stride, QImage.Format.Format_RGB888
        ).copy()
        if self.highlight_rects:
            painter = QPainter(image)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(HIGHLIGHT)
            for r in self.highlight_rects:
                painter.drawRect(QRectF(r.x0 * self.zoom, r.y0 * self.zoom, r.width * self.zoom,
                                        r.height * self.zoom))  # fmt: skip
            painter.end()
        self.image.setPixmap(QPixmap.fromImage(image))
        if self.highlight_rects:
            top = int(min(r.y0 for r in self.highlight_rects) * self.zoom) - 40
            left = int(min(r.x0 for r in self.highlight_rects) * self.zoom) - 20
            self.scroll.verticalScrollBar().setValue(max(0, top))
            self.scroll.horizontalScrollBar().setValue(max(0, left))
        mark = " — cited passage highlighted" if self.highlight_rects else ""
        assert self.path is not None
        self.title.setText(f"<b>{self.path.name}</b>, page {page} of {self.page_count}{mark}")
        self._update_buttons()

    def set_zoom(self, zoom: float) -> None:
        """Zoom factor (1.0 = 72 dpi), clamped to 0.5..4."""
        self.zoom = min(4.0, max(0.5, zoom))
        if self._doc is not None:
            self.go_to(self.page)
        else:
            font = self.text.font()
            font.setPointSizeF(max(6.0, 10.0 * self.zoom / 1.5))
            self.text.setFont(font)

    def open_external(self) -> None:
        """Open the file in the desktop's default application."""
        if self.path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.path)))

    def _show_error(self, message: str) -> None:
        self.title.setText(message)
        self.image.clear()
        self._update_buttons()

    def _update_buttons(self) -> None:
        pdf = self._doc is not None
        self.prev_btn.setEnabled(pdf and self.page > 1)
        self.next_btn.setEnabled(pdf and self.page < self.page_count)
        self.zoom_in_btn.setEnabled(self.path is not None)
        self.zoom_out_btn.setEnabled(self.path is not None)
        self.open_btn.setEnabled(self.path is not None)

    def _close_doc(self) -> None:
        if self._doc is not None:
            self._doc.close()
            self._doc = None


def _rect(x0: float, y0: float, x1: float, y1: float) -> Any:
    import pymupdf

    return pymupdf.Rect(x0, y0, x1, y1)


def _matrix(zoom: float) -> Any:
    import pymupdf

    return pymupdf.Matrix(zoom, zoom)
