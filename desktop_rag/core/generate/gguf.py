"""Reading a GGUF model's header (architecture, size, quantization, context length) and importing it.

Uses the ``gguf`` package (maintained with llama.cpp). The header is checked first by
:func:`check_gguf_header`, so a random file never reaches the parser.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import ModelLoadError
from desktop_rag.core.files import place_file, same_content
from desktop_rag.core.paths import app_paths

GGUF_MAGIC = b"GGUF"
MAX_GGUF_TENSORS = 1_000_000  # the largest real models have tens of thousands
MAX_GGUF_KV = 100_000


def check_gguf_header(path: Path) -> None:
    """Refuse a file that is not a GGUF before llama.cpp sees it.

    Raises:
        ModelLoadError: missing, unreadable, not GGUF, an unknown GGUF version, a truncated
            header, or tensor/key counts no file of this size can hold (crafted headers make
            llama.cpp allocate for them).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(24)
        size = os.path.getsize(path)
    except OSError as exc:
        raise ModelLoadError(f"cannot read the model file {path}: {exc.strerror or exc}") from None
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path.name} is not a GGUF model file (it does not start with 'GGUF')",
            hint="models must be llama.cpp GGUF files (.gguf)",
        )
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (2, 3):
        raise ModelLoadError(f"{path.name} has GGUF version {version}, which is not supported")
    if len(head) < 24:
        raise ModelLoadError(f"{path.name} is truncated (the GGUF header is incomplete)")
    n_tensors, n_kv = struct.unpack("<QQ", head[8:24])
    # Every tensor and key takes at least 8 bytes of header: counts beyond that are crafted
    # (llama.cpp would try to allocate for them).
    if n_tensors > MAX_GGUF_TENSORS or n_kv > MAX_GGUF_KV or (n_tensors + n_kv) * 8 > size:
        raise ModelLoadError(
            f"{path.name} has an impossible GGUF header ({n_tensors} tensors, {n_kv} keys in "
            f"{size} bytes): the file is corrupt"
        )


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
        ftype: Any = field("general.file_type")
        try:
            quant = (
                gguf.LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_")
                if ftype is not None
                else "?"
            )
        except ValueError:
            quant = f"type {ftype}"
        ctx: Any = field(f"{arch}.context_length")
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
        if same_content(dest, Path(source)):
            return read_gguf_info(dest)
        raise ModelLoadError(
            f"a different model named {dest.name} is already imported",
            hint="rename the file and import it again",
        )
    place_file(Path(source), dest)
    return read_gguf_info(dest)
