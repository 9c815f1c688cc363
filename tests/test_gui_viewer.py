"""The page viewer draws off the GUI thread, in the drawing worker: a click shows "Drawing page
N…" at once and the page with its highlight when it comes; a stale page is dropped; zoom draws
again; a file that cannot be drawn (broken, gone, crashing MuPDF, hanging it) shows its reason in
the viewer and the window stays up (pytest-qt, real PDFs, real PyMuPDF in the worker)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMainWindow

from desktop_rag.core.engine import Engine
from desktop_rag.core.ingest.render import PageRenderer
from desktop_rag.gui.sources_panel import SourcesPanel
from desktop_rag.gui.tasks import Notifier, TaskRunner
from tests.conftest import ORCHARD, make_pdf

pytestmark = [
    pytest.mark.gui,
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

HOSTILE = "tests.hostile_renderers:misbehaving_draw"
PASSAGE = "In 2022 the orchard yielded 38 tonnes of apples. Frost in April"
WAIT_MS = 30_000


class Shown:
    """A window holding a :class:`SourcesPanel` on its own task runner."""

    def __init__(self, qtbot: Any, engine: Engine) -> None:
        self.win = QMainWindow()
        qtbot.addWidget(self.win)
        self.runner = TaskRunner(Notifier(self.win.statusBar(), self.win), self.win)
        self.panel = SourcesPanel(engine, self.runner)
        self.win.setCentralWidget(self.panel)
        self.win.resize(900, 900)
        self.win.show()
        self.viewer = self.panel.viewer


@pytest.fixture
def shown(qtbot: Any, fake_engine: Engine) -> Iterator[Shown]:
    s = Shown(qtbot, fake_engine)
    yield s
    assert s.runner.shutdown(timeout_ms=30_000), "a drawing job was left running"
    s.panel.shutdown()


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    make_pdf(folder / "orchard.pdf", ORCHARD)
    (folder / "swarms.md").write_text(
        "# Swarming\n\nSwarms usually leave in May, when the old queen departs with half of the "
        "workers.\n",
        encoding="utf-8",
    )
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n this is not really a pdf \x00\x01\x02")
    return folder


def _source(
    path: Path, page: int | None, text: str, start: int = 0, end: int = 0
) -> dict[str, Any]:
    return {"n": 1, "file": str(path), "file_name": path.name, "page": page, "text": text, "score": 0.5,
            "start": start, "end": end or len(text)}  # fmt: skip


def _gui_thread_work(
    qtbot: Any, action: Callable[[], object], until: Callable[[], bool]
) -> set[str]:
    """Run ``action`` and the event loop until ``until()``, and return which of PyMuPDF and
    SQLite the GUI thread called meanwhile (a profile hook on this thread only)."""
    seen: set[str] = set()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and f"{os.sep}pymupdf{os.sep}" in frame.f_code.co_filename:
            seen.add("pymupdf")
        elif event == "c_call" and type(getattr(arg, "__self__", None)).__module__ == "sqlite3":
            seen.add("sqlite3")

    sys.setprofile(profile)
    try:
        action()
        qtbot.waitUntil(until, timeout=WAIT_MS)
    finally:
        sys.setprofile(None)
    return seen


def test_a_click_shows_a_placeholder_then_the_page_with_its_highlight(
    qtbot: Any, shown: Shown, docs: Path, fake_engine: Engine
) -> None:
    fake_engine.index_all([docs])
    viewer, panel = shown.viewer, shown.panel
    pdf = docs / "orchard.pdf"
    panel.set_sources([_source(pdf, 2, PASSAGE)])
    index = panel.model.index(0)
    rect = panel.view.visualRect(index)

    def click() -> None:
        qtbot.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        # at once, before any drawing: the placeholder
        assert not viewer.rendered
        assert "drawing page 2…" in viewer.title.text()
        assert viewer.image.text() == "Drawing page 2…"

    calls = _gui_thread_work(qtbot, click, lambda: viewer.rendered)
    assert not calls, f"the GUI thread called {calls}"
    assert "page 2 of 3 — cited passage highlighted" in viewer.title.text()
    assert viewer.page == 2 and len(viewer.highlight_rects) == 1
    x0, y0, x1, y1 = viewer.highlight_rects[0]
    assert 40 < x0 < x1 and 40 < y0 < y1 < 120, "on the passage's line near the top"
    pixmap = viewer.image.pixmap()
    assert not pixmap.isNull() and pixmap.width() >= 595
    # the highlight is painted: the passage's line is yellowish, not white
    image = pixmap.toImage()
    z = viewer.zoom
    colour = image.pixelColor(int((x0 + 3) * z), int((y0 + y1) / 2 * z))
    assert colour.blue() < colour.red() - 40, colour.name()
    worker = panel.renderer.sandbox._proc
    assert worker is not None and worker.is_alive() and worker.pid != os.getpid()

    # the next page: no highlight; back: the cached page and its highlight
    qtbot.mouseClick(viewer.next_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: viewer.rendered, timeout=WAIT_MS)
    assert viewer.page == 3 and viewer.highlight_rects == []
    assert not viewer.next_btn.isEnabled() and viewer.prev_btn.isEnabled()
    qtbot.mouseClick(viewer.prev_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: viewer.rendered, timeout=WAIT_MS)
    assert viewer.page == 2 and viewer.highlight_rects and viewer.last_page is not None
    assert viewer.last_page.cached

    # zoom draws again off the GUI thread, the old picture stays up meanwhile
    width, zoom = pixmap.width(), viewer.zoom
    calls = _gui_thread_work(
        qtbot, lambda: qtbot.mouseClick(viewer.zoom_in_btn, Qt.MouseButton.LeftButton),
        lambda: viewer.rendered,
    )  # fmt: skip
    assert not calls, f"the GUI thread called {calls}"
    assert viewer.zoom == pytest.approx(min(4.0, zoom * 1.25))
    assert viewer.image.pixmap().width() == pytest.approx(
        min(4.0, zoom * 1.25) / zoom * width, abs=2
    )
    assert viewer.highlight_rects, "still highlighted"

    # a text source: looked up in the index off the GUI thread, shown with its passage
    md = docs / "swarms.md"
    text = fake_engine.page_text(str(md), None)
    assert text is not None
    start = text.index("Swarms usually")
    calls = _gui_thread_work(
        qtbot, lambda: panel.open_source(_source(md, None, text[start:], start, len(text))),
        lambda: viewer.rendered,
    )  # fmt: skip
    assert not calls, f"the GUI thread called {calls}"
    assert viewer.stack.currentWidget() is viewer.text
    assert viewer.highlight_rects == [(start, len(text))]
    assert "swarms.md" in viewer.title.text()


def test_a_stale_page_is_dropped(qtbot: Any, shown: Shown, docs: Path, fake_engine: Engine) -> None:
    fake_engine.index_all([docs])
    viewer, panel = shown.viewer, shown.panel
    md = docs / "swarms.md"
    panel.open_source(_source(docs / "orchard.pdf", 2, PASSAGE))
    panel.open_source(_source(md, None, "Swarms usually leave in May", 0, 10))
    qtbot.waitUntil(lambda: viewer.rendered, timeout=WAIT_MS)
    assert shown.runner.idle(WAIT_MS)
    qtbot.wait(50)  # any late result has been delivered (and dropped)
    assert viewer.stack.currentWidget() is viewer.text and viewer.path == md
    assert viewer.highlight_rects == [(0, 10)]
    # and the other way round: the page asked for last is the one shown
    panel.open_source(_source(md, None, "Swarms usually leave in May", 0, 10))
    panel.open_source(_source(docs / "orchard.pdf", 3, "The farm sells its cider vinegar"))
    qtbot.waitUntil(lambda: viewer.rendered, timeout=WAIT_MS)
    assert shown.runner.idle(WAIT_MS)
    qtbot.wait(50)
    assert viewer.stack.currentWidget() is viewer.page_scroll and viewer.page == 3


def test_files_that_cannot_be_drawn_show_their_reason(
    qtbot: Any, shown: Shown, docs: Path, fake_engine: Engine, tmp_path: Path
) -> None:
    viewer, panel = shown.viewer, shown.panel

    def reason_for(source: dict[str, Any]) -> str:
        with qtbot.waitSignal(viewer.updated, timeout=WAIT_MS) as blocker:
            panel.open_source(source)
        assert blocker.args == ["error"] and viewer.error is not None
        assert not viewer.rendered and viewer.image.pixmap().isNull()
        assert viewer.error in viewer.title.text()
        assert shown.win.isVisible()
        return viewer.error

    reason = reason_for(_source(docs / "broken.pdf", 1, "anything"))
    assert reason.startswith("Cannot draw page 1 of broken.pdf: not a readable PDF")
    gone = tmp_path / "gone.pdf"
    assert "gone.pdf: the file no longer exists" in reason_for(_source(gone, 1, "x"))
    assert reason_for(_source(docs / "orchard.pdf", 9, "x")).endswith("not a page 9")
    assert (
        reason_for(_source(docs / "swarms.md", None, "x")) == "swarms.md is not indexed any more."
    )
    assert reason_for(_source(tmp_path / "gone.md", None, "x")) == "gone.md no longer exists."

    # MuPDF crashing or hanging on a hostile page: a reason, and the next page draws
    panel.renderer.close()
    panel.renderer = viewer.renderer = PageRenderer(timeout_s=4, renderer=HOSTILE)
    crash = Path(shutil.copy(docs / "orchard.pdf", tmp_path / "segfault.pdf"))
    reason = reason_for(_source(crash, 2, PASSAGE))
    assert reason.startswith("MuPDF crashed while drawing page 2 of segfault.pdf (SIGSEGV")
    hang = Path(shutil.copy(docs / "orchard.pdf", tmp_path / "hang.pdf"))
    reason = reason_for(_source(hang, 1, PASSAGE))
    assert reason.startswith("Drawing page 1 of hang.pdf took longer than 4 s")
    panel.open_source(_source(docs / "orchard.pdf", 2, PASSAGE))
    qtbot.waitUntil(lambda: viewer.rendered, timeout=WAIT_MS)
    assert viewer.highlight_rects and shown.win.isVisible()
    panel.renderer.close()


def test_a_page_stuck_in_mupdf_is_stopped_when_another_is_asked_for(
    qtbot: Any, shown: Shown, docs: Path, tmp_path: Path
) -> None:
    viewer, panel = shown.viewer, shown.panel
    panel.renderer.close()
    panel.renderer = viewer.renderer = PageRenderer(timeout_s=60, renderer=HOSTILE)
    hang = Path(shutil.copy(docs / "orchard.pdf", tmp_path / "hang.pdf"))
    panel.open_source(_source(hang, 1, PASSAGE))
    qtbot.wait(1500)  # stuck for longer than STUCK_AFTER_S
    assert not viewer.rendered
    panel.open_source(_source(docs / "orchard.pdf", 2, PASSAGE))
    qtbot.waitUntil(lambda: viewer.rendered, timeout=15_000)  # not after the 60 s timeout
    assert viewer.page == 2 and viewer.highlight_rects
    panel.renderer.close()
