"""Index identity: schema migrations, the stored analysis version, chunker changes without
re-extraction, and abstention thresholds per embedding model."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from desktop_rag.cli import cli
from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.embed.identity import EmbeddingIdentity
from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import UserError
from desktop_rag.core.index.store import SCHEMA_VERSION, Store
from desktop_rag.core.ingest.chunking import ChunkerConfig
from desktop_rag.core.models import bundled_embedding_dir
from desktop_rag.core.paths import app_paths
from desktop_rag.core.search.thresholds import BUNDLED, MINILM_FINGERPRINT, resolve_thresholds
from desktop_rag.core.settings import Settings
from desktop_rag.core.text import analysis
from tests.fakes import FakeEmbedder

# The tables as the first version wrote them (schema version 1: no files.pipeline, no
# chunks.terms, no pages.headings), verbatim from that version's store.py.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections(
    id INTEGER PRIMARY KEY, root TEXT NOT NULL UNIQUE, name TEXT NOT NULL, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files(
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL UNIQUE, size INTEGER, mtime_ns INTEGER, sha256 TEXT, kind TEXT, title TEXT,
    status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    pages INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0, indexed_at REAL);
CREATE INDEX IF NOT EXISTS files_collection ON files(collection_id);
CREATE TABLE IF NOT EXISTS pages(
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    page INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY(file_id, page));
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL, page INTEGER, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    text TEXT NOT NULL, context TEXT NOT NULL, n_tokens INTEGER NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, context, content='chunks', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, context) VALUES (new.id, new.text, new.context);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, context)
    VALUES ('delete', old.id, old.text, old.context);
END;
"""

QUESTION = "How many tonnes of apples did the orchard yield in 2022?"


def _chunks(store: Store) -> dict[int, tuple[str, str, bytes, str | None]]:
    return {int(r[0]): (r[1], r[2], bytes(r[3]), r[4]) for r in store.con.execute(
        "SELECT id, text, context, embedding, terms FROM chunks")}  # fmt: skip


def _as_v1(db: Path) -> None:
    """Rewrite the index at ``db`` as version 1 wrote it: its data in the old tables (made by
    the old SQL), recorded as schema version 1."""
    old = db.with_name("v1.db")
    con = sqlite3.connect(old)
    con.execute("PRAGMA journal_mode=WAL")  # as every version opened it
    con.executescript(V1_SCHEMA)
    con.execute("ATTACH ? AS cur", (str(db),))
    con.executescript("""
        BEGIN;
        INSERT INTO meta SELECT key, value FROM cur.meta
            WHERE key IN ('embedding_model', 'vectors_version');
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO collections SELECT * FROM cur.collections;
        INSERT INTO files SELECT id, collection_id, path, size, mtime_ns, sha256, kind, title,
            status, reason, pages, chunks, indexed_at FROM cur.files;
        INSERT INTO pages SELECT file_id, page, text FROM cur.pages;
        INSERT INTO chunks SELECT id, file_id, ord, page, start, "end", text, context, n_tokens,
            embedding FROM cur.chunks;
        COMMIT;
    """)
    con.execute("DETACH cur")
    con.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    old.rename(db)


def test_a_version_1_index_is_migrated_with_its_data(
    fake_engine: Engine, corpus: Path, fake_embedder: FakeEmbedder
) -> None:
    engine, embedder = fake_engine, fake_embedder
    engine.index_all([corpus])
    before = _chunks(engine.store)
    top = engine.search(QUESTION, 3).hits[0]
    engine.close()
    _as_v1(engine.paths.index_db)

    eng = Engine(engine.paths, Settings(), embedder=embedder)
    store = eng.store
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION) == "6"
    assert "pipeline" in {r[1] for r in store.con.execute("PRAGMA table_info(files)")}
    assert {"genre", "genre_basis"} <= {r[1] for r in store.con.execute("PRAGMA table_info(files)")}
    # Each file's genre is detected from its stored pages (the corpus holds no filing).
    assert {f.genre for f in store.files() if f.status == "indexed"} == {"other"}
    assert "headings" in {r[1] for r in store.con.execute("PRAGMA table_info(pages)")}
    assert "boxes" in {r[1] for r in store.con.execute("PRAGMA table_info(pages)")}
    kept = _chunks(store)
    assert kept.keys() == before.keys()  # same ids, text, context and embeddings; no analyses
    assert all(kept[i][:3] == before[i][:3] and kept[i][3] is None for i in kept)
    assert store.analysis_status()["stale"] == len(kept)
    assert eng.search(QUESTION, 3).hits[0].chunk_id == top.chunk_id  # searchable as it is

    # The next run extracts each file once (no pipeline recorded), keeps every embedding whose
    # chunk comes out the same, and stores the analyses.
    embedded = embedder.chunks_embedded
    summary = eng.index_all([corpus])
    assert summary.indexed == 6
    assert embedder.chunks_embedded == embedded, "nothing embedded again"
    after = _chunks(store)
    assert sorted(v[2] for v in after.values()) == sorted(v[2] for v in before.values())
    assert all(v[3] == analysis.encode_terms(v[0]) for v in after.values())
    assert store.analysis_status() == {"version": analysis.ANALYSIS_VERSION,
                                       "current": analysis.ANALYSIS_VERSION, "stale": 0}  # fmt: skip
    assert all(f.pipeline for f in store.files() if f.status == "indexed")
    settings = store.index_settings()
    assert settings is not None and settings["schema_version"] == SCHEMA_VERSION
    assert settings["chunker"]["chunk_tokens"] == 240  # type: ignore[index]
    assert eng.search(QUESTION, 3).hits[0].text == top.text
    assert eng.index_all([corpus]).indexed == 0
    eng.close()


def test_a_new_analysis_version_recomputes_terms_without_embedding(
    fake_engine: Engine, corpus: Path, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, embedder = fake_engine, fake_embedder
    engine.index_all([corpus])
    expected = [h.chunk_id for h in engine.search(QUESTION, 5).hits]
    # Analyses made by an older analysis (here: damaged), and this program's version is newer.
    engine.store.con.execute("UPDATE chunks SET terms = '0\t '")
    before = _chunks(engine.store)
    engine.close()
    monkeypatch.setattr(analysis, "ANALYSIS_VERSION", analysis.ANALYSIS_VERSION + 1)

    eng = Engine(engine.paths, Settings(), embedder=embedder)
    store = eng.store
    assert store.analysis_status()["stale"] == len(before)
    # Stale analyses are never used: read as missing (computed at question time) meanwhile.
    assert all(r.terms is None for r in store.chunks_by_id(list(before)).values())
    assert [h.chunk_id for h in eng.search(QUESTION, 5).hits] == expected

    # Batched and resumable: stop after the first batch, reopen, finish.
    steps = store.refresh_analyses(batch=4)
    assert next(steps) == (4, len(before))
    steps.close()
    first = sorted(before)[:4]
    assert all(r.terms == analysis.encode_terms(r.text)
               for r in store.chunks_by_id(first).values())  # fmt: skip
    reopened = Store(store.path)
    assert reopened.analysis_status()["stale"] == len(before) - 4
    assert reopened.chunks_by_id(first)[first[0]].terms is not None
    assert reopened.chunks_by_id([max(before)])[max(before)].terms is None

    embedded = embedder.chunks_embedded
    summary = eng.index_all([corpus])  # the run finishes the recomputation
    assert summary.indexed == 0 and embedder.chunks_embedded == embedded
    after = _chunks(store)
    assert after.keys() == before.keys()
    for cid, (text, context, blob, terms) in after.items():
        assert (text, context, blob) == before[cid][:3], "ids and embeddings untouched"
        assert terms == analysis.encode_terms(text) != before[cid][3]
    assert store.get_meta("analysis_version") == str(analysis.ANALYSIS_VERSION)
    assert store.analysis_status()["stale"] == 0
    assert [h.chunk_id for h in eng.search(QUESTION, 5).hits] == expected
    eng.close()


def test_an_index_of_a_newer_version_is_refused_untouched(home: Path) -> None:
    db = home / "index.db"
    Store(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.execute("ALTER TABLE pages DROP COLUMN headings")  # a layout this version does not know
    con.commit()
    con.close()
    with pytest.raises(UserError, match="newer version of desktop_rag"):
        Store(db)
    con = sqlite3.connect(db)
    assert "headings" not in {r[1] for r in con.execute("PRAGMA table_info(pages)")}
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION + 1
    )
    con.close()


def test_a_read_only_old_index_stays_searchable(
    fake_engine: Engine, corpus: Path, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, embedder = fake_engine, fake_embedder
    engine.index_all([corpus])
    expected = [h.chunk_id for h in engine.search(QUESTION, 5).hits]
    engine.close()
    _as_v1(engine.paths.index_db)
    connect = sqlite3.connect

    def read_only(path: object, **kwargs: object) -> sqlite3.Connection:
        return connect(f"file:{path}?mode=ro", uri=True, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", read_only)
    eng = Engine(engine.paths, Settings(), embedder=embedder)
    assert eng.store.read_only and eng.store.get_meta("schema_version") == "1"
    assert [h.chunk_id for h in eng.search(QUESTION, 5).hits] == expected
    assert list(eng.store.refresh_analyses()) == []
    assert eng.store.files()[0].pipeline is None
    eng.close()


def test_new_chunker_settings_cut_the_stored_pages_again(
    fake_engine: Engine, corpus: Path, fake_embedder: FakeEmbedder, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Only the chunker changed: no file is extracted again, the chunks equal those of a fresh
    extraction, and chunks that come out the same keep their embeddings."""
    engine, embedder = fake_engine, fake_embedder
    engine.index_all([corpus])
    n_before = engine.store.chunk_count()
    engine.close()
    config = ChunkerConfig(chunk_tokens=24, overlap_tokens=6)
    eng = Engine(engine.paths, Settings(), embedder=embedder, chunker_config=config)
    extracted: list[Path] = []

    def no_extract(path: Path, **options: object):  # type: ignore[no-untyped-def]
        extracted.append(path)
        raise AssertionError("extracted again")

    monkeypatch.setattr(eng.sandbox, "extract", no_extract)
    embedded = embedder.chunks_embedded
    summary = eng.index_all([corpus])
    assert extracted == [] and summary.indexed == 6 and not summary.cancelled
    n_after = eng.store.chunk_count()
    assert n_after > n_before
    assert 0 < embedder.chunks_embedded - embedded < n_after, "unchanged chunks not embedded"
    assert all(f.pipeline and f.pipeline.endswith(config.fingerprint())
               for f in eng.store.files() if f.status == "indexed")  # fmt: skip
    settings = eng.store.index_settings()
    assert settings is not None and settings["chunker_fingerprint"] == config.fingerprint()
    recut = {(r[0], r[1], r[2], r[3], r[4], r[5]) for r in eng.store.con.execute(
        'SELECT f.path, c.page, c.start, c."end", c.text, c.context FROM chunks c '
        "JOIN files f ON f.id = c.file_id")}  # fmt: skip
    eng.close()

    # The same settings on a fresh index (extracting every file) make the same chunks.
    monkeypatch.setenv("DESKTOP_RAG_HOME", str(tmp_path / "fresh"))
    fresh_paths = app_paths()
    fresh = Engine(fresh_paths, Settings(), embedder=embedder, chunker_config=config)
    fresh.index_all([corpus])
    made = {(r[0], r[1], r[2], r[3], r[4], r[5]) for r in fresh.store.con.execute(
        'SELECT f.path, c.page, c.start, c."end", c.text, c.context FROM chunks c '
        "JOIN files f ON f.id = c.file_id")}  # fmt: skip
    fresh.close()
    assert recut == made


def _identity(fingerprint: str, name: str = "my-model") -> EmbeddingIdentity:
    return EmbeddingIdentity(name, 384, fingerprint, 256)


def test_thresholds_are_chosen_per_embedding_model(tmp_path: Path) -> None:
    bundled = resolve_thresholds(Settings(), _identity(MINILM_FINGERPRINT, "renamed copy"))
    assert bundled == BUNDLED and bundled.warning is None
    assert resolve_thresholds(Settings(), _identity(MINILM_FINGERPRINT + "-int8")) == BUNDLED
    other = resolve_thresholds(Settings(), _identity("0123456789abcdef"))
    assert other.source == "uncalibrated" and other.min_relevance == BUNDLED.min_relevance
    assert other.warning and "my-model" in other.warning and "all-MiniLM-L6-v2" in other.warning
    # only one cosine threshold set: the other is still a guess
    assert resolve_thresholds(Settings(min_relevance=0.6), _identity("0" * 16)).warning
    mine = resolve_thresholds(Settings(min_relevance=0.6, min_relevance_lexical=0.5,
                                       min_term_coverage=0.8), _identity("0" * 16))  # fmt: skip
    assert (mine.min_relevance, mine.min_relevance_lexical, mine.min_term_coverage) == (
        0.6, 0.5, 0.8)  # fmt: skip
    assert mine.source == "settings" and mine.warning is None
    assert resolve_thresholds(Settings(min_relevance=0.5), _identity(MINILM_FINGERPRINT)
                              ).min_relevance == 0.5  # fmt: skip

    # A settings file of version 1 saved every default: those are not the user's choices.
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"min_relevance": 0.44, "min_relevance_lexical": 0.3,
                                "min_term_coverage": 0.9, "top_k": 7, "version": 1}))  # fmt: skip
    old = Settings.load(path)
    assert (old.min_relevance, old.min_relevance_lexical, old.min_term_coverage) == (None,) * 3
    assert old.top_k == 7 and old.version == 2
    path.write_text(json.dumps({"min_relevance": 0.5, "version": 1}))
    assert Settings.load(path).min_relevance == 0.5
    Settings(min_relevance=0.6).save(path)
    again = Settings.load(path)
    assert again.min_relevance == 0.6 and again.min_relevance_lexical is None


@pytest.fixture(scope="module")
def imported_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's sentence-transformers folder: a copy of the bundled model with one changed
    configuration file (so its fingerprint differs; it embeds the same)."""
    base = bundled_embedding_dir()
    assert base is not None
    out = tmp_path_factory.mktemp("user-models") / "my-minilm"
    shutil.copytree(base, out)
    cfg = out / "config_sentence_transformers.json"
    cfg.write_text(cfg.read_text() + "\n")
    return out


@pytest.mark.slow  # embeds with its own copy of the real model (torch)
def test_an_imported_embedding_model_warns_about_its_thresholds(
    home: Path, corpus: Path, imported_model: Path
) -> None:
    paths = app_paths()
    Settings(embedding_model=str(imported_model), embedding_backend="torch").save(
        paths.settings_file
    )
    runner = CliRunner()
    res = runner.invoke(cli, ["status", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["thresholds"]["source"] == "uncalibrated"
    assert "my-minilm" in data["thresholds"]["warning"]
    assert data["index"]["schema_version"] == SCHEMA_VERSION
    res = runner.invoke(cli, ["status"])
    assert res.exit_code == 0 and "Warning: the abstention thresholds" in res.output

    # Every answer carries it, an abstention too (the evidence style runs no LLM).
    emb = Embedder(imported_model, backend="torch")  # no ONNX graph: no export for this copy
    settings = Settings(embedding_model=str(imported_model), answer_style="evidence")
    eng = Engine(paths, settings, embedder=emb)
    eng.index_all([corpus])
    found = eng.answer(QUESTION)
    none = eng.answer("Who won the 1998 chess olympiad in Elista?")
    assert not found.abstained and none.abstained
    for answer in (found, none):
        assert any("not for the embedding model my-minilm" in w for w in answer.warnings)
        assert answer.to_json()["warnings"]
    # Thresholds set by the user win, without a warning.
    eng.settings.min_relevance, eng.settings.min_relevance_lexical = 0.44, 0.3
    assert eng.answer(QUESTION).warnings == ()
    assert eng.thresholds().source == "settings"
    eng.close()
    Settings(embedding_model=str(imported_model), min_relevance=0.44,
             min_relevance_lexical=0.3).save(paths.settings_file)  # fmt: skip
    res = runner.invoke(cli, ["status"])
    assert res.exit_code == 0 and "Warning" not in res.output
    assert "set in the settings" in res.output


def test_the_bundled_model_has_no_warning(engine: Engine, corpus: Path) -> None:
    engine.settings.answer_style = "evidence"
    engine.index_all([corpus])
    assert engine.thresholds() == BUNDLED
    assert engine.answer(QUESTION).warnings == ()
    res = CliRunner().invoke(cli, ["status", "--json"])
    data = json.loads(res.output)
    assert data["thresholds"]["source"] == "calibrated" and data["thresholds"]["warning"] is None
    assert data["index"]["index_settings"]["chunker_fingerprint"] == ChunkerConfig().fingerprint()
    assert np.isclose(data["thresholds"]["min_relevance"], 0.44)


def test_a_settings_field_it_cannot_use_gets_its_default_with_a_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"top_k": "five", "temperature": 9, "answer_style": "poem",
                                "embedding_backend": "gpu", "threads": True,
                                "context_size": 2048, "min_relevance": 0.5}))  # fmt: skip
    with caplog.at_level("WARNING", logger="desktop_rag.core.settings"):
        s = Settings.load(path)
    default = Settings()
    assert (s.top_k, s.temperature, s.answer_style, s.threads) == (
        default.top_k,
        default.temperature,
        default.answer_style,
        default.threads,
    )
    assert s.embedding_backend == default.embedding_backend
    assert s.context_size == 2048 and s.min_relevance == 0.5  # the valid ones are kept
    told = " ".join(r.getMessage() for r in caplog.records)
    for key in ("top_k", "temperature", "answer_style", "embedding_backend", "threads"):
        assert key in told
    assert "should be a whole number of sources from 1 to 50" in told
