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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from desktop_rag.core.store import STOPWORDS, WORD_RE

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


def content_terms(text: str) -> list[str]:
    """The text's content words in order: lower-cased, stop words and single letters dropped,
    Porter-stemmed."""
    out: list[str] = []
    for w in WORD_RE.findall(text.lower()):
        if w in STOPWORDS or (len(w) == 1 and not w.isdigit()):
            continue
        out.append(_stem(w))
    return out


@lru_cache(maxsize=16_384)
def _analyse(text: str) -> tuple[tuple[str, ...], tuple[frozenset[str], ...]]:
    """A chunk's content terms in order and each sentence's term set (sentences without content
    words left out). Cached: the same chunks come back as candidates for many questions."""
    seq: list[str] = []
    sentences: list[frozenset[str]] = []
    for sentence in SENTENCE_RE.split(text):
        terms = content_terms(sentence)  # no word spans a sentence break (it is white space)
        if terms:
            seq.extend(terms)
            sentences.append(frozenset(terms))
    return tuple(seq), tuple(sentences)


@lru_cache(maxsize=4096)
def _context_terms(context: str) -> frozenset[str]:
    return frozenset(content_terms(context))


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
        for w in WORD_RE.findall(question.lower()):
            if w in STOPWORDS or (len(w) == 1 and not w.isdigit()):
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
    weights = {s: idf.get(s, 0.0) for s in query.stems}
    total = sum(weights.values())
    if total <= 0.0:
        return out

    def cover(terms: set[str]) -> float:
        return sum(w for s, w in weights.items() if s in terms) / total

    for i, (text, context) in enumerate(chunks):
        ctx = _context_terms(context or "")
        seq, sentences = _analyse(text)
        best = max((cover(terms | ctx) for terms in sentences), default=0.0)
        pairs = set(pairwise(seq))
        bigram = len(query.bigrams & pairs) / len(query.bigrams) if query.bigrams else 0.0
        out[i] = (best, bigram, cover(set(seq) | ctx), cover(ctx))
    return out
