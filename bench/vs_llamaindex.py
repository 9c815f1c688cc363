"""Indexing side by side: desktop_rag and LlamaIndex's standard pipeline on the same folder.

Usage: python bench/vs_llamaindex.py [--set docugami|covidqa] [--runs 3] [--systems ...]

Needs the optional ``bench`` extra (``pip install -e .[bench]``: LlamaIndex, never an app
dependency). Each run is a fresh child process (fresh data directory, cold caches in the process,
its own peak RSS), and runs alternate between the systems so drift in the machine's speed hits
all of them alike. The systems:

- ``desktop_rag``: ``Engine.index_all`` on the bundled all-MiniLM-L6-v2, as the app indexes.
- ``llamaindex-default``: ``SimpleDirectoryReader`` + ``VectorStoreIndex`` with
  ``HuggingFaceEmbedding`` pointed at the same bundled model folder, LlamaIndex's defaults
  (``SentenceSplitter``: 1,024 tokens, overlap 200).
- ``llamaindex-same``: the same, with ``SentenceSplitter(chunk_size, chunk_overlap)`` set to our
  chunker's target and overlap (``ChunkerConfig``).

Reported per system: median wall time, pages/s and chunks/s, the parse / split / embed split,
files that failed to parse, peak RSS, how many chunks are longer than the model's 256 word-piece
window (the rest of such a chunk is never embedded) and the share of word pieces lost that way,
and retrieval quality on the set's questions (document hit@5, answer-span hit@5, MRR@10, scored
by the same code as ``desktop-rag eval``). Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
SETS = {"docugami": EVAL / "docugami_sec10q", "covidqa": EVAL / "covidqa"}
SYSTEMS = ("desktop_rag", "llamaindex-same", "llamaindex-default")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _window_loss(texts: list[str], model_dir: Path) -> tuple[int, float]:
    """(chunks longer than the model's window, share of all word pieces beyond it)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    limit = 256 - 2  # [CLS] and [SEP]
    lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    over = sum(n > limit for n in lengths)
    lost = sum(max(0, n - limit) for n in lengths)
    return over, lost / max(1, sum(lengths))


def _score(questions: list[Any], search: Any, texts: dict[str, str]) -> dict[str, float | None]:
    """Retrieval metrics with ``desktop_rag.core.evaluation``'s scorer; ``search(q)`` -> hits."""
    from desktop_rag.core.evaluation import RetrievalScores, normalise, passage_supported

    norm = {name: normalise(t) for name, t in texts.items()}
    scores = RetrievalScores(5)
    for q in questions:
        t0 = time.perf_counter()
        hits = search(q.question)
        ms = 1000 * (time.perf_counter() - t0)
        scores.add(q, hits, passage_supported(q, norm), ms, [norm.get(d, "") for d in q.docs])
    s = scores.summary()
    return {k: s[k] for k in ("doc_hit@5", "answer_hit@5", "mrr@10", "retrieval_ms_p50")}


def child_desktop_rag(folder: Path, questions: list[Any], home: Path) -> dict[str, Any]:
    os.environ["DESKTOP_RAG_HOME"] = str(home)
    from desktop_rag.core.engine import Engine
    from desktop_rag.core.models import bundled_embedding_dir

    t0 = time.perf_counter()
    engine = Engine()
    summary = engine.index_all([folder])
    wall = time.perf_counter() - t0
    store = engine.store
    chunk_texts = [r[0] for r in store.con.execute("SELECT text FROM chunks")]
    texts: dict[str, str] = {}
    for f in store.con.execute("SELECT id, path FROM files WHERE status='indexed'").fetchall():
        rows = store.con.execute("SELECT text FROM pages WHERE file_id=? ORDER BY page", (f[0],))
        texts[Path(f[1]).name] = " ".join(r[0] for r in rows)
    quality = _score(questions, lambda q: engine.search(q, 10).hits, texts)
    rss = _peak_rss_mb()
    model_dir = bundled_embedding_dir()
    assert model_dir is not None
    over, lost = _window_loss(chunk_texts, model_dir)
    engine.close()
    return {
        "wall_s": wall,
        "parse_s": summary.extract_s,  # overlapped with embedding (a worker thread)
        "embed_s": summary.embed_s,
        "pages": summary.pages,
        "chunks": len(chunk_texts),
        "failed": [Path(p.path).name for p in summary.problems],
        "peak_rss_mb": rss,
        "over_window": over,
        "lost_share": lost,
        **quality,
    }


def child_llamaindex(
    folder: Path, questions: list[Any], chunk_size: int | None, overlap: int | None
) -> dict[str, Any]:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import logging

    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from desktop_rag.core.models import bundled_embedding_dir
    from desktop_rag.core.types import Hit

    logging.disable(logging.WARNING)  # its per-file parse errors go to the log; we count them
    model_dir = bundled_embedding_dir()
    assert model_dir is not None
    t0 = time.perf_counter()
    embed = HuggingFaceEmbedding(model_name=str(model_dir), device="cpu")
    Settings.embed_model = embed
    Settings.llm = None
    docs = SimpleDirectoryReader(str(folder), raise_on_error=False).load_data()
    t_parse = time.perf_counter()
    splitter = (
        SentenceSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
        if chunk_size
        else SentenceSplitter()
    )
    nodes = splitter.get_nodes_from_documents(docs)
    t_split = time.perf_counter()
    index = VectorStoreIndex(nodes, embed_model=embed)
    t_end = time.perf_counter()
    files = {p.name for p in folder.iterdir() if p.is_file()}
    parsed = {d.metadata.get("file_name") for d in docs if d.text.strip()}
    texts: dict[str, str] = {}
    for d in docs:
        name = d.metadata.get("file_name", "")
        texts[name] = texts.get(name, "") + " " + d.text
    retriever = index.as_retriever(similarity_top_k=10)

    def search(question: str) -> list[Hit]:
        out = []
        for n in retriever.retrieve(question):
            meta = n.node.metadata
            label = str(meta.get("page_label", ""))
            out.append(Hit(0, 0, meta.get("file_path", ""), int(label) if label.isdigit() else None,
                           0, 0, n.node.get_content(), "", float(n.score or 0.0)))  # fmt: skip
        return out

    quality = _score(questions, search, texts)
    rss = _peak_rss_mb()
    over, lost = _window_loss([n.get_content() for n in nodes], model_dir)
    pdf_pages = sum(1 for d in docs if str(d.metadata.get("file_name", "")).endswith(".pdf"))
    other = len({d.metadata.get("file_name") for d in docs if not str(
        d.metadata.get("file_name", "")).endswith(".pdf")})  # fmt: skip
    return {
        "wall_s": t_end - t0,
        "parse_s": t_parse - t0,
        "embed_s": t_end - t_split,
        "pages": pdf_pages + other,
        "chunks": len(nodes),
        "failed": sorted(files - parsed),
        "peak_rss_mb": rss,
        "over_window": over,
        "lost_share": lost,
        **quality,
    }


def run_child(system: str, set_name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="drag-vs-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--child", system, "--set", set_name, "--out", str(out)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=sorted(SETS), default="docugami")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--child", choices=SYSTEMS, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    base = SETS[args.set]
    folder = base / "docs"
    if args.child:
        sys.path.insert(0, str(ROOT))
        from desktop_rag.core.evaluation import load_questions
        from desktop_rag.core.ingest.chunking import ChunkerConfig

        questions = load_questions(base / "questions.jsonl")
        if args.child == "desktop_rag":
            with tempfile.TemporaryDirectory(prefix="drag-vs-home-") as home:
                res = child_desktop_rag(folder, questions, Path(home))
        else:
            cfg = ChunkerConfig()
            same = args.child == "llamaindex-same"
            res = child_llamaindex(folder, questions, cfg.chunk_tokens if same else None,
                                   cfg.overlap_tokens if same else None)  # fmt: skip
        args.out.write_text(json.dumps(res))
        return

    # desktop_rag exports its ONNX graph once per model and machine (about 20 s, measured by
    # bench/startup.py); like LlamaIndex's model files, it is already there when a folder is
    # indexed, so it is made once here, outside the timed runs.
    os.environ["DESKTOP_RAG_ONNX_CACHE"] = tempfile.mkdtemp(prefix="drag-vs-onnx-")
    sys.path.insert(0, str(ROOT))
    from desktop_rag.core.embed.embedding import Embedder
    from desktop_rag.core.models import bundled_embedding_dir
    from desktop_rag.core.settings import Settings

    model_dir = bundled_embedding_dir()
    assert model_dir is not None
    Embedder(model_dir, "m", backend=Settings().embedding_backend,
             cache_dir=Path(os.environ["DESKTOP_RAG_ONNX_CACHE"])).load()  # fmt: skip
    systems = [s for s in args.systems.split(",") if s]
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for r in range(args.runs):
        for s in systems if r % 2 == 0 else reversed(systems):
            res = run_child(s, args.set)
            results[s].append(res)
            print(f"run {r + 1} {s}: {res['wall_s']:.1f} s", file=sys.stderr, flush=True)

    def med(s: str, key: str) -> float:
        return statistics.median(x[key] for x in results[s])

    ours = "desktop_rag"
    print(f"\n{args.set}: {folder} ({args.runs} runs each, alternating; median wall time)\n")
    head = (f"{'system':20} {'wall s':>8} {'pages/s':>8} {'chunks':>7} {'chunks/s':>9} "
            f"{'parse s':>8} {'embed s':>8} {'failed':>7} {'RSS MB':>7} {'>256wp':>7} "
            f"{'lost':>6} {'doc@5':>6} {'ans@5':>6} {'MRR':>6} {'vs ours':>8}")  # fmt: skip
    print(head)
    for s in systems:
        last = results[s][-1]
        wall = med(s, "wall_s")
        ratio = f"{wall / med(ours, 'wall_s'):.2f}x" if ours in results else ""
        parse = med(s, "parse_s")

        def f(v: float | None) -> str:
            return "   n/a" if v is None else f"{v:6.3f}"

        print(f"{s:20} {wall:8.1f} {last['pages'] / wall:8.2f} {last['chunks']:7d} "
              f"{last['chunks'] / wall:9.2f} {parse:8.1f} {med(s, 'embed_s'):8.1f} "
              f"{len(last['failed']):7d} {med(s, 'peak_rss_mb'):7.0f} {last['over_window']:7d} "
              f"{last['lost_share']:6.1%} {f(last['doc_hit@5'])} {f(last['answer_hit@5'])} "
              f"{f(last['mrr@10'])} {ratio:>8}")  # fmt: skip
    for s in systems:
        if results[s][-1]["failed"]:
            print(f"  {s} failed to parse: {', '.join(results[s][-1]['failed'])}")
    print("\nratio = the system's wall time / desktop_rag's; >256wp = chunks longer than the "
          "model's 256 word-piece window; lost = share of word pieces never embedded")  # fmt: skip


if __name__ == "__main__":
    main()
