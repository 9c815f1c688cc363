"""A generated hostile corpus: every file ends indexed or skipped/failed with a human reason."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from desktop_rag.core.engine import Engine
from desktop_rag.core.ingest.sandbox import ExtractionSandbox
from desktop_rag.core.paths import app_paths
from desktop_rag.core.settings import Settings
from tests.conftest import ORCHARD, make_pdf
from tests.fakes import FakeEmbedder

GOOD = "The harbour master records the tides at dawn and at dusk."


def build_hostile(root: Path, outside: Path) -> None:
    """Write the hostile files into ``root`` (and a target outside it)."""
    root.mkdir(parents=True)
    (root / "good.txt").write_text(GOOD, encoding="utf-8")
    pdf = make_pdf(root / "real.pdf", ORCHARD)
    (root / "truncated.pdf").write_bytes(pdf.read_bytes()[: pdf.stat().st_size // 3])
    (root / "malformed.pdf").write_bytes(b"%PDF-1.7\n" + np.random.default_rng(1).bytes(3000))
    make_pdf(root / "locked.pdf", ["Secret minutes."], user_pw="hunter2", owner_pw="owner")
    (root / "zero.txt").write_bytes(b"")
    with open(root / "huge.txt", "wb") as f:  # sparse: 100 MB declared, nothing written
        f.truncate(100 * 1024 * 1024)
    with zipfile.ZipFile(root / "bomb.docx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * (64 * 1024 * 1024))
    with zipfile.ZipFile(root / "bomb.pptx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("ppt/slides/slide1.xml", b"\0" * (64 * 1024 * 1024))
    (root / "old-binary.pptx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with zipfile.ZipFile(root / "not-a-deck.pptx", "w") as z:
        z.writestr("hello.txt", "a ZIP package, but not a presentation")
    (root / "invalid-utf8.txt").write_bytes(
        b"Tide table \xff\xfe\xfa notes: high water at 06:12 \xc3\x28 and 18:40.\n" * 4
    )
    (root / "utf16.txt").write_text("Le port de Brest: marée haute à 06:12.", encoding="utf-16")
    os.close(os.open(os.fsencode(root) + b"/caf\xe9-latin1-name.txt", os.O_CREAT | os.O_WRONLY))
    with open(os.fsencode(root) + b"/caf\xe9-latin1-name.txt", "wb") as f:
        f.write(b"The cafe by the quay opens at seven.")
    os.symlink("loop-b", root / "loop-a.txt")
    os.symlink("loop-a.txt", root / "loop-b")
    outside.write_text("This file is outside the indexed folder.", encoding="utf-8")
    os.symlink(outside, root / "outside-link.txt")
    os.mkfifo(root / "pipe.txt")
    (root / "vanish.txt").write_text("Gone before it is read.", encoding="utf-8")
    (root / "grow.md").write_text("# Log\n\nThe ferry left at nine.", encoding="utf-8")
    (root / "image.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    # The formats of issue 18, each in a way a real folder holds it broken.
    with zipfile.ZipFile(root / "bomb.xlsx", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (64 * 1024 * 1024))
    (root / "old-binary.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    (root / "binary.csv").write_bytes(bytes(range(256)) * 8)
    with zipfile.ZipFile(root / "no-container.epub", "w") as z:
        z.writestr("mimetype", "application/epub+zip")
    with zipfile.ZipFile(root / "spreadsheet.odt", "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", "<x/>")
    (root / "random.eml").write_bytes(bytes(range(256)) * 4)
    (root / "not-ole.msg").write_bytes(b"Subject: hi\r\n\r\nan .msg that is no Outlook file")
    (root / "bomb.png").write_bytes(_png_header(60_000, 60_000))  # 3.6 gigapixels declared
    (root / "truncated.tiff").write_bytes(b"II*\x00\x08\x00\x00\x00\x01\x00" + b"\0" * 20)


def _png_header(width: int, height: int) -> bytes:
    """A PNG declaring ``width`` x ``height`` grey pixels with almost no data (a pixel bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))  # fmt: skip


def test_hostile_corpus_is_contained(fake_embedder: FakeEmbedder, tmp_path: Path) -> None:
    root = tmp_path / "hostile"
    build_hostile(root, tmp_path / "outside.txt")
    box = ExtractionSandbox(timeout_s=30, extractor="tests.hostile_extractors:vanishing_extract")
    engine = Engine(app_paths(), Settings(), embedder=fake_embedder, sandbox=box)
    try:
        summary = engine.index_all([root])
        reasons = {os.fsencode(Path(p.path).name): p.reason for p in summary.problems}
        names = {os.fsencode(Path(f.path).name): f for f in engine.store.files()}
        indexed = {n for n, f in names.items() if f.status == "indexed"}
        assert {b"good.txt", b"real.pdf", b"utf16.txt", b"invalid-utf8.txt", b"grow.md"} <= indexed
        # MuPDF repairs what it can of a truncated PDF: indexed (the readable pages) or failed.
        assert b"truncated.pdf" in indexed or "PDF" in reasons[b"truncated.pdf"]
        expected = {
            b"malformed.pdf": "PDF",
            b"locked.pdf": "password required",
            b"zero.txt": "no text",
            b"huge.txt": "too large",
            b"bomb.docx": "ZIP bomb",
            b"bomb.pptx": "ZIP bomb",
            b"old-binary.pptx": "old .ppt is not supported",
            b"not-a-deck.pptx": "PowerPoint deck",
            b"loop-a.txt": "symbolic link",
            b"outside-link.txt": "outside the folder",
            b"pipe.txt": "not a regular file",
            b"vanish.txt": "disappeared",
            b"image.jpg": "not a readable image",
            b"bomb.xlsx": "ZIP bomb",
            b"old-binary.xlsx": "old .xls is not supported",
            b"binary.csv": "binary file",
            b"no-container.epub": "no META-INF/container.xml",
            b"spreadsheet.odt": "it is a spreadsheet",
            b"random.eml": "not an email message",
            b"not-ole.msg": "not an Outlook .msg file",
            b"bomb.png": "decompression bomb",
            b"truncated.tiff": "not a readable image",
            # A name that is not UTF-8 cannot be stored or shown faithfully: skipped, with why.
            "caf\ufffd-latin1-name.txt".encode(): "name is not valid UTF-8",
        }
        for name, words in expected.items():
            assert name in reasons, f"{name!r} has no reason: {sorted(reasons)}"
            assert words.lower() in reasons[name].lower(), (name, reasons[name])
        # Nothing else was lost: every good file answers, and the store is consistent.
        assert summary.indexed == len(indexed)
        assert engine.store.con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        hit = engine.search("When does the harbour master record the tides?", 1).hits[0]
        assert hit.file_name == "good.txt"
        assert "outside the indexed folder" not in " ".join(
            h.text for h in engine.search("file outside the indexed folder", 5).hits
        )
    finally:
        engine.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied_file_and_folder(fake_engine: Engine, tmp_path: Path) -> None:
    engine = fake_engine
    root = tmp_path / "perm"
    (root / "closed").mkdir(parents=True)
    (root / "closed" / "inside.txt").write_text("hidden", encoding="utf-8")
    (root / "secret.txt").write_text("no access", encoding="utf-8")
    (root / "ok.txt").write_text(GOOD, encoding="utf-8")
    os.chmod(root / "secret.txt", 0)
    os.chmod(root / "closed", 0)
    try:
        summary = engine.index_all([root])
    finally:
        os.chmod(root / "closed", 0o755)
        os.chmod(root / "secret.txt", 0o644)
    reasons = {Path(p.path).name: p.reason for p in summary.problems}
    assert summary.indexed == 1
    assert "permission denied" in reasons["secret.txt"].lower()
    assert "cannot open folder" in reasons["closed"]
