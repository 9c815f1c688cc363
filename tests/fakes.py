"""Small fakes for the tests where a real model adds nothing (as simonw/llm's tests do: a fake is a
real subclass of the real class, used through the real code paths).

:class:`FakeEmbedder` is an :class:`~desktop_rag.core.embed.embedding.Embedder` that loads no
model: no torch, no ONNX Runtime. Its vectors are hashed bags of words and character trigrams,
L2-normalised float32, so texts sharing words are near and the store, the vector index, the indexer
and hybrid search run exactly as with the real model, in milliseconds. It is for the logic around
the embeddings (what is re-embedded, counts, resumability, migrations, identities, per-file
reasons), never for retrieval quality: keep the real model (the ``embedder``/``engine`` fixtures)
where the ranking of meanings is what a test checks.
"""

from __future__ import annotations

import hashlib
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.embed.identity import EmbeddingIdentity
from desktop_rag.core.models import bundled_embedding_dir

if TYPE_CHECKING:
    from numpy.typing import NDArray

FAKE_NAME = "fake-hashed-ngrams"
_WORD = re.compile(r"\w+")


@lru_cache(maxsize=1 << 16)
def _features(word: str, dim: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The signed buckets of one word: the word itself (weight 1) and its character trigrams
    (weight 0.5 each), hashed with blake2b (stable across processes, unlike ``hash()``)."""
    grams = [f"w:{word}"] + [f"g:{g}" for g in _trigrams(f"#{word}#")]
    idx: list[int] = []
    val: list[float] = []
    for i, gram in enumerate(grams):
        h = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
        idx.append(h % dim)
        sign = 1.0 if (h >> 63) & 1 else -1.0
        val.append(sign * (1.0 if i == 0 else 0.5))
    return tuple(idx), tuple(val)


def _trigrams(s: str) -> list[str]:
    return [s[i : i + 3] for i in range(max(1, len(s) - 2))]


def hashed_vector(text: str, dim: int) -> NDArray[np.float32]:
    """``text`` as a hashed bag of lower-cased words and their trigrams: ``(dim,)`` float32 of L2
    norm 1 (a text without words gets the first basis vector, never a zero vector)."""
    vec = np.zeros(dim, dtype=np.float64)
    for word in _WORD.findall(text.lower()):
        idx, val = _features(word, dim)
        np.add.at(vec, list(idx), list(val))
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        vec[0], norm = 1.0, 1.0
    return (vec / norm).astype(np.float32)


class FakeEmbedder(Embedder):
    """An :class:`Embedder` that loads no model: deterministic hashed vectors (see the module).

    It keeps the real class's batching and bookkeeping (:meth:`Embedder.embed` sorts, batches,
    counts ``chunks_embedded`` and ``forward_s``) and replaces only the model call. ``batches``
    lists the size of each document batch it encoded and ``queries`` counts questions, so a test
    can tell what was embedded. Its identity is its own (``fake-hashed-ngrams``, fingerprint
    ``fake-hashed-ngrams-v1-<dim>``): an index it built refuses the real model and vice versa.

    The chunker needs a tokenizer: ``tokenizer_dir`` (default: the bundled all-MiniLM-L6-v2
    folder, whose ``tokenizer.json`` is read, never its weights) gives chunks sized exactly as
    with the real model.
    """

    def __init__(
        self,
        *,
        dim: int = 384,
        name: str = FAKE_NAME,
        max_seq_tokens: int = 256,
        tokenizer_dir: Path | None = None,
    ) -> None:
        folder = tokenizer_dir or bundled_embedding_dir()
        assert folder is not None, "the bundled embedding model (its tokenizer) is not installed"
        # backend="torch" without a cache folder: no ONNX question encoder, no export thread.
        super().__init__(folder, name, backend="torch", cache_dir=None)
        self.identity = EmbeddingIdentity(
            name=name,
            dim=dim,
            fingerprint=f"{FAKE_NAME}-v1-{dim}",
            max_seq_tokens=max_seq_tokens,
        )
        self.model_fingerprint = self.identity.fingerprint
        self.batches: list[int] = []
        self.queries = 0
        self._loaded = False
        self._count_lock = threading.Lock()

    @property
    def active_backend(self) -> str | None:
        """``"fake"`` once loaded, None before (as the real one reports its backend)."""
        return "fake" if self._loaded else None

    def _load_locked(self) -> None:
        self._loaded = True  # nothing to load

    def _encode(self, texts: list[str], threads: int | None = None) -> NDArray[np.float32]:
        with self._lock:
            self._load_locked()
            with self._count_lock:
                self.batches.append(len(texts))
            return np.stack([hashed_vector(t, self.dim) for t in texts])

    def embed_query(self, text: str) -> NDArray[np.float32]:
        """One question's vector (counted in ``queries``, not in ``batches``)."""
        with self._count_lock:
            self.queries += 1
        self._load_locked()
        return hashed_vector(text, self.dim)
