"""Logging to a rotating file under the platformdirs log dir (users see messages, not tracebacks)."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from desktop_rag.core.paths import app_paths


def setup_logging(verbose: bool = False) -> Path:
    """Send all log records to ``<logs>/desktop-rag.log`` (and warnings to stderr if verbose)."""
    paths = app_paths().ensure()
    log_file = paths.logs / "desktop-rag.log"
    root = logging.getLogger()
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers):
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return log_file
