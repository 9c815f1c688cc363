"""Training a new style adapter into the app's adapters folder: every step after the options.

:func:`train_new_adapter` checks the name and the ``train`` extra, trains a LoRA adapter with
:func:`desktop_rag.train.lora.train_adapter` (the bundled model unless another base is given) into
the cache, imports it into the adapters folder (validated as any imported adapter) and removes the
cache copy. Clients only show its progress reports and its result. This module imports nothing
heavy: torch, transformers and peft load when training starts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Generator
from pathlib import Path

from desktop_rag.core.errors import AdapterError, MissingExtraError
from desktop_rag.core.generate.adapters import AdapterInfo, import_adapter
from desktop_rag.core.paths import AppPaths, app_paths
from desktop_rag.core.types import CancelToken
from desktop_rag.train.lora import DEFAULT_MARKER, TrainProgress, train_adapter

# The import names training needs beyond the app's own dependencies (the ``train`` extra).
TRAIN_EXTRA_MODULES = ("peft", "accelerate")

ADAPTER_NAME_RULE = "the name may use letters, digits, '-' and '_' only"


def require_training() -> None:
    """Check that the ``train`` extra is installed (found, not imported: fast).

    Raises:
        MissingExtraError: a package of the extra is missing; the hint says what to install.
    """
    missing = tuple(m for m in TRAIN_EXTRA_MODULES if importlib.util.find_spec(m) is None)
    if missing:
        raise MissingExtraError("training", "train", missing)


def valid_adapter_name(name: str) -> bool:
    """True when ``name`` can name an adapter file: letters, digits, '-' and '_', and at least
    one letter or digit (see :data:`ADAPTER_NAME_RULE`)."""
    return bool(name) and name.replace("-", "").replace("_", "").isalnum()


def train_new_adapter(
    examples: Path,
    name: str,
    *,
    paths: AppPaths | None = None,
    base: Path | None = None,
    rank: int = 8,
    alpha: float = 16.0,
    epochs: int = 1,
    lr: float = 5e-4,
    description: str = "",
    marker: str | None = None,
    cancel: CancelToken | None = None,
) -> Generator[TrainProgress, None, AdapterInfo]:
    """Train the adapter ``name`` on ``examples`` (JSON-lines chats) and add it to the adapters
    folder of ``paths`` (default: the one in force now).

    A generator: it yields :func:`~desktop_rag.train.lora.train_adapter`'s progress reports
    (phases "loading", "training" per optimizer step, "writing", "done") and returns the
    imported adapter's :class:`AdapterInfo`. ``base`` is the base GGUF (default: the bundled
    SmolLM2-135M-Instruct); ``rank``, ``alpha`` (LoRA), ``epochs`` (passes over the examples) and
    ``lr`` (peak learning rate) as in ``train_adapter``; ``description`` and ``marker`` (the
    opening of every styled answer; None: :data:`~desktop_rag.train.lora.DEFAULT_MARKER`) go into
    the adapter's metadata. Stopping early (``cancel``, an exception, or closing the generator)
    leaves no adapter and no partial file.

    Raises:
        AdapterError: the name is not valid, an adapter of that name is already imported (checked
            before training), or the trained file does not validate.
        MissingExtraError: the ``train`` extra is not installed.
        ExamplesError: the examples file is malformed, or every example is too long.
        ModelLoadError: no usable base model.
        Cancelled: ``cancel`` was set.
    """
    if not valid_adapter_name(name):
        raise AdapterError(ADAPTER_NAME_RULE)
    require_training()
    paths = (paths or app_paths()).ensure()
    existing = paths.adapters_dir / f"{name}.gguf"
    if existing.exists():
        raise AdapterError(
            f"an adapter named {name} is already imported",
            hint=f"choose another name, or remove it first (`desktop-rag adapters remove {name}`)",
        )
    out = paths.cache / f"{name}.gguf"
    try:
        yield from train_adapter(
            examples, name, out, base_gguf=base, rank=rank, alpha=alpha, epochs=epochs, lr=lr,
            description=description, marker=marker if marker is not None else DEFAULT_MARKER,
            cancel=cancel,
        )  # fmt: skip
        return import_adapter(out, paths)
    finally:
        out.unlink(missing_ok=True)
