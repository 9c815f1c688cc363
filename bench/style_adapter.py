"""Style adapter benchmark: the same grounded prompts answered by the base model and with an adapter.

Usage: python bench/style_adapter.py [--adapter executive-brief] [--n 40] [--scales 0,0.5,1.0]
           [--docs DIR --questions FILE.jsonl]

Defaults to the covidqa dev set in ../shared/eval (indexed into a scratch data directory, reused
between runs: DESKTOP_RAG_HOME defaults to /tmp/drag-style-bench). For the first N answerable
questions it retrieves the top 5 chunks once, packs the real answer prompt, and answers it at each
LoRA scale (0 = the base model) on ONE loaded model, switching adapters between answers. It prints,
per scale: the share of answers in the trained style (starting with the adapter's recorded opening,
e.g. "Bottom line:"), the share whose raw model output has at least one valid ``[n]`` citation
(a number of a source it was given), the share correct (normalised containment of the gold answer
or its figures within 1%, as ``desktop-rag eval``), the abstention share, and tokens/s (p50).
Not a test: numbers vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COVID = ROOT.parent / "shared" / "eval" / "covidqa"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapter", default="executive-brief")
    ap.add_argument("--n", type=int, default=40, help="answerable questions to answer")
    ap.add_argument("--scales", default="0,0.5,1.0", help="LoRA scales; 0 = the base model")
    ap.add_argument("--docs", type=Path, default=COVID / "docs")
    ap.add_argument("--questions", type=Path, default=COVID / "questions.jsonl")
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0 = all cores)")
    args = ap.parse_args()
    os.environ.setdefault("DESKTOP_RAG_HOME", "/tmp/drag-style-bench")
    from desktop_rag.core.engine import Engine
    from desktop_rag.core.evaluation import answer_correct, load_questions
    from desktop_rag.core.generate.adapters import resolve_adapter
    from desktop_rag.core.generate.prompting import is_abstention, pack_prompt
    from desktop_rag.core.text.citations import cited_numbers

    engine = Engine()
    info = resolve_adapter(args.adapter, engine.paths)
    marker = (info.marker or "").strip()
    print(f"adapter {info.name}: rank {info.rank}, alpha {info.alpha}, {info.bytes / 1e6:.1f} MB, "
          f"style marker {marker!r}")  # fmt: skip
    t0 = time.perf_counter()
    summary = engine.index_all([args.docs])
    print(f"index: {summary.indexed} new, {summary.unchanged} unchanged "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    questions = [q for q in load_questions(args.questions) if q.answer][: args.n]
    llm = engine.llm
    if args.threads:
        llm.threads = args.threads
    llm.load()
    budget = llm.context_size - args.max_tokens
    prompts = []
    for q in questions:
        result = engine.search(q.question, 5)
        prompts.append((q, pack_prompt(q.question, result.hits, budget, llm.count_tokens)))
    scales = [float(s) for s in args.scales.split(",")]
    rows: dict[float, dict[str, list[float]]] = {
        s: {"style": [], "cites": [], "correct": [], "abstained": [], "tps": [], "switch": []}
        for s in scales
    }
    t_load = time.perf_counter()
    llm.set_adapter(info.path, 1.0)
    load_s = time.perf_counter() - t_load
    examples: dict[float, str] = {}
    for q, packed in prompts:
        for s in scales:  # interleaved: every answer switches the adapter on the same model
            text = "".join(llm.stream(packed.messages, max_tokens=args.max_tokens,
                                      temperature=0.0, adapter=info.path if s else None,
                                      adapter_scale=s))  # fmt: skip
            stats = llm.last_stats
            r = rows[s]
            r["style"].append(float(bool(marker) and text.lstrip().startswith(marker)))
            r["cites"].append(float(bool(cited_numbers(text, len(packed.hits)))))
            r["correct"].append(float(answer_correct(text, q.answer or "")))
            r["abstained"].append(float(is_abstention(text)))
            if stats is not None:
                r["tps"].append(stats.tokens_per_s)
                r["switch"].append(stats.adapter_switch_s)
            examples.setdefault(s, text)
    print(f"\n{len(prompts)} covidqa questions with their top-5 retrieved sources; adapter first "
          f"load {load_s * 1000:.0f} ms\n")  # fmt: skip
    head = f"{'scale':>6} {'in style':>9} {'cites [n]':>10} {'correct':>8} {'abstained':>10} " \
           f"{'tokens/s p50':>13} {'switch ms p50':>14}"  # fmt: skip
    print(head)
    for s in scales:
        r = rows[s]
        mean = {k: sum(v) / len(v) if v else 0.0 for k, v in r.items()}
        tps = statistics.median(r["tps"]) if r["tps"] else 0.0
        sw = statistics.median(r["switch"]) * 1000 if r["switch"] else 0.0
        print(f"{s:>6.2f} {mean['style']:>9.2f} {mean['cites']:>10.2f} {mean['correct']:>8.2f} "
              f"{mean['abstained']:>10.2f} {tps:>13.1f} {sw:>14.1f}")  # fmt: skip
    for s, text in examples.items():
        print(f"\n--- first answer at scale {s}:\n{text.strip()[:600]}")
    engine.close()


if __name__ == "__main__":
    main()
