"""One task runner for all long work, and one notifier for every message to the user.

:class:`TaskRunner` owns the worker pools and starts every :class:`GeneratorWorker` on the right
one: :attr:`Pool.LLM` (one thread: one ``Llama`` is used by one thread at a time), :attr:`Pool.INDEX`
(one indexing run at a time) and :attr:`Pool.MISC` (small jobs: imports). It keeps the workers it
started until they finish, cancels and joins them all on :meth:`TaskRunner.shutdown`, and
:meth:`TaskRunner.idle` says for real whether any of its threads still runs. The window's close
path calls :meth:`TaskRunner.begin_shutdown` first (cancel everything, start nothing new of
one's own) and waits for :meth:`TaskRunner.idle` on a timer, without blocking the event loop.

:class:`Notifier` is where every worker error goes (the runner routes them there): a
:class:`UserError` shows its message and hint; anything else is a bug: a one-line message naming
the log file, the traceback in the log.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal
from PySide6.QtWidgets import QMessageBox, QStatusBar, QWidget

from desktop_rag.core.errors import UserError
from desktop_rag.core.types import CancelToken
from desktop_rag.gui.workers import GeneratorWorker

log = logging.getLogger(__name__)

#: How long an error stays in the status bar (ms).
ERROR_MS = 15000


class Pool(enum.Enum):
    """The worker pools, by what may run side by side."""

    LLM = "llm"  # everything that touches the LLM
    INDEX = "index"  # indexing runs
    MISC = "misc"  # small jobs (model and adapter imports)
    BACKGROUND = "background"  # long work nobody waits for (summaries), beside the chat


#: Threads per pool: one ``Llama`` is used by one thread; one indexing run at a time.
POOL_THREADS = {Pool.LLM: 1, Pool.INDEX: 1, Pool.MISC: 2, Pool.BACKGROUND: 1}


class Notifier(QObject):
    """Shows messages in a window's status bar, and errors (also in a dialog when asked).

    ``shown(text)`` is emitted with every message shown, so tests and other panels can follow.
    """

    shown = Signal(str)

    def __init__(
        self, status_bar: QStatusBar, parent: QWidget, log_dir: Path | None = None
    ) -> None:
        super().__init__(parent)
        self._status_bar = status_bar
        self._parent = parent
        self._log_dir = log_dir

    def info(self, text: str, timeout_ms: int = 0) -> None:
        """Show ``text`` in the status bar (for ``timeout_ms``; 0: until replaced)."""
        self._status_bar.showMessage(text, timeout_ms)
        self.shown.emit(text)

    def error(self, exc: BaseException, what: str, *, dialog: str | None = None) -> str:
        """Show the error ``exc`` of ``what`` ("Indexing", "Importing the model") and return the
        text shown. A :class:`UserError` shows its message and hint (logged as a warning);
        anything else shows one line naming the log file and logs the traceback. With ``dialog``
        (a title) the text also appears in a warning dialog."""
        if isinstance(exc, UserError):
            log.warning("%s: %s", what, exc)
            text = str(exc)
        else:
            log.error("%s failed", what, exc_info=exc)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            text = f"{what} failed: {first} (details in {self.log_location()})"
        self.info(text.replace("\n", " — "), ERROR_MS)
        if dialog is not None:
            QMessageBox.warning(self._parent, dialog, text)
        return text

    def unexpected(self, exc: BaseException) -> None:
        """A bug outside any worker (an exception in a slot): logged with its traceback, one
        line in the status bar."""
        log.error("unexpected error", exc_info=exc)
        self.info(f"Unexpected error: {exc} (details in {self.log_location()})", ERROR_MS)

    def log_location(self) -> str:
        """The log file records go to now (or the log folder when logging is not set up)."""
        from desktop_rag.logs import current_log_file

        where = current_log_file() or self._log_dir
        return str(where) if where is not None else "the log file"


class TaskRunner(QObject):
    """Starts workers on the pools, tracks them until they finish, cancels and joins them.

    Errors of the workers started with :meth:`submit` go to the notifier; after
    :meth:`shutdown` no callback of a worker runs any more (the window is being torn down).
    """

    def __init__(self, notifier: Notifier, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.notifier = notifier
        self.pools: dict[Pool, QThreadPool] = {}
        for kind in Pool:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(POOL_THREADS[kind])
            self.pools[kind] = pool
        self._workers: set[GeneratorWorker] = set()
        self._closing = False
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether :meth:`begin_shutdown` or :meth:`shutdown` ran: callers start no new work
        of their own any more."""
        return self._closed or self._closing

    def begin_shutdown(self) -> None:
        """Cancel every worker; from now on :attr:`closed` is True and a worker started anyway
        is cancelled before it runs. Callbacks still run (until :meth:`shutdown`)."""
        self._closing = True
        self.cancel_all()

    @property
    def running(self) -> list[GeneratorWorker]:
        """The workers started that have not reported ``finished`` yet."""
        return list(self._workers)

    def submit(
        self,
        func: Callable[[CancelToken], Iterator[Any] | Any],
        what: str,
        pool: Pool,
        *,
        dialog: str | None = None,
        on_yield: Callable[[Any], object] | None = None,
        on_return: Callable[[Any], object] | None = None,
        on_error: Callable[[BaseException], object] | None = None,
        on_cancel: Callable[[], object] | None = None,
    ) -> GeneratorWorker:
        """Run ``func(cancel_token)`` on ``pool`` and return its worker.

        ``what`` names the work in messages ("Indexing"); an error is shown by the notifier (in
        a dialog titled ``dialog`` too, if given), then ``on_error`` runs. The callbacks run on
        the GUI thread, never after :meth:`shutdown`.
        """
        worker = GeneratorWorker(func, what.lower())
        signals = worker.signals
        signals.errored.connect(
            lambda e: self._live() and self.notifier.error(e, what, dialog=dialog)
        )
        for signal, callback in ((signals.yielded, on_yield), (signals.returned, on_return),
                                 (signals.errored, on_error)):  # fmt: skip
            if callback is not None:
                signal.connect(lambda x, cb=callback: self._live() and cb(x))
        if on_cancel is not None:
            signals.cancelled.connect(lambda: self._live() and on_cancel())
        return self.start(worker, pool)

    def start(self, worker: GeneratorWorker, pool: Pool) -> GeneratorWorker:
        """Start a worker whose signals the caller connected on ``pool``, and track it."""
        if self._closed:
            raise RuntimeError("the task runner was shut down")
        if self._closing:
            worker.quit()  # generators see it at their first check
        self._workers.add(worker)
        worker.signals.finished.connect(lambda w=worker: self._workers.discard(w))
        self.pools[pool].start(worker)
        return worker

    def _live(self) -> bool:
        return not self._closed

    def cancel_all(self) -> None:
        """Ask every running worker to stop at its next check."""
        for w in list(self._workers):
            w.quit()

    def idle(self, timeout_ms: int = 0) -> bool:
        """Whether no thread of this runner is still running work: every worker started has
        left its ``run`` (finished emitted) and every pool has no active thread. Waits up to
        ``timeout_ms`` (-1: forever) for that; False on timeout."""
        deadline = None if timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
        for pool in self.pools.values():
            left = -1 if deadline is None else max(0, round((deadline - time.monotonic()) * 1000))
            if not pool.waitForDone(left) or pool.activeThreadCount() != 0:
                return False
        return all(w.done.is_set() for w in self._workers)

    def shutdown(self, timeout_ms: int = -1) -> bool:
        """Cancel every worker and join the pools (idempotent); returns :meth:`idle`'s answer.
        From then on no worker callback runs and nothing new starts."""
        self._closed = True
        self.cancel_all()
        return self.idle(timeout_ms)
