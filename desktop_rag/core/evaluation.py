"""Retrieval evaluation on question sets with gold evidence (the format of ``shared/eval``).

Each question is ``{"id", "question", "answer", "evidence": [{"doc", "page", "text"}]}``. Metrics,
each over the questions whose evidence supports it:

- ``doc_hit@k``: a top-k chunk comes from a gold document;
- ``page_hit@k``: a top-k chunk is on a gold (document, page) (when pages are given);
- ``passage_hit@k``: a top-k chunk from a gold document contains the gold answer span or overlaps
  the gold passage (when the answer or passage text occurs in the document);
- ``mrr@10`` and ``ndcg@10``: by the finest relevance available (passage, else page, else document),
  binary gains, nDCG with the ideal ranking of all gold items (Järvelin & Kekäläinen 2002).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop_rag.core.types import Hit

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case with all whitespace runs collapsed to one space."""
    return _WS.sub(" ", text).strip().lower()


@dataclass(frozen=True)
class Question:
    """One evaluation question; ``answer`` None and no evidence means out-of-corpus."""

    id: str
    question: str
    answer: str | None
    evidence: tuple[dict[str, Any], ...]

    @property
    def docs(self) -> set[str]:
        """Gold document file names."""
        return {e["doc"] for e in self.evidence if e.get("doc")}

    @property
    def pages(self) -> set[tuple[str, int]]:
        """Gold (document, 1-based page) pairs."""
        return {(e["doc"], int(e["page"])) for e in self.evidence if e.get("doc") and e.get("page")}


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL question file (blank lines ignored)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(
                Question(
                    str(d["id"]), d["question"], d.get("answer"), tuple(d.get("evidence") or ())
                )
            )
    return out


def _overlaps_passage(chunk: str, passage: str) -> bool:
    """True if the chunk and the gold passage share a run of text (a 60-character window)."""
    c, p = normalise(chunk), normalise(passage)
    if not c or not p:
        return False
    if c in p or p in c:
        return True
    w = 60
    return any(c[i : i + w] in p for i in range(0, max(1, len(c) - w + 1), 20))


def _passage_relevant(hit: Hit, q: Question) -> bool:
    if hit.file_name not in q.docs:
        return False
    if q.answer and normalise(q.answer) in normalise(hit.text):
        return True
    return any(
        e.get("text") and e["doc"] == hit.file_name and _overlaps_passage(hit.text, e["text"])
        for e in q.evidence
    )


@dataclass
class RetrievalScores:
    """Accumulates per-question retrieval metrics for one mode."""

    k: int
    doc_hit: list[float] = field(default_factory=list)
    page_hit: list[float] = field(default_factory=list)
    passage_hit: list[float] = field(default_factory=list)
    rr: list[float] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def add(
        self, q: Question, hits: Sequence[Hit], passage_supported: bool, latency_ms: float
    ) -> None:
        """Score one question's ranked hits (at least 10 for MRR@10/nDCG@10)."""
        top = hits[: self.k]
        self.latency_ms.append(latency_ms)
        self.doc_hit.append(float(any(h.file_name in q.docs for h in top)))
        gold_pages = q.pages
        if gold_pages:
            self.page_hit.append(float(any((h.file_name, h.page) in gold_pages for h in top)))
        if passage_supported:
            self.passage_hit.append(float(any(_passage_relevant(h, q) for h in top)))
            rel = [_passage_relevant(h, q) for h in hits[:10]]
            n_ideal = 1
        elif gold_pages:
            rel = [(h.file_name, h.page) in gold_pages for h in hits[:10]]
            n_ideal = len(gold_pages)
        else:
            rel = [h.file_name in q.docs for h in hits[:10]]
            n_ideal = len(q.docs)
        first = next((i for i, r in enumerate(rel) if r), None)
        self.rr.append(0.0 if first is None else 1.0 / (first + 1))
        dcg = sum(1.0 / math.log2(i + 2) for i, r in enumerate(rel) if r)
        # Several overlapping chunks can hold the same passage: the ideal list has at least as
        # many relevant items as were retrieved, so nDCG stays within [0, 1].
        n_ideal = max(n_ideal, sum(rel), 1)
        idcg = sum(1.0 / math.log2(i + 2) for i in range(min(n_ideal, 10)))
        self.ndcg.append(dcg / idcg if idcg else 0.0)

    def summary(self) -> dict[str, float | None]:
        """Mean of each metric (None where no question supported it)."""

        def mean(xs: Iterable[float]) -> float | None:
            xs = list(xs)
            return round(sum(xs) / len(xs), 4) if xs else None

        def pct(xs: list[float], p: float) -> float | None:
            if not xs:
                return None
            return round(statistics.quantiles(xs, n=100)[int(p) - 1], 2) if len(xs) > 1 else xs[0]

        k = self.k
        return {
            f"doc_hit@{k}": mean(self.doc_hit),
            f"page_hit@{k}": mean(self.page_hit),
            f"passage_hit@{k}": mean(self.passage_hit),
            "mrr@10": mean(self.rr),
            "ndcg@10": mean(self.ndcg),
            "retrieval_ms_p50": pct(self.latency_ms, 50),
            "retrieval_ms_p95": pct(self.latency_ms, 95),
        }


def passage_supported(q: Question, doc_texts: dict[str, str]) -> bool:
    """Whether passage_hit can be judged: the answer or a gold passage occurs in a gold document."""
    for e in q.evidence:
        text = doc_texts.get(e.get("doc", ""), "")
        if not text:
            continue
        if q.answer and normalise(q.answer) in text:
            return True
        if e.get("text") and normalise(e["text"])[:200] in text:
            return True
    return False
