"""Lexical evidence features for reranking retrieval candidates.

BM25 scores a chunk as a bag of words: a chunk that repeats two of the question's words scores like
one that holds the sentence answering it. Questions about a passage usually reuse its words *in one
place*: the answer sentence holds most of the question's rare words, often as the same phrases. The
features here measure that, for the ~100 candidates of one query (cheap: no model, about 20 ms):

- ``sentence``: the best single sentence's IDF-weighted coverage of the question's content words,
  the chunk's context line (document title and headings) counting as part of every sentence;
- ``bigram``: the share of the question's consecutive content-word pairs that occur consecutively
  (stop words skipped) in the chunk, a cheap proximity measure in the spirit of the sequential
  dependence model (Metzler & Croft, SIGIR 2005);
- ``coverage``: the IDF-weighted coverage of the question's content words by the whole chunk;
- ``title``: the IDF-weighted coverage by the context line alone (a question naming a document,
  company or section).

Words are lower-cased and reduced with the Porter stemmer (the algorithm FTS5's ``porter``
tokenizer uses, so the IDF read from FTS5 matches); stop words are the BM25 query's. IDF is the
BM25 form ``ln((N - df + 0.5) / (df + 0.5) + 1)`` (Robertson & Zaragoza 2009) over the indexed
chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from desktop_rag.core.text.analysis import (
    TOKEN_RE,
    encoded_terms,
    fold,
    split_terms,
    stem_of,
)

FEATURES: tuple[str, ...] = ("sentence", "bigram", "coverage", "title")


def _terms(chunks: Sequence[tuple[str, str]], stored: Sequence[str | None] | None) -> list[str]:
    """Each chunk text's encoding: the stored one where given, else computed (and cached)."""
    if stored is None:
        return [encoded_terms(text) for text, _ in chunks]
    return [
        enc if enc else encoded_terms(text) for (text, _), enc in zip(chunks, stored, strict=True)
    ]


@dataclass(frozen=True)
class QueryTerms:
    """A question's distinct content stems with their IDF weights, and its stem bigrams.

    ``words`` maps each stem to one surface word of the question (what FTS5 is asked about).
    """

    stems: tuple[str, ...]
    words: dict[str, str]
    bigrams: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, question: str) -> QueryTerms:
        """Parse ``question`` (stop words and single letters are dropped)."""
        seq: list[str] = []
        words: dict[str, str] = {}
        for w in TOKEN_RE.findall(fold(question)):
            s = stem_of(w)
            if not s:  # a stop word or single letter
                continue
            seq.append(s)
            words.setdefault(s, w)
        return cls(tuple(dict.fromkeys(seq)), words, frozenset(pairwise(seq)))


def evidence_features(
    query: QueryTerms,
    idf: dict[str, float],
    chunks: Sequence[tuple[str, str]],
    terms: Sequence[str | None] | None = None,
) -> NDArray[np.float64]:
    """Feature matrix ``(len(chunks), 4)`` float64 in [0, 1], columns as in :data:`FEATURES`.

    ``chunks`` are ``(text, context)`` pairs; ``terms`` their texts' :func:`encode_terms` as
    stored at indexing (None, or None items: computed here). ``idf`` maps each of
    ``query.stems`` to its weight (a stem missing from it gets weight 0). A question without
    content words gives all zeros.
    """
    out = np.zeros((len(chunks), len(FEATURES)), dtype=np.float64)
    weights = [(f" {s} ", w) for s in query.stems if (w := idf.get(s, 0.0)) > 0.0]
    total = sum(w for _, w in weights)
    if total <= 0.0:
        return out
    pairs = [(f" {a}  {b} ", f" {a}  |  {b} ") for a, b in query.bigrams]
    for i, ((_, context), enc) in enumerate(zip(chunks, _terms(chunks, terms), strict=True)):
        body = split_terms(enc)[1]
        ctx = split_terms(encoded_terms(context))[1] if context else " "
        ctx_w = sum(w for s, w in weights if s in ctx)
        rest = [(s, w) for s, w in weights if s not in ctx and s in body]
        best = 0.0
        if rest:
            best = max(sum(w for s, w in rest if s in sent) for sent in body.split("|"))
        bigram = sum(a in body or b in body for a, b in pairs) / len(pairs) if pairs else 0.0
        whole = ctx_w + sum(w for _, w in rest)
        out[i] = ((best + ctx_w) / total, bigram, whole / total, ctx_w / total)
    return out


def bm25_scores(
    query: QueryTerms,
    idf: dict[str, float],
    chunks: Sequence[tuple[str, str]],
    avg_tokens: float,
    *,
    terms: Sequence[str | None] | None = None,
    context_weight: float = 1.0,
    k1: float = 1.2,
    b: float = 0.75,
) -> NDArray[np.float64]:
    """BM25 of each ``(text, context)`` chunk for ``query``: ``(len(chunks),)`` float64, >= 0.

    The formula and constants of FTS5's ``bm25(chunks_fts, 1.0, context_weight)`` (Robertson &
    Zaragoza 2009, as implemented in SQLite's ``fts5_aux.c``): per query stem,
    ``idf * f * (k1 + 1) / (f + k1 * (1 - b + b * D / avg_tokens))`` with ``f`` the stem's count
    in the text plus ``context_weight`` times its count in the context line, ``D`` the chunk's
    tokens (both columns) and ``avg_tokens`` the mean over all chunks. ``idf`` should come from
    :func:`fts5_idf` with FTS5's document frequencies; stems missing from it count 0. ``terms``
    as for :func:`evidence_features`. Computing it here for the ~100 candidates of a question
    replaces an FTS5 query restricted to their rowids, which walks every posting of every
    question word (90 ms at 100k chunks).
    """
    out = np.zeros(len(chunks), dtype=np.float64)
    weights = [(f" {s} ", w) for s in query.stems if (w := idf.get(s, 0.0)) > 0.0]
    if not weights:
        return out
    avg = max(avg_tokens, 1e-9)
    for i, ((_, context), enc) in enumerate(zip(chunks, _terms(chunks, terms), strict=True)):
        n_text, body = split_terms(enc)
        n_ctx, ctx = split_terms(encoded_terms(context)) if context else (0, " ")
        norm = k1 * (1.0 - b + b * (n_text + n_ctx) / avg)
        score = 0.0
        for s, w in weights:
            f = body.count(s) + (context_weight * ctx.count(s) if n_ctx else 0.0)
            if f:
                score += w * f * (k1 + 1.0) / (f + norm)
        out[i] = score
    return out
