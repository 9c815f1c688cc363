"""Gold pages for the docugami 10-Q questions, from the figures their gold answers quote.

Usage: python bench/filing_pages.py [--out bench/data/docugami_pages.jsonl]

The shared docugami set gives gold documents only. Its answers are human-reviewed drafts that
quote the filings' figures ("$82,959 million", "1,092", "26.2%"), so a page that holds a quoted
figure is where a reader would check the answer. For every question, each figure of its answer
with at least 3 significant digits (so "2", "2022" or "Q3" never count: years, quarters and
small counts are on every page) is looked for, as printed, on every page of its gold documents
(PyMuPDF text, not the app's extraction, so the gold does not depend on what is measured). A
page's score is how many of the answer's figures it holds; per gold document the pages with the
top score are gold, if that score is at least 1 and at most 4 pages share it (a figure printed
on many pages, like a share count on every cover, locates nothing). Questions with no located
page are left out. Writes the questions file of ``desktop-rag eval`` with ``page`` filled in,
and prints how many questions and pages it kept. Not a test.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SET = ROOT.parent / "shared" / "eval" / "docugami_sec10q"
MAX_PAGES = 4

# 1,234 / 1,234.5 / 12.5 / 123 (a figure as filings print it; the sign and $ are dropped).
FIGURE = re.compile(
    r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w,]\d)|(?<![\w.,])\d+\.\d+|(?<![\w.,])\d{3,}(?![\w.,]\d)"
)
YEAR = re.compile(r"^(19|20)\d\d$")


def figures(text: str) -> set[str]:
    """The figures of ``text`` with at least 3 significant digits, as printed, years left out."""
    out = set()
    for m in FIGURE.finditer(text):
        f = m.group(0)
        digits = f.replace(",", "").replace(".", "").lstrip("0")
        if len(digits) >= 3 and not YEAR.match(f):
            out.add(f)
    return out


def page_figures(pdf: Path) -> list[set[str]]:
    """The figures on each page of ``pdf`` (index 0 = page 1)."""
    import pymupdf

    with pymupdf.open(pdf) as doc:
        if doc.needs_pass:
            doc.authenticate("")
        return [figures(page.get_text()) for page in doc]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "data" / "docugami_pages.jsonl")
    args = ap.parse_args()
    cache: dict[str, list[set[str]]] = {}
    kept, pages = [], 0
    for line in (SET / "questions.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        q = json.loads(line)
        wanted = figures(q["answer"])
        if not wanted:
            continue
        evidence = []
        for ev in q["evidence"]:
            doc = ev["doc"]
            if doc not in cache:
                cache[doc] = page_figures(SET / "docs" / doc)
            score = [len(wanted & p) for p in cache[doc]]
            top = max(score, default=0)
            best = [i + 1 for i, s in enumerate(score) if s == top]
            if top >= 1 and len(best) <= MAX_PAGES:
                evidence += [{"doc": doc, "page": p, "text": None} for p in best]
        if evidence:
            pages += len(evidence)
            kept.append({"id": q["id"], "question": q["question"], "answer": q["answer"],
                         "evidence": evidence})  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(q) + "\n" for q in kept))
    print(f"{len(kept)} questions with gold pages ({pages} pages, "
          f"{pages / max(len(kept), 1):.1f} a question) -> {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
