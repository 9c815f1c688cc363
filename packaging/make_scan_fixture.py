"""Write a scanned document for the smoke test: a PDF whose only page is a picture of text (no text
layer) and a PNG of the same page, so indexing them needs text recognition (OCR).

    python make_scan_fixture.py FOLDER [--dpi 200]

Needs PyMuPDF: run it with the build environment's or .venv's Python (``smoke_test.py`` picks
one); the bundle itself only reads the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: The fact the smoke test looks for after recognition (and asks about).
FACT = "The harbour dues for 2024 were raised to 31 euros per tonne."
LINES = (
    "Port Authority Notice",
    "",
    FACT,
    "The new rate applies to every vessel that berths at the north quay.",
    "Questions go to the harbour master's office.",
)


def main() -> None:
    """Command line."""
    import pymupdf

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--dpi", type=int, default=200)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)

    with pymupdf.open() as text_doc:  # the page as typed: text, to be photographed
        page = text_doc.new_page(width=595, height=842)  # A4 in points
        y = 90.0
        for i, line in enumerate(LINES):
            size = 20 if i == 0 else 13
            if line:
                page.insert_text((72, y), line, fontsize=size, fontname="helv")
            y += size * 1.8
        pix = page.get_pixmap(dpi=args.dpi, alpha=False)
    pix.save(args.folder / "scan.png")
    with pymupdf.open() as scan:  # the scan: the picture on a page, no text layer
        page = scan.new_page(width=595, height=842)
        page.insert_image(page.rect, pixmap=pix)
        assert not page.get_text().strip(), "the scanned page must have no text layer"
        scan.save(args.folder / "scan.pdf", garbage=3, deflate=True)


if __name__ == "__main__":
    main()
