"""LoRA style adapters: validation, import and listing, switching on one loaded model, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from desktop_rag.cli import cli
from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import AdapterError
from desktop_rag.core.generate.adapters import (
    KEY_BASE_FILE,
    KEY_BASE_SHA256,
    import_adapter,
    list_adapters,
    read_adapter_info,
    resolve_adapter,
)
from desktop_rag.core.generate.llm import LocalLLM
from desktop_rag.core.paths import app_paths

# SmolLM2-135M: 30 blocks, hidden size 576 (attn_q is 576 x 576).
LAYERS, HIDDEN = 30, 576
MESSAGES = [{"role": "user", "content": "Write one sentence about apples."}]
SEED = 0  # with temperature 0 (greedy): generated text is reproducible


def make_lora(
    path: Path,
    *,
    arch: str = "llama",
    n_in: int = HIDDEN,
    rank: int = 4,
    seed: int = 0,
    scale: float = 0.3,
    kind: str = "adapter",
    meta: dict[str, str] | None = None,
) -> Path:
    """Write a real GGUF LoRA adapter on attn_q of every block (random weights) with gguf."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    w.add_string("general.type", kind)
    if kind == "adapter":
        w.add_string("adapter.type", "lora")
        w.add_float32("adapter.lora.alpha", float(rank))
    for k, v in (meta or {}).items():
        w.add_string(k, v)
    rng = np.random.default_rng(seed)
    for i in range(LAYERS):
        a = (rng.standard_normal((rank, n_in)) * scale).astype(np.float32)
        b = (rng.standard_normal((HIDDEN, rank)) * scale).astype(np.float32)
        w.add_tensor(f"blk.{i}.attn_q.weight.lora_a", a)
        w.add_tensor(f"blk.{i}.attn_q.weight.lora_b", b)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def llm(llm_path: Path) -> LocalLLM:
    model = LocalLLM(llm_path, n_ctx=1024, threads=1)
    model.load()
    return model


def _gen(llm: LocalLLM, **kwargs: object) -> str:
    """Greedy (temperature 0) with a fixed seed: the same prompt and adapter give the same text."""
    return "".join(llm.stream(MESSAGES, max_tokens=24, temperature=0.0, seed=SEED, **kwargs))  # type: ignore[arg-type]


def test_header_is_read_and_bad_files_are_refused(tmp_path: Path) -> None:
    info = read_adapter_info(make_lora(tmp_path / "style.gguf", rank=4))
    assert (info.name, info.base_architecture, info.rank, info.alpha, info.tensors) == (
        "style", "llama", 4, 4.0, 2 * LAYERS,
    )  # fmt: skip
    assert info.bytes == (tmp_path / "style.gguf").stat().st_size
    model = make_lora(tmp_path / "model.gguf", kind="model")
    with pytest.raises(AdapterError, match=r"not a LoRA adapter \(general.type is 'model'"):
        read_adapter_info(model)
    noise = tmp_path / "noise.gguf"
    noise.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(AdapterError, match="not a GGUF adapter file"):
        read_adapter_info(noise)
    truncated = tmp_path / "truncated.gguf"
    data = (tmp_path / "style.gguf").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AdapterError, match="corrupt or incomplete"):
        read_adapter_info(truncated)
    with pytest.raises(AdapterError, match="cannot read"):
        read_adapter_info(tmp_path / "missing.gguf")


def test_import_list_resolve_and_remove(tmp_path: Path) -> None:
    src = make_lora(tmp_path / "memo.gguf")
    info = import_adapter(src)
    assert info.path.parent == app_paths().adapters_dir and not info.bundled
    assert import_adapter(src).path == info.path  # the same file again: a no-op
    other = tmp_path / "other" / "memo.gguf"
    other.parent.mkdir()
    make_lora(other, seed=5)
    with pytest.raises(AdapterError, match="different adapter named memo"):
        import_adapter(other)
    assert "memo" in [a.name for a in list_adapters()]
    assert resolve_adapter("memo").path == info.path
    with pytest.raises(AdapterError, match="no adapter named 'nope'") as err:
        resolve_adapter("nope")
    assert "memo" in str(err.value)  # the hint lists what exists
    # A broken file dropped into the folder by hand is left out of the list, not fatal.
    (app_paths().adapters_dir / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00junk")
    assert "broken" not in [a.name for a in list_adapters()]


def test_switching_on_one_loaded_model_matches_fresh_loads(
    llm: LocalLLM, llm_path: Path, tmp_path: Path
) -> None:
    a = make_lora(tmp_path / "a.gguf", seed=1)
    b = make_lora(tmp_path / "b.gguf", seed=2)
    base = _gen(llm)
    with_a = _gen(llm, adapter=a)
    assert llm.last_stats is not None and llm.last_stats.adapter == "a"
    with_b = _gen(llm, adapter=b)
    half_a = _gen(llm, adapter=a, adapter_scale=0.5)
    assert len({base, with_a, with_b, half_a}) == 4, "each adapter and scale changes the output"
    # Back to A: the cached prompt prefix of B must not leak into it.
    assert _gen(llm, adapter=a) == with_a
    assert llm.last_stats is not None and llm.last_stats.adapter_switch_s < 1.0
    assert _gen(llm) == base and llm.active_adapter is None  # removed: the base model again
    fresh = LocalLLM(llm_path, n_ctx=1024, threads=1)
    try:
        assert _gen(fresh, adapter=a) == with_a
    finally:
        fresh.close()


def test_incompatible_adapters_give_llama_cpp_reason_and_model_stays_usable(
    llm: LocalLLM, tmp_path: Path
) -> None:
    base = _gen(llm)
    wrong_shape = make_lora(tmp_path / "other-model.gguf", n_in=512)
    with pytest.raises(AdapterError, match=r"has incorrect shape \(hint: maybe wrong base model"):
        _gen(llm, adapter=wrong_shape)
    wrong_arch = make_lora(tmp_path / "qwen.gguf", arch="qwen2")
    with pytest.raises(AdapterError, match="model arch and LoRA arch mismatch"):
        llm.set_adapter(wrong_arch)
    assert _gen(llm) == base


def test_engine_checks_architecture_and_warns_on_another_base_model(
    engine: Engine, corpus: Path, tmp_path: Path
) -> None:
    engine.index_all([corpus])
    question = "How many tonnes of apples did the orchard yield in 2022?"
    import_adapter(make_lora(tmp_path / "qwen-style.gguf", arch="qwen2"))
    with pytest.raises(AdapterError, match="is for qwen2 models"):
        engine.answer(question, adapter="qwen-style")
    meta = {KEY_BASE_FILE: "other-model.gguf", KEY_BASE_SHA256: "0" * 64}
    import_adapter(make_lora(tmp_path / "foreign.gguf", meta=meta, scale=0.01))
    answer = engine.answer(question, adapter="foreign", adapter_scale=0.5)
    assert answer.adapter == "foreign" and answer.adapter_scale == 0.5
    assert answer.warnings and "trained for other-model.gguf" in answer.warnings[0]
    out = answer.to_json()
    assert out["adapter"] == {"name": "foreign", "scale": 0.5} and out["warnings"]
    plain = engine.answer(question)
    assert plain.adapter is None and "adapter" not in plain.to_json()
    with pytest.raises(AdapterError, match=r"between 0 and 1\.5"):
        engine.answer(question, adapter="foreign", adapter_scale=2.0)


@pytest.mark.slow  # the CLI loads the real models in-process
def test_cli_adapters_import_list_ask(corpus: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    src = make_lora(tmp_path / "brief.gguf", scale=0.01)
    res = runner.invoke(cli, ["adapters", "import", str(src)])
    assert res.exit_code == 0, res.output
    assert "Imported brief (llama, rank 4" in res.output
    res = runner.invoke(cli, ["adapters", "--json"])
    listed = {a["name"]: a for a in json.loads(res.output)}
    assert {"name", "path", "base_architecture", "rank", "alpha", "bytes"} <= set(listed["brief"])
    assert listed["brief"]["rank"] == 4 and listed["brief"]["base_architecture"] == "llama"
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all" * 10)
    res = runner.invoke(cli, ["adapters", "import", str(bad)])
    assert res.exit_code != 0 and "not a GGUF adapter file" in res.output
    assert runner.invoke(cli, ["index", str(corpus)]).exit_code == 0
    question = "How many tonnes of apples did the orchard yield in 2022?"
    res = runner.invoke(cli, ["ask", "--json", "--adapter", "brief", "--adapter-scale", "0.8",
                              question])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["adapter"] == {"name": "brief", "scale": 0.8}
    res = runner.invoke(cli, ["ask", "--adapter", "missing", question])
    assert res.exit_code != 0 and "no adapter named 'missing'" in res.output
    res = runner.invoke(cli, ["adapters", "remove", "brief"])
    assert res.exit_code == 0 and not (app_paths().adapters_dir / "brief.gguf").exists()


def test_bundled_style_adapter_applies_and_removes_its_style(engine: Engine, corpus: Path) -> None:
    """The shipped executive-brief adapter changes the answer's form on the running model, keeps
    citations, and the base model's plain answer comes back without it."""
    info = resolve_adapter("executive-brief")
    assert info.bundled and info.marker == "Bottom line:" and info.base_model_sha256
    engine.index_all([corpus])
    question = "How many tonnes of apples did the orchard yield in 2022?"
    styled = engine.answer(question, adapter="executive-brief")
    assert styled.text.startswith("Bottom line:") and "38" in styled.text
    assert any(c.cited for c in styled.citations) and not styled.warnings
    plain = engine.answer(question)
    assert not plain.text.startswith("Bottom line:") and plain.adapter is None
