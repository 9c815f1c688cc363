"""Running core generators off the GUI thread.

A :class:`GeneratorWorker` is a ``QRunnable`` that drives a core generator (indexing progress,
answer tokens) on a thread pool and reports through Qt signals, which Qt delivers on the GUI
thread: ``yielded`` for every item, then exactly one of ``returned`` (the generator's return
value), ``errored`` (an exception) or ``cancelled``, and finally ``finished``; its ``done`` event
is set once ``run`` has nothing left to do (a thread-safe "finished", for joining). Cancellation is
cooperative: :meth:`GeneratorWorker.quit` sets the worker's cancel token, which the core checks.
Errors are not logged here: :class:`~desktop_rag.gui.tasks.Notifier` logs and shows them.
(Modelled on superqt's ``GeneratorWorker``.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Signal

from desktop_rag.core.errors import Cancelled
from desktop_rag.core.types import CancelToken


class WorkerSignals(QObject):
    """Signals of one worker (a QRunnable cannot have signals itself)."""

    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    cancelled = Signal()
    finished = Signal()


class GeneratorWorker(QRunnable):
    """Runs ``func(cancel_token)``; if it returns a generator, drives it item by item."""

    def __init__(self, func: Callable[[CancelToken], Iterator[Any] | Generator[Any, None, Any] | Any],
                 name: str = "work") -> None:  # fmt: skip
        super().__init__()
        self.func = func
        self.name = name
        self.cancel_token = CancelToken()
        self.signals = WorkerSignals()
        self.done = threading.Event()  # set when run() has emitted finished
        self.setAutoDelete(False)  # the owner keeps a reference until finished

    def quit(self) -> None:
        """Ask the work to stop at its next check."""
        self.cancel_token.cancel()

    def run(self) -> None:
        """Executed on a pool thread."""
        signals = self.signals
        try:
            result = self.func(self.cancel_token)
            if isinstance(result, Iterator):
                gen = result
                while True:
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        result = stop.value
                        break
                    signals.yielded.emit(item)
            if self.cancel_token.cancelled:
                signals.cancelled.emit()
            else:
                signals.returned.emit(result)
        except Cancelled:
            signals.cancelled.emit()
        except Exception as exc:
            signals.errored.emit(exc)
        finally:
            signals.finished.emit()
            self.done.set()
