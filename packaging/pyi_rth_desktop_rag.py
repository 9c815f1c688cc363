"""PyInstaller runtime hook of the lean bundle: embeddings through the bundled ONNX graph.

The bundle ships no torch: the embedding model runs as the ONNX Runtime graph exported at build
time (``_internal/onnx-cache``). Both settings are defaults: a variable already set in the
environment wins.
"""

from __future__ import annotations

import os
import sys


def _setup() -> None:
    """Select the ONNX embedding backend and point the app at the bundled graph."""
    base = getattr(sys, "_MEIPASS", os.path.dirname(sys.executable))
    os.environ.setdefault("DESKTOP_RAG_EMBEDDING_BACKEND", "onnx")
    os.environ.setdefault("DESKTOP_RAG_ONNX_CACHE", os.path.join(base, "onnx-cache"))


_setup()
