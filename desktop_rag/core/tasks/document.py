"""What a whole-document task works on: the indexed files a user named, read in document order.

Shared by :mod:`.summarize` and :mod:`.compare`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from desktop_rag.core.errors import UserError
from desktop_rag.core.index.store import FileRow
from desktop_rag.core.types import Hit

if TYPE_CHECKING:
    from desktop_rag.core.engine import Engine


def resolve_files(engine: Engine, target: str | Path) -> list[FileRow]:
    """The indexed files ``target`` names, in path order: a file (its path, or a file name
    indexed once), or an indexed folder (a collection's root or name: all its indexed files).

    Raises:
        UserError: nothing indexed matches, the name matches several files, or the file is
            known but was not indexed (its reason is given).
    """
    store = engine.store
    raw = str(target)
    path = Path(raw).expanduser()
    resolved = str(path.resolve()) if path.exists() else None
    for c in store.collections():
        if resolved == c.root or raw == c.name:
            files = [f for f in store.files(c.id) if f.status == "indexed" and f.chunks]
            if not files:
                raise UserError(f"nothing in {c.root} is indexed yet", hint="index it first")
            return files
    row = store.file_by_path(resolved) if resolved else None
    if row is None and not path.is_absolute():
        named = [f for f in store.files() if Path(f.path).name == raw]
        if len(named) > 1:
            raise UserError(
                f"{raw} names {len(named)} indexed files",
                hint="give its full path: " + ", ".join(f.path for f in named[:3]),
            )
        row = named[0] if named else None
    if row is None:
        raise UserError(f"{raw} is not in the index", hint="index its folder first")
    if row.status != "indexed" or not row.chunks:
        reason = f": {row.reason}" if row.reason else ""
        raise UserError(f"{Path(row.path).name} was not indexed{reason}")
    return [row]


def document_chunks(
    engine: Engine, file: FileRow, batch: int = 512
) -> Iterator[list[tuple[Hit, NDArray[np.float32]]]]:
    """The chunks of ``file`` in document order with their embeddings ``(dim,)`` float32, a
    batch at a time (see :meth:`~desktop_rag.core.index.store.Store.iter_file_chunks`)."""
    return engine.store.iter_file_chunks(file.id, batch)
