"""Parsing in a child process: hangs, crashes and memory bombs fail one file, never the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import ExtractionError, UnsupportedFileError
from desktop_rag.core.ingest.extract import extract
from desktop_rag.core.ingest.sandbox import ExtractionSandbox
from desktop_rag.core.paths import app_paths
from desktop_rag.core.settings import Settings
from tests.fakes import FakeEmbedder

HOSTILE = "tests.hostile_extractors:misbehaving_extract"


@pytest.fixture
def sandbox() -> Iterator[ExtractionSandbox]:
    box = ExtractionSandbox(timeout_s=5, memory_limit_bytes=1024**3, extractor=HOSTILE)
    yield box
    box.close()


def _write(folder: Path, name: str, text: str = "A plain note about the harbour tides.") -> Path:
    p = folder / name
    p.write_text(text, encoding="utf-8")
    return p


def test_sandbox_extracts_like_the_parent(corpus: Path) -> None:
    box = ExtractionSandbox()
    try:
        for name in ("orchard.pdf", "station.html", "notes/beekeeping.md"):
            assert box.extract(corpus / name) == extract(corpus / name)
        with pytest.raises(UnsupportedFileError, match="no text"):
            box.extract(corpus / "empty.txt")
        with pytest.raises(ExtractionError, match="not a readable PDF"):
            box.extract(corpus / "broken.pdf")
    finally:
        box.close()


def test_hang_crash_abort_and_memory_bomb_each_fail_one_file(
    sandbox: ExtractionSandbox, tmp_path: Path
) -> None:
    good = _write(tmp_path, "good.txt")
    with pytest.raises(ExtractionError, match=r"longer than 5 s and was stopped"):
        sandbox.extract(_write(tmp_path, "hang.txt"))
    assert sandbox.extract(good).pages[0].text.startswith("A plain note")
    with pytest.raises(ExtractionError, match=r"parser crashed on this file \(SIGSEGV"):
        sandbox.extract(_write(tmp_path, "segfault.txt"))
    with pytest.raises(ExtractionError, match=r"parser crashed on this file \(SIGABRT"):
        sandbox.extract(_write(tmp_path, "abort.txt"))
    with pytest.raises(ExtractionError, match="needs more memory than a document may use"):
        sandbox.extract(_write(tmp_path, "bomb.txt"))
    assert sandbox.extract(good).kind == "text"  # a fresh worker took over each time


def test_indexing_survives_hostile_files(fake_embedder: FakeEmbedder, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    _write(docs, "harbour.txt", "The harbour master records the tides at dawn and at dusk.")
    _write(docs, "segfault-crafted.txt")
    _write(docs, "hang-crafted.txt")
    _write(docs, "lighthouse.md", "# Lighthouse\n\nThe lamp turns twice a minute.")
    box = ExtractionSandbox(timeout_s=5, extractor=HOSTILE)
    engine = Engine(app_paths(), Settings(), embedder=fake_embedder, sandbox=box)
    try:
        summary = engine.index_all([docs])
        assert summary.indexed == 2
        reasons = {Path(p.path).name: p.reason for p in summary.problems}
        assert "crashed" in reasons["segfault-crafted.txt"]
        assert "longer than 5 s" in reasons["hang-crafted.txt"]
        hits = engine.search("When does the harbour master record the tides?", 1).hits
        assert hits[0].file_name == "harbour.txt"
    finally:
        engine.close()
