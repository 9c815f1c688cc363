"""A whole-document summary of one long PDF: time, peak memory and how fast Stop ends it.

Usage: python bench/summary_long.py PDF [--home DIR] [--length medium]

Indexes ``PDF`` (``--home`` keeps the index between runs), then summarises it twice with
``answer_style=evidence`` (the extractive stage alone, no model) and once with the bundled model
(map-reduce, checked); prints seconds per 100 pages, the process's peak RSS before and after, the
progress events seen, and the seconds from cancel to the generator's end when cancelled while
the model condenses.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pdf", type=Path)
    ap.add_argument("--home", type=Path, default=None)
    ap.add_argument("--length", default="medium")
    args = ap.parse_args()
    os.environ["DESKTOP_RAG_HOME"] = str(args.home or tempfile.mkdtemp(prefix="drag-long-"))
    from desktop_rag.core.engine import Engine
    from desktop_rag.core.generate.owner import Priority
    from desktop_rag.core.tasks.summarize import Summary, SummaryProgress, summarize
    from desktop_rag.core.types import CancelToken

    engine = Engine()
    try:
        t0 = time.perf_counter()
        engine.index_all([args.pdf])
        row = engine.store.file_by_path(str(args.pdf.resolve()))
        assert row is not None
        print(f"indexed {row.pages} pages, {row.chunks} chunks in {time.perf_counter() - t0:.0f} s;"
              f" peak RSS {_rss_mb():.0f} MB")  # fmt: skip
        for style in ("evidence", "both"):
            engine.settings.answer_style = style
            rss0 = _rss_mb()
            t1 = time.perf_counter()
            events = 0
            final = None
            for ev in summarize(
                engine, args.pdf, length=args.length, priority=Priority.INTERACTIVE
            ):
                events += isinstance(ev, SummaryProgress)
                if isinstance(ev, Summary):
                    final = ev
            secs = time.perf_counter() - t1
            assert final is not None
            print(f"{style:9} {secs:6.1f} s ({secs / row.pages * 100:.2f} s per 100 pages), "
                  f"{len(final.sentences)} sentences, model summary shown: {final.generated}, "
                  f"{events} progress events, peak RSS {rss0:.0f} -> {_rss_mb():.0f} MB")  # fmt: skip
        # Stop while the model condenses (the longest stage): cancel at its first progress.
        engine.settings.answer_style = "both"
        cancel = CancelToken()
        t_cancel = 0.0
        got = None
        for ev in summarize(engine, args.pdf, cancel=cancel, priority=Priority.INTERACTIVE):
            got = ev
            if isinstance(ev, SummaryProgress) and ev.stage == "condensing" and not t_cancel:
                t_cancel = time.perf_counter()
                threading.Thread(target=cancel.cancel).start()
        print(f"cancelled while condensing: ended {time.perf_counter() - t_cancel:.2f} s after "
              f"cancel, last event {type(got).__name__}")  # fmt: skip
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
