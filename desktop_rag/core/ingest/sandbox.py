"""Document parsing (and page drawing) in a child process, with a wall-clock timeout and a memory
limit.

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

:class:`Sandbox` is that machinery for any ``"module:function"`` target taking a path and keyword
options; :class:`ExtractionSandbox` runs the extractor in it, and
:class:`desktop_rag.core.ingest.render.PageRenderer` draws the viewer's pages in its own one.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import Cancelled, ExtractionError, UnsupportedFileError, UserError
from desktop_rag.core.types import CancelToken, Document

#: ``on_ocr_page(done, total)``: a page of the current file was recognised (OCR).
OcrProgress = Callable[[int, int], None]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_LIMIT = 3 * 1024**3  # bytes of address space for the worker
EXTRACTOR = "desktop_rag.core.ingest.extract:extract"
#: How often a call with a cancel token looks at it while the worker works (s).
CANCEL_POLL_S = 0.05
#: What a worker that ran out of memory reports (its target was stopped by MemoryError).
OUT_OF_MEMORY = "needs more memory than a document may use (the parser was stopped)"


def _limit_memory(limit: int) -> None:
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # not POSIX, or not allowed: no cap
        pass


def _load(target: str) -> Callable[..., Any]:
    """The function a ``"module:function"`` string names."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _worker_main(
    conn: Connection,
    memory_limit: int,
    target: str,
    progress_keyword: str | None = "on_ocr_page",
    preload: tuple[str, ...] = (),
) -> None:
    """The worker loop: import ``preload`` and the target, send ("ready",), then for each
    (path, options) received send ("ocr", done, total) after each page recognised (the target's
    ``progress_keyword`` callback; None: the target takes none), then ("ok", result), ("skip",
    reason: UnsupportedFileError) or ("err", reason: another UserError, MemoryError or a bug)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    _limit_memory(memory_limit)
    for module in preload:
        importlib.import_module(module)
    fn = _load(target)
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

        if progress_keyword is not None:
            options = {**options, progress_keyword: progress}
        try:
            result = fn(Path(path), **options)
            reply: tuple[Any, ...] = ("ok", result)
        except UnsupportedFileError as exc:
            reply = ("skip", exc.message)
        except ExtractionError as exc:
            reply = ("err", exc.message)
        except UserError as exc:  # e.g. a missing extra: its hint says what to install
            reply = ("err", str(exc))
        except MemoryError:
            reply = ("err", OUT_OF_MEMORY)
        except Exception as exc:  # a parser bug: report it, keep serving
            reply = ("err", f"could not read this file: {exc}")
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("err", "the extracted text is too large"))


class WorkerFailed(Exception):
    """The worker ran past the timeout (``timed_out``; it was killed) or died (``exitcode``:
    negative for a signal, None if unknown). The next call starts a fresh worker."""

    def __init__(self, *, timed_out: bool, exitcode: int | None = None) -> None:
        super().__init__("timed out" if timed_out else f"worker died (exit code {exitcode})")
        self.timed_out = timed_out
        self.exitcode = exitcode

    @property
    def signal_name(self) -> str | None:
        """The name of the signal that killed the worker ("SIGSEGV"), or None."""
        if self.exitcode is None or self.exitcode >= 0:
            return None
        try:
            return signal.Signals(-self.exitcode).name
        except ValueError:
            return f"signal {-self.exitcode}"


class Sandbox:
    """A reusable worker process that runs one call of ``target`` at a time.

    Thread-safe (one call at a time; others wait). ``target`` is ``"module:function"``, called
    as ``function(path, **options)`` (plus ``progress_keyword=callback`` when that is not None)
    in the worker; tests substitute misbehaving targets. ``error`` is the :class:`UserError`
    class raised for a reason the target reported. ``name`` is the worker process's name;
    ``preload`` are modules the worker imports before it says it is ready (so that their import
    time does not count against the first call's timeout).
    """

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT,
        progress_keyword: str | None = None,
        error: type[UserError] = ExtractionError,
        name: str = "desktop-rag-worker",
        preload: tuple[str, ...] = (),
    ) -> None:
        self.target = target
        self.preload = preload
        self.timeout_s = timeout_s
        self.memory_limit_bytes = memory_limit_bytes
        self.progress_keyword = progress_keyword
        self.error = error
        self.name = name
        self._proc: Any = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._unavailable = False  # the worker cannot start here: run the target in this process

    def _start(self, cancel: CancelToken | None = None) -> bool:
        """Start the worker and wait for its "ready"; False if it cannot start. Raises
        :class:`Cancelled` (the worker stopped) if ``cancel`` is cancelled meanwhile.

        A worker that dies during start-up is a set-up problem, not a file's: e.g. a script that
        uses desktop_rag without the ``if __name__ == "__main__":`` guard that multiprocessing's
        ``spawn`` requires. The target then runs in this process (with a warning in the log).
        """
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=_worker_main,
            args=(
                child,
                self.memory_limit_bytes,
                self.target,
                self.progress_keyword,
                self.preload,
            ),
            name=self.name,
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        deadline = time.monotonic() + 120
        try:
            while not (ready := parent.poll(120 if cancel is None else CANCEL_POLL_S)):
                if cancel is not None and cancel.cancelled:
                    self._kill()
                    raise Cancelled()
                if not proc.is_alive() or time.monotonic() > deadline:
                    break
            ok = ready and parent.recv() == ("ready",)
        except (EOFError, OSError):
            ok = False
        if not ok:
            self._kill()
            log.warning("the %s worker did not start; running it in-process instead", self.name)
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

    def _died(self) -> WorkerFailed:
        """The worker is gone: reap it, and the failure naming how it ended."""
        proc = self._proc
        if proc is not None:
            proc.join(5)
        code = proc.exitcode if proc is not None else None
        self._kill()
        return WorkerFailed(timed_out=False, exitcode=code)

    def call(
        self,
        path: Path,
        options: dict[str, Any] | None = None,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> Any:
        """``target(path, **options)`` in the worker, and what it returned. ``on_progress``
        receives the target's progress reports (in this thread; an exception it raises stops
        the worker and is raised here), each of which starts the timeout again. A ``cancel``
        token cancelled while the worker works stops it within :data:`CANCEL_POLL_S` (the
        worker is killed: the next call starts a fresh one).

        Raises:
            Cancelled: ``cancel`` was cancelled before the worker answered.
            UnsupportedFileError: the target raised one (a file to skip).
            UserError: of class ``error``: the target raised a UserError, ran out of memory or
                failed with a bug (the message says which).
            WorkerFailed: the worker ran past ``timeout_s`` (killed) or died (a signal, an
                abort); the caller words the reason.
        """
        options = dict(options or {})
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._kill()
                if self._unavailable or not self._start(cancel):
                    self._unavailable = True
                    if self.progress_keyword is not None:
                        options[self.progress_keyword] = on_progress
                    return _load(self.target)(path, **options)
            conn = self._conn
            assert conn is not None
            with contextlib.suppress(BrokenPipeError, OSError):  # a dead worker: found below
                conn.send((str(path), options))
            deadline = time.monotonic() + self.timeout_s
            while True:
                wait = max(0.0, deadline - time.monotonic())
                try:
                    ready = conn.poll(wait if cancel is None else min(wait, CANCEL_POLL_S))
                except (BrokenPipeError, OSError):  # the pipe broke: the worker is gone
                    raise self._died() from None
                if not ready:
                    if self._proc is None or not self._proc.is_alive():
                        raise self._died()
                    if cancel is not None and cancel.cancelled:
                        self._kill()
                        raise Cancelled()
                    if time.monotonic() < deadline:
                        continue
                    self._kill()
                    raise WorkerFailed(timed_out=True)
                try:
                    reply = conn.recv()
                except (EOFError, OSError):
                    raise self._died() from None
                if reply[0] != "ocr":
                    break
                deadline = time.monotonic() + self.timeout_s
                if on_progress is not None:
                    try:
                        on_progress(int(reply[1]), int(reply[2]))
                    except BaseException:
                        self._kill()  # the worker is mid-call: stop it, a new one serves the next
                        raise
            if reply[0] == "ok":
                return reply[1]
            if reply[0] == "skip":
                raise UnsupportedFileError(reply[1])
            raise self.error(reply[1])

    def warm_up(self, cancel: CancelToken | None = None) -> None:
        """Start the worker now if it is not running (its start-up, seconds on a busy machine,
        then does not delay the first call); waits for it to be ready.

        Raises:
            Cancelled: ``cancel`` was cancelled before it was ready (it was stopped).
        """
        with self._lock:
            if self._unavailable or (self._proc is not None and self._proc.is_alive()):
                return
            self._kill()
            if not self._start(cancel):
                self._unavailable = True

    def close(self) -> None:
        """Stop the worker (idempotent)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    self._conn.send(None)
            if self._proc is not None:
                self._proc.join(2)
            self._kill()


class ExtractionSandbox(Sandbox):
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
        super().__init__(
            extractor,
            timeout_s=timeout_s,
            memory_limit_bytes=memory_limit_bytes,
            progress_keyword="on_ocr_page",
            error=ExtractionError,
            name="desktop-rag-extract",
        )

    @property
    def extractor(self) -> str:
        """The ``"module:function"`` run in the worker."""
        return self.target

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
        try:
            return self.call(path, {"ocr": ocr}, on_progress=on_ocr_page)  # type: ignore[no-any-return]
        except WorkerFailed as exc:
            if exc.timed_out:
                raise ExtractionError(
                    f"parsing took longer than {self.timeout_s:.0f} s and was stopped "
                    "(a damaged or hostile file?)"
                ) from None
            raise ExtractionError(_crash_reason(exc.exitcode)) from None


def _crash_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = WorkerFailed(timed_out=False, exitcode=exitcode).signal_name
        return f"the parser crashed on this file ({name}; a damaged or hostile file?)"
    return "the parser stopped unexpectedly on this file (a damaged or hostile file?)"
