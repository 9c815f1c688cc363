"""Starting the desktop app: the window shows at once; models load in the background after it.

A failure to start (the data folder or its databases cannot be opened, the engine cannot be
built, ...) shows a dialog saying what went wrong and returns exit status 1, never a traceback:
a :class:`UserError` shows its message and hint, anything else one line naming the log file (the
traceback is logged). Settings that cannot be read are not a failure: the engine falls back to
the defaults (logged), and a broken model is reported in the window when it loads.

With ``debug`` (``desktop-rag --debug``, or ``DESKTOP_RAG_DEBUG=1``) the stall detector
(:mod:`desktop_rag.gui.stall`) logs every GUI-thread stall over 100 ms with the line it was on.

Closing the window stops the work within a bound (see :meth:`MainWindow.closeEvent`) and the
exit status is 0; if a worker thread still runs after it (a bug: work that ignores its cancel
token), that is logged and the process ends without waiting for it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop_rag.gui.main_window import MainWindow

log = logging.getLogger(__name__)
STARTUP_PROBE_ENV = (
    "DESKTOP_RAG_STARTUP_PROBE"  # "1": print when the window is shown; "quit": and exit
)
DEBUG_ENV = "DESKTOP_RAG_DEBUG"  # "1": as --debug (the stall detector on)
TITLE = "desktop_rag could not start"


def startup_error_text(exc: BaseException, log_file: Path | None) -> str:
    """What the user reads when the app cannot start (the traceback is logged here)."""
    from desktop_rag.core.errors import UserError
    from desktop_rag.logs import error_summary, where_logged

    if isinstance(exc, UserError):
        log.error("cannot start: %s", exc)
        return str(exc)
    if isinstance(exc, OSError) and exc.filename:  # the data folder or a file in it
        log.error("cannot start", exc_info=exc)
        return (f"Cannot use {exc.filename}: {exc.strerror or exc}.\n"
                "Hint: check that the folder exists and that you may write to it.")  # fmt: skip
    log.error("cannot start", exc_info=exc)
    return f"Unexpected error ({error_summary(exc)}); {where_logged(log_file)}."


def debug_requested() -> bool:
    """Whether ``DESKTOP_RAG_DEBUG`` asks for the debugging aids (set and not "0")."""
    return os.environ.get(DEBUG_ENV, "0") not in ("", "0")


def run(debug: bool | None = None) -> int:
    """Open the main window and run the Qt event loop; returns the exit code (0 after a
    close, 1 when the app could not start). ``debug`` (None: :func:`debug_requested`) starts
    the stall detector."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication, QMessageBox

    from desktop_rag.core.resources import resources_dir
    from desktop_rag.logs import setup_logging

    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    log_file: Path | None = None
    try:
        log_file = setup_logging()
    except OSError as exc:  # no log file: the app still runs; errors then say so
        log.warning("cannot write the log file: %s", exc)
    app.setApplicationName("desktop_rag")
    app.setDesktopFileName("desktop-rag")
    icon = resources_dir() / "icons" / "desktop-rag.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))

    try:
        window = _create_window()
    except Exception as exc:
        text = startup_error_text(exc, log_file)
        if not os.environ.get(STARTUP_PROBE_ENV):
            QMessageBox.critical(None, TITLE, text)
        print(f"{TITLE}: {text}", file=sys.stderr, flush=True)
        return 1

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        # Never crash on a bug in a slot: log it and tell the user where the details are.
        window.notifier.unexpected(exc.with_traceback(tb))

    previous_hook = sys.excepthook
    sys.excepthook = excepthook
    detector = None
    if debug_requested() if debug is None else debug:
        from desktop_rag.gui.stall import StallDetector

        detector = StallDetector(parent=window)
        detector.start()
        log.info("debug: the stall detector logs GUI-thread stalls over %.0f ms",
                 detector.threshold_ms)  # fmt: skip
    window.show()
    if os.environ.get(STARTUP_PROBE_ENV):
        # bench/startup.py: report once the event loop has shown the window, then quit.
        from PySide6.QtCore import QTimer

        def report() -> None:
            print(f"window-visible {window.isVisible()}", flush=True)
            if os.environ[STARTUP_PROBE_ENV] == "quit":
                app.quit()

        QTimer.singleShot(0, report)
    from desktop_rag.gui.main_window import CLOSE_WAIT_MS

    try:
        code = app.exec()
    finally:
        if detector is not None:
            detector.stop()
        # Closed from the window: already shut down; quit some other way: stop within the bound.
        joined = window.shutdown(
            timeout_ms=0 if window.closed_cleanly is not None else CLOSE_WAIT_MS
        )
        sys.excepthook = previous_hook
    if not joined:
        # A worker that ignores its cancel token: Qt would wait for it at exit, without bound.
        log.error("a worker thread still runs after the window closed: exiting without it")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(code))
    return int(code)


def _create_window() -> MainWindow:
    """The main window over a new engine (raises what building them raises; an engine built
    for a window that failed is closed, its threads joined)."""
    from desktop_rag.core.engine import Engine
    from desktop_rag.gui.main_window import MainWindow

    engine = Engine()
    try:
        return MainWindow(engine)
    except BaseException:
        engine.close()
        raise
