"""Searching some collections: the filter is applied inside the search, not after a top-k."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.engine import Engine
from desktop_rag.core.ingest.chunking import ChunkerConfig
from desktop_rag.core.paths import app_paths
from desktop_rag.core.search.retrieval import EXACT_SEARCH_MAX
from desktop_rag.core.settings import Settings

QUESTION = "What colour is the Karnholm island lighthouse painted?"
BIG_CHUNKS = 5000


@pytest.fixture
def small_chunks_engine(home: Path, embedder: Embedder) -> Iterator[Engine]:
    """Chunks of about 30 word pieces, so a 5,000-chunk collection indexes in seconds."""
    eng = Engine(app_paths(), Settings(temperature=0.0), embedder=embedder,
                 chunker_config=ChunkerConfig(chunk_tokens=30, overlap_tokens=0))  # fmt: skip
    yield eng
    eng.close()


def _big_collection(folder: Path) -> Path:
    """Log files whose every paragraph repeats the question's words without its answer, so
    each of their chunks outranks the small collection's answer in both BM25 and dense."""
    folder.mkdir()
    per_file = 250
    for f in range(BIG_CHUNKS // per_file):
        paras = [
            f"Log {f}-{i}: the Karnholm island lighthouse keepers asked what colour the "
            f"lighthouse should be painted; meeting {i} decided nothing."
            for i in range(per_file)
        ]
        (folder / f"log-{f:02d}.txt").write_text("\n\n".join(paras), encoding="utf-8")
    return folder


def _small_collection(folder: Path) -> Path:
    folder.mkdir()
    (folder / "survey.txt").write_text(
        "Survey of Karnholm. The lighthouse on Karnholm island is painted red with two white "
        "bands, renewed in 2019.",
        encoding="utf-8",
    )
    (folder / "ferry.txt").write_text("The ferry to Karnholm leaves at 07:40 daily.", "utf-8")
    (folder / "birds.txt").write_text("Puffins nest on the western cliffs in June.", "utf-8")
    return folder


def test_a_small_ticked_collection_beside_a_large_unticked_one_is_answered(
    small_chunks_engine: Engine, tmp_path: Path
) -> None:
    engine = small_chunks_engine
    big = _big_collection(tmp_path / "logs")
    small = _small_collection(tmp_path / "survey")
    engine.index_all([big, small])
    ids = {c.root: c.id for c in engine.store.collections()}
    big_id, small_id = ids[str(big.resolve())], ids[str(small.resolve())]
    n_big = len(engine.store.collection_chunk_ids([big_id]))
    assert n_big >= BIG_CHUNKS and n_big > EXACT_SEARCH_MAX  # the graph's filtered search
    assert len(engine.store.collection_chunk_ids([small_id])) == 3  # the exact search

    everywhere = engine.search(QUESTION, 5)
    assert all(h.file_name.startswith("log-") for h in everywhere.hits), "the logs outrank it"

    for mode in ("hybrid", "dense", "bm25", "rrf", "fused"):
        res = engine.search(QUESTION, 5, mode=mode, collections=[small_id])  # type: ignore[arg-type]
        assert res.hits, mode
        assert res.hits[0].file_name == "survey.txt", mode
        assert all(h.file_name in {"survey.txt", "ferry.txt", "birds.txt"} for h in res.hits)
    assert engine.is_relevant(engine.search(QUESTION, collections=[small_id]), QUESTION)
    answer = engine.answer(QUESTION, collections=[small_id])
    assert not answer.abstained
    assert "red with two white bands" in " ".join(e.text for e in answer.evidence)

    # The large one ticked alone: only its chunks, through hnswlib's filter.
    res = engine.search(QUESTION, 5, mode="dense", collections=[big_id])
    assert len(res.hits) == 5 and all(h.file_name.startswith("log-") for h in res.hits)
