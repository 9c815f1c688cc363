"""The stall detector: a watchdog thread that names the line the GUI thread is stuck on.

A :class:`StallDetector` runs a heartbeat ``QTimer`` on the GUI thread (every
:data:`HEARTBEAT_MS`) and a plain Python watchdog thread that looks at the time of the last beat.
When the GUI thread has not beaten for longer than ``threshold_ms`` (100 ms by default) the
watchdog takes the GUI thread's Python stack (``sys._current_frames()``) and logs it once, as a
warning; when the beats come back it logs how long the stall lasted. Every stall is also kept in
:attr:`StallDetector.stalls` (tests and benchmarks read them).

On in the app with ``--debug`` (or ``DESKTOP_RAG_DEBUG=1``), and around every ``gui`` test
(``tests/conftest.py``).

Limits: the watchdog needs the GIL to read the stack. Python code on the GUI thread gives it up
every few milliseconds, so a stall in Python code (or in a C call that releases the GIL, as
SQLite and file reads do) is caught while it lasts; a C call that keeps the GIL is reported
when it ends, with the stack it had then (``stack_at_end``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)

#: The heartbeat's interval (ms): a stall is measured to within about this much.
HEARTBEAT_MS = 10
#: A GUI thread silent for longer than this (ms) is stalled.
THRESHOLD_MS = 100.0


@dataclass
class Stall:
    """One stall of the GUI thread.

    ``duration_ms``: from the last beat before it to the first after it, less one interval
    (None while it lasts); ``stack``: the GUI thread's stack as ``traceback.format_stack``
    lines, innermost last, taken while it lasted; ``stack_at_end``: True when the watchdog could
    only take it as the stall ended (the GUI thread kept the GIL).
    """

    started: float  # time.monotonic() of the last beat before the stall
    stack: list[str]
    duration_ms: float | None = None
    stack_at_end: bool = False

    def where(self) -> str:
        """The stack as one string (innermost frame last)."""
        return "".join(self.stack)


class StallDetector(QObject):
    """Watches the GUI thread for stalls over ``threshold_ms`` (see the module docstring).

    Create and :meth:`start` it on the GUI thread; :meth:`stop` joins the watchdog thread.
    """

    def __init__(self, threshold_ms: float = THRESHOLD_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.threshold_ms = threshold_ms
        self.stalls: list[Stall] = []
        self._gui_ident = threading.get_ident()
        self._last = time.monotonic()  # written by the heartbeat, read by the watchdog
        self._beats = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(HEARTBEAT_MS)
        self._timer.timeout.connect(self._beat)

    @property
    def running(self) -> bool:
        """Whether the watchdog runs."""
        return self._thread is not None

    def start(self) -> None:
        """Start the heartbeat and the watchdog (idempotent; call on the GUI thread)."""
        if self._thread is not None:
            return
        self._gui_ident = threading.get_ident()
        self._last = time.monotonic()
        self._stop.clear()
        self._timer.start()
        # a daemon: a detector nobody stopped never keeps the process alive
        self._thread = threading.Thread(target=self._watch, name="gui-stall-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and join the watchdog (idempotent)."""
        self._timer.stop()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(5.0)

    def longest_ms(self) -> float:
        """The longest stall that ended, in ms (0.0: none)."""
        return max((s.duration_ms or 0.0 for s in self.stalls), default=0.0)

    def _beat(self) -> None:
        self._beats += 1
        self._last = time.monotonic()

    def _stack(self) -> list[str]:
        frame = sys._current_frames().get(self._gui_ident)
        return traceback.format_stack(frame) if frame is not None else []

    def _watch(self) -> None:
        poll_s = min(0.02, self.threshold_ms / 4000)
        current: Stall | None = None
        while not self._stop.wait(poll_s):
            last = self._last
            silent_ms = (time.monotonic() - last) * 1000 - HEARTBEAT_MS
            if current is None:
                if silent_ms > self.threshold_ms:
                    stack = self._stack()
                    if self._last != last:  # it beat while the stack was taken: the GIL was held
                        self._ended(Stall(last, stack, stack_at_end=True), self._last)
                        continue
                    current = Stall(last, stack)
                    self.stalls.append(current)
                    log.warning("GUI thread stalled (over %.0f ms) at:\n%s", self.threshold_ms,
                                current.where().rstrip())  # fmt: skip
            elif last != current.started:
                self._ended(current, last)
                current = None

    def _ended(self, stall: Stall, resumed: float) -> None:
        stall.duration_ms = max(0.0, (resumed - stall.started) * 1000 - HEARTBEAT_MS)
        if stall.stack_at_end:
            self.stalls.append(stall)
            log.warning("GUI thread stalled for %.0f ms (holding the GIL; stack as it ended):\n%s",
                        stall.duration_ms, stall.where().rstrip())  # fmt: skip
        else:
            log.warning("GUI thread stall ended after %.0f ms", stall.duration_ms)
