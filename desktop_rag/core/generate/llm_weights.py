"""A faster-to-evaluate copy of a small quantized GGUF: the same weights, stored as F16.

Time to first token is prompt evaluation, which on a CPU is matrix-multiply bound. llama.cpp's
x86 kernels for some quantization types are slow there: the bundled SmolLM2-135M Q4_1 evaluated a
748-token prompt at 176 tokens/s on 2 AVX2 cores, while the same weights dequantized to F16 ran at
398 tokens/s (2.3x), Q8_0 at 297, Q4_0 at 340, F32 at 332 (``bench/llm_overhead.py`` and
``docs/benchmarks.md``). Dequantizing loses nothing: every Q4_1 weight (``d * q + m``) is
representable in F16 to within F16 rounding, and the F16 path no longer rounds activations to 8
bits, so the copy is, if anything, closer to the weights than the original kernels are.

For models whose F16 copy stays small (at most :data:`F16_MAX_BYTES`), the first load writes the
copy into the cache with llama.cpp's own ``llama_model_quantize`` (``allow_requantize``), then
*measures* instead of assuming:

- **Same function**: next-token distributions on :data:`PROBES` must agree, KL divergence at most
  :data:`MAX_KL` nats per probe (measured 0.002 to 0.006 for the bundled model).
- **Faster here, for a whole answer**: prompt evaluation (a fixed 256-token text, best of 2)
  and generation (32 greedy tokens) are timed for both files; the copy is used when a typical
  answer, :data:`TYPICAL_PROMPT` prompt tokens then :data:`TYPICAL_ANSWER` generated ones, is
  at least :data:`MIN_SPEEDUP` times faster with it. F16 evaluates prompts faster but reads
  3x the bytes per generated token, so generation slows (measured on the bundled model, 2
  cores: prompts 151 -> 373 tokens/s, generation 72 -> 47 tokens/s in this check; a typical
  answer 7.4 -> 5.3 s, 1.39x). On another CPU, a GPU build or a type that is
  already fast, the copy is deleted and the manifest remembers to load the original.

The copy is written atomically (temp file, fsync, rename) with a manifest recording the source's
sha256 (the cache key), the copy's size and modification time, the measured speed-up and KL, and
the llama-cpp-python version (a new version is measured again). A copy whose size or time no
longer matches is rebuilt, never loaded. Any failure leaves the original in use: this is an
optimisation, never a reason the model does not load.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from desktop_rag.core.files import atomic_write, sha256_file

log = logging.getLogger(__name__)

F16_MAX_BYTES = 1 << 30  # F16 copies up to 1 GiB (about 500M parameters); larger ones cost RAM
MIN_SPEEDUP = 1.05  # speed-up of a typical answer the copy must show on this machine to be used
TYPICAL_PROMPT = 800  # tokens: 5 sources of ~150 words, the system prompt and a question
TYPICAL_ANSWER = 150  # tokens generated (answers of 2-6 sentences with citations)
MAX_KL = 0.05  # nats, next-token KL(original || copy) per probe; measured <= 0.0062 (SmolLM2-135M)
COPY_VERSION = 1  # bump when the conversion changes, so old copies are rebuilt
FAST_TYPES = frozenset({"F16", "BF16", "ALL_F32", "F32"})  # nothing to gain from a copy
PROBES = (
    "The capital of France is",
    "Quarterly revenue rose 12% year over year to",
    "<|im_start|>system\nAnswer using only the numbered sources.<|im_end|>\n"
    "<|im_start|>user\n[1] ACE2 is the receptor that SARS-CoV-2 uses to enter cells.\n\n"
    "What does the virus bind to?<|im_end|>\n<|im_start|>assistant\n",
)
TIMING_TEXT = " ".join(
    ["The pump at station 3 moved 4,210 cubic metres of water in March, up 12% on February."] * 20
)


def weights_for_inference(
    model_path: Path,
    cache_dir: Path,
    threads: int,
    *,
    min_speedup: float = MIN_SPEEDUP,
) -> Path:
    """The GGUF file llama.cpp should load for ``model_path``: its F16 copy when that measured
    faster here (built, checked and timed on first use; see the module docstring), else the file
    itself.

    ``threads``: the CPU threads used for the timing (the ones generation will use).
    ``min_speedup``: the speed-up of a typical answer required (tests pass 0 to force a copy).
    Never raises for a bad cache or a failed conversion: it logs and returns ``model_path``.
    """
    model_path = Path(model_path)
    try:
        from desktop_rag.core.generate.gguf import read_gguf_info

        info = read_gguf_info(model_path)
        if info.quantization.upper() in FAST_TYPES or 2 * info.parameters > F16_MAX_BYTES:
            return model_path
        import llama_cpp

        from desktop_rag.core.generate.native import install_log_capture

        install_log_capture()  # llama.cpp's conversion log goes to our log, not the terminal
        version = str(llama_cpp.__version__)
        source_sha = _source_sha256(model_path, Path(cache_dir))
        folder = Path(cache_dir) / f"{source_sha[:24]}-f16-v{COPY_VERSION}"
        copy, manifest = folder / "model-f16.gguf", folder / "manifest.json"
        meta = _read_manifest(manifest)
        if meta.get("source_sha256") == source_sha and meta.get("llama_cpp") == version:
            if meta.get("use") == "original" and meta.get("min_speedup", 0) <= min_speedup:
                return model_path
            fast_enough = meta.get("speedup", 0) >= min_speedup
            if meta.get("use") == "f16" and fast_enough and _unchanged(copy, meta):
                return copy
        if copy.exists() or manifest.exists():
            log.info("rebuilding the F16 copy of %s in %s", model_path.name, folder)
        meta = _build(model_path, copy, threads, min_speedup)
        meta.update(source_sha256=source_sha, llama_cpp=version, source=str(model_path))
        atomic_write(manifest, json.dumps(meta, indent=1).encode("utf-8"))
        return copy if meta["use"] == "f16" else model_path
    except Exception as exc:  # an optimisation: the original always remains usable
        log.warning("using %s as it is (no F16 copy: %s)", model_path.name, exc)
        return model_path


def _source_sha256(model_path: Path, cache_dir: Path) -> str:
    """The model file's sha256, read from the cache's index of sources when the file's path,
    size and modification time are the ones recorded there (hashing 100 MB takes ~0.3 s, a 4 GB
    model ~10 s: not at every start), else computed."""
    st = model_path.stat()
    index = cache_dir / "sources.json"
    sources = _read_manifest(index)
    key = str(model_path.resolve())
    known = sources.get(key)
    if (
        isinstance(known, dict)
        and known.get("size") == st.st_size
        and known.get("mtime_ns") == st.st_mtime_ns
        and isinstance(known.get("sha256"), str)
    ):
        return str(known["sha256"])
    sha = sha256_file(model_path)
    sources[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(index, json.dumps(sources, indent=1).encode("utf-8"))
    return sha


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _unchanged(copy: Path, meta: dict[str, Any]) -> bool:
    try:
        st = copy.stat()
    except OSError:
        return False
    return st.st_size == meta.get("size") and st.st_mtime_ns == meta.get("mtime_ns")


def _build(source: Path, copy: Path, threads: int, min_speedup: float) -> dict[str, Any]:
    """Write the F16 copy, compare it with ``source``; returns the manifest fields (``use`` is
    ``"f16"`` or ``"original"``). Raises RuntimeError when llama.cpp refuses the conversion or the
    copy is not the same function."""
    import llama_cpp

    copy.parent.mkdir(parents=True, exist_ok=True)
    tmp = copy.with_name(copy.name + f".tmp{os.getpid()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_F16
    params.allow_requantize = True
    params.nthread = threads
    t0 = time.perf_counter()
    rc = llama_cpp.llama_model_quantize(
        str(source).encode(), str(tmp).encode(), ctypes.byref(params)
    )
    if rc != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama.cpp could not convert the model (code {rc})")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, copy)
    convert_s = time.perf_counter() - t0
    orig_pp, orig_tg, orig_logits = _measure(source, threads)
    copy_pp, copy_tg, copy_logits = _measure(copy, threads)
    kl = max(_kl(a, b) for a, b in zip(orig_logits, copy_logits, strict=True))
    if kl > MAX_KL:
        copy.unlink(missing_ok=True)
        raise RuntimeError(f"the F16 copy is not the same function (KL {kl:.4f} > {MAX_KL})")

    def answer_s(pp: float, tg: float) -> float:
        return TYPICAL_PROMPT / pp + TYPICAL_ANSWER / tg

    speedup = answer_s(orig_pp, orig_tg) / answer_s(copy_pp, copy_tg)
    use = "f16" if speedup >= min_speedup else "original"
    meta: dict[str, Any] = {
        "use": use,
        "speedup": round(speedup, 3),
        "prompt_tokens_per_s": {"original": round(orig_pp, 1), "f16": round(copy_pp, 1)},
        "generated_tokens_per_s": {"original": round(orig_tg, 1), "f16": round(copy_tg, 1)},
        "typical_answer_s": {
            "original": round(answer_s(orig_pp, orig_tg), 2),
            "f16": round(answer_s(copy_pp, copy_tg), 2),
        },
        "max_kl": round(kl, 6),
        "min_speedup": min_speedup,
        "threads": threads,
        "convert_s": round(convert_s, 2),
    }
    if use == "f16":
        st = copy.stat()
        meta.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    else:
        copy.unlink(missing_ok=True)
    log.info("F16 copy of %s: %s", source.name, meta)
    return meta


def _measure(path: Path, threads: int) -> tuple[float, float, list[Any]]:
    """(prompt tokens/s on :data:`TIMING_TEXT`, best of 2; generated tokens/s over 32 greedy
    tokens, best of 2; last-position logits per probe)."""
    import numpy as np

    from desktop_rag.core.generate.native import open_llama

    llm = open_llama(model_path=str(path), n_ctx=512, n_threads=threads,
                     n_threads_batch=threads, n_gpu_layers=0, logits_all=True,
                     verbose=False)  # fmt: skip
    try:
        logits = []
        for probe in PROBES:
            llm.reset()
            ids = llm.tokenize(probe.encode("utf-8"), add_bos=False, special=True)
            llm.eval(ids)
            logits.append(np.array(llm.scores[len(ids) - 1], dtype=np.float64))
        ids = llm.tokenize(TIMING_TEXT.encode("utf-8"), add_bos=False)[:256]
        best_pp = best_tg = float("inf")
        for _ in range(2):
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(ids)
            best_pp = min(best_pp, time.perf_counter() - t0)
            token = int(np.argmax(llm.scores[len(ids) - 1]))
            t0 = time.perf_counter()
            for _ in range(32):  # one token at a time, as generation runs
                llm.eval([token])
                token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            best_tg = min(best_tg, time.perf_counter() - t0)
        return len(ids) / best_pp, 32 / best_tg, logits
    finally:
        llm.close()


def _kl(p_logits: Any, q_logits: Any) -> float:
    """KL(softmax(p) || softmax(q)) in nats."""
    import numpy as np

    p = np.exp(p_logits - p_logits.max())
    p /= p.sum()
    log_q = q_logits - q_logits.max()
    log_q = log_q - np.log(np.exp(log_q).sum())
    return float((p * (np.log(np.maximum(p, 1e-300)) - log_q)).sum())
