"""The claim check: what a generated answer claims, checked against its sources.

:func:`check_answer` checks every figure (numbers, amounts with units and scale words,
percentages, years) and named entity of a generated answer against the sources each sentence
cites; a figure found only in another given source gets that source's citation, one found in
none is marked unsupported, and so is a sentence no given source supports. Pure Python over the
hits (no model, a few milliseconds). The evidence sentences shown with an answer are chosen by
:mod:`desktop_rag.core.search.selection`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from desktop_rag.core.search.selection import quote_evidence, trimmed_spans
from desktop_rag.core.text.analysis import STOPWORDS, TOKEN_RE, content_terms, fold
from desktop_rag.core.text.citations import CITE_RE, cited_numbers
from desktop_rag.core.text.filings import is_financial
from desktop_rag.core.types import Answer, Check, ClaimKind, Evidence, Hit

# -- claims ----------------------------------------------------------------------------------

_SCALES = {
    "thousand": 1e3, "k": 1e3, "million": 1e6, "millions": 1e6, "mn": 1e6, "m": 1e6,
    "billion": 1e9, "billions": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "tn": 1e12,
}  # fmt: skip
# A figure: optional currency, digits with thousands separators and decimals, optional scale
# word or percent sign. Digits inside identifiers ("IFITM3", "COVID-19") are not figures.
_FIGURE_RE = re.compile(
    r"(?<![\w.])(?<![A-Za-z]-)(?P<cur>[$€£¥]\s?)?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s?(?P<pct>%|percent\b|per cent\b)|\s?(?P<scale>thousand|millions?|billions?|trillion|"
    r"mn|bn|tn|[kKmMbB])\b)?(?![\w])",
)
# Capitalised words and runs of them ("Apple", "DC-SIGNR", "New York"), and identifiers that mix
# letters and digits ("IFITM3", "COVID-19").
_ENTITY_RE = re.compile(
    r"\b(?:[A-Z][\w'’-]*[A-Za-z0-9](?:\s+(?:of\s+|de\s+|and\s+)?[A-Z][\w'’-]*[A-Za-z0-9])*"
    r"|[A-Za-z]+[-]?\d[\w-]*)\b"
)
# Words that start sentences without naming anything (checked lower-cased), besides the BM25
# stop words.
_ENTITY_STOP = STOPWORDS | frozenset(
    [
        "however",
        "therefore",
        "thus",
        "also",
        "yes",
        "no",
        "based",
        "according",
        "answer",
        "answers",
        "source",
        "sources",
        "overall",
        "additionally",
        "furthermore",
        "moreover",
        "finally",
        "first",
        "firstly",
        "second",
        "secondly",
        "third",
        "then",
        "so",
        "because",
        "since",
        "while",
        "although",
        "though",
        "during",
        "after",
        "before",
        "both",
        "each",
        "all",
        "some",
        "many",
        "most",
        "other",
        "others",
        "one",
        "two",
        "three",
        "such",
        "note",
        "please",
        "unfortunately",
        "specifically",
        "similarly",
        "instead",
        "only",
        "not",
        "there",
        "here",
        "you",
        "your",
        "my",
        "we",
        "our",
        "they",
        "their",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "in",
        "on",
        "at",
        "of",
        "for",
        "and",
        "or",
        "but",
        "if",
        "as",
        "by",
        "to",
        "from",
        "with",
        "the",
        "a",
        "an",
    ]
)
# In answers from filings and financial reports, the words that begin line items ("Total net
# sales", "Net income") name nothing either; elsewhere "Net" may be a name (a product, ".NET").
_FILING_STOP = _ENTITY_STOP | frozenset({"total", "net"})


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


def is_list_marker(text: str, start: int, end: int) -> bool:
    """True if ``text[start:end]`` is the number of a numbered list item ("1. ", "2) " at the
    start of a line), which orders the answer and claims nothing."""
    line_start = text.rfind("\n", 0, start) + 1
    return (
        not text[line_start:start].strip()
        and end - start <= 2
        and re.match(r"[.)]\s", text[end : end + 2]) is not None
    )


def figures(text: str) -> list[Figure]:
    """Every figure in ``text`` with its character span (see :data:`_FIGURE_RE`; numbers inside
    names such as "HIV-1" are names, and list item numbers are skipped)."""
    out = []
    for m in _FIGURE_RE.finditer(text):
        if is_list_marker(text, m.start(), m.end("num")):
            continue
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


def figure_strings(texts: Iterable[str]) -> frozenset[str]:
    """Every number of :func:`figures` in ``texts`` as it is written ("82,959", "1.26",
    "2023"), and without its thousands separators ("82959"): the numbers figure-constrained
    decoding lets an answer write (see :mod:`desktop_rag.core.generate.constrained`)."""
    out: set[str] = set()
    for text in texts:
        for m in _FIGURE_RE.finditer(text):
            num = m.group("num")
            out.update((num, num.replace(",", "")))
    return frozenset(out)


def _tolerance(fig: Figure) -> float:
    """Half a unit of the figure's last written digit (what rounding to it allows), for a figure
    of at least two significant digits ("54%" for 54.3%, "$82.96 billion" for $82,959 million).
    A one-digit figure must match exactly: "1" is no rounding of a P value of 0.565."""
    digits = f"{fig.raw:.{fig.decimals}f}".replace(".", "").lstrip("0")
    return 0.5 * 10.0 ** (-fig.decimals) if len(digits) >= 2 else 0.0


def figure_supported(fig: Figure, source_figures: Sequence[Figure]) -> bool:
    """True if a source figure is this one: the same number as written (within the answer's
    rounding, a table's bare "82,959" supporting "$82,959 million"), unless both state different
    scales; or the same value once scales apply ("$82.96 billion" for "$82,959 million")."""
    tol = _tolerance(fig)
    for s in source_figures:
        same_scale = fig.scale == s.scale or fig.scale == 1.0 or s.scale == 1.0
        if same_scale and abs(fig.raw - s.raw) <= tol + 1e-9 * abs(s.raw):
            return True
        scaled = fig.scale > 1.0 or s.scale > 1.0
        if scaled and abs(fig.value - s.value) <= tol * fig.scale + 1e-9 * abs(s.value):
            return True
    return False


def entities(text: str, *, filing: bool = False) -> list[tuple[int, int, str]]:
    """Named entities in ``text`` as ``(start, end, text)``: capitalised words and runs of them
    ("Apple", "New York", "DC-SIGNR"; a leading "The" and a trailing "'s" left out) and
    identifiers that mix letters and digits ("IFITM3", "COVID-19"). Single capitalised words
    that are stop words or discourse words ("However", "Overall") are skipped; other words
    that start a sentence are kept (a checked ordinary word is found in the sources anyway).
    With ``filing`` (the text answers from a filing or financial report), "Total" and "Net"
    are stop words too ("Total Net Sales" -> "Sales")."""
    stop = _FILING_STOP if filing else _ENTITY_STOP
    out = []
    for m in _ENTITY_RE.finditer(text):
        word, start = m.group(0), m.start()
        first = word.split()[0]
        if first.lower() in stop:
            if " " not in word:
                continue
            rest = word[len(first) :].lstrip()  # "The Company" -> "Company"
            start, word = m.end() - len(rest), rest
        offset = 0
        for part in re.split(r"(['’]s\s+|['’]s$)", word):  # "Apple's DC-SIGNR": two names
            name = part and not re.fullmatch(r"['’]s\s*", part) and not part.isdigit()
            if name and part.lower() not in stop:
                out.append((start + offset, start + offset + len(part), part))
            offset += len(part)
    return out


def _norm(text: str) -> str:
    """Folded text with every non-alphanumeric run as one space (for entity containment)."""
    return " " + " ".join(TOKEN_RE.findall(fold(text))) + " "


@dataclass(frozen=True)
class CheckedAnswer:
    """An answer after the claim check: its text (citations added where a figure's source was
    found), the checks, and whether it passed as a whole (at least one supported sentence and
    every figure found in a source: see :func:`check_answer`)."""

    text: str
    checks: tuple[Check, ...]
    passed: bool

    @property
    def unsupported(self) -> tuple[Check, ...]:
        """The checks no source supports."""
        return tuple(c for c in self.checks if not c.supported)


# Sentence ends in an answer: [.!?] (with the citations that follow it) before white space, and
# line breaks; not the "1." of a numbered list item. The citations stay with the sentence they
# close.
_ANSWER_BREAK_RE = re.compile(
    r"(?<=[.!?])(?<!^\d\.)(?<!^\d\d\.)(?P<cites>(?:\s*\[\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*\])*)[ \t]+"
    r"|[ \t]*\n\s*",
    re.MULTILINE,
)
# Half of a sentence's content words (figures double) in one source: the support
# :func:`attribute_citations` asks 0.6 of before it adds a citation, relaxed for paraphrase.
MIN_SENTENCE_SUPPORT = 0.5


def answer_sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of an answer, each with the citations that close it."""
    spans, start = [], 0
    for m in _ANSWER_BREAK_RE.finditer(text):
        end = m.end("cites") if m.group("cites") is not None else m.start()
        spans.append((start, end))
        start = m.end()
    spans.append((start, len(text)))
    return trimmed_spans(text, spans)


def sentence_support(sentence: str, source: str) -> float:
    """The share of the sentence's content words (Porter stems) found in ``source``, figures
    counting double (they are what citations are for); 0 for a sentence without content words."""
    stems = content_terms(CITE_RE.sub(" ", sentence))
    if not stems:
        return 0.0
    have = set(content_terms(source))
    weights = [2.0 if s[0].isdigit() else 1.0 for s in stems]
    return sum(w for s, w in zip(stems, weights, strict=True) if s in have) / sum(weights)


def _name_source(found: list[int], cited: list[int], added: list[int]) -> None:
    """Add the first source of ``found`` (those holding a claim) to ``added`` unless the
    sentence already cites or was given one of them."""
    if found and not set(found) & set(cited + added):
        added.append(found[0])


def check_answer(text: str, sources: Sequence[Hit]) -> CheckedAnswer:
    """Check every figure, named entity and sentence of ``text`` against ``sources`` (the hits
    numbered ``[1]..[n]`` in the prompt; a source is its text and context line).

    Each sentence is checked against the sources it cites (all given sources when it cites
    none). A figure or entity found only in another given source is supported by that one, and
    that source's number is added to the sentence's citations; so is the first source holding a
    claim of a sentence that cites none (no figure is shown without its source). A sentence is
    supported when its content words are mostly (:data:`MIN_SENTENCE_SUPPORT`, figures double)
    in one of its sources and each of its figures and entities is supported. The answer passes when at least one
    sentence is supported and *every* figure is found in a given source: one invented figure
    beside a correct one fails it (the reader then gets the evidence, see
    :func:`failed_check_text`), because a figure is what a reader copies. Unsupported names and
    sentences are marked but do not fail an answer on their own. Offsets in the checks refer to
    the returned text.
    """
    bodies = [f"{h.context}\n{h.text}" for h in sources]
    filing = any(is_financial(h.genre) for h in sources)
    src_figs = [figures(b) for b in bodies]
    src_norm = [_norm(b) for b in bodies]
    every = list(range(1, len(sources) + 1))
    out: list[str] = []
    checks: list[Check] = []
    pos = 0  # end of the text copied so far (in ``text``)
    n_supported = fig_bad = 0
    for a, b in answer_sentences(text):
        out.append(text[pos:a])
        sent = text[a:b]
        cited = cited_numbers(sent, len(sources))
        own = cited or every
        body = CITE_RE.sub(lambda m: " " * len(m.group(0)), sent)  # same offsets, no markers
        claims: list[tuple[int, int, str, ClaimKind, list[int]]] = []
        added: list[int] = []
        for f in figures(body):
            found = [i for i in own if figure_supported(f, src_figs[i - 1])]
            if not found and cited:
                found = [i for i in every if figure_supported(f, src_figs[i - 1])]
            _name_source(found, cited, added)
            claims.append((f.start, f.end, body[f.start : f.end], "figure", found))
        for s, e, word in entities(body, filing=filing):
            key = _norm(word)
            found = [i for i in own if key in src_norm[i - 1]]
            if not found and cited:
                found = [i for i in every if key in src_norm[i - 1]]
            _name_source(found, cited, added)
            claims.append((s, e, word, "entity", found))
        figs = [c for c in claims if c[3] == "figure"]
        fig_bad += sum(not c[4] for c in figs)
        if added:  # name the source that holds the claim: "... [1] [3]." or "... [3]."
            label = f" [{', '.join(map(str, added))}]"
            last = list(CITE_RE.finditer(sent))
            cut = len(sent.rstrip(".!?:;"))
            if last and not sent[last[-1].end() :].strip(" .!?:;"):
                cut = last[-1].end()
            sent = sent[:cut] + label + sent[cut:]
        start = sum(len(p) for p in out)
        if content_terms(body):
            support = [
                i
                for i in own + added
                if sentence_support(body, bodies[i - 1]) >= MIN_SENTENCE_SUPPORT
            ]
            ok = bool(support) and all(c[4] for c in claims)
            n_supported += ok
            checks.append(Check(start, start + len(sent), sent, "sentence", ok, tuple(support)))
        checks += [Check(start + s, start + e, claim, kind, bool(found), tuple(found))
                   for s, e, claim, kind, found in claims]  # fmt: skip
        out.append(sent)
        pos = b
    out.append(text[pos:])
    passed = n_supported > 0 and fig_bad == 0
    return CheckedAnswer("".join(out), tuple(checks), passed)


FAILED_CHECK = "The model's answer did not match your documents, so it is not shown. What they say:"


def failed_check_text(evidence: Sequence[Evidence]) -> str:
    """What is shown instead of a generated answer that failed the claim check: a plain
    statement and the evidence quoted (or only the statement when there is none)."""
    if not evidence:
        return "The model's answer did not match your documents, so it is not shown."
    return f"{FAILED_CHECK}\n{quote_evidence(evidence)}"


def shown_text(answer: Answer) -> str:
    """Everything a reader is shown as the answer, as plain text: the quoted evidence, then the
    checked model answer (or, when it failed the check, the statement and quotes that replace
    it). What ``desktop-rag eval`` grades as the default answer."""
    if answer.generated is None or answer.grounded is False or not answer.evidence:
        return answer.text
    return f"{quote_evidence(answer.evidence)}\n{answer.text}"
