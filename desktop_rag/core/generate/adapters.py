"""LoRA style adapters: GGUF files that change how the answer model writes, not what it knows.

An adapter is a llama.cpp GGUF with ``general.type = adapter`` and ``adapter.type = lora``. Users
import them into ``<data>/adapters``; the project ships its own under ``resources/adapters``. This
module reads and validates them (no llama.cpp needed); :class:`desktop_rag.core.generate.llm.LocalLLM` attaches
them to the loaded model.

Our adapters also record the base model they were trained for (``desktop_rag.base_model.name``,
``.file`` and ``.sha256``): an adapter made for another model with identical tensor shapes loads
without any error in llama.cpp and garbles the output, so a mismatch is reported as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import AdapterError, ModelLoadError
from desktop_rag.core.files import place_file, same_content
from desktop_rag.core.generate.gguf import check_gguf_header
from desktop_rag.core.paths import AppPaths, app_paths

# Keys of our own metadata in adapters made by ``desktop-rag adapters train``.
KEY_BASE_NAME = "desktop_rag.base_model.name"
KEY_BASE_FILE = "desktop_rag.base_model.file"
KEY_BASE_SHA256 = "desktop_rag.base_model.sha256"
KEY_STYLE_NAME = (
    "desktop_rag.style.name"  # written by training; the adapter's name is its file stem
)
KEY_STYLE_DESCRIPTION = "desktop_rag.style.description"
KEY_STYLE_MARKER = "desktop_rag.style.marker"

MAX_SCALE = 1.5  # the strength slider's top: beyond it small models degrade into repetition


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter file says about itself.

    ``rank`` is the LoRA rank r (the inner dimension of ``lora_a``/``lora_b``); ``alpha`` the LoRA
    alpha (llama.cpp scales the update by ``alpha / rank`` times the user's scale; None when the file
    does not say, which llama.cpp treats as alpha = rank); ``bytes`` the file size. The ``base_*``
    fields are None for adapters not made by desktop_rag. ``bundled`` is True for adapters shipped in
    ``resources/adapters``.
    """

    name: str
    path: Path
    base_architecture: str
    rank: int
    alpha: float | None
    bytes: int
    tensors: int
    base_model_name: str | None = None
    base_model_file: str | None = None
    base_model_sha256: str | None = None
    description: str = ""
    marker: str | None = None
    bundled: bool = False

    def to_json(self) -> dict[str, Any]:
        """The ``desktop-rag adapters --json`` record."""
        return {
            "name": self.name,
            "path": str(self.path),
            "base_architecture": self.base_architecture,
            "rank": self.rank,
            "alpha": self.alpha,
            "bytes": self.bytes,
            "base_model": self.base_model_name,
            "base_model_sha256": self.base_model_sha256,
            "description": self.description,
            "bundled": self.bundled,
        }


def read_adapter_info(path: Path, *, bundled: bool = False) -> AdapterInfo:
    """Read and validate an adapter's GGUF header and tensor table.

    Raises:
        AdapterError: missing or unreadable file, not a GGUF, a GGUF model rather than an adapter,
            an adapter of another type than LoRA, or a corrupt header or tensor table.
    """
    path = Path(path)
    try:
        check_gguf_header(path)
    except ModelLoadError as exc:
        raise AdapterError(
            exc.message.replace("model file", "adapter file"), hint="adapters are GGUF LoRA files"
        ) from None
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))

        def field(key: str) -> Any:
            f = reader.fields.get(key)
            return None if f is None else f.contents()

        kind = field("general.type")
        if kind != "adapter":
            raise AdapterError(
                f"{path.name} is not a LoRA adapter (general.type is {kind or 'missing'!r}, "
                "expected 'adapter')",
                hint="models are imported with Models > Import model… in the app"
                if kind in (None, "model")
                else None,
            )
        atype = field("adapter.type")
        if atype != "lora":
            raise AdapterError(
                f"{path.name} is a {atype or 'unknown'!r} adapter; only LoRA adapters are supported"
            )
        arch = str(field("general.architecture") or "")
        if not arch:
            raise AdapterError(f"{path.name} does not name the model architecture it adapts")
        ranks = {
            int(min(t.shape)) for t in reader.tensors if t.name.endswith(".lora_a") and len(t.shape)
        }
        n_a = sum(t.name.endswith(".lora_a") for t in reader.tensors)
        n_b = sum(t.name.endswith(".lora_b") for t in reader.tensors)
        if not n_a or n_a != n_b:
            raise AdapterError(
                f"{path.name} has no complete LoRA tensor pairs ({n_a} lora_a, {n_b} lora_b)"
            )
        alpha = field("adapter.lora.alpha")
        info = AdapterInfo(
            name=path.stem,
            path=path,
            base_architecture=arch,
            rank=max(ranks) if ranks else 0,
            alpha=float(alpha) if alpha is not None else None,
            bytes=path.stat().st_size,
            tensors=n_a + n_b,
            base_model_name=_opt_str(field(KEY_BASE_NAME)),
            base_model_file=_opt_str(field(KEY_BASE_FILE)),
            base_model_sha256=_opt_str(field(KEY_BASE_SHA256)),
            description=str(field(KEY_STYLE_DESCRIPTION) or ""),
            marker=_opt_str(field(KEY_STYLE_MARKER)),
            bundled=bundled,
        )
        # The tensor data must lie inside the file (a truncated download fails here, not later).
        size = info.bytes
        for t in reader.tensors:
            if int(t.data_offset) + int(t.n_bytes) > size:
                raise AdapterError(f"{path.name} is truncated: tensor {t.name} ends past the file")
    except AdapterError:
        raise
    except Exception as exc:
        raise AdapterError(
            f"{path.name} is a corrupt or incomplete GGUF file ({exc})",
            hint="copy the adapter file again; a partial download or copy cannot be used",
        ) from None
    return info


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def bundled_adapters_dir() -> Path:
    """The project's own adapters (``resources/adapters``)."""
    from desktop_rag.core.resources import resources_dir

    return resources_dir() / "adapters"


def list_adapters(paths: AppPaths | None = None) -> list[AdapterInfo]:
    """Every usable adapter: the user's (``<data>/adapters``) then the bundled ones, by name.

    Files that fail validation are left out (they were checked on import). A user adapter hides a
    bundled one of the same name.
    """
    paths = paths or app_paths()
    found: dict[str, AdapterInfo] = {}
    for folder, bundled in ((paths.adapters_dir, False), (bundled_adapters_dir(), True)):
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.gguf")):
            if f.stem in found:
                continue
            try:
                found[f.stem] = read_adapter_info(f, bundled=bundled)
            except AdapterError:
                continue
    return sorted(found.values(), key=lambda a: a.name.lower())


def resolve_adapter(name_or_path: str, paths: AppPaths | None = None) -> AdapterInfo:
    """The adapter called ``name_or_path`` (see :func:`list_adapters`), or the file at that path.

    Raises:
        AdapterError: no such adapter (the message lists the available names), or the file is
            invalid.
    """
    p = Path(name_or_path).expanduser()
    if p.suffix == ".gguf" and p.is_file():
        return read_adapter_info(p)
    available = list_adapters(paths)
    for a in available:
        if a.name == name_or_path:
            return a
    names = ", ".join(a.name for a in available) or "none"
    raise AdapterError(
        f"no adapter named {name_or_path!r}",
        hint=f"available: {names}; import one with `desktop-rag adapters import FILE`",
    )


def import_adapter(source: Path, paths: AppPaths | None = None) -> AdapterInfo:
    """Validate a GGUF LoRA adapter and place it in the user adapters folder.

    The file is hard-linked if possible, else copied to a ``.part`` file and renamed, so a failed
    copy never leaves a half file under an adapter's name. Importing the same file again is a no-op.

    Raises:
        AdapterError: the file is invalid (see :func:`read_adapter_info`) or a different adapter of
            the same name is already imported.
    """
    source = Path(source)
    read_adapter_info(source)
    dest_dir = (paths or app_paths()).ensure().adapters_dir
    dest = dest_dir / source.name
    if dest.exists():
        if same_content(dest, source):
            return read_adapter_info(dest)
        raise AdapterError(
            f"a different adapter named {dest.stem} is already imported",
            hint="rename the file and import it again",
        )
    place_file(source, dest)
    return read_adapter_info(dest)


def remove_adapter(name: str, paths: AppPaths | None = None) -> Path:
    """Delete an imported adapter (bundled ones cannot be removed).

    Raises:
        AdapterError: no imported adapter of that name.
    """
    info = resolve_adapter(name, paths)
    if info.bundled:
        raise AdapterError(f"{name} is bundled with the app and cannot be removed")
    info.path.unlink()
    return info.path


def base_model_warning(info: AdapterInfo, model_path: Path, model_sha256: str | None) -> str | None:
    """A warning when ``info`` records a base model other than the GGUF at ``model_path``.

    ``model_sha256`` is that file's digest (None to compare names only). Returns None when they
    match or the adapter records no base model.
    """
    if info.base_model_sha256 and model_sha256 and info.base_model_sha256 != model_sha256:
        trained = info.base_model_file or info.base_model_name or "another model"
        return (
            f"the adapter {info.name} was trained for {trained}, not {model_path.name}: "
            "its output may be garbled"
        )
    return None
