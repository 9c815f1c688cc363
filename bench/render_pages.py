"""How long the viewer waits for a page: PageRenderer drawing real filing pages in its sandboxed
worker, cold (drawn by the worker) and cached, with the passage's rectangles found.

Usage: python bench/render_pages.py [PDF] [--pages 20] [--zoom 1.5]

Default PDF: the first shared docugami 10-Q filing (else the bundled quick-reference card). Each
page is asked for with a passage (its first text line of 20+ characters), as a citation click
does. Prints the worker's start time, then per page the cold and cached times (ms: median, p95,
max) and the pixels' size. The time is the caller's wall clock: the request through the pipe,
the drawing and search in the worker, the pixels back. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from desktop_rag.core.ingest.render import PageRenderer

ROOT = Path(__file__).resolve().parents[1]
FILINGS = ROOT.parent / "shared" / "eval" / "docugami_sec10q" / "docs"


def _passages(pdf: Path, pages: int) -> list[str]:
    """A line of 20+ characters of each of the first ``pages`` pages (empty when none)."""
    import pymupdf

    out = []
    with pymupdf.open(pdf) as doc:
        for n in range(min(pages, doc.page_count)):
            lines = [ln.strip() for ln in doc.load_page(n).get_text().splitlines()]
            out.append(next((ln for ln in lines if len(ln) >= 20), ""))
    return out


def _summary(ms: list[float]) -> str:
    p95 = sorted(ms)[max(0, round(0.95 * len(ms)) - 1)]
    return f"median {statistics.median(ms):6.1f}  p95 {p95:6.1f}  max {max(ms):6.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdf", nargs="?", type=Path)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--zoom", type=float, default=1.5)
    args = parser.parse_args()
    pdf = args.pdf
    if pdf is None:
        filings = sorted(FILINGS.glob("*.pdf")) if FILINGS.is_dir() else []
        pdf = filings[0] if filings else ROOT / "resources" / "samples" / "quick-reference.pdf"
    passages = _passages(pdf, args.pages)
    renderer = PageRenderer()
    try:
        t0 = time.perf_counter()
        first = renderer.render(pdf, 1, zoom=args.zoom, passage=passages[0])
        start_ms = (time.perf_counter() - t0) * 1000
        print(f"{pdf.name}: {first.page_count} pages, {len(passages)} drawn at zoom {args.zoom}")
        print(f"first page, worker started on the way: {start_ms:.0f} ms")
        cold, cached, found = [], [], 0
        for n, passage in enumerate(passages[1:], start=2):
            t = time.perf_counter()
            page = renderer.render(pdf, n, zoom=args.zoom, passage=passage)
            cold.append((time.perf_counter() - t) * 1000)
            found += bool(page.rects)
        for n, passage in enumerate(passages[1:], start=2):
            t = time.perf_counter()
            page = renderer.render(pdf, n, zoom=args.zoom, passage=passage)
            cached.append((time.perf_counter() - t) * 1000)
            assert page.cached
        mb = len(first.samples) / 1e6
        print(
            f"cold   (ms/page): {_summary(cold)}   ({first.width}x{first.height} px, {mb:.1f} MB)"
        )
        print(f"cached (ms/page): {_summary(cached)}")
        print(f"passage found on {found} of {len(cold)} pages; cache holds "
              f"{renderer.cached_bytes / 1e6:.0f} MB")  # fmt: skip
    finally:
        renderer.close()


if __name__ == "__main__":
    main()
