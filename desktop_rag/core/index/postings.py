"""In-memory postings for the lexical leg: a cache of FTS5's index, like the hnswlib cache is of
the embeddings.

FTS5 ranks a question's words at about 0.9 us per posting (18 ms for the 20,000 postings the
lexical budget allows at 100k chunks) and counts a word's chunks with a pass over its doclist.
Here each term's postings are numpy arrays (positions of chunks, occurrences in the text and in
the context line), so a document frequency is one lookup and BM25 over 20,000 postings takes
well under a millisecond.

They are FTS5's own postings: every token's term comes from ``chunks_fts``'s tokenizer (each
distinct word is passed through a temporary FTS5 table, :func:`fts5_terms`) and document
lengths from its ``docsize`` table. Scores are FTS5's ``bm25(chunks_fts, 1.0, context_weight)`` (same
formula, constants, IDF floor and statistics), so the lexical candidates are FTS5's.

SQLite stays the source of truth. A snapshot records the store's ``vectors_version``; the store
uses it only while that is current. :class:`LexicalIndex` keeps it current in a background
thread: loaded from ``postings.npz`` at open (checked by sha256, like the vector cache) or built,
then brought up to date incrementally (chunk ids only grow: new chunks become a new segment,
removed ones are masked) and rebuilt in full when segments or removed chunks pile up.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from desktop_rag.core.files import atomic_write, sha256_file
from desktop_rag.core.index.fts5 import (
    PUNCTUATION_TO_SPACE,
    chunk_tokens,
    fts5_terms,
    table_tokenizer,
    varints,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from desktop_rag.core.index.store import Store

log = logging.getLogger(__name__)

# The on-disk layout of postings.npz; bump it with any change of the arrays it holds.
FORMAT = 3
# FTS5's porter tokenizer leaves tokens shorter than this, or longer than 64 bytes, unstemmed.
_MIN_STEMMED, _MAX_STEMMED = 3, 64
# A full rebuild replaces the incremental segments when there are more than this many, or when
# more than this share of the positions are removed chunks.
MAX_SEGMENTS = 8
MAX_DEAD_SHARE = 0.25
# BM25 constants of FTS5 (fts5_aux.c).
K1, B = 1.2, 0.75


@dataclass(frozen=True)
class Segment:
    """The postings of a run of chunks: for stem ``vocab[s] = r``, its entries are
    ``[offsets[r], offsets[r + 1])`` of ``pos`` (positions in the snapshot, ascending) and
    ``tf`` (occurrences in the text), and likewise ``ctx_*`` for the context line; ``df[r]`` is
    the number of chunks holding it in either. Sizes: ``offsets`` ``(V + 1,)`` int64, ``pos``
    ``(P,)`` int32, ``tf`` ``(P,)`` uint16, ``df`` ``(V,)`` int32; it covers ``size``
    consecutive positions."""

    vocab: dict[str, int]
    offsets: NDArray[np.int64]
    pos: NDArray[np.int32]
    tf: NDArray[np.uint16]
    ctx_offsets: NDArray[np.int64]
    ctx_pos: NDArray[np.int32]
    ctx_tf: NDArray[np.uint16]
    df: NDArray[np.int32]
    size: int  # the chunks (positions) it covers

    def lists(self, term: str) -> tuple[NDArray[np.int32], NDArray[np.uint16],
                                        NDArray[np.int32], NDArray[np.uint16]] | None:  # fmt: skip
        """(text positions, text counts, context positions, context counts) of ``term``, or
        None when no chunk of this segment holds it."""
        r = self.vocab.get(term)
        if r is None:
            return None
        a, b = int(self.offsets[r]), int(self.offsets[r + 1])
        c, d = int(self.ctx_offsets[r]), int(self.ctx_offsets[r + 1])
        return self.pos[a:b], self.tf[a:b], self.ctx_pos[c:d], self.ctx_tf[c:d]

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (the vocabulary not counted)."""
        return sum(a.nbytes for a in (self.offsets, self.pos, self.tf, self.ctx_offsets,
                                      self.ctx_pos, self.ctx_tf, self.df))  # fmt: skip


@dataclass
class Postings:
    """A snapshot of the postings of every chunk at one store ``version`` (immutable once
    published; the df and collection caches only memoise).

    ``ids`` ``(n,)`` int64: chunk id of each position, ascending; ``length`` ``(n,)`` int32: its
    tokens in text and context (FTS5's document length); ``dead`` ``(n,)`` bool or None: removed
    since the segment holding it was built. ``fingerprint`` identifies the chunks (see
    :func:`_fingerprint`), so a cache file is never applied to another database.
    """

    version: int
    tokenizer: str  # chunks_fts's tokenizer declaration the terms come from
    segments: tuple[Segment, ...]
    ids: NDArray[np.int64]
    length: NDArray[np.int32]
    dead: NDArray[np.bool_] | None
    fingerprint: str
    _df: dict[str, int] = field(default_factory=dict, repr=False)
    _members: tuple[tuple[int, ...], NDArray[np.bool_]] | None = field(default=None, repr=False)
    _norm: NDArray[np.float64] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        live = self.length if self.dead is None else self.length[~self.dead]
        self.n_live = int(live.shape[0])
        self.total_tokens = int(live.sum(dtype=np.int64))

    @property
    def avg_tokens(self) -> float:
        """Mean tokens per live chunk (FTS5's ``avgdl``)."""
        return self.total_tokens / self.n_live if self.n_live else 0.0

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return sum(s.nbytes for s in self.segments) + self.ids.nbytes + self.length.nbytes

    def df(self, term: str) -> int:
        """The number of live chunks holding the FTS5 term ``term`` (see :func:`fts5_terms`) in
        their text or context."""
        got = self._df.get(term)
        if got is not None:
            return got
        total = 0
        for seg in self.segments:
            if self.dead is None:
                r = seg.vocab.get(term)
                total += 0 if r is None else int(seg.df[r])
                continue
            lists = seg.lists(term)
            if lists is not None:
                both = _distinct(np.concatenate(lists[::2])) if len(lists[2]) else lists[0]
                total += int(np.count_nonzero(~self.dead[both]))
        if len(self._df) >= 100_000:  # bound the memory of a long session
            self._df.clear()
        self._df[term] = total
        return total

    def members(self, key: tuple[int, ...], chunk_ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """``(n,)`` bool: the positions whose chunk is in ``chunk_ids`` (the chunks of the
        collections ``key``); the last answer is kept."""
        if self._members is None or self._members[0] != key:
            self._members = (key, np.isin(self.ids, chunk_ids, assume_unique=True))
        return self._members[1]

    def rank(
        self,
        terms: Sequence[str],
        limit: int,
        context_weight: float,
        members: NDArray[np.bool_] | None = None,
    ) -> list[tuple[int, float]]:
        """FTS5's BM25 top-``limit`` for the query ``"t1" OR "t2" ...`` over FTS5
        terms (a repeated term counts twice, as in FTS5): (chunk id, score), best first, ties
        by chunk id; a chunk's score is ``sum over terms of idf * f * (k1 + 1) / (f + k1 * (1 -
        b + b * D / avgdl))`` with ``f`` its count in the text plus ``context_weight`` times its
        count in the context, ``D`` its tokens, idf :func:`~desktop_rag.core.search.evidence.fts5_idf`
        over the live chunks. Only chunks with ``members`` ``(n,)`` True count (None: all)."""
        from desktop_rag.core.text.analysis import fts5_idf

        n = self.ids.shape[0]
        if not n or not self.n_live:
            return []
        norm = self._norm
        if norm is None:  # (n,) float64: the length part of the denominator
            norm = (K1 * (1.0 - B + B * self.length / self.avg_tokens)).astype(np.float64)
            self._norm = norm
        acc = np.zeros(n, dtype=np.float64)
        f = np.zeros(n, dtype=np.float64)
        w = float(context_weight)
        touched: list[NDArray[np.integer]] = []
        for term in terms:
            df = self.df(term)
            if not df:
                continue
            idf = fts5_idf(self.n_live, df)
            for seg in self.segments:
                lists = seg.lists(term)
                if lists is None:
                    continue
                text_pos, tf, cpos, ctf = lists
                pos: NDArray[np.integer] = text_pos
                f[pos] = tf
                if len(cpos):
                    f[cpos] += w * ctf  # positions are unique within one list
                    pos = _distinct(np.concatenate([pos, cpos]))
                x = f[pos]
                acc[pos] += idf * (x * (K1 + 1.0)) / (x + norm[pos])
                f[pos] = 0.0
                touched.append(pos)
        if not touched:
            return []
        cand = _distinct(np.concatenate(touched))
        keep = np.ones(cand.shape[0], dtype=bool)
        if self.dead is not None:
            keep &= ~self.dead[cand]
        if members is not None:
            keep &= members[cand]
        cand = cand[keep]
        scores = acc[cand]
        if cand.shape[0] > limit:
            part = np.argpartition(-scores, limit - 1)[:limit]
            # ties at the cut: keep every chunk scoring as the last one, ordered by id below
            cut = scores[part].min()
            part = np.flatnonzero(scores >= cut)
            cand, scores = cand[part], scores[part]
        order = np.lexsort((self.ids[cand], -scores))[:limit]
        return [(int(self.ids[cand[i]]), float(scores[i])) for i in order]


# -- building --------------------------------------------------------------------------------
Row = tuple[int, str, str, bytes | None]  # (chunk id, text, context, chunks_fts_docsize.sz)


def _words(text: str) -> list[str]:
    """The words of ``text`` (see :data:`PUNCTUATION_TO_SPACE`; ASCII text is lower-cased here, as
    FTS5 would, so fewer distinct words are passed to it)."""
    return (text.lower() if text.isascii() else text).translate(PUNCTUATION_TO_SPACE).split()


def build_segment(
    con: sqlite3.Connection,
    rows: Iterable[Row],
    start: int,
    stop: threading.Event | None = None,
    batch: int = 2048,
) -> tuple[Segment, NDArray[np.int64], NDArray[np.int32]] | None:
    """The postings of ``rows`` (by ascending chunk id), placed at positions ``start``...;
    returns (segment, chunk ids ``(n,)``, lengths ``(n,)``: tokens in text and context, from
    FTS5's ``docsize``), or None when ``stop`` was set. Works through ``batch`` chunks at a
    time, so the memory beyond the result stays small.

    Every token's term comes from FTS5's own tokenizer (:func:`fts5_terms`, once per distinct
    word); a chunk whose token counts still differ from FTS5's (a custom tokenizer) is
    tokenized by FTS5 whole."""
    vocab: dict[str, int] = {}
    row_of: dict[str, int] = {}
    several: dict[str, tuple[str, ...]] = {}
    batches: list[_Batch] = []
    rows_iter = iter(rows)
    done = 0
    while True:
        if stop is not None and stop.is_set():
            return None
        pending = list(itertools.islice(rows_iter, batch))
        if not pending:
            break
        batches.append(_batch(con, pending, start + done, vocab, row_of, several))
        done += len(pending)
    v = len(vocab)
    df = np.zeros(v, dtype=np.int64)
    for b in batches:
        df[: len(b.df)] += b.df
    text, ctx = _merge(batches, 0, v), _merge(batches, 1, v)
    seg = Segment(vocab, text[0], text[1], text[2], ctx[0], ctx[1], ctx[2], df.astype(np.int32),
                  done)  # fmt: skip
    if not batches:
        return seg, np.zeros(0, np.int64), np.zeros(0, np.int32)
    return (seg, np.concatenate([b.ids for b in batches]),
            np.concatenate([b.lengths for b in batches]))  # fmt: skip


def _merge(
    batches: list[_Batch], col: int, v: int
) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.uint16]]:
    """(offsets ``(v + 1,)``, positions, counts) of column ``col`` (0 text, 1 context) of all
    ``batches``, by term then position: each batch's entries (sorted by term, at positions
    after the previous batch's) are placed directly, without sorting everything again."""
    counts = [np.bincount(b.cols[col][0], minlength=v) for b in batches]
    offsets = np.zeros(v + 1, dtype=np.int64)
    if counts:
        np.cumsum(np.sum(counts, axis=0), out=offsets[1:])
    pos = np.zeros(int(offsets[-1]), dtype=np.int32)
    tf = np.zeros(int(offsets[-1]), dtype=np.uint16)
    before = offsets[:-1].copy()  # where the next batch's entries of each term go
    for b, c in zip(batches, counts, strict=True):
        term, p, f = b.cols[col]
        first = np.zeros(v, dtype=np.int64)  # where each term's entries start in this batch
        np.cumsum(c[:-1], out=first[1:])
        dest = before[term] + (np.arange(len(term), dtype=np.int64) - first[term])
        pos[dest] = p
        tf[dest] = f
        before += c
    return offsets, pos, tf


@dataclass(frozen=True)
class _Batch:
    """One batch of :func:`build_segment`: chunk ids and lengths ``(n,)``, per column (term
    rows int32, positions int32, counts uint16) sorted by (term, position), and each term row's
    chunks ``(rows so far,)`` int64."""

    ids: NDArray[np.int64]
    lengths: NDArray[np.int32]
    cols: tuple[tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.uint16]], ...]
    df: NDArray[np.int64]


def _batch(
    con: sqlite3.Connection,
    rows: list[Row],
    start: int,
    vocab: dict[str, int],
    row_of: dict[str, int],
    several: dict[str, tuple[str, ...]],
) -> _Batch:
    """The postings of ``rows`` at positions ``start``...; new terms are added to ``vocab``,
    each new word's term row to ``row_of`` (-1: it has no term, -2: several, kept in
    ``several``)."""

    n = len(rows)
    sizes = np.zeros((n, 2), dtype=np.int64)  # FTS5's tokens per chunk and column
    words: list[str] = []  # every chunk's text words, then its context words
    counts: list[int] = []  # per chunk: its text words, its context words
    contexts: dict[str, list[str]] = {}
    for i, (_, text, context, docsize) in enumerate(rows):
        sz = varints(bytes(docsize)) if docsize else []
        sizes[i, : min(len(sz), 2)] = sz[:2]
        tw = _words(text)
        cw = contexts.get(context)
        if cw is None:
            cw = contexts[context] = _words(context)
        words += tw
        words += cw
        counts += (len(tw), len(cw))
    new = set(words).difference(row_of)
    for w, terms in fts5_terms(con, new, several).items():
        if len(terms) == 1:
            row_of[w] = vocab.setdefault(terms[0], len(vocab))
        else:  # kept in ``several`` by fts5_terms
            row_of[w] = -1 if not terms else -2
    for w in new:
        if row_of[w] != -2:
            several.pop(w, None)
    term = np.fromiter(map(row_of.__getitem__, words), np.int64, len(words))
    slot = np.repeat(np.arange(2 * n, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    extra: list[tuple[int, int]] = []  # (term row, slot)
    for k in np.flatnonzero(term == -2).tolist():  # a word of several tokens: each counts
        extra += [(vocab.setdefault(t, len(vocab)), int(slot[k])) for t in several[words[k]]]
    keep = term >= 0
    term, slot = _extend(term[keep], slot[keep], extra)
    wrong = np.flatnonzero((np.bincount(slot, minlength=2 * n).reshape(n, 2) != sizes).any(1))
    if len(wrong):  # tokenized differently from FTS5: ask FTS5 itself
        bad = np.isin(slot // 2, wrong)
        extra = []
        for c in wrong.tolist():
            for col, tokens in enumerate(chunk_tokens(con, rows[c][1], rows[c][2])):
                extra += [(vocab.setdefault(t, len(vocab)), 2 * c + col) for t in tokens]
        term, slot = _extend(term[~bad], slot[~bad], extra)
    m = max(n, 1)
    keys = term * m + slot // 2
    text_keys, text_tf = _counted(keys[slot % 2 == 0])
    ctx_keys, ctx_tf = _counted(keys[slot % 2 == 1])
    cols = tuple(
        (
            (k // m).astype(np.int32),
            (k % m + start).astype(np.int32),
            np.minimum(tf, 65535).astype(np.uint16),
        )
        for k, tf in ((text_keys, text_tf), (ctx_keys, ctx_tf))
    )
    df = np.bincount(_distinct(np.concatenate([text_keys, ctx_keys])) // m, minlength=len(vocab))
    ids = np.fromiter((r[0] for r in rows), np.int64, n)
    return _Batch(ids, sizes.sum(axis=1).astype(np.int32), cols, df.astype(np.int64))


def _distinct(values: NDArray[np.integer]) -> NDArray[np.integer]:
    """The distinct ``values``, ascending (by sorting: numpy 2's hashing ``unique`` is several
    times slower on these arrays)."""
    if len(values) < 2:
        return values
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _counted(keys: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(distinct ``keys`` ascending, how often each occurs); by sorting (numpy 2's hashing
    ``unique`` with counts is several times slower here)."""
    if not len(keys):
        return keys, keys
    keys = np.sort(keys)
    first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[first], np.diff(np.append(first, len(keys)))


def _extend(
    term: NDArray[np.int64], slot: NDArray[np.int64], extra: list[tuple[int, int]]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``term`` and ``slot`` with the (term, slot) pairs of ``extra`` appended."""
    if not extra:
        return term, slot
    more = np.asarray(extra, dtype=np.int64)
    return np.concatenate([term, more[:, 0]]), np.concatenate([slot, more[:, 1]])


def _offsets(term: NDArray[np.int64], v: int) -> NDArray[np.int64]:
    """``(v + 1,)``: where each term's entries start in ``term`` (sorted), and the end."""
    out = np.zeros(v + 1, dtype=np.int64)
    np.cumsum(np.bincount(term, minlength=v), out=out[1:])
    return out


def _fingerprint(store: Store, ids: NDArray[np.int64]) -> str:
    """A checksum of up to 16 chunks of ``ids`` (evenly spread): JSON ``[[id, crc32 of its
    text], ...]``, so a cache file is only applied to the database it was made from."""
    sample = sorted({int(ids[i]) for i in np.linspace(0, len(ids) - 1, 16).astype(int)}
                    ) if len(ids) else []  # fmt: skip
    return json.dumps([[cid, crc] for cid, crc in _crcs(store, sample).items()])


def _crcs(store: Store, ids: Sequence[int]) -> dict[int, int]:
    """crc32 of the text of each chunk of ``ids`` still in the store."""
    marks = ",".join("?" * len(ids)) or "NULL"
    return {int(cid): zlib.crc32(str(text).encode()) for cid, text in store.con.execute(
        f"SELECT id, text FROM chunks WHERE id IN ({marks})", list(ids))}  # fmt: skip


def _same_database(store: Store, fingerprint: str) -> bool:
    """Whether the sampled chunks of ``fingerprint`` that are still in the store are unchanged
    (at least one must be, unless the sample was empty)."""
    try:
        sample = {int(cid): int(crc) for cid, crc in json.loads(fingerprint)}
    except (ValueError, TypeError):
        return False
    if not sample:
        return True
    now = _crcs(store, list(sample))
    return bool(now) and all(sample[cid] == crc for cid, crc in now.items())


# -- the cache ---------------------------------------------------------------------------------
class LexicalIndex:
    """The postings of ``store``'s chunks, kept current in a background thread and persisted in
    ``folder`` (``postings.npz``, ``postings.json``). :meth:`current` never blocks: it answers
    only with a snapshot of the store's version (else None, and a refresh is started)."""

    def __init__(self, folder: Path, store: Store) -> None:
        self.folder = Path(folder)
        self.store = store
        self._snap: Postings | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None  # the refresh thread while it takes work
        self._threads: list[threading.Thread] = []  # every refresh thread not joined yet
        self._wanted = False
        self._stop = threading.Event()
        self._failed: int | None = None  # the version whose refresh failed (not retried)
        self._ready = threading.Condition(self._lock)

    @property
    def data_file(self) -> Path:
        """The arrays (``numpy.savez``)."""
        return self.folder / "postings.npz"

    @property
    def manifest_file(self) -> Path:
        """The JSON manifest (version, fingerprint, sha256 of :attr:`data_file`)."""
        return self.folder / "postings.json"

    def start(self) -> None:
        """Bring the postings to the store's version in the background (load, update or build)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="postings", daemon=True)
                self._threads = [t for t in self._threads if t.is_alive()] + [self._thread]
                self._thread.start()

    def current(self, version: int) -> Postings | None:
        """The snapshot of ``version`` if it is the one held; otherwise None, and a refresh is
        started (once per version if it fails)."""
        snap = self._snap
        if snap is not None and snap.version == version:
            return snap
        if self._failed != version:
            self.start()
        return None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the postings match the store's version (for benchmarks and tests);
        False after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            version = self.store.vectors_version()
            if self.current(version) is not None:
                return True
            with self._lock:
                if self._thread is None and self._failed == version:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._ready.wait(0.05 if left is None else min(left, 0.05))

    def close(self) -> None:
        """Stop the background work and join its threads: also one that has taken its last
        work (:attr:`_thread` is None again) but still closes its database connection."""
        self._stop.set()
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()

    # -- background ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stop.is_set() or not self._wanted:
                        self._thread = None
                        self._ready.notify_all()
                        return
                    self._wanted = False
                try:
                    self._refresh()
                except Exception:
                    log.exception("could not build the lexical postings; FTS5 answers meanwhile")
                    with contextlib.suppress(Exception):
                        self._failed = self.store.vectors_version()
                with self._lock:
                    self._ready.notify_all()
        finally:
            self.store.close()  # this thread's connection
            with self._lock:
                self._thread = None
                self._ready.notify_all()

    def _refresh(self) -> int:
        """Make :attr:`_snap` match the store; returns the version it reflects."""
        store = self.store
        con = store.con
        save = False
        con.execute("BEGIN")  # one read transaction: the version and the rows agree
        try:
            version = store.vectors_version()
            snap = self._snap
            if snap is not None and snap.version == version:
                return version
            t0 = time.perf_counter()
            ids = np.fromiter((r[0] for r in con.execute("SELECT id FROM chunks ORDER BY id")),
                              np.int64)  # fmt: skip
            base, how = snap, "updated"
            if base is None:
                base, how = self._load(), "loaded"
            new = None
            if base is not None and base.tokenizer == table_tokenizer(con):
                new = self._update(base, version, ids)
            if new is None:
                new, how, save = self._build(version), "built", True
            if new is None:  # stopped
                return version
            self._snap = new
        finally:
            con.execute("COMMIT")
        log.info("lexical postings %s for %d chunks (version %d) in %.2f s, %.0f MB", how,
                 new.n_live, version, time.perf_counter() - t0, new.nbytes / 1e6)  # fmt: skip
        if save:
            self._save(new)
        return version

    def _rows(self, after: int) -> Iterable[Row]:
        """The chunks with ids above ``after``, by id, with FTS5's token counts."""
        cur = self.store.con.execute(
            "SELECT c.id, c.text, c.context, d.sz FROM chunks c "
            "LEFT JOIN chunks_fts_docsize d ON d.id = c.id WHERE c.id > ? ORDER BY c.id",
            (after,),
        )
        while rows := cur.fetchmany(4096):
            yield from rows

    def _build(self, version: int) -> Postings | None:
        built = build_segment(self.store.con, self._rows(-1), 0, self._stop)
        if built is None:
            return None
        seg, got, lengths = built
        return Postings(version, table_tokenizer(self.store.con), (seg,), got, lengths, None,
                        _fingerprint(self.store, got))  # fmt: skip

    def _update(self, snap: Postings, version: int, ids: NDArray[np.int64]) -> Postings | None:
        """``snap`` brought to ``version`` (chunk ids ``ids`` now): the chunks added since become
        a new segment and removed ones are masked; past :data:`MAX_SEGMENTS` the segments after
        the first are built again as one (from the chunks after the first segment's: a cost in
        proportion to them). None when a full build is due instead: the database is another
        one, an id below the last one appeared, more chunks were added than there were, or
        removed chunks would make up more than :data:`MAX_DEAD_SHARE` of the positions."""
        if not _same_database(self.store, snap.fingerprint):
            return None
        last = int(snap.ids[-1]) if len(snap.ids) else 0
        old = ids[ids <= last]
        alive = np.isin(snap.ids, old, assume_unique=True)
        if np.count_nonzero(alive) != len(old):
            return None
        added = int(np.count_nonzero(ids > last))
        if added > len(snap.ids):
            return None
        segments, all_ids, lengths = snap.segments, snap.ids, snap.length
        after = last
        if len(segments) >= MAX_SEGMENTS:  # keep the first segment, rebuild the rest as one
            size = segments[0].size
            segments, all_ids, lengths = segments[:1], all_ids[:size], lengths[:size]
            alive = alive[:size]
            after = int(all_ids[-1]) if size else 0
        dead = None if alive.all() else ~alive
        if dead is not None and np.count_nonzero(dead) > MAX_DEAD_SHARE * max(len(ids), 1):
            return None
        if after < int(ids[-1] if len(ids) else 0):
            built = build_segment(self.store.con, self._rows(after), len(all_ids), self._stop)
            if built is None:
                return None
            seg, got, glen = built
            segments = (*segments, seg)
            all_ids = np.concatenate([all_ids, got])
            lengths = np.concatenate([lengths, glen])
            if dead is not None:
                dead = np.concatenate([dead, np.zeros(len(got), dtype=bool)])
        live_ids = all_ids if dead is None else all_ids[~dead]
        if len(live_ids) != len(ids):  # changed under the read transaction: cannot happen
            return None
        return Postings(version, snap.tokenizer, segments, all_ids, lengths, dead,
                        _fingerprint(self.store, live_ids))  # fmt: skip

    # -- persistence ---------------------------------------------------------------------------
    def _save(self, snap: Postings) -> None:
        """Write the snapshot's arrays and manifest atomically (a read-only folder: kept in
        memory only)."""
        arrays: dict[str, NDArray[np.generic]] = {"ids": snap.ids, "length": snap.length}
        if snap.dead is not None:
            arrays["dead"] = snap.dead
        for k, seg in enumerate(snap.segments):
            vocab = "\n".join(seg.vocab).encode()
            arrays[f"s{k}_vocab"] = np.frombuffer(vocab, dtype=np.uint8)
            for name in ("offsets", "pos", "tf", "ctx_offsets", "ctx_pos", "ctx_tf", "df"):
                arrays[f"s{k}_{name}"] = getattr(seg, name)
            arrays[f"s{k}_size"] = np.asarray([seg.size], dtype=np.int64)
        manifest = {"format": FORMAT, "version": snap.version, "tokenizer": snap.tokenizer,
                    "segments": len(snap.segments), "fingerprint": snap.fingerprint}  # fmt: skip
        tmp = self.data_file.with_name(self.data_file.name + f".tmp{os.getpid()}")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]
                f.flush()
                os.fsync(f.fileno())
            manifest["sha256"] = sha256_file(tmp)
            os.replace(tmp, self.data_file)
            atomic_write(self.manifest_file, json.dumps(manifest, indent=1).encode())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.warning("could not save the lexical postings (%s): kept in memory", exc)

    def _load(self) -> Postings | None:
        """The saved snapshot if its manifest, checksum and arrays are sound (of any version:
        :meth:`_update` brings it up to date), else None."""
        try:
            manifest = json.loads(self.manifest_file.read_text())
            f = open(self.data_file, "rb")  # noqa: SIM115 (closed below)
        except (OSError, ValueError):
            return None
        with f:
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                return None
            if manifest.get("sha256") != hashlib.file_digest(f, "sha256").hexdigest():
                log.info("the lexical postings file is corrupt or partly written: rebuilding")
                return None
            f.seek(0)
            return self._read(f, manifest)

    def _read(self, f: BinaryIO, manifest: dict[str, Any]) -> Postings | None:
        """The snapshot in the open ``postings.npz`` ``f`` (None: unreadable or inconsistent)."""
        try:
            with np.load(f) as z:
                segments = []
                for k in range(int(manifest["segments"])):
                    words = z[f"s{k}_vocab"].tobytes().decode()
                    vocab = {t: r for r, t in enumerate(words.split("\n"))} if words else {}
                    names = ("offsets", "pos", "tf", "ctx_offsets", "ctx_pos", "ctx_tf", "df")
                    arrays = {name: z[f"s{k}_{name}"] for name in names}
                    seg = Segment(vocab, **arrays, size=int(z[f"s{k}_size"][0]))
                    if len(seg.offsets) != len(vocab) + 1 or len(seg.df) != len(vocab):
                        return None
                    segments.append(seg)
                snap = Postings(int(manifest["version"]), str(manifest["tokenizer"]),
                                tuple(segments), z["ids"], z["length"],
                                z["dead"] if "dead" in z.files else None,
                                str(manifest["fingerprint"]))  # fmt: skip
        except (KeyError, ValueError, OSError, UnicodeDecodeError) as exc:
            log.info("the lexical postings file cannot be read (%s): rebuilding", exc)
            return None
        if (len(snap.ids) != len(snap.length) or math.isnan(snap.avg_tokens)
                or sum(seg.size for seg in snap.segments) != len(snap.ids)):  # fmt: skip
            return None
        return snap
