"""Embedding throughput by backend: torch fp32, ONNX Runtime fp32, ONNX Runtime dynamic int8.

Usage: python bench/embed_backends.py [--n 128] [--rounds 3] [--threads 2]

Embeds ``--n`` covidqa evidence passages repeated to about 256 word pieces (the chunk size the
app embeds), sorted by length, 16 per forward pass, alternating the backends each round so drift
in the machine's speed hits all alike. Prints chunks/s per round and the median, the speed-up
over torch and the cosine of each backend's vectors to torch's (min and mean). The int8 graph is
ONNX Runtime's ``quantize_dynamic`` (per-channel QInt8 weights) of the same export; it is measured,
not used by the app, because it changes the function. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT.parent / "shared" / "eval" / "covidqa" / "questions.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from desktop_rag.core.embed.embedding import Embedder
    from desktop_rag.core.embed.onnx import GRAPH_VERSION, OnnxEncoder, make_session
    from desktop_rag.core.models import bundled_embedding_dir

    model = bundled_embedding_dir()
    assert model is not None
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    texts = [" ".join([r["evidence"][0]["text"]] * 3) for r in rows if r.get("evidence")]
    texts = texts[: args.n]
    cache = Path(tempfile.mkdtemp(prefix="drag-onnx-"))
    torch_emb = Embedder(model, "m", threads=args.threads, backend="torch")
    onnx_emb = Embedder(model, "m", threads=args.threads, backend="onnx", cache_dir=cache)
    onnx_emb.load()
    torch_emb.load()
    graph = cache / f"{onnx_emb.identity.fingerprint}-v{GRAPH_VERSION}" / "model.onnx"
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = graph.with_name("int8.onnx")
    raw_export = onnx_emb._onnx  # the fused fp32 graph; int8 is quantised from it
    import onnx

    quantize_dynamic(str(graph), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})  # fmt: skip
    int8_enc = OnnxEncoder(make_session(int8, args.threads), raw_export.tokenizer,
                           raw_export.input_names, raw_export.dim, int8)  # fmt: skip

    def run_int8(batch: list[str]) -> np.ndarray:
        order = sorted(range(len(batch)), key=lambda i: -len(batch[i]))
        out = np.empty((len(batch), 384), dtype=np.float32)
        for s in range(0, len(order), 16):
            idx = order[s : s + 16]
            out[idx] = int8_enc.encode([batch[i] for i in idx])
        return out

    backends = {
        "torch fp32": torch_emb.embed,
        "onnxruntime fp32": onnx_emb.embed,
        "onnxruntime int8": run_int8,
    }
    rates: dict[str, list[float]] = {k: [] for k in backends}
    vecs: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for name in backends if r % 2 == 0 else reversed(list(backends)):
            t0 = time.perf_counter()
            vecs[name] = backends[name](texts)
            rates[name].append(len(texts) / (time.perf_counter() - t0))
    # One question at a time, as retrieval embeds it (the app's query path, no batching).
    questions = [r["question"] for r in rows][:60]
    query_ms: dict[str, list[float]] = {"torch fp32": [], "onnxruntime fp32": []}
    for q in questions:
        for name, emb in (("torch fp32", torch_emb), ("onnxruntime fp32", onnx_emb)):
            t0 = time.perf_counter()
            emb.embed_query(q)
            query_ms[name].append(1000 * (time.perf_counter() - t0))
    base = statistics.median(rates["torch fp32"])
    print(
        f"{len(texts)} chunks of ~256 word pieces, {args.threads} threads, {args.rounds} rounds\n"
    )
    print(f"{'backend':18} {'chunks/s (median)':>18} {'vs torch':>9} {'cos min':>8} {'cos mean':>9}"
          "   rounds")  # fmt: skip
    for name in backends:
        cos = (vecs[name] * vecs["torch fp32"]).sum(axis=1)
        med = statistics.median(rates[name])
        print(f"{name:18} {med:18.1f} {med / base:8.2f}x {cos.min():8.4f} {cos.mean():9.4f}   "
              + " ".join(f"{x:.1f}" for x in rates[name]))  # fmt: skip
    print(f"\none question at a time ({len(questions)} covidqa questions):")
    for name, ms in query_ms.items():
        qs = statistics.quantiles(ms, n=20)
        print(f"{name:18} p50 {statistics.median(ms):6.1f} ms   p95 {qs[18]:6.1f} ms")


if __name__ == "__main__":
    main()
