"""Time to first token through the app's own answer path (Engine.ask), as the window runs it.

Usage: python bench/ttft.py [--docs DIR] [--questions FILE.jsonl] [--n 8] [--weights auto]
       [--home DIR]

Indexes ``--docs`` (default: the docugami 10-Q PDFs; an index already in ``--home`` is reused),
then loads the LLM as the window does at start (``Engine.prepare_llm``: the model, its F16 copy
where that measured faster, and the system prompt evaluated into llama.cpp's cache), and answers
``--n`` questions one after another with 5 sources each, greedily. Each new question brings new
sources, so only the system prompt is shared with the previous prompt: the case of every new
question in a conversation. Prints time to first token (from prompt packing to the first token),
prompt tokens, tokens/s and retrieval time, median and max, for ``--weights auto`` (what the app
loads) or ``original`` (the GGUF file as it is). Not a test.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=Path, default=DEFAULT / "docs")
    ap.add_argument("--questions", type=Path, default=DEFAULT / "questions.jsonl")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--weights", choices=("auto", "original"), default="auto")
    ap.add_argument("--home", type=Path, help="data directory to reuse (default: a fresh one)")
    args = ap.parse_args()
    os.environ["DESKTOP_RAG_HOME"] = str(args.home or tempfile.mkdtemp(prefix="drag-ttft-"))
    from desktop_rag.core.engine import Engine
    from desktop_rag.core.types import Answer

    engine = Engine()
    engine.settings.llm_weights = args.weights
    engine.settings.temperature = 0.0
    engine.index_all([args.docs])
    questions = [
        json.loads(line)["question"]
        for line in args.questions.read_text().splitlines()
        if line.strip()
    ]
    t0 = time.perf_counter()
    prefix = engine.prepare_llm()
    load_s = time.perf_counter() - t0
    rows: list[tuple[float, int, float, float]] = []
    for q in questions[: args.n]:
        final = None
        for item in engine.ask(q, k=5):
            if isinstance(item, Answer):
                final = item
        assert final is not None
        t = final.timings
        if final.abstained and not t.prompt_tokens:
            continue  # abstained without running the model: no time to first token
        rows.append((t.ttft_s, t.prompt_tokens, t.tokens_per_s, t.retrieval_ms))
    loaded = engine.llm.load_path.name
    engine.close()
    print(f"model file: {loaded} (--weights {args.weights}); load and "
          f"prefill {load_s:.2f} s, system prompt {prefix} tokens cached; {len(rows)} answers, "
          "5 sources each\n")  # fmt: skip
    print(f"{'':22} {'median':>8} {'max':>8}")
    for i, name in enumerate(
        ("time to first token s", "prompt tokens", "tokens/s", "retrieval ms")
    ):
        xs = [r[i] for r in rows]
        print(f"{name:22} {statistics.median(xs):8.2f} {max(xs):8.2f}")


if __name__ == "__main__":
    main()
