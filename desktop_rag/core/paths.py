"""Where desktop_rag keeps its data, configuration, logs and user models.

By default these are the platformdirs user directories for the app ``desktop-rag``. Setting the
environment variable ``DESKTOP_RAG_HOME`` puts everything under that one folder instead (used by the
tests and for portable installs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "desktop-rag"
HOME_ENV = "DESKTOP_RAG_HOME"
# Where exported ONNX graphs of embedding models go, if not ``cache/onnx`` (the tests share one
# folder across their per-test homes so a model is exported once per session).
ONNX_CACHE_ENV = "DESKTOP_RAG_ONNX_CACHE"
# Likewise for F16 copies of small quantized GGUF models (``cache/gguf``).
GGUF_CACHE_ENV = "DESKTOP_RAG_GGUF_CACHE"


@dataclass(frozen=True)
class AppPaths:
    """The app's directories; :meth:`ensure` creates them."""

    data: Path
    config: Path
    cache: Path
    logs: Path

    @property
    def index_db(self) -> Path:
        """The SQLite database: the source of truth for files, pages, chunks and embeddings."""
        return self.data / "index.sqlite3"

    @property
    def index_lock(self) -> Path:
        """The lock file an indexing run holds (one writer per data directory)."""
        return self.data / "index.lock"

    @property
    def vectors_dir(self) -> Path:
        """The folder of the hnswlib cache and its manifest."""
        return self.data / "vectors"

    @property
    def models_dir(self) -> Path:
        """User models: ``*.gguf`` LLMs and sentence-transformers folders."""
        return self.data / "models"

    @property
    def adapters_dir(self) -> Path:
        """User LoRA adapters: ``*.gguf`` files with ``general.type = adapter``."""
        return self.data / "adapters"

    @property
    def onnx_cache(self) -> Path:
        """ONNX graphs of embedding models (derived data: safe to delete; rebuilt on use)."""
        override = os.environ.get(ONNX_CACHE_ENV)
        return Path(override) if override else self.cache / "onnx"

    @property
    def gguf_cache(self) -> Path:
        """F16 copies of small quantized LLMs, faster to evaluate (derived data: safe to delete)."""
        override = os.environ.get(GGUF_CACHE_ENV)
        return Path(override) if override else self.cache / "gguf"

    @property
    def settings_file(self) -> Path:
        """The JSON settings file."""
        return self.config / "settings.json"

    @property
    def api_token_file(self) -> Path:
        """The bearer token of our own API (``desktop-rag serve``), user-only (mode 0600)."""
        return self.config / "api-token"

    @property
    def servers_file(self) -> Path:
        """The inference servers added as generation backends (JSON; no secrets in it)."""
        return self.config / "servers.json"

    @property
    def keys_dir(self) -> Path:
        """The servers' API keys, one user-only file each (mode 0600, folder 0700)."""
        return self.config / "keys"

    def ensure(self) -> AppPaths:
        """Create every directory (idempotent) and return self."""
        for d in (
            self.data,
            self.config,
            self.cache,
            self.logs,
            self.vectors_dir,
            self.models_dir,
            self.adapters_dir,
        ):
            d.mkdir(parents=True, exist_ok=True)
        return self


def app_paths() -> AppPaths:
    """The directories in force now (``DESKTOP_RAG_HOME`` wins over platformdirs)."""
    home = os.environ.get(HOME_ENV)
    if home:
        root = Path(home).expanduser().resolve()
        config = root / "config"
        data = _data_dir_override(config) or root / "data"
        return AppPaths(data, config, root / "cache", root / "logs")
    import platformdirs

    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    config = Path(dirs.user_config_dir)
    return AppPaths(
        _data_dir_override(config) or Path(dirs.user_data_dir),
        config,
        Path(dirs.user_cache_dir),
        Path(dirs.user_log_dir),
    )


def _data_dir_override(config: Path) -> Path | None:
    """The ``data_dir`` chosen in the settings file (Settings > Data location), if any."""
    import json

    try:
        value = json.loads((config / "settings.json").read_text(encoding="utf-8")).get("data_dir")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(value).expanduser() if isinstance(value, str) and value else None
