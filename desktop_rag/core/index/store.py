"""The SQLite store (WAL mode): the source of truth for collections, files, pages, chunks and
embeddings, plus the FTS5 full-text index used for BM25.

Every change to one file's chunks happens in one transaction, so an interrupted run leaves each
file either fully indexed (with its hash recorded) or untouched; the next run resumes from there.
``meta.vectors_version`` increases with every transaction that adds or removes embeddings; the
hnswlib cache records the version it was built at, so a stale cache is detected and rebuilt.

Connections are per thread (SQLite objects must not cross threads); WAL lets readers (questions)
run while the indexer writes.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from desktop_rag.core.embed.identity import EmbeddingIdentity
from desktop_rag.core.errors import EmbeddingMismatchError, UserError
from desktop_rag.core.types import Chunk, Document, Heading, Hit, Page, TextBox

if TYPE_CHECKING:
    from numpy.typing import NDArray

# The layout of the tables below. Bump it with every change of columns and add the step that
# brings an older index there to _MIGRATIONS (Store._migrate runs them in order, in one place).
#   1: the first layout (files without ``pipeline``, chunks without ``terms``);
#   2: ``chunks.terms``, each chunk's lexical analysis (evidence.encode_terms);
#   3: ``files.pipeline``, the extractor and chunker that made a file's chunks;
#   4: ``pages.headings``, each page's headings, so chunks can be cut again without re-extracting;
#   5: ``pages.boxes``, where an OCR page's text was recognised (the viewer highlights there);
#   6: ``files.genre`` and ``files.genre_basis``: whether a file is a financial filing or report
#      (core/text/filings.py; the filing rules apply to those only) and why. Detected from the
#      stored pages of the files already indexed when the columns are added.
# Versions 2 and 3 were first added without a bump: an index saying 1 may hold either column.
SCHEMA_VERSION = 6

# (version, table, column, declaration): the columns added since version 1, in order.
_MIGRATIONS: tuple[tuple[int, str, str, str], ...] = (
    (2, "chunks", "terms", "TEXT"),
    (3, "files", "pipeline", "TEXT"),
    (4, "pages", "headings", "TEXT"),
    (5, "pages", "boxes", "TEXT"),
    (6, "files", "genre", "TEXT"),
    (6, "files", "genre_basis", "TEXT"),
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections(
    id INTEGER PRIMARY KEY, root TEXT NOT NULL UNIQUE, name TEXT NOT NULL, added_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS files(
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    path TEXT NOT NULL UNIQUE, size INTEGER, mtime_ns INTEGER, sha256 TEXT, kind TEXT, title TEXT,
    status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    pages INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0, indexed_at REAL,
    pipeline TEXT, genre TEXT, genre_basis TEXT);
CREATE INDEX IF NOT EXISTS files_collection ON files(collection_id);
CREATE TABLE IF NOT EXISTS pages(
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    page INTEGER NOT NULL, text TEXT NOT NULL, headings TEXT, boxes TEXT,
    PRIMARY KEY(file_id, page));
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL, page INTEGER, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    text TEXT NOT NULL, context TEXT NOT NULL, n_tokens INTEGER NOT NULL, embedding BLOB NOT NULL,
    terms TEXT);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, context, content='chunks', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2');
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, context) VALUES (new.id, new.text, new.context);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, context)
    VALUES ('delete', old.id, old.text, old.context);
END;
"""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileRow:
    """A row of the ``files`` table."""

    id: int
    collection_id: int
    path: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    status: str
    reason: str
    pages: int
    chunks: int
    # What extracted and chunked it (see Indexer.pipeline): another value means re-extract.
    pipeline: str | None = None
    # What it is (core/text/filings.py: filing, financial_report, other; None: not known) and why
    genre: str | None = None
    genre_basis: str | None = None


@dataclass(frozen=True)
class CollectionRow:
    """A collection (an indexed folder) with its counts."""

    id: int
    root: str
    name: str
    files: int
    indexed: int
    problems: int
    chunks: int


class Store:
    """The SQLite database at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # collection_chunk_ids / collection_embeddings: one entry, valid for one vectors_version
        self._members: (
            tuple[tuple[tuple[int, ...], int], NDArray[np.int64], NDArray[np.float32] | None] | None
        ) = None
        # statement_chunks: per file, its chunks under a financial statement's title, valid for
        # one vectors_version
        self._statements: dict[int, list[tuple[int, str]]] = {}
        self._statements_version = -1
        # SQL for the optional columns: "NULL" where a read-only index lacks one (see _migrate)
        self._pipeline_column = "pipeline"
        self._headings_column = "headings"
        self._boxes_column = "boxes"
        self._genre_columns = "genre, genre_basis"
        self._terms_column = "c.terms"  # or a CASE hiding analyses not yet recomputed
        self.read_only = False
        self._migrate()

    # -- connections -------------------------------------------------------------------------
    @property
    def con(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode; use :meth:`_tx` for transactions)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:  # a read-only file not in WAL mode yet
                log.debug("WAL mode not set on %s: %s", self.path, exc)
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA foreign_keys=ON")
            self._local.con = con
        return con

    def _tx(self) -> _Transaction:
        return _Transaction(self.con)

    def close(self) -> None:
        """Close this thread's connection."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # -- schema ------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Create the tables, or bring an index made by an older version to :data:`SCHEMA_VERSION`:
        the steps of :data:`_MIGRATIONS` it lacks run in order, in one transaction, then the new
        version is recorded. Nothing is extracted or embedded again: added columns start empty
        (NULL); a missing ``terms`` column marks the stored analyses stale, so
        :meth:`refresh_analyses` fills them in. Also starts recomputing analyses made by another
        :data:`~desktop_rag.core.search.evidence.ANALYSIS_VERSION` (the bounds are recorded here).

        A read-only index (a file or folder without write permission) is left as it is and stays
        searchable: missing columns read as NULL and stale analyses are computed at question time.

        Raises:
            UserError: the index was made by a newer version of desktop_rag (never modified).
        """
        from desktop_rag.core.text.analysis import ANALYSIS_VERSION

        try:
            self._check_version(self._recorded_version())
            self.con.executescript(_SCHEMA)  # idempotent; executescript commits on its own
            with self._tx() as con:
                recorded = self._recorded_version()
                self._check_version(recorded)
                fresh = recorded is None
                added: list[str] = []
                for version, table, column, decl in _MIGRATIONS:
                    if column not in _columns(con, table):
                        # a column from before the bump (versions 2, 3) may exist at version 1
                        con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
                        added.append(f"{table}.{column} (v{version})")
                analysis = _meta(con, "analysis_version")
                if fresh:
                    analysis = str(ANALYSIS_VERSION)
                elif any(a.startswith("chunks.terms") for a in added):
                    analysis = "0"  # no analyses stored: all to compute
                elif analysis is None:
                    analysis = "1"  # stored before versions were recorded: the first analysis
                _set_meta(con, "analysis_version", analysis)
                if recorded != SCHEMA_VERSION:
                    _set_meta(con, "schema_version", str(SCHEMA_VERSION))
                if int(analysis) != ANALYSIS_VERSION:
                    self._start_analysis_upgrade(con, ANALYSIS_VERSION)
                if not fresh and any(a.startswith("files.genre ") for a in added):
                    _detect_stored_genres(con)
            if not fresh and (added or recorded != SCHEMA_VERSION):
                log.info("index %s: schema version %s -> %d, added %s", self.path, recorded,
                         SCHEMA_VERSION, ", ".join(added) or "no columns")  # fmt: skip
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc) and "read-only" not in str(exc):
                raise
            self.read_only = True
            log.warning("the index %s is read-only (%s): searching only", self.path, exc)
        self._pipeline_column = "pipeline" if "pipeline" in _columns(self.con, "files") else "NULL"
        self._headings_column = "headings" if "headings" in _columns(self.con, "pages") else "NULL"
        self._boxes_column = "boxes" if "boxes" in _columns(self.con, "pages") else "NULL"
        genre = "genre" in _columns(self.con, "files")
        self._genre_columns = "genre, genre_basis" if genre else "NULL, NULL"
        self._terms_column = self._terms_sql()

    def _recorded_version(self) -> int | None:
        """The schema version recorded in ``meta`` (None: a new, empty database)."""
        try:
            value = _meta(self.con, "schema_version")
        except sqlite3.OperationalError:  # no meta table yet
            return None
        return None if value is None else int(value)

    def _check_version(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise UserError(
                f"the index at {self.path} was made by a newer version of desktop_rag "
                f"(index format {version}; this version reads up to {SCHEMA_VERSION})",
                hint="upgrade desktop_rag, or point DESKTOP_RAG_HOME at another folder",
            )

    # -- stored analyses (chunks.terms) ------------------------------------------------------
    def _start_analysis_upgrade(self, con: sqlite3.Connection, version: int) -> None:
        """Record that the chunks with ids below the current end hold analyses of another
        version (chunks written from now on get the current one): ``meta.analysis_upgrade`` is
        ``{"version", "next", "below"}``, ids in ``[next, below)`` still to recompute."""
        raw = _meta(con, "analysis_upgrade")
        if raw is not None and json.loads(raw).get("version") == version:
            return  # resumed where an interrupted upgrade stopped
        below = int(con.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM chunks").fetchone()[0])
        state = {"version": version, "next": 0, "below": below}
        _set_meta(con, "analysis_upgrade", json.dumps(state))

    def _analysis_upgrade(self) -> dict[str, int] | None:
        """The pending recomputation of stored analyses, or None when they are current."""
        from desktop_rag.core.text.analysis import ANALYSIS_VERSION

        if self.get_meta("analysis_version") == str(ANALYSIS_VERSION):
            return None
        raw = self.get_meta("analysis_upgrade")
        state = json.loads(raw) if raw else None
        if not state or state.get("version") != ANALYSIS_VERSION:
            return {"version": ANALYSIS_VERSION, "next": 0, "below": -1}  # unknown: all stale
        return {k: int(v) for k, v in state.items()}

    def _terms_sql(self) -> str:
        """The SQL read as a chunk's stored analysis: NULL (computed at question time) where the
        column is missing or the analysis is stale, so a stale analysis is never used."""
        if "terms" not in _columns(self.con, "chunks"):
            return "NULL"
        state = self._analysis_upgrade()
        if state is None:
            return "c.terms"
        if state["below"] < 0:
            return "NULL"
        return (f"CASE WHEN c.id >= {state['next']} AND c.id < {state['below']} THEN NULL "
                "ELSE c.terms END")  # fmt: skip

    def analysis_status(self) -> dict[str, int | None]:
        """``{"version", "current", "stale"}``: the analysis version recorded for the index, the
        one this program makes, and how many chunks still hold a stale analysis."""
        from desktop_rag.core.text.analysis import ANALYSIS_VERSION

        state = self._analysis_upgrade()
        recorded = self.get_meta("analysis_version")
        stale = 0
        if state is not None:
            below = state["below"] if state["below"] >= 0 else 1 << 62
            stale = int(self.con.execute("SELECT COUNT(*) FROM chunks WHERE id >= ? AND id < ?",
                                         (state["next"], below)).fetchone()[0])  # fmt: skip
        return {"version": None if recorded is None else int(recorded),
                "current": ANALYSIS_VERSION, "stale": stale}  # fmt: skip

    def refresh_analyses(self, batch: int = 2000) -> Iterator[tuple[int, int]]:
        """Recompute stale stored analyses (``chunks.terms``) from the stored chunk text: no
        extraction, no embedding, the chunk ids and vectors are untouched. Works by id in
        batches of ``batch`` chunks, one short transaction each (the analysis itself is computed
        outside it: about 0.2 ms a chunk), recording its progress, so an interrupted run resumes
        and readers are never blocked for long; the version is recorded after the last batch.

        Yields (chunks done, chunks to do) after each batch; nothing when the analyses are
        current or the index is read-only. The caller may stop iterating at any point.
        """
        from desktop_rag.core.text.analysis import encode_terms

        state = self._analysis_upgrade()
        if state is None or self.read_only:
            return
        if state["below"] < 0:  # not started (e.g. another version reset it): start now
            with self._tx() as con:
                self._start_analysis_upgrade(con, state["version"])
            state = self._analysis_upgrade()
            assert state is not None
        nxt, below = state["next"], state["below"]
        total = int(self.con.execute("SELECT COUNT(*) FROM chunks WHERE id >= ? AND id < ?",
                                     (nxt, below)).fetchone()[0])  # fmt: skip
        done = 0
        t0 = time.perf_counter()
        while True:
            rows = self.con.execute(
                "SELECT id, text FROM chunks WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                (nxt, below, batch),
            ).fetchall()
            if not rows:
                break
            # chunk rows are never updated in place (a changed file gets new ids), so the text
            # read here is still the text of that id when the update commits
            encoded = [(encode_terms(text), cid) for cid, text in rows]
            nxt = int(rows[-1][0]) + 1
            with self._tx() as con:
                con.executemany("UPDATE chunks SET terms=? WHERE id=?", encoded)
                state["next"] = nxt
                _set_meta(con, "analysis_upgrade", json.dumps(state))
            self._terms_column = self._terms_sql()
            done += len(rows)
            yield done, total
        with self._tx() as con:
            _set_meta(con, "analysis_version", str(state["version"]))
            con.execute("DELETE FROM meta WHERE key='analysis_upgrade'")
        self._terms_column = self._terms_sql()
        log.info("recomputed the stored analyses of %d chunks (version %d) in %.1f s", done,
                 state["version"], time.perf_counter() - t0)  # fmt: skip

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table, or None."""
        return _meta(self.con, key)

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the ``meta`` table (its own transaction).

        Raises:
            sqlite3.OperationalError: the index is read-only.
        """
        with self._tx() as con:
            _set_meta(con, key, value)

    def index_settings(self) -> dict[str, object] | None:
        """What the last indexing run recorded about how chunks are made (see
        :meth:`~desktop_rag.core.ingest.indexer.Indexer.settings`), or None before the first run."""
        raw = self.get_meta("index_settings")
        return None if raw is None else dict(json.loads(raw))

    def record_index_settings(self, settings: dict[str, object]) -> None:
        """Record the index-level settings (JSON) unless they are already recorded (a read-only
        index is left as it is)."""
        value = json.dumps(settings, sort_keys=True)
        if self.read_only or self.get_meta("index_settings") == value:
            return
        self.set_meta("index_settings", value)

    def identity_report(self) -> dict[str, object]:
        """The index's identity for ``desktop-rag status --json``: schema version, embedding
        model, index settings and the stored analyses' state."""
        version = self.get_meta("schema_version")
        return {
            "schema_version": None if version is None else int(version),
            "embedding_model": self.stored_identity(),
            "index_settings": self.index_settings(),
            "analysis": self.analysis_status(),
            "read_only": self.read_only,
        }

    def vectors_version(self) -> int:
        """Increases with every committed change to the set of embeddings."""
        return int(self.get_meta("vectors_version") or 0)

    def check_identity(self, identity: EmbeddingIdentity) -> None:
        """Record the embedding model on first use; refuse a different one later.

        Raises:
            EmbeddingMismatchError: the index holds embeddings of another model.
        """
        with self._tx() as con:
            row = con.execute("SELECT value FROM meta WHERE key='embedding_model'").fetchone()
            if row is None:
                con.execute(
                    "INSERT INTO meta VALUES ('embedding_model', ?)",
                    (json.dumps(identity.to_dict()),),
                )
                return
        stored = json.loads(row[0])
        if stored.get("dim") != identity.dim or stored.get("fingerprint") != identity.fingerprint:
            raise EmbeddingMismatchError(
                f"this index was built with the embedding model {stored.get('name')!r} "
                f"({stored.get('dim')} dimensions), but {identity.name!r} ({identity.dim} dimensions) "
                "is selected; vectors of different models cannot be compared",
                hint="select the original embedding model, or run `desktop-rag reset` and index again",
            )

    def stored_identity(self) -> dict[str, object] | None:
        """The recorded embedding model identity, or None for an empty index."""
        raw = self.get_meta("embedding_model")
        return None if raw is None else dict(json.loads(raw))

    # -- collections and files ---------------------------------------------------------------
    def add_collection(self, root: Path) -> int:
        """The id of the collection rooted at ``root`` (an absolute folder), creating it if new."""
        with self._tx() as con:
            row = con.execute("SELECT id FROM collections WHERE root=?", (str(root),)).fetchone()
            if row:
                return int(row[0])
            cur = con.execute(
                "INSERT INTO collections(root, name, added_at) VALUES (?, ?, ?)",
                (str(root), root.name or str(root), time.time()),
            )
            return int(cur.lastrowid or 0)

    def collection_ids(self) -> set[int]:
        """The ids of all collections."""
        return {int(r[0]) for r in self.con.execute("SELECT id FROM collections")}

    def collections(self) -> list[CollectionRow]:
        """All collections with file and chunk counts."""
        rows = self.con.execute(
            """SELECT c.id, c.root, c.name, COUNT(f.id),
                      COALESCE(SUM(f.status='indexed'), 0),
                      COALESCE(SUM(f.status IN ('failed', 'skipped')), 0),
                      COALESCE(SUM(f.chunks), 0)
               FROM collections c LEFT JOIN files f ON f.collection_id = c.id
               GROUP BY c.id ORDER BY c.id"""
        ).fetchall()
        return [CollectionRow(*r) for r in rows]

    def files(self, collection_id: int | None = None) -> list[FileRow]:
        """Rows of ``files`` (of one collection, or all)."""
        sql = (
            "SELECT id, collection_id, path, size, mtime_ns, sha256, status, reason, pages, chunks,"
            f" {self._pipeline_column}, {self._genre_columns} FROM files"
        )
        args: tuple[object, ...] = ()
        if collection_id is not None:
            sql += " WHERE collection_id=?"
            args = (collection_id,)
        return [FileRow(*r) for r in self.con.execute(sql + " ORDER BY path", args)]

    def file_by_path(self, path: str) -> FileRow | None:
        """The ``files`` row of an absolute path, or None."""
        row = self.con.execute(
            "SELECT id, collection_id, path, size, mtime_ns, sha256, status, reason, pages, chunks,"
            f" {self._pipeline_column}, {self._genre_columns} FROM files WHERE path=?",
            (path,),
        ).fetchone()
        return None if row is None else FileRow(*row)

    def touch_file(self, file_id: int, size: int, mtime_ns: int) -> None:
        """Record a new size/mtime for a file whose content hash did not change."""
        with self._tx() as con:
            con.execute("UPDATE files SET size=?, mtime_ns=? WHERE id=?", (size, mtime_ns, file_id))

    def _bump_version(self, con: sqlite3.Connection) -> None:
        con.execute(
            "INSERT INTO meta VALUES ('vectors_version', '1') ON CONFLICT(key) DO UPDATE "
            "SET value = CAST(value AS INTEGER) + 1"
        )

    def _delete_chunks(self, con: sqlite3.Connection, file_id: int) -> list[int]:
        ids = [r[0] for r in con.execute("SELECT id FROM chunks WHERE file_id=?", (file_id,))]
        if ids:
            con.execute("DELETE FROM chunks WHERE file_id=?", (file_id,))
        con.execute("DELETE FROM pages WHERE file_id=?", (file_id,))
        return ids

    def write_file(
        self,
        *,
        collection_id: int,
        path: str,
        size: int,
        mtime_ns: int,
        sha256: str,
        kind: str,
        title: str,
        pages: Sequence[Page],
        chunks: Sequence[Chunk],
        embeddings: NDArray[np.float32],
        pipeline: str | None = None,
        genre: str | None = None,
        genre_basis: str = "",
    ) -> tuple[list[int], list[int]]:
        """Replace a file's pages, chunks and embeddings in one transaction.

        ``embeddings`` is ``(len(chunks), dim)`` float32; ``pipeline`` names the extraction and
        chunking that made them (kept in ``files.pipeline``); ``genre`` and ``genre_basis`` what
        the document is and why (:func:`~desktop_rag.core.text.filings.detect_genre`). Returns
        (new chunk ids, removed chunk ids).
        """
        assert embeddings.shape[0] == len(chunks)
        from desktop_rag.core.text.analysis import encode_terms

        # Each chunk's analysis for question time (stems, sentences, length), outside the
        # transaction: about 0.2 ms a chunk, under 0.1% of its embedding time.
        encoded = [encode_terms(c.text) for c in chunks]
        with self._tx() as con:
            file_id = self._upsert_file(
                con,
                collection_id,
                path,
                size,
                mtime_ns,
                sha256,
                kind,
                title,
                "indexed",
                "",
                len(pages),
                len(chunks),
            )
            removed = self._delete_chunks(con, file_id)
            if self._pipeline_column != "NULL":
                con.execute("UPDATE files SET pipeline=? WHERE id=?", (pipeline, file_id))
            if self._genre_columns != "NULL, NULL":
                con.execute("UPDATE files SET genre=?, genre_basis=? WHERE id=?",
                            (genre, genre_basis, file_id))  # fmt: skip
            con.executemany(  # (only a read-only index lacks the column: no write gets here)
                "INSERT INTO pages(file_id, page, text, headings, boxes) VALUES (?, ?, ?, ?, ?)",
                [
                    (file_id, p.number or 0, p.text, _encode_headings(p), _encode_boxes(p))
                    for p in pages
                ],
            )
            new_ids: list[int] = []
            for i, (c, vec, terms) in enumerate(zip(chunks, embeddings, encoded, strict=True)):
                cur = con.execute(
                    'INSERT INTO chunks(file_id, ord, page, start, "end", text, context, n_tokens,'
                    " embedding, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        file_id,
                        i,
                        c.page,
                        c.start,
                        c.end,
                        c.text,
                        c.context,
                        c.n_tokens,
                        vec.astype(np.float32).tobytes(),
                        terms,
                    ),
                )
                new_ids.append(int(cur.lastrowid or 0))
            self._bump_version(con)
        return new_ids, removed

    def mark_file(
        self,
        *,
        collection_id: int,
        path: str,
        size: int | None,
        mtime_ns: int | None,
        sha256: str | None,
        status: str,
        reason: str,
        pipeline: str | None = None,
    ) -> list[int]:
        """Record a skipped or failed file with its reason and the ``pipeline`` that judged it
        (see ``Indexer._current``); its old chunks (if any) are removed.

        Returns the removed chunk ids.
        """
        with self._tx() as con:
            file_id = self._upsert_file(
                con, collection_id, path, size, mtime_ns, sha256, None, None, status, reason, 0, 0
            )
            if self._pipeline_column != "NULL":
                con.execute("UPDATE files SET pipeline=? WHERE id=?", (pipeline, file_id))
            if self._genre_columns != "NULL, NULL":
                con.execute("UPDATE files SET genre=NULL, genre_basis=NULL WHERE id=?", (file_id,))
            removed = self._delete_chunks(con, file_id)
            if removed:
                self._bump_version(con)
        return removed

    def _upsert_file(
        self,
        con: sqlite3.Connection,
        collection_id: int,
        path: str,
        size: int | None,
        mtime_ns: int | None,
        sha256: str | None,
        kind: str | None,
        title: str | None,
        status: str,
        reason: str,
        pages: int,
        chunks: int,
    ) -> int:
        row = con.execute("SELECT id FROM files WHERE path=?", (path,)).fetchone()
        values = (
            collection_id,
            size,
            mtime_ns,
            sha256,
            kind,
            title,
            status,
            reason,
            pages,
            chunks,
            time.time(),
        )
        if row:
            con.execute(
                "UPDATE files SET collection_id=?, size=?, mtime_ns=?, sha256=?, kind=?, title=?,"
                " status=?, reason=?, pages=?, chunks=?, indexed_at=? WHERE id=?",
                (*values, row[0]),
            )
            return int(row[0])
        cur = con.execute(
            "INSERT INTO files(collection_id, size, mtime_ns, sha256, kind, title, status, reason,"
            " pages, chunks, indexed_at, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, path),
        )
        return int(cur.lastrowid or 0)

    def remove_file(self, file_id: int) -> list[int]:
        """Delete a file and its chunks; returns the removed chunk ids."""
        with self._tx() as con:
            removed = self._delete_chunks(con, file_id)
            con.execute("DELETE FROM files WHERE id=?", (file_id,))
            if removed:
                self._bump_version(con)
        return removed

    def remove_collection(self, collection_id: int) -> list[int]:
        """Delete a collection with all its files and chunks; returns the removed chunk ids."""
        removed: list[int] = []
        with self._tx() as con:
            for (fid,) in con.execute(
                "SELECT id FROM files WHERE collection_id=?", (collection_id,)
            ).fetchall():
                removed += self._delete_chunks(con, fid)
            con.execute("DELETE FROM files WHERE collection_id=?", (collection_id,))
            con.execute("DELETE FROM collections WHERE id=?", (collection_id,))
            self._bump_version(con)
        return removed

    # -- reading -----------------------------------------------------------------------------
    def chunk_count(self) -> int:
        """The number of chunks (= embeddings) in the store."""
        return int(self.con.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def iter_embeddings(
        self, batch: int = 4096
    ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float32]]]:
        """All (chunk ids ``(n,)`` int64, embeddings ``(n, dim)`` float32) in batches, by id."""
        last = -1
        while True:
            rows = self.con.execute(
                "SELECT id, embedding FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vecs = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vecs
            last = int(ids[-1])

    def chunk_texts(self) -> list[tuple[int, str, str]]:
        """Every chunk's (id, context line, text), by id: what :func:`embedding_text` embeds."""
        rows = self.con.execute("SELECT id, context, text FROM chunks ORDER BY id").fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def replace_embeddings(
        self, ids: Sequence[int], vectors: NDArray[np.float32], identity: EmbeddingIdentity
    ) -> int:
        """Store new embeddings for the chunks ``ids`` (``vectors``: ``(len(ids), dim)``) and
        record ``identity`` as the index's embedding model, in one transaction, so the index
        never holds vectors of two models. Chunks added since ``ids`` was read are deleted too
        (their vectors are the old model's; the next indexing run adds them again). Returns
        the number of chunks embedded again.

        Raises:
            ValueError: ``vectors`` does not have one row of ``identity.dim`` per id.
        """
        if vectors.shape != (len(ids), identity.dim):
            raise ValueError(f"{vectors.shape} embeddings for {len(ids)} chunks of {identity.dim}")
        with self._tx() as con:
            con.execute("CREATE TEMP TABLE IF NOT EXISTS reembedded(id INTEGER PRIMARY KEY)")
            con.execute("DELETE FROM reembedded")
            con.executemany("INSERT INTO reembedded VALUES (?)", ((int(i),) for i in ids))
            stale = [r[0] for r in con.execute(
                "SELECT id FROM chunks WHERE id NOT IN (SELECT id FROM reembedded)")]  # fmt: skip
            if stale:
                files = {r[0] for r in con.execute(
                    f"SELECT DISTINCT file_id FROM chunks WHERE id IN ({','.join('?' * len(stale))})",
                    stale)}  # fmt: skip
                con.executemany("UPDATE files SET sha256=NULL WHERE id=?", ((f,) for f in files))
                con.executemany("DELETE FROM chunks WHERE id=?", ((i,) for i in stale))
            con.executemany(
                "UPDATE chunks SET embedding=? WHERE id=?",
                ((np.ascontiguousarray(v, dtype=np.float32).tobytes(), int(i))
                 for i, v in zip(ids, vectors, strict=True)),
            )  # fmt: skip
            con.execute("DROP TABLE reembedded")
            con.execute(
                "INSERT INTO meta VALUES ('embedding_model', ?) ON CONFLICT(key) DO UPDATE "
                "SET value = excluded.value",
                (json.dumps(identity.to_dict()),),
            )
            self._bump_version(con)
        return len(ids)

    def embeddings_for(self, ids: Sequence[int]) -> dict[int, NDArray[np.float32]]:
        """Embeddings of the given chunk ids (missing ids are left out)."""
        out: dict[int, NDArray[np.float32]] = {}
        for part in _parts(ids):
            q = f"SELECT id, embedding FROM chunks WHERE id IN ({','.join('?' * len(part))})"
            for cid, blob in self.con.execute(q, part):
                out[int(cid)] = np.frombuffer(blob, dtype=np.float32)
        return out

    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, Hit]:
        """Chunks with their file paths, by id (ids no longer in the store are left out)."""
        out: dict[int, Hit] = {}
        for part in _parts(ids):
            q = (
                'SELECT c.id, c.file_id, f.path, c.page, c.start, c."end", c.text, c.context, '
                f"{self._terms_column}, {self._genre_columns.split(',')[0]} "
                "FROM chunks c JOIN files f ON f.id = c.file_id "
                f"WHERE c.id IN ({','.join('?' * len(part))})"
            )
            for r in self.con.execute(q, part):
                out[int(r[0])] = _stored_hit(r, r[8], r[9])
        return out

    def iter_file_chunks(
        self, file_id: int, batch: int = 512
    ) -> Iterator[list[tuple[Hit, NDArray[np.float32]]]]:
        """A file's chunks in document order (page, then offset), each with its embedding
        ``(dim,)`` float32, in lists of at most ``batch``: a 1,000-page file is read a part at a
        time (whole-document summaries and comparisons)."""
        last: tuple[int, int, int] = (-1, -1, -1)
        while True:
            rows = self.con.execute(
                'SELECT c.id, c.file_id, f.path, c.page, c.start, c."end", c.text, c.context, '
                f"{self._terms_column}, c.embedding "
                "FROM chunks c JOIN files f ON f.id = c.file_id WHERE c.file_id=? "
                "AND (COALESCE(c.page, 0), c.start, c.id) > (?, ?, ?) "
                "ORDER BY COALESCE(c.page, 0), c.start, c.id LIMIT ?",
                (file_id, *last, batch),
            ).fetchall()
            if not rows:
                return
            yield [(_stored_hit(r, r[8]), np.frombuffer(r[9], dtype=np.float32)) for r in rows]
            r = rows[-1]
            last = (int(r[3] or 0), int(r[4]), int(r[0]))

    def statement_chunks(self, file_ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
        """Per file of ``file_ids``: (chunk id, statement) of its chunks whose context line names
        a financial statement (:func:`~desktop_rag.core.text.statements.statement_of_context`),
        in id order. Read once a file and cached until the chunks change
        (:meth:`vectors_version`): the retriever asks for the leading candidate documents of
        every question about a line item, and a context scan of eight 10-Qs took 20-45 ms of a
        search (bench/retrieval_stages.py)."""
        from desktop_rag.core.text.statements import statement_of_context

        version = self.vectors_version()
        if version != self._statements_version:
            self._statements, self._statements_version = {}, version
        missing = [f for f in dict.fromkeys(file_ids) if f not in self._statements]
        if missing:
            found: dict[int, list[tuple[int, str]]] = {f: [] for f in missing}
            # Every statement title holds one of these words; the notes' headings do too, and
            # statement_of_context leaves them out.
            for c, f, ctx in self._contexts_like(
                missing, ("sheet", "statement", "financial position")
            ):
                kind = statement_of_context(ctx)
                if kind is not None:
                    found[f].append((c, kind))
            self._statements.update(found)
        return {f: self._statements[f] for f in file_ids if f in self._statements}

    def _contexts_like(
        self, file_ids: Sequence[int], words: Sequence[str]
    ) -> list[tuple[int, int, str]]:
        like = " OR ".join("context LIKE ?" for _ in words)
        out: list[tuple[int, int, str]] = []
        for part in _parts(file_ids):
            q = (f"SELECT id, file_id, context FROM chunks WHERE file_id IN "
                 f"({','.join('?' * len(part))}) AND ({like}) ORDER BY id")  # fmt: skip
            out += [
                (int(r[0]), int(r[1]), str(r[2]))
                for r in self.con.execute(q, [*part, *(f"%{w}%" for w in words)])
            ]
        return out

    def collection_chunk_ids(self, collections: Sequence[int]) -> NDArray[np.int64]:
        """Ids ``(n,)`` int64, ascending, of every chunk in those collections. The last answer
        is cached until the chunks change (:meth:`vectors_version`): searches repeat it."""
        key = (tuple(sorted(set(collections))), self.vectors_version())
        if self._members is None or self._members[0] != key:
            marks = ",".join("?" * len(key[0])) or "NULL"
            rows = self.con.execute(
                "SELECT c.id FROM chunks c JOIN files f ON f.id = c.file_id "
                f"WHERE f.collection_id IN ({marks}) ORDER BY c.id",
                key[0],
            ).fetchall()
            self._members = (key, np.fromiter((r[0] for r in rows), np.int64, len(rows)), None)
        return self._members[1]

    def collection_embeddings(
        self, collections: Sequence[int]
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """(chunk ids ``(n,)`` int64, unit-length embeddings ``(n, dim)`` float32) of every chunk
        in those collections, for an exact search over a small selection; cached with
        :meth:`collection_chunk_ids` (``n * dim * 4`` bytes held)."""
        ids = self.collection_chunk_ids(collections)
        assert self._members is not None
        key, _, matrix = self._members
        if matrix is None:
            vecs = self.embeddings_for(ids.tolist())
            ids = np.array([i for i in ids.tolist() if i in vecs], dtype=np.int64)
            matrix = (np.stack([vecs[i] for i in ids.tolist()]) if len(ids)
                      else np.zeros((0, 1), np.float32))  # fmt: skip
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = (matrix / np.maximum(norms, 1e-12)).astype(np.float32)
            self._members = (key, ids, matrix)
        return ids, matrix

    def stored_document(self, file_id: int) -> Document | None:
        """The document as extracted when the file was indexed (title, kind, pages with their
        headings), to cut it into chunks again without extracting it; None when that cannot be
        done exactly: no such file, or pages stored before their headings were (schema < 4)."""
        row = self.con.execute(
            f"SELECT title, kind, {self._genre_columns} FROM files WHERE id=?", (file_id,)
        ).fetchone()
        if row is None or self._headings_column == "NULL":
            return None
        pages: list[Page] = []
        for number, text, headings, boxes in self.con.execute(
            f"SELECT page, text, headings, {self._boxes_column} FROM pages WHERE file_id=?"
            " ORDER BY page",
            (file_id,),
        ):
            if headings is None:
                return None
            found = tuple(Heading(int(o), int(lv), str(t)) for o, lv, t in json.loads(headings))
            pages.append(Page(int(number) or None, str(text), found, _decode_boxes(boxes)))
        return Document(str(row[0] or ""), tuple(pages), str(row[1] or ""), row[2], row[3] or "")

    def file_embeddings(self, file_id: int) -> dict[tuple[str, str], NDArray[np.float32]]:
        """A file's stored embeddings by (context, text) of their chunks: a chunk cut again with
        the same context and text has the same embedding (the model is checked by
        :meth:`check_identity`), so it need not be embedded again."""
        return {
            (str(ctx), str(text)): np.frombuffer(blob, dtype=np.float32)
            for ctx, text, blob in self.con.execute(
                "SELECT context, text, embedding FROM chunks WHERE file_id=?", (file_id,)
            )
        }

    def page_boxes(self, file_id: int, page: int | None) -> tuple[TextBox, ...]:
        """Where the text of an OCR page was recognised (empty for pages with a text layer, and
        for pages indexed before boxes were stored)."""
        row = self.con.execute(
            f"SELECT {self._boxes_column} FROM pages WHERE file_id=? AND page=?",
            (file_id, page or 0),
        ).fetchone()
        return _decode_boxes(row[0]) if row is not None else ()

    def page_text(self, file_id: int, page: int | None) -> str | None:
        """The stored text of one page (``page`` None or 0 for single-page text documents)."""
        row = self.con.execute(
            "SELECT text FROM pages WHERE file_id=? AND page=?", (file_id, page or 0)
        ).fetchone()
        return None if row is None else str(row[0])


def _stored_hit(r: Sequence[Any], terms: str | None, genre: str | None = None) -> Hit:
    """A chunk row ``(id, file_id, path, page, start, end, text, context, ...)`` as a
    :class:`~desktop_rag.core.types.Hit` of score 0.0."""
    return Hit(int(r[0]), int(r[1]), str(r[2]), r[3], int(r[4]), int(r[5]), str(r[6]),
               str(r[7]), 0.0, terms=terms, genre=genre)  # fmt: skip


def _encode_headings(page: Page) -> str:
    """A page's headings as JSON ``[[offset, level, text], ...]`` (``[]``: none)."""
    return json.dumps([[h.offset, h.level, h.text] for h in page.headings], ensure_ascii=False)


def _encode_boxes(page: Page) -> str | None:
    """A page's OCR boxes as JSON ``[[start, end, x0, y0, x1, y1], ...]`` (points to 0.1; None:
    no boxes)."""
    if not page.boxes:
        return None
    return json.dumps([[b.start, b.end, round(b.x0, 1), round(b.y0, 1), round(b.x1, 1),
                        round(b.y1, 1)] for b in page.boxes])  # fmt: skip


def _decode_boxes(raw: str | None) -> tuple[TextBox, ...]:
    """The boxes :func:`_encode_boxes` wrote (``()`` for None)."""
    if not raw:
        return ()
    return tuple(TextBox(int(s), int(e), float(x0), float(y0), float(x1), float(y1))
                 for s, e, x0, y0, x1, y1 in json.loads(raw))  # fmt: skip


def _detect_stored_genres(con: sqlite3.Connection) -> None:
    """Fill ``files.genre`` of the indexed files from their stored pages (schema 6 migration):
    the same text the extractor detects it from, so an old index needs no re-extraction."""
    from desktop_rag.core.text.filings import detect_genre

    ids = [int(r[0]) for r in con.execute("SELECT id FROM files WHERE status='indexed'")]
    for file_id in ids:
        texts = (str(r[0]) for r in con.execute(
            "SELECT text FROM pages WHERE file_id=? ORDER BY page", (file_id,)))  # fmt: skip
        genre, basis = detect_genre(texts)
        con.execute("UPDATE files SET genre=?, genre_basis=? WHERE id=?", (genre, basis, file_id))
    if ids:
        log.info("detected the genre of %d indexed files from their stored pages", len(ids))


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    """The column names of ``table``."""
    return {str(r[1]) for r in con.execute(f"PRAGMA table_info({table})")}


def _meta(con: sqlite3.Connection, key: str) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(con: sqlite3.Connection, key: str, value: str) -> None:
    con.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        (key, value),
    )


def _parts(ids: Sequence[int], size: int = 900) -> Iterator[list[int]]:
    ids = list(ids)
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on an exception)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.con.execute("COMMIT")
        else:
            self.con.execute("ROLLBACK")
