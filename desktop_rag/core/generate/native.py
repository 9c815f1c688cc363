"""llama.cpp's process-wide state: its log, captured for error messages, and the one guarded way
to construct a ``llama_cpp.Llama``. Both the answering model and the weight-cache check use it.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

# llama.cpp's log: the last lines, kept for error messages.
_LOG_LINES: collections.deque[str] = collections.deque(maxlen=64)
_LOG_CALLBACK: Any = None


def install_log_capture() -> None:
    """Route llama.cpp's log into a ring buffer and our logger (once per process)."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import llama_cpp

    partial: list[str] = []

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        # llama.cpp logs in pieces (level 5 continues the previous line): join them into lines.
        try:
            partial.append(text.decode("utf-8", errors="replace"))
            joined = "".join(partial)
            *lines, rest = joined.split("\n")
            partial[:] = [rest] if rest else []
            for line in lines:
                if line.strip():
                    _LOG_LINES.append(line.strip())
                    log.debug("llama.cpp: %s", line.strip())
        except Exception:  # never raise into C
            partial.clear()

    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    _LOG_CALLBACK = _callback  # keep a reference: ctypes callbacks die with their Python object


def clear_log() -> None:
    """Forget the captured lines (before an operation whose errors should be reported alone)."""
    _LOG_LINES.clear()


def recent_errors() -> str:
    """The last (up to 4) captured llama.cpp lines that report an error, joined by "; "."""
    lines = [
        ln
        for ln in _LOG_LINES
        if any(
            w in ln.lower()
            for w in (
                "error",
                "failed",
                "invalid",
                "corrupt",
                "expect",
                "unknown",
                "incorrect",
                "mismatch",
                "not within",
            )
        )
    ]
    return "; ".join(lines[-4:])


_OPEN_LOCK = threading.Lock()


def open_llama(**kwargs: Any) -> Any:
    """``llama_cpp.Llama(**kwargs)`` without llama.cpp's extra CPU buffer types (weight
    repacking and the AMX kernels).

    With them, llama-cpp-python 0.3.36 crashed the process (segmentation fault) at the first
    prompt of more than one token on a CPU with AMX (Xeon, AVX512 + AMX_INT8), for the bundled
    Q4_1 model and its F16 copy alike; without them it runs on every CPU. ``Llama()`` has no
    parameter for it, so the model parameters' default is changed while the model loads (under
    a lock; ``Llama`` reads it once in its constructor).

    Raises:
        whatever ``llama_cpp.Llama`` raises (ValueError for a file it cannot load).
    """
    import llama_cpp
    import llama_cpp.llama_cpp as bindings  # the module ``Llama`` calls the default through

    original = bindings.llama_model_default_params

    def params() -> Any:
        p = original()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    with _OPEN_LOCK:
        bindings.llama_model_default_params = params
        try:
            return llama_cpp.Llama(**kwargs)
        finally:
            bindings.llama_model_default_params = original
