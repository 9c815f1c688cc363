"""Document parsing in a child process, with a wall-clock timeout and a memory limit.

Parsers are C code (MuPDF, libxml2) fed with files from anywhere: crafted PDFs can hang MuPDF,
exhaust memory, abort in deep recursion or segfault, and a thread cannot stop C code. Every file is
therefore extracted by :func:`desktop_rag.core.ingest.extract.extract` in a separate worker process:

- the worker is started with ``spawn`` (no inherited threads or locks, same on every OS) and
  reused from file to file, so the import cost (about 0.5 s) is paid once, not per file;
- its address space is capped with ``RLIMIT_AS`` (``memory_limit_bytes``; default 3 GiB) where the
  OS supports it, so a decompression bomb raises MemoryError in the worker instead of swapping;
- the parent waits at most ``timeout_s`` (default 120 s) for each file, or, while the worker
  recognises scanned pages (OCR, seconds a page), for each page: every page done reports progress
  and starts the wait again. A worker that runs over is killed, as is one that dies (a signal, an
  abort): the file is marked failed with the reason and the next file gets a fresh worker. The
  app itself never goes down. A progress callback that raises (a cancelled run) stops the worker.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import ExtractionError, UnsupportedFileError
from desktop_rag.core.types import Document

#: ``on_ocr_page(done, total)``: a page of the current file was recognised (OCR).
OcrProgress = Callable[[int, int], None]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_LIMIT = 3 * 1024**3  # bytes of address space for the worker
EXTRACTOR = "desktop_rag.core.ingest.extract:extract"


def _limit_memory(limit: int) -> None:
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: no cap
        pass


def _worker_main(conn: Connection, memory_limit: int, extractor: str) -> None:
    """The worker loop: receive (path, options), send ("ocr", done, total) after each page
    recognised, then ("ok", Document), ("skip", reason) or ("err", reason)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    _limit_memory(memory_limit)
    import importlib

    module, _, name = extractor.partition(":")
    fn = getattr(importlib.import_module(module), name)
    conn.send(("ready",))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        path, options = request

        def progress(done: int, total: int) -> None:
            conn.send(("ocr", done, total))

        try:
            doc = fn(Path(path), on_ocr_page=progress, **options)
            reply: tuple[Any, ...] = ("ok", doc)
        except UnsupportedFileError as exc:
            reply = ("skip", exc.message)
        except ExtractionError as exc:
            reply = ("err", exc.message)
        except MemoryError:
            reply = ("err", "needs more memory than a document may use (the parser was stopped)")
        except Exception as exc:  # a parser bug: report it, keep serving
            reply = ("err", f"could not read this file: {exc}")
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("err", "the extracted text is too large"))


class ExtractionSandbox:
    """A reusable worker process that extracts one document at a time.

    Thread-safe (one file at a time). ``extractor`` is ``"module:function"`` with the signature
    of :func:`desktop_rag.core.ingest.extract.extract` (a Path; keywords ``ocr`` and
    ``on_ocr_page``) returning a :class:`Document` (tests substitute their own).
    """

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT,
        extractor: str = EXTRACTOR,
    ) -> None:
        self.timeout_s = timeout_s
        self.memory_limit_bytes = memory_limit_bytes
        self.extractor = extractor
        self._proc: Any = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._unavailable = False  # the worker cannot start here: extract in this process

    def _start(self) -> bool:
        """Start the worker and wait for its "ready"; False if it cannot start.

        A worker that dies during start-up is a set-up problem, not a file's: e.g. a script that
        uses desktop_rag without the ``if __name__ == "__main__":`` guard that multiprocessing's
        ``spawn`` requires. Extraction then runs in this process (with a warning in the log).
        """
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker_main,
            args=(child, self.memory_limit_bytes, self.extractor),
            name="desktop-rag-extract",
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        try:
            ok = parent.poll(120) and parent.recv() == ("ready",)
        except (EOFError, OSError):
            ok = False
        if not ok:
            self._kill()
            log.warning("the document-parsing worker did not start; parsing in-process instead")
        return bool(ok)

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(5)

    def extract(
        self, path: Path, *, ocr: bool = True, on_ocr_page: OcrProgress | None = None
    ) -> Document:
        """Extract ``path`` in the worker (``ocr`` and ``on_ocr_page`` as for
        :func:`desktop_rag.core.ingest.extract.extract`; the callback runs in this thread, and an
        exception it raises, e.g. :class:`~desktop_rag.core.errors.Cancelled`, stops the worker
        and is raised here).

        Raises:
            UnsupportedFileError: nothing to index in it (skipped).
            ExtractionError: the parser failed, ran out of memory, crashed or ran past the timeout
                (the message says which, in plain words).
        """
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._kill()
                if self._unavailable or not self._start():
                    self._unavailable = True
                    from desktop_rag.core.ingest.extract import extract

                    return extract(path, ocr=ocr, on_ocr_page=on_ocr_page)
            conn = self._conn
            assert conn is not None
            with contextlib.suppress(BrokenPipeError, OSError):  # a dead worker: found below
                conn.send((str(path), {"ocr": ocr}))
            while True:
                try:
                    ready = conn.poll(self.timeout_s)
                except (BrokenPipeError, OSError):
                    ready = False
                if not ready:
                    alive = self._proc is not None and self._proc.is_alive()
                    self._kill()
                    if alive:
                        raise ExtractionError(
                            f"parsing took longer than {self.timeout_s:.0f} s and was stopped "
                            "(a damaged or hostile file?)"
                        )
                    raise ExtractionError(
                        "the parser crashed on this file (a damaged or hostile file?)"
                    )
                try:
                    reply = conn.recv()
                except (EOFError, OSError):
                    proc = self._proc
                    if proc is not None:
                        proc.join(5)
                    code = proc.exitcode if proc is not None else None
                    self._kill()
                    raise ExtractionError(_crash_reason(code)) from None
                if reply[0] != "ocr":
                    break
                if on_ocr_page is not None:
                    try:
                        on_ocr_page(int(reply[1]), int(reply[2]))
                    except BaseException:
                        self._kill()  # the worker is mid-file: stop it, a new one serves the next
                        raise
            if reply[0] == "ok":
                return reply[1]  # type: ignore[no-any-return]
            if reply[0] == "skip":
                raise UnsupportedFileError(reply[1])
            raise ExtractionError(reply[1])

    def close(self) -> None:
        """Stop the worker (idempotent)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    self._conn.send(None)
            if self._proc is not None:
                self._proc.join(2)
            self._kill()


def _crash_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the parser crashed on this file ({name}; a damaged or hostile file?)"
    return "the parser stopped unexpectedly on this file (a damaged or hostile file?)"
