"""The README's screenshots, taken from the real window (``make screenshots``).

Usage: QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py [--out docs/screenshots]

Opens :class:`~desktop_rag.gui.main_window.MainWindow` over a fresh temporary data directory
with the bundled models, and drives it as a person would: the empty state, indexing the sample
documents, a question answered with numbered sources, a citation clicked (the page viewer with
the passage highlighted), and a scanned page whose passage OCR located. Each picture is the
window as drawn (``QWidget.grab``), saved as PNG; nothing is painted over or edited. Exits 1
when a step does not happen within its time limit (the window's state is printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "resources" / "samples"
QUESTION = "How do I add my own GGUF model, and does the app ever use the network?"
SCAN_QUESTION = "What are the harbour dues for 2024?"
SCAN_PAGES = [
    "Minutes of the harbour board\n\nMeeting of 12 March 2024, cover page.",
    "The ferry timetable changes in May.\n\n"
    "The harbour dues for 2024 are 31 euros a tonne, up from 28 euros in 2023.\n\n"
    "The board meets again in June.",
]


class StepFailed(RuntimeError):
    """A step of the script did not happen in time."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="drag-screens-"))
    os.environ["DESKTOP_RAG_HOME"] = str(home)

    from PySide6.QtCore import QUrl
    from PySide6.QtWidgets import QApplication

    from desktop_rag.gui.main_window import MainWindow

    sys.path.insert(0, str(ROOT))
    from tests.conftest import make_scan  # the tests' scanned-PDF maker (one copy)

    app = QApplication(sys.argv)
    window = MainWindow(watch=False)
    window.resize(1500, 900)
    window.show()
    args.out.mkdir(parents=True, exist_ok=True)

    def wait(what: str, done: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise StepFailed(f"{what}: not within {timeout_s:.0f} s "
                                 f"(status bar: {window.statusBar().currentMessage()!r})")  # fmt: skip
            app.processEvents()
            time.sleep(0.01)

    def settle(seconds: float = 0.5) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def shot(name: str) -> None:
        settle()
        path = args.out / name
        if not window.grab().save(str(path)):
            raise StepFailed(f"could not write {path}")
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    events: dict[str, object] = {}
    window.ready.connect(lambda: events.setdefault("ready", True))
    window.indexing_finished.connect(lambda s: events.__setitem__("indexed", s))
    window.answer_finished.connect(lambda a: events.__setitem__("answer", a))
    try:
        wait("the models load", lambda: "ready" in events, 300)
        shot("1-empty-state.png")

        window.add_paths([str(SAMPLES)])
        bar = window.library.progress
        wait("indexing starts", lambda: bar.isVisible() and bar.value() > 0, 120)
        window.input.setPlainText(QUESTION)
        shot("2-indexing.png")
        wait("indexing ends", lambda: "indexed" in events, 300)

        events.pop("answer", None)
        window.send()
        wait("the answer", lambda: "answer" in events, 300)
        shot("3-answer-with-sources.png")

        viewer = window.sources.viewer
        first = window.chat.messages[-1]
        index = window.chat.messages.index(first)
        # the first source with pages (the viewer draws it), else source 1
        n = next((c["n"] for c in first.sources if str(c["file"]).endswith(".pdf")), 1)
        window.chat.transcript.anchorClicked.emit(QUrl(f"cite:{index}:{n}"))
        wait("the cited page is drawn", lambda: viewer.page is not None and viewer.rendered, 60)
        shot("4-page-viewer.png")

        scans = home / "scans"
        scans.mkdir()
        make_scan(scans / "harbour-minutes.pdf", SCAN_PAGES)
        events.pop("indexed", None)
        window.add_paths([str(scans)])
        wait("the scan is indexed", lambda: "indexed" in events, 300)
        hit = next(h for h in window.engine.search(SCAN_QUESTION, 5).hits
                   if h.file_name == "harbour-minutes.pdf")  # fmt: skip
        at = hit.text.find("The harbour dues")
        at = max(at, 0)
        window.sources.open_source({"file": hit.path, "page": hit.page, "text": hit.text,
                                    "start": hit.start + at, "end": hit.start + at + 72})  # fmt: skip
        wait("the scan is drawn", lambda: viewer.page == hit.page and viewer.rendered, 60)
        shot("5-scan-highlight.png")

        events.pop("answer", None)
        window.library.collections_view.setCurrentIndex(window.library.collections_model.index(0))
        window.library.summarize_selected()  # the Summarise button of the samples folder
        wait("the summary", lambda: "answer" in events, 600)
        shot("6-summary.png")
    except StepFailed as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    finally:
        window.shutdown(timeout_ms=30_000)
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
