"""The model registry and GGUF import: validated header info, no download, clear refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from desktop_rag.core.errors import ModelLoadError
from desktop_rag.core.generate.gguf import import_model, read_gguf_info
from desktop_rag.core.models import list_models, resolve_model


def test_bundled_gguf_info(llm_path: Path) -> None:
    info = read_gguf_info(llm_path)
    assert info.architecture == "llama"
    assert info.parameters_label == "135M"
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.type == "model"


def test_import_places_the_model_in_the_models_folder(llm_path: Path, tmp_path: Path) -> None:
    src = tmp_path / "my-model.gguf"
    shutil.copyfile(llm_path, src)
    info = import_model(src)
    assert info.path.parent.name == "models" and info.path.name == "my-model.gguf"
    assert resolve_model("my-model", "llm").path == info.path
    assert {m.name for m in list_models() if m.kind == "llm"} >= {
        "my-model",
        "SmolLM2-135M-Instruct-Q4_1",
    }
    assert import_model(src).path == info.path  # importing the same file again is harmless


def test_import_refuses_non_gguf_and_name_clash(llm_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"\x00" * 1024)
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        import_model(bad)
    good = tmp_path / "a" / "same.gguf"
    good.parent.mkdir()
    shutil.copyfile(llm_path, good)
    import_model(good)
    other = tmp_path / "b" / "same.gguf"
    other.parent.mkdir()
    data = bytearray(llm_path.read_bytes())
    data[-1] ^= 1
    other.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="already imported"):
        import_model(other)


def test_unknown_model_name_lists_the_available_ones() -> None:
    with pytest.raises(ModelLoadError, match="available: SmolLM2-135M-Instruct-Q4_1"):
        resolve_model("no-such-model", "llm")
