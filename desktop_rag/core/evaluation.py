"""Retrieval evaluation on question sets with gold evidence (the format of ``shared/eval``).

Each question is ``{"id", "question", "answer", "evidence": [{"doc", "page", "text"}]}``. Metrics,
each over the questions whose evidence supports it:

- ``doc_hit@k``: a top-k chunk comes from a gold document;
- ``page_hit@k``: a top-k chunk is on a gold (document, page) (when pages are given);
- ``passage_hit@k``: a top-k chunk from a gold document contains the gold answer span or overlaps
  the gold passage (when the answer or passage text occurs in the document);
- ``answer_hit@k``: a top-k chunk from a gold document contains the gold answer span (when the
  answer occurs verbatim in a gold document): the stricter "answer-span recall";
- ``mrr@10`` and ``ndcg@10``: by the finest relevance available (passage, else page, else document),
  binary gains, nDCG with the ideal ranking of all gold items (Järvelin & Kekäläinen 2002).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
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
    answer_hit: list[float] = field(default_factory=list)
    rr: list[float] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def add(
        self,
        q: Question,
        hits: Sequence[Hit],
        passage_supported: bool,
        latency_ms: float,
        answer_docs: Sequence[str] = (),
    ) -> None:
        """Score one question's ranked hits (at least 10 for MRR@10/nDCG@10).

        ``answer_docs`` are the normalised texts of the gold documents (for ``answer_hit``).
        """
        top = hits[: self.k]
        self.latency_ms.append(latency_ms)
        self.doc_hit.append(float(any(h.file_name in q.docs for h in top)))
        gold_pages = q.pages
        if gold_pages:
            self.page_hit.append(float(any((h.file_name, h.page) in gold_pages for h in top)))
        if q.answer and any(normalise(q.answer) in t for t in answer_docs):
            self.answer_hit.append(float(any(
                h.file_name in q.docs and normalise(q.answer) in normalise(h.text) for h in top
            )))  # fmt: skip
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

        k = self.k
        return {
            f"doc_hit@{k}": _mean(self.doc_hit),
            f"page_hit@{k}": _mean(self.page_hit),
            f"passage_hit@{k}": _mean(self.passage_hit),
            f"answer_hit@{k}": _mean(self.answer_hit),
            "mrr@10": _mean(self.rr),
            "ndcg@10": _mean(self.ndcg),
            "retrieval_ms_p50": percentile(self.latency_ms, 50),
            "retrieval_ms_p95": percentile(self.latency_ms, 95),
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


_NUM = re.compile(r"(?<![\w.])[-+]?\$?\d[\d,]*(?:\.\d+)?%?")


def _numbers(text: str) -> list[float]:
    out = []
    for m in _NUM.findall(text):
        raw = m.replace("$", "").replace(",", "").replace("%", "").lstrip("+")
        try:
            out.append(float(raw))
        except ValueError:
            continue
    return out


MAX_GRADED_ANSWER_WORDS = 40


def answer_correct(predicted: str, gold: str) -> bool:
    """Normalised containment of the gold answer, or every gold figure present within 1%.

    Figures are compared as numbers ("81,797" = "81797"; 0.5% relative tolerance either way of
    rounding). Only short gold answers (at most 40 words) are graded this way; see :func:`run_eval`.
    """
    p, g = normalise(predicted), normalise(gold)
    if g and g in p:
        return True
    gold_nums = _numbers(gold)
    if not gold_nums:
        return False
    pred_nums = _numbers(predicted)
    return all(any(abs(a - b) <= 0.01 * max(abs(a), 1e-9) for b in pred_nums) for a in gold_nums)


_SCALED = (1.0, 1e3, 1e6, 1e9, 1e-3, 1e-6, 1e-9)


def _backed(value: float, source_numbers: Sequence[float]) -> bool:
    """A number within 1% of a source number, also across thousand/million/billion scales."""
    return any(
        abs(value * f - b) <= 0.01 * max(abs(b), 1e-9) for b in source_numbers for f in _SCALED
    )


def unmarked_unsupported(answer: Any) -> tuple[int, int]:
    """``(figures shown, figures shown unmarked that no cited source holds)`` for one answer
    (counts of :func:`unmarked_unsupported_figures`)."""
    shown, bad = unmarked_unsupported_figures(answer)
    return shown, len(bad)


def unmarked_unsupported_figures(answer: Any) -> tuple[int, list[str]]:
    """``(figures shown, the figures shown unmarked that no cited source holds)``.

    An independent check of the claim check: every number of the shown model answer (by this
    module's own number pattern; not list item numbers or the digits of a name such as
    "HIV-1") must be within 1% of a number in a source the answer cites
    (any scale), or lie inside a span the claim check marked unsupported. A failed answer is
    not shown, so it counts (0, []); quoted evidence is the sources' own text.
    """
    from desktop_rag.core.search.claims import is_list_marker

    if answer.generated is None or answer.grounded is False or answer.abstained:
        return 0, []
    text = answer.generated
    cited = [c.hit for c in answer.citations if c.cited]
    numbers = [x for h in cited for x in _numbers(f"{h.context} {h.text}")]
    marked = [(c.start, c.end) for c in answer.checks if not c.supported]
    shown, bad = 0, []
    markers = [(c.start(), c.end()) for c in re.finditer(r"\[[\d\s,;]+\]", text)]
    for m in _NUM.finditer(text):
        if any(a <= m.start() < b for a, b in markers):  # a citation marker: "[1]", "[3, 1]"
            continue
        if re.match(r"[A-Za-z]-", text[max(0, m.start() - 2) : m.start()]):
            continue  # part of a name ("HIV-1"), checked as a name
        if is_list_marker(text, m.start(), m.end()):
            continue
        values = _numbers(m.group(0))
        if not values:
            continue
        shown += 1
        inside = any(a <= m.start() and m.end() <= b for a, b in marked)
        if not inside and not _backed(values[0], numbers):
            bad.append(m.group(0))
    return shown, bad


def _graded(q: Question) -> bool:
    return bool(q.answer) and len((q.answer or "").split()) <= MAX_GRADED_ANSWER_WORDS


@dataclass
class AnswerScores:
    """Per-answer metrics of a ``--generate`` run.

    ``correct`` grades what a reader is shown by default (:func:`~desktop_rag.core.search.claims.
    shown_text`: the quoted evidence and the checked answer), ``generated_correct`` the model's
    text alone, ``evidence_correct`` the quoted sentences alone. ``records`` keeps one dict per
    answerable question (id, question, gold, shown text, unmarked unsupported figures, the
    answer's JSON) for ``eval --out``.
    """

    correct: list[float] = field(default_factory=list)
    generated_correct: list[float] = field(default_factory=list)
    evidence_correct: list[float] = field(default_factory=list)
    shown_words: list[float] = field(default_factory=list)
    with_unsupported_figure: list[float] = field(default_factory=list)
    failed_check: list[float] = field(default_factory=list)
    figures_shown: int = 0
    figures_unmarked_unsupported: int = 0
    citation_precision: list[float] = field(default_factory=list)
    cites: list[float] = field(default_factory=list)
    abstained: list[float] = field(default_factory=list)
    ooc_abstained: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def add(self, q: Question, answer: Any, out_of_corpus: bool) -> None:
        """Score one :class:`~desktop_rag.core.types.Answer`."""
        from desktop_rag.core.search.claims import shown_text
        from desktop_rag.core.search.selection import quote_evidence

        if out_of_corpus:
            self.ooc_abstained.append(float(answer.abstained))
            return
        self.abstained.append(float(answer.abstained))
        shown = shown_text(answer)
        if answer.timings.ttft_s:
            self.ttft_s.append(answer.timings.ttft_s)
            self.tokens_per_s.append(answer.timings.tokens_per_s)
        if answer.generated is not None and not answer.abstained:
            figs = [c for c in answer.checks if c.kind == "figure"]
            self.with_unsupported_figure.append(float(any(not c.supported for c in figs)))
            self.failed_check.append(float(answer.grounded is False))
        n_shown, bad = unmarked_unsupported_figures(answer)
        self.figures_shown += n_shown
        self.figures_unmarked_unsupported += len(bad)
        record = {"id": q.id, "question": q.question, "gold": q.answer, "shown": shown,
                  "unmarked_unsupported": bad, "answer": answer.to_json()}  # fmt: skip
        self.records.append(record)
        if _graded(q):
            assert q.answer is not None
            record["correct"] = answer_correct(shown, q.answer)
            self.correct.append(float(record["correct"]))
            self.shown_words.append(float(len(shown.split())))
            self.evidence_correct.append(
                float(answer_correct(quote_evidence(answer.evidence), q.answer))
            )
            if answer.generated is not None:
                self.generated_correct.append(float(answer_correct(answer.generated, q.answer)))
        if answer.abstained:
            return
        cited = [c for c in answer.citations if c.cited]
        self.cites.append(float(bool(cited)))
        if cited:
            pages = q.pages

            def good(c: Any) -> bool:
                if c.hit.file_name not in q.docs:
                    return False
                return not pages or (c.hit.file_name, c.hit.page) in pages

            self.citation_precision.append(sum(good(c) for c in cited) / len(cited))

    def summary(self) -> dict[str, float | None]:
        """Means and latency percentiles."""

        return {
            "correct": _mean(self.correct),
            "generated_correct": _mean(self.generated_correct),
            "evidence_correct": _mean(self.evidence_correct),
            "shown_words": _mean(self.shown_words),
            "with_unsupported_figure": _mean(self.with_unsupported_figure),
            "failed_check": _mean(self.failed_check),
            "figures_shown": self.figures_shown,
            "figures_unmarked_unsupported": self.figures_unmarked_unsupported,
            "citation_precision": _mean(self.citation_precision),
            "answers_citing": _mean(self.cites),
            "abstention_rate": _mean(self.abstained),
            "ooc_abstention_rate": _mean(self.ooc_abstained),
            "ttft_s_p50": percentile(self.ttft_s, 50),
            "ttft_s_p95": percentile(self.ttft_s, 95),
            "tokens_per_s_p50": percentile(self.tokens_per_s, 50),
        }


RETRIEVAL_MODES = {
    "default": "hybrid",
    "hybrid": "hybrid",
    "fused": "fused",
    "dense": "dense",
    "bm25": "bm25",
    "rrf": "rrf",
}


def run_eval(
    engine: Any,
    docs: Path,
    questions: list[Question],
    *,
    k: int = 5,
    modes: Sequence[str] = ("default",),
    generate: bool = False,
    limit: int | None = None,
    ooc: Sequence[Question] = (),
    progress: Any = None,
) -> dict[str, Any]:
    """Index ``docs`` (incrementally) and evaluate ``questions`` against that collection only.

    ``ooc`` are out-of-corpus questions (e.g. another set's), whose right answer is abstention.
    With ``generate``, the first ``limit`` answerable questions (all if None) and the first
    ``limit`` out-of-corpus ones are answered by the LLM. ``progress(done, total)`` is called as
    questions finish. Returns the report (see the README for its keys).

    Raises:
        UserError: a bad mode name (and anything indexing raises).
    """
    from desktop_rag.core.errors import UserError
    from desktop_rag.core.search.selection import quote_evidence, select_evidence

    for m in modes:
        if m not in RETRIEVAL_MODES:
            raise UserError(
                f"unknown retrieval mode {m!r}", hint=f"choose from {', '.join(RETRIEVAL_MODES)}"
            )
    summary = engine.index_all([docs])
    root = str(Path(docs).expanduser().resolve())
    cid = next(c.id for c in engine.store.collections() if c.root == root)
    texts = collection_texts(engine, cid)
    supported = {q.id: passage_supported(q, texts) for q in questions}
    retriever = engine.retriever()
    report: dict[str, Any] = {"questions": len(questions), "k": k, "docs": root,
                              "indexed_files": len(texts), "problems": len(summary.problems),
                              "retrieval": {}}  # fmt: skip
    total = len(modes) * len(questions) + (len(ooc) if ooc else 0)
    done = 0
    latency: list[float] = []
    abstain_answerable: list[float] = []
    evidence_ok: list[float] = []
    evidence_words: list[float] = []
    for name in modes:
        scores = RetrievalScores(k)
        for q in questions:
            res = retriever.search(
                q.question, max(10, k), mode=RETRIEVAL_MODES[name], collections=[cid]
            )
            gold_texts = [texts.get(d, "") for d in q.docs]
            scores.add(q, res.hits, supported[q.id], res.retrieval_ms, gold_texts)
            if name == modes[0]:
                latency.append(res.retrieval_ms)
                if q.answer:
                    relevant = engine.is_relevant(res, q.question)
                    abstain_answerable.append(float(not relevant))
                    if _graded(q):
                        quotes = ""
                        if relevant:
                            top = replace(res, hits=res.hits[: engine.settings.top_k])
                            found = select_evidence(engine.sentence_scores(q.question, top),
                                                    engine.settings.evidence_sentences)  # fmt: skip
                            quotes = quote_evidence(found)
                        evidence_ok.append(float(answer_correct(quotes, q.answer)))
                        evidence_words.append(float(len(quotes.split())))
            done += 1
            if progress:
                progress(done, total)
        report["retrieval"][name] = scores.summary()
    abstain_ooc: list[float] = []
    for q in ooc:
        res = retriever.search(q.question, k, collections=[cid])
        abstain_ooc.append(float(not engine.is_relevant(res, q.question)))
        done += 1
        if progress:
            progress(done, total)
    if evidence_ok:
        report["evidence"] = {"graded": len(evidence_ok), "correct": _mean(evidence_ok),
                              "words": _mean(evidence_words)}  # fmt: skip
    thresholds = engine.thresholds()
    report["abstention"] = {
        "answerable_refused": _mean(abstain_answerable),
        "out_of_corpus_abstained": _mean(abstain_ooc),
        "out_of_corpus_questions": len(ooc),
        "threshold": thresholds.min_relevance,
        "threshold_lexical": thresholds.min_relevance_lexical,
        "min_term_coverage": thresholds.min_term_coverage,
    }
    report["latency"] = {
        "retrieval_ms_p50": percentile(latency, 50),
        "retrieval_ms_p95": percentile(latency, 95),
        "ttft_s_p50": None,
    }
    if generate:
        answers = AnswerScores()
        answerable = [q for q in questions if q.answer][:limit]
        outside = list(ooc)[:limit]
        for i, (q, is_ooc) in enumerate(
            [(q, False) for q in answerable] + [(q, True) for q in outside]
        ):
            answers.add(q, engine.answer(q.question, collections=[cid]), is_ooc)
            if progress:
                progress(i + 1, len(answerable) + len(outside))
        a = answers.summary()
        report["answers"] = {key: a[key] for key in ANSWER_KEYS}
        report["answers"]["answer_style"] = engine.settings.answer_style
        report["answers"]["generated"] = len(answerable) + len(outside)
        report["answer_records"] = answers.records  # --out only: one per answered question
        report["latency"].update({"ttft_s_p50": a["ttft_s_p50"], "ttft_s_p95": a["ttft_s_p95"],
                                  "tokens_per_s_p50": a["tokens_per_s_p50"]})  # fmt: skip
    return report


ANSWER_KEYS = ("correct", "generated_correct", "evidence_correct", "shown_words",
               "with_unsupported_figure", "failed_check", "figures_shown",
               "figures_unmarked_unsupported", "citation_precision", "answers_citing",
               "abstention_rate", "ooc_abstention_rate")  # fmt: skip


def _mean(xs: Iterable[float]) -> float | None:
    """Mean rounded to 4 places, or None for no values."""
    xs = list(xs)
    return round(sum(xs) / len(xs), 4) if xs else None


def collection_texts(engine: Any, collection_id: int) -> dict[str, str]:
    """The text of each file of the collection ``collection_id`` of ``engine`` (an
    :class:`~desktop_rag.core.engine.Engine`), its pages joined in order and
    :func:`normalise`-d, by file name: what answer-span support is checked against."""
    texts: dict[str, str] = {}
    for f in engine.store.files(collection_id):
        rows = engine.store.con.execute(
            "SELECT text FROM pages WHERE file_id=? ORDER BY page", (f.id,)
        )
        texts[Path(f.path).name] = normalise(" ".join(r[0] for r in rows))
    return texts


def percentile(xs: list[float], p: int) -> float | None:
    """The ``p``-th percentile (1-99) of ``xs`` rounded to 3 places (``statistics.quantiles``,
    exclusive method), the value itself for one value, None for no values."""
    if not xs:
        return None
    return round(statistics.quantiles(xs, n=100)[p - 1], 3) if len(xs) > 1 else round(xs[0], 3)


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned text tables."""
    k = report["k"]
    cols = [f"doc_hit@{k}", f"page_hit@{k}", f"passage_hit@{k}", f"answer_hit@{k}", "mrr@10", "ndcg@10",
            "retrieval_ms_p50", "retrieval_ms_p95"]  # fmt: skip
    lines = [
        f"{report['questions']} questions, {report['indexed_files']} documents ({report['docs']})",
        "",
    ]
    lines.append(f"{'mode':10}" + "".join(f"{c:>17}" for c in cols))
    for mode, scores in report["retrieval"].items():
        cells = "".join(f"{'-' if scores.get(c) is None else scores[c]:>17}" for c in cols)
        lines.append(f"{mode:10}{cells}")
    ab = report["abstention"]
    lines += ["", f"abstention (threshold {ab['threshold']}): answerable refused {ab['answerable_refused']}, "
              f"out-of-corpus abstained {ab['out_of_corpus_abstained']} of {ab['out_of_corpus_questions']}"]  # fmt: skip
    if "answers" in report:
        a = report["answers"]
        lines += ["", f"answers ({a['generated']} answered, style {a.get('answer_style')}): "
                  + ", ".join(f"{key} {a.get(key)}" for key in ANSWER_KEYS)]  # fmt: skip
    if "evidence" in report:
        e = report["evidence"]
        lines += ["", f"evidence sentences alone ({e['graded']} graded questions, no model): "
                  f"correct {e['correct']}, words {e['words']}"]  # fmt: skip
    lat = report["latency"]
    lines.append("latency: " + ", ".join(f"{key} {v}" for key, v in lat.items() if v is not None))
    return "\n".join(lines)
