"""Chunks fit the embedding model, keep exact spans, overlap, and carry their headings."""

from __future__ import annotations

import itertools
from pathlib import Path

from desktop_rag.core.ingest.chunking import Chunker, ChunkerConfig, embedding_text, load_tokenizer
from desktop_rag.core.models import bundled_embedding_dir
from desktop_rag.core.types import Document, Heading, Page


def _chunker(**kw: int) -> Chunker:
    model = bundled_embedding_dir()
    assert model is not None
    return Chunker(load_tokenizer(str(model)), ChunkerConfig(**kw))


LONG = " ".join(
    f"Sentence number {i} explains how the pump station {i % 7} moves water uphill."
    for i in range(300)
)


def test_chunks_fit_256_word_pieces_and_spans_are_exact() -> None:
    chunker = _chunker()
    title = "A very long document title " * 10
    doc = Document(title=title, pages=(Page(3, LONG),), kind="pdf")
    chunks = chunker.chunk_document(doc)
    assert len(chunks) > 5
    for c in chunks:
        assert c.page == 3
        assert LONG[c.start : c.end] == c.text
        n = len(chunker.tokenizer.encode(embedding_text(c)).ids)  # with [CLS] and [SEP]
        assert n <= 256, n
    # Whole text covered, in order, with overlap between neighbours.
    assert chunks[0].start == 0 and chunks[-1].end == len(LONG)
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end, "neighbouring chunks overlap"
        assert b.start > a.start


def test_chunks_end_and_start_at_sentence_boundaries() -> None:
    chunks = _chunker(chunk_tokens=60, overlap_tokens=15).chunk_document(
        Document("t", (Page(None, LONG),), "text")
    )
    assert len(chunks) > 5  # else the loops below would check nothing
    for c in chunks[:-1]:
        assert c.text.endswith("."), c.text[-30:]
    for c in chunks[1:]:
        assert c.text.startswith("Sentence"), c.text[:30]


def test_heading_path_travels_with_chunk() -> None:
    text = (
        "# Guide\n\nIntro.\n\n## Install\n\n"
        + LONG[:3000]
        + "\n\n## Uninstall\n\nRemove the folder."
    )
    headings = (
        Heading(0, 1, "Guide"),
        Heading(text.index("## Install"), 2, "Install"),
        Heading(text.index("## Uninstall"), 2, "Uninstall"),
    )
    chunks = _chunker(chunk_tokens=80).chunk_document(
        Document("Guide", (Page(None, text, headings),), "markdown")
    )
    # "Intro." is two tokens: the first chunk is mostly the Install section, which heads it.
    assert chunks[0].context == "Guide › Install"
    assert chunks[0].text.startswith("# Guide")
    assert sum(c.context == "Guide › Install" for c in chunks) > 1
    assert chunks[-1].context == "Guide › Uninstall"
    assert "Remove the folder." in chunks[-1].text


def test_empty_page_gives_no_chunks(tmp_path: Path) -> None:
    assert _chunker().chunk_document(Document("t", (Page(1, "   \n"),), "pdf")) == []
