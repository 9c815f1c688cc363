"""The F16 copy of the bundled quantized model: built once, checked, reused, rebuilt when damaged,
skipped where it is not faster, and never a reason the model does not load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from desktop_rag.core.generate.llm import LocalLLM
from desktop_rag.core.generate.llm_weights import weights_for_inference

MESSAGES = [{"role": "user", "content": "List the days of the week."}]


def _manifest(copy: Path) -> dict[str, object]:
    return dict(json.loads((copy.parent / "manifest.json").read_text()))


def test_copy_is_built_checked_and_reused(llm_path: Path, gguf_cache: Path) -> None:
    copy = weights_for_inference(llm_path, gguf_cache, 2, min_speedup=0.0)
    assert copy != llm_path and copy.name == "model-f16.gguf" and copy.stat().st_size > 0
    meta = _manifest(copy)
    assert meta["use"] == "f16"
    assert float(meta["max_kl"]) <= 0.05  # type: ignore[arg-type]
    assert meta["source_sha256"] and meta["prompt_tokens_per_s"]
    mtime = copy.stat().st_mtime_ns
    # A second start reuses the copy (no rebuild: same file, same time) and skips the hash.
    assert weights_for_inference(llm_path, gguf_cache, 2, min_speedup=0.0) == copy
    assert copy.stat().st_mtime_ns == mtime
    assert (gguf_cache / "sources.json").exists()


def test_damaged_copy_is_rebuilt_never_loaded(llm_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    copy = weights_for_inference(llm_path, cache, 2, min_speedup=0.0)
    with open(copy, "r+b") as f:
        f.truncate(copy.stat().st_size // 2)
    again = weights_for_inference(llm_path, cache, 2, min_speedup=0.0)
    assert again == copy and again.stat().st_size == _manifest(again)["size"]


def test_not_faster_here_loads_the_original(llm_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert weights_for_inference(llm_path, cache, 1, min_speedup=1000.0) == llm_path
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    assert json.loads((folder / "manifest.json").read_text())["use"] == "original"
    assert not (folder / "model-f16.gguf").exists()  # the copy is deleted, not kept around
    # remembered: no second conversion for the same demand
    assert weights_for_inference(llm_path, cache, 1, min_speedup=1000.0) == llm_path


def test_unconvertible_model_falls_back_to_itself(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    assert weights_for_inference(bad, tmp_path / "cache", 1) == bad


def test_the_app_answers_from_the_copy(llm_path: Path, gguf_cache: Path) -> None:
    """LocalLLM with a weights cache loads the F16 copy (when it measured faster, or forced here)
    and answers as the original does: greedy output of both starts the same way."""
    weights_for_inference(llm_path, gguf_cache, 2, min_speedup=0.0)  # forced: speed-independent
    fast = LocalLLM(llm_path, n_ctx=1024, threads=2, weights_cache=gguf_cache)
    fast.load()
    if fast.load_path == llm_path:
        pytest.skip("the copy measured no faster on this machine; the original is in use")
    assert fast.model_path == llm_path  # the identity used for adapters stays the original
    base = LocalLLM(llm_path, n_ctx=1024, threads=2)
    a = "".join(fast.stream(MESSAGES, max_tokens=24, temperature=0.0, seed=0)).lower()
    b = "".join(base.stream(MESSAGES, max_tokens=24, temperature=0.0, seed=0)).lower()
    assert "monday" in a and "monday" in b
    fast.close()
    base.close()
