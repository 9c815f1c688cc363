"""Indexing: statuses, incremental updates, resume, the vector cache, refusal of another model.

What is embedded, counted and kept does not depend on the model: those tests use the fake
embedder (tests/fakes.py); finding a fact's page by meaning uses the real one."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import EmbeddingMismatchError
from desktop_rag.core.models import bundled_embedding_dir
from desktop_rag.core.paths import app_paths
from desktop_rag.core.types import CancelToken
from tests.fakes import FAKE_NAME, FakeEmbedder, hashed_vector


def _statuses(engine: Engine) -> dict[str, tuple[str, str]]:
    return {Path(f.path).name: (f.status, f.reason) for f in engine.store.files()}


def test_index_folder_records_every_file_with_status(
    fake_engine: Engine, fake_embedder: FakeEmbedder, corpus: Path
) -> None:
    engine = fake_engine
    summary = engine.index_all([corpus])
    st = _statuses(engine)
    assert summary.indexed == 6
    for name in (
        "orchard.pdf",
        "locked-empty-password.pdf",
        "beekeeping.md",
        "recipe-latin1.txt",
        "station.html",
        "climate.docx",
    ):
        assert st[name][0] == "indexed", (name, st[name])
    assert st["broken.pdf"][0] == "failed" and "PDF" in st["broken.pdf"][1]
    assert st["image.xyz"] == ("skipped", "unsupported file type .xyz")
    assert st["empty.txt"][0] == "skipped"
    assert {Path(p.path).name for p in summary.problems} == {"broken.pdf", "image.xyz", "empty.txt"}
    # SQLite holds pages, chunks and embeddings; hnswlib mirrors them.
    assert engine.store.chunk_count() == len(engine.vectors)
    ids, vecs = next(engine.store.iter_embeddings())
    assert vecs.dtype == np.float32 and vecs.shape == (engine.store.chunk_count(), 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # Each chunk's row holds the vector of its own context and text (embed() sorts the texts
    # by length: the vectors must come back in place), and every chunk was embedded once.
    rows = {int(i): (c, t) for i, c, t in engine.store.con.execute(
        "SELECT id, context, text FROM chunks")}  # fmt: skip
    assert sorted(ids.tolist()) == sorted(rows)
    for cid, vec in zip(ids.tolist(), vecs, strict=True):
        context, text = rows[cid]
        want = hashed_vector(f"{context}\n{text}" if context else text, 384)
        assert np.array_equal(vec, want), cid
    # each chunk embedded once, in batches of at most the embedder's batch size
    assert fake_embedder.chunks_embedded == sum(fake_embedder.batches) == len(rows)
    assert max(fake_embedder.batches) <= fake_embedder.batch_size


def test_search_finds_the_page_of_a_fact(engine: Engine, corpus: Path) -> None:
    engine.index_all([corpus])
    hits = engine.search("How many tonnes of apples did the orchard yield in 2022?", 3).hits
    assert hits[0].file_name == "orchard.pdf" and hits[0].page == 2
    assert "38 tonnes" in hits[0].text
    # The cited span is the exact passage of the stored page text.
    page = engine.store.page_text(hits[0].file_id, 2)
    assert page is not None and page[hits[0].start : hits[0].end] == hits[0].text
    for mode in ("dense", "bm25", "rrf"):
        top = engine.search("anemometer gust during the storm", 3, mode=mode).hits  # type: ignore[arg-type]
        assert top[0].file_name == "station.html", mode


def test_incremental_reindex_embeds_only_what_changed(fake_engine: Engine, corpus: Path) -> None:
    engine = fake_engine
    emb = engine.embedder
    engine.index_all([corpus])
    first = emb.chunks_embedded

    again = engine.index_all([corpus])
    assert emb.chunks_embedded == first, "nothing re-embedded when nothing changed"
    assert again.indexed == 0 and again.unchanged == 9

    # touch without changing content: hash equal, nothing re-embedded
    md = corpus / "notes" / "beekeeping.md"
    time.sleep(0.01)
    md.write_text(md.read_text())
    assert engine.index_all([corpus]).indexed == 0
    assert emb.chunks_embedded == first

    # document frequencies are cached per index version: a change must show in them
    def fts5_df(word: str) -> int:  # counted by FTS5 itself, past every cache
        return int(engine.store.con.execute(
            "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{word}"',)
        ).fetchone()[0])  # fmt: skip

    n0, df0 = engine.lexical.document_frequencies(["ferry", "heather"])
    assert (n0, df0) == (engine.store.chunk_count(), {w: fts5_df(w) for w in df0})

    # modify one, add one, delete one
    md.write_text("# Beekeeping notes\n\nThe hives moved to the heather moor in August.\n")
    (corpus / "new.md").write_text("# Ferry\n\nThe ferry to the island leaves at 07:40 daily.\n")
    (corpus / "station.html").unlink()
    before = engine.store.chunk_count()
    summary = engine.index_all([corpus])
    assert summary.indexed == 2 and summary.removed == 1
    assert emb.chunks_embedded - first == 2  # one chunk each for the two short markdown files
    names = _statuses(engine)
    assert "station.html" not in names
    assert engine.store.chunk_count() == len(engine.vectors)
    assert engine.store.chunk_count() < before
    hits = engine.search("When does the ferry leave?", 1).hits
    assert hits[0].file_name == "new.md"
    assert not engine.search("anemometer gust", 5, mode="bm25").hits, (
        "deleted file is not searchable"
    )
    assert "heather moor" in engine.search("where did the hives move", 1).hits[0].text
    n1, df1 = engine.lexical.document_frequencies(["ferry", "heather"])
    assert n1 == engine.store.chunk_count() != n0
    assert df1["ferry"] == df0["ferry"] + 1 and df1["heather"] == df0["heather"] + 1
    assert df1 == {w: fts5_df(w) for w in df1}


def test_interrupted_run_resumes_where_it_stopped(
    home: Path, fake_embedder: FakeEmbedder, corpus: Path
) -> None:
    embedder = fake_embedder
    eng = Engine(app_paths(), embedder=embedder)
    cancel = CancelToken()
    gen = eng.index([corpus], cancel)
    indexed_before_stop = 0
    for prog in gen:
        if prog.result is not None and prog.result.status == "indexed":
            indexed_before_stop += 1
            if indexed_before_stop == 2:
                cancel.cancel()
    assert indexed_before_stop == 2
    eng.close()

    # A new process-like engine: only the remaining files are extracted and embedded.
    start = embedder.chunks_embedded
    eng2 = Engine(app_paths(), embedder=embedder)
    summary = eng2.index_all([corpus])
    assert summary.indexed == 4
    assert summary.unchanged >= 2
    total = sum(f.chunks for f in eng2.store.files())
    assert embedder.chunks_embedded - start < total
    assert eng2.store.chunk_count() == total == len(eng2.vectors)
    eng2.close()


def test_vector_cache_is_rebuilt_from_sqlite_when_stale_or_corrupt(
    fake_engine: Engine, corpus: Path
) -> None:
    engine = fake_engine
    engine.index_all([corpus])
    paths = engine.paths
    q = engine.embedder.embed_query("fog horn tests")
    expected = engine.vectors.search(q, 3)
    embedded = engine.embedder.chunks_embedded
    engine.close()

    blob = bytearray((paths.vectors_dir / "index.bin").read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # flip a bit
    (paths.vectors_dir / "index.bin").write_bytes(bytes(blob))
    eng = Engine(paths, embedder=engine.embedder)
    vectors = eng.vectors  # detects the checksum mismatch and rebuilds
    assert [c for c, _ in vectors.search(q, 3)] == [c for c, _ in expected]
    assert eng.embedder.chunks_embedded == embedded, "rebuilt without re-embedding"
    manifest = json.loads((paths.vectors_dir / "manifest.json").read_text())
    assert manifest["count"] == eng.store.chunk_count()
    eng.close()

    (paths.vectors_dir / "index.bin").unlink()
    eng = Engine(paths, embedder=engine.embedder)
    assert len(eng.vectors) == eng.store.chunk_count()  # rebuilt from SQLite when opened
    assert [c for c, _ in eng.vectors.search(q, 3)] == [c for c, _ in expected]
    eng.close()
    assert (paths.vectors_dir / "index.bin").is_file(), "the rebuilt cache is saved again"


@pytest.fixture(scope="module")
def other_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A different sentence-transformers model as its folder describes it: the bundled one's
    configuration plus a 384->128 Dense layer (no weights: it is refused before it could load)."""
    base = bundled_embedding_dir()
    assert base is not None
    out = tmp_path_factory.mktemp("models") / "minilm-128"
    shutil.copytree(base, out, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx"))
    (out / "2_Dense").mkdir()
    (out / "2_Dense" / "config.json").write_text(json.dumps({
        "in_features": 384, "out_features": 128, "bias": True,
        "activation_function": "torch.nn.modules.linear.Identity"}))  # fmt: skip
    modules = json.loads((out / "modules.json").read_text())
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": "2_Dense",
                    "type": "sentence_transformers.models.Dense"})  # fmt: skip
    (out / "modules.json").write_text(json.dumps(modules))
    return out


def test_mismatched_embedding_model_is_refused(
    fake_engine: Engine, corpus: Path, other_model: Path
) -> None:
    """A search refuses another model's vectors before any of them is made: another dimension,
    or the same dimension with other weights (the bundled model, here never loaded); the hint
    says that indexing embeds the chunks again (see test_another_model_reembeds_when_indexing)."""
    engine = fake_engine
    engine.index_all([corpus])
    engine.close()
    other = Embedder(other_model)
    assert other.dim == 128
    eng = Engine(engine.paths, embedder=other)
    try:
        assert eng.needs_reembedding()
        with pytest.raises(EmbeddingMismatchError, match=FAKE_NAME) as err:
            eng.search("anything")
        assert "128 dimensions" in str(err.value)
        assert "desktop-rag index" in (err.value.hint or "")
        assert other.active_backend is None, "refused before the model loaded"
    finally:
        eng.close()
    bundled = bundled_embedding_dir()
    assert bundled is not None
    real = Embedder(bundled, "all-MiniLM-L6-v2")
    assert real.dim == engine.embedder.dim == 384
    eng = Engine(engine.paths, embedder=real)
    try:
        with pytest.raises(EmbeddingMismatchError, match=r"'all-MiniLM-L6-v2' \(384 dimensions\)"):
            eng.search("anything")
        assert real.active_backend is None
    finally:
        eng.close()
    from desktop_rag.core.index.store import Store

    store = Store(engine.paths.index_db)  # the refusals left the index as it was
    assert store.stored_identity() == engine.embedder.identity.to_dict()
    store.close()


def test_another_model_reembeds_when_indexing(fake_engine: Engine, corpus: Path) -> None:
    """Indexing with another embedding model (another dimension here) embeds every stored chunk
    again first, nothing extracted again, and records the new model: the index never holds two
    models' vectors, and searches work again."""
    engine = fake_engine
    engine.index_all([corpus])
    ids = [r[0] for r in engine.store.con.execute("SELECT id FROM chunks ORDER BY id")]
    engine.close()
    other = FakeEmbedder(dim=128, name="another-model")
    eng = Engine(engine.paths, embedder=other)
    try:
        assert eng.needs_reembedding()
        summary = eng.index_all([corpus])
        assert summary.chunks_added == 0 and summary.indexed == 0
        rows = eng.store.con.execute("SELECT id, embedding FROM chunks ORDER BY id").fetchall()
        assert [r[0] for r in rows] == ids
        assert {len(r[1]) for r in rows} == {128 * 4}
        assert eng.store.stored_identity() == other.identity.to_dict()
        assert not eng.needs_reembedding()
        assert other.chunks_embedded == len(ids)
        assert eng.search("anything").hits
    finally:
        eng.close()


def test_a_new_extractor_version_re_extracts_only_its_files(
    fake_engine: Engine, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unchanged files indexed by an older extractor are extracted and chunked again (their
    chunks would otherwise keep the old text for good), and a PDF that extractor failed on is
    tried again (the new one may read it); other formats stay as they are."""
    from desktop_rag.core.ingest import extract

    engine = fake_engine

    engine.index_all([corpus])
    pdfs = {f.path: f.pipeline for f in engine.store.files() if f.path.endswith(".pdf")
            and f.status == "indexed"}  # fmt: skip
    assert len(pdfs) == 2 and all(p and p.startswith("pdf-") for p in pdfs.values())
    monkeypatch.setitem(extract.EXTRACTOR_VERSIONS, "pdf", extract.EXTRACTOR_VERSIONS["pdf"] + 1)
    again = engine.index_all([corpus])
    assert again.indexed == 2, "both readable PDFs are extracted again"
    assert again.unchanged == 6, "the 7 others less broken.pdf, judged again (failed again)"
    assert any(p.path.endswith("broken.pdf") and p.status == "failed" for p in again.problems)
    after = {f.path: f.pipeline for f in engine.store.files() if f.path in pdfs}
    assert all(after[p] != pdfs[p] for p in pdfs)
    assert engine.store.chunk_count() == len(engine.vectors)
    assert engine.index_all([corpus]).indexed == 0, "and once only"


def test_a_second_indexer_is_refused_while_one_indexes(tmp_path: Path) -> None:
    from desktop_rag.core.errors import IndexBusyError
    from desktop_rag.core.ingest.indexer import writer_lock

    lock = tmp_path / "index.lock"
    busy = pytest.raises(IndexBusyError, match="another desktop-rag process is indexing")
    with writer_lock(lock), busy, writer_lock(lock):
        pass
    with writer_lock(lock):  # released when the first run ends
        pass


def test_a_failed_lexical_search_is_logged_not_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from desktop_rag.core.index.lexical import LexicalSearch
    from desktop_rag.core.index.store import Store

    store = Store(tmp_path / "index.sqlite3")
    store.con.execute("DROP TABLE chunks_fts")
    with caplog.at_level("WARNING", logger="desktop_rag.core.index.lexical"):
        assert LexicalSearch(store).bm25("apple orchard", 5) == []
    assert any("lexical search" in r.getMessage() and "chunks_fts" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    store.close()
