"""Simulate a venv without the GUI stack: PySide6, shiboken6, pytest-qt and watchdog cannot be
imported.

CI's core job (``.ci/run``) uninstalls the ``gui`` extra and pytest-qt, then runs the tests again.
To check that locally without a second venv, put this folder first on ``PYTHONPATH``: Python
imports this ``sitecustomize`` at start-up (in every process: also the extraction workers and the
CLI runs the tests start), and it makes any import of those packages fail as if they were not
installed. pytest still finds pytest-qt's entry point in the installed metadata, so block it by
its name (``-p no:pytestqt`` would not: the entry point is named ``pytest-qt``)::

    PYTHONPATH=$PWD/tests/noqt QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest \\
        -p no:pytest-qt -m "not gui"

``tests/conftest.py`` then leaves out ``test_gui.py`` and declares pytest-qt's ini keys, so the run
is as strict as the full one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

BLOCKED = frozenset({"PySide6", "shiboken6", "pytestqt", "watchdog"})


class NoQtFinder:
    """A meta path finder that answers "no such module" for :data:`BLOCKED` and their submodules."""

    @classmethod
    def find_spec(
        cls,
        name: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (tests/noqt: Qt is 'uninstalled')",
                                      name=name)  # fmt: skip
        return None


sys.meta_path.insert(0, NoQtFinder())
