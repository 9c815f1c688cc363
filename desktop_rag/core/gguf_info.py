"""Reading a GGUF model's header (architecture, size, quantization, context length) and importing it.

Uses the ``gguf`` package (maintained with llama.cpp). The header is checked first by
:func:`desktop_rag.core.llm.check_gguf_header`, so a random file never reaches the parser.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from desktop_rag.core.errors import ModelLoadError
from desktop_rag.core.llm import check_gguf_header
from desktop_rag.core.paths import app_paths


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF says about itself. ``parameters`` counts tensor elements; ``context_length`` is
    in tokens (the training context); ``quantization`` is llama.cpp's file type name (e.g. Q4_1)."""

    path: Path
    name: str
    architecture: str
    type: str
    parameters: int
    quantization: str
    context_length: int | None
    bytes: int

    @property
    def parameters_label(self) -> str:
        """``135M``, ``7.2B``..."""
        p = self.parameters
        return f"{p / 1e9:.1f}B" if p >= 1e9 else f"{p / 1e6:.0f}M"


def read_gguf_info(path: Path) -> GGUFInfo:
    """Parse the header and tensor table of a GGUF file.

    Raises:
        ModelLoadError: not a GGUF, an unsupported version, or a corrupt header.
    """
    path = Path(path)
    check_gguf_header(path)
    try:
        import gguf

        reader = gguf.GGUFReader(str(path))

        def field(key: str) -> object:
            f = reader.fields.get(key)
            return None if f is None else f.contents()

        arch = str(field("general.architecture") or "unknown")
        ftype = field("general.file_type")
        try:
            quant = (
                gguf.LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_")
                if ftype is not None
                else "?"
            )
        except ValueError:
            quant = f"type {ftype}"
        ctx = field(f"{arch}.context_length")
        params = sum(int(t.n_elements) for t in reader.tensors)
        name = str(field("general.name") or path.stem)
        kind = str(field("general.type") or "model")
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is a corrupt or unsupported GGUF file: {exc}") from None
    return GGUFInfo(path, name, arch, kind, params, quant, int(ctx) if ctx is not None else None,
                    path.stat().st_size)  # fmt: skip


def import_model(source: Path) -> GGUFInfo:
    """Validate a GGUF model and place it in the user models folder (hard link if possible, else copy).

    Nothing is downloaded. Returns the info of the imported file.

    Raises:
        ModelLoadError: invalid file, an adapter rather than a model, or a name already taken by a
            different file.
    """
    info = read_gguf_info(source)
    if info.type != "model":
        raise ModelLoadError(f"{source.name} is a GGUF {info.type}, not a model")
    dest_dir = app_paths().ensure().models_dir
    dest = dest_dir / Path(source).name
    if dest.exists():
        if os.path.samefile(dest, source) or _same_content(dest, Path(source)):
            return read_gguf_info(dest)
        raise ModelLoadError(
            f"a different model named {dest.name} is already imported",
            hint="rename the file and import it again",
        )
    tmp = dest.with_name(dest.name + ".part")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, dest)
    return read_gguf_info(dest)


def _same_content(a: Path, b: Path) -> bool:
    import hashlib

    if a.stat().st_size != b.stat().st_size:
        return False
    digests = []
    for p in (a, b):
        with open(p, "rb") as f:
            digests.append(hashlib.file_digest(f, "sha256").digest())
    return digests[0] == digests[1]
