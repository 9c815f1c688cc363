"""Page drawers that misbehave the way crafted files make MuPDF misbehave at drawing time (for
the renderer tests).

They run in the drawing worker process; a file's name picks the misbehaviour, anything else is
drawn normally by :func:`desktop_rag.core.ingest.render.draw_page`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_rag.core.ingest.render import RenderedPage, draw_page
from tests.hostile_extractors import misbehave


def misbehaving_draw(path: Path, **options: Any) -> RenderedPage:
    """Misbehaves as :func:`tests.hostile_extractors.misbehave` says (``hang*``, ``segfault*``,
    ``abort*``, ``bomb*``); other files are drawn normally."""
    misbehave(path)
    return draw_page(path, **options)
