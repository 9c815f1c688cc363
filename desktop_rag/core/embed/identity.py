"""What identifies an embedding model, read without loading it: its folder's fingerprint, its
dimension and sequence length, and the offline switches set before any Hugging Face import.

Light on purpose (no torch, no ONNX Runtime): the store, the vector cache and the abstention
thresholds record and compare identities without paying for a model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import ModelLoadError


def force_offline() -> None:
    """Forbid the Hugging Face libraries any network access (set before they are imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


@dataclass(frozen=True)
class EmbeddingIdentity:
    """What an index records about its embedding model: ``dim`` is the vector length."""

    name: str
    dim: int
    fingerprint: str
    max_seq_tokens: int

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable form."""
        return {
            "name": self.name,
            "dim": self.dim,
            "fingerprint": self.fingerprint,
            "max_seq_tokens": self.max_seq_tokens,
        }


def model_fingerprint(model_dir: Path) -> str:
    """A short sha256 of a model folder's configuration files and weight-file heads and sizes.

    Cheap (reads about 1 MB per weights file) and stable when the folder is copied or moved.
    """
    h = hashlib.sha256()
    for p in sorted(model_dir.rglob("*")):
        if not p.is_file() or p.name in {"README.md", ".gitattributes"}:
            continue
        rel = p.relative_to(model_dir).as_posix()
        h.update(rel.encode())
        h.update(str(p.stat().st_size).encode())
        with p.open("rb") as f:
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


def read_model_dims(model_dir: Path) -> tuple[int, int]:
    """(embedding dimension, max sequence tokens) from a sentence-transformers folder's configs.

    The dimension is the last Dense layer's ``out_features`` if there is one, else the Pooling
    layer's ``word_embedding_dimension``.

    Raises:
        ModelLoadError: the folder is not a sentence-transformers model.
    """

    def read(name: str) -> dict[str, Any]:
        f = model_dir / name
        return dict(json.loads(f.read_text())) if f.exists() else {}

    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        dim = None
        for m in modules:
            cfg = read(f"{m.get('path', '')}/config.json".lstrip("/"))
            if m["type"].endswith("Pooling"):
                dim = cfg.get("word_embedding_dimension", cfg.get("embedding_dimension", dim))
            elif m["type"].endswith("Dense"):
                dim = cfg.get("out_features", dim)
        # sentence-transformers < 5 writes max_seq_length; newer folders rely on the tokenizer's
        # model_max_length; the transformer's position embeddings bound both.
        max_seq = read("sentence_bert_config.json").get("max_seq_length")
        if not isinstance(max_seq, int):
            max_seq = read("tokenizer_config.json").get("model_max_length")
        positions = read("config.json").get("max_position_embeddings", 512)
        if not isinstance(max_seq, int) or max_seq > positions:
            max_seq = min(512, int(positions))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelLoadError(
            f"{model_dir} is not a readable sentence-transformers model: {exc}"
        ) from None
    if not isinstance(dim, int):
        raise ModelLoadError(f"cannot tell the embedding dimension of {model_dir}")
    return dim, int(max_seq)
