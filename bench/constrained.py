"""Figure-constrained decoding against the claim check alone: the same questions, one run.

Usage: python bench/constrained.py [--sets covidqa,docugami_sec10q] [--limit 60] [--out F.json]
       [--home DIR] [--grammar 5]

For every set in ``../shared/eval`` it indexes the documents (``--home`` keeps the index between
runs), then answers the first ``--limit`` answerable questions twice each, alternating: with
``constrain_figures`` off (the claim check alone) and on (a logit mask lets the model write only
numbers its sources contain; see desktop_rag/core/generate/constrained.py). Greedy decoding, the
default settings otherwise; llama.cpp's prompt cache is emptied before every answer, so TTFT is
that of a whole prompt in both conditions (the app keeps the system prompt cached). Prints per set and condition: correct as shown, generated-answer
correctness, failed-check rate, answers with an unsupported figure, unmarked unsupported figures
shown, TTFT p50/p95 and tokens/s p50; and how many answers the mask changed.

``--grammar N`` also times N generations with the same numbers as a llama.cpp GBNF grammar
(``LlamaGrammar``: any text, numbers only from the list) against the mask, tokens/s each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"


def _answer_rows(engine: Any, cid: int, questions: list[Any]) -> dict[str, Any]:
    from desktop_rag.core.evaluation import AnswerScores

    scores = {"check alone": AnswerScores(), "constrained": AnswerScores()}
    changed = 0
    for i, q in enumerate(questions):
        texts = []
        for name, on in (("check alone", False), ("constrained", True)):
            engine.settings.constrain_figures = on
            engine.llm.reset_cache()  # the second run must not reuse the first one's prompt
            answer = engine.answer(q.question, collections=[cid])
            scores[name].add(q, answer, False)
            texts.append(answer.generated)
        changed += texts[0] != texts[1]
        print(f"  {i + 1}/{len(questions)}", end="\r", file=sys.stderr, flush=True)
    return {"scores": scores, "changed": changed}


def _grammar_timing(engine: Any, cid: int, questions: list[Any], n: int) -> dict[str, float]:
    """tokens/s of n generations: free, masked, and under a GBNF grammar of the same numbers."""
    import llama_cpp

    from desktop_rag.core.generate.constrained import AllowedFigures
    from desktop_rag.core.generate.prompting import pack_prompt
    from desktop_rag.core.search.claims import figure_strings

    llm = engine.llm
    rates: dict[str, list[float]] = {"free": [], "mask": [], "grammar": []}
    for q in questions[:n]:
        result = engine.search(q.question, collections=[cid])
        packed = pack_prompt(q.question, result.hits, llm.context_size - 384, llm.count_tokens)
        figs = figure_strings(f"{h.context}\n{h.text}" for h in packed.hits)
        allowed = AllowedFigures(figs, len(packed.hits))
        for name in rates:
            stream = llm.stream(
                packed.messages,
                max_tokens=96,
                temperature=0.0,
                figures=allowed if name == "mask" else None,
            )
            if name == "grammar":
                stream.close()
                alts = " | ".join(json.dumps(f) for f in sorted(figs, key=len, reverse=True))
                cites = " | ".join(json.dumps(str(i)) for i in range(1, len(packed.hits) + 1))
                gbnf = (
                    f"root ::= (text | num | cite)*\ntext ::= [^0-9[]\nnum ::= {alts or '[0]'}\n"
                    f'cite ::= "[" ({cites}) ("," " "? ({cites}))* "]"\n'
                )
                rates[name].append(_grammar_rate(llm, packed.messages, gbnf, llama_cpp))
                continue
            for _ in stream:
                pass
            assert stream.stats is not None
            rates[name].append(stream.stats.tokens_per_s)
    return {k: statistics.median(v) for k, v in rates.items() if v}


def _grammar_rate(llm: Any, messages: list[dict[str, str]], gbnf: str, llama_cpp: Any) -> float:
    """tokens/s of one greedy generation of up to 96 tokens under ``gbnf`` (on the model's owner
    thread, with llama-cpp-python's own sampler chain and grammar sampler)."""
    prompt = llm.render(messages).encode("utf-8")

    def run() -> float:
        model = llm._model()
        grammar = llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
        ids = model.tokenize(prompt, add_bos=False, special=True)
        model.reset()
        model.eval(ids)
        sampler = model._init_sampler(temp=0.0, repeat_penalty=1.1, grammar=grammar)
        t0, n = time.perf_counter(), 0
        try:
            for _ in range(96):
                token = sampler.sample(model._ctx, -1)
                if llama_cpp.llama_vocab_is_eog(model._model.vocab, token):
                    break
                model.eval([token])
                n += 1
        finally:
            sampler.close()
            model.reset()
        return n / (time.perf_counter() - t0)

    return float(llm._running_owner().call(run))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="covidqa,docugami_sec10q")
    ap.add_argument("--limit", type=int, default=60)
    ap.add_argument("--grammar", type=int, default=0, help="also time N GBNF generations")
    ap.add_argument("--home", type=Path, default=None, help="data dir kept between runs")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    os.environ["DESKTOP_RAG_HOME"] = str(args.home or tempfile.mkdtemp(prefix="drag-constr-"))
    from desktop_rag.core.engine import Engine
    from desktop_rag.core.evaluation import _graded, load_questions

    engine = Engine()
    engine.settings.temperature = 0.0
    out: dict[str, Any] = {}
    try:
        for name in [s for s in args.sets.split(",") if s]:
            base = EVAL / name
            t0 = time.perf_counter()
            engine.index_all([base / "docs"])
            root = str((base / "docs").resolve())
            cid = next(c.id for c in engine.store.collections() if c.root == root)
            print(f"{name}: indexed in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            qs = [q for q in load_questions(base / "questions.jsonl") if _graded(q)][: args.limit]
            engine.answer(qs[0].question, collections=[cid])  # load and warm the model
            rows = _answer_rows(engine, cid, qs)
            out[name] = {k: v.summary() for k, v in rows["scores"].items()}
            out[name]["changed"] = rows["changed"]
            out[name]["questions"] = len(qs)
            if args.grammar:
                out[name]["tokens_per_s"] = _grammar_timing(engine, cid, qs, args.grammar)
    finally:
        engine.close()
    keys = ["correct", "generated_correct", "failed_check", "with_unsupported_figure",
            "figures_unmarked_unsupported", "ttft_s_p50", "ttft_s_p95", "tokens_per_s_p50"]  # fmt: skip
    for name, res in out.items():
        print(f"\n{name}: {res['questions']} questions, answers changed by the mask: "
              f"{res['changed']}")  # fmt: skip
        print(f"{'metric':30} {'check alone':>12} {'constrained':>12}")
        for k in keys:
            a, b = res["check alone"].get(k), res["constrained"].get(k)
            print(f"{k:30} {_fmt(a):>12} {_fmt(b):>12}")
        if "tokens_per_s" in res:
            t = res["tokens_per_s"]
            print("tokens/s (median): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    if args.out:
        args.out.write_text(json.dumps(out, indent=2))
    return 0


def _fmt(x: object) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


if __name__ == "__main__":
    sys.exit(main())
