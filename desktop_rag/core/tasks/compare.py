"""Compare two documents: what both say, what only one says, and the figures that differ.

``compare(engine, a, b)`` reads both indexed documents in document order a batch of chunks at a
time (:func:`~desktop_rag.core.tasks.document.document_chunks`) and keeps only what alignment
needs: per chunk its id, page, offsets, topic and embedding (384 float32 with the bundled model,
1.5 KiB; 6 MiB for a 4,000-chunk, 1,000-page filing), plus the stored text of the pages that
hold a financial statement. No model is run besides the embedding of an ``aspect``, so it works
on every generation backend.

Passages are aligned by topic first, then by meaning:

* a chunk's topic is its innermost heading (the statement kind for a statement page, so
  "CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS" and "INCOME STATEMENTS" are one topic);
* a chunk of A has a counterpart in B when a chunk of B under the same topic has cosine
  similarity >= :data:`SAME_TOPIC_MIN` with it, or any chunk of B has >= :data:`ANY_TOPIC_MIN`
  (values measured on consecutive 10-Qs: see ``bench/compare_filings.py``);
* pairs go to ``both``; chunks without a counterpart go to ``only_a`` / ``only_b``, marked
  with whether their topic exists in the other document (a new section, or a new passage in a
  section both have).

Changes inside what both say (two versions of a contract or a policy, or the narrative of two
reports): a sentence of a passage in ``both`` that occurs nowhere in the other document
(compared whole-document, so a chunk boundary that moved is not a change) is a changed
sentence; each removed sentence is paired with the added one most like it (difflib ratio >=
:data:`EDIT_MIN_RATIO`) and their word-level difference (difflib's opcodes, as a redline shows
it) gives the edits, "30 days" -> "60 days". Where neither document has financial statements,
an edit that replaces a number with another is also a figure that differs, cited to both pages.

Figures: the rows of each primary statement (balance sheet, operations, comprehensive income,
cash flows, equity: :mod:`~desktop_rag.core.text.statements`) are parsed from the stored page
text (cells joined by :data:`~desktop_rag.core.text.citations.CELL_SEP`), each row keyed by
statement kind, section ("Net sales:", "Current liabilities:") and label, and valued by its
*current-period* column: the column of the latest date in the statement's header (the header the
PDF extractor puts in the title's heading, "in millions · Three Months Ended | Six Months Ended ·
April 1 2023 | March 26 2022"), within the first period span. So two quarters are compared on
each report's own quarter, never on a prior-year column both print (Amazon prints the prior year
first: the latest date, not the first column, decides). A row whose number of values does not
fit the header is left out rather than guessed.
"""

from __future__ import annotations

import difflib
import re
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from desktop_rag.core.errors import UserError
from desktop_rag.core.index.store import FileRow
from desktop_rag.core.search.claims import figures
from desktop_rag.core.search.selection import sentence_spans
from desktop_rag.core.tasks.document import document_chunks, resolve_files
from desktop_rag.core.text.citations import CELL_SEP, label_for
from desktop_rag.core.text.statements import statement_of_context, statement_of_heading
from desktop_rag.core.types import CancelToken

if TYPE_CHECKING:
    from desktop_rag.core.engine import Engine

#: Cosine similarity (all-MiniLM-L6-v2) at which two chunks under the same topic say the same.
SAME_TOPIC_MIN = 0.75
#: Cosine similarity at which two chunks under different topics say the same.
ANY_TOPIC_MIN = 0.85
#: Cosine similarity of a chunk to the aspect for the chunk to be about it.
ASPECT_MIN = 0.40
#: Cosine similarity of a line item ("section › label") to the aspect, with a shared word.
ASPECT_ITEM_MIN = 0.30
#: Cosine similarity of a line item to the aspect without a shared word. The embedding tells
#: line items apart poorly ("revenue" is 0.50 from "Total net sales", 0.54 from "Operating
#: income", 0.74 from "Cost of revenue"), so the words decide and this is nearly a synonym.
ASPECT_ITEM_STRONG = 0.85
#: Chunks read per batch, and rows of A compared with all of B at once (a block of
#: ``ALIGN_BLOCK x len(B)`` float32 similarities).
READ_BATCH = 512
ALIGN_BLOCK = 256
#: difflib's similarity ratio (2 * matches / total words) at which a removed and an added
#: sentence are one sentence edited rather than one dropped and another written.
EDIT_MIN_RATIO = 0.5
#: Words of context shown on each side of an edit.
EDIT_CONTEXT_WORDS = 5

#: Kinds of statement as shown (see :data:`~desktop_rag.core.text.statements.KINDS`).
STATEMENT_NAMES = {
    "balance": "balance sheet",
    "operations": "statement of operations",
    "comprehensive": "statement of comprehensive income",
    "cash_flows": "statement of cash flows",
    "equity": "statement of equity",
}

_REVENUE = ("revenue", "revenues", "net sales", "product sales", "service sales")
# Words an aspect stands for in a statement's line items (lower case). Only the few the issue's
# users ask about; any other aspect is matched by its own words and the embedding.
_ASPECT_WORDS: dict[str, tuple[str, ...]] = {
    "revenue": _REVENUE,
    "revenues": _REVENUE,
    "sales": _REVENUE,
    "earnings": ("net income", "earnings", "earnings per share"),
    "profit": ("net income", "operating income", "gross margin", "gross profit"),
    "eps": ("earnings per share", "per share"),
    "margin": ("gross margin", "operating income"),
    "expenses": ("expenses", "costs"),
    "costs": ("expenses", "costs", "cost"),
    "cash": ("cash",),
    "debt": ("debt", "borrowings", "commercial paper"),
    "tax": ("tax", "taxes"),
    "taxes": ("tax", "taxes"),
}
# Line items about an aspect's opposite ("cost of sales" is no revenue line).
_NOT_ASPECT = re.compile(r"\bcosts?\s+of\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z][a-z'’]+")
_STOP = frozenset({"the", "and", "of", "in", "for", "to", "a", "an", "on", "by", "with", "total"})


@dataclass(frozen=True)
class CompareProgress:
    """How far a comparison is: ``done`` of ``total`` steps (chunks read, then rows of A
    aligned), ``eta_s`` seconds left (None before the first step), ``stage`` (``"reading"``,
    ``"aligning"``, ``"figures"``)."""

    done: int
    total: int
    eta_s: float | None
    stage: str


@dataclass
class Comparison:
    """The result of :func:`compare`.

    ``both``: ``{topic, similarity, a: passage, b: passage}``, one per passage of A with a
    counterpart in B, in A's order; ``changed``: the pairs of ``both`` whose sentences differ,
    ``{topic, a: passage, b: passage, removed: [sentence], added: [sentence], edits: [{a, b,
    before, after}]}`` (``removed``/``added``: sentences found nowhere in the other document;
    ``edits``: word spans replaced, inserted (``a`` "") or deleted (``b`` ""), with
    :data:`EDIT_CONTEXT_WORDS` words of context); a passage is ``{text, file, page, start, end}`` (``file``
    the indexed path, ``page`` 1-based or None, ``start:end`` the chunk's offsets in the page's
    stored text). ``only_a`` / ``only_b``: ``{topic, topic_in_other, text, file, page, start,
    end}``. ``figures_differ``: ``{item, statement, period, same_span, a: figure, b: figure}``
    (``same_span`` False when the current columns cover periods of different length, a
    quarter against six months in a cash flow statement) with a
    figure ``{value, number, period, file, page}`` (``value`` as printed, ``number`` its value in
    the statement's units, ``period`` the column it is from). ``figures_same``: how many line
    items both report with the same current-period value. ``stats``: counts; ``timings``: seconds.
    """

    a: str
    b: str
    aspect: str | None
    both: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    only_a: list[dict[str, Any]] = field(default_factory=list)
    only_b: list[dict[str, Any]] = field(default_factory=list)
    figures_differ: list[dict[str, Any]] = field(default_factory=list)
    figures_same: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``a``, ``b``, ``aspect``, ``both``, ``changed``, ``only_a``,
        ``only_b``, ``figures_differ``, ``figures_same``, ``stats``, ``timings``."""
        return {
            "a": self.a,
            "b": self.b,
            "aspect": self.aspect,
            "both": self.both,
            "changed": self.changed,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "figures_differ": self.figures_differ,
            "figures_same": self.figures_same,
            "stats": self.stats,
            "timings": self.timings,
        }

    def to_markdown(self, max_items: int = 50) -> str:
        """Markdown: a table of the figures that differ, then the changed passages (each edit as
        ~~removed~~ **added**), lists of what only A, only B and both say (at most
        ``max_items`` each, both grouped by topic), every item cited by file and page."""
        name_a, name_b = Path(self.a).name, Path(self.b).name
        out = [f"# {name_a} compared with {name_b}"]
        if self.aspect:
            out.append(f"\nAspect: {self.aspect}")
        out.append("\n## Figures that differ\n")
        if self.figures_differ:
            out.append(f"| Line item | Statement | {_cell(name_a)} | {_cell(name_b)} |")
            out.append("|---|---|---|---|")
            for f in self.figures_differ[:max_items]:
                cells = [
                    _cell(f["item"] + ("" if f.get("same_span", True) else " (periods differ in length)")),
                    _cell(STATEMENT_NAMES.get(f["statement"], f["statement"])),
                    *(
                        _cell(f"{f[s]['value']} ({f[s]['period']}; "
                              f"{label_for(f[s]['file'], f[s]['page'])})")
                        for s in ("a", "b")
                    ),
                ]  # fmt: skip
                out.append("| " + " | ".join(cells) + " |")
            out += _more(len(self.figures_differ), max_items)
        else:
            out.append("None found.")
        out.append("\n## Changed passages\n")
        for ch in self.changed[:max_items]:
            where = f"{label_for(ch['a']['file'], ch['a']['page'])} → " \
                    f"{label_for(ch['b']['file'], ch['b']['page'])}"  # fmt: skip
            shown = [_redline(e) for e in ch["edits"]] or [
                *(f"~~{_inline(_excerpt(t))}~~" for t in ch["removed"]),
                *(f"**{_inline(_excerpt(t))}**" for t in ch["added"]),
            ]
            out.append(f"- **{_inline(ch['topic']) or 'Passage'}** ({where}): " + "; ".join(shown))
        out += _more(len(self.changed), max_items) if self.changed else ["None."]
        for title, items in (
            (f"Only in {name_a}", self.only_a),
            (f"Only in {name_b}", self.only_b),
        ):
            out.append(f"\n## {title}\n")
            for p in items[:max_items]:
                where = "a section both have" if p["topic_in_other"] else "a section only here"
                out.append(f"- **{_inline(p['topic'])}** ({where}): {_excerpt(p['text'])} "
                           f"({label_for(p['file'], p['page'])})")  # fmt: skip
            out += _more(len(items), max_items) if items else ["None."]
        out.append("\n## What both say\n")
        groups: dict[str, list[dict[str, Any]]] = {}
        for pair in self.both:
            groups.setdefault(pair["topic"], []).append(pair)
        for topic, pairs in list(groups.items())[:max_items]:
            pa = sorted({p["a"]["page"] for p in pairs if p["a"]["page"]})
            pb = sorted({p["b"]["page"] for p in pairs if p["b"]["page"]})
            out.append(f"- **{_inline(topic)}**: {len(pairs)} passage(s); {name_a} "
                       f"{_pages(pa)}, {name_b} {_pages(pb)}")  # fmt: skip
        out += _more(len(groups), max_items) if groups else ["None."]
        return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _inline(text: str) -> str:
    return " ".join(str(text).split())


def _redline(edit: dict[str, str]) -> str:
    """One edit as Markdown: context, ~~removed~~ **added**, context."""
    a = f"~~{_inline(edit['a'])}~~" if edit["a"] else ""
    b = f"**{_inline(edit['b'])}**" if edit["b"] else ""
    return " ".join(
        x
        for x in (f"…{_inline(edit['before'])}", a, b, f"{_inline(edit['after'])}…")
        if x.strip("…")
    )


def _excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _pages(pages: Sequence[int]) -> str:
    if not pages:
        return "(no pages)"
    return ("page " if len(pages) == 1 else "pages ") + ", ".join(map(str, pages))


def _more(n: int, shown: int) -> list[str]:
    return [f"- … and {n - shown} more"] if n > shown else []


# -- reading -----------------------------------------------------------------------------------

_DATE_WORDS = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2},?\s+"
    r"(?:19|20)\d\d\b|\b(?:19|20)\d\d\b",
    re.IGNORECASE,
)


def topic_of(context: str) -> str:
    """A chunk's topic from its context line (headings joined by " › ", the first part being
    "file: title"): the statement's name on a statement page, else the innermost heading with
    any " · " header detail cut off; "" for a chunk under no heading."""
    kind = statement_of_context(context)
    if kind is not None:
        return STATEMENT_NAMES[kind]
    parts = context.split(" › ")
    if len(parts) < 2:
        return ""
    return parts[-1].split(" · ", 1)[0].strip()


def topic_key(topic: str) -> str:
    """``topic`` normalised for matching across two periods: lower case, dates and years
    removed, "(unaudited)"/"(continued)" and punctuation dropped."""
    text = _DATE_WORDS.sub(" ", topic.lower())
    text = re.sub(r"\((?:unaudited|continued|in [a-z ,]+)\)", " ", text)
    return " ".join(re.findall(r"[a-z0-9]+", text))


@dataclass
class _Doc:
    """What alignment keeps of one document (see the module docstring for its size)."""

    file: FileRow
    ids: list[int] = field(default_factory=list)
    pages: list[int | None] = field(default_factory=list)
    topics: list[int] = field(default_factory=list)  # index into topic_names
    topic_names: list[str] = field(default_factory=list)
    topic_index: dict[str, int] = field(default_factory=dict)  # topic_key -> index
    emb: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    sentences: set[int] = field(default_factory=set)  # sentence_key of every whole sentence
    # page -> [(chunk start, statement kind or None, header)] for the pages of a statement
    statement_chunks: dict[int, list[tuple[int, str | None, str]]] = field(default_factory=dict)


def _load(engine: Engine, doc: _Doc, cancel: CancelToken) -> Iterator[int]:
    """Read ``doc.file``'s chunks a batch at a time into ``doc``; yields the chunks read per
    batch (for progress). Embeddings are copied into one preallocated ``(chunks, dim)``
    array."""
    dim = 0
    n = 0
    emb: NDArray[np.float32] | None = None
    for batch in document_chunks(engine, doc.file, READ_BATCH):
        cancel.checkpoint()
        for chunk, vec in batch:
            if emb is None:
                dim = int(vec.shape[0])
                emb = np.empty((max(doc.file.chunks, len(batch)), dim), dtype=np.float32)
            if n >= emb.shape[0]:  # more chunks than the file row says: grow
                emb = np.concatenate([emb, np.empty_like(emb)])
            emb[n] = vec
            n += 1
            topic = topic_of(chunk.context)
            key = topic_key(topic)
            t = doc.topic_index.get(key)
            if t is None:
                t = doc.topic_index[key] = len(doc.topic_names)
                doc.topic_names.append(topic)
            doc.ids.append(chunk.chunk_id)
            doc.pages.append(chunk.page)
            doc.topics.append(t)
            doc.sentences.update(sentence_key(x) for x in whole_sentences(chunk.text))
            kind = statement_of_context(chunk.context)
            if chunk.page is not None and (kind is not None or chunk.page in doc.statement_chunks):
                doc.statement_chunks.setdefault(chunk.page, []).append(
                    (chunk.start, kind, _statement_header(chunk.context) if kind else "")
                )
        yield len(batch)
    doc.emb = emb[:n] if emb is not None else np.zeros((0, dim or 1), dtype=np.float32)


_SENTENCE_END = re.compile(r"[.!?;:][\"'”’)\]]*$")


def whole_sentences(text: str) -> list[str]:
    """The sentences of a chunk's ``text`` (:func:`sentence_spans`) that are whole: one that
    begins mid-sentence (lower case: the chunk started inside it) or does not end with
    punctuation (the chunk ended inside it) is left out, so a chunk boundary that moved between
    two versions is not taken for a change."""
    out = []
    for a, b in sentence_spans(text):
        sent = text[a:b].strip()
        if len(sent.split()) < 3 or sent[:1].islower() or not _SENTENCE_END.search(sent):
            continue
        out.append(sent)
    return out


def sentence_key(sentence: str) -> int:
    """A sentence's identity across documents: CRC-32 of its words, lower case, without
    punctuation or line breaks (8 bytes a sentence in a set; a 1,000-page PDF holds ~50k)."""
    return zlib.crc32(" ".join(re.findall(r"\w+", sentence.lower())).encode())


def edits_between(a: str, b: str) -> list[dict[str, str]]:
    """The word-level edits that turn sentence ``a`` into ``b`` (difflib.SequenceMatcher over
    whitespace-separated words): ``{a, b, before, after}`` per replaced, deleted (``b`` "") or
    inserted (``a`` "") span, with :data:`EDIT_CONTEXT_WORDS` words of ``a``'s context on each
    side."""
    wa, wb = a.split(), b.split()
    out = []
    n = EDIT_CONTEXT_WORDS
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        out.append({"a": " ".join(wa[i1:i2]), "b": " ".join(wb[j1:j2]),
                    "before": " ".join(wa[max(0, i1 - n) : i1]), "after": " ".join(wa[i2 : i2 + n])})  # fmt: skip
    return out


def _changes(
    pa: str, pb: str, da: _Doc, db: _Doc, seen: set[tuple[int, int]]
) -> tuple[list[str], list[str], list[dict[str, str]]]:
    """The sentences of passage ``pa`` found nowhere in ``db`` (removed) and of ``pb`` nowhere
    in ``da`` (added), skipping those in ``seen`` (already reported; updated), and the edits of
    each removed sentence paired with the added one most like it."""
    removed: list[str] = []
    added: list[str] = []
    for text, other, out, side in ((pa, db, removed, 0), (pb, da, added, 1)):
        for sent in whole_sentences(text):
            key = sentence_key(sent)
            if key not in other.sentences and (side, key) not in seen:
                seen.add((side, key))
                out.append(sent)
    edits: list[dict[str, str]] = []
    free = list(added)
    for sent in removed:
        best: str | None = None
        ratio = EDIT_MIN_RATIO
        for cand in free:
            r = difflib.SequenceMatcher(None, sent.split(), cand.split(), autojunk=False).ratio()
            if r >= ratio:
                best, ratio = cand, r
        if best is not None:
            free.remove(best)
            edits += edits_between(sent, best)
    return removed, added, edits


def _number_edits(edits: Sequence[dict[str, str]]) -> list[tuple[dict[str, str], str, str]]:
    """The edits that replace one number with another: ``(edit, value a, value b)``."""
    out = []
    for e in edits:
        fa, fb = figures(e["a"]), figures(e["b"])
        if len(fa) == 1 and len(fb) == 1 and fa[0].value != fb[0].value:
            out.append((e, e["a"][fa[0].start : fa[0].end], e["b"][fb[0].start : fb[0].end]))
    return out


def _statement_header(context: str) -> str:
    """The column header the PDF extractor added to the innermost statement heading of a
    context line ("in millions · Three Months Ended · April 1 2023 | March 26 2022"), or ""."""
    for part in reversed(context.split(" › ")):
        if statement_of_heading(part) is not None:
            return part.split(" · ", 1)[1] if " · " in part else ""
    return ""


# -- statements --------------------------------------------------------------------------------

_MONTH_NUMBERS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}  # fmt: skip
_HEADER_DATE = re.compile(r"([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2})\s+((?:19|20)\d\d)")
_HEADER_YEAR = re.compile(r"^(?:19|20)\d\d$")
_SPAN_WORDS = re.compile(r"\bended\b|\bquarter\b|\bweeks?\b|\bmonths?\b", re.IGNORECASE)
_VALUE = re.compile(r"^(\()?-?\$?\s*(\()?\s*(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*(\))?\s*%?\s*(\))?$")
_DASHES = frozenset({"—", "–", "-", "−", "— —", "$ —", "$—"})


@dataclass(frozen=True)
class Header:
    """A statement's column header: period ``spans`` ("Three Months Ended", ...), column
    ``dates`` as printed, and ``current``: the index of the current period's column within one
    span (the latest date; None when no date could be read)."""

    spans: tuple[str, ...]
    dates: tuple[str, ...]
    current: int | None

    @property
    def columns(self) -> int | None:
        """How many value columns a row has: spans x dates (None without dates)."""
        return len(self.dates) * max(1, len(self.spans)) if self.dates else None

    @property
    def period(self) -> str:
        """The current column's period as printed ("Three Months Ended April 1 2023")."""
        if self.current is None:
            return "first column"
        span = self.spans[0] if self.spans else ""
        return f"{span} {self.dates[self.current]}".strip()


def parse_header(header: str) -> Header:
    """Read a statement header as the PDF extractor writes it: parts joined by " · " (units,
    spans joined by " | ", dates joined by " | ")."""
    spans: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()
    for part in header.split(" · "):
        cells = tuple(c.strip() for c in part.split(" | ") if c.strip())
        if not cells:
            continue
        if all(_HEADER_DATE.search(c) or _HEADER_YEAR.match(c) for c in cells):
            dates = cells
        elif all(_SPAN_WORDS.search(c) for c in cells):
            spans = cells
    parsed = [_header_date(d) for d in dates]
    current = None
    if dates and all(p is not None for p in parsed):
        current = max(range(len(parsed)), key=lambda i: parsed[i])  # type: ignore[arg-type,return-value]
        if parsed.count(parsed[current]) > 1:
            current = None  # two columns of one date: cannot tell
    return Header(spans, dates, current)


def _header_date(text: str) -> date | None:
    m = _HEADER_DATE.search(text)
    if m:
        month = _MONTH_NUMBERS.get(m.group(1).lower())
        if month is None:
            return None
        try:
            return date(int(m.group(3)), month, int(m.group(2)))
        except ValueError:
            return None
    if _HEADER_YEAR.match(text.strip()):
        return date(int(text.strip()), 12, 31)
    return None


def parse_value(cell: str) -> float | None:
    """A statement cell's number: "$73,929" -> 73929.0, "(1,001)" and "$(13,963)" negative,
    "—" 0.0; None for a cell that is not a number."""
    text = _clean(cell)
    if text in _DASHES:
        return 0.0
    m = _VALUE.match(text)
    if m is None:
        return None
    number = float(m.group(3).replace(",", "") + (m.group(4) or ""))
    negative = bool(m.group(1) or m.group(2)) and bool(m.group(5) or m.group(6))
    return -number if negative or text.startswith("-") else number


@dataclass(frozen=True)
class Row:
    """A statement row: its ``kind``, ``section`` (the last "Heading:" line above it, "" when
    none), ``label``, current-period ``value`` as printed and ``number``, the ``period`` of that
    column, the 1-based ``page``, and ``line``: the row as extracted."""

    kind: str
    section: str
    label: str
    value: str
    number: float
    period: str
    page: int
    line: str
    span: str = ""  # the current column's period span ("Three Months Ended"; "" for a date)

    @property
    def item(self) -> str:
        """The line item as shown: "Section › label", or the label alone."""
        return f"{self.section} › {self.label}" if self.section else self.label


def label_key(text: str) -> str:
    """A label normalised for matching across periods: lower case, numbers (share counts in a
    label change every quarter) and punctuation dropped."""
    text = re.sub(r"\d[\d,.]*", " ", text.lower().replace("’", "'"))
    return " ".join(re.findall(r"[a-z']+", text))


_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_H_SPAN = re.compile(
    r"(?:(?:three|six|nine|twelve|thirteen|twenty-six|thirty-nine|\d+)\s+(?:months?|weeks?)|"
    r"(?:fiscal\s+)?(?:quarter|year))\s+ended",
    re.IGNORECASE,
)
_H_CELL = re.compile(
    rf"^(?:(?P<span>{_H_SPAN.pattern})\s*(?P<sday>{_MONTH}\s+\d{{1,2}})?,?:?"
    rf"|(?P<date>{_MONTH}\s+\d{{1,2}},?\s*(?:19|20)\d\d)"
    rf"|(?P<day>{_MONTH}\s+\d{{1,2}}),?"
    r"|(?P<year>(?:19|20)\d\d)"
    r"|(?P<remark>[(\[].*[)\]]))$",
    re.IGNORECASE,
)


def page_header(lines: Sequence[str]) -> Header:
    """A statement's column header read from its lines on the page (the header the PDF
    extractor adds to the context line misses a date printed once over two years, "March 31,"
    over "2022 | 2023", and a header set beside its span, "Three Months Ended September 30, |
    2023 | 2022"). A line is a header line when each of its cells is a period span, a date, a
    month and day, a year or a remark in brackets; dates are the full dates in order, else each
    year with the month and day printed above it; repeated dates (one set per span) count
    once."""
    spans: list[str] = []
    dates: list[str] = []
    days: list[str] = []
    years: list[str] = []
    for line in lines:
        cells = [" ".join(c.split()) for c in line.split(CELL_SEP.strip())]
        found = [_H_CELL.match(c) for c in cells if c]
        if not found or any(m is None for m in found):
            continue
        for m in found:
            assert m is not None
            if m.group("span"):
                spans.append(" ".join(m.group("span").split()).title())
                if m.group("sday"):
                    days.append(m.group("sday"))
            elif m.group("date"):
                dates.append(" ".join(m.group("date").replace(",", " ").split()))
            elif m.group("day"):
                days.append(" ".join(m.group("day").split()))
            elif m.group("year"):
                years.append(m.group("year"))
    if not dates and years:
        if len(days) == len(years):
            dates = [f"{d} {y}" for d, y in zip(days, years, strict=True)]
        else:
            dates = [f"{days[0]} {y}" if days else y for y in years]
    spans = list(dict.fromkeys(spans))
    return parse_header(
        " · ".join(p for p in (" | ".join(spans), " | ".join(dict.fromkeys(dates))) if p)
    )


def _is_row(cells: Sequence[str]) -> bool:
    """Whether a line's cells are a statement row: a label, then numbers only."""
    if len(cells) < 2 or not cells[0] or _H_CELL.match(" ".join(cells[0].split())):
        return False
    values = [c for c in cells[1:] if c and c != "$"]
    return bool(values) and all(parse_value(v) is not None for v in values)


def statement_rows(text: str, page: int, spans: Sequence[tuple[int, str | None, str]]) -> list[Row]:
    """The rows of the statements on one page: ``text`` its stored text, ``spans`` the
    ``(start offset, statement kind or None, header)`` of its chunks (a line belongs to the
    chunk starting last at or before it). Each statement's column header is read from its lines
    on the page (:func:`page_header`), else from the chunk's context line. Rows outside a
    statement, rows without a label, and rows whose number of values does not fit the header
    are left out."""
    ordered = sorted(spans, key=lambda s: s[0])
    # The page's lines in segments of one statement: (kind, context header, lines).
    segments: list[tuple[str, str, list[str]]] = []
    pos = 0
    for raw in text.split("\n"):
        offset, pos = pos, pos + len(raw) + 1
        owner: tuple[str | None, str] = (None, "")
        for start, kind, header in ordered:
            if start > offset:
                break
            owner = (kind, header)
        kind, header = owner
        if kind is None:
            continue
        if not segments or segments[-1][:2] != (kind, header):
            segments.append((kind, header, []))
        segments[-1][2].append(raw.strip())
    rows: list[Row] = []
    for kind, header_text, lines in segments:
        head = page_header(lines)
        if head.current is None:
            head = parse_header(header_text)
        if head.current is None or head.columns is None:
            continue
        section = ""
        pending = ""  # a label line broken before its cells
        for line in lines:
            if not line:
                continue
            cells = [c.strip() for c in line.split(CELL_SEP.strip())]
            if len(cells) == 1:
                if line.endswith(":"):
                    section, pending = line.rstrip(":").strip(), ""
                elif statement_of_heading(line) is not None:
                    section, pending = "", ""
                else:
                    pending = line
                continue
            label = cells[0]
            if pending and not label[:1].isupper():  # "securities | 1,465", "$(10) | 6 | 33"
                label = f"{pending} {label}"
            pending = ""
            if not _is_row([label, *cells[1:]]) or parse_value(label) is not None:
                continue
            values = [_clean(c) for c in cells[1:] if c and c != "$"]
            if len(values) != head.columns:
                continue
            number = parse_value(values[head.current])
            assert number is not None
            rows.append(Row(kind, section, " ".join(label.split()), values[head.current],
                            number, head.period, page, line,
                            head.spans[0].lower() if head.spans else ""))  # fmt: skip
            if label.lower().startswith("total"):
                section = ""  # a total closes its section
    return rows


def _clean(cell: str) -> str:
    """A value cell as shown: white space collapsed, a "$" of the next column dropped."""
    text = " ".join(cell.split())
    return text[:-1].rstrip() if text.endswith("$") and len(text) > 1 else text


def _statement_rows(engine: Engine, doc: _Doc) -> list[Row]:
    rows: list[Row] = []
    for page, spans in sorted(doc.statement_chunks.items()):
        text = engine.store.page_text(doc.file.id, page)
        if text:
            rows += statement_rows(text, page, spans)
    return rows


def _keyed(rows: Sequence[Row]) -> dict[tuple[str, str, str, int], Row]:
    """Rows by (kind, section key, label key, n-th such row): the n-th "Beginning balances"
    under "Common stock" of the equity statement is the same line item in both periods."""
    out: dict[tuple[str, str, str, int], Row] = {}
    seen: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in rows:
        base = (r.kind, label_key(r.section), label_key(r.label))
        out[(*base, seen[base])] = r
        seen[base] += 1
    return out


def _by_label(rows: Sequence[Row]) -> dict[tuple[str, str], Row]:
    """Rows by (kind, label key) for the labels that occur once in their statement."""
    count: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        count[(r.kind, label_key(r.label))] += 1
    return {
        (r.kind, label_key(r.label)): r for r in rows if count[(r.kind, label_key(r.label))] == 1
    }


def _figure(row: Row, path: str) -> dict[str, Any]:
    return {"value": row.value, "number": row.number, "period": row.period,
            "file": path, "page": row.page}  # fmt: skip


def match_rows(rows_a: Sequence[Row], rows_b: Sequence[Row]) -> list[tuple[Row, Row]]:
    """The line items both documents report, as (row of A, row of B) in A's order: same
    statement, section and label (the n-th of its kind), else the same label where it is unique
    in its statement in each."""
    keyed_b = _keyed(rows_b)
    label_b = _by_label(rows_b)
    label_a = _by_label(rows_a)
    used: set[int] = set()
    pairs: list[tuple[Row, Row]] = []
    for key, ra in _keyed(rows_a).items():
        rb = keyed_b.get(key)
        if rb is None:
            lk = (ra.kind, label_key(ra.label))
            rb = label_b.get(lk) if lk in label_a else None
        if rb is not None and id(rb) not in used:
            used.add(id(rb))
            pairs.append((ra, rb))
    return pairs


# -- aspect ------------------------------------------------------------------------------------


def _aspect_phrases(aspect: str) -> tuple[str, ...]:
    words = [w for w in _WORD.findall(aspect.lower()) if w not in _STOP]
    phrases: list[str] = [" ".join(words)] if words else []
    for w in words:
        phrases += [w, *_ASPECT_WORDS.get(w, ())]
    return tuple(dict.fromkeys(p for p in phrases if p))


def _mentions(text: str, phrases: Sequence[str]) -> bool:
    low = " ".join(_WORD.findall(text.lower()))
    return any(re.search(rf"\b{re.escape(p)}s?\b", low) for p in phrases)


# -- compare -----------------------------------------------------------------------------------


def _one_file(engine: Engine, target: str | Path) -> FileRow:
    files = resolve_files(engine, target)
    if len(files) != 1:
        raise UserError(
            f"{target} is a folder of {len(files)} files", hint="compare names two documents"
        )
    return files[0]


def _best(
    a: _Doc, b: _Doc, cancel: CancelToken
) -> Iterator[
    tuple[int, NDArray[np.int64], NDArray[np.float32], NDArray[np.int64], NDArray[np.float32]]
]:
    """For blocks of A's chunks: (first row, best chunk of B and its similarity, best chunk of
    B under the same topic (-1: none) and its similarity)."""
    tb = np.asarray(b.topics, dtype=np.int64)
    # A's topics as B's topic indices (-1: B has no such topic).
    a_to_b = np.array([b.topic_index.get(topic_key(t), -1) for t in a.topic_names], dtype=np.int64)
    ta = a_to_b[np.asarray(a.topics, dtype=np.int64)] if a.topics else np.zeros(0, np.int64)
    for s in range(0, len(a.ids), ALIGN_BLOCK):
        cancel.checkpoint()
        sims = a.emb[s : s + ALIGN_BLOCK] @ b.emb.T  # (block, len(B))
        best = sims.argmax(axis=1)
        best_sim = sims[np.arange(len(best)), best]
        same = ta[s : s + ALIGN_BLOCK, None] == tb[None, :]
        masked = np.where(same, sims, -2.0)
        topic_best = masked.argmax(axis=1)
        topic_sim = masked[np.arange(len(best)), topic_best]
        topic_best = np.where(topic_sim > -2.0, topic_best, -1)
        yield s, best, best_sim.astype(np.float32), topic_best, topic_sim.astype(np.float32)


def compare(
    engine: Engine,
    a: str | Path,
    b: str | Path,
    *,
    aspect: str | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[CompareProgress | Comparison]:
    """Compare two indexed documents ``a`` and ``b`` (paths, or file names indexed once):
    yields :class:`CompareProgress` events, then one :class:`Comparison`.

    ``aspect`` ("revenue") keeps the passages whose embedding has cosine >= :data:`ASPECT_MIN`
    with it or whose topic names it, and the line items that name it (its words, and the few
    synonyms of :data:`_ASPECT_WORDS`: "revenue" is also "net sales") with cosine >=
    :data:`ASPECT_ITEM_MIN`, or have cosine >= :data:`ASPECT_ITEM_STRONG`.

    Raises:
        UserError: ``a`` or ``b`` is not an indexed document (see
            :func:`~desktop_rag.core.tasks.document.resolve_files`), or names a folder.
        Cancelled: ``cancel`` was set (checked between batches of chunks and of alignment).
    """
    cancel = cancel or CancelToken()
    t0 = time.perf_counter()
    fa, fb = _one_file(engine, a), _one_file(engine, b)
    da, db = _Doc(fa), _Doc(fb)
    total = 2 * (fa.chunks + fb.chunks) + 1
    done = 0

    def progress(stage: str) -> CompareProgress:
        elapsed = time.perf_counter() - t0
        eta = elapsed / done * (total - done) if done else None
        return CompareProgress(min(done, total), total, eta, stage)

    yield progress("reading")
    for doc in (da, db):
        for n in _load(engine, doc, cancel):
            done += n
            yield progress("reading")
    t_read = time.perf_counter() - t0

    # Aspect: which chunks and line items are about it.
    keep_a = np.ones(len(da.ids), dtype=bool)
    keep_b = np.ones(len(db.ids), dtype=bool)
    aspect_vec: NDArray[np.float32] | None = None
    phrases: tuple[str, ...] = ()
    if aspect and aspect.strip():
        aspect_vec = engine.embedder.embed_query(aspect.strip())
        phrases = _aspect_phrases(aspect)
        for doc, keep in ((da, keep_a), (db, keep_b)):
            if not doc.ids:
                continue
            named = np.array([_mentions(t, phrases) for t in doc.topic_names], dtype=bool)
            keep[:] = (doc.emb @ aspect_vec >= ASPECT_MIN) | named[np.asarray(doc.topics)]

    # Passages: A against B, then B against A for what only B says.
    matched_b = np.zeros(len(db.ids), dtype=bool)
    pairs: list[tuple[int, int, float]] = []
    unmatched_a: list[int] = []
    if da.ids and db.ids:
        for s, best, best_sim, tbest, tsim in _best(da, db, cancel):
            for k in range(len(best)):
                i = s + k
                if tbest[k] >= 0 and tsim[k] >= SAME_TOPIC_MIN:
                    j, sim = int(tbest[k]), float(tsim[k])
                elif best_sim[k] >= ANY_TOPIC_MIN:
                    j, sim = int(best[k]), float(best_sim[k])
                else:
                    unmatched_a.append(i)
                    continue
                matched_b[j] = True
                pairs.append((i, j, sim))
            done += len(best)
            yield progress("aligning")
        for s, best, best_sim, tbest, tsim in _best(db, da, cancel):
            for k in range(len(best)):
                ok = (tbest[k] >= 0 and tsim[k] >= SAME_TOPIC_MIN) or best_sim[k] >= ANY_TOPIC_MIN
                matched_b[s + k] |= bool(ok)
            done += len(best)
            yield progress("aligning")
    else:
        unmatched_a = list(range(len(da.ids)))
    t_align = time.perf_counter() - t0 - t_read

    pairs = [(i, j, s) for i, j, s in pairs if keep_a[i] or keep_b[j]]
    unmatched_a = [i for i in unmatched_a if keep_a[i]]
    unmatched_b = [j for j in range(len(db.ids)) if not matched_b[j] and keep_b[j]]
    want_a = {da.ids[i] for i, _, _ in pairs} | {da.ids[i] for i in unmatched_a}
    want_b = {db.ids[j] for _, j, _ in pairs} | {db.ids[j] for j in unmatched_b}
    texts = engine.store.chunks_by_id(sorted(want_a | want_b))

    def passage(doc: _Doc, i: int) -> dict[str, Any]:
        c = texts.get(doc.ids[i])
        return {"text": c.text if c else "", "file": doc.file.path, "page": doc.pages[i],
                "start": c.start if c else 0, "end": c.end if c else 0}  # fmt: skip

    result = Comparison(fa.path, fb.path, aspect)
    for i, j, sim in pairs:
        ta, tb = da.topic_names[da.topics[i]], db.topic_names[db.topics[j]]
        topic = ta if topic_key(ta) == topic_key(tb) else f"{ta} ↔ {tb}"
        result.both.append({"topic": topic, "similarity": round(sim, 3),
                            "a": passage(da, i), "b": passage(db, j)})  # fmt: skip
    seen: set[tuple[int, int]] = set()
    for pair in result.both:
        removed, added, edits = _changes(pair["a"]["text"], pair["b"]["text"], da, db, seen)
        if removed or added:
            result.changed.append({"topic": pair["topic"], "a": pair["a"], "b": pair["b"],
                                   "removed": removed, "added": added, "edits": edits})  # fmt: skip
    for doc, other, idx, out in ((da, db, unmatched_a, result.only_a),
                                 (db, da, unmatched_b, result.only_b)):  # fmt: skip
        for i in idx:
            topic = doc.topic_names[doc.topics[i]]
            out.append({"topic": topic, "topic_in_other": topic_key(topic) in other.topic_index,
                        **passage(doc, i)})  # fmt: skip

    # Figures: each report's own current-period value of the line items both report.
    rows_a, rows_b = _statement_rows(engine, da), _statement_rows(engine, db)
    matched = match_rows(rows_a, rows_b)
    if aspect_vec is not None:
        matched = _aspect_rows(engine, matched, aspect_vec, phrases)
    for ra, rb in matched:
        if ra.number == rb.number:
            result.figures_same += 1
            continue
        period = ra.period if ra.period == rb.period else f"{ra.period} | {rb.period}"
        result.figures_differ.append({"item": ra.item, "statement": ra.kind, "period": period,
                                      "same_span": ra.span == rb.span,
                                      "a": _figure(ra, fa.path), "b": _figure(rb, fb.path)})  # fmt: skip
    if not rows_a and not rows_b:  # no statements: a contract, a policy: figures in the text
        for ch in result.changed:
            for e, va, vb in _number_edits(ch["edits"]):
                item = " ".join(x for x in (f"{ch['topic']}:" if ch["topic"] else "",
                                            f"…{e['before']} _ {e['after']}…") if x)  # fmt: skip
                result.figures_differ.append({
                    "item": item, "statement": "passage", "period": None, "same_span": True,
                    "a": {"value": va, "number": None, "period": None, "file": fa.path,
                          "page": ch["a"]["page"]},
                    "b": {"value": vb, "number": None, "period": None, "file": fb.path,
                          "page": ch["b"]["page"]},
                })  # fmt: skip
    done = total
    result.stats = {
        "chunks_a": len(da.ids), "chunks_b": len(db.ids), "pairs": len(pairs),
        "changed": len(result.changed),
        "statement_rows_a": len(rows_a), "statement_rows_b": len(rows_b),
        "line_items_matched": len(matched),
    }  # fmt: skip
    result.timings = {"read_s": round(t_read, 3), "align_s": round(t_align, 3),
                      "total_s": round(time.perf_counter() - t0, 3)}  # fmt: skip
    yield progress("figures")
    yield result


def _aspect_rows(
    engine: Engine,
    pairs: Sequence[tuple[Row, Row]],
    aspect_vec: NDArray[np.float32],
    phrases: Sequence[str],
) -> list[tuple[Row, Row]]:
    """The matched line items about the aspect (see :func:`compare`)."""
    if not pairs:
        return []
    items = [ra.item for ra, _ in pairs]
    sims = engine.embedder.embed(items) @ aspect_vec
    out = []
    for (ra, rb), item, sim in zip(pairs, items, sims, strict=True):
        named = _mentions(item, phrases) and not _NOT_ASPECT.search(item)
        if (named and sim >= ASPECT_ITEM_MIN) or sim >= ASPECT_ITEM_STRONG:
            out.append((ra, rb))
    return out
