"""Text recognition (OCR) of scanned pages and images, offline, with RapidOCR.

RapidOCR 3.10 (Apache-2.0) runs PaddleOCR's PP-OCRv6 detection and recognition models (Latin
script languages, Chinese, Japanese) and a text-direction classifier as ONNX graphs on
onnxruntime. The three model files ship inside its wheel; :func:`ocr_engine` names each one
explicitly, so RapidOCR's downloader (it would fetch missing models over HTTP) is never reached:
a missing file is a clear error, never a network call.

A page is rendered with PyMuPDF at :data:`OCR_DPI`; each recognised line segment becomes text in
reading order (lines top to bottom, segments left to right; wide gaps become the table cell
separator PDF tables use) and a :class:`~desktop_rag.core.types.TextBox` giving its characters'
place on the page, so the viewer can highlight a cited passage on the scan.

Runs in the extraction sandbox (:mod:`desktop_rag.core.ingest.sandbox`): one engine per worker
process, started on the first page that needs it (0.7-1.4 s measured), reused for every later
page.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import ExtractionError, UnsupportedFileError
from desktop_rag.core.text.citations import CELL_SEP
from desktop_rag.core.types import Document, Heading, Page, TextBox

log = logging.getLogger(__name__)

#: Rendering resolution for recognition (dots per inch). 150 dpi makes 10 pt type about 21 px
#: tall, enough for the recogniser (it scales lines to 48 px), and keeps a Letter page under the
#: detector's 2,000 px side limit (RapidOCR's ``max_side_len``), so nothing is downscaled again.
OCR_DPI = 150

#: Recognised segments scoring below this (RapidOCR's confidence, 0..1) are dropped: RapidOCR's
#: own default ``text_score``.
MIN_SCORE = 0.5

#: A page whose visible text layer has fewer non-space characters than this, and whose images
#: cover at least :data:`MIN_IMAGE_COVER` of it, is recognised instead (a scan, perhaps with a
#: stamped page number or Bates number on top).
MIN_TEXT_CHARS = 40
MIN_IMAGE_COVER = 0.3

#: Refuse images of more pixels than this (a decompression bomb; a 600 dpi A3 scan is 70 MP).
MAX_IMAGE_PIXELS = 150_000_000

#: An image is read by OCR only if at least this share of it is plain background (within 24 grey
#: levels of its commonest shade): pages, scans and screenshots measured 0.80-0.94 (light or dark
#: background alike), photographs 0.35-0.43, so a folder of photos does not cost seconds each.
MIN_PLAIN_BACKGROUND = 0.5

#: Called with (pages done, pages to recognise) of this document before the first page (0 done)
#: and after each recognised page.
OcrProgress = Callable[[int, int], None]

_ENGINE: Any = None


def model_files() -> dict[str, Path]:
    """The detection, recognition and direction-classifier ONNX files inside the rapidocr wheel.

    Raises:
        ExtractionError: rapidocr is not installed or a model file is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        raise ExtractionError("text recognition (OCR) is not installed (the rapidocr package)")
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = {
        "Det": models / "PP-OCRv6_det_small.onnx",
        "Rec": models / "PP-OCRv6_rec_small.onnx",
        "Cls": models / "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    }
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise ExtractionError(
            f"text recognition (OCR) models are missing from {models}: {', '.join(missing)} "
            "(reinstall desktop-rag's OCR package)"
        )
    return files


def ocr_engine() -> Any:
    """This process's RapidOCR engine, made on first use from the wheel's model files only.

    Raises:
        ExtractionError: rapidocr or its models are missing, or the engine cannot start.
    """
    global _ENGINE
    if _ENGINE is None:
        files = model_files()
        # "error": its warnings ("the text detection result is empty" for a blank page) are
        # not problems of the user's.
        params: dict[str, Any] = {"Global.log_level": "error"}
        for task, path in files.items():
            params[f"{task}.model_path"] = str(path)
            params[f"{task}.model_dir"] = str(path.parent)
        params["Global.model_root_dir"] = str(files["Det"].parent)
        try:
            from rapidocr import RapidOCR

            _ENGINE = RapidOCR(params=params)
        except Exception as exc:
            raise ExtractionError(f"text recognition (OCR) could not start: {exc}") from None
    return _ENGINE


@dataclass(frozen=True)
class _Segment:
    """A recognised line segment: ``x0..y1`` its extent with the page's skew taken out (for
    reading order), ``box`` its upright rectangle on the page (for the highlight), in points."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    box: tuple[float, float, float, float]

    @property
    def middle(self) -> float:
        return (self.y0 + self.y1) / 2


def needs_ocr(page: Any, text: str) -> bool:
    """Whether a PDF page (PyMuPDF ``Page``) with visible text layer ``text`` is a scan to
    recognise: under :data:`MIN_TEXT_CHARS` characters of text, and images covering at least
    :data:`MIN_IMAGE_COVER` of the page."""
    if sum(not c.isspace() for c in text) >= MIN_TEXT_CHARS:
        return False
    area = abs(page.rect)
    if area <= 0:
        return False
    covered = 0.0
    for info in page.get_image_info():
        x0, y0, x1, y1 = info["bbox"]
        w = max(0.0, min(x1, page.rect.x1) - max(x0, page.rect.x0))
        h = max(0.0, min(y1, page.rect.y1) - max(y0, page.rect.y0))
        covered += w * h
    return bool(covered / area >= MIN_IMAGE_COVER)


def recognise_page(page: Any, number: int, *, zoom: float | None = None) -> Page:
    """Recognise the text of a PyMuPDF page rendered at :data:`OCR_DPI` (or ``zoom``: pixels per
    point), as a :class:`Page` numbered ``number`` (1-based) with a box per line segment (points,
    see :class:`~desktop_rag.core.types.TextBox`) and taller-than-body short lines as headings.

    Raises:
        ExtractionError: the OCR engine cannot start.
    """
    import numpy as np
    import pymupdf

    engine = ocr_engine()
    scale = zoom if zoom is not None else OCR_DPI / 72
    pix = page.get_pixmap(matrix=pymupdf.Matrix(scale, scale), alpha=False,
                          colorspace=pymupdf.csRGB)  # fmt: skip
    image = np.frombuffer(pix.samples, dtype=np.uint8).reshape(pix.height, pix.width, pix.n)
    result = engine(np.ascontiguousarray(image[:, :, ::-1]))  # OpenCV's BGR order
    found: list[tuple[str, Any]] = []
    if result.boxes is not None and result.txts is not None:
        for quad, txt, score in zip(result.boxes, result.txts, result.scores, strict=False):
            text = " ".join(str(txt).split())
            if text and float(score) >= MIN_SCORE:
                found.append((text, np.asarray(quad, dtype=np.float64) / scale))
    return layout_page(deskewed(found), number)


def deskewed(found: Sequence[tuple[str, Any]]) -> list[_Segment]:
    """Segments from (text, quad) pairs (quads: ``(4, 2)`` corners in points, clockwise from the
    top left, as RapidOCR gives them), their reading-order extents rotated by the page's skew:
    the median angle of the top edges of segments at least three times as wide as tall (a scan
    fed 1 degree askew puts the end of a table row a line lower than its start)."""
    import math

    import numpy as np

    angles = []
    for _text, q in found:
        dx, dy = q[1] - q[0]
        if dx > 3 * abs(q[3][1] - q[0][1]) > 0:
            angles.append(math.atan2(dy, dx))
    theta = statistics.median(angles) if angles else 0.0
    if abs(theta) < math.radians(0.1):
        theta = 0.0
    cos, sin = math.cos(theta), math.sin(theta)
    turn = np.array([[cos, -sin], [sin, cos]])  # rotates by -theta (row vectors @ turn)
    segments = []
    for text, q in found:
        upright = q @ turn
        (x0, y0), (x1, y1) = upright.min(axis=0), upright.max(axis=0)
        (bx0, by0), (bx1, by1) = q.min(axis=0), q.max(axis=0)
        box = (float(bx0), float(by0), float(bx1), float(by1))
        segments.append(_Segment(text, float(x0), float(y0), float(x1), float(y1), box=box))
    return segments


def layout_page(segments: Sequence[_Segment], number: int) -> Page:
    """Put recognised segments in reading order: lines (segments whose vertical middles fall
    within each other's height) top to bottom, segments left to right joined by a space, or by
    :data:`CELL_SEP` across a gap wider than three character widths (table columns); a blank
    line where the vertical gap exceeds a line height (paragraphs). A short line at least 1.4
    times the median line height is a level-2 heading."""
    lines: list[list[_Segment]] = []
    for seg in sorted(segments, key=lambda s: (s.middle, s.x0)):
        line = lines[-1] if lines else None
        if line is not None:
            top = min(s.y0 for s in line)
            bottom = max(s.y1 for s in line)
            if top <= seg.middle <= bottom and seg.y0 < bottom:
                line.append(seg)
                continue
        lines.append([seg])
    if not lines:
        return Page(number, "")
    heights = [max(s.y1 for s in ln) - min(s.y0 for s in ln) for ln in lines]
    median = statistics.median(heights)
    parts: list[str] = []
    boxes: list[TextBox] = []
    headings: list[Heading] = []
    length = 0  # of the text in parts
    previous_bottom = 0.0
    for line, height in zip(lines, heights, strict=True):
        line.sort(key=lambda s: s.x0)
        if parts:
            parts.append("\n\n" if min(s.y0 for s in line) - previous_bottom > median else "\n")
            length += len(parts[-1])
        line_start = length
        for i, seg in enumerate(line):
            if i:
                char_w = (seg.x1 - seg.x0) / max(1, len(seg.text))
                parts.append(CELL_SEP if seg.x0 - line[i - 1].x1 > 3 * char_w else " ")
                length += len(parts[-1])
            boxes.append(TextBox(length, length + len(seg.text), *map(float, seg.box)))
            parts.append(seg.text)
            length += len(seg.text)
        line_text = "".join(parts)[line_start:] if height >= 1.4 * median else ""
        if line_text and len(line_text) <= 80 and not line_text.endswith("."):
            headings.append(Heading(line_start, 2, line_text))
        previous_bottom = max(s.y1 for s in line)
    return Page(number, "".join(parts), tuple(headings), tuple(boxes))


def plain_background(path: Path) -> float:
    """The share (0..1) of an image's first frame within 24 grey levels of its commonest shade
    (16-level bins), on a 512 px thumbnail: high for a page or a screenshot, low for a photograph.
    Every frame's header is checked first, before anything is decoded.

    Raises:
        ExtractionError: a frame of more than :data:`MAX_IMAGE_PIXELS` pixels, or not an image
            Pillow can read.
    """
    import warnings

    import numpy as np
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                pixels = 0
                for frame in range(getattr(im, "n_frames", 1)):
                    im.seek(frame)
                    pixels = max(pixels, im.size[0] * im.size[1])
                if pixels <= MAX_IMAGE_PIXELS:
                    im.seek(0)
                    im.draft("L", (512, 512))  # JPEG: decode at a reduced size, fast
                    grey = im.convert("L")
                    grey.thumbnail((512, 512))
                    a = np.asarray(grey, dtype=np.int16)
    except Image.DecompressionBombError:
        pixels = MAX_IMAGE_PIXELS + 1
    except Exception as exc:
        raise ExtractionError(f"not a readable image ({exc})") from None
    if pixels > MAX_IMAGE_PIXELS:
        raise ExtractionError(
            f"refused: the image has {pixels / 1e6:,.0f} million pixels "
            f"(limit {MAX_IMAGE_PIXELS / 1e6:,.0f}; a decompression bomb?)"
        )
    if a.size == 0:
        return 0.0
    mode = int(np.bincount((a // 16).ravel(), minlength=16).argmax())
    shade = float(np.median(a[(a // 16) == mode]))
    return float(np.mean(np.abs(a - shade) <= 24))


def extract_image(path: Path, *, on_ocr_page: OcrProgress | None = None) -> Document:
    """Recognise the text of an image file (PNG, JPEG, TIFF; each frame of a multi-page TIFF is a
    page, 1-based) at its own resolution, its long side at most 2,000 px (RapidOCR's
    ``max_side_len``: larger is scaled down there anyway).

    A picture without a plain background (:data:`MIN_PLAIN_BACKGROUND`: a photograph) is skipped
    with that reason before any recognition.

    Raises:
        ExtractionError: not a readable image, too many pixels, or OCR unavailable.
        UnsupportedFileError: a photograph, or no text was recognised (skipped, not failed).
    """
    import pymupdf

    plain = plain_background(path)
    if plain < MIN_PLAIN_BACKGROUND:
        raise UnsupportedFileError(
            f"a photograph, not a page or a screenshot ({plain:.0%} plain background): "
            "not read by text recognition"
        )
    try:
        doc = pymupdf.open(path)
    except Exception as exc:
        raise ExtractionError(f"not a readable image ({exc})") from None
    with doc:
        if doc.is_pdf or doc.page_count == 0:
            raise ExtractionError("not a readable image (its content is not a picture)")
        pages: list[Page] = []
        if on_ocr_page is not None:
            on_ocr_page(0, doc.page_count)
        for i in range(doc.page_count):
            try:
                page = doc.load_page(i)
                images = page.get_images(full=True)
            except Exception as exc:  # a damaged image: MuPDF decodes it here
                raise ExtractionError(f"not a readable image ({exc})") from None
            width, height = (images[0][2], images[0][3]) if images else (0, 0)
            side = max(page.rect.width, page.rect.height, 1.0)
            native = max(width, height) / side if width else OCR_DPI / 72
            try:
                pages.append(recognise_page(page, i + 1, zoom=min(native, 2000 / side)))
            except ExtractionError:
                raise
            except Exception as exc:
                raise ExtractionError(f"not a readable image ({exc})") from None
            if on_ocr_page is not None:
                on_ocr_page(i + 1, doc.page_count)
    if not any(p.text for p in pages):
        raise UnsupportedFileError("no text was recognised in this image")
    return Document(title=path.stem, pages=tuple(pages), kind="image")
