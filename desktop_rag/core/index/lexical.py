"""Lexical search over the store's chunks: document frequencies, BM25 corpus statistics and
the BM25 top-k, from the in-memory postings when they are current, else from SQLite FTS5.

One place for the lexical queries, which the retriever and the postings' tests use: the store
(:mod:`~desktop_rag.core.index.store`) holds the tables and FTS5 index, the postings
(:mod:`~desktop_rag.core.index.postings`) an in-memory copy of FTS5's postings; this module
reads either, so neither of those two imports the other's queries (no import circle).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from desktop_rag.core.index.fts5 import varints
from desktop_rag.core.index.postings import LexicalIndex, Postings
from desktop_rag.core.index.store import Store
from desktop_rag.core.text.analysis import fts_query

log = logging.getLogger(__name__)


class LexicalSearch:
    """The lexical queries over ``store``, answered by ``postings`` (the engine's in-memory
    postings, kept current in the background) while they reflect the store's version, else by
    FTS5. Caches (document frequencies, corpus statistics) are valid for one
    :meth:`Store.vectors_version <desktop_rag.core.index.store.Store.vectors_version>`."""

    def __init__(self, store: Store, postings: LexicalIndex | None = None) -> None:
        self.store = store
        self.postings = postings
        # document_frequencies: counts valid for one vectors_version (-1: none yet)
        self._df_cache: dict[str, int] = {}
        self._df_n = 0
        self._df_version = -1
        self._stats: tuple[int, float] = (0, 0.0)  # fts_stats, valid for one vectors_version
        self._stats_version = -1

    def _postings(self) -> Postings | None:
        """The postings if they reflect the current chunks (else None: use FTS5)."""
        return (
            None if self.postings is None else self.postings.current(self.store.vectors_version())
        )

    def document_frequencies(self, words: Sequence[str]) -> tuple[int, dict[str, int]]:
        """The number of chunks, and for each word the number of chunks containing it (text or
        context, after FTS5's Porter stemming). From the in-memory postings when they are
        current (:mod:`~desktop_rag.core.index.postings`: a lookup), else one FTS5 doclist pass per
        word (tens of ms for a common word at 100k chunks), cached until the next committed
        change to the chunks (:meth:`vectors_version`)."""
        snap = self._postings()
        if snap is None:
            return self._fts5_document_frequencies(words)
        from desktop_rag.core.index.fts5 import fts5_terms

        df: dict[str, int] = {}
        rest: list[str] = []
        for w, terms in fts5_terms(self.store.con, words).items():
            if len(terms) == 1:
                df[w] = snap.df(terms[0])
            elif terms:
                rest.append(w)  # several tokens: a phrase, which the postings cannot count
            else:
                df[w] = 0
        if rest:
            df.update(self._fts5_document_frequencies(rest)[1])
        return snap.n_live, df

    def _fts5_document_frequencies(self, words: Sequence[str]) -> tuple[int, dict[str, int]]:
        """:meth:`document_frequencies` by FTS5 (one doclist pass per word not yet cached)."""
        version = self.store.vectors_version()
        if self._df_version != version:
            self._df_cache = {}
            self._df_n = int(self.store.con.execute("SELECT count(*) FROM chunks").fetchone()[0])
            self._df_version = version
        cache, n = self._df_cache, self._df_n
        df: dict[str, int] = {}
        for w in dict.fromkeys(words):
            if w not in cache:
                try:
                    row = self.store.con.execute(
                        "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?",
                        ('"' + w.replace('"', "") + '"',),
                    ).fetchone()
                except sqlite3.OperationalError as exc:  # logged: never a silent "no hits"
                    log.warning("FTS5 document frequency of %r failed: %s", w, exc)
                    row = (0,)
                if len(cache) >= 100_000:  # bound the memory of a long session
                    cache.clear()
                cache[w] = int(row[0])
            df[w] = cache[w]
        return n, df

    def fts_stats(self) -> tuple[int, float]:
        """(chunks in the full-text index, mean tokens per chunk over text and context): the
        corpus statistics of FTS5's BM25, read from its ``averages`` record (row 1 of
        ``chunks_fts_data``: a varint row count, then one varint token total per column; see
        SQLite's ``fts5_index.c``). Cached until the chunks change."""
        version = self.store.vectors_version()
        if self._stats_version != version:
            row = self.store.con.execute(
                "SELECT block FROM chunks_fts_data WHERE id = 1"
            ).fetchone()
            values = varints(bytes(row[0])) if row and row[0] else []
            n = values[0] if values else 0
            self._stats = (n, sum(values[1:]) / n if n else 0.0)
            self._stats_version = version
        return self._stats

    def lexical_candidates(
        self,
        words: Sequence[str],
        df: dict[str, int],
        limit: int,
        *,
        budget: int = 20_000,
        context_weight: float = 0.5,
        collections: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """The lexical top-``limit`` for a question's content ``words`` without walking every
        posting of its common words: FTS5 ranks (BM25) the chunks containing the rarest words,
        taken in order of document frequency ``df`` while their postings add up to at most
        ``budget``. When even the rarest word is over budget every word is common (IDF under
        ln(N / budget)): no lexical candidates, the dense ones are still scored with BM25 by the
        caller. Same (chunk id, score) shape as :meth:`bm25`.

        Why: FTS5 scores every chunk that matches any word, about 0.9 us per posting here, so a
        question with common words cost 100 ms at 100k chunks. Common words carry little IDF,
        and every candidate is scored again with all words (:func:`~desktop_rag.core.search.evidence.
        bm25_scores`); below ``budget`` postings (most collections under ~20k chunks) nothing is
        left out. ``collections`` keeps only their chunks (None: all), inside the ranking.

        The ranking comes from the in-memory postings when they are current (the same chunks
        and scores: FTS5's postings and BM25, well under 1 ms for 20,000 postings; see
        :mod:`~desktop_rag.core.index.postings`), else from FTS5 (about 18 ms at 100k chunks), also
        for a word of several tokens (an FTS5 phrase).
        """
        order = sorted(dict.fromkeys(words), key=lambda w: df.get(w, 0))
        order = [w for w in order if df.get(w, 0) > 0]
        if not order:
            return []
        chosen: list[str] = []
        total = 0
        for w in order:
            if total + df[w] > budget:
                break
            chosen.append(w)
            total += df[w]
        if not chosen:
            return []
        snap = self._postings()
        if snap is not None:
            from desktop_rag.core.index.fts5 import fts5_terms

            found = fts5_terms(self.store.con, chosen)
            terms = [t[0] if len(t) == 1 else None for t in (found[w] for w in chosen)]
            if all(terms):  # else a phrase among them: FTS5 ranks
                members = None
                if collections is not None:
                    key = tuple(sorted({int(c) for c in collections}))
                    members = snap.members(key, self.store.collection_chunk_ids(key))
                return snap.rank([t for t in terms if t], limit, context_weight, members)
        return self._ranked(" OR ".join('"' + w.replace('"', "") + '"' for w in chosen), limit,
                            context_weight, collections)  # fmt: skip

    def bm25(
        self,
        query: str,
        limit: int,
        context_weight: float = 0.5,
        collections: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """BM25 search over chunk text (weight 1) and context (``context_weight``) with FTS5, over
        every word of ``query`` (see :func:`fts_query`).

        Returns up to ``limit`` (chunk id, score) pairs, best first; scores are FTS5's ``bm25()``
        negated, so higher is better (FTS5 uses k1 = 1.2, b = 0.75). ``collections`` keeps
        only their chunks (None: all).
        """
        match = fts_query(query)
        return [] if match is None else self._ranked(match, limit, context_weight, collections)

    def _ranked(
        self,
        match: str,
        limit: int,
        context_weight: float,
        collections: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """FTS5's BM25 top-``limit`` for a MATCH expression (an unparsable one gives none),
        among the chunks of ``collections`` only (None: all)."""
        w = float(context_weight)
        only = ""
        args: list[object] = [match]  # the MATCH text, then collection ids
        if collections is not None:
            marks = ",".join("?" * len(collections)) or "NULL"
            only = (
                " AND rowid IN (SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id "
                f"WHERE f.collection_id IN ({marks}))"
            )
            args += [int(c) for c in collections]
        sql = (
            f"SELECT rowid, -bm25(chunks_fts, 1.0, {w}) FROM chunks_fts WHERE chunks_fts MATCH ?"
            f"{only} ORDER BY bm25(chunks_fts, 1.0, {w}) LIMIT ?"
        )
        try:
            return [(int(r[0]), float(r[1])) for r in self.store.con.execute(sql, (*args, limit))]
        except sqlite3.OperationalError as exc:  # logged: never a silent "no hits"
            log.warning("FTS5 lexical search for %r failed: %s", args[0] if args else "", exc)
            return []
