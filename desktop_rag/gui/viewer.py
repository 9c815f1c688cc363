"""The built-in page viewer: a PDF page or an image drawn with the cited passage highlighted
(found in the page's text layer, or, on a scanned page, where OCR recognised it), or a text
document with the passage highlighted in its text.

Nothing here runs MuPDF or SQLite on the GUI thread: a page is drawn by
:class:`~desktop_rag.core.ingest.render.PageRenderer` (a sandboxed worker process, with a cache
of drawn pages) from a job on the task runner's small-jobs pool, which also makes the picture
(the highlight painted on a ``QImage``); the viewer shows "Drawing page 3…" at once, and the
page when it arrives, unless another source, page or zoom was asked for meanwhile (a stale
result is dropped). A page that cannot be drawn (a damaged or hostile file that crashes or hangs
MuPDF) shows its reason in the viewer; the window stays up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, Qt, QUrl, Signal
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

from desktop_rag.core.errors import Cancelled, UserError
from desktop_rag.core.ingest.render import MAX_ZOOM, MIN_ZOOM, PageRenderer, RenderedPage
from desktop_rag.core.types import CancelToken, TextBox
from desktop_rag.gui.tasks import Pool, TaskRunner
from desktop_rag.gui.workers import GeneratorWorker

log = logging.getLogger(__name__)

HIGHLIGHT = QColor(255, 214, 0, 110)
#: A drawing still running after this long when another is asked for is stopped (s): it is
#: stuck on a hostile page, and the worker draws one page at a time.
STUCK_AFTER_S = 1.0


def page_image(page: RenderedPage) -> QImage:
    """``page``'s pixels as a ``QImage`` (its own copy) with the passage's rectangles painted
    in :data:`HIGHLIGHT`. Safe off the GUI thread (a ``QImage``, not a ``QPixmap``)."""
    image = QImage(page.samples, page.width, page.height, page.stride,
                   QImage.Format.Format_RGB888).copy()  # fmt: skip
    if page.rects:
        painter = QPainter(image)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(HIGHLIGHT)
        for x0, y0, x1, y1 in page.pixel_rects():
            painter.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        painter.end()
    return image


class PageViewer(QWidget):
    """Shows one source: file name and page, zoom, previous/next page, open in system viewer.

    ``runner`` runs the drawing and look-up jobs (:attr:`Pool.MISC`); ``renderer`` draws the
    pages (the viewer's owner closes it). ``updated(what)`` is emitted whenever the viewer
    shows what was last asked for: ``"page"`` (drawn), ``"text"`` or ``"error"`` (the reason is
    in :attr:`error` and in the title). :attr:`rendered` says whether the page or text asked for
    is shown now.
    """

    updated = Signal(str)

    def __init__(
        self, runner: TaskRunner, renderer: PageRenderer, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.runner = runner
        self.renderer = renderer
        self.path: Path | None = None
        self.page = 1
        self.page_count = 0
        self.zoom = 1.5
        self.passage = ""
        self.cited_page: int | None = None
        #: The highlight shown: rectangles in points ``(x0, y0, x1, y1)`` on a drawn page, or
        #: the ``(start, end)`` characters in a text document.
        self.highlight_rects: list[Any] = []
        self.boxes: tuple[TextBox, ...] = ()
        #: Whether the page (or text) last asked for is shown (False while drawing or failed).
        self.rendered = False
        #: Why the last thing asked for could not be shown (None: it was).
        self.error: str | None = None
        #: The last page drawn (for tests and benchmarks).
        self.last_page: RenderedPage | None = None
        self._pdf = False  # a drawn document (not a text) is open
        self._fit = True  # the next drawing fits the page width to the panel
        self._find_boxes: Callable[[], Sequence[TextBox]] | None = None
        self._request = 0  # the number of the request whose answer is shown when it comes
        self._inflight: tuple[GeneratorWorker, float] | None = None

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
        self.image.setWordWrap(True)
        self.page_scroll = QScrollArea()
        self.page_scroll.setWidget(self.image)
        self.page_scroll.setWidgetResizable(True)
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.page_scroll)
        self.stack.addWidget(self.text)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(bar)
        layout.addWidget(self.stack, 1)
        self._update_buttons()

    # -- showing a source --------------------------------------------------------------------
    def show_pdf(
        self,
        path: Path,
        page: int,
        passage: str,
        boxes: Sequence[TextBox] = (),
        *,
        find_boxes: Callable[[], Sequence[TextBox]] | None = None,
    ) -> None:
        """Open ``path`` (a PDF or an image) at 1-based ``page`` and highlight ``passage``
        there: at ``boxes`` (where OCR recognised it, in points) when given, or those
        ``find_boxes()`` returns (called off the GUI thread: it may read the index), else where
        the page's text layer has it. Returns at once ("Drawing page 3…"); the page follows."""
        self.path, self.passage, self.cited_page = Path(path), passage, page
        self.boxes, self._find_boxes = tuple(boxes), find_boxes
        self._pdf, self._fit, self.page_count = True, True, 0
        self.highlight_rects = []
        self.stack.setCurrentWidget(self.page_scroll)
        self.image.clear()
        self._draw(page)

    def show_text_of(
        self, path: Path, load: Callable[[], str | None], start: int, end: int
    ) -> None:
        """Show the text ``load()`` returns (called off the GUI thread: it may read the index;
        None: the document is not indexed any more) as :meth:`show_text` does; returns at once
        ("Opening …")."""
        self._begin(Path(path), f"<b>{Path(path).name}</b> — opening…")
        self._pdf = False
        request = self._request

        def job(cancel: CancelToken) -> str | UserError:
            if cancel.cancelled:
                raise Cancelled()
            if not Path(path).exists():
                return UserError(f"{Path(path).name} no longer exists.")
            text = load()
            if text is None:
                return UserError(f"{Path(path).name} is not indexed any more.")
            return text

        def shown(result: str | UserError) -> None:
            if request != self._request:
                return
            if isinstance(result, UserError):
                self._show_error(result.message)
            else:
                self.show_text(Path(path), result, start, end)

        self._submit(job, shown, request, "Opening the source")

    def show_text(self, path: Path, text: str, start: int, end: int) -> None:
        """Show a text document with characters ``start:end`` highlighted and scrolled into view."""
        self._request += 1  # whatever was being drawn is stale now
        self._pdf = False
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
        self.rendered, self.error = True, None
        self._update_buttons()
        self.updated.emit("text")

    def go_to(self, page: int) -> None:
        """Draw 1-based ``page`` of the open PDF (highlight only on the cited page)."""
        if not self._pdf or not 1 <= page <= max(self.page_count, 1):
            return
        self._draw(page)

    def set_zoom(self, zoom: float) -> None:
        """Zoom factor (1.0 = 72 dpi), clamped to 0.5..4; a drawn page is drawn again."""
        self.zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        if self._pdf:
            self._fit = False
            self._draw(self.page)
        else:
            font = self.text.font()
            font.setPointSizeF(max(6.0, 10.0 * self.zoom / 1.5))
            self.text.setFont(font)

    def open_external(self) -> None:
        """Open the file in the desktop's default application."""
        if self.path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.path)))

    # -- drawing off the GUI thread ----------------------------------------------------------
    def _begin(self, path: Path, title: str) -> None:
        """A new request: what is on its way is stale from now on."""
        self._request += 1
        self.path = path
        self.rendered, self.error = False, None
        self.title.setText(title)
        inflight = self._inflight
        if inflight is not None and time.monotonic() - inflight[1] > STUCK_AFTER_S:
            inflight[0].quit()  # stuck on a hostile page: stop it, the next one waits for it
        self._update_buttons()

    def _draw(self, page: int) -> None:
        """Ask for ``page`` drawn at the current zoom (or fitted), the cited page highlighted."""
        assert self.path is not None
        self.page = page
        self._begin(self.path, f"<b>{self.path.name}</b> — drawing page {page}…")
        if self.image.pixmap().isNull():
            self.image.setText(f"Drawing page {page}…")
        request, renderer, path = self._request, self.renderer, self.path
        cited = page == self.cited_page
        passage = self.passage if cited else ""
        boxes, find_boxes = (self.boxes, self._find_boxes) if cited else ((), None)
        zoom = None if self._fit else self.zoom
        room = max(0, self.page_scroll.viewport().width() - 8)

        Drawn = tuple[RenderedPage, QImage, tuple[TextBox, ...]]

        def job(cancel: CancelToken) -> Drawn | UserError:
            if cancel.cancelled:
                raise Cancelled()
            try:
                found = tuple(find_boxes()) if find_boxes is not None else boxes
                drawn = renderer.render(path, page, zoom=zoom, fit_width=room,
                                        passage=passage, boxes=found, cancel=cancel)  # fmt: skip
            except UserError as exc:
                return exc
            return drawn, page_image(drawn), found

        def shown(result: Drawn | UserError) -> None:
            if request != self._request:
                return  # another source, page or zoom was asked for meanwhile
            if isinstance(result, UserError):
                self._show_error(result.message)
                return
            drawn, image, found = result
            if find_boxes is not None:  # looked up once per source shown
                self.boxes, self._find_boxes = found, None
            self._show_page(drawn, image)

        self._submit(job, shown, request, "Drawing the page")

    def _submit(self, job: Callable[[CancelToken], Any], shown: Callable[[Any], None],
                request: int, what: str) -> None:  # fmt: skip
        if self.runner.closed:
            return
        worker = self.runner.submit(
            job, what, Pool.MISC, on_return=shown,
            on_error=lambda e: self._failed(request, f"{what} failed: {e}"),
        )  # fmt: skip
        self._inflight = (worker, time.monotonic())
        worker.signals.finished.connect(lambda w=worker: self._finished(w))

    def _failed(self, request: int, message: str) -> None:
        """A bug in a job (the notifier logged it): its reason in the viewer, if still current."""
        if request == self._request:
            self._show_error(message)

    def _finished(self, worker: GeneratorWorker) -> None:
        if self._inflight is not None and self._inflight[0] is worker:
            self._inflight = None

    def _show_page(self, drawn: RenderedPage, image: QImage) -> None:
        self.last_page = drawn
        self.page, self.page_count, self.zoom = drawn.page, drawn.page_count, drawn.zoom
        self._fit = False  # fitted once per source: other pages keep this zoom
        self.highlight_rects = list(drawn.rects)
        self.image.setPixmap(QPixmap.fromImage(image))
        if drawn.rects:
            top = int(min(r[1] for r in drawn.rects) * drawn.zoom) - 40
            left = int(min(r[0] for r in drawn.rects) * drawn.zoom) - 20
            self.page_scroll.verticalScrollBar().setValue(max(0, top))
            self.page_scroll.horizontalScrollBar().setValue(max(0, left))
        mark = " — cited passage highlighted" if drawn.rects else ""
        name = Path(drawn.path).name
        self.title.setText(f"<b>{name}</b>, page {drawn.page} of {drawn.page_count}{mark}")
        self.rendered, self.error = True, None
        self._update_buttons()
        self.updated.emit("page")

    def _show_error(self, message: str) -> None:
        self.rendered, self.error = False, message
        self.title.setText(message)
        self.stack.setCurrentWidget(self.page_scroll)
        self.image.clear()
        self.image.setText(message)
        self.highlight_rects = []
        self._update_buttons()
        self.updated.emit("error")

    def _update_buttons(self) -> None:
        pdf = self._pdf and self.page_count > 0
        self.prev_btn.setEnabled(pdf and self.page > 1)
        self.next_btn.setEnabled(pdf and self.page < self.page_count)
        self.zoom_in_btn.setEnabled(self.path is not None)
        self.zoom_out_btn.setEnabled(self.path is not None)
        self.open_btn.setEnabled(self.path is not None)
