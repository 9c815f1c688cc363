"""File helpers shared by every layer: content hashes, crash-safe writes, imports, locks.

Nothing here knows about documents or models; it is the one place for these operations (the
store, the vector cache, the lexical postings, settings, model weights and adapters all use it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's content (read by ``hashlib.file_digest`` in blocks).

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def same_content(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes (the same file, or equal sizes and SHA-256)."""
    if os.path.samefile(a, b):
        return True
    if Path(a).stat().st_size != Path(b).stat().st_size:
        return False
    return sha256_file(a) == sha256_file(b)


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk (POSIX; a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves either the old or the new file.

    A temporary file beside it is written, fsynced and renamed over ``path``; then the directory
    is fsynced so the rename itself survives a power cut.
    """
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_private(path: Path, text: str) -> None:
    """Write a secret (an API key, a bearer token) readable by the current user only: mode 0600
    from creation (``os.open`` with ``O_EXCL`` on a temporary name, so it is never readable by
    others, not even for a moment), then renamed over ``path`` and fsynced; the folder is made
    0700 when this creates it.

    Raises:
        OSError: the file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)  # whatever the umask did
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_private(path: Path) -> str:
    """Read a secret written by :func:`write_private`, stripped of surrounding white space.

    Raises:
        OSError: the file cannot be read.
        PermissionError: the file is readable or writable by others than its owner (POSIX: a
            secret others can read is not used; fix with ``chmod 600``).
    """
    if os.name == "posix":
        mode = path.stat().st_mode
        if mode & 0o077:
            raise PermissionError(
                f"{path} can be read by other users (mode {mode & 0o777:o}); "
                f"make it private with: chmod 600 {path}"
            )
    return path.read_text(encoding="utf-8").strip()


def place_file(source: Path, dest: Path) -> None:
    """Put ``source`` at ``dest``: a hard link where possible, else a copy.

    The link or copy goes to ``dest.part`` first and is renamed, so a failed copy never leaves a
    half file under the final name.
    """
    tmp = dest.with_name(dest.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, dest)


if sys.platform == "win32":  # the Windows plan (packaging/README.md): msvcrt's byte-range lock
    import msvcrt

    def try_lock(fd: int) -> None:
        """Take an exclusive lock on an open file without waiting.

        Raises:
            OSError: another process holds it (PermissionError on Windows).
        """
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def unlock(fd: int) -> None:
        """Release the lock taken by :func:`try_lock`."""
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def try_lock(fd: int) -> None:
        """Take an exclusive lock on an open file without waiting.

        Raises:
            OSError: another process holds it (BlockingIOError on POSIX).
        """
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def unlock(fd: int) -> None:
        """Release the lock taken by :func:`try_lock`."""
        fcntl.flock(fd, fcntl.LOCK_UN)
