"""Evidence selection: the sentences of the retrieved chunks that answer the question.

A small model misreads figures; a person in legal, finance or health work needs the source's own
words. :func:`select_evidence` picks the sentences of the retrieved chunks that answer the
question, quoted verbatim with their page offsets, so the app can show them above the generated
text and open each one highlighted in its page. A sentence is scored by the IDF-weighted share of
the question's content words it holds (the title line counting where the sentence lacks a word),
the question's word pairs it holds in order (as in :mod:`desktop_rag.core.search.evidence`), how
much it says beyond the question (a heading that repeats the question answers nothing) and the
rank of its chunk. Pure Python over the hits (no model, a few milliseconds). The claim check of a
generated answer is :mod:`desktop_rag.core.search.claims`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from desktop_rag.core.search.evidence import QueryTerms
from desktop_rag.core.text.analysis import TOKEN_RE, content_terms
from desktop_rag.core.types import Evidence, Hit

# -- sentences -------------------------------------------------------------------------------

# Candidate sentence ends: [.!?] (and closing quotes/brackets) before white space, blank lines,
# and line breaks before a list item or a table row.
# A full stop before a lower-case word ("Ae. aegypti", "approx. ten") ends no sentence.
_BREAK_RE = re.compile(
    r"(?<=[.!?])[\"')\]]*[ \t]+(?![a-z])|[ \t]*\n[ \t]*\n\s*"
    r"|[ \t]*\n(?=[ \t]*(?:[-*•|]|\d+[.)][ \t]))|(?<=\|)[ \t]*\n\s*"
)
# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "et",
        "al",
        "fig",
        "figs",
        "no",
        "nos",
        "vs",
        "approx",
        "ca",
        "cf",
        "eq",
        "eqs",
        "ref",
        "refs",
        "resp",
        "dr",
        "mr",
        "mrs",
        "ms",
        "prof",
        "st",
        "inc",
        "corp",
        "co",
        "ltd",
        "jr",
        "sr",
        "vol",
        "pp",
        "p",
        "sect",
        "sec",
        "ch",
        "u.s",
        "u.k",
    ]
)
_LAST_WORD_RE = re.compile(r"([A-Za-z][A-Za-z.]*)\.[\"')\]]*[ \t]*$")


def trimmed_spans(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` with white space trimmed from both ends, empty ones dropped."""
    out = []
    for a, b in spans:
        seg = text[a:b]
        lead = len(seg) - len(seg.lstrip())
        trail = len(seg.rstrip())
        if trail > lead:
            out.append((a + lead, a + trail))
    return out


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of the sentences of ``text``, in order, white space
    trimmed (``text[start:end]`` is the sentence). A full stop after a common abbreviation
    ("et al.", "Fig.", "e.g.") or a single capital letter ("E. coli") does not end a sentence;
    a blank line, a list item or a table row (a line starting with ``|``) does.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BREAK_RE.finditer(text):
        head = text[start : m.start() + 1]
        last = _LAST_WORD_RE.search(head)
        if last and "\n" not in m.group(0):
            word = last.group(1).lower()
            if word in _ABBREVIATIONS or (len(word) == 1 and last.group(1).isupper()):
                continue
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return trimmed_spans(text, spans)


# -- evidence --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceConfig:
    """Weights of the sentence score (chosen on covidqa and docugami, see the README).

    score = coverage + ``bigram`` * pairs + ``novelty`` * new-word share + ``rank`` * 1/(rank+1)
    ``min_words``/``max_words`` bound a quotable sentence (shorter ones are headings or
    fragments, longer ones are run-on text without sentence ends).
    """

    bigram: float = 0.5
    novelty: float = 0.3
    rank: float = 0.3
    context: float = 0.5
    dense: float = 0.5
    min_words: int = 4
    max_words: int = 120


def _weights(query: QueryTerms, idf: dict[str, float]) -> dict[str, float]:
    """Each question stem's weight: its IDF where known, else 1."""
    return (
        {s: idf.get(s, 0.0) or 1.0 for s in query.stems} if idf else dict.fromkeys(query.stems, 1.0)
    )


def score_sentence(
    query: QueryTerms,
    weights: dict[str, float],
    sentence: str,
    context_stems: frozenset[str],
    rank: int,
    config: EvidenceConfig,
) -> float:
    """The evidence score of one sentence (see :class:`EvidenceConfig`), 0 for one that holds
    none of the question's content words or is too short or too long to quote."""
    words = TOKEN_RE.findall(sentence)
    if not config.min_words <= len(words) <= config.max_words:
        return 0.0
    stems = content_terms(sentence)
    have = set(stems)
    total = sum(weights.values())
    if total <= 0.0 or not have & set(weights):
        return 0.0
    cov = sum(w for s, w in weights.items() if s in have)
    cov += config.context * sum(
        w for s, w in weights.items() if s not in have and s in context_stems
    )
    pairs = query.bigrams
    seq_pairs = set(pairwise(stems))
    bigram = sum(p in seq_pairs for p in pairs) / len(pairs) if pairs else 0.0
    new = [s for s in stems if s not in weights]
    novelty = len(new) / len(stems) if stems else 0.0
    return (
        cov / total + config.bigram * bigram + config.novelty * novelty + config.rank / (rank + 1)
    )


Similarity = Callable[[list[str]], Sequence[float]]


@dataclass(frozen=True)
class SentenceScores:
    """The sentences of each hit with their evidence scores: ``spans[i]`` lists
    ``(start, end, score)`` for hit ``i``, offsets into ``hit.text``, in text order."""

    hits: tuple[Hit, ...]
    spans: tuple[tuple[tuple[int, int, float], ...], ...]


def score_sentences(
    question: str,
    hits: Sequence[Hit],
    idf: dict[str, float] | None = None,
    *,
    similarity: Similarity | None = None,
    config: EvidenceConfig | None = None,
) -> SentenceScores:
    """Score every sentence of ``hits`` (best first, as numbered in the prompt) as evidence for
    ``question`` (see :class:`EvidenceConfig`).

    ``idf`` maps question stems to their IDF (``RetrievalResult.idf``; None or missing stems:
    weight 1). ``similarity`` maps sentence texts to their cosine similarity with the question
    (the embedding model); it adds ``config.dense`` times that to each sentence that holds a
    question word. Sentences holding none score 0.
    """
    config = config or EvidenceConfig()
    query = QueryTerms.of(question)
    weights = _weights(query, idf or {})
    spans: list[tuple[tuple[int, int, float], ...]] = []
    for rank, hit in enumerate(hits):
        ctx = frozenset(content_terms(hit.context)) if hit.context and weights else frozenset()
        row = []
        for a, b in sentence_spans(hit.text):
            score = (
                score_sentence(query, weights, hit.text[a:b], ctx, rank, config) if weights else 0.0
            )
            row.append((a, b, score))
        spans.append(tuple(row))
    if similarity is not None and config.dense:
        keys = [
            (i, j) for i, row in enumerate(spans) for j, (_, _, sc) in enumerate(row) if sc > 0.0
        ]
        if keys:
            sims = similarity([hits[i].text[spans[i][j][0] : spans[i][j][1]] for i, j in keys])
            rows = [list(r) for r in spans]
            for (i, j), sim in zip(keys, sims, strict=True):
                a, b, sc = rows[i][j]
                rows[i][j] = (a, b, sc + config.dense * float(sim))
            spans = [tuple(r) for r in rows]
    return SentenceScores(tuple(hits), tuple(spans))


def select_evidence(scores: SentenceScores, limit: int = 2) -> tuple[Evidence, ...]:
    """The ``limit`` best-scoring sentences, best first, at most one per chunk (none scoring
    0: a question none of whose words any sentence holds gets no evidence)."""
    best: list[Evidence] = []
    for i, (hit, row) in enumerate(zip(scores.hits, scores.spans, strict=True)):
        top = max(row, key=lambda x: x[2], default=None)
        if top is not None and top[2] > 0.0:
            a, b, sc = top
            best.append(Evidence(i + 1, hit, hit.start + a, hit.start + b, hit.text[a:b], sc))
    best.sort(key=lambda e: -e.score)
    return tuple(best[:limit])


def focus(scores: SentenceScores, sentences: int = 3) -> list[str]:
    """Each hit's text cut to its ``sentences`` best sentences, kept in text order and joined
    with " … " where text was left out: a shorter prompt of what bears on the question. A hit
    without any scoring sentence keeps its first ``sentences`` sentences."""
    out = []
    for hit, row in zip(scores.hits, scores.spans, strict=True):
        ranked = sorted(range(len(row)), key=lambda j: -row[j][2])
        keep = sorted(j for j in ranked[:sentences] if row[j][2] > 0.0) or list(
            range(min(sentences, len(row)))
        )
        parts, prev = [], -1
        for j in keep:
            if prev >= 0 and j != prev + 1:
                parts.append("…")
            parts.append(hit.text[row[j][0] : row[j][1]])
            prev = j
        out.append(" ".join(parts) if parts else hit.text)
    return out


def quote_evidence(evidence: Sequence[Evidence]) -> str:
    """The evidence sentences as quotes, one per line: ``“...” [n]``."""
    return "\n".join(f"“{' '.join(e.text.split())}” [{e.n}]" for e in evidence)
