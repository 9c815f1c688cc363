"""The F16 copy of the bundled quantized model: built once, checked, reused, rebuilt when damaged,
skipped where it is not faster, and never a reason the model does not load."""

from __future__ import annotations

import json
from pathlib import Path

from desktop_rag.core.files import sha256_file
from desktop_rag.core.generate.gguf import read_gguf_info
from desktop_rag.core.generate.llm import LocalLLM
from desktop_rag.core.generate.llm_weights import MAX_KL, weights_for_inference

MESSAGES = [{"role": "user", "content": "List the days of the week."}]


def _manifest(copy: Path) -> dict[str, object]:
    return dict(json.loads((copy.parent / "manifest.json").read_text()))


def test_copy_is_built_checked_and_reused(llm_path: Path, gguf_cache: Path) -> None:
    copy = weights_for_inference(llm_path, gguf_cache, 2, min_speedup=0.0)
    assert copy != llm_path and copy.name == "model-f16.gguf"
    info = read_gguf_info(copy)
    assert info.quantization.upper() == "F16", "the copy holds the weights as F16"
    assert info.parameters == read_gguf_info(llm_path).parameters, "the same weights"
    meta = _manifest(copy)
    assert meta["use"] == "f16"
    assert 0.0 <= float(meta["max_kl"]) <= MAX_KL  # type: ignore[arg-type]
    assert meta["source_sha256"] == sha256_file(llm_path), "the cache key is the model's hash"
    assert (meta["size"], meta["mtime_ns"]) == (copy.stat().st_size, copy.stat().st_mtime_ns)
    speeds = meta["prompt_tokens_per_s"]
    assert isinstance(speeds, dict) and all(float(speeds[k]) > 0 for k in ("original", "f16"))
    mtime = copy.stat().st_mtime_ns
    manifest_mtime = (copy.parent / "manifest.json").stat().st_mtime_ns
    # The model's hash is remembered by path, size and time, so a second start skips hashing.
    sources = json.loads((gguf_cache / "sources.json").read_text())
    st = llm_path.stat()
    assert sources[str(llm_path.resolve())] == {
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": meta["source_sha256"]
    }  # fmt: skip
    # A second start reuses the copy: no rebuild (same file, same time, manifest not rewritten).
    assert weights_for_inference(llm_path, gguf_cache, 2, min_speedup=0.0) == copy
    assert copy.stat().st_mtime_ns == mtime
    assert (copy.parent / "manifest.json").stat().st_mtime_ns == manifest_mtime


def test_damaged_copy_is_rebuilt_never_loaded(llm_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    copy = weights_for_inference(llm_path, cache, 2, min_speedup=0.0)
    good_size, good_sha = copy.stat().st_size, sha256_file(copy)
    with open(copy, "r+b") as f:
        f.truncate(good_size // 2)
    again = weights_for_inference(llm_path, cache, 2, min_speedup=0.0)
    assert again == copy
    # Rebuilt whole (the conversion is deterministic), not the half file handed to llama.cpp.
    assert again.stat().st_size == good_size and sha256_file(again) == good_sha
    assert _manifest(again)["size"] == good_size


def test_not_faster_here_loads_the_original(llm_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert weights_for_inference(llm_path, cache, 1, min_speedup=1000.0) == llm_path
    (folder,) = [p for p in cache.iterdir() if p.is_dir()]
    manifest = folder / "manifest.json"
    meta = json.loads(manifest.read_text())
    assert meta["use"] == "original" and float(meta["speedup"]) < 1000.0
    assert [p.name for p in folder.iterdir()] == ["manifest.json"], "the copy is deleted"
    # Remembered: no second conversion for the same demand (the manifest is not rewritten) ...
    written = manifest.stat().st_mtime_ns
    assert weights_for_inference(llm_path, cache, 1, min_speedup=1000.0) == llm_path
    assert manifest.stat().st_mtime_ns == written
    # ... but a lower demand than the one measured against is measured again.
    copy = weights_for_inference(llm_path, cache, 1, min_speedup=0.0)
    assert copy == folder / "model-f16.gguf" and manifest.stat().st_mtime_ns != written


def test_unconvertible_model_falls_back_to_itself(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    cache = tmp_path / "cache"
    assert weights_for_inference(bad, cache, 1) == bad
    left = [p.name for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert not [n for n in left if n.endswith(".gguf") or ".tmp" in n], left


def test_the_app_answers_from_the_copy(llm_path: Path, gguf_cache: Path) -> None:
    """LocalLLM with a weights cache loads the file :func:`weights_for_inference` chose (the F16
    copy where it measured faster here, else the original), keeps the original as its identity,
    and the F16 copy answers as the original does: greedy output of both starts the same way."""
    chosen = weights_for_inference(llm_path, gguf_cache, 2)  # the app's own demand
    app = LocalLLM(llm_path, n_ctx=1024, threads=2, weights_cache=gguf_cache)
    app.load()
    assert app.load_path == chosen
    assert app.model_path == llm_path  # the identity used for adapters stays the original
    app.close()
    copy = weights_for_inference(llm_path, gguf_cache, 2, min_speedup=0.0)  # forced
    assert copy != llm_path
    fast = LocalLLM(copy, n_ctx=1024, threads=2)
    base = LocalLLM(llm_path, n_ctx=1024, threads=2)
    a = "".join(fast.stream(MESSAGES, max_tokens=24, temperature=0.0, seed=0)).lower()
    b = "".join(base.stream(MESSAGES, max_tokens=24, temperature=0.0, seed=0)).lower()
    fast.close()
    base.close()
    assert "monday" in a and a.split()[:4] == b.split()[:4], (a, b)
