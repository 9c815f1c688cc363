"""Where retrieval time goes: per-stage milliseconds of hybrid search over a question set.

Usage: DESKTOP_RAG_HOME=DIR python bench/retrieval_stages.py [--docs DIR] [--questions FILE]
[--repeat N] [--profile] [--no-wait]

Indexes ``--docs`` (default: the 20 docugami 10-Qs; an existing index in DIR is reused), then
asks every question ``--repeat`` times (the first pass warms the caches and is not counted) with
the app's default retriever, timing each stage with ``time.perf_counter`` by wrapping the
retriever's and the store's methods (whichever of them this version of the code has). Prints
p50 / p95 of the whole search (``RetrievalResult.retrieval_ms``) and, per stage, its mean and
p95 milliseconds per question and share of the total; with ``--profile``, the top 25 functions
of a cProfile run by cumulative time. Prints the load average before and after (2 shared cores:
compare only runs made side by side). The ONNX question encoder is waited for (a first start in a
fresh data directory exports it in a child process and embeds questions with torch meanwhile,
see ``Embedder.embed_query``); ``--no-wait`` measures that first start as it is. Also prints how
many candidates a search scores (dense, lexical, statement chunks added). Not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT.parent / "shared" / "eval" / "docugami_sec10q"
STAGES = {
    "Retriever": ("_dense", "_statement_candidates", "_fuse", "_rerank", "_match_statements",
                  "_match_periods", "_match_titles", "_spread_pages"),
    "Store": ("chunks_by_id", "statement_chunks", "embeddings_for"),
    "LexicalSearch": ("document_frequencies", "lexical_candidates", "fts_stats"),
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=Path, default=SET / "docs")
    ap.add_argument("--questions", type=Path, default=SET / "questions.jsonl")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for the ONNX encoder")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")

    from desktop_rag.core.engine import Engine
    from desktop_rag.core.evaluation import percentile
    from desktop_rag.core.index import lexical as lexical_mod
    from desktop_rag.core.index import store as store_mod
    from desktop_rag.core.search import retrieval as retrieval_mod

    spent: dict[str, float] = defaultdict(float)
    per_q: dict[str, list[float]] = defaultdict(list)

    def timed(cls: type, name: str) -> None:
        fn = getattr(cls, name, None)
        if fn is None:
            return

        def wrapper(*a, **kw):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += (time.perf_counter() - t) * 1000.0

        setattr(cls, name, wrapper)

    for name in STAGES["Retriever"]:
        timed(retrieval_mod.Retriever, name)
    for name in STAGES["Store"]:
        timed(store_mod.Store, name)
    for name in STAGES["LexicalSearch"]:
        timed(lexical_mod.LexicalSearch, name)
    engine = Engine()
    engine.index_all([args.docs])
    if not args.no_wait:
        t = time.perf_counter()
        ready = engine.embedder.wait_query_encoder()
        print(f"ONNX question encoder ready: {ready} (waited {time.perf_counter() - t:.1f} s)")
    questions = [json.loads(line)["question"] for line in args.questions.open()]
    added: list[int] = []
    cands: list[int] = []
    orig_fuse = retrieval_mod.Retriever._fuse

    def fuse(self, terms, df, qvec, dense_of, bm25_of, rows, extra=()):  # type: ignore[no-untyped-def]
        added.append(len(extra))
        cands.append(len({*dense_of, *bm25_of, *extra}))
        return orig_fuse(self, terms, df, qvec, dense_of, bm25_of, rows, extra)

    retrieval_mod.Retriever._fuse = fuse  # type: ignore[method-assign]
    retriever = engine.retriever()
    embedder = engine.embedder
    orig_embed = embedder.embed_query

    def embed_query(q: str):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return orig_embed(q)
        finally:
            spent["embed_query"] += (time.perf_counter() - t) * 1000.0

    embedder.embed_query = embed_query  # type: ignore[method-assign]
    totals: list[float] = []
    prof = cProfile.Profile() if args.profile else None
    for r in range(args.repeat):
        for q in questions:
            spent.clear()
            added.clear()
            cands.clear()
            if prof is not None and r == args.repeat - 1:
                prof.enable()
            res = retriever.search(q, 10)
            if prof is not None:
                prof.disable()
            if r == 0:
                continue  # warm-up pass
            totals.append(res.retrieval_ms)
            for name, ms in spent.items():
                per_q[name].append(ms)
            per_q["statement chunks added"].append(float(sum(added)))
            per_q["candidates"].append(float(sum(cands)))
    n = len(totals)
    print(f"{n} searches over {engine.store.chunk_count()} chunks: retrieval p50 "
          f"{percentile(totals, 50):.1f} ms, p95 {percentile(totals, 95):.1f} ms, mean {sum(totals) / n:.1f}")  # fmt: skip
    mean_total = sum(totals) / n
    counts = {k: per_q.pop(k) for k in ("candidates", "statement chunks added")}
    for name, xs in counts.items():
        print(f"{name}: mean {sum(xs) / n:.0f}, p95 {percentile(xs, 95):.0f}, max {max(xs):.0f}")
    print(f"{'stage':<24}{'mean ms':>9}{'p95 ms':>9}{'share':>8}")
    for name, xs in sorted(per_q.items(), key=lambda kv: -sum(kv[1])):
        mean = sum(xs) / n
        print(f"{name:<24}{mean:>9.2f}{percentile(xs + [0.0] * (n - len(xs)), 95):>9.2f}"
              f"{mean / mean_total:>8.0%}")  # fmt: skip
    if prof is not None:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    print(f"load average {os.getloadavg()}")
    engine.close()


if __name__ == "__main__":
    main()
