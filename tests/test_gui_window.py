"""The window's own threads: the stall detector, the library's reads and removals off the GUI
thread, and the bounded close path (in pytest-qt and as the real app in a child process)."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QTimer

from desktop_rag.core.engine import Engine
from desktop_rag.core.paths import app_paths
from desktop_rag.core.settings import Settings
from desktop_rag.gui.main_window import CLOSE_WAIT_MS, MainWindow
from desktop_rag.gui.stall import StallDetector

pytestmark = [
    pytest.mark.gui,
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

ROOT = Path(__file__).resolve().parents[1]


def make_text_folder(root: Path, files: int, paragraphs: int, words: int = 45) -> Path:
    """Write ``files`` text files of ``paragraphs`` paragraphs of ``words`` distinct-ish words
    each (about one chunk per paragraph with the default chunker)."""
    rng = random.Random(7)
    vocab = [f"term{i}" for i in range(2000)] + [
        "orchard",
        "harvest",
        "ledger",
        "rainfall",
        "ferry",
    ]
    root.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        text = "\n\n".join(
            f"Section {f}.{p}. " + " ".join(rng.choice(vocab) for _ in range(words)) + "."
            for p in range(paragraphs)
        )
        (root / f"part-{f:03d}.txt").write_text(text, encoding="utf-8")
    return root


def _gui_thread_connection(engine: Engine) -> object:
    """The index connection this (the GUI) thread holds, if any: the store opens one per thread
    on first use, so None after :meth:`Store.close` means this thread did no SQLite since."""
    return getattr(engine.store._local, "con", None)


@pytest.fixture
def fake_window(qtbot, fake_engine: Engine) -> Iterator[MainWindow]:  # type: ignore[no-untyped-def]
    """A shown window over the fake-embedder engine (the real bundled LLM loads behind it),
    ready; shut down and checked for threads at the end."""
    w = MainWindow(fake_engine, watch=False)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.ready, timeout=120_000):
        pass
    yield w
    assert w.shutdown(timeout_ms=30_000), "a worker thread was left running"
    assert w.runner.idle()


def test_a_stall_is_logged_with_the_line_the_gui_thread_was_on(
    qtbot, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    detector = StallDetector()
    detector.start()

    def slow_slot() -> None:
        time.sleep(0.3)  # the deliberate stall

    try:
        with caplog.at_level(logging.WARNING, logger="desktop_rag.gui.stall"):
            QTimer.singleShot(0, slow_slot)
            qtbot.wait(800)
    finally:
        detector.stop()
    assert not detector.running
    stalls = [s for s in detector.stalls if "slow_slot" in s.where()]
    assert len(stalls) == 1, "one stall, logged once"
    stall = stalls[0]
    assert "time.sleep(0.3)  # the deliberate stall" in stall.stack[-1], "innermost: the sleep"
    assert stall.duration_ms is not None and 200 < stall.duration_ms < 2000
    logged = [r.getMessage() for r in caplog.records if r.name == "desktop_rag.gui.stall"]
    assert any("stalled" in m and "time.sleep(0.3)" in m for m in logged), logged
    assert any(m.startswith("GUI thread stall ended after") for m in logged), logged


def test_removing_a_5000_chunk_collection_runs_off_the_gui_thread(  # type: ignore[no-untyped-def]
    qtbot, fake_window: MainWindow, tmp_path: Path
) -> None:
    w, engine = fake_window, fake_window.engine
    folder = make_text_folder(tmp_path / "big", files=50, paragraphs=100)
    with qtbot.waitSignal(w.indexing_finished, timeout=180_000) as blocker:
        w.add_paths([str(folder)])
    assert blocker.args[0] is not None and blocker.args[0].indexed == 50
    (collection,) = w.library.collections_model.items
    assert collection.chunks >= 5000, "the list shows the finished run's counts"
    engine.store.close()  # from here on, any SQLite on this thread would open a connection again

    w.library.refresh()
    w.library.remove_collection(collection.id)
    # at once: the folder says it is being removed; nothing else can start on it
    assert "removing…" in w.library.collections_model.data(w.library.collections_model.index(0))
    assert w.library.progress.isVisible() and not w.library.remove_btn.isEnabled()
    with qtbot.waitSignal(w.library.removed, timeout=60_000) as removed:
        pass
    assert removed.args == [collection.id]
    assert w.library.collections_model.items == [], "the list is updated when done"
    assert not w.library.progress.isVisible()
    assert _gui_thread_connection(engine) is None, "the GUI thread read or wrote the index"
    assert engine.store.chunk_count() == 0


def test_closing_while_indexing_stops_within_the_bound(  # type: ignore[no-untyped-def]
    qtbot, fake_window: MainWindow, tmp_path: Path
) -> None:
    w = fake_window
    folder = make_text_folder(tmp_path / "many", files=400, paragraphs=20)
    progressed = threading.Event()
    w.add_paths([str(folder)])
    assert w.library.worker is not None
    w.library.worker.signals.yielded.connect(lambda p: p.files_done and progressed.set())
    qtbot.waitUntil(progressed.is_set, timeout=60_000)
    assert w.library.worker is not None, "still indexing"
    shown: list[str] = []
    w.notifier.shown.connect(shown.append)
    w.close()
    assert w.isVisible(), "the first close waits for the work, on a timer"
    assert shown[0] == "Stopping indexing…"
    assert w.statusBar().currentMessage() == "Stopping indexing…"
    w.close()  # a second close meanwhile is ignored
    qtbot.waitUntil(lambda: w.closed_cleanly is not None, timeout=CLOSE_WAIT_MS + 10_000)
    assert w.closed_cleanly, "every worker thread ended and the engine was closed"
    assert not w.isVisible()
    assert w.runner.idle() and not w.runner.running


CHILD = textwrap.dedent(
    """
    import sys, time
    import desktop_rag.gui.app as gui_app

    folder = sys.argv[1]
    made = gui_app._create_window
    window = []

    def create():
        w = made()
        window.append(w)

        def progressed(prog):
            if prog.files_done and not getattr(w, "asked_to_close", False):
                w.asked_to_close = True
                print("closing", time.monotonic(), flush=True)
                w.close()

        def start():
            w.add_paths([folder])
            w.library.worker.signals.yielded.connect(progressed)

        w.ready.connect(start)
        return w

    gui_app._create_window = create
    code = gui_app.run()
    print("closed_cleanly", window[0].closed_cleanly, time.monotonic(), flush=True)
    sys.exit(code)
    """
)


def test_the_app_closed_while_indexing_exits_0_with_its_threads_joined(  # type: ignore[no-untyped-def]
    tmp_path: Path, home: Path, embedder
) -> None:
    """The real app (real models, offscreen) in a child process: closed while it indexes, it
    exits with status 0 after every worker thread ended (the detailed timing: the benchmark).
    ``embedder`` has put the ONNX question encoder in the session's cache, and the LLM loads as
    it is (no F16 copy to build), so the child starts in seconds."""
    folder = make_text_folder(tmp_path / "many", files=300, paragraphs=20)
    Settings(llm_weights="original").save(app_paths().settings_file)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", DESKTOP_RAG_HOME=str(home))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert proc.returncode == 0, (out, err[-3000:])
    assert "closing" in lines, ("the window never indexed", out, err[-3000:])
    cleanly, closed_at = lines["closed_cleanly"].split()
    assert cleanly == "True", "a worker thread outlived the close"
    took_s = float(closed_at) - float(lines["closing"])
    # not a speed goal (bench/gui_responsiveness.py measures it): the close must not hang
    assert took_s < CLOSE_WAIT_MS / 1000 + 30, took_s
