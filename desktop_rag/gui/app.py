"""Starting the desktop app: the window shows at once; models load in the background after it."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from types import TracebackType

log = logging.getLogger(__name__)
STARTUP_PROBE_ENV = (
    "DESKTOP_RAG_STARTUP_PROBE"  # "1": print when the window is shown; "quit": and exit
)


def run() -> int:
    """Open the main window and run the Qt event loop; returns the exit code."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from desktop_rag.core.resources import resources_dir
    from desktop_rag.logs import setup_logging

    log_file = setup_logging()
    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName("desktop_rag")
    app.setDesktopFileName("desktop-rag")
    icon = resources_dir() / "icons" / "desktop-rag.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))

    from desktop_rag.gui.main_window import MainWindow

    window = MainWindow()

    def excepthook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        # Never crash on a bug in a slot: log it and tell the user where the details are.
        log.error("unexpected error:\n%s", "".join(traceback.format_exception(kind, exc, tb)))
        window.statusBar().showMessage(f"Unexpected error: {exc} (details in {log_file})", 15000)

    sys.excepthook = excepthook
    window.show()
    if os.environ.get(STARTUP_PROBE_ENV):
        # bench/startup.py: report once the event loop has shown the window, then quit.
        from PySide6.QtCore import QTimer

        def report() -> None:
            print(f"window-visible {window.isVisible()}", flush=True)
            if os.environ[STARTUP_PROBE_ENV] == "quit":
                app.quit()

        QTimer.singleShot(0, report)
    code = app.exec()
    window.shutdown()
    return int(code)
