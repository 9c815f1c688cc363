"""The layers hold at run time too: the core and the CLI load no Qt and no training library."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_core_never_imports_qt_or_training() -> None:
    code = (
        "import sys, pkgutil, importlib, desktop_rag.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'desktop_rag.core.'): importlib.import_module(m.name)\n"
        "import desktop_rag.cli\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'PyQt', 'peft',\n"
        "       'accelerate', 'desktop_rag.gui', 'desktop_rag.train'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_contracts_hold() -> None:
    """import-linter's contracts (pyproject.toml): layers, no Qt in core, no cycles."""
    pytest.importorskip("importlinter")
    # In a child: import-linter configures logging (dictConfig), which would silence this
    # process's loggers for the tests after it.
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
