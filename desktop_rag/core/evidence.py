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

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from desktop_rag.core.store import STOPWORDS

# Sentence ends (., !, ?, ; followed by space) and line breaks.
SENTENCE_RE = re.compile(r"(?<=[.!?;])\s+|\n+")

FEATURES: tuple[str, ...] = ("sentence", "bigram", "coverage", "title")


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    import snowballstemmer

    return snowballstemmer.stemmer("porter").stemWord  # type: ignore[no-any-return]


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer()(word)


# FTS5's unicode61 tokens: runs of letters and digits ("_" and punctuation separate them).
TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)


def _fold(text: str) -> str:
    """Lower-case and, like unicode61's ``remove_diacritics 2``, strip combining marks."""
    text = text.lower()
    if text.isascii():
        return text
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )


def _is_content(word: str) -> bool:
    return word not in STOPWORDS and (len(word) > 1 or word.isdigit())


def content_terms(text: str) -> list[str]:
    """The text's content words in order: lower-cased, stop words and single letters dropped,
    Porter-stemmed."""
    return [_stem(w) for w in TOKEN_RE.findall(_fold(text)) if _is_content(w)]


@dataclass(frozen=True, slots=True)
class ChunkTerms:
    """One analysed text: ``seq`` its content stems in order, ``sentences`` each sentence's stem
    set (sentences without content words left out), ``bigrams`` its consecutive stem pairs,
    ``tf`` each stem's count, and ``n_tokens`` its length in tokens, stop words included (what
    FTS5 counts as a document's length)."""

    seq: tuple[str, ...]
    sentences: tuple[frozenset[str], ...]
    bigrams: frozenset[tuple[str, str]]
    tf: dict[str, int]
    n_tokens: int


@lru_cache(maxsize=32_768)
def analyse(text: str) -> ChunkTerms:
    """The :class:`ChunkTerms` of ``text``. Cached: the same chunks come back as candidates for
    many questions (about 0.1 ms for a 250-token chunk the first time)."""
    seq: list[str] = []
    sentences: list[frozenset[str]] = []
    n_tokens = 0
    for sentence in SENTENCE_RE.split(_fold(text)):
        words = TOKEN_RE.findall(sentence)  # no token spans a sentence break (it is white space)
        n_tokens += len(words)
        terms = [_stem(w) for w in words if _is_content(w)]
        if terms:
            seq.extend(terms)
            sentences.append(frozenset(terms))
    return ChunkTerms(tuple(seq), tuple(sentences), frozenset(pairwise(seq)), dict(Counter(seq)),
                      n_tokens)  # fmt: skip


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
        for w in TOKEN_RE.findall(_fold(question)):
            if not _is_content(w):
                continue
            s = _stem(w)
            seq.append(s)
            words.setdefault(s, w)
        return cls(tuple(dict.fromkeys(seq)), words, frozenset(pairwise(seq)))


def bm25_idf(n_docs: int, df: int) -> float:
    """BM25 inverse document frequency, ``ln((N - df + 0.5) / (df + 0.5) + 1)`` (always > 0)."""
    return math.log((n_docs - df + 0.5) / (df + 0.5) + 1.0)


def evidence_features(
    query: QueryTerms,
    idf: dict[str, float],
    chunks: Sequence[tuple[str, str]],
) -> NDArray[np.float64]:
    """Feature matrix ``(len(chunks), 4)`` float64 in [0, 1], columns as in :data:`FEATURES`.

    ``chunks`` are ``(text, context)`` pairs; ``idf`` maps each of ``query.stems`` to its weight
    (a stem missing from it gets weight 0). A question without content words gives all zeros.
    """
    out = np.zeros((len(chunks), len(FEATURES)), dtype=np.float64)
    weights = [(s, w) for s in query.stems if (w := idf.get(s, 0.0)) > 0.0]
    total = sum(w for _, w in weights)
    if total <= 0.0:
        return out
    bigrams = query.bigrams
    for i, (text, context) in enumerate(chunks):
        t = analyse(text)
        ctx = analyse(context).tf if context else {}
        ctx_w = sum(w for s, w in weights if s in ctx)
        rest = [(s, w) for s, w in weights if s not in ctx]
        best = max((sum(w for s, w in rest if s in sent) for sent in t.sentences), default=0.0)
        bigram = len(bigrams & t.bigrams) / len(bigrams) if bigrams else 0.0
        whole = ctx_w + sum(w for s, w in rest if s in t.tf)
        out[i] = ((best + ctx_w) / total, bigram, whole / total, ctx_w / total)
    return out


def fts5_idf(n_docs: int, df: int) -> float:
    """FTS5's BM25 IDF, ``ln((N - df + 0.5) / (df + 0.5))``, floored at 1e-6 as FTS5 does
    (``fts5_aux.c``; a word in more than half the chunks gets almost no weight)."""
    return max(math.log((n_docs - df + 0.5) / (df + 0.5)), 1e-6)


def bm25_scores(
    query: QueryTerms,
    idf: dict[str, float],
    chunks: Sequence[tuple[str, str]],
    avg_tokens: float,
    *,
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
    :func:`fts5_idf` with FTS5's document frequencies; stems missing from it count 0. Computing it
    here for the ~100 candidates of a question (from the cached :func:`analyse`) replaces an
    FTS5 query restricted to their rowids, which walks every posting of every question word
    (90 ms at 100k chunks).
    """
    out = np.zeros(len(chunks), dtype=np.float64)
    weights = [(s, w) for s in query.stems if (w := idf.get(s, 0.0)) > 0.0]
    if not weights:
        return out
    avg = max(avg_tokens, 1e-9)
    for i, (text, context) in enumerate(chunks):
        t = analyse(text)
        c = analyse(context) if context else None
        doc_len = t.n_tokens + (c.n_tokens if c else 0)
        norm = k1 * (1.0 - b + b * doc_len / avg)
        score = 0.0
        for s, w in weights:
            f = t.tf.get(s, 0) + (context_weight * c.tf.get(s, 0) if c else 0.0)
            if f:
                score += w * f * (k1 + 1.0) / (f + norm)
        out[i] = score
    return out
