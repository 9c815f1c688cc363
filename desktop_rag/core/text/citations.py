"""Citation markers and source labels: the one definition every client uses.

An answer cites its numbered sources as ``[2]``, ``[1, 3]`` or ``[1; 3]`` (1 to 3 digits each).
The prompt, the answer check, the command line and the chat window all read markers with
:data:`CITE_RE` and name a source with :func:`source_label`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop_rag.core.types import Hit

# One marker: "[" numbers separated by "," or ";" "]"; group 1 holds the numbers.
CITE_RE = re.compile(r"\[(\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*)\]")


def marker_numbers(marker_body: str) -> list[int]:
    """The numbers of one marker's group 1 (``"1, 3"`` -> ``[1, 3]``), valid or not."""
    return [int(p) for p in re.split(r"[,;]", marker_body)]


def cited_numbers(text: str, n_sources: int) -> list[int]:
    """Distinct valid source numbers (1..``n_sources``) cited in ``text``, in order of appearance."""
    seen: list[int] = []
    for m in CITE_RE.finditer(text):
        for n in marker_numbers(m.group(1)):
            if 1 <= n <= n_sources and n not in seen:
                seen.append(n)
    return seen


def clean_citations(text: str, n_sources: int) -> str:
    """Remove ``[n]`` markers that do not name a given source (the model invented them)."""

    def keep(m: re.Match[str]) -> str:
        valid = [n for n in marker_numbers(m.group(1)) if 1 <= n <= n_sources]
        return "[" + ", ".join(map(str, valid)) + "]" if valid else ""

    return CITE_RE.sub(keep, text).strip()


def source_label(hit: Hit) -> str:
    """``file name, page N`` (1-based page; ``slide N`` in a deck), or the file name alone for
    documents without pages."""
    return label_for(hit.path, hit.page)


def label_for(path: str, page: int | None) -> str:
    """:func:`source_label` of a source known by its ``path`` (or file name) and 1-based ``page``
    (None or 0: no pages), as stored in an answer's JSON (``"file"``, ``"page"``). A slide
    deck's pages are its slides (``deck.pptx, slide 3``)."""
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    if not page:
        return name
    unit = "slide" if name.lower().endswith(".pptx") else "page"
    return f"{name}, {unit} {page}"
