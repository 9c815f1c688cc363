"""Where the app's data files are: the system prompt, icons, sample documents, bundled adapters."""

from __future__ import annotations

from pathlib import Path


def resources_dir() -> Path:
    """The ``resources/`` folder (``prompts/``, ``icons/``, ``samples/``, ``adapters/``).

    It sits beside the ``desktop_rag`` package: the project root in a checkout or an editable
    install, ``site-packages`` when the resources wheel is installed (packaging/build_wheelhouse.py),
    ``_internal`` in the bundle (packaging/desktop-rag.spec).
    """
    return Path(__file__).resolve().parents[2] / "resources"
