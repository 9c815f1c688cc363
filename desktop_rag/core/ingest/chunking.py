"""Cutting pages into chunks sized in tokens of the embedding model.

all-MiniLM-L6-v2 truncates its input at 256 word pieces (including ``[CLS]`` and ``[SEP]``), so a
chunk plus its context line must fit in that budget or its tail would never be embedded. Chunks end
at the best boundary near the size limit (paragraph > sentence > line > word) and overlap the
previous chunk by about ``overlap_tokens``, starting at a sentence start where one is near. Each chunk
keeps its page and the character span of its text in that page, so a citation points at the exact
passage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from desktop_rag.core.types import Chunk, Document, Heading, Page

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class ChunkerConfig:
    """Chunk sizes in word pieces of the embedding model's tokenizer.

    ``max_seq_tokens`` is the embedding model's input limit (256 for all-MiniLM-L6-v2, from its
    ``sentence_bert_config.json``); two of them go to ``[CLS]``/``[SEP]``; the context line takes at
    most ``max_context_tokens`` and the passage gets at most ``chunk_tokens`` of what is left.
    240/64 measured best on covidqa answer-span hit@5 (128/32: 0.710, 200/40: 0.750, 240/64: 0.771
    with the same fusion): answer spans fit whole in 99% of chunks either way, and larger chunks
    rank their passage better. ``max_context_tokens`` (64) leaves room for a statement's title
    with its units and column dates (see :func:`~desktop_rag.core.ingest.extract.pdf.table_header`); it
    costs passage length only where a context line is that long (a document title alone, as in
    covidqa, takes 5-20).
    """

    chunk_tokens: int = 240
    overlap_tokens: int = 64
    max_seq_tokens: int = 256
    max_context_tokens: int = 64
    min_fill: float = 0.6  # never end a chunk before this share of chunk_tokens to find a boundary
    min_section_tokens: int = 24  # a heading ends a chunk only this many tokens after its start

    def fingerprint(self) -> str:
        """The settings that shape chunks and :data:`CHUNKER_VERSION`, as one string (the index
        records it: a change re-chunks every file)."""
        return (f"c{CHUNKER_VERSION}/{self.chunk_tokens}/{self.overlap_tokens}/"
                f"{self.max_seq_tokens}/{self.max_context_tokens}/{self.min_fill}/"
                f"{self.min_section_tokens}")  # fmt: skip


# Bump when the chunker's output changes for the same settings (the index then re-chunks every
# file). 2: a heading within a chunk's first ``min_section_tokens`` heads the chunk; a long
# context line drops its outer headings before its inner ones.
CHUNKER_VERSION = 2


@lru_cache(maxsize=4)
def load_tokenizer(model_dir: str) -> Tokenizer:
    """The fast (Rust) tokenizer of a sentence-transformers folder, without truncation or padding.

    Raises:
        FileNotFoundError: the folder has no ``tokenizer.json``.
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


_PARA, _SENT, _LINE, _WORD = 4, 3, 2, 1
_SENT_END = frozenset(".!?;:。！？")


def _boundary_scores(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """For each token i, how good a place it is to start a chunk (0 = inside a word)."""
    scores = [_PARA] * len(offsets)
    for i in range(1, len(offsets)):
        prev_end = offsets[i - 1][1]
        start = offsets[i][0]
        if start == prev_end:
            scores[i] = 0  # a word piece continuing the previous token
            continue
        gap = text[prev_end:start]
        if "\n\n" in gap or "\n \n" in gap:
            scores[i] = _PARA
        elif prev_end and text[prev_end - 1] in _SENT_END:
            scores[i] = _SENT
        elif "\n" in gap:
            scores[i] = _LINE
        else:
            scores[i] = _WORD
    return scores


def _heading_path(headings: Sequence[Heading], offset: int) -> list[str]:
    stack: list[Heading] = []
    for h in headings:
        if h.offset > offset:
            break
        while stack and stack[-1].level >= h.level:
            stack.pop()
        stack.append(h)
    return [h.text for h in stack]


class Chunker:
    """Cuts :class:`~desktop_rag.core.types.Document` pages into :class:`Chunk` objects."""

    def __init__(self, tokenizer: Tokenizer, config: ChunkerConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self.config = config or ChunkerConfig()
        self._context_cache: dict[str, tuple[str, int]] = {}

    def _fit_context(self, context: str) -> tuple[str, int]:
        """The context line cut to ``max_context_tokens``, and its token count."""
        cached = self._context_cache.get(context)
        if cached is not None:
            return cached
        enc = self.tokenizer.encode(context, add_special_tokens=False)
        limit = self.config.max_context_tokens
        if len(enc.offsets) > limit:
            fitted = (context[: enc.offsets[limit - 1][1]].rstrip() + "…", limit + 1)
        else:
            fitted = (context, len(enc.offsets))
        self._context_cache[context] = fitted
        return fitted

    def _fit_path(self, title: str, path: Sequence[str]) -> tuple[str, int]:
        """The context line of a chunk: the document title and its heading path, joined by
        " › ", within ``max_context_tokens``. When too long, the outermost headings are left out
        first (the innermost one says most about the chunk: "... › Item 1. Financial Statements
        › Condensed Consolidated Balance Sheets"), then the line is cut."""
        path = list(path)
        while len(path) > 1:
            context, n = self._fit_context(" › ".join([title, *path]))
            if not context.endswith("…"):
                return context, n
            path.pop(0)
        context, n = self._fit_context(" › ".join([title, *path]))
        if path and context.endswith("…"):
            # A long title (a cover page's first lines) is cut to leave the innermost heading
            # its place, when that heading takes at most half of the line.
            tail = f" › {path[-1]}"
            n_tail = len(self.tokenizer.encode(tail, add_special_tokens=False).offsets)
            room = self.config.max_context_tokens - n_tail - 1
            if room >= self.config.max_context_tokens // 2:
                enc = self.tokenizer.encode(title, add_special_tokens=False)
                head = title[: enc.offsets[room - 1][1]].rstrip() + "…"
                return head + tail, room + 1 + n_tail
        return context, n

    def chunk_document(self, doc: Document) -> list[Chunk]:
        """All chunks of a document, page by page, in reading order."""
        pages = [p for p in doc.pages if p.text.strip()]
        encodings = self.tokenizer.encode_batch([p.text for p in pages], add_special_tokens=False)
        out: list[Chunk] = []
        for page, enc in zip(pages, encodings, strict=True):
            out.extend(self._chunk_page(doc.title, page, enc.offsets))
        return out

    def _chunk_page(
        self, title: str, page: Page, offsets: Sequence[tuple[int, int]]
    ) -> Iterable[Chunk]:
        cfg = self.config
        n = len(offsets)
        if n == 0:
            return
        scores = _boundary_scores(page.text, offsets)
        # A heading starts a new section: chunks end before it and never overlap back across it.
        heading_tokens: list[int] = []
        if page.headings:
            import bisect

            starts = [o[0] for o in offsets]
            heading_tokens = sorted(
                {bisect.bisect_left(starts, h.offset) for h in page.headings} - {0}
            )
        start = 0
        while start < n:
            # A heading within the first few tokens (a statement title under the page's running
            # heads) heads the chunk: the chunk continues past it (see section_end below).
            lead = offsets[min(start + cfg.min_section_tokens, n) - 1][0]
            path = _heading_path(page.headings, lead)
            if path and path[0] == title:
                path = path[1:]
            context, ctx_tokens = self._fit_path(title, path)
            size = max(16, min(cfg.chunk_tokens, cfg.max_seq_tokens - 2 - ctx_tokens - 1))
            end = min(start + size, n)
            # A heading right after the chunk's start (a title over its first subheading, a PDF
            # page's running heads) does not cut off a chunk of a few words.
            section_end = next(
                (h for h in heading_tokens if start + cfg.min_section_tokens <= h < end), None
            )
            if section_end is not None:
                end = section_end
            elif end < n:
                lo = start + max(1, int(size * cfg.min_fill))
                best, best_score = end, scores[end] if end < n else _PARA
                for j in range(end, lo - 1, -1):  # latest position with the strongest boundary
                    if scores[j] > best_score:
                        best, best_score = j, scores[j]
                        if best_score == _PARA:
                            break
                end = best
            s_char, e_char = offsets[start][0], offsets[end - 1][1]
            yield Chunk(
                page=page.number,
                start=s_char,
                end=e_char,
                text=page.text[s_char:e_char],
                context=context,
                n_tokens=end - start,
            )
            if end >= n:
                break
            if end in heading_tokens:
                start = end
                continue
            nxt = max(start + 1, end - cfg.overlap_tokens)
            # Prefer to begin the overlap at a sentence start, so a chunk reads from a sentence.
            for j in range(nxt, end):
                if scores[j] >= _SENT:
                    nxt = j
                    break
            else:
                while nxt < end and scores[nxt] == 0:
                    nxt += 1
            start = nxt


def embedding_text(chunk: Chunk) -> str:
    """The string embedded for a chunk: its context line, then its passage."""
    return f"{chunk.context}\n{chunk.text}" if chunk.context else chunk.text
