"""An answer's path, stage by stage: retrieve → evidence → prompt → generate → check.

:meth:`Engine.ask <desktop_rag.core.engine.Engine.ask>` runs these stages in this order; each is
a function of what the one before produced, so a reader sees an answer's path on one screen:

1. **retrieve**: the engine's hybrid search (:meth:`Engine.search`) and its relevance gate
   (:meth:`Engine.is_relevant`); nothing relevant ends in :func:`not_found` (no model run).
2. **evidence**: :func:`evidence`, the sentences of the hits that answer best
   (:func:`~desktop_rag.core.search.selection.select_evidence`); ``answer_style="evidence"``
   ends in :func:`quoted` (no model run).
3. **prompt**: :func:`prompt`, the numbered sources packed into the model's context window
   (:func:`~desktop_rag.core.generate.prompting.pack_prompt`) and the figures the model may
   write (:class:`~desktop_rag.core.generate.constrained.AllowedFigures`).
4. **generate**: :func:`generate` streams the model's tokens (stopping a degenerate loop); a
   backend that fails ends in :func:`backend_failed` (the evidence, with the reason).
5. **check**: :func:`checked`, the claim check of the generated text against its sources
   (:func:`~desktop_rag.core.search.claims.check_answer`); a failed check shows the evidence.

The stages hold no state of their own: the engine passes its settings and model in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from desktop_rag.core.errors import BackendError
from desktop_rag.core.generate.constrained import AllowedFigures
from desktop_rag.core.generate.llm import GenerationStats, LocalLLM
from desktop_rag.core.generate.owner import Priority
from desktop_rag.core.generate.prompting import (
    NOT_FOUND,
    PackedPrompt,
    attribute_citations,
    is_abstention,
    pack_prompt,
    strip_images,
)
from desktop_rag.core.generate.server import ServerLLM
from desktop_rag.core.search.claims import check_answer, failed_check_text, figure_strings
from desktop_rag.core.search.retrieval import RetrievalResult
from desktop_rag.core.search.selection import SentenceScores, focus, quote_evidence, select_evidence
from desktop_rag.core.settings import Settings
from desktop_rag.core.text.citations import cited_numbers, clean_citations
from desktop_rag.core.types import Answer, CancelToken, Citation, Evidence, Hit, Timings


def _citations(hits: Sequence[Hit], cited: set[int]) -> tuple[Citation, ...]:
    """One citation per hit, numbered from 1, ``cited`` when its number is in ``cited``."""
    return tuple(Citation(i + 1, h, (i + 1) in cited) for i, h in enumerate(hits))


# -- 1. retrieve: nothing relevant ------------------------------------------------------------
def not_found(result: RetrievalResult, warnings: tuple[str, ...]) -> Answer:
    """The abstention answer when retrieval found nothing relevant (the hits listed, none
    cited; the model is not run)."""
    return Answer(
        NOT_FOUND,
        True,
        _citations(result.hits, set()),
        Timings(result.retrieval_ms, 0.0, 0.0),
        warnings=warnings,
    )


# -- 2. evidence -------------------------------------------------------------------------------
def evidence(
    scores: SentenceScores, settings: Settings
) -> tuple[tuple[Evidence, ...], tuple[Evidence, ...]]:
    """``(found, shown)``: the evidence sentences found (at most ``settings.evidence_sentences``)
    and those shown before the answer (none with ``answer_style="generated"``: they stay the
    fallback of a failed check)."""
    found = select_evidence(scores, settings.evidence_sentences)
    return found, (found if settings.answer_style != "generated" else ())


def quoted(result: RetrievalResult, shown: Sequence[Evidence], warnings: tuple[str, ...]) -> Answer:
    """The answer of ``answer_style="evidence"``: the evidence quoted with its citations (the
    abstention sentence when there is none); no model run."""
    text = quote_evidence(shown) if shown else NOT_FOUND
    return Answer(
        text,
        not shown,
        _citations(result.hits, {e.n for e in shown}),
        Timings(result.retrieval_ms, 0.0, 0.0),
        warnings=warnings,
        evidence=tuple(shown),
    )


# -- 3. prompt ---------------------------------------------------------------------------------
def prompt(
    question: str,
    result: RetrievalResult,
    scores: SentenceScores,
    llm: LocalLLM | ServerLLM,
    settings: Settings,
) -> tuple[PackedPrompt, AllowedFigures | None]:
    """The chat messages with the numbered sources that fit the context window (``llm``'s
    context size less ``settings.max_answer_tokens``, counted with its tokenizer; each source
    cut to its ``settings.focus_sentences`` best sentences when that is above 0), and the
    figures the model may write (None when ``settings.constrain_figures`` is off)."""
    budget = llm.context_size - settings.max_answer_tokens
    n_focus = settings.focus_sentences
    texts = focus(scores, n_focus) if n_focus > 0 else None
    packed = pack_prompt(question, result.hits, budget, llm.count_tokens, texts)
    allowed = None
    if settings.constrain_figures:  # the numbers the check will look for
        bodies = [f"{h.context}\n{h.text}" for h in packed.hits]
        allowed = AllowedFigures(figure_strings(bodies), len(packed.hits))
    return packed, allowed


# -- 4. generate -------------------------------------------------------------------------------
@dataclass
class Generation:
    """What :func:`generate` wrote: the text ``pieces`` in order and the model's ``stats``
    (None until the stream ends, or when the backend reports none), ``started`` its
    ``time.perf_counter()`` start."""

    pieces: list[str] = field(default_factory=list)
    stats: GenerationStats | None = None
    started: float = 0.0

    @property
    def text(self) -> str:
        """The text as written, repeated lines (a model stuck in a loop) dropped."""
        return drop_repeated_lines("".join(self.pieces))


def generate(
    llm: LocalLLM | ServerLLM,
    packed: PackedPrompt,
    out: Generation,
    settings: Settings,
    *,
    cancel: CancelToken,
    adapter: Path | None,
    adapter_scale: float,
    priority: Priority,
    figures: AllowedFigures | None,
) -> Iterator[str]:
    """Stream the answer's text pieces from ``llm`` (at most ``settings.max_answer_tokens``
    tokens, at ``settings.temperature``) into ``out`` and yield them; stops early when a
    complete line repeats an earlier one (a small model in a loop). Closing the stream, also
    when the caller stops reading, stops the model at its next token.

    Raises:
        BackendError: the backend failed (a server down, refusing, or cutting the stream).
    """
    out.started = time.perf_counter()
    tokens = llm.stream(packed.messages, max_tokens=settings.max_answer_tokens,
                        temperature=settings.temperature, cancel=cancel, adapter=adapter,
                        adapter_scale=adapter_scale, priority=priority, figures=figures)  # fmt: skip
    try:
        for piece in tokens:
            out.pieces.append(piece)
            yield piece
            if "\n" in piece and repeats_a_line("".join(out.pieces)):
                break  # a small model stuck in a loop: stop instead of filling it
    finally:
        tokens.close()
    out.stats = tokens.stats


def backend_failed(
    exc: BackendError,
    result: RetrievalResult,
    packed: PackedPrompt,
    found: Sequence[Evidence],
    shown: Sequence[Evidence],
    warnings: tuple[str, ...],
    backend: str,
) -> Answer:
    """The answer when the backend failed: the reason and the evidence found, quoted; nothing
    the backend wrote is shown unchecked."""
    reason = f"No answer from the model: {exc.message}"
    reason += "" if reason[-1] in ".?!" else "."
    return Answer(
        text=f"{reason}\n{quote_evidence(found)}" if found else reason,
        abstained=not found,
        citations=_citations(packed.hits, {e.n for e in found}),
        timings=Timings(result.retrieval_ms, 0.0, 0.0),
        warnings=(*warnings, str(exc)),
        evidence=tuple(shown) or tuple(found),
        backend=backend,
        error=str(exc),
    )


# -- 5. check ----------------------------------------------------------------------------------
def checked(
    generation: Generation,
    result: RetrievalResult,
    packed: PackedPrompt,
    found: Sequence[Evidence],
    shown: Sequence[Evidence],
    *,
    prepared_s: float,
    adapter: Path | None,
    adapter_scale: float,
    warnings: tuple[str, ...],
    backend: str,
) -> Answer:
    """The final answer: the generated text with its citations cleaned (numbers above the
    sources dropped; attributed by overlap when the model cited none), claim-checked against
    the sources it was given. An answer that fails the check shows the evidence instead
    (:func:`~desktop_rag.core.search.claims.failed_check_text`). ``prepared_s``: seconds from
    the end of retrieval to the start of generation (choosing the evidence, packing the
    prompt), counted in the time to first token."""
    n = len(packed.hits)
    text = clean_citations(strip_images(generation.text), n)
    abstained = is_abstention(text)
    if not cited_numbers(text, n) and not abstained:
        text = attribute_citations(text, [h.text for h in packed.hits])
    check = check_answer(text, packed.hits)
    generated = check.text
    grounded = check.passed or abstained
    cited = set(cited_numbers(generated, n) if grounded else [e.n for e in found])
    stats = generation.stats
    return Answer(
        text=generated if grounded else failed_check_text(found),
        abstained=abstained,
        citations=_citations(packed.hits, cited),
        timings=Timings(
            result.retrieval_ms,
            (stats.ttft_s + prepared_s) if stats else 0.0,
            stats.tokens_per_s if stats else 0.0,
            stats.prompt_tokens if stats else 0,
            stats.completion_tokens if stats else 0,
        ),
        adapter=adapter.stem if adapter else None,
        adapter_scale=adapter_scale if adapter else 0.0,
        warnings=warnings,
        evidence=tuple(shown),
        generated=generated,
        checks=check.checks,
        grounded=grounded,
        backend=backend,
    )


# -- degenerate repetition -----------------------------------------------------------------------
def _complete_lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.split("\n")[:-1]]


def repeats_a_line(text: str) -> bool:
    """True when the last complete line (of 20+ characters) already occurred in ``text``."""
    lines = [ln for ln in _complete_lines(text) if ln]
    return len(lines) > 1 and len(lines[-1]) >= 20 and lines[-1] in lines[:-1]


def drop_repeated_lines(text: str) -> str:
    """Remove second and later copies of lines of 20+ characters (degenerate repetition)."""
    seen: set[str] = set()
    out = []
    for line in text.split("\n"):
        key = " ".join(line.split())
        if len(key) >= 20 and key in seen:
            continue
        seen.add(key)
        out.append(line)
    return "\n".join(out).strip()
