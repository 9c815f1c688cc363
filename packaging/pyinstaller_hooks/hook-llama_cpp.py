"""PyInstaller hook for llama-cpp-python: its ctypes-loaded llama.cpp shared libraries.

``llama_cpp`` loads ``libllama.so`` (and ``libggml.so``, ``libmtmd.so``) with ctypes from
``llama_cpp/lib`` next to its modules, so PyInstaller's import analysis cannot see them. The wheel
holds three identical copies of each library (``libX.so``, ``libX.so.0``, ``libX.so.0.N.M``): only
the name ctypes opens and the SONAME the others link against (``$ORIGIN`` run path) are collected.
"""

from __future__ import annotations

from pathlib import Path

from PyInstaller.utils.hooks import get_package_paths

_, _package_dir = get_package_paths("llama_cpp")
_lib = Path(_package_dir) / "lib"


def _wanted(name: str) -> bool:
    """``libX.so`` and ``libX.so.N`` (a single version number), not ``libX.so.N.M.K``."""
    if not name.startswith("lib") or ".so" not in name:
        return False
    suffix = name.split(".so", 1)[1]
    return suffix == "" or suffix.lstrip(".").isdigit()


binaries = [(str(p), "llama_cpp/lib") for p in sorted(_lib.iterdir()) if _wanted(p.name)]
# The HTTP server needs packages the app does not ship (and never uses).
excludedimports = ["llama_cpp.server"]
