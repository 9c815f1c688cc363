"""The embedding model as an ONNX Runtime graph: the same function as sentence-transformers, faster.

On first use a sentence-transformers folder is exported once (torch's TorchScript-based ONNX
exporter, opset 17, the whole pipeline: transformer, pooling, any Dense layers and normalisation),
BERT-family graphs get ONNX Runtime's transformer fusions (attention, LayerNorm, GELU), and the
result is checked against torch on a fixed probe set before it is used: every probe's cosine to
the torch embedding must be at least :data:`MIN_COSINE`, otherwise the graph is refused and the
caller keeps torch. Weights stay fp32: int8 quantisation changes the function (the issue measured
cosine 0.88 for torch's dynamic int8), so vectors in an index stay interchangeable between backends.

The graph lives in the cache folder under the model's fingerprint, written atomically (temp file,
fsync, rename) with a manifest holding its sha256; a graph whose checksum does not match is
re-exported, never loaded. Loading a cached graph imports neither torch nor sentence-transformers
(the tokenizer is the model's own ``tokenizer.json`` through the ``tokenizers`` library).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from desktop_rag.core.files import atomic_write, sha256_file

if TYPE_CHECKING:
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

MIN_COSINE = 0.9999  # per probe text; fp32 graphs measure 1.000000 (to 6 decimals) here
MIN_COSINE_INT8 = 0.97  # int8 weights measure 0.988 min / 0.993 mean on covidqa passages
GRAPH_VERSION = 1  # bump when the export changes, so old graphs are rebuilt
PROBES = (
    "The pump at station 3 moved 4,210 cubic metres of water in March.",
    "Quarterly revenue rose 12% year over year to $81.8 billion.",
    "ACE2 is the receptor that SARS-CoV-2 uses to enter human cells.",
    "q",
    "Überprüfung der Daten: café, naïve, 東京, emoji 🚀 and tabs\tinside.",
    " ".join(["A long paragraph that runs past the window of the model."] * 60),
)


_OPEN_LOCK = threading.Lock()


class OnnxUnavailable(Exception):
    """The ONNX path cannot be used here (missing package, export failed, check failed)."""


def _matches(graph: Path, entry: dict[str, Any]) -> bool:
    """Whether ``graph`` has the size and sha256 that its manifest ``entry`` records."""
    try:
        return bool(graph.stat().st_size == entry["size"] and sha256_file(graph) == entry["sha256"])
    except (OSError, KeyError, TypeError):
        return False


def _runtime_version() -> str:
    try:
        import onnxruntime

        return str(onnxruntime.__version__)
    except ImportError as exc:
        raise OnnxUnavailable(f"onnxruntime is not installed ({exc})") from None


class OnnxEncoder:
    """Embeds texts with an ONNX Runtime session of a sentence-transformers model.

    ``encode(texts)`` returns ``(len(texts), dim)`` float32 rows of L2 norm 1, like
    ``SentenceTransformer.encode(..., normalize_embeddings=True)``. Not thread-safe: the
    :class:`~desktop_rag.core.embed.embedding.Embedder` serialises calls.

    Raises:
        OnnxUnavailable: (from :meth:`open`) the graph can neither be loaded nor built and checked.
    """

    def __init__(
        self, session: Any, tokenizer: Any, input_names: list[str], dim: int, graph: Path
    ) -> None:
        self.graph = graph  # the .onnx file (to rebuild the session with other thread counts)
        self.session = session
        self.tokenizer = tokenizer
        self.input_names = input_names
        self.dim = dim

    @classmethod
    def open(
        cls,
        model_dir: Path,
        fingerprint: str,
        cache_dir: Path,
        max_seq: int,
        threads: int | None,
        *,
        int8: bool = False,
        build: bool = True,
    ) -> OnnxEncoder:
        """Load the cached graph for ``model_dir`` (exporting and checking it first if needed).

        ``fingerprint`` is the model folder's fingerprint (the cache key); ``max_seq`` the model's
        window in word pieces; ``threads`` ONNX Runtime's intra-op threads (None: all cores).
        ``int8``: the graph with dynamically quantised int8 weights (ONNX Runtime's
        ``quantize_dynamic``, per-channel QInt8), checked to cosine >= :data:`MIN_COSINE_INT8`; a
        different function, so the embedder gives it its own identity. ``build=False`` only
        loads a graph already exported (never imports torch; raises OnnxUnavailable otherwise).
        """
        with _OPEN_LOCK:  # one export at a time: documents and questions may both want one
            return cls._open(model_dir, fingerprint, cache_dir, max_seq, threads, int8, build)

    @classmethod
    def _open(
        cls,
        model_dir: Path,
        fingerprint: str,
        cache_dir: Path,
        max_seq: int,
        threads: int | None,
        int8: bool,
        build: bool,
    ) -> OnnxEncoder:
        version = _runtime_version()
        tokenizer = load_tokenizer(model_dir, max_seq)  # before any export: it may be missing
        folder = cache_dir / f"{fingerprint}-v{GRAPH_VERSION}"
        graph, manifest = folder / "model.onnx", folder / "manifest.json"
        try:
            meta: dict[str, Any] = json.loads(manifest.read_text())
        except (OSError, ValueError):
            meta = {}
        if not isinstance(meta, dict) or not _matches(graph, meta):
            if not build:
                raise OnnxUnavailable(f"no checked ONNX graph in {folder} yet")
            if graph.exists() or manifest.exists():
                log.warning("ONNX graph in %s failed its checksum; rebuilding it", folder)
            meta = export(model_dir, folder, max_seq)
        if meta.get("onnxruntime") != version:  # a new runtime may fuse differently: re-check
            if not build:
                raise OnnxUnavailable(f"the graph in {folder} is not checked with this runtime")
            check(cls(make_session(graph, threads), tokenizer, list(meta["inputs"]),
                      int(meta["dim"]), graph), model_dir)  # fmt: skip
            meta["onnxruntime"] = version
            _write_json(manifest, meta)
        if int8:
            graph = folder / "model-int8.onnx"
            if not _matches(graph, meta.get("int8") or {}):
                meta["int8"] = quantize(folder / "model.onnx", graph, tokenizer, meta, model_dir)
                _write_json(manifest, meta)
        session = make_session(graph, threads)
        return cls(session, tokenizer, list(meta["inputs"]), int(meta["dim"]), graph)

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        """``(len(texts), dim)`` float32 embeddings of L2 norm 1 (one forward pass)."""
        batch = self.tokenizer.encode_batch(texts)
        feeds = {}
        for name in self.input_names:
            attr = {"input_ids": "ids", "attention_mask": "attention_mask"}.get(name, "type_ids")
            feeds[name] = np.array([getattr(e, attr) for e in batch], dtype=np.int64)
        out = self.session.run(None, feeds)[0].astype(np.float32, copy=False)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)


EXPORT_TIMEOUT_S = 900.0  # a first export takes about 10-20 s on 2 cores; far past it: stuck
EXPORT_NICE = 10  # the export's CPU priority below the app's (Linux/macOS nice increment)


def export_in_child(
    model_dir: Path,
    fingerprint: str,
    cache_dir: Path,
    max_seq: int,
    stop: threading.Event | None = None,
) -> None:
    """Export and check the fp32 graph of ``model_dir`` into ``cache_dir`` in a child process
    (``spawn``), at a lower CPU priority (:data:`EXPORT_NICE`), and wait for it; a set ``stop``
    kills the child within 0.1 s (the app is closing: the next start exports again).

    Why a process: in a thread, torch's tracing held the GIL and every core while the app's
    first questions were embedded beside it (retrieval p95 0.9 s against a 20 ms p50 over the
    first 53 questions of a first start, bench/fresh_latency.py), and a native export thread
    still running at interpreter exit aborted the process. The child writes the graph
    atomically (see :func:`export`), so a child killed part way leaves nothing half-written.

    Raises:
        OnnxUnavailable: the child could not start, failed, was stopped, or ran past
            :data:`EXPORT_TIMEOUT_S` seconds (it is then killed).
    """
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(
        target=_export_main,
        args=(str(model_dir), fingerprint, str(cache_dir), max_seq),
        name="desktop-rag-onnx-export",
        daemon=True,  # killed by multiprocessing at exit if nobody waits for it
    )
    try:
        proc.start()
    except Exception as exc:  # e.g. a script without the __main__ guard spawn needs
        raise OnnxUnavailable(f"the export process could not start ({exc})") from None
    deadline = time.monotonic() + EXPORT_TIMEOUT_S
    while proc.is_alive() and time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            proc.kill()
            proc.join()
            raise OnnxUnavailable("the export was stopped (the app is closing)")
        proc.join(0.1)
    if proc.is_alive():
        proc.kill()
        proc.join()
        raise OnnxUnavailable(f"the export ran past {EXPORT_TIMEOUT_S:.0f} s and was stopped")
    if proc.exitcode != 0:
        raise OnnxUnavailable(f"the export process failed (exit code {proc.exitcode})")


def _export_main(model_dir: str, fingerprint: str, cache_dir: str, max_seq: int) -> None:
    """The export child: lower its priority, then export, fuse and check (see :func:`export`)."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no os.nice (Windows)
        os.nice(EXPORT_NICE)
    from desktop_rag.core.embed.identity import force_offline

    force_offline()
    OnnxEncoder.open(Path(model_dir), fingerprint, Path(cache_dir), max_seq, 1, build=True)


def load_tokenizer(model_dir: Path, max_seq: int) -> Any:
    """The model's fast tokenizer (``tokenizer.json``), truncating at ``max_seq`` word pieces
    (special tokens included) and padding to the longest text of a batch.

    Raises:
        OnnxUnavailable: the folder has no ``tokenizer.json``.
    """
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.exists():
        raise OnnxUnavailable(f"{model_dir} has no tokenizer.json")
    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_seq)
    cfg_path = model_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    pad_token = str(cfg["pad_token"]) if isinstance(cfg.get("pad_token"), str) else "[PAD]"
    pad_id = tok.token_to_id(pad_token)
    tok.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token=pad_token)
    return tok


def make_session(graph: Path, threads: int | None) -> Any:
    """An ONNX Runtime CPU session with all graph optimisations and ``threads`` intra-op threads."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads or (os.cpu_count() or 1)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # Idle pool threads sleep instead of spinning: indexing runs extraction in another thread on
    # the same cores, and spinning workers took its CPU (ORT fp32 indexed at 15.1 chunks/s with
    # spinning vs 18.6 for torch on docugami, 2 cores).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(graph), so, providers=["CPUExecutionProvider"])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=1).encode("utf-8"))


def quantize(
    fp32: Path, out: Path, tokenizer: Any, meta: dict[str, Any], model_dir: Path
) -> dict[str, Any]:
    """Write the int8 version of the ``fp32`` graph to ``out`` (atomically) and check it.

    Returns the manifest entry (sha256, size, min cosine to torch).

    Raises:
        OnnxUnavailable: quantisation failed or the check fell below :data:`MIN_COSINE_INT8`.
    """
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise OnnxUnavailable(f"cannot quantise here ({exc})") from None
    tmp = out.with_suffix(".tmp.onnx")
    try:
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fmt: skip
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise OnnxUnavailable(f"int8 quantisation failed: {exc}") from None
    enc = OnnxEncoder(make_session(tmp, None), tokenizer, list(meta["inputs"]), int(meta["dim"]),
                      tmp)  # fmt: skip
    try:
        worst = check(enc, model_dir, min_cosine=MIN_COSINE_INT8)
    except OnnxUnavailable:
        tmp.unlink(missing_ok=True)
        raise
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return {"sha256": sha256_file(out), "size": out.stat().st_size, "min_cosine_vs_torch": worst}


def check(
    enc: OnnxEncoder, model_dir: Path, st: Any = None, *, min_cosine: float = MIN_COSINE
) -> float:
    """The smallest cosine between torch's and the graph's embeddings of :data:`PROBES`.

    Raises:
        OnnxUnavailable: below ``min_cosine``.
    """
    if st is None:
        st = _load_st(model_dir)
    import torch

    with torch.inference_mode():
        ref = st.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False)  # fmt: skip
    got = enc.encode(list(PROBES))
    worst = float((ref * got).sum(axis=1).min())
    if worst < min_cosine:
        raise OnnxUnavailable(f"the ONNX graph differs from torch (cosine {worst:.5f})")
    return worst


def _load_st(model_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        str(model_dir), device="cpu", local_files_only=True, trust_remote_code=False
    ).eval()


def export(model_dir: Path, folder: Path, max_seq: int) -> dict[str, Any]:
    """Export, fuse and check the graph of ``model_dir`` into ``folder``; returns its manifest.

    Raises:
        OnnxUnavailable: a package is missing, the export or fusion failed, or the check failed.
    """
    version = _runtime_version()
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import torch
    except ImportError as exc:
        raise OnnxUnavailable(f"cannot export to ONNX here ({exc})") from None
    folder.mkdir(parents=True, exist_ok=True)
    st = _load_st(model_dir)
    names = list(st.tokenizer(["probe"], return_tensors="pt").keys())

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *inputs: Any) -> Any:
            return self.st(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

    sample = st.tokenizer(["a short probe", "a longer probe text for the export"],
                          return_tensors="pt", padding=True)  # fmt: skip
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        raw = Path(tmp) / "raw.onnx"
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(Pipeline().eval(), tuple(sample[n] for n in names), str(raw),
                                  input_names=names, output_names=["sentence_embedding"],
                                  dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                                  opset_version=17, dynamo=False)  # fmt: skip
        except Exception as exc:
            raise OnnxUnavailable(f"ONNX export failed: {exc}") from None
        final = Path(tmp) / "model.onnx"
        fused = _fuse(raw, final, model_dir)
        if not fused:
            os.replace(raw, final)
        session = make_session(final, None)
        tokenizer = load_tokenizer(model_dir, max_seq)
        enc = OnnxEncoder(session, tokenizer, names, 0, final)
        dim = enc.dim = int(enc.encode(["probe"]).shape[1])
        worst = check(enc, model_dir, st)
        with final.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(final, folder / "model.onnx")
    graph = folder / "model.onnx"
    meta = {
        "sha256": sha256_file(graph),
        "size": graph.stat().st_size,
        "inputs": names,
        "dim": dim,
        "fused": fused,
        "min_cosine_vs_torch": worst,
        "onnxruntime": version,
        "torch": torch.__version__,
    }
    _write_json(folder / "manifest.json", meta)
    log.info("exported %s to ONNX (%s, cosine >= %.6f)", model_dir, folder, worst)
    return meta


def _fuse(raw: Path, out: Path, model_dir: Path) -> bool:
    """ONNX Runtime's BERT fusions when the model is BERT-like; False if not applied."""
    try:
        cfg = json.loads((model_dir / "config.json").read_text())
        if cfg.get("model_type") not in {"bert", "roberta", "xlm-roberta", "distilbert"}:
            return False
        from onnxruntime.transformers import optimizer

        opt = optimizer.optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(cfg.get("num_attention_heads", 0)),
            hidden_size=int(cfg.get("hidden_size", 0)),
            opt_level=1,
        )
        opt.save_model_to_file(str(out))
        return True
    except Exception as exc:  # fusion is an optimisation; the plain graph still works
        log.info("ONNX fusion skipped: %s", exc)
        return False
