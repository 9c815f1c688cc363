"""Summaries measured against reference summaries, with the naive baselines beside them.

Usage: python bench/summaries.py ECTSUM_VAL_DIR [--files 30] [--model 5] [--length medium]
       python bench/summaries.py --qmsum QMSUM/data/ALL/jsonl/val.jsonl [--files 30] ...

``--qmsum`` reads QMSum instead (github.com/Yale-LILY/QMSum, MIT licence: meeting transcripts
of about 9k words; each meeting's "main discussion points" answer is its reference summary);
the meetings are written as one "Speaker: words" line per turn.

``ECTSUM_VAL_DIR`` is the validation split of ECTSum (github.com/rajdeep345/ECTSum,
``data/final/val``: ``ects/*.txt`` earnings-call transcripts of 2k-8k words, ``gt_summaries/``
reference bullets heavy on figures). ECTSum is GPL-3.0 data: fetched for evaluation only, never
committed or shipped. The first ``--files`` transcripts (after ``--skip``) are indexed into a temporary data folder
(bundled embedding model) and summarised; printed per method, averaged over the files:

- ``figure recall``: the share of the reference bullets' figures (as the claim check reads
  them: digits inside names such as "Q1" are not figures; compared by value) that appear in the
  summary;
- ``ROUGE-L`` F1 against the reference (``rouge-score``, Porter stemming; Lin 2004);
- ``supported``: the share of summary sentences whose claims the check finds in the sources;
- ``covered``: the share of the transcript's tenths (by line) a summary sentence comes from;
- ``s/10k words``: seconds per 10,000 words of transcript.

Methods: ``lead-10`` (the first ten lines: the naive "first chunks that fit" baseline),
``top-figures-10`` (the ten lines with the most figures, in order), ``extractive`` (ours,
``answer_style=evidence``: no model) and, on the first ``--model`` files, ``model`` (ours with the
bundled model: map-reduce, checked, falling back to the extractive summary when the check fails;
the share of files where the model's summary was shown is printed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _numbers(text: str) -> set[str]:
    """The figures of ``text`` as the claim check reads them (digits inside names such as
    "Q1" or "COVID-19" are not figures), by value as written: "$1.5 billion" and "1.50" -> "1.5"."""
    from desktop_rag.core.search.claims import figures

    return {f"{f.raw:g}" for f in figures(text)}


def _qmsum_as_files(jsonl: Path) -> Path:
    """QMSum meetings as ``ects/NAME.txt`` (a "Speaker: words" line per turn) and
    ``gt_summaries/NAME.txt`` (the general query's answer), in a temporary folder."""
    import json

    root = Path(tempfile.mkdtemp(prefix="qmsum-"))
    (root / "ects").mkdir()
    (root / "gt_summaries").mkdir()
    for i, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines()):
        meeting = json.loads(line)
        turns = [f"{t['speaker']}: {' '.join(t['content'].split())}"
                 for t in meeting["meeting_transcripts"]]  # fmt: skip
        general = meeting["general_query_list"][0]["answer"]
        name = f"meeting_{i:03d}.txt"
        (root / "ects" / name).write_text("\n".join(turns) + "\n", encoding="utf-8")
        (root / "gt_summaries" / name).write_text(general, encoding="utf-8")
    return root


def _score(summary: str, reference: str, scorer: Any) -> tuple[float, float]:
    ref = _numbers(reference)
    recall = len(ref & _numbers(summary)) / len(ref) if ref else 0.0
    rouge = scorer.score(reference, summary)["rougeL"].fmeasure
    return recall, rouge


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("val", type=Path, nargs="?")
    ap.add_argument("--qmsum", type=Path, default=None, help="QMSum's val.jsonl instead")
    ap.add_argument("--files", type=int, default=30)
    ap.add_argument("--skip", type=int, default=0, help="start after this many (held-out files)")
    ap.add_argument("--model", type=int, default=5)
    ap.add_argument("--length", default="medium")
    args = ap.parse_args()
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        print("pip install rouge-score (for this benchmark only)", file=sys.stderr)
        return 1
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    if args.qmsum is not None:
        args.val = _qmsum_as_files(args.qmsum)
    if args.val is None:
        ap.error("give ECTSUM_VAL_DIR or --qmsum")
    ects = sorted((args.val / "ects").glob("*.txt"))[args.skip : args.skip + args.files]
    if not ects:
        print(f"no transcripts in {args.val / 'ects'}", file=sys.stderr)
        return 1
    os.environ["DESKTOP_RAG_HOME"] = tempfile.mkdtemp(prefix="drag-summaries-")
    folder = Path(tempfile.mkdtemp(prefix="ectsum-"))
    for p in ects:
        shutil.copy(p, folder / p.name)

    from desktop_rag.core.engine import Engine
    from desktop_rag.core.generate.owner import Priority
    from desktop_rag.core.tasks.summarize import Summary, summarize

    engine = Engine()
    t0 = time.perf_counter()
    engine.index_all([folder])
    print(f"indexed {len(ects)} transcripts in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {}
    shown = 0
    try:
        for i, path in enumerate(ects):
            text = path.read_text(encoding="utf-8")
            lines = [ln for ln in text.splitlines() if ln.strip()]
            words = len(text.split())
            ref = (args.val / "gt_summaries" / path.name).read_text(encoding="utf-8")
            cut = [len(lines) * k // 10 for k in range(11)]

            def tenth(line_no: int, cut: list[int] = cut) -> int:
                return next(k for k in range(10) if line_no < cut[k + 1])

            lead = lines[:10]
            top = sorted(range(len(lines)), key=lambda j: -len(_numbers(lines[j])))[:10]
            for name, chosen in (("lead-10", list(range(10))), ("top-figures-10", sorted(top))):
                summ = "\n".join(lines[j] for j in chosen if j < len(lines))
                rec, rouge = _score(summ, ref, scorer)
                cov = len({tenth(j) for j in chosen if j < len(lines)}) / 10
                rows.setdefault(name, []).append((rec, rouge, 1.0, cov, 0.0))
            del lead
            methods = [("extractive", "evidence")]
            if i < args.model:
                methods.append(("model", "both"))
            for name, style in methods:
                engine.settings.answer_style = style
                t1 = time.perf_counter()
                final = None
                for ev in summarize(engine, folder / path.name, length=args.length,
                                    priority=Priority.INTERACTIVE):  # fmt: skip
                    if isinstance(ev, Summary):
                        final = ev
                secs = time.perf_counter() - t1
                assert final is not None
                body = re.sub(r"\s*\[\d+(?:,\s*\d+)*\]", "", final.text)
                rec, rouge = _score(body, ref, scorer)
                sup = statistics.mean(s.supported for s in final.sentences)
                offsets = [c.hit.start for c in final.sources if c.cited]
                line_of = [text.count("\n", 0, o) for o in offsets]
                nonempty = [j for j, ln in enumerate(text.splitlines()) if ln.strip()]
                idx = [sum(1 for j in nonempty if j < lo) for lo in line_of]
                cov = len({tenth(min(j, len(lines) - 1)) for j in idx}) / 10
                rows.setdefault(name, []).append((rec, rouge, sup, cov, secs / words * 1e4))
                if name == "model":
                    shown += final.generated
            print(f"  {i + 1}/{len(ects)}", end="\r", file=sys.stderr, flush=True)
    finally:
        engine.close()
    what = "QMSum val" if args.qmsum is not None else "ECTSum val"
    print(f"\n{what}, transcripts {args.skip + 1}-{args.skip + len(ects)}, length {args.length}")
    print(f"{'method':16} {'files':>5} {'figure recall':>14} {'ROUGE-L':>8} {'supported':>10} "
          f"{'covered':>8} {'s/10k words':>12}")  # fmt: skip
    for name, vals in rows.items():
        cols = [statistics.mean(v[k] for v in vals) for k in range(5)]
        print(f"{name:16} {len(vals):5d} {cols[0]:14.3f} {cols[1]:8.3f} {cols[2]:10.3f} "
              f"{cols[3]:8.2f} {cols[4]:12.1f}")  # fmt: skip
    if "model" in rows:
        print(f"model summaries shown (passed the check): {shown} of {len(rows['model'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
