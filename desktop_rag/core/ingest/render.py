"""Drawing a page of a PDF or an image for the viewer, in a sandboxed child process.

A citation click draws a page with MuPDF, the same C code that crafted files make hang, exhaust
memory or crash at extraction time (:mod:`desktop_rag.core.ingest.sandbox`). So
:class:`PageRenderer` draws in its own :class:`~desktop_rag.core.ingest.sandbox.Sandbox` (a
spawned worker with a memory cap and a timeout, restarted after a crash; separate from the
extraction worker, so a click never waits behind a long OCR run): :func:`draw_page` opens the file
there, draws the page to RGB pixels and finds the cited passage's rectangles in the page's text
layer (:func:`passage_rects`). A page that fails, crashes the worker or runs past the timeout
raises :class:`RenderError` with a reason in plain words ("MuPDF crashed while drawing page 3 of
X.pdf (SIGSEGV; …)"); the next page gets a fresh worker.

Drawn pages are kept in a small LRU cache bounded in bytes, keyed by (path, modification time,
size, page, zoom): going back to a page, or clicking the same citation again, draws nothing.

Coordinates are PDF points (1/72 inch) from the page's top-left corner; pixels are points times
the zoom (1.0 = 72 dpi).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import UserError
from desktop_rag.core.ingest.sandbox import Sandbox, WorkerFailed
from desktop_rag.core.text.citations import CELL_SEP
from desktop_rag.core.types import CancelToken, TextBox

#: The function the worker runs (tests substitute misbehaving ones).
RENDERER = "desktop_rag.core.ingest.render:draw_page"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MEMORY_LIMIT = 2 * 1024**3  # bytes of address space for the drawing worker
DEFAULT_CACHE_BYTES = 96 * 1024**2  # pixels kept of drawn pages (about 15 letter pages at 150%)
MIN_ZOOM, MAX_ZOOM = 0.5, 4.0
#: A fitted page is never drawn below 100% (72 dpi), so that its text stays readable.
MIN_FIT_ZOOM = 1.0
#: The most pixels one drawn page may have (a poster-sized page is drawn at a lower zoom).
MAX_PIXELS = 40_000_000

#: ``(x0, y0, x1, y1)`` in points.
Rect = tuple[float, float, float, float]


class RenderError(UserError):
    """A page could not be drawn; the message says why in plain words."""


@dataclass(frozen=True)
class RenderedPage:
    """One drawn page: ``samples`` are ``height`` rows of ``width`` RGB pixels (3 bytes each, no
    padding: ``stride`` = 3 × ``width``), at ``zoom`` pixels per point. ``rects`` are the
    passage's rectangles on the page in points (empty: none asked for or found), ``page_size``
    the page's (width, height) in points. ``cached``: it came from the cache, not the worker."""

    path: str
    page: int  # 1-based
    page_count: int
    zoom: float
    width: int
    height: int
    samples: bytes
    page_size: tuple[float, float]
    rects: tuple[Rect, ...] = ()
    cached: bool = False

    @property
    def stride(self) -> int:
        """Bytes per row of ``samples``."""
        return 3 * self.width

    def pixel_rects(self) -> list[Rect]:
        """``rects`` in pixels of this drawing."""
        z = self.zoom
        return [(x0 * z, y0 * z, x1 * z, y1 * z) for x0, y0, x1, y1 in self.rects]


def passage_rects(page: Any, passage: str) -> list[Rect]:
    """Rectangles (points) covering ``passage`` on a PyMuPDF ``page``, searched line by line:
    each line's first match; a table row (cells joined by ``CELL_SEP``, as ``pdf.page_layout``
    writes them) is found by its label and spans the row to the page's right margin. Lines under
    6 characters are skipped ("2022" occurs all over a page)."""
    rects: list[Rect] = []
    for line in passage.splitlines():
        line = " ".join(line.split())
        if len(line) < 6:
            continue
        if CELL_SEP.strip() in line:
            label = next((c.strip() for c in line.split(CELL_SEP.strip()) if len(c.strip()) >= 3),
                         "")  # fmt: skip
            found = page.search_for(label[:120])[:1] if label else []
            if found:
                r = found[0]
                width = page.rect.x1 - page.rect.x0
                rects.append((r.x0, r.y0, max(r.x1, page.rect.x1 - 0.06 * width), r.y1))
            if found or not label:
                continue
        rects.extend((r.x0, r.y0, r.x1, r.y1) for r in page.search_for(line[:120])[:1])
    return rects


def fit_zoom(page_width: float, room_px: int) -> float:
    """The zoom that fits a page ``page_width`` points wide into ``room_px`` pixels, kept
    within :data:`MIN_FIT_ZOOM`..:data:`MAX_ZOOM`."""
    if page_width <= 0 or room_px <= 100:
        return 1.5
    return min(MAX_ZOOM, max(MIN_FIT_ZOOM, room_px / page_width))


# -- in the worker -----------------------------------------------------------------------------
_open: tuple[tuple[str, int, int], Any] | None = None  # the worker's last document, kept open


def _document(path: Path) -> Any:
    """The PyMuPDF document at ``path`` (the last one stays open while the file is unchanged)."""
    global _open
    import pymupdf

    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if _open is not None and _open[0] == key:
        return _open[1]
    if _open is not None:
        _open[1].close()
        _open = None
    try:
        doc = pymupdf.open(path)
    except Exception as exc:
        raise RenderError(f"not a readable PDF or image ({exc})") from None
    if doc.needs_pass and not doc.authenticate(""):
        doc.close()
        raise RenderError("the file is protected by a password")
    if doc.page_count < 1:
        doc.close()
        raise RenderError("the file has no pages")
    _open = (key, doc)
    return doc


def draw_page(
    path: Path,
    *,
    page: int,
    zoom: float | None = None,
    fit_width: int = 0,
    passage: str = "",
    draw: bool = True,
) -> RenderedPage:
    """Draw 1-based ``page`` of the PDF or image at ``path`` (runs in the worker).

    ``zoom`` in pixels per point, or None: fit ``fit_width`` pixels (:func:`fit_zoom`); a page
    over :data:`MAX_PIXELS` is drawn smaller. ``passage``: find its rectangles
    (:func:`passage_rects`). ``draw`` False: only measure the page and find the passage (empty
    ``samples``, ``width``/``height`` 0).

    Raises:
        RenderError: the file cannot be opened, needs a password, or has no such page.
    """
    doc = _document(path)
    if not 1 <= page <= doc.page_count:
        raise RenderError(f"it has {doc.page_count} page(s), not a page {page}")
    pdf_page = doc.load_page(page - 1)
    w, h = pdf_page.rect.width, pdf_page.rect.height
    z = fit_zoom(w, fit_width) if zoom is None else zoom
    if w * h * z * z > MAX_PIXELS:
        z = (MAX_PIXELS / max(1.0, w * h)) ** 0.5
    rects = tuple(passage_rects(pdf_page, passage)) if passage else ()
    width = height = 0
    samples = b""
    if draw:
        import pymupdf

        pix = pdf_page.get_pixmap(matrix=pymupdf.Matrix(z, z), alpha=False)
        width, height = pix.width, pix.height
        samples = pix.samples
        if pix.stride != 3 * width:  # rows padded: pack them
            samples = b"".join(
                samples[y * pix.stride : y * pix.stride + 3 * width] for y in range(height)
            )
    return RenderedPage(str(path), page, doc.page_count, z, width, height, samples, (w, h), rects)


# -- in the app --------------------------------------------------------------------------------
class PageRenderer:
    """Draws pages in a sandboxed worker, with an LRU cache of drawn pages.

    Thread-safe: calls from several threads are served one at a time (the worker draws one
    page at a time); cache hits do not wait for the worker. ``renderer`` is the worker's
    ``"module:function"`` with :func:`draw_page`'s signature (tests substitute their own).
    """

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        renderer: str = RENDERER,
    ) -> None:
        self.sandbox = Sandbox(renderer, timeout_s=timeout_s, memory_limit_bytes=memory_limit_bytes,
                               error=RenderError, name="desktop-rag-render",
                               preload=("pymupdf",))  # fmt: skip
        self.cache_bytes = cache_bytes
        self._pages: OrderedDict[tuple[Any, ...], RenderedPage] = OrderedDict()  # samples, no rects
        self._rects: OrderedDict[tuple[Any, ...], tuple[Rect, ...]] = OrderedDict()
        self._sizes: dict[tuple[Any, ...], tuple[float, float]] = {}  # page size in points
        self._held = 0  # bytes of samples in _pages
        self._lock = threading.Lock()
        #: Drawings served from the cache / by the worker (for tests and benchmarks).
        self.hits = 0
        self.misses = 0

    @property
    def timeout_s(self) -> float:
        """How long one page may take to draw (s)."""
        return self.sandbox.timeout_s

    def render(
        self,
        path: str | Path,
        page: int,
        *,
        zoom: float | None = None,
        fit_width: int = 0,
        passage: str = "",
        boxes: Sequence[TextBox] = (),
        cancel: CancelToken | None = None,
    ) -> RenderedPage:
        """Page ``page`` (1-based) of the PDF or image at ``path`` drawn at ``zoom`` (clamped to
        :data:`MIN_ZOOM`..:data:`MAX_ZOOM`), or, with ``zoom`` None, fitted to ``fit_width``
        pixels (:func:`fit_zoom`). Its ``rects`` highlight the passage: ``boxes`` (where OCR
        read it on a scanned page, in points) when given, else ``passage`` found in the page's
        text layer; none when both are empty. A ``cancel`` token cancelled while the worker
        draws stops it (:meth:`Sandbox.call`).

        Raises:
            Cancelled: ``cancel`` was cancelled first.
            RenderError: the file is gone or unreadable, has no such page, or drawing it failed,
                crashed the worker or ran past :attr:`timeout_s` (the message names the page and
                the file and says which).
        """
        path = Path(path)
        where = f"page {page} of {path.name}"
        try:
            st = path.stat()
        except OSError:
            raise RenderError(f"Cannot draw {where}: the file no longer exists") from None
        doc_key = (str(path), st.st_mtime_ns, st.st_size, page)
        if zoom is not None:
            zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        with self._lock:
            size = self._sizes.get(doc_key)
        if zoom is None and size is not None:
            zoom = fit_zoom(size[0], fit_width)
        page_key = (*doc_key, None if zoom is None else round(zoom, 4))
        box_rects = tuple((b.x0, b.y0, b.x1, b.y1) for b in boxes)
        rect_key = (*doc_key, passage)
        with self._lock:
            drawn = self._pages.get(page_key) if zoom is not None else None
            rects = box_rects or (self._rects.get(rect_key, None) if passage else ())
            if drawn is not None:
                self._pages.move_to_end(page_key)
            if passage and not box_rects and rects is not None:
                self._rects.move_to_end(rect_key)
            if drawn is not None and rects is not None:
                self.hits += 1
                return replace(drawn, rects=rects, cached=True)
        options = {"page": page, "zoom": zoom, "fit_width": fit_width,
                   "passage": passage if rects is None else "", "draw": drawn is None}  # fmt: skip
        result = self._call(path, options, where, cancel)
        self.misses += 1
        if rects is None:
            rects = result.rects
        if drawn is None:
            drawn = replace(result, rects=())
        with self._lock:
            if len(self._sizes) > 4096:
                self._sizes.clear()
            self._sizes[doc_key] = drawn.page_size
            if passage and not box_rects:
                self._rects[rect_key] = rects
                while len(self._rects) > 256:
                    self._rects.popitem(last=False)
            if page_key[-1] is None:  # fitted: the zoom asked for is known now
                page_key = (*doc_key, round(fit_zoom(drawn.page_size[0], fit_width), 4))
            self._keep(page_key, drawn)
        return replace(drawn, rects=rects)

    def _call(
        self, path: Path, options: dict[str, Any], where: str, cancel: CancelToken | None
    ) -> RenderedPage:
        try:
            result = self.sandbox.call(path, options, cancel=cancel)
        except RenderError as exc:
            raise RenderError(f"Cannot draw {where}: {exc.message}") from None
        except WorkerFailed as exc:
            if exc.timed_out:
                raise RenderError(
                    f"Drawing {where} took longer than {self.timeout_s:.0f} s and was stopped "
                    "(a damaged or hostile file?)"
                ) from None
            how = f" ({exc.signal_name})" if exc.signal_name else ""
            raise RenderError(
                f"MuPDF crashed while drawing {where}{how}: a damaged or hostile file?"
            ) from None
        if not isinstance(result, RenderedPage):
            raise RenderError(f"Cannot draw {where}: the drawing worker answered {result!r:.80}")
        return result

    def _keep(self, key: tuple[Any, ...], drawn: RenderedPage) -> None:
        """Cache ``drawn`` under ``key``, dropping the least recently used pages over budget."""
        size = len(drawn.samples)
        if not size or size > self.cache_bytes:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self._held -= len(old.samples)
        self._pages[key] = drawn
        self._held += size
        while self._held > self.cache_bytes:
            _, evicted = self._pages.popitem(last=False)
            self._held -= len(evicted.samples)

    @property
    def cached_bytes(self) -> int:
        """Bytes of pixels held by the cache."""
        return self._held

    def close(self) -> None:
        """Stop the worker and empty the cache (idempotent; a later render starts a new one)."""
        self.sandbox.close()
        with self._lock:
            self._pages.clear()
            self._rects.clear()
            self._held = 0
