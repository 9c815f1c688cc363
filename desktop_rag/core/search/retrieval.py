"""Hybrid retrieval: dense (hnswlib) and lexical (SQLite FTS5 BM25) candidates, fused, then
reranked with lexical evidence features.

Plain reciprocal rank fusion throws the scores away and lost to BM25 alone on covidqa (answer-span
recall@5 0.64 vs 0.71). We instead score every candidate with *both* retrievers: the dense cosine of
each BM25 candidate is computed from its stored embedding, and the BM25 score of each dense candidate
is computed by FTS5 restricted to those rows. The fused score is a convex combination of the two
normalised scores (Bruch, Gai & Ingber, "An Analysis of Fusion Functions for Hybrid Retrieval",
ACM TOIS 2023, found it more accurate than RRF): BM25 divided by the best BM25 of the candidates,
cosine min-max normalised over the candidates.

The default ``hybrid`` mode then adds weighted lexical evidence features of each candidate
(:mod:`desktop_rag.core.search.evidence`: best-sentence coverage of the question's words, shared word
pairs, whole-chunk and title coverage). ``fused`` is the combination without them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import PurePath
from typing import TYPE_CHECKING, Literal

import numpy as np

from desktop_rag.core.search.evidence import QueryTerms, bm25_scores, evidence_features
from desktop_rag.core.text.analysis import bm25_idf, fts5_idf
from desktop_rag.core.text.filings import is_financial
from desktop_rag.core.text.periods import Period, asks_latest, document_period, question_periods
from desktop_rag.core.text.statements import question_statements, statement_of_context
from desktop_rag.core.types import Hit

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from desktop_rag.core.embed.embedding import Embedder
    from desktop_rag.core.index.lexical import LexicalSearch
    from desktop_rag.core.index.store import Store
    from desktop_rag.core.index.vectors import VectorIndex

Mode = Literal["hybrid", "fused", "dense", "bm25", "rrf"]
MODES: tuple[str, ...] = ("hybrid", "fused", "dense", "bm25", "rrf")


# Up to this many chunks, a collection-filtered search scores every chunk exactly (a 4096 x 384
# matrix product: well under 1 ms, 6 MB cached); above it, hnswlib's filtered graph search.
EXACT_SEARCH_MAX = 4096
# A name in a question: a capitalised word that does not begin it ("Amazon's", "NVIDIA").
_NAMES = re.compile(r"(?<=[\w,;:)] )[A-Z][\w&.'’-]*")


@dataclass(frozen=True)
class RetrievalConfig:
    """Retrieval parameters.

    ``candidates`` is how many chunks each retriever contributes before fusion; ``dense_weight`` is
    the weight of the dense score in the convex combination (1 - it goes to BM25); ``rrf_k`` = 60 is
    the constant of Cormack, Clarke & Büttcher (SIGIR 2009), used by the ``rrf`` mode only;
    ``context_weight`` is the BM25 weight of a chunk's context line (document title and headings)
    relative to its text. ``evidence_weights`` are the weights of the lexical evidence features
    (``sentence``, ``bigram``, ``coverage``, ``title``; each in [0, 1]) added to the fused score
    in ``hybrid`` mode.

    Defaults chosen on both dev sets together with ``desktop-rag eval`` (covidqa answer-span hit@5 /
    docugami document hit@5). ``lexical_budget`` bounds the postings FTS5 ranks for the lexical
    candidates (see :meth:`~desktop_rag.core.index.lexical.LexicalSearch.lexical_candidates`). Fusion alone:
    dense weight 0.4 gave 0.771 / 0.780, 0.5 gave 0.759 / 0.872, 0.6 gave 0.746 / 0.887 (covidqa questions reuse the article's words; docugami questions
    name companies the text calls "the Company"). With the evidence features the best region moves
    to dense weight 0.7-0.8 and both sets gain: 0.802 / 0.897 with the defaults here. Tried and left
    out: blending in document-level evidence (lowered both sets), z-score normalisation (no
    better), and the embedding model's best-sentence similarity (lowered covidqa by 5 points).

    Page precision on filings (hybrid mode; measured with ``bench/filing_pages.py``'s gold pages
    for 110 docugami questions, page hit@5): ``period_weight`` is added to (or taken from) the
    chunks of documents whose name gives the period the question asks about (or another one),
    see :mod:`.periods`: 0.446 -> 0.527. ``statement_weight`` is added to the chunks of the
    financial statements the question's line items belong to, which are also brought in from
    the first ``statement_files`` candidate documents (see :mod:`.statements`): 0.4 measured
    best (0.2: 0.536, 0.4: 0.582, 0.6: 0.518 with 2 chunks a page); ``statement_per_file``
    caps how many chunks of one document it lifts (issue 32, see
    :meth:`Retriever._match_statements`). ``max_per_page`` chunks of
    one page at most in the top k (1: 0.636, 2: 0.600; documents without pages are not
    limited). ``title_weight`` prefers, among dated documents, those whose title or file name
    holds the names in the question (0.2: 0.664, doc hit@5 1.000 on all 195 questions; see
    :meth:`Retriever._match_titles`). None of these changes covidqa (no dated file names, no
    statements, no pages): doc hit@5 0.862, answer hit@5 0.802 before and after.

    Where they apply (issue 32): each of these rules reads or changes only the chunks of
    documents detected as filings or financial reports (``Hit.genre``, see
    :mod:`desktop_rag.core.text.filings`); a paper's, a contract's or a deck's chunks keep their
    scores and places.
    """

    candidates: int = 50
    dense_weight: float = 0.75
    lexical_budget: int = 20_000
    rrf_k: int = 60
    context_weight: float = 2.0
    evidence_weights: tuple[float, float, float, float] = (0.5, 0.5, 0.25, 0.25)
    period_weight: float = 0.2
    statement_weight: float = 0.4
    statement_files: int = 8
    statement_per_file: int = 1
    max_per_page: int = 1
    title_weight: float = 0.2


@dataclass(frozen=True)
class RetrievalResult:
    """Top-k hits, best first, and the retrieval latency in milliseconds.

    ``idf`` maps the question's content stems to their BM25 IDF over the indexed chunks
    (:func:`~desktop_rag.core.search.evidence.bm25_idf`; empty in the single-retriever modes), for
    weighting question words when choosing evidence sentences.
    """

    hits: list[Hit]
    retrieval_ms: float
    best_dense: float  # the highest cosine similarity of any candidate (relevance evidence)
    idf: dict[str, float] = field(default_factory=dict)


class Retriever:
    """Runs a query against the store and the vector index."""

    def __init__(
        self,
        store: Store,
        lexical: LexicalSearch,
        vectors: VectorIndex,
        embedder: Embedder,
        config: RetrievalConfig | None = None,
    ) -> None:
        self.store = store
        self.lexical = lexical
        self.vectors = vectors
        self.embedder = embedder
        self.config = config or RetrievalConfig()

    def _dense(
        self, qvec: NDArray[np.float32], n: int, collections: Sequence[int] | None
    ) -> list[tuple[int, float]]:
        """The ``n`` nearest chunks (chunk id, cosine), within ``collections`` (None: all).

        The collection filter is applied inside the search, never to an over-fetched top-k
        (which left a small ticked collection beside a large unticked one with no hits): up to
        :data:`EXACT_SEARCH_MAX` chunks are scored exactly against their stored embeddings (a
        graph search that rejects most nodes degrades, hnswlib #417); larger selections use the
        graph with a filter on the label.
        """
        if collections is None:
            return self.vectors.search(qvec, n)
        ids = self.store.collection_chunk_ids(collections)
        if len(ids) == 0:
            return []
        if len(ids) > EXACT_SEARCH_MAX:
            members = set(ids.tolist())
            return self.vectors.search(qvec, n, allowed=members.__contains__)
        ids, matrix = self.store.collection_embeddings(collections)
        if len(ids) == 0:
            return []
        q = qvec.astype(np.float32).ravel()
        sims = matrix @ (q / max(float(np.linalg.norm(q)), 1e-12))
        top = np.argsort(-sims, kind="stable")[:n]
        return [(int(ids[i]), float(sims[i])) for i in top]

    def search(
        self,
        query: str,
        k: int = 5,
        *,
        mode: Mode = "hybrid",
        collections: Sequence[int] | None = None,
    ) -> RetrievalResult:
        """The top ``k`` chunks for ``query``.

        ``collections`` restricts the search to those collection ids (None = all).
        """
        if mode != "bm25":
            self.embedder.load()  # a first-use model load is not retrieval latency
        t0 = time.perf_counter()
        cfg = self.config
        n_cand = max(cfg.candidates, k)
        if collections is not None and set(collections) >= self.store.collection_ids():
            collections = None  # every collection is searched: no filtering needed
        qvec = self.embedder.embed_query(query) if mode != "bm25" else None
        dense = self._dense(qvec, n_cand, collections) if qvec is not None else []
        terms = QueryTerms.of(query)
        words = [terms.words[s] for s in terms.stems]
        hybrid = mode in ("hybrid", "fused")
        n_docs, df = self.lexical.document_frequencies(words) if hybrid else (0, {})
        if hybrid:
            lexical = self.lexical.lexical_candidates(
                words, df, n_cand, budget=cfg.lexical_budget, context_weight=cfg.context_weight,
                collections=collections,
            )  # fmt: skip
        elif mode != "dense":  # the reference modes keep FTS5's exact BM25 top-k
            lexical = self.lexical.bm25(
                query, n_cand, context_weight=cfg.context_weight, collections=collections
            )
        else:
            lexical = []
        dense_of = dict(dense)
        bm25_of = dict(lexical)
        if mode == "dense":
            ranked = sorted(dense_of, key=lambda c: -dense_of[c])
            fused = {c: dense_of[c] for c in ranked}
        elif mode == "bm25":
            ranked = sorted(bm25_of, key=lambda c: -bm25_of[c])
            top = max(bm25_of.values(), default=1.0) or 1.0
            fused = {c: bm25_of[c] / top for c in ranked}
        elif mode == "rrf":
            fused = {}
            for lst in (sorted(dense, key=lambda x: -x[1]), lexical):
                for rank, (c, _) in enumerate(lst):
                    fused[c] = fused.get(c, 0.0) + 1.0 / (cfg.rrf_k + rank + 1)
            ranked = sorted(fused, key=lambda c: -fused[c])
        else:
            rows = self.store.chunks_by_id(list(dict.fromkeys([*dense_of, *bm25_of])))
            kinds = question_statements(query) if mode == "hybrid" else frozenset()
            extra = self._statement_candidates(kinds, dense, lexical, rows)
            ranked, fused = self._fuse(terms, df, qvec, dense_of, bm25_of, rows, extra)
        if mode not in ("hybrid", "fused"):
            rows = self.store.chunks_by_id(ranked[:k])
        if mode == "hybrid" and ranked:
            ranked, fused = self._rerank(terms, n_docs, df, ranked, fused, rows)
            # Document-level preferences first, so the statement chunk the statement preference
            # lifts in each document is that document's first after them (_match_statements).
            docs = _documents(ranked, rows)
            ranked, fused = self._match_periods(query, ranked, fused, rows, docs)
            ranked, fused = self._match_titles(query, ranked, fused, rows, docs)
            ranked, fused = self._match_statements(kinds, ranked, fused, rows)
        if mode == "hybrid":
            ranked = self._spread_pages(ranked, rows, k)
        ranked = ranked[:k]
        hits = [
            Hit(
                chunk_id=c,
                file_id=r.file_id,
                path=r.path,
                page=r.page,
                start=r.start,
                end=r.end,
                text=r.text,
                context=r.context,
                score=float(fused[c]),
                dense=dense_of.get(c),
                bm25=bm25_of.get(c),
                genre=r.genre,
            )
            for c in ranked
            if (r := rows.get(c)) is not None
        ]
        best_dense = max(dense_of.values(), default=0.0)
        idf = (
            {s: bm25_idf(n_docs, df.get(terms.words[s], 0)) for s in terms.stems} if hybrid else {}
        )
        return RetrievalResult(hits, (time.perf_counter() - t0) * 1000.0, best_dense, idf)

    def _fuse(
        self,
        terms: QueryTerms,
        df: dict[str, int],
        qvec: np.ndarray | None,
        dense_of: dict[int, float],
        bm25_of: dict[int, float],
        rows: dict[int, Hit],
        extra: Sequence[int] = (),
    ) -> tuple[list[int], dict[int, float]]:
        """Score every candidate with both retrievers, then combine convexly (see module doc).

        The BM25 of every candidate, lexical, dense or ``extra`` (added by neither retriever),
        is computed from its text with FTS5's formula and corpus statistics
        (:func:`~desktop_rag.core.search.evidence.bm25_scores`), so all are scored alike and with every
        question word; ``bm25_of`` is updated in place, and ``dense_of`` gains the cosine of
        every candidate from its stored embedding.
        """
        cand = [c for c in dict.fromkeys([*dense_of, *bm25_of, *extra]) if c in rows]
        if not cand:
            return [], {}
        missing_dense = [c for c in cand if c not in dense_of]
        if missing_dense and qvec is not None:
            vecs = self.store.embeddings_for(missing_dense)
            for c, v in vecs.items():
                dense_of[c] = float(np.dot(v, qvec))
        n_fts, avg_tokens = self.lexical.fts_stats()
        idf = {
            s: fts5_idf(n_fts, df[terms.words[s]]) for s in terms.stems if df.get(terms.words[s])
        }
        scores = bm25_scores(terms, idf, [(rows[c].text, rows[c].context) for c in cand],
                             avg_tokens, terms=[rows[c].terms for c in cand],
                             context_weight=self.config.context_weight)  # fmt: skip
        bm25_of.clear()
        bm25_of.update((c, float(x)) for c, x in zip(cand, scores, strict=True) if x > 0.0)
        d = np.array([dense_of.get(c, 0.0) for c in cand], dtype=np.float64)
        b = scores
        d_lo, d_hi = float(d.min()), float(d.max())
        d_norm = (d - d_lo) / (d_hi - d_lo) if d_hi > d_lo else np.ones_like(d)
        b_hi = float(b.max())
        b_norm = b / b_hi if b_hi > 0 else np.zeros_like(b)
        w = self.config.dense_weight
        score = w * d_norm + (1.0 - w) * b_norm
        order = np.argsort(-score, kind="stable")
        ranked = [cand[i] for i in order]
        return ranked, {cand[i]: float(score[i]) for i in range(len(cand))}

    def _rerank(
        self,
        terms: QueryTerms,
        n_docs: int,
        df: dict[str, int],
        ranked: list[int],
        fused: dict[int, float],
        rows: dict[int, Hit],
    ) -> tuple[list[int], dict[int, float]]:
        """Add the weighted lexical evidence features (see module doc) to the fused scores."""
        if not terms.stems:
            return ranked, fused
        idf = {s: bm25_idf(n_docs, df.get(terms.words[s], 0)) for s in terms.stems}
        cand = [c for c in ranked if c in rows]
        feats = evidence_features(terms, idf, [(rows[c].text, rows[c].context) for c in cand],
                                  [rows[c].terms for c in cand])  # fmt: skip
        extra = feats @ np.asarray(self.config.evidence_weights, dtype=np.float64)
        score = {c: fused[c] + float(x) for c, x in zip(cand, extra, strict=True)}
        return sorted(cand, key=lambda c: -score[c]), score

    def _spread_pages(self, ranked: list[int], rows: dict[int, Hit], k: int) -> list[int]:
        """``ranked`` with at most ``max_per_page`` chunks of one page of a financial filing or
        report in the top ``k`` (the others move down, in order): adjacent chunks of one
        statement page say the same thing, and the sources shown should point at different
        pages. Other documents (a paper's page holds several answers; text without pages) are
        not limited."""
        m = self.config.max_per_page
        if m <= 0:
            return ranked
        top: list[int] = []
        later: list[int] = []
        seen: dict[tuple[int, int], int] = {}
        for c in ranked:
            r = rows.get(c)
            key = (
                (r.file_id, r.page)
                if r is not None and r.page is not None and is_financial(r.genre)
                else None
            )
            if len(top) < k and (key is None or seen.get(key, 0) < m):
                top.append(c)
                if key is not None:
                    seen[key] = seen.get(key, 0) + 1
            else:
                later.append(c)
        return top + later

    def _statement_candidates(
        self,
        kinds: frozenset[str],
        dense: Sequence[tuple[int, float]],
        lexical: Sequence[tuple[int, float]],
        rows: dict[int, Hit],
    ) -> list[int]:
        """The chunks of the financial statements ``kinds`` (see :mod:`.statements`) in the
        candidates' leading documents, added to ``rows``; their ids.

        A question about inventory levels or buybacks is answered by the figures of a balance
        sheet or a cash flow statement, which share few words with the question and embed far
        from it, so neither retriever brings them; they are taken from the first
        ``statement_files`` documents of the dense and lexical rankings (interleaved), by the
        statement title in their context line, and then scored like every other candidate.
        Only documents detected as filings or financial reports (:mod:`.filings`) count.
        """
        if not kinds or self.config.statement_weight <= 0.0:
            return []
        files: list[int] = []
        for pair in zip_longest(dense, lexical):
            for item in pair:
                r = rows.get(item[0]) if item is not None else None
                if r is not None and r.file_id not in files and is_financial(r.genre):
                    files.append(r.file_id)
        files = files[: self.config.statement_files]
        found = self.store.statement_chunks(files)
        extra = sorted(
            c for f in files for c, kind in found.get(f, ()) if c not in rows and kind in kinds
        )
        rows.update(self.store.chunks_by_id(extra))
        return [c for c in extra if c in rows]

    def _match_statements(
        self, kinds: frozenset[str], ranked: list[int], score: dict[int, float],
        rows: dict[int, Hit],
    ) -> tuple[list[int], dict[int, float]]:  # fmt: skip
        """Add ``statement_weight`` to the chunks of the financial statements ``kinds`` that
        the question's terms belong to (by the statement title in the chunk's context line), in
        filings and financial reports only, and to the first ``statement_per_file`` of them of
        each document at most (in ``ranked`` order; 0: all).

        Uncapped, every statement chunk of the leading candidate documents was lifted: a
        question on inventories lifted every page of every candidate balance sheet, and the
        statement pages of other filings (which hold the same line items) could fill the top 5
        without the right filing. Capped at one, each document gets one lifted chunk, so
        another filing holds at most one more place than without the preference (page hit@5
        0.664 -> 0.673 on docugami, 0.800 -> 0.825 on the Lyft/Uber filings; docs/benchmarks.md).
        """
        w = self.config.statement_weight
        if not kinds or w <= 0.0:
            return ranked, score
        cap = self.config.statement_per_file
        lifted: dict[int, int] = {}
        out = dict(score)
        for c in ranked:
            r = rows[c]
            if not is_financial(r.genre) or statement_of_context(r.context) not in kinds:
                continue
            if cap <= 0 or lifted.get(r.file_id, 0) < cap:
                out[c] += w
                lifted[r.file_id] = lifted.get(r.file_id, 0) + 1
        return sorted(ranked, key=lambda c: -out[c]), out

    def _match_titles(
        self, query: str, ranked: list[int], score: dict[int, float],
        rows: dict[int, Hit], docs: dict[int, _Document],
    ) -> tuple[list[int], dict[int, float]]:  # fmt: skip
        """Prefer the documents whose title names whom the question names ("Amazon's gross
        margin": the filings titled AMAZON.COM, INC.): the question's names (capitalised words
        after its first) that are in the titles or file names of some candidate documents but
        not all of them select documents; a chunk gets ``title_weight`` times the share of them
        its document's title holds. Only among documents of a series of periodic reports (a
        period in their name, see :mod:`.periods`: filings, minutes): in other collections the
        names a question uses ("Wuhan", "SARS") are the topic of many titles and selected the
        wrong papers (covidqa answer hit@5 0.802 -> 0.795)."""
        w = self.config.title_weight
        names = _NAMES.findall(query) if w > 0.0 else []
        titles = {f: d.title_stems for f, d in docs.items() if d.period is not None}
        if not names or len(titles) < 2:
            return ranked, score
        asked = set(QueryTerms.of(" ".join(names)).stems)
        selecting = [s for s in asked if 0 < sum(s in t for t in titles.values()) < len(titles)]
        if not selecting:
            return ranked, score
        share = {f: sum(s in t for s in selecting) / len(selecting) for f, t in titles.items()}
        out = {c: score[c] + w * share.get(rows[c].file_id, 0.0) for c in ranked}
        return sorted(ranked, key=lambda c: -out[c]), out

    def _match_periods(
        self, query: str, ranked: list[int], score: dict[int, float],
        rows: dict[int, Hit], docs: dict[int, _Document],
    ) -> tuple[list[int], dict[int, float]]:  # fmt: skip
        """Prefer the documents of the period the question asks about (see :mod:`.periods`).

        A candidate from a document whose name gives a period gets ``period_weight`` added when
        the question's period covers it, subtracted when not; for "the latest quarter" the newest
        document of each series among the candidates (a series of at least two periods) counts
        as matching. Nothing changes when the question names no period, or no candidate's
        document is of that period (a year the documents do not cover says nothing about them).
        """
        w = self.config.period_weight
        asked = question_periods(query)
        latest = not asked and asks_latest(query)
        if w <= 0.0 or not (asked or latest):
            return ranked, score
        if latest:
            newest: dict[str, Period] = {}
            count: dict[str, set[Period]] = {}
            for d in docs.values():
                if d.period is not None:
                    count.setdefault(d.series, set()).add(d.period)
                    newest[d.series] = max(newest.get(d.series, d.period), d.period)
            match = {f: d.period is not None and len(count[d.series]) > 1
                     and d.period == newest[d.series] for f, d in docs.items()}  # fmt: skip
        else:
            match = {f: d.period is not None and any(a.covers(d.period) for a in asked)
                     for f, d in docs.items()}  # fmt: skip
        if not any(match.values()):
            return ranked, score
        dated = {f for f, d in docs.items() if d.period is not None}
        out = {c: score[c] + (w if match[rows[c].file_id] else -w) if rows[c].file_id in dated
               else score[c] for c in ranked}  # fmt: skip
        return sorted(ranked, key=lambda c: -out[c]), out


@dataclass(frozen=True)
class _Document:
    """What the document-level preferences read of a candidate's document: its period and
    series (:func:`~desktop_rag.core.text.periods.document_period`) and the stems of its file name
    and title."""

    period: Period | None
    series: str
    title_stems: frozenset[str]


def _documents(ranked: Sequence[int], rows: dict[int, Hit]) -> dict[int, _Document]:
    """The :class:`_Document` of each candidate's file, by file id (read once a search)."""
    docs: dict[int, _Document] = {}
    for c in ranked:
        r = rows[c]
        if r.file_id not in docs:
            stem, title = PurePath(r.path).stem, r.context.split(" › ")[0]
            # Only filings and reports are read as documents of a series of periods: a paper's
            # or a deck's name ("Q3 2023 roadmap") is no reporting period.
            period, series = document_period(stem, title) if is_financial(r.genre) else (None, "")
            stems = (
                frozenset(QueryTerms.of(f"{stem} {title}").stems)
                if period is not None
                else frozenset()
            )
            docs[r.file_id] = _Document(period, series, stems)
    return docs
