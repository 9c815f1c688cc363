"""Building the answer prompt and checking the citations in the answer.

The retrieved chunks are numbered ``[1]..[n]`` in rank order and packed into the prompt until the
token budget is spent (context window minus the answer's reserved tokens minus the rest of the
prompt). Each source is wrapped in delimiters the system prompt declares as quoted data.
Citations in the answer are parsed by code: only numbers of sources actually given count; any other
``[n]`` is removed from the answer text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from desktop_rag.core.types import Hit

NOT_FOUND = "I could not find this in your documents."
_NOT_FOUND_RE = re.compile(r"could not find (this|that|the answer|it|any)", re.IGNORECASE)
_CITE_RE = re.compile(r"\[(\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*)\]")


def resources_dir() -> Path:
    """The ``resources/`` folder of the project (icons, launcher, sample documents, prompts)."""
    return Path(__file__).resolve().parents[2] / "resources"


@lru_cache(maxsize=1)
def system_prompt() -> str:
    """The answer system prompt (``resources/prompts/answer_system.txt``)."""
    path = resources_dir() / "prompts" / "answer_system.txt"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return (
            "Answer only from the numbered sources, citing them like [1]. If they do not contain "
            f"the answer, reply exactly: {NOT_FOUND}"
        )


def source_label(hit: Hit) -> str:
    """``file name, page N`` (or just the file name for documents without pages)."""
    return f"{hit.file_name}, page {hit.page}" if hit.page else hit.file_name


def format_source(n: int, hit: Hit) -> str:
    """One numbered source block for the prompt."""
    # The context line names the document and section; it is worth its tokens only when it says
    # more than the file name already does.
    ctx = hit.context if " › " in hit.context else ""
    label = f"{source_label(hit)} ({ctx})" if ctx else source_label(hit)
    return f"[{n}] {label}\n<<<\n{hit.text.strip()}\n>>>"


@dataclass(frozen=True)
class PackedPrompt:
    """The chat messages and the hits they number (``hits[i]`` is source ``i + 1``)."""

    messages: list[dict[str, str]]
    hits: list[Hit]


def pack_prompt(
    question: str, hits: Sequence[Hit], budget_tokens: int, count_tokens: Callable[[str], int]
) -> PackedPrompt:
    """Number and pack as many ``hits`` (best first) as fit in ``budget_tokens`` prompt tokens.

    ``count_tokens`` measures a string in the LLM's tokens. The first hit is always included (cut
    to fit if it alone is too long).
    """
    system = system_prompt()
    # Sources first and the question last: small models answer the text they read most recently.
    head = ""
    tail = f"\n\nUsing the sources above, answer: {question.strip()}\nCite sources like [1]."
    used = count_tokens(system) + count_tokens(head) + count_tokens(tail) + 16  # template tokens
    blocks: list[str] = []
    kept: list[Hit] = []
    for hit in hits:
        block = format_source(len(kept) + 1, hit)
        cost = count_tokens(block) + 2
        if used + cost > budget_tokens:
            if kept:
                break
            # Cut the best source to what fits rather than answer from nothing.
            room = max(32, budget_tokens - used)
            ratio = room / cost
            block = block[: int(len(block) * ratio * 0.9)] + "\n>>>"
            cost = room
        blocks.append(block)
        kept.append(hit)
        used += cost
    user = head + "\n\n".join(blocks) + tail
    return PackedPrompt(
        [{"role": "system", "content": system}, {"role": "user", "content": user}], kept
    )


def cited_numbers(text: str, n_sources: int) -> list[int]:
    """Distinct valid source numbers cited in ``text`` (``[2]``, ``[1, 3]``), in order of appearance."""
    seen: list[int] = []
    for m in _CITE_RE.finditer(text):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(part)
            if 1 <= n <= n_sources and n not in seen:
                seen.append(n)
    return seen


def clean_citations(text: str, n_sources: int) -> str:
    """Remove ``[n]`` markers that do not name a given source (the model invented them)."""

    def keep(m: re.Match[str]) -> str:
        nums = [int(p) for p in re.split(r"[,;]", m.group(1))]
        valid = [n for n in nums if 1 <= n <= n_sources]
        return "[" + ", ".join(map(str, valid)) + "]" if valid else ""

    return _CITE_RE.sub(keep, text).strip()


def is_abstention(text: str) -> bool:
    """True if the answer says the documents do not contain the answer."""
    return bool(_NOT_FOUND_RE.search(text[:300]))
