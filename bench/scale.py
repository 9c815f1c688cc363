"""Scale: retrieval latency, build time, memory and disk from 10k to 100k (to 1M) chunks.

Usage: python bench/scale.py [--sizes 10000,100000] [--queries 100] [--seed 0] [--keep DIR]
       [--lexical postings|fts5]

``--lexical fts5`` runs the lexical leg on FTS5 alone (the engine's in-memory postings are
detached), for comparing with the default; with the postings, "open s" includes waiting for them
(loaded from their file, or built from SQLite on the first run over a build).

``--keep DIR`` keeps each size's data folder as ``DIR/<size>`` and reuses it when it already
holds a finished build of that size (the build row is then blank): the 100k build takes several
minutes, the query runs can be repeated on it.

For each size, a child process fills a fresh data directory through the app's own store
(``Store.write_file``: pages, chunks, FTS5 rows and embeddings in one transaction per file of 100
chunks), then builds the hnswlib cache from SQLite (``VectorIndex.ensure``, as after a crash).
Chunk texts are 120-180 words drawn from the word frequencies of the covidqa documents, so BM25
sees realistic document frequencies; embeddings are random unit vectors (embedding 100k chunks
with the model would take hours; random vectors are the hard case for HNSW, with no clusters).
A second child opens the directory as the app does (``Engine``, bundled all-MiniLM-L6-v2 loaded)
and runs the covidqa questions through hybrid retrieval (query embedding, dense top-50, BM25
top-50, fusion, evidence rerank): p50/p95 latency, then its peak RSS (app + models + index).
Prints one row per size. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval" / "covidqa"
PER_FILE = 100


def _vocabulary() -> tuple[list[str], list[int]]:
    counts: Counter[str] = Counter()
    for f in sorted((EVAL / "docs").iterdir())[:60]:
        counts.update(w.strip(".,;:()[]\"'").lower() for w in f.read_text(errors="ignore").split())
    words = [(w, c) for w, c in counts.items() if w.isalpha()]
    return [w for w, _ in words], [c for _, c in words]


def build(home: Path, n: int, seed: int) -> dict[str, float]:
    os.environ["DESKTOP_RAG_HOME"] = str(home)
    import numpy as np

    from desktop_rag.core.embed.embedding import Embedder
    from desktop_rag.core.index.store import Store
    from desktop_rag.core.index.vectors import VectorIndex
    from desktop_rag.core.models import bundled_embedding_dir
    from desktop_rag.core.paths import app_paths
    from desktop_rag.core.settings import Settings
    from desktop_rag.core.types import Chunk, Page

    model = bundled_embedding_dir()
    assert model is not None
    paths = app_paths().ensure()
    embedder = Embedder(model, "all-MiniLM-L6-v2", backend=Settings().embedding_backend,
                        cache_dir=paths.onnx_cache)  # fmt: skip
    embedder.load()  # a first start exports the ONNX graph (once per model): not measured here
    identity = embedder.identity
    store = Store(paths.index_db)
    store.check_identity(identity)
    root = home / "docs"
    cid = store.add_collection(root)
    words, weights = _vocabulary()
    rng = random.Random(seed)
    gen = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for f in range(0, n, PER_FILE):
        texts = [" ".join(rng.choices(words, weights, k=rng.randint(120, 180))) + "."
                 for _ in range(min(PER_FILE, n - f))]  # fmt: skip
        page_text = "\n\n".join(texts)
        chunks, pos = [], 0
        for t in texts:
            chunks.append(Chunk(1, pos, pos + len(t), t, f"synthetic {f // PER_FILE}", len(t) // 5))
            pos += len(t) + 2
        vecs = gen.standard_normal((len(texts), identity.dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.write_file(collection_id=cid, path=str(root / f"file-{f // PER_FILE:05d}.txt"),
                         size=len(page_text), mtime_ns=0, sha256=f"{f:064x}", kind="text",
                         title=f"synthetic {f // PER_FILE}", pages=[Page(1, page_text)],
                         chunks=chunks, embeddings=vecs)  # fmt: skip
    t_sql = time.perf_counter() - t0
    t1 = time.perf_counter()
    VectorIndex(paths.vectors_dir, identity).ensure(store)
    t_hnsw = time.perf_counter() - t1
    store.close()
    db = sum(p.stat().st_size for p in paths.data.glob("index.sqlite3*"))
    vec = sum(p.stat().st_size for p in paths.vectors_dir.iterdir())
    return {"sqlite_s": t_sql, "hnsw_s": t_hnsw, "db_bytes": db, "vec_bytes": vec}


def query(home: Path, n_queries: int, lexical: str) -> dict[str, float]:
    os.environ["DESKTOP_RAG_HOME"] = str(home)
    from desktop_rag.core.engine import Engine

    questions = [json.loads(line)["question"]
                 for line in (EVAL / "questions.jsonl").read_text().splitlines() if line.strip()]  # fmt: skip
    engine = Engine()
    engine.embedder.wait_query_encoder()  # exported by the build (or now, once per --keep DIR)
    if lexical == "fts5":  # the lexical leg on FTS5 alone, as before the in-memory postings
        engine.lexicon.close()
        engine.lexical.postings = None
    t0 = time.perf_counter()
    engine.embedder.load()
    _ = engine.vectors  # loads (and verifies) the hnswlib cache
    if lexical == "postings":
        engine.lexicon.wait()  # loaded from its file (or built the first time) in the background
    open_s = time.perf_counter() - t0
    for q in questions[:5]:  # warm-up: first queries pay page-cache misses
        engine.search(q, 5)
    lat = [engine.search(q, 5).retrieval_ms for q in questions[5 : 5 + n_queries]]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    engine.close()
    q = statistics.quantiles(lat, n=100)
    return {"p50_ms": q[49], "p95_ms": q[94], "open_s": open_s, "rss_mb": rss, "n": len(lat)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--lexical",
        choices=["postings", "fts5"],
        default="postings",
        help="the lexical leg: in-memory postings (the app's) or FTS5 alone (before)",
    )
    ap.add_argument("--keep", type=Path, help="keep (and reuse) each size's build in DIR/<size>")
    ap.add_argument("--child", choices=["build", "query"], help=argparse.SUPPRESS)
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        res = build(args.home, args.n, args.seed) if args.child == "build" else query(
            args.home, args.queries, args.lexical)  # fmt: skip
        print(json.dumps(res))
        return
    # One ONNX graph cache for every size, so the query process starts as the app does on any
    # start after the first (the one-time export is measured by bench/startup.py).
    onnx = args.keep / "onnx" if args.keep else Path(tempfile.mkdtemp(prefix="drag-scale-onnx-"))
    os.environ["DESKTOP_RAG_ONNX_CACHE"] = str(onnx)
    print(f"{'chunks':>9} {'SQLite s':>9} {'hnswlib s':>10} {'open s':>7} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'RSS MB':>7} {'disk MB':>8} {'KB/chunk':>9}")  # fmt: skip
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix=f"drag-scale-{n}-") as tmp:
            home = Path(tmp) if args.keep is None else args.keep / str(n)
            done = home / "build.json"  # written after a finished build (reused by --keep)

            def child(kind: str, home: Path = home, n: int = n) -> dict[str, float]:
                out = subprocess.run([sys.executable, __file__, "--child", kind, "--home",
                                      str(home), "--n", str(n), "--queries", str(args.queries),
                                      "--seed", str(args.seed), "--lexical", args.lexical],
                                     check=True, capture_output=True, text=True)  # fmt: skip
                return dict(json.loads(out.stdout.strip().splitlines()[-1]))

            reused = args.keep is not None and done.is_file()
            if reused:
                b = dict(json.loads(done.read_text()))
            else:
                if args.keep is not None and home.exists():
                    shutil.rmtree(home)  # an unfinished build: start again
                b = child("build")
                if args.keep is not None:
                    done.write_text(json.dumps(b))
            q = child("query")
            disk = b["db_bytes"] + b["vec_bytes"]
            built = (f"{'(reused)':>9} {'':>10}" if reused
                     else f"{b['sqlite_s']:9.1f} {b['hnsw_s']:10.1f}")  # fmt: skip
            print(f"{n:9d} {built} {q['open_s']:7.2f} "
                  f"{q['p50_ms']:7.1f} {q['p95_ms']:7.1f} {q['rss_mb']:7.0f} "
                  f"{disk / 1e6:8.1f} {disk / n / 1024:9.2f}", flush=True)  # fmt: skip
    print(f"\nlatency: hybrid retrieval incl. query embedding, top 5, {args.queries} covidqa "
          "questions after 5 warm-up; RSS: the query process's peak (app + bundled embedding "
          "model + index); disk: SQLite (with FTS5) + hnswlib")  # fmt: skip


if __name__ == "__main__":
    main()
