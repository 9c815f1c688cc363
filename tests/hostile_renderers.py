"""Page drawers that misbehave the way crafted files make MuPDF misbehave at drawing time (for
the renderer tests).

They run in the drawing worker process; a file's name picks the misbehaviour, anything else is
drawn normally by :func:`desktop_rag.core.ingest.render.draw_page`.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from desktop_rag.core.ingest.render import RenderedPage, draw_page


def misbehaving_draw(path: Path, **options: Any) -> RenderedPage:
    """``hang*`` never returns, ``segfault*`` dies of SIGSEGV, ``abort*`` aborts, ``bomb*``
    allocates without bound; other files are drawn normally."""
    name = path.name
    if name.startswith("hang"):
        while True:
            time.sleep(1)
    if name.startswith("segfault"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("abort"):
        os.abort()
    if name.startswith("bomb"):
        hoard = []
        while True:
            hoard.append(bytearray(64 * 1024 * 1024))
    return draw_page(path, **options)
