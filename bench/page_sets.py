"""Page hit@5, doc hit@5 and MRR on every page-level gold set, and covidqa answer-span hit@5.

Usage: python bench/page_sets.py [--sets NAME ...] [--cache DIR] [--code HASH] [--filings DIR]
                                 [--out FILE] [--baseline FILE] [--show-misses]

One table, one row a set (issue 32: measured on more than one set). The sets:

* ``docugami_figures``: ``bench/data/docugami_pages.jsonl``, 110 docugami 10-Q questions whose
  gold pages are where their answers' figures are printed (``bench/filing_pages.py``);
* ``docugami_cited``: ``bench/data/docugami_cited_pages.jsonl``, docugami 10-Q questions whose
  gold pages are the statement or note a reader would cite, found by reading the pages (each
  line says how in ``how``);
* ``docugami_docs``: all 195 docugami questions, document-level gold only (doc hit@5 and MRR by
  document, as in the issue 16 table);
* ``filings_10k`` and ``filings_10q``: ``bench/data/filings_pages.jsonl``, questions of our own
  on Lyft's and Uber's 2021 10-Ks and on Uber's 2022 10-Qs, searched in one collection of the
  five filings (``bench/data/filings/``, or ``--filings``), pages found by reading;
* ``covidqa``: the shared covidqa set (673 questions, text files, no pages): doc hit@5, MRR by
  passage and answer-span hit@5 (a top-5 chunk of the gold document holds the answer span).

Every documents folder is indexed once into ``CACHE/<code>/<folder>`` (``--cache``, default
``/tmp/page-sets``), where ``<code>`` is a hash of the ``desktop_rag`` sources imported: a change
to the app's code gets a fresh index, the same code reuses it (docugami takes about 4 minutes to
index on two free cores, covidqa and the filings about as long). ``--code HASH`` reuses the index
of the run that printed that hash instead, for a change that leaves extraction, chunking and
indexing alone: the indexer re-extracts a file only when the file, its extractor's version or
the chunker's settings change (``Indexer.pipeline``), so an index reused across an ingest change
that bumps none of them is stale. Retrieval is the app's default mode,
top 10 (MRR@10) of which the first 5 count for hit@5, searched in that folder's collection only;
the metrics are :class:`desktop_rag.core.evaluation.RetrievalScores`, as ``desktop-rag eval``
computes them (without its abstention and evidence passes). ``--out`` writes every question's
hits as JSON lines (set, id, page_hit, doc_hit, rr, top 5 as [file, page]); ``--baseline
FILE`` (an earlier run's ``--out``) lists, per set, the questions that became or stopped being
page hits (document hits for the sets without pages); ``--show-misses`` prints the page misses.
Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EVAL = ROOT.parent / "shared" / "eval"
DATA = ROOT / "bench" / "data"
K = 5


@dataclass(frozen=True)
class PageSet:
    name: str
    docs: Path
    questions: Path
    kind: str
    ids: tuple[str, ...] = ()  # only the questions whose id starts with one of these


def page_sets(filings: Path) -> list[PageSet]:
    """The sets measured, in table order."""
    docugami = EVAL / "docugami_sec10q" / "docs"
    return [
        PageSet("docugami_figures", docugami, DATA / "docugami_pages.jsonl",
                "10-Q, pages from answer figures"),
        PageSet("docugami_cited", docugami, DATA / "docugami_cited_pages.jsonl",
                "10-Q, pages a reader cites"),
        PageSet("filings_10k", filings, DATA / "filings_pages.jsonl",
                "10-K (Lyft, Uber 2021), pages a reader cites", ("lyft10k", "uber10k")),
        PageSet("filings_10q", filings, DATA / "filings_pages.jsonl",
                "10-Q (Uber 2022), pages a reader cites", ("uber10q",)),
        PageSet("docugami_docs", docugami, EVAL / "docugami_sec10q" / "questions.jsonl",
                "10-Q, documents only"),
        PageSet("covidqa", EVAL / "covidqa" / "docs", EVAL / "covidqa" / "questions.jsonl",
                "papers (text), answer spans"),
    ]  # fmt: skip


def code_hash() -> str:
    """A short hash of the ``desktop_rag`` sources (which index a run may reuse)."""
    h = hashlib.sha256()
    pkg = ROOT / "desktop_rag"
    for p in sorted(pkg.rglob("*.py")):
        h.update(str(p.relative_to(pkg)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def measure(s: PageSet, cache: Path, show_misses: bool) -> tuple[dict[str, Any], list[dict]]:
    """Index ``s.docs`` (reusing the cached index) and score its questions."""
    home = cache / s.docs.resolve().as_posix().strip("/").replace("/", "_")
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DESKTOP_RAG_HOME"] = str(home)
    from desktop_rag.core.engine import Engine
    from desktop_rag.core.evaluation import (
        RETRIEVAL_MODES,
        RetrievalScores,
        collection_texts,
        load_questions,
        passage_supported,
    )
    from desktop_rag.core.paths import app_paths
    from desktop_rag.core.settings import Settings

    engine = Engine(app_paths(), Settings())
    try:
        t0 = time.perf_counter()
        summary = engine.index_all([s.docs])
        index_s = time.perf_counter() - t0
        root = str(s.docs.expanduser().resolve())
        cid = next(c.id for c in engine.store.collections() if c.root == root)
        texts = collection_texts(engine, cid)
        questions = [q for q in load_questions(s.questions) if q.id.startswith(s.ids or "")]
        retriever = engine.retriever()
        scores = RetrievalScores(K)
        records = []
        for q in questions:
            res = retriever.search(
                q.question,
                max(10, K),
                mode=cast(Any, RETRIEVAL_MODES["default"]),
                collections=[cid],
            )
            supported = passage_supported(q, texts)
            n_rr = len(scores.rr)
            scores.add(q, res.hits, supported, res.retrieval_ms, [texts.get(d, "") for d in q.docs])
            top = [[h.file_name, h.page] for h in res.hits[:K]]
            page_hit = any((f, p) in q.pages for f, p in top) if q.pages else None
            records.append({"set": s.name, "id": q.id, "page_hit": page_hit,
                            "doc_hit": any(f in q.docs for f, _ in top),
                            "rr": scores.rr[n_rr], "top": top})  # fmt: skip
            if show_misses and page_hit is False:
                gold = sorted(q.pages)
                print(f"  miss {q.id}: {q.question[:90]!r}\n    gold {gold}\n    top  {top}")
    finally:
        engine.close()
    m = scores.summary()
    row = {
        "set": s.name,
        "kind": s.kind,
        "questions": len(questions),
        "with_pages": len(scores.page_hit),
        "page_hit@5": m[f"page_hit@{K}"],
        "doc_hit@5": m[f"doc_hit@{K}"],
        "mrr@10": m["mrr@10"],
        "answer_hit@5": m[f"answer_hit@{K}"],
        "answer_questions": len(scores.answer_hit),
        "index_s": round(index_s, 1),
        "indexed_new": summary.indexed,
    }
    return row, records


def fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def main() -> None:
    sets_default = [s.name for s in page_sets(DATA / "filings")]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="*", default=sets_default, choices=sets_default)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/page-sets"))
    ap.add_argument("--filings", type=Path, default=DATA / "filings",
                    help="folder of the Lyft/Uber 10-K and 10-Q PDFs")  # fmt: skip
    ap.add_argument("--code", help="reuse the index built for this code hash (see the docstring)")
    ap.add_argument("--out", type=Path, help="write every question's hits here (JSON lines)")
    ap.add_argument("--baseline", type=Path, help="an earlier run's --out: list what changed")
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()
    cache = args.cache / (args.code or code_hash())
    print(f"code {cache.name}, index cache {cache}, load {os.getloadavg()[0]:.1f}")
    rows, records = [], []
    for s in page_sets(args.filings):
        if s.name not in args.sets:
            continue
        row, recs = measure(s, cache, args.show_misses)
        rows.append(row)
        records += recs
        print(f"{s.name}: indexed {row['indexed_new']} new files in {row['index_s']} s")
    print("\n| set | kind | questions | page hit@5 | doc hit@5 | MRR@10 | answer-span hit@5 |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        n = f"{r['questions']}" + (f" ({r['answer_questions']} spans)" if r["answer_hit@5"] else "")
        print(f"| {r['set']} | {r['kind']} | {n} | {fmt(r['page_hit@5'])} | {fmt(r['doc_hit@5'])} "
              f"| {fmt(r['mrr@10'])} | {fmt(r['answer_hit@5'])} |")  # fmt: skip
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in records))
        print(f"\nper-question hits -> {args.out}")
    if args.baseline:
        compare(records, args.baseline)


def compare(records: list[dict], baseline: Path) -> None:
    """Print, per set, the questions whose page hit (doc hit where no pages) changed."""
    before = {}
    for line in baseline.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            before[(r["set"], r["id"])] = r
    print(f"\nchanges against {baseline} (+ now a hit, - no longer a hit):")
    for name in dict.fromkeys(r["set"] for r in records):
        key = (
            "page_hit"
            if any(r["page_hit"] is not None for r in records if r["set"] == name)
            else "doc_hit"
        )
        gained: list[str] = []
        lost: list[str] = []
        for r in records:
            b = before.get((name, r["id"])) if r["set"] == name else None
            if b is not None and bool(b[key]) != bool(r[key]):
                (gained if r[key] else lost).append(r["id"])
        print(f"  {name} ({key}): +{len(gained)} -{len(lost)}"
              + (f"  + {' '.join(gained)}" if gained else "")
              + (f"  - {' '.join(lost)}" if lost else ""))  # fmt: skip


if __name__ == "__main__":
    main()
