"""Generation through our pipeline vs raw llama-cpp-python on the same prompt; prompt-cache TTFT.

Usage: python bench/llm_overhead.py [--rounds 5] [--tokens 128] [--threads N] [--weights auto]

Builds a real 5-source prompt (the bundled sample documents, indexed in a scratch data
directory) and generates ``--tokens`` tokens greedily, alternating between:

- ``ours``: ``LocalLLM.stream`` (template render, tokenisation, stopping criteria, cancel checks,
  stats), as every answer is generated;
- ``raw``: a separate ``llama_cpp.Llama`` with the same file and settings, ``create_completion``
  on the same token ids with the same sampling parameters.

Each side resets its KV cache before every round (``cold``: the whole prompt is evaluated), then
repeats the question once more without a reset (``warm``: llama.cpp keeps the evaluated prefix, so
only the changed tail is evaluated; this is the cache a follow-up on the same sources hits), and
``next``: a different question with its own 5 sources right after (llama.cpp re-uses only the
common prefix, the system prompt: the case of every new question in a conversation).
``--weights auto`` loads what the app loads (the F16 copy of a small quantized model where that
measured faster, :mod:`desktop_rag.core.generate.llm_weights`), ``original`` the GGUF as it is; both sides
always load the same file.
Prints median time to first token and tokens/s for both, and our overhead in percent. Not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--question", default="What happens if indexing is interrupted?")
    ap.add_argument("--next-question", default="Which file formats can be indexed?")
    ap.add_argument("--weights", choices=("auto", "original"), default="auto")
    args = ap.parse_args()
    os.environ["DESKTOP_RAG_HOME"] = tempfile.mkdtemp(prefix="drag-llm-bench-")
    from desktop_rag.core.engine import Engine
    from desktop_rag.core.generate import prompting
    from desktop_rag.core.generate.llm import LocalLLM
    from desktop_rag.core.generate.native import open_llama

    engine = Engine()
    engine.index_all([ROOT / "resources" / "samples"])
    cache = engine.paths.gguf_cache if args.weights == "auto" else None
    ours = LocalLLM(engine.llm_model.path, n_ctx=4096, threads=args.threads, weights_cache=cache)
    t0 = time.perf_counter()
    ours.load()
    load_s = time.perf_counter() - t0

    def packed_for(question: str) -> prompting.PackedPrompt:
        hits = engine.search(question, 5).hits
        return prompting.pack_prompt(question, hits, 4096 - 400, ours.count_tokens)

    packed = packed_for(args.question)
    packed_next = packed_for(args.next_question)
    prompt = ours.render(packed.messages)
    raw = open_llama(model_path=str(ours.load_path), n_ctx=4096,
                     n_threads=args.threads, n_threads_batch=args.threads, n_gpu_layers=0,
                          use_mmap=True, verbose=False)  # fmt: skip
    ids = raw.tokenize(prompt.encode(), add_bos=False, special=True)
    ids_next = raw.tokenize(ours.render(packed_next.messages).encode(), add_bos=False, special=True)
    shared = next(
        (i for i, (a, b) in enumerate(zip(ids, ids_next, strict=False)) if a != b), len(ids)
    )
    params = {"max_tokens": args.tokens, "temperature": 0.0, "top_p": 0.9, "repeat_penalty": 1.1}

    def run_raw(tokens: list[int]) -> tuple[float, float]:
        t0 = time.perf_counter()
        first = 0.0
        n = 0
        for _part in raw.create_completion(tokens, stream=True, **params):  # type: ignore[arg-type]
            n += 1
            if n == 1:
                first = time.perf_counter() - t0
        total = time.perf_counter() - t0
        return first, (n - 1) / (total - first)

    def run_ours(messages: list[dict[str, str]]) -> tuple[float, float]:
        for _ in ours.stream(messages, max_tokens=args.tokens, temperature=0.0):
            pass
        s = ours.last_stats
        assert s is not None
        return s.ttft_s, s.tokens_per_s

    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):
        order = [("ours", run_ours), ("raw", run_raw)]
        for name, fn in order if r % 2 == 0 else reversed(order):
            if name == "ours":
                ours.reset_cache()  # drop the KV-cache prefix
            else:
                raw.reset()
            first, second = (
                (packed.messages, packed_next.messages) if name == "ours" else (ids, ids_next)
            )
            results.setdefault((name, "cold"), []).append(fn(first))  # type: ignore[operator]
            results.setdefault((name, "warm"), []).append(fn(first))  # type: ignore[operator]
            results.setdefault((name, "next"), []).append(fn(second))  # type: ignore[operator]
    print(
        f"model file loaded: {ours.load_path.name} (--weights {args.weights}; load "
        f"{load_s:.2f} s, including any first-use F16 conversion and check)"
    )
    print(f"prompt {len(ids)} tokens (5 sources), next question {len(ids_next)} tokens of which "
          f"{shared} shared (system prompt); {args.tokens} tokens generated greedily, "
          f"{args.threads} threads, {args.rounds} alternating rounds, medians\n")  # fmt: skip
    print(f"{'':12} {'TTFT s':>8} {'tokens/s':>9}")
    med: dict[tuple[str, str], tuple[float, float]] = {}
    for key, rows in results.items():
        med[key] = (statistics.median(x[0] for x in rows), statistics.median(x[1] for x in rows))
        print(f"{key[0] + ' ' + key[1]:12} {med[key][0]:8.2f} {med[key][1]:9.1f}")
    for cache in ("cold", "warm", "next"):
        overhead = 100 * (1 - med[("ours", cache)][1] / med[("raw", cache)][1])
        print(f"our tokens/s overhead ({cache}): {overhead:+.1f}%")
    engine.close()
    ours.close()
    raw.close()


if __name__ == "__main__":
    main()
