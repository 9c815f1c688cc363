"""Speed benchmark: full index of a folder, retrieval latency, time to first token and tokens/s.

Usage: python bench/bench_index.py [DOCS] [--questions FILE.jsonl] [--n 50]
Defaults to ../shared/eval/docugami_sec10q. Uses a fresh temporary data directory, the bundled
models and all CPU cores; prints a table. Not a test: numbers vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared" / "eval" / "docugami_sec10q"


def pct(xs: list[float], p: int) -> float:
    return statistics.quantiles(xs, n=100)[p - 1] if len(xs) > 1 else xs[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("docs", type=Path, nargs="?", default=DEFAULT / "docs")
    ap.add_argument("--questions", type=Path, default=DEFAULT / "questions.jsonl")
    ap.add_argument("--n", type=int, default=40, help="questions for latency")
    ap.add_argument("--answers", type=int, default=8, help="questions answered by the LLM")
    ap.add_argument(
        "--backend", default="auto", help="embedding backend: auto, torch, onnx, onnx-int8"
    )
    args = ap.parse_args()
    os.environ["DESKTOP_RAG_HOME"] = tempfile.mkdtemp(prefix="drag-bench-")
    from desktop_rag.core.engine import Engine
    from desktop_rag.core.settings import Settings

    engine = Engine(settings=Settings(embedding_backend=args.backend))
    t0 = time.perf_counter()
    engine.embedder.load()
    load_s = time.perf_counter() - t0
    summary = engine.index_all([args.docs])
    chunks = summary.chunks_added
    wall = summary.elapsed_s
    print(f"folder: {args.docs}   embedding backend: {engine.embedder.active_backend}")
    print(f"embedding model load          {load_s:8.2f} s")
    print(
        f"files indexed                 {summary.indexed:8d}   (problems: {len(summary.problems)})"
    )
    for p in summary.problems:
        print(f"    {p.status}: {Path(p.path).name}: {p.reason}")
    print(f"pages                         {summary.pages:8d}")
    print(f"chunks                        {chunks:8d}")
    print(f"index wall time               {wall:8.1f} s")
    print(f"pages/s                       {summary.pages / wall:8.2f}")
    print(f"chunks/s                      {chunks / wall:8.2f}")
    print("where the time went (extraction overlaps the rest: it runs one file ahead)")
    for label, secs in (
        ("  embedding forward pass", summary.embed_s),
        ("  extraction (hash + parse)", summary.extract_s),
        ("  chunking", summary.chunk_s),
        ("  SQLite writes", summary.store_s),
        ("  hnswlib add + save", summary.vectors_s),
    ):
        print(f"{label:30}{secs:8.1f} s = {100 * secs / wall:5.1f}% of wall time")

    questions = [
        json.loads(line)["question"]
        for line in args.questions.read_text().splitlines()
        if line.strip()
    ]
    lat = [engine.search(q, 5).retrieval_ms for q in questions[: args.n]]
    print(
        f"retrieval latency (top 5)     p50 {pct(lat, 50):.1f} ms, p95 {pct(lat, 95):.1f} ms over {len(lat)} questions"
    )
    ttft, tps = [], []
    from desktop_rag.core.types import Answer

    engine.llm.load()
    for q in questions[: args.answers]:
        for item in engine.ask(q):
            if isinstance(item, Answer) and not item.abstained:
                ttft.append(item.timings.ttft_s)
                tps.append(item.timings.tokens_per_s)
    if ttft:
        print(
            f"time to first token           p50 {pct(ttft, 50):.2f} s, p95 {pct(ttft, 95):.2f} s over {len(ttft)} answers"
        )
        print(f"generation                    p50 {statistics.median(tps):.1f} tokens/s")
    engine.close()


if __name__ == "__main__":
    main()
