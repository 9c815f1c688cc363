"""The user-facing error family.

Every error a person can cause or fix (a missing file, a broken model, an index built with another
embedding model) is a :class:`UserError` with a human message and an optional hint. The CLI prints
them without a traceback; the GUI shows them in its status bar. Anything else is a bug and is logged
with its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error with a human message (``str(err)``) and an optional hint on how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHint: {self.hint}"


class ExtractionError(UserError):
    """A document could not be read; the message says why in plain words."""


class UnsupportedFileError(ExtractionError):
    """The file type is not one we index (the file is skipped, not failed)."""


class ModelLoadError(UserError):
    """A model file or folder could not be loaded (missing, corrupt, wrong format)."""


class AdapterError(UserError):
    """A LoRA adapter file is missing, corrupt, not a LoRA adapter, or made for another model."""


class EmbeddingMismatchError(UserError):
    """The index was built with a different embedding model than the one selected."""


class IndexBusyError(UserError):
    """Another process is indexing into the same data directory."""


class Cancelled(Exception):
    """Raised inside long work when its :class:`~desktop_rag.core.types.CancelToken` is set."""
