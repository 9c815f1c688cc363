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


class BackendError(UserError):
    """A generation backend failed: an inference server is down, slow, refuses the key, has no
    such model, is busy, fails or cuts the stream. The evidence is still shown with it."""


class AdapterError(UserError):
    """A LoRA adapter file is missing, corrupt, not a LoRA adapter, or made for another model."""


class EmbeddingMismatchError(UserError):
    """The index was built with a different embedding model than the one selected."""


class IndexBusyError(UserError):
    """Another process is indexing into the same data directory."""


class NothingIndexedError(UserError):
    """No chunk is indexed yet: there is nothing to search or answer from (every client shows
    this one message; see :meth:`desktop_rag.core.engine.Engine.require_indexed`)."""

    def __init__(self) -> None:
        super().__init__(
            "nothing is indexed yet",
            hint="add a folder first: `desktop-rag index FOLDER`, or Add folder… in the app",
        )


class MissingExtraError(UserError):
    """An optional feature's packages are not installed; the hint says what to install.

    ``feature`` is what needs them (e.g. "training"), ``extra`` the package extra that provides
    them (e.g. "train"), ``missing`` the import names not found.
    """

    def __init__(self, feature: str, extra: str, missing: tuple[str, ...]) -> None:
        super().__init__(
            f"{feature} needs the {extra} extra ({', '.join(missing)} not installed)",
            hint=f"pip install 'desktop-rag[{extra}]'",
        )
        self.feature = feature
        self.extra = extra
        self.missing = missing


class Cancelled(Exception):
    """Raised inside long work when its :class:`~desktop_rag.core.types.CancelToken` is set."""
