"""Precision of compare's "figures that differ" on pairs of consecutive 10-Qs, checked on the PDFs.

Usage: python bench/compare_filings.py [--home DIR] [--pairs "2023 Q1 AAPL,2023 Q2 AAPL" ...]
                                       [--show-failures]

For each pair of filings of one company from the shared docugami set (copied into
``HOME/docs`` and indexed there once; ``--home`` reuses an index between runs, default a new
temporary folder), runs :func:`desktop_rag.core.tasks.compare.compare` and checks every
reported difference against the filings themselves, with PyMuPDF's words and their positions
(not the app's extraction or its header reading, so the check does not share the parser's
mistakes). A side of a difference is verified when, on its cited page:

* a row whose label ends (or starts) with the item's label words holds the reported value;
* that value is in the filing's current-period column: of the header years above the
  statement's first row of figures, the leftmost one equal to the year of the period the filing
  covers ("For the quarterly period ended April 1, 2023", on its cover), preferring one with
  that month printed just above it (a balance sheet's "December 31, 2022 | September 24, 2022");
  the row's value nearest that column horizontally must be the reported one.

A difference is correct when both sides are verified (then the two values differ, as
reported). Prints, per pair: the differences reported, how many are verified, the precision,
how many compare periods of different length (a quarter against six months in a cash flow
statement, flagged ``same_span: false``), and the time compare took (index not counted; the
indexing time is printed apart). Not a test.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DOCS = ROOT.parent / "shared" / "eval" / "docugami_sec10q" / "docs"
PAIRS = (
    ("2023 Q1 AAPL", "2023 Q2 AAPL"),
    ("2023 Q1 AMZN", "2023 Q2 AMZN"),
    ("2023 Q1 INTC", "2023 Q2 INTC"),
    ("2023 Q2 MSFT", "2023 Q3 MSFT"),
    ("2023 Q2 NVDA", "2023 Q3 NVDA"),
)
_PERIOD_END = re.compile(
    r"quarterly\s+period\s+ended\s+([A-Za-z]+)\.?\s+(\d{1,2}),?\s*((?:19|20)\d\d)", re.IGNORECASE
)
_NUMBER = re.compile(r"^\$?\(?\$?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\)?%?$")
_YEAR = re.compile(r"^((?:19|20)\d\d),?$")


@dataclass(frozen=True)
class Word:
    x0: float
    y0: float
    x1: float
    y1: float
    text: str

    @property
    def xc(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def yc(self) -> float:
        return (self.y0 + self.y1) / 2


def period_end(pdf: Any) -> tuple[str, int]:
    """(month's first three letters, year) of the period the filing covers, from its cover."""
    for page in pdf.pages(0, min(3, pdf.page_count)):
        m = _PERIOD_END.search(" ".join(page.get_text().split()))
        if m:
            return m.group(1)[:3].lower(), int(m.group(3))
    raise SystemExit("no 'quarterly period ended' on the cover")


def number(text: str) -> float | None:
    if text.strip("$") in ("—", "–", "-"):
        return 0.0
    m = _NUMBER.match(text)
    if m is None:
        return None
    value = float(m.group(1).replace(",", "") + (m.group(2) or ""))
    return -value if "(" in text else value


def lines_of(words: list[Word]) -> list[list[Word]]:
    """Words in visual lines (centres within 3 pt vertically), top to bottom, left to right."""
    out: list[list[Word]] = []
    for w in sorted(words, key=lambda w: (w.yc, w.x0)):
        if out and abs(out[-1][0].yc - w.yc) < 3:
            out[-1].append(w)
        else:
            out.append([w])
    return [sorted(line, key=lambda w: w.x0) for line in out]


def tokens(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def current_column(lines: list[list[Word]], month: str, year: int) -> float | None:
    """The x centre of the current-period column (see the module docstring), or None."""
    first_row = next(
        (i for i, line in enumerate(lines)
         if sum(1 for w in line if number(w.text) is not None and not _YEAR.match(w.text)) >= 2),
        len(lines),
    )  # fmt: skip
    header = [w for line in lines[:first_row] for w in line]
    years = [w for w in header if (m := _YEAR.match(w.text)) and int(m.group(1)) == year]
    if not years:
        return None

    def month_above(y: Word) -> bool:
        return any(
            w.text.lower().startswith(month) and 0 <= y.yc - w.yc <= 30 and abs(w.xc - y.xc) <= 40
            for w in header
        )

    marked = [w for w in years if month_above(w)]
    return min(marked or years, key=lambda w: w.x0).xc


def verify_side(pdf: Any, side: dict[str, Any], item: str) -> tuple[bool, str]:
    """Whether the figure ``side`` (value, number, page) is in the item's row on its page in
    the current-period column; with the reason when not."""
    page = pdf[side["page"] - 1]
    words = [Word(*w[:5]) for w in page.get_text("words")]
    lines = lines_of(words)
    month, year = period_end(pdf)
    col = current_column(lines, month, year)
    if col is None:
        return False, "no current-period column found"
    label = tokens(item.split(" › ")[-1])
    n = min(4, len(label))
    seen = False
    before: list[str] = []  # the words of a label line broken before its figures
    for line in lines:
        # The figures: the numbers right of the line's last word with letters (a label may
        # hold numbers: "15,943,425 shares issued").
        last = max((i for i, w in enumerate(line) if re.search(r"[A-Za-z]", w.text)), default=-1)
        figures = [(w, v) for w in line[last + 1 :] if (v := number(w.text)) is not None]
        text = tokens(" ".join(w.text for w in line[: last + 1]))
        if not figures:
            before = text
            continue
        joined, before = before + text, []
        if not (joined[-n:] == label[-n:] or text[:n] == label[:n] or joined[:n] == label[:n]):
            continue
        seen = True
        nearest = min(figures, key=lambda f: abs(f[0].xc - col))
        if nearest[1] is not None and abs(nearest[1] - side["number"]) < 1e-9:
            return True, ""
    return False, "row not found" if not seen else "value not in the current column"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", type=Path, help="data folder to index into and reuse")
    ap.add_argument("--pairs", nargs="*", help='e.g. "2023 Q1 AAPL,2023 Q2 AAPL"')
    ap.add_argument("--show-failures", action="store_true")
    args = ap.parse_args()
    pairs = [tuple(p.split(",")) for p in args.pairs] if args.pairs else list(PAIRS)
    home = args.home or Path(tempfile.mkdtemp(prefix="compare-bench-"))

    import os

    os.environ["DESKTOP_RAG_HOME"] = str(home)
    import pymupdf

    from desktop_rag.core.engine import Engine
    from desktop_rag.core.paths import app_paths
    from desktop_rag.core.settings import Settings
    from desktop_rag.core.tasks.compare import Comparison, compare

    docs = home / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for stem in {s for p in pairs for s in p}:
        if not (docs / f"{stem}.pdf").exists():
            shutil.copy(DOCS / f"{stem}.pdf", docs / f"{stem}.pdf")
    engine = Engine(app_paths(), Settings())
    try:
        t0 = time.perf_counter()
        summary = engine.index_all([docs])
        print(f"index: {summary.indexed} new, {summary.unchanged} unchanged, "
              f"{time.perf_counter() - t0:.1f} s ({home})")  # fmt: skip
        print(f"{'pair':<30} {'differ':>6} {'verified':>8} {'precision':>9} {'unequal span':>12} "
              f"{'same':>5} {'both':>5} {'changed':>7} {'only a':>6} {'only b':>6} {'time s':>7}")  # fmt: skip
        total = verified_total = 0
        for a, b in pairs:
            t = time.perf_counter()
            result = next(
                e
                for e in compare(engine, docs / f"{a}.pdf", docs / f"{b}.pdf")
                if isinstance(e, Comparison)
            )
            elapsed = time.perf_counter() - t
            verified = 0
            failures = []
            with pymupdf.open(docs / f"{a}.pdf") as pa, pymupdf.open(docs / f"{b}.pdf") as pb:
                for f in result.figures_differ:
                    ok_a, why_a = verify_side(pa, f["a"], f["item"])
                    ok_b, why_b = verify_side(pb, f["b"], f["item"])
                    if ok_a and ok_b and f["a"]["number"] != f["b"]["number"]:
                        verified += 1
                    else:
                        failures.append((f, why_a or "ok", why_b or "ok"))
            n = len(result.figures_differ)
            unequal = sum(1 for f in result.figures_differ if not f["same_span"])
            total += n
            verified_total += verified
            print(f"{a + ' → ' + b[-4:]:<30} {n:>6} {verified:>8} {verified / max(n, 1):>9.3f} "
                  f"{unequal:>12} {result.figures_same:>5} {len(result.both):>5} {len(result.changed):>7} "
                  f"{len(result.only_a):>6} {len(result.only_b):>6} {elapsed:>7.2f}")  # fmt: skip
            if args.show_failures:
                for f, why_a, why_b in failures:
                    print(f"    {f['statement']}: {f['item']} | a {f['a']['value']} p{f['a']['page']}"
                          f" ({why_a}) | b {f['b']['value']} p{f['b']['page']} ({why_b})")  # fmt: skip
        print(f"{'all':<30} {total:>6} {verified_total:>8} {verified_total / max(total, 1):>9.3f}")
    finally:
        engine.close()


if __name__ == "__main__":
    main()
