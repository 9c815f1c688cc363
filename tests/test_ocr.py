"""Text recognition (OCR) of scanned PDF pages and images, with the real RapidOCR models.

Each test recognises real rendered scans (typeset text turned into pixels); OCR costs seconds
a page, so they are marked slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import UnsupportedFileError
from desktop_rag.core.ingest.extract import extract
from desktop_rag.core.paths import app_paths
from desktop_rag.core.settings import Settings
from desktop_rag.core.types import CancelToken
from tests.conftest import make_pdf, make_scan
from tests.fakes import FakeEmbedder

pytestmark = pytest.mark.slow

DUES = "The harbour dues for 2024 were raised to 31 euros per tonne of cargo."
FERRY = "The night ferry to Roscoff leaves the quay at 22:15 on weekdays."
TIDES = "Spring tides flooded the lower warehouse twice in March."


def _words(text: str) -> set[str]:
    return {w.strip(".,:;").lower() for w in text.split()}


def test_a_scanned_page_is_recognised_with_its_page_number_and_boxes(tmp_path: Path) -> None:
    pdf = make_scan(tmp_path / "minutes.pdf", [FERRY, DUES], text_pages=(1,))
    pages = []
    doc = extract(pdf, on_ocr_page=lambda done, total: pages.append((done, total)))
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.pages[0].boxes == () and FERRY in doc.pages[0].text  # the text layer, as before
    scan = doc.pages[1]
    assert pages == [(0, 1), (1, 1)], "only the page without a text layer is recognised"
    assert len(_words(DUES) & _words(scan.text)) >= len(_words(DUES)) - 1, scan.text
    assert scan.boxes, "each recognised line keeps where it was on the page"
    for box in scan.boxes:
        assert 0 <= box.start < box.end <= len(scan.text)
        assert scan.text[box.start : box.end].strip()
        # the text was typeset from (50, 50) pt on a 595 x 842 pt page, in 12 pt type
        assert 40 <= box.x0 < box.x1 <= 560 and 40 <= box.y0 < box.y1 <= 110, box


def test_images_are_recognised_one_page_per_frame(tmp_path: Path) -> None:
    png = extract(make_scan(tmp_path / "notice.png", [DUES]))
    assert png.kind == "image" and png.title == "notice" and len(png.pages) == 1
    assert {"harbour", "euros", "tonne"} <= _words(png.pages[0].text)
    assert png.pages[0].boxes
    tiff = extract(make_scan(tmp_path / "log.tif", [FERRY, TIDES]))
    assert [p.number for p in tiff.pages] == [1, 2]
    assert {"ferry", "roscoff"} <= _words(tiff.pages[0].text)
    assert {"spring", "warehouse"} <= _words(tiff.pages[1].text)


def test_with_ocr_turned_off_scans_and_images_are_skipped_with_why(tmp_path: Path) -> None:
    scan = make_scan(tmp_path / "scan.pdf", [DUES])
    with pytest.raises(UnsupportedFileError, match="OCR\\) is turned off"):
        extract(scan, ocr=False)
    with pytest.raises(UnsupportedFileError, match="OCR\\), which is turned off"):
        extract(make_scan(tmp_path / "notice.png", [DUES]), ocr=False)
    mixed = extract(make_scan(tmp_path / "mixed.pdf", [FERRY, DUES], text_pages=(1,)), ocr=False)
    assert FERRY in mixed.pages[0].text and mixed.pages[1].text == ""


def test_a_scan_is_indexed_searched_and_its_passage_located(
    fake_engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    make_scan(folder / "minutes.pdf", [FERRY, DUES], text_pages=(1,))
    make_pdf(folder / "other.pdf", [TIDES])
    events = []
    gen = fake_engine.index([folder])
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            summary = stop.value
            break
    assert summary.indexed == 2 and summary.ocr_pages == 1 and summary.ocr_s > 0
    assert any("minutes.pdf: recognising text (OCR), 0 of 1 pages done" in e.current
               for e in events)  # fmt: skip
    assert events[-1].ocr_pages == 1
    fractions = [e.file_fraction for e in events if "OCR" in e.current]
    assert fractions and all(0 <= f <= 1 for f in fractions) and events[-1].file_fraction == 0
    hit = fake_engine.search("harbour dues per tonne of cargo", 1).hits[0]
    assert (hit.file_name, hit.page) == ("minutes.pdf", 2)
    boxes = fake_engine.passage_boxes(hit.path, hit.page, hit.start, hit.end)
    assert boxes and all(b.end > hit.start and b.start < hit.end for b in boxes)
    assert fake_engine.passage_boxes(hit.path, 1, 0, 10) == (), "a text layer needs no boxes"
    # A passage starting and ending inside a recognised line is cut out of the line's box.
    page_text = fake_engine.page_text(hit.path, 2) or ""
    at = page_text.index("dues")
    line = fake_engine.passage_boxes(hit.path, 2, 0, len(page_text))[0]  # "The harbour dues ..."
    (word,) = fake_engine.passage_boxes(hit.path, 2, at, at + 4)
    assert (word.start, word.end) == (at, at + 4) and word.y0 == line.y0
    assert line.x0 + 40 < word.x0 and word.x1 < line.x1 - 100, (line, word)
    assert 10 < word.x1 - word.x0 < 60, word
    # A run with the same settings recognises nothing again.
    assert fake_engine.index_all([folder]).ocr_pages == 0


def test_turning_ocr_on_recognises_the_scans_it_skipped(
    home: Path, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    make_scan(folder / "scan.pdf", [DUES])
    off = Engine(app_paths(), Settings(ocr=False), embedder=fake_embedder)
    try:
        summary = off.index_all([folder])
        assert summary.indexed == 0
        assert "turned off" in summary.problems[0].reason
        assert off.index_all([folder]).problems[0].reason == summary.problems[0].reason
    finally:
        off.close()
    on = Engine(app_paths(), Settings(ocr=True), embedder=fake_embedder)
    try:
        summary = on.index_all([folder])
        assert summary.indexed == 1 and summary.ocr_pages == 1 and not summary.problems
    finally:
        on.close()


def test_cancelling_stops_a_long_scan_between_pages(fake_engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    make_scan(folder / "long.pdf", [DUES, FERRY, TIDES, DUES, FERRY, TIDES])
    cancel = CancelToken()
    gen = fake_engine.index([folder], cancel)
    pages_seen = 0
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            summary = stop.value
            break
        if event.ocr_pages:
            pages_seen = event.ocr_pages
            cancel.cancel()
    assert summary.cancelled and 1 <= pages_seen < 6 and summary.ocr_pages < 6
    assert fake_engine.store.files() == [] or fake_engine.store.files()[0].status != "indexed"
    # The next run starts the file again and finishes it.
    assert fake_engine.index_all([folder]).indexed == 1


def _isolation() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


def test_ocr_works_without_network_and_never_tries_to_download(tmp_path: Path) -> None:
    """RapidOCR fetches missing models over HTTP; ours are named by path inside its wheel, so
    with networking removed (or every connection refused) recognition works and its downloader
    is never called."""
    scan = make_scan(tmp_path / "scan.png", [DUES])
    prefix = _isolation()
    script = f"""
import socket
def refuse(*a, **k):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
import rapidocr.utils.download_file as dl
def no_download(*a, **k):
    raise AssertionError("rapidocr tried to download")
dl.DownloadFile.run = no_download
from pathlib import Path
from desktop_rag.core.ingest.extract import extract
doc = extract(Path({str(scan)!r}))
print("TEXT", doc.pages[0].text)
"""
    env = {**os.environ, "HOME": str(tmp_path)}  # no model cache of a previous run to lean on
    res = subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "harbour" in res.stdout.lower() and "tonne" in res.stdout.lower()


def test_a_scanned_email_attachment_follows_the_ocr_setting(tmp_path: Path) -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "port@example.org", "board@example.org", "Dues"
    msg.set_content("The signed notice is attached.")
    scan = make_scan(tmp_path / "notice.pdf", [DUES])
    msg.add_attachment(scan.read_bytes(), maintype="application", subtype="pdf",
                       filename="notice.pdf")  # fmt: skip
    eml = tmp_path / "dues.eml"
    eml.write_bytes(msg.as_bytes())
    read = extract(eml)
    assert len(read.pages) == 2 and {"harbour", "euros"} <= _words(read.pages[1].text)
    unread = extract(eml, ocr=False)
    assert "harbour" not in " ".join(p.text for p in unread.pages).lower()


def test_a_photograph_is_skipped_before_recognition(tmp_path: Path) -> None:
    """A folder of holiday photos must not cost seconds of OCR each: a picture without a plain
    background is skipped with its reason; a scan or a screenshot is read."""
    from PIL import Image

    from desktop_rag.core.ingest.extract.ocr import plain_background

    datasets = pytest.importorskip("sklearn.datasets")  # a real photograph ships with it
    photo = Image.fromarray(datasets.load_sample_image("china.jpg"))
    photo.save(tmp_path / "photo-of-a-palace.jpg", quality=85)
    assert plain_background(tmp_path / "photo-of-a-palace.jpg") < 0.5
    with pytest.raises(UnsupportedFileError, match="a photograph"):
        extract(tmp_path / "photo-of-a-palace.jpg")
    assert plain_background(make_scan(tmp_path / "notice.png", [DUES])) > 0.8
