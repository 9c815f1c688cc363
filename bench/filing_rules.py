"""Page and document recall of the filing rules, with the statement preference within a document
(the app) or across documents (as before issue 32), on one index.

Usage: DESKTOP_RAG_HOME=DIR python bench/filing_rules.py [--docs DIR] [--pages FILE]
[--questions FILE] [--explain]

Indexes ``--docs`` (default: the 20 docugami 10-Qs; an index in DIR is reused) and asks the
questions of ``--pages`` (default bench/data/docugami_pages.jsonl: gold pages, see
bench/filing_pages.py) and of ``--questions`` (default: all 195 docugami questions, gold
documents) with the default retriever, in these variants:

- ``app``: the statement preference reorders the chunks within each document once the documents
  are ranked (Retriever._match_statements);
- ``across documents``: ``statement_weight`` added to every statement chunk of the candidates,
  whatever its document (the rule before issue 32);
- ``no statement preference``: ``statement_weight`` 0.

Prints page hit@5 (a top-5 chunk on a gold page), document hit@5 and MRR@10 by document, and
retrieval p50 / p95 per variant; with ``--explain``, each question whose gold document the
across-documents variant loses from the top 5 and the documents whose statement chunks took
its places. Not a test.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT.parent / "shared" / "eval" / "docugami_sec10q"


def _across(self, kinds, ranked, score, rows):  # type: ignore[no-untyped-def]
    """The statement preference as it was: a bonus to every statement chunk, any document."""
    from desktop_rag.core.text.statements import statement_of_context

    w = self.config.statement_weight
    if not kinds or w <= 0.0:
        return ranked, score
    out = {c: score[c] + (w if statement_of_context(rows[c].context) in kinds else 0.0)
           for c in ranked}  # fmt: skip
    return sorted(ranked, key=lambda c: -out[c]), out


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=Path, default=SET / "docs")
    ap.add_argument("--pages", type=Path, default=ROOT / "bench" / "data" / "docugami_pages.jsonl")
    ap.add_argument("--questions", type=Path, default=SET / "questions.jsonl")
    ap.add_argument("--explain", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")

    from desktop_rag.core.engine import Engine
    from desktop_rag.core.evaluation import load_questions
    from desktop_rag.core.search.retrieval import Retriever

    engine = Engine()
    t0 = time.perf_counter()
    engine.index_all([args.docs])
    print(f"indexed in {time.perf_counter() - t0:.0f} s")
    paged = load_questions(args.pages)
    every = load_questions(args.questions)
    app = Retriever._match_statements
    variants = {
        "app (within a document)": (app, None),
        "across documents (before)": (_across, None),
        "no statement preference": (app, 0.0),
    }
    lost: dict[str, list[tuple[str, list[str]]]] = {}
    for name, (rule, weight) in variants.items():
        Retriever._match_statements = rule  # type: ignore[method-assign]
        retriever = engine.retriever()
        if weight is not None:
            retriever.config = replace(retriever.config, statement_weight=weight)
        for q in every[:5]:  # warm-up
            retriever.search(q.question, 10)
        page_hit = []
        for q in paged:
            hits = retriever.search(q.question, 10).hits[:5]
            page_hit.append(any((Path(h.path).name, h.page) in q.pages for h in hits))
        doc_hit, rr, ms = [], [], []
        for q in every:
            res = retriever.search(q.question, 10)
            ms.append(res.retrieval_ms)
            names = [Path(h.path).name for h in res.hits]
            doc_hit.append(any(n in q.docs for n in names[:5]))
            rr.append(next((1.0 / (i + 1) for i, n in enumerate(names) if n in q.docs), 0.0))
            if not doc_hit[-1]:
                lost.setdefault(name, []).append((q.question, names[:5]))
        n, m = len(page_hit), len(doc_hit)
        print(f"{name:<28} page hit@5 {sum(page_hit) / n:.3f} ({n})  doc hit@5 "
              f"{sum(doc_hit) / m:.3f} ({m})  MRR@10 {sum(rr) / m:.3f}  retrieval p50 "
              f"{_pct(ms, 50):.1f} ms p95 {_pct(ms, 95):.1f} ms")  # fmt: skip
    Retriever._match_statements = app  # type: ignore[method-assign]
    if args.explain:
        for name, cases in lost.items():
            print(f"\n{name}: gold document not in the top 5 for {len(cases)} questions")
            for question, names in cases:
                print(f"  {question}\n    top 5: {names}")
    print(f"load average {os.getloadavg()}")
    engine.close()


if __name__ == "__main__":
    main()
