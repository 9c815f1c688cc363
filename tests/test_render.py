"""Drawing pages for the viewer in a sandboxed worker: real PDFs and images drawn with the cited
passage's rectangles, the LRU cache, and files that crash, hang or exhaust the drawing worker
failing with a reason while the next page draws."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_rag.core.ingest.render import PageRenderer, RenderError, fit_zoom
from desktop_rag.core.resources import resources_dir
from desktop_rag.core.types import TextBox
from tests.conftest import make_pdf, make_scan

HOSTILE = "tests.hostile_renderers:misbehaving_draw"
SAMPLE = resources_dir() / "samples" / "quick-reference.pdf"
PASSAGE = "Esc or the Stop button stops the answer that is being written."


@pytest.fixture
def renderer() -> Iterator[PageRenderer]:
    r = PageRenderer()
    yield r
    r.close()


@pytest.fixture
def hostile() -> Iterator[PageRenderer]:
    r = PageRenderer(timeout_s=4, memory_limit_bytes=1024**3, renderer=HOSTILE)
    yield r
    r.close()


def _dark_pixels(samples: bytes) -> int:
    """How many bytes of RGB samples are darker than light grey (text, not paper)."""
    return sum(1 for b in samples[::3] if b < 128)


def test_a_real_pdf_page_is_drawn_with_the_passage_found(renderer: PageRenderer) -> None:
    page = renderer.render(SAMPLE, 1, zoom=1.0, passage=f"Keyboard shortcuts\n{PASSAGE}\n2024")
    assert (page.page, page.page_count, page.zoom) == (1, 3, 1.0)
    assert page.page_size == (595.0, 842.0)
    assert (page.width, page.height) == (595, 842) and page.stride == 595 * 3
    assert len(page.samples) == 595 * 842 * 3
    assert _dark_pixels(page.samples) > 1000, "the page's text was drawn"
    assert not page.cached
    # one rectangle per line long enough to place ("2024" is not): the Esc line, near the top
    assert len(page.rects) == 2
    x0, y0, x1, y1 = page.rects[1]
    assert 0 < x0 < x1 <= 595 and 0 < y0 < y1 < 300 and y1 - y0 < 20
    # the drawing's pixels of the rectangle hold text
    row = int((y0 + y1) / 2)
    line = page.samples[row * page.stride + int(x0) * 3 : row * page.stride + int(x1) * 3]
    assert _dark_pixels(line) > 5
    twice = renderer.render(SAMPLE, 1, zoom=2.0, passage=PASSAGE)
    assert (twice.width, twice.height) == (1190, 1684)
    assert twice.rects == page.rects[1:], "rectangles are in points, whatever the zoom"
    assert twice.pixel_rects() == [tuple(2 * v for v in page.rects[1])]


def test_fitting_the_width_and_ocr_boxes(renderer: PageRenderer, tmp_path: Path) -> None:
    fitted = renderer.render(SAMPLE, 2, fit_width=1190)
    assert fitted.zoom == pytest.approx(2.0) and fitted.width == 1190
    assert fit_zoom(595, 300) == 1.0, "never below 100%"
    assert fit_zoom(595, 10_000) == 4.0
    # a scan (an image file): no text layer; the boxes OCR stored are the highlight
    scan = make_scan(tmp_path / "notice.png", ["The harbour dues for 2024 are 31 euros a tonne."])
    boxes = (TextBox(0, 20, 50.0, 50.0, 300.0, 64.0),)
    page = renderer.render(scan, 1, zoom=1.5, passage="The harbour dues for 2024", boxes=boxes)
    assert page.page_count == 1 and page.rects == ((50.0, 50.0, 300.0, 64.0),)
    assert page.pixel_rects() == [(75.0, 75.0, 450.0, 96.0)]
    assert _dark_pixels(page.samples) > 100


def test_drawn_pages_are_cached_within_a_byte_budget(tmp_path: Path) -> None:
    one_page = 595 * 842 * 3
    r = PageRenderer(cache_bytes=int(one_page * 2.5))
    try:
        first = r.render(SAMPLE, 1, zoom=1.0, passage=PASSAGE)
        again = r.render(SAMPLE, 1, zoom=1.0, passage=PASSAGE)
        assert again.cached and not first.cached and (r.hits, r.misses) == (1, 1)
        assert again.samples == first.samples and again.rects == first.rects
        # the same page without a passage (another page shown, then back): no highlight, cached
        plain = r.render(SAMPLE, 1, zoom=1.0)
        assert plain.cached and plain.rects == ()
        # another passage on a cached page: the worker only searches, the pixels are reused
        other = r.render(SAMPLE, 1, zoom=1.0, passage="Ctrl+N starts a new conversation.")
        assert not other.cached and other.rects and other.rects != first.rects
        assert other.samples == first.samples
        for n in (2, 3):
            r.render(SAMPLE, n, zoom=1.0)
        assert r.cached_bytes <= int(one_page * 2.5)
        misses = r.misses
        assert not r.render(SAMPLE, 1, zoom=1.0).cached, "the least recently used page left"
        assert r.render(SAMPLE, 3, zoom=1.0).cached
        assert r.misses == misses + 1
        # a file changed on disk is drawn again
        copy = tmp_path / "card.pdf"
        shutil.copy(SAMPLE, copy)
        r.render(copy, 1, zoom=1.0)
        make_pdf(copy, ["A different first page about tide tables."])
        changed = r.render(copy, 1, zoom=1.0)
        assert not changed.cached and changed.page_count == 1
    finally:
        r.close()


def test_unreadable_files_and_pages_have_reasons(renderer: PageRenderer, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n this is not really a pdf \x00\x01\x02")
    with pytest.raises(RenderError, match=r"Cannot draw page 1 of broken.pdf: not a readable PDF"):
        renderer.render(broken, 1)
    with pytest.raises(RenderError, match=r"page 7 of quick-reference.pdf: it has 3 page"):
        renderer.render(SAMPLE, 7)
    with pytest.raises(RenderError, match=r"gone.pdf: the file no longer exists"):
        renderer.render(tmp_path / "gone.pdf", 1)
    locked = make_pdf(tmp_path / "locked.pdf", ["Secret minutes."], user_pw="pw")
    with pytest.raises(RenderError, match="protected by a password"):
        renderer.render(locked, 1)
    assert renderer.render(SAMPLE, 1, zoom=1.0).width == 595


def test_a_crash_a_hang_or_a_memory_bomb_fails_one_page(
    hostile: PageRenderer, tmp_path: Path
) -> None:
    def copy(name: str) -> Path:
        return Path(shutil.copy(SAMPLE, tmp_path / name))

    good = copy("good.pdf")
    assert hostile.render(good, 1, zoom=1.0).width == 595
    with pytest.raises(
        RenderError, match=r"MuPDF crashed while drawing page 3 of segfault.pdf \(SIGSEGV"
    ):
        hostile.render(copy("segfault.pdf"), 3)
    assert hostile.render(good, 2, zoom=1.0).page == 2, "a fresh worker draws the next page"
    with pytest.raises(
        RenderError, match=r"MuPDF crashed while drawing page 1 of abort.pdf \(SIGABRT"
    ):
        hostile.render(copy("abort.pdf"), 1)
    with pytest.raises(RenderError, match=r"Drawing page 2 of hang.pdf took longer than 4 s"):
        hostile.render(copy("hang.pdf"), 2)
    assert hostile.render(good, 3, zoom=1.0).page == 3
    with pytest.raises(RenderError, match="needs more memory than a document may use"):
        hostile.render(copy("bomb.pdf"), 1)
    assert hostile.render(good, 1, zoom=2.0).width == 1190


def test_a_cancelled_render_stops_the_worker_at_once(hostile: PageRenderer, tmp_path: Path) -> None:
    import threading
    import time

    from desktop_rag.core.errors import Cancelled
    from desktop_rag.core.types import CancelToken

    hang = Path(shutil.copy(SAMPLE, tmp_path / "hang.pdf"))
    token = CancelToken()
    threading.Timer(0.5, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        hostile.render(hang, 1, cancel=token)
    assert time.monotonic() - started < 3, "stopped before the 4 s timeout"
    assert hostile.render(SAMPLE, 1, zoom=1.0).width == 595


def test_the_worker_can_be_started_ahead_of_the_first_page() -> None:
    from desktop_rag.core.errors import Cancelled
    from desktop_rag.core.types import CancelToken

    r = PageRenderer()
    try:
        token = CancelToken()
        token.cancel()
        with pytest.raises(Cancelled):
            r.sandbox.warm_up(token)
        assert r.sandbox._proc is None, "a cancelled start leaves no worker"
        r.sandbox.warm_up()
        worker = r.sandbox._proc
        assert worker is not None and worker.is_alive()
        r.sandbox.warm_up()  # already running: nothing to do
        assert r.sandbox._proc is worker
        assert r.render(SAMPLE, 1, zoom=1.0).width == 595 and r.sandbox._proc is worker
    finally:
        r.close()
