"""GUI responsiveness: the longest event-loop stall while indexing and while generating.

Usage: QT_QPA_PLATFORM=offscreen python bench/gui_responsiveness.py [DOCS] [--question Q]
A 5 ms timer on the GUI thread records the gap between its ticks; a stall is the gap minus the
interval. Prints max, p99 and p50 per phase. Uses a fresh temporary data directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "eval" / "docugami_sec10q" / "docs"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("docs", type=Path, nargs="?", default=DEFAULT)
    ap.add_argument(
        "--question", default="What was Apple's total net sales for the quarter ended July 1, 2023?"
    )
    args = ap.parse_args()
    os.environ["DESKTOP_RAG_HOME"] = tempfile.mkdtemp(prefix="drag-gui-bench-")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from desktop_rag.gui.main_window import MainWindow

    app = QApplication(sys.argv)
    t_start = time.perf_counter()
    window = MainWindow()
    window.show()
    app.processEvents()
    shown_s = time.perf_counter() - t_start
    gaps: dict[str, list[float]] = {"startup": [], "indexing": [], "generating": [], "idle": []}
    phase = ["startup"]
    last = [time.perf_counter()]
    interval = 5

    def tick() -> None:
        now = time.perf_counter()
        gaps[phase[0]].append(max(0.0, (now - last[0]) * 1000 - interval))
        last[0] = now

    timer = QTimer()
    timer.setInterval(interval)
    timer.timeout.connect(tick)
    timer.start()

    def on_ready() -> None:
        phase[0] = "indexing"
        window.library.add_paths([str(args.docs)])

    def on_indexed(summary: object) -> None:
        phase[0] = "generating"
        window.chat.input.setPlainText(args.question)
        window.chat.send()

    def on_answer(answer: object) -> None:
        phase[0] = "idle"
        QTimer.singleShot(1000, app.quit)

    window.ready.connect(on_ready)
    window.indexing_finished.connect(on_indexed)
    window.answer_finished.connect(on_answer)
    app.exec()
    if not window.shutdown():
        print("warning: a worker thread was still running after shutdown", file=sys.stderr)
    print(f"window shown after {shown_s * 1000:.0f} ms (models load in the background)")
    print(f"{'phase':12} {'ticks':>7} {'max stall ms':>13} {'p99 ms':>8} {'p50 ms':>8}")
    for name, xs in gaps.items():
        if len(xs) > 1:
            p99 = statistics.quantiles(xs, n=100)[98]
            print(f"{name:12} {len(xs):7d} {max(xs):13.1f} {p99:8.1f} {statistics.median(xs):8.1f}")


if __name__ == "__main__":
    main()
