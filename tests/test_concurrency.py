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


def test_a_thousand_queries_while_indexing(engine: Engine, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _write_docs(first, 6)
    _write_docs(second, 40)
    engine.index_all([first])
    errors: list[BaseException] = []
    done = threading.Event()

    def index() -> None:
        try:
            engine.index_all([second])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=index)
    writer.start()
    queries = 0
    during = 0
    modes = ("hybrid", "dense", "bm25")
    while queries < 1000:
        question = (
            f"How many defects did inspection {queries % 46} find in the {TOPICS[queries % 6]}?"
        )
        result = engine.search(question, 5, mode=modes[queries % 3])  # type: ignore[arg-type]
        assert result.hits, question
        for h in result.hits:
            # Every hit is whole: its chunk's text is exactly the span of its stored page.
            page = engine.store.page_text(h.file_id, h.page)
            assert page is not None and page[h.start : h.end] == h.text and h.text.strip()
        queries += 1
        if not done.is_set():
            during += 1
    writer.join()
    assert not errors, errors
    assert during >= 50, f"only {during} queries overlapped the indexing run"
    assert engine.store.chunk_count() == len(engine.vectors)
    assert engine.store.con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
