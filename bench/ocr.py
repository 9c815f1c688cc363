"""Text recognition (OCR): speed and accuracy of the app's RapidOCR path on scans of real filings.

Usage: python bench/ocr.py [--pages 25] [--photocopy-pages N] [--dpi 150 [200]]
       [--scan-dpi 300] [--threads N] [--docs DIR] [--per-page]

Real pages, known text: the docugami SEC 10-Q filings are text-layer PDFs, so each page's text is
known exactly. Pages 1, 3, 5, 10 and 20 of five filings (five companies, four quarters: a cover
page with check boxes, the index, financial statement tables, notes and dense prose), taken
page by page across the filings and cut to ``--pages``. Each page is rendered with PyMuPDF at
``--scan-dpi`` (300, an office scanner's usual setting) and put as the only content of a new
image-only PDF page of the same size: a "scan". Two scans per page:

* clean render: the rendered image as is (RGB, PNG-like, lossless);
* photocopy-like: grayscale, rotated by 1 degree (white corners), Gaussian noise (sigma 12 of
  255, seeded per page) and saved as JPEG at quality 60; of the first ``--photocopy-pages`` pages
  only, when given (a page takes about 10 s on a busy 2-core machine).

The scan page goes through the app's own path, ``recognise_page(scan_page, n, zoom=dpi/72)``
(render at ``--dpi``, RapidOCR, reading-order layout), timed per page with
``time.perf_counter``; the engine start (``ocr_engine()``) and one warm-up page (page 2 of the
first filing, not counted) are timed and reported separately. With two ``--dpi`` values each
page is recognised at both, alternating, so load changes hit both alike.

Accuracy: the reference is the page's text layer in the app's own reading order
(``pdf.page_layout``: table rows on one line with " | " cells, like the OCR layout); the CER
against plain ``page.get_text()`` is printed too. Both texts are normalised: NFKC (ligatures,
no-break spaces), " | " cell separators dropped, all whitespace collapsed to single spaces, so
line breaks and table separators are not recognition errors. CER = Levenshtein distance /
reference length (can exceed 1 when OCR adds text). Word recall = share of the reference's
words (lower case, runs of letters and digits with inner ``.,'``) found in the OCR output,
counted as multisets, so it ignores reading order.

Prints a Markdown table (per filing and total, per dpi and scan kind), the worst pages, the
engine start time and the process's peak RSS. Not a test: timings vary with the machine and
its load (2 cores here; onnxruntime uses all cores unless ``--threads``).
"""

from __future__ import annotations

import argparse
import io
import re
import resource
import statistics
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image

from desktop_rag.core.ingest.extract import ocr
from desktop_rag.core.ingest.extract.pdf import page_layout
from desktop_rag.core.text.citations import CELL_SEP

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT.parent / "shared" / "eval" / "docugami_sec10q" / "docs"
FILINGS = (
    "2022 Q3 AAPL.pdf",
    "2023 Q1 AMZN.pdf",
    "2023 Q2 INTC.pdf",
    "2023 Q3 MSFT.pdf",
    "2022 Q3 NVDA.pdf",
)
PAGE_NUMBERS = (1, 3, 5, 10, 20)  # 1-based
WARMUP = (FILINGS[0], 2)
SCANS = ("clean render", "photocopy-like")
WORD = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*")


@dataclass(frozen=True)
class Result:
    filing: str
    page: int
    dpi: int
    scan: str
    seconds: float
    cer: float
    cer_plain: float
    recall: float
    ref_chars: int
    cells: int  # " | " separators in the reference: how table-like the page is


def normalise(text: str) -> str:
    """NFKC, cell separators dropped, whitespace collapsed to single spaces."""
    text = unicodedata.normalize("NFKC", text).replace(CELL_SEP, " ")
    return " ".join(text.split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert, delete, substitute: 1 each), two rows in numpy.

    Per row, substitution and deletion are vectorised; the insertion chain along the row
    (``cur[j] = min(cur[j], cur[j-1] + 1)``) is a running minimum of ``cur[j] - j``.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bv = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1, dtype=np.int64)
    prev = idx.copy()
    for i, ch in enumerate(a, 1):
        cost = (bv != ord(ch)).astype(np.int64)
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(prev[1:] + 1, prev[:-1] + cost)
        cur = np.minimum.accumulate(cur - idx) + idx
        prev = cur
    return int(prev[-1])


def cer(reference: str, hypothesis: str) -> float:
    return levenshtein(reference, hypothesis) / max(1, len(reference))


def word_recall(reference: str, hypothesis: str) -> float:
    ref = Counter(WORD.findall(reference.lower()))
    hyp = Counter(WORD.findall(hypothesis.lower()))
    total = sum(ref.values())
    return sum((ref & hyp).values()) / total if total else 1.0


def open_pdf(path: Path) -> pymupdf.Document:
    doc = pymupdf.open(path)
    if doc.needs_pass and not doc.authenticate(""):
        raise SystemExit(f"{path.name}: encrypted with a password")
    return doc


def scan_image(page: pymupdf.Page, scan_dpi: int, kind: str, seed: int) -> bytes:
    """The page rendered at ``scan_dpi``, as a PNG (clean) or a photocopy-like JPEG."""
    z = scan_dpi / 72
    pix = page.get_pixmap(matrix=pymupdf.Matrix(z, z), alpha=False, colorspace=pymupdf.csRGB)
    if kind == SCANS[0]:
        return pix.tobytes("png")
    img = Image.frombytes("RGB", (pix.width, pix.height), pix.samples).convert("L")
    img = img.rotate(1.0, resample=Image.Resampling.BILINEAR, fillcolor=255)
    rng = np.random.default_rng(seed)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, 12.0, (img.height, img.width))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=60)
    return out.getvalue()


def make_scan(page: pymupdf.Page, image: bytes) -> tuple[pymupdf.Document, pymupdf.Page]:
    """A one-page, image-only PDF of ``page``'s size showing ``image``."""
    doc = pymupdf.open()
    new = doc.new_page(width=page.rect.width, height=page.rect.height)
    new.insert_image(new.rect, stream=image)
    return doc, new


def recognise(page: pymupdf.Page, image: bytes, number: int, dpi: int) -> tuple[str, float]:
    doc, scan = make_scan(page, image)
    with doc:
        t0 = time.perf_counter()
        text = ocr.recognise_page(scan, number, zoom=dpi / 72).text
        return text, time.perf_counter() - t0


def limit_threads(threads: int) -> None:
    """Make ``ocr_engine()`` start RapidOCR with ``threads`` onnxruntime intra-op threads."""
    import rapidocr

    original = rapidocr.RapidOCR

    def make(params: dict[str, object]) -> object:
        key = "EngineConfig.onnxruntime.intra_op_num_threads"
        return original(params={**params, key: threads})

    rapidocr.RapidOCR = make  # type: ignore[assignment,misc]


def summary_row(label: str, dpi: int, scan: str, rs: list[Result]) -> str:
    secs = [r.seconds for r in rs]
    cers = [r.cer for r in rs]
    worst = max(rs, key=lambda r: r.cer)
    return (
        f"| {label} | {dpi} | {scan} | {len(rs)} | {len(rs) / sum(secs):.2f} "
        f"| {statistics.median(secs):.2f} / {statistics.mean(secs):.2f} "
        f"| {100 * statistics.mean(cers):.1f}% | {100 * statistics.median(cers):.1f}% "
        f"| {100 * worst.cer:.1f}% ({Path(worst.filing).stem} p{worst.page}) "
        f"| {100 * statistics.mean(r.recall for r in rs):.1f}% |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=Path, default=DOCS)
    ap.add_argument("--pages", type=int, default=len(FILINGS) * len(PAGE_NUMBERS))
    ap.add_argument("--dpi", type=int, nargs="+", default=[ocr.OCR_DPI])
    ap.add_argument("--scan-dpi", type=int, default=300)
    ap.add_argument(
        "--photocopy-pages",
        type=int,
        default=None,
        help="photocopy-like scans of the first N pages only",
    )
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    ap.add_argument("--per-page", action="store_true", help="print a row per page too")
    args = ap.parse_args()
    if args.threads:
        limit_threads(args.threads)

    picks = [(f, n) for n in PAGE_NUMBERS for f in FILINGS][: args.pages]
    docs = {f: open_pdf(args.docs / f) for f in {f for f, _ in picks} | {WARMUP[0]}}

    t0 = time.perf_counter()
    ocr.ocr_engine()
    start_s = time.perf_counter() - t0
    warm_page = docs[WARMUP[0]][WARMUP[1] - 1]
    warm_image = scan_image(warm_page, args.scan_dpi, SCANS[0], 0)
    warm_s = recognise(warm_page, warm_image, WARMUP[1], args.dpi[0])[1]

    results: list[Result] = []
    wall0 = time.perf_counter()
    for k, (filing, number) in enumerate(picks):
        page = docs[filing][number - 1]
        ref = normalise(page_layout(page)[0])
        ref_plain = normalise(page.get_text())
        cells = page_layout(page)[0].count(CELL_SEP)
        for scan in (
            SCANS if args.photocopy_pages is None or k < args.photocopy_pages else SCANS[:1]
        ):
            image = scan_image(page, args.scan_dpi, scan, seed=k)
            for dpi in args.dpi if k % 2 == 0 else args.dpi[::-1]:
                text, secs = recognise(page, image, number, dpi)
                hyp = normalise(text)
                c, c_plain, recall = cer(ref, hyp), cer(ref_plain, hyp), word_recall(ref, hyp)
                results.append(
                    Result(filing, number, dpi, scan, secs, c, c_plain, recall, len(ref), cells)
                )
        print(f"  {filing} p{number}: done ({time.perf_counter() - wall0:.0f} s)", flush=True)
    wall = time.perf_counter() - wall0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    threads = args.threads or "all"
    print(
        f"\n{len(picks)} pages of {len(FILINGS)} filings, scanned at {args.scan_dpi} dpi, "
        f"recognised at {' and '.join(map(str, args.dpi))} dpi, onnxruntime threads: {threads}\n"
    )
    print(
        "| filing | dpi | scan | pages | pages/s | s/page (median / mean) | CER mean "
        "| CER median | worst page | word recall |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dpi in args.dpi:
        for scan in SCANS:
            group = [r for r in results if r.dpi == dpi and r.scan == scan]
            if not group:
                continue
            for filing in FILINGS:
                rs = [r for r in group if r.filing == filing]
                if rs:
                    print(summary_row(Path(filing).stem, dpi, scan, rs))
            print(summary_row("**all**", dpi, scan, group))
    print()
    for dpi in args.dpi:
        for scan in SCANS:
            group = [r for r in results if r.dpi == dpi and r.scan == scan]
            if not group:
                continue
            plain = statistics.mean(r.cer_plain for r in group)
            print(
                f"{dpi} dpi, {scan}: mean CER against page.get_text() order "
                f"{100 * plain:.1f}% (page_layout order: "
                f"{100 * statistics.mean(r.cer for r in group):.1f}%)"
            )
    print("\nworst pages (first dpi, clean render):")
    first = [r for r in results if r.dpi == args.dpi[0] and r.scan == SCANS[0]]
    for r in sorted(first, key=lambda r: -r.cer)[:5]:
        print(
            f"  {Path(r.filing).stem} p{r.page}: CER {100 * r.cer:.1f}%, word recall "
            f"{100 * r.recall:.1f}%, {r.ref_chars} chars, {r.cells} table cell separators"
        )
    if args.per_page:
        print("\n| filing | page | dpi | scan | s | CER | word recall | chars | cells |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {Path(r.filing).stem} | {r.page} | {r.dpi} | {r.scan} | {r.seconds:.2f} "
                f"| {100 * r.cer:.1f}% | {100 * r.recall:.1f}% | {r.ref_chars} | {r.cells} |"
            )
    print(f"\nengine start (ocr_engine(), imports included): {start_s:.2f} s")
    print(f"first page (warm-up, not counted): {warm_s:.2f} s")
    print(f"measuring wall time (scans, recognition, CER): {wall:.0f} s")
    print(f"peak RSS of the process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
