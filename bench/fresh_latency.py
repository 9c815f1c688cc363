"""Retrieval latency from the first question of a fresh process (no warm-up).

Usage: python bench/fresh_latency.py --home DIR [--questions FILE] [--n 53] [--runs 3]
       [--first-start] [--lexical postings|fts5]

``--home`` is a data folder that already holds an index (e.g. the one ``desktop-rag eval``
built for a shared set). Each run is a new process that opens it as the app does (``Engine``),
loads the embedding model (not timed: a search calls ``load`` before its clock starts) and runs
the first ``--n`` questions of the set through hybrid retrieval, top 5, timing every one from the
first: p50, p95, max and the first question's own latency. ``--first-start`` gives each run an
empty ONNX cache, so the question encoder's one-time export runs in the background while the
questions are asked (the app's first start). ``--lexical fts5`` detaches the engine's
in-memory postings (the lexical leg on FTS5 alone, as before them). Prints one row per run. Not a
test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COVIDQA = ROOT.parent / "shared" / "eval" / "covidqa" / "questions.jsonl"


def child(home: Path, questions: Path, n: int, lexical: str) -> dict[str, float]:
    os.environ["DESKTOP_RAG_HOME"] = str(home)
    from desktop_rag.core.engine import Engine

    qs = [json.loads(line)["question"] for line in questions.read_text().splitlines()
          if line.strip()][:n]  # fmt: skip
    engine = Engine()
    if lexical == "fts5":  # the lexical leg on FTS5 alone, as before the in-memory postings
        engine.lexicon.close()
        engine.lexical.postings = None
    lat = [engine.search(q, 5).retrieval_ms for q in qs]
    engine.close()
    pct = statistics.quantiles(lat, n=100)
    return {"first_ms": lat[0], "p50_ms": pct[49], "p95_ms": pct[94], "max_ms": max(lat),
            "n": len(lat)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--questions", type=Path, default=COVIDQA)
    ap.add_argument("--n", type=int, default=53)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--first-start", action="store_true")
    ap.add_argument(
        "--lexical",
        choices=["postings", "fts5"],
        default="postings",
        help="the lexical leg: in-memory postings (the app's) or FTS5 alone (before)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args.home, args.questions, args.n, args.lexical)))
        return
    print(f"{'run':>4} {'first ms':>9} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'p95/p50':>8}")
    for run in range(args.runs):
        env = dict(os.environ)
        if args.first_start:
            env["DESKTOP_RAG_ONNX_CACHE"] = tempfile.mkdtemp(prefix="drag-fresh-onnx-")
        out = subprocess.run([sys.executable, __file__, "--child", "--home", str(args.home),
                              "--questions", str(args.questions), "--n", str(args.n),
                              "--lexical", args.lexical],
                             check=True, capture_output=True, text=True, env=env)  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{run + 1:4d} {r['first_ms']:9.1f} {r['p50_ms']:7.1f} {r['p95_ms']:7.1f} "
              f"{r['max_ms']:7.1f} {r['p95_ms'] / r['p50_ms']:8.2f}", flush=True)  # fmt: skip
    print(f"\nhybrid retrieval, top 5, the first {args.n} questions of {args.questions.name}, "
          f"from the first, a fresh process each run"
          f"{', empty ONNX cache (first start)' if args.first_start else ''}")  # fmt: skip


if __name__ == "__main__":
    main()
