"""The lexical leg's in-memory postings (desktop_rag.core.index.postings): FTS5's own postings and
BM25, kept current as files come and go, rebuilt when their file is lost or damaged.

All lexical: the fake embedder (tests/fakes.py) makes the vectors, the real model would add nothing."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from desktop_rag.core.engine import Engine
from desktop_rag.core.index import postings
from desktop_rag.core.index.lexical import LexicalSearch
from desktop_rag.core.index.postings import LexicalIndex, Postings, build_segment, fts5_terms
from desktop_rag.core.index.store import Store
from desktop_rag.core.search.evidence import QueryTerms

COVIDQA = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "covidqa"
# Small real articles of the shared covidqa set, and questions about them.
ARTICLES = ("1545.txt", "1546.txt", "1547.txt", "1549.txt", "1550.txt")

requires_covidqa = pytest.mark.skipif(
    not (COVIDQA / "docs").is_dir(), reason=f"the shared eval data is not here ({COVIDQA})"
)


def _questions() -> list[str]:
    rows = [json.loads(line) for line in (COVIDQA / "questions.jsonl").read_text().splitlines()
            if line.strip()]  # fmt: skip
    return [r["question"] for r in rows]


def _words(question: str) -> list[str]:
    terms = QueryTerms.of(question)
    return [terms.words[s] for s in terms.stems]


def _match(words: list[str]) -> str:
    return " OR ".join(f'"{w}"' for w in words)


def _current(engine: Engine) -> Postings:
    assert engine.lexicon.wait(60), "the postings did not catch up with the store"
    snap = engine.lexicon.current(engine.store.vectors_version())
    assert snap is not None
    return snap


def _assert_same_as_fts5(store: Store, snap: Postings, questions: list[str],
                         collections: list[int] | None = None) -> int:  # fmt: skip
    """Every question's top 50 by the postings equals FTS5's: same chunks, scores to 1e-6
    (ties at the cut aside). Returns how many questions had lexical candidates."""
    members = None
    if collections is not None:
        key = tuple(sorted(collections))
        members = snap.members(key, store.collection_chunk_ids(collections))
    compared = 0
    for q in questions:
        words = _words(q)
        terms = fts5_terms(store.con, words)
        if not words or any(len(t) != 1 for t in terms.values()):
            continue
        for weight in (2.0, 0.5):
            ref = LexicalSearch(store)._ranked(_match(words), 50, weight, collections)  # FTS5
            ours = snap.rank([terms[w][0] for w in words], 50, weight, members)
            assert len(ours) == len(ref), q
            ref_of = dict(ref)
            for (cid, score), (_, ref_score) in zip(ours, ref, strict=True):
                assert score == pytest.approx(ref_score, rel=1e-6, abs=1e-9), q
                if cid not in ref_of:  # only a tie at the cut may differ
                    assert score == pytest.approx(ref[-1][1], rel=1e-9), q
                else:
                    assert ref_of[cid] == pytest.approx(score, rel=1e-6, abs=1e-9), q
        compared += bool(ours)
    return compared


def _fts5_vocabulary(store: Store) -> dict[str, int]:
    """FTS5's own document frequency of every term (fts5vocab)."""
    store.con.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.test_vocab "
                      "USING fts5vocab(main, chunks_fts, 'row')")  # fmt: skip
    return {str(t): int(d) for t, d in store.con.execute("SELECT term, doc FROM temp.test_vocab")}


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    for name in ARTICLES:
        shutil.copy(COVIDQA / "docs" / name, folder / name)
    return folder


@requires_covidqa
def test_postings_are_fts5s_postings_and_bm25(fake_engine: Engine, articles: Path, corpus: Path
                                              ) -> None:  # fmt: skip
    """On real documents (covidqa articles, and PDF, Word, HTML, Markdown and Latin-1 text with
    accents and symbols), every term's document frequency is FTS5's, the statistics are
    FTS5's, and the top 50 of hundreds of real questions are FTS5's with equal scores."""
    engine = fake_engine
    engine.index_all([articles, corpus])
    store = engine.store
    snap = _current(engine)
    assert (snap.n_live, snap.avg_tokens) == pytest.approx(
        LexicalSearch(store).fts_stats(), rel=1e-12
    )
    vocab = _fts5_vocabulary(store)
    assert {t: snap.df(t) for t in vocab} == vocab  # FTS5's stemming and tokens, accents too
    assert set(snap.segments[0].vocab) == set(vocab)
    questions = [*_questions()[:200], "Crème brûlée at 150 °C?", "anemometer gust 142 km/h",
                 "Bramley apple orchard Hollow Farm", "hectares planted"]  # fmt: skip
    assert _assert_same_as_fts5(store, snap, questions) > 50

    # document_frequencies and lexical_candidates answer from the postings, as FTS5 would
    words = _words("What is the incubation period of COVID-19 in children?")
    fts5 = LexicalSearch(store)  # no postings: FTS5 answers
    n, df = engine.lexical.document_frequencies(words)
    assert (n, df) == fts5.document_frequencies(words)
    got = engine.lexical.lexical_candidates(words, df, 20, context_weight=2.0)
    ref = fts5.lexical_candidates(words, df, 20, budget=10**9, context_weight=2.0)
    assert [c for c, _ in got] == [c for c, _ in ref]


@requires_covidqa
def test_collection_filter_inside_the_ranking(fake_engine: Engine, articles: Path, corpus: Path
                                              ) -> None:  # fmt: skip
    engine = fake_engine
    engine.index_all([articles, corpus])
    store = engine.store
    ids = {Path(c.root).name: c.id for c in store.collections()}
    snap = _current(engine)
    for only in ([ids["articles"]], [ids["docs"]]):
        assert _assert_same_as_fts5(store, snap, [*_questions()[:60], "orchard apples"],
                                    only) >= 1  # fmt: skip
        members = set(store.collection_chunk_ids(only).tolist())
        words = _words("How many tonnes of apples did the orchard and the virus yield?")
        _, df = engine.lexical.document_frequencies(words)
        got = engine.lexical.lexical_candidates(words, df, 50, context_weight=2.0, collections=only)
        assert got and {c for c, _ in got} <= members
    everywhere = engine.search("How many tonnes of apples did the orchard yield in 2022?", 3)
    assert everywhere.hits[0].file_name == "orchard.pdf"
    filtered = engine.search("How many tonnes of apples did the orchard yield in 2022?", 3,
                             collections=[ids["articles"]])  # fmt: skip
    assert filtered.hits and all(h.file_name in ARTICLES for h in filtered.hits)


@requires_covidqa
def test_staleness_after_files_are_added_and_removed(
    fake_engine: Engine, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file makes the postings stale: FTS5 answers (the same) until the background
    refresh adds a segment; a removed file's chunks are masked; both match FTS5 again."""
    engine = fake_engine
    engine.index_all([articles])
    store = engine.store
    first = _current(engine)
    assert len(first.segments) == 1
    question = "Which genes of the lungs were expressed in the mice after infection?"
    before = engine.search(question, 5)
    assert any(h.file_name == "1545.txt" for h in before.hits)  # the file removed below

    shutil.copy(COVIDQA / "docs" / "2432.txt", articles / "2432.txt")
    with monkeypatch.context() as held:  # hold the background refresh back: stale for sure
        held.setattr(engine.lexicon, "_refresh", store.vectors_version)
        engine.index_all([articles])
        version = store.vectors_version()
        assert version != first.version
        assert engine.lexicon.current(version) is None, "no snapshot of the new version yet"
        stale = [(h.chunk_id, h.score) for h in engine.search(question, 5).hits]  # by FTS5
    added = _current(engine)
    assert added.version == version
    fresh = engine.search(question, 5).hits  # by the refreshed postings: the same
    assert [h.chunk_id for h in fresh] == [c for c, _ in stale]
    assert [h.score for h in fresh] == pytest.approx([s for _, s in stale], rel=1e-9)
    assert len(added.segments) == 2 and added.n_live == store.chunk_count() > first.n_live
    assert _assert_same_as_fts5(store, added, _questions()[:80]) > 10
    new_ids = set(store.collection_chunk_ids(list(store.collection_ids())).tolist())
    assert set(added.ids.tolist()) == new_ids

    (articles / "1545.txt").unlink()
    engine.index_all([articles])
    removed = _current(engine)
    assert removed.dead is not None and removed.dead.any()
    assert removed.n_live == store.chunk_count()
    assert (removed.n_live, removed.avg_tokens) == pytest.approx(
        LexicalSearch(store).fts_stats(), rel=1e-12
    )
    vocab = _fts5_vocabulary(store)
    assert {t: removed.df(t) for t in vocab} == vocab
    assert _assert_same_as_fts5(store, removed, _questions()[:80]) > 10
    after = engine.search(question, 5)
    assert after.hits and all(h.file_name != "1545.txt" for h in after.hits)

    # past MAX_SEGMENTS, the segments after the first are built again as one
    monkeypatch.setattr(postings, "MAX_SEGMENTS", 2)
    shutil.copy(COVIDQA / "docs" / "2450.txt", articles / "2450.txt")
    engine.index_all([articles])
    merged = _current(engine)
    assert len(merged.segments) == 2 and merged.segments[0].size == first.n_live
    assert merged.n_live == store.chunk_count() and merged.dead is not None
    vocab = _fts5_vocabulary(store)
    assert {t: merged.df(t) for t in vocab} == vocab
    assert _assert_same_as_fts5(store, merged, _questions()[:80]) > 10


@requires_covidqa
def test_the_cache_file_is_reused_and_rebuilt_when_lost_or_damaged(
    fake_engine: Engine, articles: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = fake_engine
    engine.index_all([articles])
    store, lexicon = engine.store, engine.lexicon
    snap = _current(engine)
    assert lexicon.data_file.is_file() and lexicon.manifest_file.is_file()
    question = "What is the role of the spike protein?"
    reference = [(h.chunk_id, h.score) for h in engine.search(question, 5).hits]

    def reopened() -> Postings:
        fresh = LexicalIndex(lexicon.folder, store)
        try:
            fresh.start()
            assert fresh.wait(60)
            got = fresh.current(store.vectors_version())
            assert got is not None
            return got
        finally:
            fresh.close()

    caplog.set_level("INFO", logger="desktop_rag.core.index.postings")
    again = reopened()
    assert "lexical postings loaded" in caplog.text
    assert again.ids.tolist() == snap.ids.tolist() and again.fingerprint == snap.fingerprint
    assert _assert_same_as_fts5(store, again, _questions()[:60]) > 5

    lexicon.data_file.unlink()
    caplog.clear()
    rebuilt = reopened()
    assert "lexical postings built" in caplog.text and lexicon.data_file.is_file()
    assert _assert_same_as_fts5(store, rebuilt, _questions()[:60]) > 5

    data = bytearray(lexicon.data_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    lexicon.data_file.write_bytes(bytes(data))
    caplog.clear()
    reopened()
    assert "corrupt or partly written" in caplog.text and "lexical postings built" in caplog.text

    # the engine's own search gives the same hits with the postings as with FTS5 alone
    engine.lexical.postings = None  # FTS5 alone
    alone = engine.search(question, 5).hits
    engine.lexical.postings = lexicon
    assert [h.chunk_id for h in alone] == [c for c, _ in reference]
    assert [h.score for h in alone] == pytest.approx([s for _, s in reference], rel=1e-9)


@requires_covidqa
def test_batches_build_the_same_postings(fake_engine: Engine, articles: Path) -> None:
    engine = fake_engine
    engine.index_all([articles])
    store = engine.store
    snap = _current(engine)
    rows = list(engine.lexicon._rows(-1))
    small = build_segment(store.con, rows, 0, batch=7)
    assert small is not None
    seg, ids, lengths = small
    whole = snap.segments[0]
    assert ids.tolist() == snap.ids.tolist() and lengths.tolist() == snap.length.tolist()
    assert set(seg.vocab) == set(whole.vocab)
    for term in list(whole.vocab)[::7]:
        a, b = seg.lists(term), whole.lists(term)
        assert a is not None and b is not None
        assert all(x.tolist() == y.tolist() for x, y in zip(a, b, strict=True)), term


def test_close_joins_the_background_thread(fake_engine: Engine, corpus: Path) -> None:
    engine = fake_engine
    engine.index_all([corpus])
    engine.lexicon.wait(60)
    engine.lexicon.start()  # a second start: nothing to do, ends at once
    engine.close()
    assert not [t for t in threading.enumerate() if t.name == "postings"]
    assert engine.lexicon.current(engine.store.vectors_version() + 1) is None  # closed: no restart
    assert not [t for t in threading.enumerate() if t.name == "postings"]


def test_words_of_several_tokens_and_none(fake_engine: Engine) -> None:
    """``fts5_terms`` is FTS5's tokenizer: stems, folds case and accents, splits at
    punctuation; a phrase (several tokens) is left to FTS5."""
    engine = fake_engine
    got = fts5_terms(engine.store.con, ["Epidemiology", "possibly", "used", "Crème", "covid-19",
                                        "--", "naïve"])  # fmt: skip
    assert got == {"Epidemiology": ("epidemiolog",), "possibly": ("possibl",), "used": ("us",),
                   "Crème": ("creme",), "covid-19": ("covid", "19"), "--": (),
                   "naïve": ("naiv",)}  # fmt: skip
