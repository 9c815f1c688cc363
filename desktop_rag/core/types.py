"""Plain value types shared by every layer (frozen dataclasses, no behaviour beyond helpers)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

from desktop_rag.core.errors import Cancelled


class CancelToken:
    """A thread-safe flag that long work checks between steps (and llama.cpp checks per token).

    It also pauses: :meth:`checkpoint` blocks while paused and raises once cancelled.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        """Ask the work to stop at its next check (also ends a pause)."""
        self._event.set()
        self._running.set()

    def pause(self) -> None:
        """Make :meth:`checkpoint` block until :meth:`resume` or :meth:`cancel`."""
        self._running.clear()

    def resume(self) -> None:
        """End a pause."""
        self._running.set()

    @property
    def paused(self) -> bool:
        """True while paused."""
        return not self._running.is_set()

    def checkpoint(self) -> None:
        """Wait while paused, then raise :class:`Cancelled` if cancel was requested."""
        self._running.wait()
        self.raise_if_cancelled()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`~desktop_rag.core.errors.Cancelled` if cancel was requested."""
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Heading:
    """A heading found in a page's text: ``offset`` is its character offset in that page's text."""

    offset: int
    level: int
    text: str


@dataclass(frozen=True)
class TextBox:
    """Where characters ``start:end`` of a page's text were recognised (OCR) on the page: a
    rectangle in points (1/72 inch) of the page as rendered (origin top left, y downwards, the
    page's rotation applied), the space the viewer draws in."""

    start: int
    end: int
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Page:
    """The text of one page (PDF) or of a whole text-like document (``number`` is None).

    ``number`` is 1-based (the physical page index of the PDF file). ``boxes`` is non-empty only
    for text recognised from an image of the page (OCR): one box per recognised line segment, so
    a cited passage can be highlighted on the scanned page.
    """

    number: int | None
    text: str
    headings: tuple[Heading, ...] = ()
    boxes: tuple[TextBox, ...] = ()


@dataclass(frozen=True)
class Document:
    """An extracted document: its title and pages in reading order.

    ``genre`` is what the document is (:func:`~desktop_rag.core.text.filings.detect_genre`:
    "filing", "financial_report" or "other"; None: not detected by the extractor, the indexer
    detects it from the pages) and ``genre_basis`` why, in words.
    """

    title: str
    pages: tuple[Page, ...]
    kind: str  # a format name of formats.SUPPORTED_SUFFIXES: "pdf", "docx", "xlsx", "image", ...
    genre: str | None = None
    genre_basis: str = ""


@dataclass(frozen=True)
class Chunk:
    """A passage cut from one page.

    ``start``/``end`` are character offsets into that page's text (``text == page.text[start:end]``);
    ``context`` is the document title and the heading path in force at ``start``; it is embedded and
    indexed with the passage but is not part of the cited span.
    """

    page: int | None
    start: int
    end: int
    text: str
    context: str
    n_tokens: int


@dataclass(frozen=True)
class Hit:
    """A chunk with its file path: as stored (``score`` 0.0; what
    :meth:`~desktop_rag.core.index.store.Store.chunks_by_id` and ``iter_file_chunks`` return) or
    retrieved, with its fused score and the per-retriever evidence. One type for both, so a
    stored chunk becomes a hit without a copy of its fields.

    ``start``/``end`` are character offsets in its page's stored text; ``score`` is the fused
    relevance in [0, 1] (higher is better); ``dense`` is the cosine similarity of the query and
    chunk embeddings (None if the dense retriever did not return it); ``bm25`` is the FTS5 BM25
    score made positive (None if the lexical retriever did not return it); ``terms`` its stored
    lexical analysis (``evidence.encode_terms(text)``, None: an older index or not read).
    """

    chunk_id: int
    file_id: int
    path: str
    page: int | None
    start: int
    end: int
    text: str
    context: str
    score: float
    dense: float | None = None
    bm25: float | None = None
    genre: str | None = None  # its document's genre (core/text/filings.py; None: not known)
    terms: str | None = None

    @property
    def file_name(self) -> str:
        """The base name of the source file."""
        return self.path.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Citation:
    """A numbered source given to the model (``n`` is 1-based, as in the prompt)."""

    n: int
    hit: Hit
    cited: bool


@dataclass(frozen=True)
class Timings:
    """Latency of one answer: retrieval in milliseconds, time to first token in seconds, tokens/s."""

    retrieval_ms: float
    ttft_s: float
    tokens_per_s: float
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Evidence:
    """A sentence quoted verbatim from source ``n`` (1-based, as in the answer's citations).

    ``start``/``end`` are character offsets into the page text of ``hit`` (like ``Hit.start``),
    so ``text`` is exactly what the viewer highlights; ``score`` is its evidence score (higher
    is better; see :mod:`desktop_rag.core.search.selection`).
    """

    n: int
    hit: Hit
    start: int
    end: int
    text: str
    score: float

    def to_json(self) -> dict[str, object]:
        """The ``evidence`` item of ``ask --json``."""
        return {"n": self.n, "file": self.hit.path, "page": self.hit.page, "text": self.text,
                "start": self.start, "end": self.end, "score": round(self.score, 4)}  # fmt: skip


@dataclass(frozen=True)
class EvidenceFound:
    """Yielded by ``Engine.ask`` before generation starts: the evidence sentences, so a client
    can show them while the model writes."""

    evidence: tuple[Evidence, ...]


ClaimKind = Literal["figure", "entity", "sentence"]


@dataclass(frozen=True)
class Check:
    """One checked claim of a generated answer: ``generated[start:end]`` is ``claim``;
    ``sources`` are the 1-based numbers of the given sources that support it (empty when none
    does, and then ``supported`` is False)."""

    start: int
    end: int
    claim: str
    kind: ClaimKind
    supported: bool
    sources: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        """The ``checks`` item of ``ask --json``."""
        return {"start": self.start, "end": self.end, "claim": self.claim, "kind": self.kind,
                "supported": self.supported, "sources": list(self.sources)}  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """The final answer: text, numbered sources (``citations``), abstention flag and timings.

    ``evidence`` are the quoted sentences that answer the question (shown above the text);
    ``generated`` is the model's answer after the claim check (None when the model did not run),
    ``checks`` its checked claims (offsets into ``generated``) and ``grounded`` whether it passed
    the check as a whole. ``text`` is what a reader gets as the answer: ``generated`` when it
    passed, else a plain statement that it did not and the evidence quoted.
    """

    text: str
    abstained: bool
    citations: tuple[Citation, ...]
    timings: Timings
    adapter: str | None = None  # the style adapter used (file stem), None for the base model
    adapter_scale: float = 0.0
    warnings: tuple[str, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    generated: str | None = None
    checks: tuple[Check, ...] = ()
    grounded: bool | None = None
    #: The generation backend that wrote ``generated`` ("local: NAME" for the in-process model,
    #: "server: NAME (URL)" for an inference server); None when no model ran.
    backend: str | None = None
    #: Why no generated answer is shown although the model was asked (a server that failed:
    #: see :class:`~desktop_rag.core.errors.BackendError`); None otherwise.
    error: str | None = None

    @property
    def unsupported(self) -> tuple[Check, ...]:
        """The checked claims no given source supports."""
        return tuple(c for c in self.checks if not c.supported)

    def to_json(self) -> dict[str, object]:
        """The ``ask --json`` object (see the README for the schema)."""
        out: dict[str, object] = {
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [
                {
                    "n": c.n,
                    "file": c.hit.path,
                    "page": c.hit.page,
                    "text": c.hit.text,
                    "start": c.hit.start,
                    "end": c.hit.end,
                    "score": round(c.hit.score, 6),
                    "cited": c.cited,
                }
                for c in self.citations
            ],
            "timings": {
                "retrieval_ms": round(self.timings.retrieval_ms, 3),
                "ttft_s": round(self.timings.ttft_s, 4),
                "tokens_per_s": round(self.timings.tokens_per_s, 2),
            },
        }
        out["evidence"] = [e.to_json() for e in self.evidence]
        out["generated"] = self.generated
        out["grounded"] = self.grounded
        out["checks"] = [c.to_json() for c in self.checks]
        out["backend"] = self.backend
        out["error"] = self.error
        if self.adapter:  # only with a style adapter, so the base schema stays as documented
            out["adapter"] = {"name": self.adapter, "scale": self.adapter_scale}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


FileStatus = Literal["indexed", "unchanged", "skipped", "failed", "removed"]


@dataclass(frozen=True)
class FileResult:
    """What happened to one file in an indexing run, with a human ``reason`` when not indexed."""

    path: str
    status: FileStatus
    reason: str = ""
    chunks: int = 0
    pages: int = 0


@dataclass(frozen=True)
class Progress:
    """Progress of an indexing run, yielded after each file (and at the start).

    ``files_done``/``files_total`` count files; ``elapsed_s`` is seconds since the run began;
    ``result`` is the outcome of the file just finished (None for the first event and for
    events during a file). While scanned pages are recognised (OCR, seconds a page) an event
    comes after each page: ``current`` says which file and page, ``ocr_pages`` counts the pages
    recognised so far in this run and ``file_fraction`` is the share (0..1) of the file being
    read that is done (0 between files), so a progress bar moves during one long scan.
    """

    files_done: int
    files_total: int
    chunks_added: int
    elapsed_s: float
    current: str = ""
    result: FileResult | None = None
    ocr_pages: int = 0
    file_fraction: float = 0.0


@dataclass
class IndexSummary:
    """Totals of an indexing run."""

    files_total: int = 0
    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_added: int = 0
    pages: int = 0
    elapsed_s: float = 0.0
    embed_s: float = 0.0
    # Where the time went (seconds). Extraction (hashing, parsing, chunking) runs in a worker
    # thread one file ahead of embedding, so it overlaps the other stages; the rest are serial.
    extract_s: float = 0.0
    chunk_s: float = 0.0
    # Pages recognised by OCR and the seconds they took (part of extract_s).
    ocr_pages: int = 0
    ocr_s: float = 0.0
    store_s: float = 0.0
    vectors_s: float = 0.0
    cancelled: bool = False
    problems: list[FileResult] = field(default_factory=list)
