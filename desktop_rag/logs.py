"""Logging to a rotating file under the platformdirs log dir (users see messages, not tracebacks)."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from desktop_rag.core.paths import app_paths

LOG_NAME = "desktop-rag.log"
_HANDLER_NAME = "desktop_rag.log_file"  # marks the handler setup_logging installs


def _our_handler() -> logging.handlers.RotatingFileHandler | None:
    for h in logging.getLogger().handlers:
        if isinstance(h, logging.handlers.RotatingFileHandler) and h.get_name() == _HANDLER_NAME:
            return h
    return None


def setup_logging(verbose: bool = False) -> Path:
    """Send all log records to ``<logs>/desktop-rag.log`` (rotated at 5 MB, 3 old files kept) and
    return that path; INFO and up, DEBUG and up if ``verbose``.

    Idempotent. When the log folder in force has changed since (another ``DESKTOP_RAG_HOME`` in
    the same process, as in the tests), the file handler moves there.

    Raises:
        OSError: the log folder cannot be created or the file opened.
    """
    log_file = app_paths().ensure().logs / LOG_NAME
    root = logging.getLogger()
    current = _our_handler()
    if current is not None and current.baseFilename != os.path.abspath(log_file):
        root.removeHandler(current)
        current.close()
        current = None
    if current is None:
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        if not verbose:
            root.setLevel(logging.INFO)
    if verbose:
        root.setLevel(logging.DEBUG)
    return log_file


def current_log_file() -> Path | None:
    """The file :func:`setup_logging` sends records to now (None before it ran)."""
    handler = _our_handler()
    return Path(handler.baseFilename) if handler is not None else None


def error_summary(exc: BaseException) -> str:
    """A bug in one line for the user: ``Type: first line of its message`` (200 characters at
    most), or the type alone; the traceback belongs in the log, not here."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def where_logged(log_file: Path | None) -> str:
    """Where the details of an error are, for the one-line message that names the log file."""
    return f"details in {log_file}" if log_file else "the log file could not be written"
