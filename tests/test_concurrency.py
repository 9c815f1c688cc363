"""Queries keep working while indexing writes: no crash, no torn results."""

from __future__ import annotations

import threading
from pathlib import Path

from desktop_rag.core.engine import Engine

TOPICS = ["tides", "lighthouses", "ferries", "fishing boats", "harbour cranes", "sea walls"]


def _write_docs(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        paras = [
            f"Report {i} on {topic}. Inspection {i} found {i * 7 % 97} defects in the {topic} of "
            f"harbour district {i % 11}, and the repair budget was {1000 + i * 13} euros."
            for _ in range(1)
        ] + [
            f"Section {j} of report {i}: the {topic} crew logged {j * i % 53} hours of work on "
            f"pier {j} during week {j + i % 9}, with notes on weather, tides and safety drills."
            for j in range(12)
        ]
        (root / f"report-{i:03d}.txt").write_text("\n\n".join(paras), encoding="utf-8")


#: How long either side waits for the other at a checkpoint before the test fails (s): a
#: deadlock guard, not a timing: on a working engine each wait ends at the other's next step.
HANDOFF_TIMEOUT_S = 120.0


def test_a_thousand_queries_while_indexing(engine: Engine, tmp_path: Path) -> None:
    """A thousand searches run while a 40-file indexing run writes. The overlap is made by
    events, not by timing: after each file it commits, the indexing thread waits until a search
    has started after that commit (and ended) before going on, so every intermediate state of
    the index is searched, and searches also run while the next file is being written."""
    first, second = tmp_path / "first", tmp_path / "second"
    _write_docs(first, 6)
    _write_docs(second, 40)
    engine.index_all([first])
    errors: list[BaseException] = []
    committed = threading.Event()  # the writer committed a file and waits for a search
    searched = threading.Event()  # a search began after that commit and ended
    abandoned = threading.Event()  # the searching side failed: the writer runs to its end
    done = threading.Event()
    files_committed = 0

    def index() -> None:
        nonlocal files_committed
        try:
            for progress in engine.index([second]):
                if progress.result is None:
                    continue  # not a file's end (the run's start, OCR pages)
                files_committed += 1
                searched.clear()
                committed.set()
                if not abandoned.is_set() and not searched.wait(HANDOFF_TIMEOUT_S):
                    raise TimeoutError("no search ran after a committed file")
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=index, name="test-indexer")
    writer.start()
    queries = during = handoffs = 0
    counts: list[int] = []  # chunks in the store at each handoff
    modes = ("hybrid", "dense", "bm25")
    try:
        while queries < 1000 or not done.is_set():
            handoff = committed.is_set()  # a commit happened before this search began
            if handoff:
                committed.clear()
                counts.append(engine.store.chunk_count())
            question = (
                f"How many defects did inspection {queries % 46} find in the {TOPICS[queries % 6]}?"
            )
            running = not done.is_set()
            result = engine.search(question, 5, mode=modes[queries % 3])  # type: ignore[arg-type]
            assert result.hits, question
            for h in result.hits:
                # Every hit is whole: its chunk's text is exactly the span of its stored page.
                page = engine.store.page_text(h.file_id, h.page)
                assert page is not None and page[h.start : h.end] == h.text and h.text.strip()
            queries += 1
            during += running
            if handoff:
                handoffs += 1
                searched.set()
    finally:
        abandoned.set()  # never leave the writer waiting (an assertion failed above)
        searched.set()
        writer.join(HANDOFF_TIMEOUT_S)
    assert not writer.is_alive(), "the indexing run did not end"
    assert not errors, errors
    assert files_committed == 40 and handoffs == 40, (files_committed, handoffs)
    assert during >= handoffs, "every handoff's search ran while the run was in progress"
    # Searches saw every intermediate state: the store grew between handoffs.
    assert counts == sorted(counts) and len(set(counts)) == 40, counts
    assert engine.store.chunk_count() == len(engine.vectors)
    assert engine.store.con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
