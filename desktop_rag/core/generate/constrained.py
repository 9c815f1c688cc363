"""Figure-constrained decoding: the model can write only numbers its sources contain.

The claim check (:func:`~desktop_rag.core.search.claims.check_answer`) finds an invented
figure after the fact, and the answer is then replaced by its evidence. A
:class:`FigureConstraint` makes the invention impossible instead: before each token is sampled,
every token that would start or continue a number that is not (a prefix of) one of the allowed
figures gets a logit of -inf, and so does every token that would *end* a number that is only a
prefix of one ("82,9" must go on to "82,959"). The rest of the text is free.

Why logit masking and not a GBNF grammar (llama.cpp's ``LlamaGrammar``): a grammar for "any
text, but numbers from this list" is a character class over the whole vocabulary, which
llama.cpp's grammar sampler checks against every candidate token at every step (measured with
SmolLM2-135M in ``bench/constrained.py``); the mask touches only the tokens that contain a digit
or can continue a number (a few hundred of 49,152 for SmolLM2's vocabulary) and is cached by
the state of the number being written.

What counts as a number follows the check's figure pattern: a run of digits with ``,`` and
``.`` inside, not preceded by a letter, a digit's neighbour or ``letter-`` (digits inside names
such as "COVID-19" or "IFITM3" are names, and stay free). Exempt, as in the check: citation
markers (``[2]``, ``[1, 3]``: any source number 1..n) and list item numbers ("1. " at the start
of a line). Scale words and currency signs are not constrained (the check still compares
scales).

The mask is applied to llama.cpp's logits buffer in place between ``eval`` and sampling (see
:meth:`FigureConstraint.apply`), so it works with any sampler chain; backends without access to
the logits (a remote server) rely on the check alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

_DIGIT: Final = re.compile(r"\d")  # a decimal digit (not "²": str.isdigit() is wider)
# A run of a number as written: digits, with "," and "." inside (and possibly one at its end,
# which may be punctuation: "82." ends a sentence or goes on to "82.9").
_RUN_RE: Final = re.compile(r"\d[\d,.]*")
# What may stand before a number's first digit for it to be a figure (the check's
# ``(?<![\w.])(?<![A-Za-z]-)``).
_WORDISH: Final = re.compile(r"[\w.]\Z|[A-Za-z]-\Z")
# An open citation marker before a run: "[" or "[1, " (see CITE_RE).
_CITE_OPEN: Final = re.compile(r"\[\s*(?:\d{1,3}\s*[,;]\s*)*\Z")
# The longest list item number left free ("1." to "99.").
_LIST_DIGITS: Final = 2
#: Characters of generated text the state of the number being written is read from.
TAIL_CHARS: Final = 48


@dataclass(frozen=True)
class AllowedFigures:
    """What a generation may write as numbers: ``figures`` as written in its sources (see
    :func:`~desktop_rag.core.search.claims.figure_strings`) and the number of sources
    (citation markers ``[1]..[n_sources]``). Hand it to
    :meth:`~desktop_rag.core.generate.llm.LocalLLM.stream`."""

    figures: frozenset[str]
    n_sources: int


@dataclass(frozen=True)
class VocabDigits:
    """The tokens of a vocabulary that matter to numbers: ``ids`` ``(m,)`` int32 of the tokens
    whose text contains a digit or starts with ``,`` or ``.``, their ``texts``, and ``n_vocab``.
    Built once per model by :meth:`from_texts`."""

    ids: NDArray[np.int32]
    texts: tuple[str, ...]
    starts_run: NDArray[np.bool_]  #: (m,) the token's text starts with a digit, "," or "."
    n_vocab: int

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> VocabDigits:
        """From every token's text, by token id (``len(texts)`` is the vocabulary size)."""
        keep = [i for i, t in enumerate(texts) if t and (t[0] in ",." or _DIGIT.search(t))]
        kept = tuple(texts[i] for i in keep)
        starts = np.array([_DIGIT.match(t) is not None or t[0] in ",." for t in kept], dtype=bool)
        return cls(np.asarray(keep, dtype=np.int32), kept, starts, len(texts))


class FigureConstraint:
    """The numbers an answer may write: ``figures`` as written in its sources ("82,959",
    "1.26", "2023"; see :func:`~desktop_rag.core.search.claims.figure_strings`), and
    ``n_sources`` for the citation markers ``[1]..[n]``.

    :meth:`apply` masks the logits of one step; its work per state of the number being written
    is cached, so a step costs a dictionary look-up and a few array writes.
    """

    def __init__(self, figures: Iterable[str], n_sources: int, vocab: VocabDigits) -> None:
        self.figures = frozenset(f for f in figures if _DIGIT.match(f))
        self._prefixes = frozenset(f[:i] for f in self.figures for i in range(1, len(f) + 1))
        self._cites = frozenset(str(i) for i in range(1, max(1, n_sources) + 1))
        self._cite_prefixes = frozenset(c[:i] for c in self._cites for i in range(1, len(c) + 1))
        self.vocab = vocab
        self._cache: dict[tuple[str, str], tuple[NDArray[np.int32], bool]] = {}
        self.masked_steps = 0  #: steps where at least one token was masked

    # -- the state ----------------------------------------------------------------------------
    @staticmethod
    def state(text: str) -> tuple[str, str]:
        """What the next token's effect on numbers depends on: ``(context, run)``. ``run`` is the
        number being written at the end of ``text`` ("" if none); ``context`` is one character
        standing for what precedes it: ``"\\n"`` a line start, ``"["`` an open citation marker,
        ``"a"`` a word character, ``.`` or ``letter-`` (digits there are part of a name),
        ``" "`` anything else."""
        tail = text[-TAIL_CHARS:]
        m = re.search(r"\d[\d,.]*\Z", tail)
        run = m.group(0) if m else ""
        before = tail[: len(tail) - len(run)]
        if _WORDISH.search(before):
            return "a", ""  # digits inside a name ("COVID-1"): what follows is the name's
        if _CITE_OPEN.search(before):
            return "[", run
        *lines, last = before.split("\n")
        if not last.strip() and (lines or len(text) <= TAIL_CHARS):
            return "\n", run
        return " ", run

    # -- judging a token ----------------------------------------------------------------------
    def _run_ok(self, run: str, kind: str, closed: bool) -> bool:
        """Whether the number ``run`` (as written, separators included) is allowed where it
        stands (``kind``, a context of :meth:`state`), finished (``closed``: a character that
        is no part of a number follows) or still being written."""
        if kind == "a":
            return True
        if kind == "[":  # "[1", "[1,3": every part a source number
            *done, last = run.split(",")
            if any(p not in self._cites for p in done):
                return False
            return not last or last in self._cites or (not closed and last in self._cite_prefixes)
        bare = run.rstrip(",.")
        listed = kind == "\n" and bare and len(bare) <= _LIST_DIGITS and bare.isdecimal()
        if listed and (not closed or run == bare + "."):
            return True  # a list item number ("1. "), or what may become one
        if bare in self.figures:
            return True
        return not closed and run in self._prefixes

    def _allowed_after(self, context: str, run: str, piece: str) -> bool:
        """Whether ``piece`` (a token's text) may follow the number ``run`` (may be "") written
        in ``context``: every number the piece continues, ends or starts is allowed."""
        text = context + run + piece  # the context character stands for what precedes
        for m in _RUN_RE.finditer(text):
            before = text[: m.start()]
            if _WORDISH.search(before):
                kind = "a"
            elif _CITE_OPEN.search(before):
                kind = "["
            elif not before.split("\n")[-1].strip() and "\n" in before:
                kind = "\n"
            else:
                kind = " "
            if not self._run_ok(m.group(0), kind, m.end() < len(text)):
                return False
        return True

    def _plan(self, key: tuple[str, str]) -> tuple[NDArray[np.int32], bool]:
        """For a state: the number tokens to mask, and whether every *other* token must be
        masked too (the number being written is only the start of an allowed one)."""
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        context, run = key
        v = self.vocab
        banned = [
            int(i)
            for i, t in zip(v.ids, v.texts, strict=True)
            if (run or _DIGIT.search(t)) and not self._allowed_after(context, run, t)
        ]
        must_go_on = bool(run) and not self._run_ok(run, context, True)
        plan = (np.asarray(banned, dtype=np.int32), must_go_on)
        self._cache[key] = plan
        return plan

    def apply(self, text: str, logits: NDArray[np.float32]) -> int:
        """Mask, in place, the ``(n_vocab,)`` float32 ``logits`` of the token after the generated
        ``text``: -inf for every token that would write a number not allowed. While a number is
        half written, only the tokens that go on towards an allowed one stay (end of generation
        masked too). Returns how many tokens stay allowed; the mask is skipped (and the
        vocabulary size returned) when it would leave none."""
        banned, must_go_on = self._plan(self.state(text))
        v = self.vocab
        if must_go_on:
            keep = np.setdiff1d(v.ids[v.starts_run], banned, assume_unique=True)
            if keep.size == 0:
                return v.n_vocab
            saved = logits[keep].copy()
            logits[:] = -np.inf
            logits[keep] = saved
            self.masked_steps += 1
            return int(keep.size)
        if banned.size:
            logits[banned] = -np.inf
            self.masked_steps += 1
        return v.n_vocab - int(banned.size)
