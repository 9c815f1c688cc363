"""Retrieval quality on a shared eval set, for several modes and fusion weights (prints a table).

Usage: python bench/eval_retrieval.py DOCS QUESTIONS [--weights 0.2,0.3,...] [--k 5]
Indexes DOCS into $DESKTOP_RAG_HOME (reusing an existing index), then scores every question.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from desktop_rag.core.engine import Engine
from desktop_rag.core.evaluation import (
    RetrievalScores,
    load_questions,
    normalise,
    passage_supported,
)
from desktop_rag.core.retrieval import RetrievalConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("docs", type=Path)
    ap.add_argument("questions", type=Path)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--weights", default="0.3,0.4,0.5")
    ap.add_argument("--modes", default="dense,bm25,rrf")
    args = ap.parse_args()
    engine = Engine()
    engine.index_all([args.docs])
    questions = load_questions(args.questions)
    texts: dict[str, str] = {}
    for f in engine.store.files():
        pages = engine.store.con.execute(
            "SELECT text FROM pages WHERE file_id=? ORDER BY page", (f.id,)
        ).fetchall()
        texts[Path(f.path).name] = normalise(" ".join(p[0] for p in pages))
    supported = {q.id: passage_supported(q, texts) for q in questions}
    runs: list[tuple[str, str, RetrievalConfig]] = [
        (m, m, RetrievalConfig()) for m in args.modes.split(",") if m
    ]
    for w in args.weights.split(","):
        if w:
            runs.append(
                (
                    f"hybrid w={w}",
                    "hybrid",
                    dataclasses.replace(RetrievalConfig(), dense_weight=float(w)),
                )
            )
    print(
        f"{'mode':16} "
        + " ".join(
            f"{h:>14}" for h in ("doc_hit", "passage_hit", "mrr@10", "ndcg@10", "p50 ms", "p95 ms")
        )
    )
    for name, mode, cfg in runs:
        engine.retrieval_config = cfg
        retriever = engine.retriever()
        scores = RetrievalScores(args.k)
        for q in questions:
            res = retriever.search(q.question, max(10, args.k), mode=mode)  # type: ignore[arg-type]
            scores.add(q, res.hits, supported[q.id], res.retrieval_ms)
        s = scores.summary()
        k = args.k
        print(
            f"{name:16} "
            + " ".join(
                f"{v!s:>14}"
                for v in (
                    s[f"doc_hit@{k}"],
                    s[f"passage_hit@{k}"],
                    s["mrr@10"],
                    s["ndcg@10"],
                    s["retrieval_ms_p50"],
                    s["retrieval_ms_p95"],
                )
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
