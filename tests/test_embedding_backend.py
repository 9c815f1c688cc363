"""The ONNX Runtime embedding backend: same vectors as torch, cached, checked, and never fatal."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.embed.onnx import GRAPH_VERSION
from desktop_rag.core.errors import ModelLoadError
from desktop_rag.core.models import bundled_embedding_dir

TEXTS = [
    "The pump at station 3 moved 4,210 cubic metres of water in March.",
    "Quarterly revenue rose 12% year over year.",
    " ".join(["A paragraph far longer than the model's window of word pieces."] * 50),
    "x",
]


def _graph_dir(cache: Path, emb: Embedder) -> Path:
    return cache / f"{emb.identity.fingerprint}-v{GRAPH_VERSION}"


@pytest.mark.slow  # loads the real embedding model itself (no fixture the auto-marking sees)
def test_onnx_vectors_match_torch_and_load_without_torch(onnx_cache: Path) -> None:
    model = bundled_embedding_dir()
    assert model is not None
    onnx = Embedder(model, "m", backend="onnx", cache_dir=onnx_cache)
    torch_emb = Embedder(model, "m", backend="torch")
    a, b = onnx.embed(TEXTS), torch_emb.embed(TEXTS)
    assert onnx.active_backend == "onnx" and torch_emb.active_backend == "torch"
    assert a.shape == b.shape == (4, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(axis=1).min()) >= 0.9999
    q = onnx.embed_query("how much water did the pump move")
    assert int(np.argmax(a @ q)) == 0
    manifest = json.loads((_graph_dir(onnx_cache, onnx) / "manifest.json").read_text())
    assert manifest["min_cosine_vs_torch"] >= 0.9999 and manifest["dim"] == 384

    # A fresh process loads the cached graph without importing torch or sentence-transformers.
    code = (
        "import sys; from pathlib import Path; from desktop_rag.core.embed.embedding import Embedder;"
        f"e = Embedder(Path({str(model)!r}), 'm', backend='onnx', cache_dir=Path("
        f"{str(onnx_cache)!r})); v = e.embed(['hello']);"
        "print(e.active_backend, v.shape, 'torch' in sys.modules,"
        " 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["onnx", "(1,", "384)", "False", "False"]


@pytest.mark.slow  # loads the real embedding model itself (no fixture the auto-marking sees)
def test_corrupt_cached_graph_is_rebuilt_not_loaded(tmp_path: Path) -> None:
    model = bundled_embedding_dir()
    assert model is not None
    cache = tmp_path / "onnx"
    first = Embedder(model, "m", backend="onnx", cache_dir=cache)
    ref = first.embed(TEXTS[:2])
    graph = _graph_dir(cache, first) / "model.onnx"
    blob = bytearray(graph.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    graph.write_bytes(bytes(blob))
    again = Embedder(model, "m", backend="onnx", cache_dir=cache)
    assert float((again.embed(TEXTS[:2]) * ref).sum(axis=1).min()) >= 0.9999
    manifest = json.loads((graph.parent / "manifest.json").read_text())
    import hashlib

    assert hashlib.sha256(graph.read_bytes()).hexdigest() == manifest["sha256"]


@pytest.mark.slow  # loads the real embedding model itself (no fixture the auto-marking sees)
def test_model_without_fast_tokenizer_falls_back_to_torch(tmp_path: Path) -> None:
    """``auto`` keeps working on torch where the graph cannot be made; ``onnx`` says why."""
    import shutil

    model = bundled_embedding_dir()
    assert model is not None
    copy = tmp_path / "minilm-no-tokenizer-json"
    shutil.copytree(model, copy)
    (copy / "tokenizer.json").unlink()
    auto = Embedder(copy, "m", backend="auto", cache_dir=tmp_path / "onnx")
    assert auto.embed(TEXTS[:1]).shape == (1, 384)
    assert auto.active_backend == "torch"
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json"):
        Embedder(copy, "m", backend="onnx", cache_dir=tmp_path / "onnx2").load()


def test_unknown_backend_is_refused() -> None:
    model = bundled_embedding_dir()
    assert model is not None
    with pytest.raises(ValueError, match="unknown embedding backend"):
        Embedder(model, "m", backend="tensorrt")


def _export_threads() -> list[threading.Thread]:
    """The live threads waiting for a first start's ONNX export (named ``onnx-export``)."""
    return [t for t in threading.enumerate() if t.name == "onnx-export" and t.is_alive()]


@pytest.mark.slow  # loads the real embedding model itself (no fixture the auto-marking sees)
def test_torch_backend_embeds_questions_on_the_onnx_graph(tmp_path: Path) -> None:
    """With torch for documents, questions go to the ONNX fp32 graph once it is exported (in the
    background on a first start; torch answers meanwhile), with the same vectors."""
    model = bundled_embedding_dir()
    assert model is not None
    cache = tmp_path / "onnx"
    emb = Embedder(model, "m", backend="torch", cache_dir=cache)
    docs = emb.embed(TEXTS)
    first = emb.embed_query("how much water did the pump move")  # torch: nothing exported yet
    assert emb.wait_query_encoder(timeout=300)
    assert (_graph_dir(cache, emb) / "model.onnx").exists()
    again = emb.embed_query("how much water did the pump move")  # now the ONNX session
    assert emb.active_backend == "torch", "documents stay on torch"
    assert float(first @ again) >= 0.9999 and int(np.argmax(docs @ again)) == 0
    # A later start finds the graph at once (no export thread).
    later = Embedder(model, "m", backend="torch", cache_dir=cache)
    later.embed_query("pump")
    assert later.wait_query_encoder(timeout=0), "ready at once: nothing to wait for"
    assert not _export_threads()
    # No cache folder: questions stay on torch.
    plain = Embedder(model, "m", backend="torch")
    assert not plain.wait_query_encoder() and plain.embed_query("pump").shape == (384,)


@pytest.mark.slow  # loads the real embedding model itself
def test_closing_during_a_first_start_export_stops_it_at_once(tmp_path: Path) -> None:
    """Closing the app while the first start's ONNX export runs kills the export child (the
    window must close within seconds); nothing half-written is left, the next start exports."""
    model = bundled_embedding_dir()
    assert model is not None
    cache = tmp_path / "onnx"
    emb = Embedder(model, "m", backend="torch", cache_dir=cache)
    emb.embed_query("pump")  # starts the export aside
    assert _export_threads(), "the first start exports the question encoder aside"
    t0 = time.perf_counter()
    emb.close(wait=False)  # the window's close
    assert time.perf_counter() - t0 < 2.0
    assert not _export_threads(), "close() joined the export thread"
    assert not emb.wait_query_encoder(timeout=0), "questions stay on torch"
    assert not list(cache.rglob("model.onnx")), "a killed export left a graph behind"
    assert emb.embed_query("pump").shape == (384,)  # torch still answers
    again = Embedder(model, "m", backend="torch", cache_dir=cache)
    assert again.wait_query_encoder(timeout=300), "the next start exports again"


def test_environment_selects_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundle selects ONNX with DESKTOP_RAG_EMBEDDING_BACKEND; a wrong value is ignored."""
    from desktop_rag.core.settings import EMBEDDING_BACKEND_ENV, Settings

    settings_file = tmp_path / "settings.json"
    Settings(embedding_backend="torch").save(settings_file)
    monkeypatch.setenv(EMBEDDING_BACKEND_ENV, "onnx")
    assert Settings.load(settings_file).embedding_backend == "onnx"
    assert Settings.load(tmp_path / "missing.json").embedding_backend == "onnx"
    monkeypatch.setenv(EMBEDDING_BACKEND_ENV, "cuda-please")
    assert Settings.load(settings_file).embedding_backend == "torch"
