"""Sentence embeddings with sentence-transformers, strictly offline, on the CPU.

Vectors are L2-normalised float32, so inner product equals cosine similarity. The model's identity
(name, dimension and a fingerprint of its files) is recorded with the index; opening an index with a
different model is refused (:class:`~desktop_rag.core.errors.EmbeddingMismatchError`).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from desktop_rag.core.embed.identity import (
    EmbeddingIdentity,
    force_offline,
    model_fingerprint,
    read_model_dims,
)
from desktop_rag.core.errors import ModelLoadError
from desktop_rag.core.settings import BACKENDS

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from desktop_rag.core.types import CancelToken

log = logging.getLogger(__name__)


class Embedder:
    """A sentence-transformers model loaded lazily on first use.

    ``backend``: ``"torch"`` runs sentence-transformers (loading imports torch: ~2-5 s);
    ``"onnx"`` runs the same pipeline as an ONNX Runtime graph kept in ``cache_dir`` (see
    :mod:`desktop_rag.core.embed.onnx`: exported and checked against torch on first use, then
    loaded without torch); ``"auto"`` is ONNX where that works and torch otherwise. The vectors
    agree to cosine >= 0.9999, so an index may mix them. With ``"torch"`` and a ``cache_dir``,
    questions are embedded by a one-thread ONNX Runtime session of the same fp32 graph beside
    torch (:meth:`embed_query`: 10 ms instead of 50 ms p50 on 2 cores, and a question no longer
    waits for a document batch). Thread-safe: one lock serialises calls into each model.
    ``chunks_embedded`` counts texts embedded by :meth:`embed` (documents, not queries) and
    ``forward_s`` the seconds spent there.

    Raises:
        ValueError: an unknown ``backend``.
    """

    def __init__(
        self,
        model_dir: Path,
        name: str | None = None,
        *,
        threads: int | None = None,
        backend: str = "torch",
        cache_dir: Path | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}; choose from {BACKENDS}")
        self.backend = backend if cache_dir is not None or backend == "torch" else "torch"
        self.cache_dir = cache_dir
        self._onnx: Any = None  # an OnnxEncoder when the ONNX graph is in use
        self.model_dir = Path(model_dir)
        dim, max_seq = read_model_dims(self.model_dir)
        self.model_fingerprint = model_fingerprint(self.model_dir)
        # int8 weights change the function: an index built with them is another model's index.
        int8 = self.backend == "onnx-int8"
        self.identity = EmbeddingIdentity(
            name=(name or self.model_dir.name) + (" (int8)" if int8 else ""),
            dim=dim,
            fingerprint=self.model_fingerprint + ("-int8" if int8 else ""),
            max_seq_tokens=max_seq,
        )
        self.threads = threads  # desired torch threads (None = torch's default); see _encode
        self._applied_threads: int | None = None
        self.batch_size = 16  # chunks per forward pass: a question waits for one at most
        self._model: Any = None
        self._lock = threading.Lock()
        self._queries_waiting = 0  # questions get the model before the next document batch
        self._waiting_lock = threading.Lock()
        self.chunks_embedded = 0
        self.forward_s = 0.0
        # Questions beside torch: an ONNX fp32 session (see embed_query). "unknown" until the
        # first question, "building" while a first export runs, then "ready" or "unavailable".
        self._q_onnx: Any = None
        self._q_state = "unknown" if self.backend == "torch" and cache_dir is not None else "off"
        self._q_lock = threading.Lock()
        self._q_thread: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def dim(self) -> int:
        """The embedding dimension (384 for all-MiniLM-L6-v2)."""
        return self.identity.dim

    def load(self) -> None:
        """Load the model now (otherwise the first call does).

        Raises:
            ModelLoadError: the folder could not be loaded as a sentence-transformers model.
        """
        if self._model is None and self._onnx is None:
            with self._lock:
                self._load_locked()
        # The question encoder too (its graph's checksum is read once, here, not on the first
        # question; a first start begins its export in the background).
        self._query_encoder()

    @property
    def active_backend(self) -> str | None:
        """``"onnx"`` or ``"torch"`` once loaded, None before."""
        if self._onnx is not None:
            return "onnx-int8" if self.backend == "onnx-int8" else "onnx"
        return "torch" if self._model is not None else None

    def _load_locked(self) -> None:
        if self._model is not None or self._onnx is not None:
            return
        force_offline()
        if self.backend in ("auto", "onnx", "onnx-int8"):
            from desktop_rag.core.embed.onnx import OnnxEncoder, OnnxUnavailable

            assert self.cache_dir is not None
            try:
                self._onnx = OnnxEncoder.open(
                    self.model_dir,
                    self.model_fingerprint,
                    self.cache_dir,
                    self.identity.max_seq_tokens,
                    self.threads,
                    int8=self.backend == "onnx-int8",
                )
                self._applied_threads = self.threads
                return
            except Exception as exc:  # any failure: torch is always there
                if self.backend != "auto":
                    raise ModelLoadError(
                        f"the ONNX embedding backend is unavailable for {self.model_dir}: {exc}"
                    ) from exc
                level = logging.INFO if isinstance(exc, OnnxUnavailable) else logging.WARNING
                log.log(level, "embedding with torch: ONNX unavailable (%s)", exc)
        try:
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.logging.disable_progress_bar()
            transformers.logging.set_verbosity_error()

            self._model = SentenceTransformer(
                str(self.model_dir), device="cpu", local_files_only=True, trust_remote_code=False
            )
            self._model.eval()
        except Exception as exc:
            raise ModelLoadError(
                f"could not load the embedding model {self.model_dir}: {exc}"
            ) from exc

    def _encode(self, texts: list[str], threads: int | None = None) -> NDArray[np.float32]:
        """Embed ``texts`` with the loaded model; ``threads`` overrides :attr:`threads` for this
        call (torch only)."""
        with self._lock:
            self._load_locked()
            if self._onnx is not None:
                if self.threads != self._applied_threads:
                    from desktop_rag.core.embed.onnx import make_session

                    self._onnx.session = make_session(self._onnx.graph, self.threads)
                    self._applied_threads = self.threads
                encoded: NDArray[np.float32] = self._onnx.encode(texts)
                return encoded
            import torch

            # Applied here, in the thread that runs the model: OpenMP thread counts are per thread.
            if self.threads and self.threads != self._applied_threads:
                torch.set_num_threads(self.threads)
                self._applied_threads = self.threads
            before = torch.get_num_threads()
            if threads and threads != before:
                torch.set_num_threads(threads)
            try:
                with torch.inference_mode():
                    vecs = self._model.encode(
                        texts,
                        batch_size=self.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    )
            finally:
                if threads and threads != before:
                    torch.set_num_threads(before)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def embed(self, texts: list[str], cancel: CancelToken | None = None) -> NDArray[np.float32]:
        """Embed document chunks: ``(len(texts), dim)`` float32, each row of L2 norm 1.

        Texts are sorted by length and embedded ``batch_size`` at a time (less padding); a question
        waiting for the model goes before the next batch, so it waits for one batch at most.
        ``cancel`` is checked before each batch (16 chunks: about 1 s on 2 busy cores), so a
        close while indexing is not held up by a whole indexing batch.

        Raises:
            Cancelled: ``cancel`` was set.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        t0 = time.perf_counter()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for s in range(0, len(order), self.batch_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            while self._queries_waiting:
                time.sleep(0.002)
            idx = order[s : s + self.batch_size]
            out[idx] = self._encode([texts[i] for i in idx])
        self.forward_s += time.perf_counter() - t0
        self.chunks_embedded += len(texts)
        return out

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """Embed one query: ``(dim,)`` float32 of L2 norm 1 (ahead of queued document batches).

        With the torch backend, the question goes to the ONNX Runtime session of the same fp32
        graph once it is exported (checked to cosine >= 0.9999 against torch, so the vectors are
        interchangeable); the first start exports it in a low-priority child process and embeds with
        torch meanwhile. Any ONNX failure falls back to torch for good.
        """
        encoder = self._query_encoder()
        if encoder is not None:
            try:
                with self._q_lock:
                    vector: NDArray[np.float32] = encoder.encode([text])[0]
                    return vector
            except Exception as exc:  # a broken session: torch is always there
                log.warning("question embedding falls back to torch: %s", exc)
                self._q_onnx, self._q_state = None, "unavailable"
        with self._waiting_lock:
            self._queries_waiting += 1
        try:
            # While the export child runs, one torch thread: two OpenMP threads on 2 cores beside
            # it wait on each other (first-start p95 50-90 ms, 36-45 ms with one thread:
            # bench/fresh_latency.py --first-start).
            row: NDArray[np.float32] = self._encode(
                [text], 1 if self._q_state == "building" else None
            )[0]
            return row
        finally:
            with self._waiting_lock:
                self._queries_waiting -= 1

    def _query_encoder(self) -> Any:
        """The ONNX question encoder when it is ready, else None (starting its export once)."""
        if self._q_state in ("ready", "off", "unavailable", "building"):
            return self._q_onnx if self._q_state == "ready" else None
        with self._q_lock:
            if self._q_state == "unknown":
                try:
                    self._q_onnx = self._open_query_encoder(build=False)
                    self._q_state = "ready"
                except Exception:
                    self._q_state = "building"  # not exported yet (first start): do it aside
                    # The export runs in a child process (export_in_child); this thread waits
                    # for it and is joined by close(), so the next start finds the graph.
                    self._q_thread = threading.Thread(
                        target=self._build_query_encoder, name="onnx-export", daemon=False
                    )
                    self._q_thread.start()
        return self._q_onnx if self._q_state == "ready" else None

    def _open_query_encoder(self, *, build: bool) -> Any:
        from desktop_rag.core.embed.onnx import OnnxEncoder

        assert self.cache_dir is not None
        force_offline()
        return OnnxEncoder.open(
            self.model_dir,
            self.model_fingerprint,
            self.cache_dir,
            self.identity.max_seq_tokens,
            1,  # one thread: a question is ~20 word pieces; never contends with indexing
            build=build,
        )

    def _build_query_encoder(self) -> None:
        if self._closing.is_set():  # closed before the export began: nothing to wait for
            self._q_state = "unavailable"
            return
        try:
            from desktop_rag.core.embed.onnx import export_in_child

            assert self.cache_dir is not None
            export_in_child(self.model_dir, self.model_fingerprint, self.cache_dir,
                            self.identity.max_seq_tokens, self._closing)  # fmt: skip
            encoder = self._open_query_encoder(build=False)
        except Exception as exc:
            log.info("questions are embedded with torch (ONNX graph unavailable: %s)", exc)
            self._q_state = "unavailable"
            return
        self._q_onnx = encoder
        self._q_state = "ready"

    def close(self, *, wait: bool = True) -> None:
        """End the background ONNX export of a first start, if one runs, and join its thread
        (a native thread must end before the interpreter does). ``wait``: let the export
        (about 10-20 s on 2 cores, once per model) finish, so the next start finds the graph (a
        command that ends: the next one starts fast); False: kill the export child now,
        leaving nothing half-written, so a closing window is not held up (the next start
        exports again)."""
        if not wait:
            self._closing.set()  # export_in_child kills the child within 0.1 s
        thread = self._q_thread
        if thread is not None and thread.is_alive():
            log.info("%s the question encoder's ONNX export",
                     "waiting for" if wait else "stopping")  # fmt: skip
            thread.join()
        self._closing.set()

    def wait_query_encoder(self, timeout: float | None = None) -> bool:
        """Prepare the ONNX question encoder now and wait for a first-start export to end (tests,
        benchmarks); True when questions will be embedded by it."""
        self._query_encoder()
        thread = self._q_thread
        if thread is not None:
            thread.join(timeout)
        return self._q_state == "ready"
