"""Evidence sentences and the claim check: what makes an answer trustworthy.

A small model misreads figures; a person in legal, finance or health work needs the source's own
words. Two parts, both pure Python over the retrieved hits (no model, a few milliseconds):

- :func:`select_evidence` picks the sentences of the retrieved chunks that answer the question,
  quoted verbatim with their page offsets, so the app can show them above the generated text and
  open each one highlighted in its page. A sentence is scored by the IDF-weighted share of the
  question's content words it holds (the title line counting where the sentence lacks a word),
  the question's word pairs it holds in order (as in :mod:`desktop_rag.core.evidence`), how much
  it says beyond the question (a heading that repeats the question answers nothing) and the rank
  of its chunk.
- :func:`check_answer` checks every figure (numbers, amounts with units and scale words,
  percentages, years) and named entity of a generated answer against the sources each sentence
  cites; a figure found only in another given source gets that source's citation, one found in
  none is marked unsupported, and so is a sentence no given source supports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from desktop_rag.core.evidence import TOKEN_RE, QueryTerms, _fold, content_terms
from desktop_rag.core.prompting import _CITE_RE, cited_numbers
from desktop_rag.core.types import Hit

# -- sentences -------------------------------------------------------------------------------

# Candidate sentence ends: [.!?] (and closing quotes/brackets) before white space, blank lines,
# and line breaks before a list item or a table row.
# A full stop before a lower-case word ("Ae. aegypti", "approx. ten") ends no sentence.
_BREAK_RE = re.compile(
    r"(?<=[.!?])[\"')\]]*[ \t]+(?![a-z])|[ \t]*\n[ \t]*\n\s*"
    r"|[ \t]*\n(?=[ \t]*(?:[-*•|]|\d+[.)][ \t]))"
)
# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    "e.g i.e et al fig figs no nos vs approx ca cf eq eqs ref refs resp dr mr mrs ms prof st "
    "inc corp co ltd jr sr vol pp p sect sec ch u.s u.k".split()
)
_LAST_WORD_RE = re.compile(r"([A-Za-z][A-Za-z.]*)\.[\"')\]]*[ \t]*$")


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
    out = []
    for a, b in spans:
        seg = text[a:b]
        lead = len(seg) - len(seg.lstrip())
        trail = len(seg.rstrip())
        if trail > lead:
            out.append((a + lead, a + trail))
    return out


# -- evidence --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """A sentence quoted from source ``n`` (1-based, as in the answer's citations).

    ``start``/``end`` are character offsets into the page text of ``hit`` (like ``Hit.start``),
    so ``text`` is exactly what the viewer highlights; ``score`` in [0, ~2.5], higher is better.
    """

    n: int
    hit: Hit
    start: int
    end: int
    text: str
    score: float


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
    return {s: idf.get(s, 0.0) or 1.0 for s in query.stems} if idf else dict.fromkeys(query.stems, 1.0)


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
    cov += config.context * sum(w for s, w in weights.items() if s not in have and s in context_stems)
    pairs = query.bigrams
    seq_pairs = set(pairwise(stems))
    bigram = sum(p in seq_pairs for p in pairs) / len(pairs) if pairs else 0.0
    new = [s for s in stems if s not in weights]
    novelty = len(new) / len(stems) if stems else 0.0
    return cov / total + config.bigram * bigram + config.novelty * novelty + config.rank / (rank + 1)


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
            score = score_sentence(query, weights, hit.text[a:b], ctx, rank, config) if weights else 0.0
            row.append((a, b, score))
        spans.append(tuple(row))
    if similarity is not None and config.dense:
        keys = [(i, j) for i, row in enumerate(spans) for j, (_, _, sc) in enumerate(row) if sc > 0.0]
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
        keep = sorted(j for j in ranked[:sentences] if row[j][2] > 0.0) or list(range(min(sentences, len(row))))
        parts, prev = [], -1
        for j in keep:
            if prev >= 0 and j != prev + 1:
                parts.append("…")
            parts.append(hit.text[row[j][0] : row[j][1]])
            prev = j
        out.append(" ".join(parts) if parts else hit.text)
    return out


# -- claims ----------------------------------------------------------------------------------

_SCALES = {
    "thousand": 1e3, "k": 1e3, "million": 1e6, "millions": 1e6, "mn": 1e6, "m": 1e6,
    "billion": 1e9, "billions": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "tn": 1e12,
}  # fmt: skip
# A figure: optional currency, digits with thousands separators and decimals, optional scale
# word or percent sign. Digits inside identifiers ("IFITM3", "COVID-19") are not figures.
_FIGURE_RE = re.compile(
    r"(?<![\w.])(?P<cur>[$€£¥]\s?)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s?(?P<pct>%|percent\b|per cent\b)|\s?(?P<scale>thousand|millions?|billions?|trillion|"
    r"mn|bn|tn|[kKmMbB])\b)?(?![\w])",
)
# Capitalised words and runs of them ("Apple", "DC-SIGNR", "New York"), and identifiers that mix
# letters and digits ("IFITM3", "COVID-19").
_ENTITY_RE = re.compile(
    r"\b(?:[A-Z][\w'’-]*[A-Za-z0-9](?:\s+(?:of\s+|de\s+|and\s+)?[A-Z][\w'’-]*[A-Za-z0-9])*"
    r"|[A-Za-z]+[-]?\d[\w-]*)\b"
)
_ENTITY_STOP = frozenset(
    "the a an this that these those it its in on at of for and or but if as by to from with "
    "however therefore thus also yes no based according answer source sources i we they he she "
    "there here our their his her what which who when where why how".split()
)


@dataclass(frozen=True)
class Figure:
    """A number in text: its value as written (``raw``, separators removed), decimals shown,
    scale (1 when none, 1e6 for "million"...), and whether it is a percentage."""

    raw: float
    decimals: int
    scale: float
    percent: bool
    start: int
    end: int

    @property
    def value(self) -> float:
        """The number with its scale applied."""
        return self.raw * self.scale


def figures(text: str) -> list[Figure]:
    """Every figure in ``text`` with its character span (see :data:`_FIGURE_RE`)."""
    out = []
    for m in _FIGURE_RE.finditer(text):
        num = m.group("num").replace(",", "")
        scale_word = (m.group("scale") or "").lower()
        if scale_word in ("m", "b", "k") and not m.group("cur"):
            # "5 m" is five metres far more often than five million; only "$5m" is money.
            scale_word = ""
        end = m.end() if (scale_word or m.group("pct")) else m.end("num")
        decimals = len(num.split(".")[1]) if "." in num else 0
        out.append(
            Figure(float(num), decimals, _SCALES.get(scale_word, 1.0), bool(m.group("pct")),
                   m.start("cur") if m.group("cur") else m.start("num"), end)
        )  # fmt: skip
    return out


def _tolerance(fig: Figure) -> float:
    """Half a unit of the figure's last written digit (what rounding to it allows)."""
    return 0.5 * 10.0 ** (-fig.decimals)


def figure_supported(fig: Figure, source_figures: Sequence[Figure]) -> bool:
    """True if a source figure is this one: the same number as written (within the answer's
    rounding, a table's bare "82,959" supporting "$82,959 million"), unless both state different
    scales; or the same value once scales apply ("$82.96 billion" for "$82,959 million")."""
    tol = _tolerance(fig)
    for s in source_figures:
        same_scale = fig.scale == s.scale or fig.scale == 1.0 or s.scale == 1.0
        if same_scale and abs(fig.raw - s.raw) <= tol + 1e-9 * abs(s.raw):
            return True
        if fig.scale > 1.0 or s.scale > 1.0:
            if abs(fig.value - s.value) <= tol * fig.scale + 1e-9 * abs(s.value):
                return True
    return False


def entities(text: str, question: str = "") -> list[tuple[int, int, str]]:
    """Named entities in ``text`` as ``(start, end, text)``: capitalised words and runs of them
    that do not only start a sentence, and letter-digit identifiers. Function words and the
    first word of a sentence when it is an ordinary word are skipped."""
    out = []
    for m in _ENTITY_RE.finditer(text):
        word = m.group(0)
        first = word.split()[0]
        if first.lower() in _ENTITY_STOP and " " not in word:
            continue
        if first.lower() in _ENTITY_STOP:  # "The Company" -> "Company"
            cut = len(first) + 1
            word = word[cut:].lstrip()
            start = m.end() - len(word)
        else:
            start = m.start()
        if not word or (word.isdigit()):
            continue
        # An ordinary word capitalised only because it starts a sentence is no entity.
        before = text[:start].rstrip()
        at_start = not before or before[-1] in ".!?:\n" or before.endswith("]")
        if at_start and " " not in word and word[1:].islower() and not any(c.isdigit() for c in word):
            continue
        out.append((start, start + len(word), word))
    return out


def _norm(text: str) -> str:
    """Folded text with every non-alphanumeric run as one space (for entity containment)."""
    return " " + " ".join(TOKEN_RE.findall(_fold(text))) + " "


Kind = Literal["figure", "entity", "sentence"]


@dataclass(frozen=True)
class Check:
    """One checked claim of an answer: ``text[start:end]`` is ``claim``; ``sources`` are the
    1-based numbers of the given sources that support it (empty when none does)."""

    start: int
    end: int
    claim: str
    kind: Kind
    supported: bool
    sources: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        """The ``checks`` item of ``ask --json``."""
        return {"start": self.start, "end": self.end, "claim": self.claim, "kind": self.kind,
                "supported": self.supported, "sources": list(self.sources)}  # fmt: skip


@dataclass(frozen=True)
class CheckedAnswer:
    """An answer after the claim check: its text (citations added where a figure's source was
    found), the checks, and whether it passed as a whole (at least one supported sentence and
    more supported figures than unsupported ones)."""

    text: str
    checks: tuple[Check, ...]
    passed: bool

    @property
    def unsupported(self) -> tuple[Check, ...]:
        """The checks no source supports."""
        return tuple(c for c in self.checks if not c.supported)


_SENT_IN_ANSWER_RE = re.compile(r"(?<=[.!?])(?:\s*\[[\d,\s]+\])?\s+|\n+")
_MIN_SENTENCE_SUPPORT = 0.5


def _answer_sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _SENT_IN_ANSWER_RE.finditer(text):
        end = m.start()
        cite = _CITE_RE.match(text, end + len(m.group(0)) - len(m.group(0).lstrip()))
        spans.append((start, m.end() if cite is None and "[" in m.group(0) else end))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        seg = text[a:b]
        lead = len(seg) - len(seg.lstrip())
        trail = len(seg.rstrip())
        if trail > lead:
            out.append((a + lead, a + trail))
    return out


def sentence_support(sentence: str, source: str) -> float:
    """The share of the sentence's content words (Porter stems) found in ``source``, figures
    counting double (they are what citations are for); 0 for a sentence without content words."""
    stems = [s for s in content_terms(_CITE_RE.sub(" ", sentence))]
    if not stems:
        return 0.0
    have = set(content_terms(source))
    weights = [2.0 if s[0].isdigit() else 1.0 for s in stems]
    return sum(w for s, w in zip(stems, weights, strict=True) if s in have) / sum(weights)


def check_answer(text: str, sources: Sequence[Hit], question: str = "") -> CheckedAnswer:
    """Check every figure, named entity and sentence of ``text`` against ``sources`` (the hits
    numbered ``[1]..[n]`` in the prompt; a source is its text and context line).

    Each sentence is checked against the sources it cites (all given sources when it cites
    none). A figure or entity found only in another given source is supported by that one, and
    its number is added to the sentence's citations. A sentence is supported when its content
    words are mostly (half, figures double) in one of its sources and none of its figures is
    unsupported. Offsets in the checks refer to the returned text.
    """
    bodies = [f"{h.context}\n{h.text}" for h in sources]
    src_figs = [figures(b) for b in bodies]
    src_norm = [_norm(b) for b in bodies]
    n = len(sources)
    out_text = text
    checks: list[Check] = []
    shift = 0
    supported_sentences = 0
    fig_ok = fig_bad = 0
    for a, b in _answer_sentences(text):
        sent = text[a:b]
        cited = cited_numbers(sent, n)
        own = cited or list(range(1, n + 1))
        added: list[int] = []
        sent_checks: list[Check] = []
        body = _CITE_RE.sub(lambda m: " " * len(m.group(0)), sent)
        for f in figures(body):
            if f.start > 0 and body[f.start - 1] == "[":
                continue
            found = [i for i in own if figure_supported(f, src_figs[i - 1])]
            if not found:
                found = [i for i in range(1, n + 1) if figure_supported(f, src_figs[i - 1])]
                added += [i for i in found[:1] if i not in cited and i not in added]
            sent_checks.append(Check(a + f.start, a + f.end, body[f.start : f.end], "figure",
                                     bool(found), tuple(found)))  # fmt: skip
        for s, e, word in entities(body, question):
            key = _norm(word)
            found = [i for i in own if key in src_norm[i - 1]]
            if not found:
                found = [i for i in range(1, n + 1) if key in src_norm[i - 1]]
                added += [i for i in found[:1] if i not in cited and i not in added]
            sent_checks.append(Check(a + s, a + e, word, "entity", bool(found), tuple(found)))
        figs = [c for c in sent_checks if c.kind == "figure"]
        fig_ok += sum(c.supported for c in figs)
        fig_bad += sum(not c.supported for c in figs)
        best = max((sentence_support(body, bodies[i - 1]) for i in own + added), default=0.0)
        has_words = bool(content_terms(body))
        ok = has_words and best >= _MIN_SENTENCE_SUPPORT and all(c.supported for c in figs)
        supported_sentences += ok
        if has_words:
            support_src = tuple(i for i in own + added if sentence_support(body, bodies[i - 1]) >= _MIN_SENTENCE_SUPPORT)
            checks.append(Check(a, b, sent, "sentence", ok, support_src if ok else ()))
        checks.extend(sent_checks)
        if added and not is_only_citation(sent):
            insert_at = b
            stripped = sent.rstrip()
            end_punct = len(stripped.rstrip(".!?"))
            if not cited:
                insert_at = a + end_punct
            label = f" [{', '.join(map(str, sorted(added)))}]"
            checks = [_shift(c, insert_at, len(label)) for c in checks]
            out_text = out_text[: insert_at + shift] + label + out_text[insert_at + shift :]
            shift += len(label)
    passed = supported_sentences > 0 and fig_bad <= fig_ok
    return CheckedAnswer(out_text, tuple(sorted(checks, key=lambda c: (c.start, c.kind != "sentence"))), passed)


def is_only_citation(sentence: str) -> bool:
    """True for a 'sentence' that is nothing but citation markers."""
    return not _CITE_RE.sub("", sentence).strip()


def _shift(check: Check, at: int, by: int) -> Check:
    """A check with offsets moved by ``by`` where they lie at or after ``at``."""
    start = check.start + by if check.start >= at else check.start
    end = check.end + by if check.end >= at else check.end
    return Check(start, end, check.claim, check.kind, check.supported, check.sources)
