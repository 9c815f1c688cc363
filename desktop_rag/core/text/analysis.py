"""Text analysis shared by indexing, search and answer checking.

One place for how text becomes words: FTS5's ``unicode61`` tokens (:data:`TOKEN_RE`), its case
and accent folding (:func:`fold`), the stop list of BM25 queries (:data:`STOPWORDS`), Porter
stems (the algorithm of FTS5's ``porter`` tokenizer, via snowballstemmer), the stored analysis of
each chunk (:func:`encode_terms`, versioned by :data:`ANALYSIS_VERSION`), the FTS5 query of a
question (:func:`query_words`, :func:`fts_query`), and the two BM25 IDF forms. No I/O, no models.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

# A short English stop list for turning questions into BM25 queries (from the Lucene/Snowball
# English lists); BM25's IDF already discounts common words, this only keeps queries small.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "s",
        "so",
        "such",
        "t",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)
WORD_RE = re.compile(r"\w+", re.UNICODE)


# The most words a question's BM25 query holds (the rest are left out).
MAX_QUERY_WORDS = 64


def query_words(question: str) -> list[str]:
    """The words a question's BM25 query searches for: its distinct ``\\w+`` words, lower-cased,
    in order, without stop words and single letters (single digits stay), at most
    :data:`MAX_QUERY_WORDS`. Not stemmed: FTS5's ``porter`` tokenizer stems them itself."""
    words: list[str] = []
    for w in WORD_RE.findall(question.lower()):
        if w in STOPWORDS or w in words or (len(w) == 1 and not w.isdigit()):
            continue
        words.append(w)
    return words[:MAX_QUERY_WORDS]


def fts_query(question: str) -> str | None:
    """An FTS5 MATCH expression: the question's :func:`query_words`, quoted, OR-ed together.

    Returns None when nothing searchable is left. Quoting makes every word a literal string, so
    FTS5 syntax in the question (``AND``, ``*``, ``:``, quotes) cannot break or change the query.
    """
    words = query_words(question)
    if not words:
        return None
    return " OR ".join(f'"{w}"' for w in words)


# Sentence ends (., !, ?, ; followed by space) and line breaks.
SENTENCE_RE = re.compile(r"(?<=[.!?;])\s+|\n+")


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    import snowballstemmer

    return snowballstemmer.stemmer("porter").stemWord  # type: ignore[no-any-return]


def _stem(word: str) -> str:
    return _stemmer()(word)


# FTS5's unicode61 tokens: runs of letters and digits ("_" and punctuation separate them).
TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)


# Combining marks (the blocks NFKD decomposes Latin, Greek and Cyrillic accents into).
_COMBINING_RE = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def fold(text: str) -> str:
    """Lower-case and, like unicode61's ``remove_diacritics 2``, strip combining marks."""
    text = text.lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return _COMBINING_RE.sub("", decomposed) if decomposed != text else text


def _is_content(word: str) -> bool:
    return word not in STOPWORDS and (len(word) > 1 or word.isdigit())


# word -> its Porter stem, or "" for a stop word or single letter (one dict lookup per word).
_STEMS: dict[str, str] = {}


def stem_of(word: str) -> str:
    stem = _STEMS.get(word)
    if stem is None:
        stem = _stem(word) if _is_content(word) else ""
        if len(_STEMS) < 500_000:  # bound the memory of a long session
            _STEMS[word] = stem
    return stem


def content_stems(words: list[str]) -> list[str]:
    get = _STEMS.get
    out: list[str] = []
    for w in words:
        stem = get(w)
        if stem is None:
            stem = stem_of(w)
        if stem:
            out.append(stem)
    return out


def content_terms(text: str) -> list[str]:
    """The text's content words in order: lower-cased, stop words and single letters dropped,
    Porter-stemmed."""
    return content_stems(TOKEN_RE.findall(fold(text)))


# The version of the analysis below (tokens, case and accent folding, stop words, stemmer and the
# encoding). It is stored with the index: bump it with any change that alters encode_terms' output
# for some text, and every chunk's stored analysis is recomputed from its stored text
# (Store.refresh_analyses; stale analyses are not used meanwhile).
ANALYSIS_VERSION = 1


def encode_terms(text: str) -> str:
    """A text's analysis as one string, stored with each chunk at indexing time:
    ``"<tokens>\t s1  s2  |  s3 "``: its length in tokens, stop words included (what FTS5 counts
    as a document's length), a tab, then its content stems in order, each between two spaces,
    with ``|`` between sentences (sentences without content words left out).

    Every question-time measure is then a substring test or count in C: ``" x "`` occurs once
    per occurrence of stem ``x`` (two spaces between stems, so counts never overlap), a
    consecutive pair is ``" a  b "`` or ``" a  |  b "``, and splitting at ``|`` gives the
    sentences. About 15 us per candidate instead of ~200 us for analysing its text.
    """
    sentences: list[str] = []
    n_tokens = 0
    for sentence in SENTENCE_RE.split(fold(text)):
        words = TOKEN_RE.findall(sentence)  # no token spans a sentence break (it is white space)
        n_tokens += len(words)
        terms = content_stems(words)
        if terms:
            sentences.append("  ".join(terms))
    return f"{n_tokens}\t " + "  |  ".join(sentences) + " " if sentences else f"{n_tokens}\t "


@lru_cache(maxsize=32_768)
def encoded_terms(text: str) -> str:
    return encode_terms(text)


def split_terms(encoded: str) -> tuple[int, str]:
    head, _, body = encoded.partition("\t")
    try:
        return int(head), body
    except ValueError:  # not an encoding (a damaged row): no tokens, no terms
        return 0, " "


def bm25_idf(n_docs: int, df: int) -> float:
    """BM25 inverse document frequency, ``ln((N - df + 0.5) / (df + 0.5) + 1)`` (always > 0)."""
    return math.log((n_docs - df + 0.5) / (df + 0.5) + 1.0)


def fts5_idf(n_docs: int, df: int) -> float:
    """FTS5's BM25 IDF, ``ln((N - df + 0.5) / (df + 0.5))``, floored at 1e-6 as FTS5 does
    (``fts5_aux.c``; a word in more than half the chunks gets almost no weight)."""
    return max(math.log((n_docs - df + 0.5) / (df + 0.5)), 1e-6)
