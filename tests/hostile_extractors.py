"""Extractors that misbehave the way crafted files make C parsers misbehave (for the sandbox tests).

They run in the extraction worker process; a file's name picks the misbehaviour, anything else is
extracted normally.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from desktop_rag.core.ingest.extract import extract
from desktop_rag.core.types import Document


def misbehave(path: Path) -> None:
    """Misbehave as ``path``'s name says: ``hang*`` never returns, ``segfault*`` dies of
    SIGSEGV, ``abort*`` aborts, ``bomb*`` allocates without bound; other names return."""
    name = path.name
    if name.startswith("hang"):
        while True:
            time.sleep(1)
    if name.startswith("segfault"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("abort"):
        os.abort()
    if name.startswith("bomb"):
        hoard = []
        while True:
            hoard.append(bytearray(64 * 1024 * 1024))


def misbehaving_extract(path: Path, **options: Any) -> Document:
    """Misbehaves as :func:`misbehave` says; other files are extracted normally."""
    misbehave(path)
    return extract(path, **options)


def vanishing_extract(path: Path, **options: Any) -> Document:
    """``vanish*`` files are deleted just before they are parsed (a file removed mid-run);
    ``grow*`` files get appended to while being parsed; others are extracted normally."""
    if path.name.startswith("vanish"):
        path.unlink()
    if path.name.startswith("grow"):
        with open(path, "a", encoding="utf-8") as f:
            f.write("\nA line appended while indexing ran.\n")
    return extract(path, **options)
