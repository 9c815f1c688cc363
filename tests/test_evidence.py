"""Lexical evidence features and the reranking they drive."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop_rag.core.engine import Engine
from desktop_rag.core.search.evidence import FEATURES, QueryTerms, evidence_features
from desktop_rag.core.text.analysis import bm25_idf, content_terms

ROOT = Path(__file__).resolve().parents[1]


def test_terms_are_porter_stems_without_stop_words() -> None:
    assert content_terms("The vaccines were tested in trials of 3 cities.") == [
        "vaccin", "test", "trial", "3", "citi",
    ]  # fmt: skip
    q = QueryTerms.of("How many volunteers did the vaccine trial enroll?")
    assert q.stems == ("mani", "volunt", "vaccin", "trial", "enrol")
    assert ("vaccin", "trial") in q.bigrams and q.words["volunt"] == "volunteers"
    assert QueryTerms.of("what is it?").stems == ()


def test_one_sentence_holding_the_question_beats_scattered_words() -> None:
    q = QueryTerms.of("How many volunteers did the vaccine trial enroll?")
    idf = dict.fromkeys(q.stems, 1.0)
    answer = (
        "Recruitment began in March. The vaccine trial enrolled 4,200 volunteers in Kenya. "
        "Follow-up lasted a year."
    )
    scattered = (
        "Many people ask about vaccines. A trial is a careful study. Volunteers are paid. "
        "Some clinics enroll patients weekly."
    )
    f = evidence_features(q, idf, [(answer, ""), (scattered, "Trial handbook")])
    col = {name: i for i, name in enumerate(FEATURES)}
    assert f.shape == (2, 4) and f.dtype == np.float64
    # "mani" is missing from the answer sentence: 4 of 5 equally weighted stems.
    assert f[0, col["sentence"]] == pytest.approx(0.8)
    # The scattered chunk covers every stem somewhere (whole-chunk coverage 1.0) but its best
    # sentence holds two ("many", "vaccines") plus "trial" from the title, which counts everywhere.
    assert f[1, col["coverage"]] == pytest.approx(1.0)
    assert f[1, col["sentence"]] == pytest.approx(0.6)
    # Word pairs: the answer has "vaccine trial" and "trial enrol(led)" of the question's four; the
    # scattered chunk only "vaccines. A trial" (pairs skip stop words and run across sentences).
    assert f[0, col["bigram"]] == pytest.approx(0.5) and f[1, col["bigram"]] == pytest.approx(0.25)
    assert f[1, col["title"]] == pytest.approx(0.2) and f[0, col["title"]] == 0.0
    # No content words or no weights: all zeros, never a division by zero.
    assert not evidence_features(QueryTerms.of("is it?"), {}, [(answer, "")]).any()


def test_idf_is_the_bm25_form() -> None:
    assert bm25_idf(100, 0) > bm25_idf(100, 10) > bm25_idf(100, 99) > 0.0
    assert bm25_idf(10, 2) == pytest.approx(np.log((10 - 2 + 0.5) / 2.5 + 1))


def test_document_frequencies_come_from_the_index(fake_engine: Engine, corpus: Path) -> None:
    engine = fake_engine
    engine.index_all([corpus])
    n, df = engine.lexical.document_frequencies(["orchard", "apples", "zeppelin", 'qu"ote'])
    assert n == engine.store.chunk_count()
    # Porter stemming in FTS5: "orchard" is on every page of orchard.pdf (in the title, too).
    assert df["orchard"] >= 3 and df["apples"] >= 2
    assert df["zeppelin"] == 0 and df['qu"ote'] == 0


def test_hybrid_ranks_the_answering_chunk_first(engine: Engine, tmp_path: Path) -> None:
    """A chunk that repeats the question's words loses to the one sentence that answers it."""
    docs = tmp_path / "trial"
    docs.mkdir()
    (docs / "faq.md").write_text(
        "# Vaccine trial questions\n\n"
        + "Volunteers often ask about the vaccine. The trial team welcomes volunteers. "
        "A vaccine trial needs volunteers, and volunteers make the trial possible. "
        "Our vaccine trial thanks every volunteer.\n",
        encoding="utf-8",
    )
    (docs / "report.md").write_text(
        "# Field report\n\nRecruitment opened in March at four clinics. By June the vaccine trial "
        "had enrolled 4,200 volunteers across Kenya and Uganda. Follow-up lasted twelve months.\n",
        encoding="utf-8",
    )
    engine.index_all([docs])
    question = "How many volunteers did the vaccine trial enroll?"
    assert engine.search(question, 2, mode="bm25").hits[0].file_name == "faq.md"
    top = engine.search(question, 2).hits
    assert top[0].file_name == "report.md" and "4,200 volunteers" in top[0].text


def test_python_bm25_equals_fts5_bm25(fake_engine: Engine, corpus: Path) -> None:
    """The candidates' BM25 computed from the stored analyses is FTS5's own bm25() (same
    formula, corpus statistics and column weights), so both retrievers' scores agree."""
    engine = fake_engine
    from desktop_rag.core.search.evidence import bm25_scores
    from desktop_rag.core.text.analysis import fts5_idf

    engine.index_all([corpus, ROOT / "resources" / "samples"])
    store, lexical = engine.store, engine.lexical
    ids = [int(r[0]) for r in store.con.execute("SELECT id FROM chunks")]
    rows = store.chunks_by_id(ids)
    assert all(r.terms for r in rows.values())  # stored at indexing
    n_fts, avg = lexical.fts_stats()
    assert n_fts == len(ids) and avg > 10
    for question in ("How are interrupted indexing runs resumed?", "crème brûlée au café",
                     "Which file formats does the app index, and is the network used?"):  # fmt: skip
        ref = dict(lexical.bm25(question, 1000, context_weight=2.0))
        assert ref, question
        terms = QueryTerms.of(question)
        n, df = lexical.document_frequencies([terms.words[s] for s in terms.stems])
        idf = {s: fts5_idf(n, df[terms.words[s]]) for s in terms.stems if df[terms.words[s]]}
        cand = list(ref)
        ours = bm25_scores(terms, idf, [(rows[c].text, rows[c].context) for c in cand], avg,
                           terms=[rows[c].terms for c in cand], context_weight=2.0)  # fmt: skip
        assert ours == pytest.approx([ref[c] for c in cand], rel=1e-6)
        # The same from the texts alone (an index made before analyses were stored).
        again = bm25_scores(terms, idf, [(rows[c].text, rows[c].context) for c in cand], avg,
                            context_weight=2.0)  # fmt: skip
        assert list(again) == pytest.approx(list(ours), rel=1e-12)


def test_lexical_candidates_stay_within_the_posting_budget(
    fake_engine: Engine, corpus: Path
) -> None:
    engine = fake_engine
    engine.index_all([corpus, ROOT / "resources" / "samples"])
    lexical = engine.lexical
    words = ["indexing", "interrupted", "resumes"]
    _n, df = lexical.document_frequencies(words)
    full = lexical.lexical_candidates(words, df, 50, budget=10**9, context_weight=2.0)
    assert [c for c, _ in full] == [
        c for c, _ in lexical.bm25(" ".join(words), 50, context_weight=2.0)
    ]
    rare = min(words, key=lambda w: df[w])
    tight = lexical.lexical_candidates(words, df, 50, budget=df[rare], context_weight=2.0)
    rare_only = lexical.bm25(rare, 50, context_weight=2.0)
    assert [c for c, _ in tight] == [c for c, _ in rare_only]  # only the rarest word fitted
    assert lexical.lexical_candidates(words, df, 50, budget=df[rare] - 1) == []  # all common


def test_index_made_before_stored_analyses_still_answers(fake_engine: Engine, corpus: Path) -> None:
    engine = fake_engine
    engine.index_all([corpus])
    before = [h.chunk_id for h in engine.search("How are interrupted runs resumed?", 5).hits]
    engine.store.con.execute("UPDATE chunks SET terms = NULL")  # as an older version wrote it
    after = [h.chunk_id for h in engine.search("How are interrupted runs resumed?", 5).hits]
    assert after == before
    # An index from before the column existed gains it when opened, and answers the same.
    from desktop_rag.core.index.store import Store

    engine.store.con.execute("ALTER TABLE chunks DROP COLUMN terms")
    reopened = Store(engine.store.path)
    assert "terms" in {r[1] for r in reopened.con.execute("PRAGMA table_info(chunks)")}
    engine.store = reopened
    again = [h.chunk_id for h in engine.search("How are interrupted runs resumed?", 5).hits]
    assert again == before
