"""Watching indexed folders with watchdog: a change anywhere under a folder re-indexes it soon.

Events arrive on watchdog's thread and are forwarded as a Qt signal (queued to the GUI thread);
a per-folder timer debounces bursts (an editor's save is several events) into one incremental run.
Starting and ending a watch runs off the GUI thread (inotify walks every sub-folder of a
recursive watch: seconds on a large tree), through the task runner, in the order asked.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

if TYPE_CHECKING:
    from desktop_rag.gui.tasks import TaskRunner

log = logging.getLogger(__name__)

DEBOUNCE_MS = 1000


class FolderWatcher(QObject):
    """Emits ``changed(root)`` about a second after files under ``root`` were added, modified,
    renamed or deleted (hidden files and folders are ignored)."""

    changed = Signal(str)
    _raw = Signal(str)

    def __init__(self, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self._observer: Any = None
        self._watches: dict[str, Any] = {}  # touched under _lock only, off the GUI thread
        self._lock = threading.Lock()
        self._ops: deque[tuple[bool, str]] = deque()  # (watch?, root), in the order asked
        self._timers: dict[str, QTimer] = {}
        self._raw.connect(self._debounce)

    def _ask(self, watch: bool, roots: list[str], then: Callable[[], object] | None = None) -> None:
        """Queue watches (or unwatches) of ``roots`` and start a job that applies the queue;
        ``then()`` runs on the GUI thread once they are in place."""
        if self.runner.closed:
            return
        from desktop_rag.gui.tasks import Pool

        self._ops.extend((watch, root) for root in roots)
        self.runner.submit(lambda cancel: self._apply_ops(), "Watching the folder", Pool.MISC,
                           on_return=None if then is None else lambda _: then())  # fmt: skip

    def watch_all(self, roots: list[str], then: Callable[[], object] | None = None) -> None:
        """Watch every folder of ``roots`` (see :meth:`watch`); ``then()`` once they are watched."""
        self._ask(True, roots, then)

    def _apply_ops(self) -> None:
        """Apply the queued watches in order (on a worker thread; a job may find the queue
        already emptied by the one before it)."""
        with self._lock:
            while self._ops:
                watch, root = self._ops.popleft()
                if watch:
                    self._watch_here(root)
                else:
                    self._unwatch_here(root)

    def _ensure_observer(self) -> Any:
        if self._observer is None:
            from watchdog.observers import Observer

            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        return self._observer

    def watch(self, root: str) -> None:
        """Start watching ``root`` recursively, soon (idempotent; a missing folder is ignored,
        one that cannot be watched is logged)."""
        self._ask(True, [root])

    def unwatch(self, root: str) -> None:
        """Stop watching ``root``, soon."""
        self._ask(False, [root])

    def watched(self) -> list[str]:
        """The folders watched now (a request still queued is not counted)."""
        with self._lock:
            return list(self._watches)

    def _watch_here(self, root: str) -> None:
        if root in self._watches or not Path(root).is_dir():
            return
        from watchdog.events import FileSystemEventHandler

        emit = self._raw.emit

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                paths = [str(event.src_path), str(getattr(event, "dest_path", "") or "")]
                rel = [
                    Path(p).relative_to(root).parts
                    for p in paths
                    if p.startswith(root) and p != root
                ]
                if rel and all(any(part.startswith(".") for part in r) for r in rel):
                    return  # hidden files and folders are not indexed
                emit(root)

        try:
            self._watches[root] = self._ensure_observer().schedule(Handler(), root, recursive=True)
        except OSError as exc:
            log.warning("cannot watch %s: %s", root, exc)

    def _unwatch_here(self, root: str) -> None:
        watch = self._watches.pop(root, None)
        if watch is not None and self._observer is not None:
            self._observer.unschedule(watch)

    def _debounce(self, root: str) -> None:
        timer = self._timers.get(root)
        if timer is None:
            timer = QTimer(self)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda r=root: self.changed.emit(r))
            self._timers[root] = timer
        timer.start(DEBOUNCE_MS)

    def stop(self) -> None:
        """Stop the observer thread (and wait for it, up to 5 s); queued requests are dropped.
        Call after the task runner was shut down."""
        for t in self._timers.values():
            t.stop()
        with self._lock:
            self._ops.clear()
            if self._observer is not None:
                self._observer.stop()
                self._observer.join(timeout=5)
                self._observer = None
            self._watches.clear()
