"""Office and e-book files that are ZIP packages (Word, PowerPoint, Excel, EPUB, OpenDocument):
the checks every one of them passes before a parser reads it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from desktop_rag.core.errors import ExtractionError

#: Refuse a package whose ZIP members declare more than this many uncompressed bytes in total, or
#: one member expanding more than MAX_RATIO times (ZIP bombs; a real document is far below both).
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_RATIO = 200


def check_zip_sizes(path: Path, kind: str = "Word document") -> None:
    """Refuse a ZIP bomb by the sizes its central directory declares (nothing is decompressed).

    Raises:
        ExtractionError: the declared sizes exceed :data:`MAX_UNPACKED_BYTES` or a member's
            compression ratio exceeds :data:`MAX_RATIO` (for members over 1 MB).
    """
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionError(f"corrupt {kind} ({exc})") from None
    total = sum(i.file_size for i in infos)
    if total > MAX_UNPACKED_BYTES:
        raise ExtractionError(
            f"refused: the package declares {total / 1e6:,.0f} MB of content when unpacked "
            f"(limit {MAX_UNPACKED_BYTES / 1e6:,.0f} MB; a ZIP bomb?)"
        )
    for i in infos:
        if i.file_size > 1024 * 1024 and i.file_size > MAX_RATIO * max(1, i.compress_size):
            raise ExtractionError(
                f"refused: {i.filename} expands {i.file_size / max(1, i.compress_size):,.0f} "
                "times when unpacked (a ZIP bomb?)"
            )


def check_package(path: Path, kind: str, not_zip: str) -> None:
    """Check that ``path`` is a ZIP package and no ZIP bomb (:func:`check_zip_sizes`); ``kind``
    names the format in messages ("EPUB book"), ``not_zip`` is the whole message when the file is
    no ZIP at all (say which old binary format it may be).

    Raises:
        ExtractionError: not a ZIP, a ZIP bomb, or a corrupt ZIP directory.
    """
    if not zipfile.is_zipfile(path):
        raise ExtractionError(not_zip)
    check_zip_sizes(path, kind)


def open_package(path: Path, kind: str, not_zip: str) -> zipfile.ZipFile:
    """:func:`check_package`, then the open package (close it: use ``with``).

    Raises:
        ExtractionError: as :func:`check_package`, or the ZIP cannot be opened.
    """
    check_package(path, kind, not_zip)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionError(f"corrupt {kind} ({exc})") from None
