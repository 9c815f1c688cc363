"""Maintenance of a data directory's index, for every client (the CLI's ``reset``, scripts, tests).

Only the index is ever touched: the SQLite store (with its write-ahead log) and the derived
caches beside it (the hnswlib vectors and the BM25 postings). Documents, models, adapters,
settings and conversations stay.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from desktop_rag.core.errors import UserError
from desktop_rag.core.ingest.indexer import writer_lock
from desktop_rag.core.paths import AppPaths, app_paths

log = logging.getLogger(__name__)


def index_files(paths: AppPaths) -> list[Path]:
    """The index's files and folders in ``paths.data`` that exist now: the vector and postings
    cache folder first (derived data), then the SQLite database and its WAL, shared-memory and
    rollback-journal files."""
    db = paths.index_db
    candidates = [
        paths.vectors_dir,
        db,
        *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal")),
    ]
    return [p for p in candidates if p.exists()]


def reset_index(paths: AppPaths | None = None) -> list[Path]:
    """Delete the index of a data directory (``paths``; default: the one in force now).

    The indexing lock is held throughout, so no indexing run can start meanwhile. The derived
    caches go first, so an error part way leaves a store they are rebuilt from, never caches
    without their store. A process that has the index open without indexing (the desktop app
    idle) keeps its open copy until it restarts. Returns what was deleted.

    Raises:
        IndexBusyError: another process (or another run in this one) is indexing.
        UserError: a file could not be deleted (the message names it).
    """
    paths = paths or app_paths()
    removed: list[Path] = []
    with writer_lock(paths.index_lock):
        for p in index_files(paths):
            try:
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink(missing_ok=True)
            except OSError as exc:
                raise UserError(
                    f"cannot delete {p}: {exc.strerror or exc}",
                    hint="close the desktop app and other desktop-rag processes, then try again",
                ) from None
            removed.append(p)
    log.info("index reset in %s: removed %s", paths.data, [p.name for p in removed])
    return removed
