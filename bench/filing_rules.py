"""Page and document recall of the statement preference, capped per document (the app) or not
(as before issue 32), on one index.

Usage: DESKTOP_RAG_HOME=DIR python bench/filing_rules.py [--docs DIR] [--pages FILE]
[--questions FILE] [--explain] [--only NAME ...] [--pages-only]

Indexes ``--docs`` (default: the 20 docugami 10-Qs; an index in DIR is reused) and asks the
questions of ``--pages`` (default bench/data/docugami_pages.jsonl: gold pages, see
bench/filing_pages.py) and of ``--questions`` (default: all 195 docugami questions, gold
documents) with the default retriever, in these variants:

- ``app``: the statement preference lifts one statement chunk a document at most (the first in
  the ranking; ``RetrievalConfig.statement_per_file`` 1);
- ``2 chunks a document``: ``statement_per_file`` 2;
- ``uncapped (before)``: every statement chunk of the candidates lifted (the rule before issue 32);
- ``within each document``: the documents keep their places, the bonus only reorders the chunks
  of each document;
- ``no statement preference``: ``statement_weight`` 0.

Prints page hit@5 (a top-5 chunk on a gold page), document hit@5 and @1, how many of the top 5
are statement chunks of documents that are not gold (what pushes the right document out), MRR@10
by document, and retrieval p50 / p95 per variant; with ``--explain``, each question whose gold document the
variant loses from the top 5, with the top 5 documents. Not a test.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT.parent / "shared" / "eval" / "docugami_sec10q"


def _within(self, kinds, ranked, score, rows):  # type: ignore[no-untyped-def]
    """The statement preference within each document: the documents keep their places in
    ``ranked``, each place taken by its document's best chunk once the bonus is added."""
    from desktop_rag.core.text.filings import is_financial
    from desktop_rag.core.text.statements import statement_of_context

    w = self.config.statement_weight
    if not kinds or w <= 0.0:
        return ranked, score
    out = {c: score[c] + (w if is_financial(rows[c].genre)
                          and statement_of_context(rows[c].context) in kinds else 0.0)
           for c in ranked}  # fmt: skip
    by_doc: dict[int, list[int]] = {}
    for c in sorted(ranked, key=lambda c: -out[c]):
        by_doc.setdefault(rows[c].file_id, []).append(c)
    taken = dict.fromkeys(by_doc, 0)
    new = []
    for c in ranked:
        f = rows[c].file_id
        new.append(by_doc[f][taken[f]])
        taken[f] += 1
    return new, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=Path, default=SET / "docs")
    ap.add_argument("--pages", type=Path, default=ROOT / "bench" / "data" / "docugami_pages.jsonl")
    ap.add_argument("--questions", type=Path, default=SET / "questions.jsonl")
    ap.add_argument("--explain", action="store_true")
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    ap.add_argument("--pages-only", action="store_true", help="no document-level questions")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")

    from desktop_rag.core.engine import Engine
    from desktop_rag.core.evaluation import load_questions, percentile
    from desktop_rag.core.search.retrieval import Retriever
    from desktop_rag.core.text.statements import statement_of_context

    engine = Engine()
    t0 = time.perf_counter()
    engine.index_all([args.docs])
    print(f"indexed in {time.perf_counter() - t0:.0f} s")
    paged = load_questions(args.pages)
    every = load_questions(args.questions)
    app = Retriever._match_statements
    variants = {
        "app (1 chunk a document)": (app, {}),
        "2 chunks a document": (app, {"statement_per_file": 2}),
        "uncapped (before)": (app, {"statement_per_file": 0}),
        "within each document": (_within, {}),
        "no statement preference": (app, {"statement_weight": 0.0}),
    }
    lost: dict[str, list[tuple[str, list[str]]]] = {}
    if args.only:
        variants = {k: v for k, v in variants.items() if k in args.only}
    for name, (rule, change) in variants.items():
        Retriever._match_statements = rule  # type: ignore[method-assign]
        retriever = engine.retriever()
        retriever.config = replace(retriever.config, **change)
        for q in every[:5]:  # warm-up
            retriever.search(q.question, 10)
        page_hit = []
        for q in paged:
            hits = retriever.search(q.question, 10).hits[:5]
            page_hit.append(any((Path(h.path).name, h.page) in q.pages for h in hits))
        doc_hit, doc_hit1, foreign, rr, ms = [], [], [], [], []
        for q in every if not args.pages_only else paged:
            res = retriever.search(q.question, 10)
            ms.append(res.retrieval_ms)
            names = [Path(h.path).name for h in res.hits]
            doc_hit.append(any(n in q.docs for n in names[:5]))
            doc_hit1.append(bool(names) and names[0] in q.docs)
            foreign.append(sum(Path(h.path).name not in q.docs
                               and statement_of_context(h.context) is not None
                               for h in res.hits[:5]))  # fmt: skip
            rr.append(next((1.0 / (i + 1) for i, n in enumerate(names) if n in q.docs), 0.0))
            if not doc_hit[-1]:
                lost.setdefault(name, []).append((q.question, names[:5]))
        n, m = len(page_hit), len(doc_hit)
        print(f"{name:<28} page hit@5 {sum(page_hit) / n:.3f} ({n})  doc hit@5 "
              f"{sum(doc_hit) / m:.3f} ({m})  doc hit@1 {sum(doc_hit1) / m:.3f}  other "
              f"documents' statement chunks in the top 5 {sum(foreign) / m:.2f}  "
              f"MRR@10 {sum(rr) / m:.3f}  retrieval p50 "
              f"{percentile(ms, 50):.1f} ms p95 {percentile(ms, 95):.1f} ms")  # fmt: skip
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
