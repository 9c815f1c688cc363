"""Watching indexed folders with watchdog: a change anywhere under a folder re-indexes it soon.

Events arrive on watchdog's thread and are forwarded as a Qt signal (queued to the GUI thread);
a per-folder timer debounces bursts (an editor's save is several events) into one incremental run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

log = logging.getLogger(__name__)

DEBOUNCE_MS = 1000


class FolderWatcher(QObject):
    """Emits ``changed(root)`` about a second after files under ``root`` were added, modified,
    renamed or deleted (hidden files and folders are ignored)."""

    changed = Signal(str)
    _raw = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._observer: Any = None
        self._watches: dict[str, Any] = {}
        self._timers: dict[str, QTimer] = {}
        self._raw.connect(self._debounce)

    def _ensure_observer(self) -> Any:
        if self._observer is None:
            from watchdog.observers import Observer

            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        return self._observer

    def watch(self, root: str) -> None:
        """Start watching ``root`` recursively (idempotent; a missing folder is logged, not raised)."""
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

    def unwatch(self, root: str) -> None:
        """Stop watching ``root``."""
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
        """Stop the observer thread (and wait for it)."""
        for t in self._timers.values():
            t.stop()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        self._watches.clear()
