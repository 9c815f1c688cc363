"""The bundled GGUF model: streaming, cancellation, sandboxed templates and clear load errors."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from desktop_rag.core.errors import ModelLoadError
from desktop_rag.core.generate.llm import LocalLLM
from desktop_rag.core.types import CancelToken

MESSAGES = [{"role": "user", "content": "List the days of the week."}]
SEED = 0  # with temperature 0 (greedy) every test that reads generated text is reproducible


@pytest.fixture(scope="module")
def llm(llm_path: Path) -> LocalLLM:
    model = LocalLLM(llm_path, n_ctx=2048, threads=1)
    model.load()
    return model


def test_streams_tokens_and_reports_speed(llm: LocalLLM) -> None:
    pieces = list(llm.stream(MESSAGES, max_tokens=40, temperature=0.0, seed=SEED))
    assert len(pieces) > 5
    text = "".join(pieces).lower()
    assert "monday" in text and "tuesday" in text
    stats = llm.last_stats
    assert stats is not None and stats.completion_tokens >= 5
    assert stats.tokens_per_s > 0 and stats.ttft_s > 0


def test_cancel_stops_within_one_token(llm: LocalLLM) -> None:
    cancel = CancelToken()
    pieces = []
    for piece in llm.stream(MESSAGES, max_tokens=200, temperature=0.0, seed=SEED, cancel=cancel):
        pieces.append(piece)
        if len(pieces) == 3:
            cancel.cancel()
    assert len(pieces) == 3
    assert llm.last_stats is not None and llm.last_stats.completion_tokens <= 4


def test_chat_template_comes_from_the_gguf(llm: LocalLLM) -> None:
    prompt = llm.render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert "<|im_start|>user\nU<|im_end|>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_not_a_gguf_is_refused_before_llama_cpp(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 10)
    with pytest.raises(ModelLoadError, match="not a GGUF model file"):
        LocalLLM(bad).load()
    with pytest.raises(ModelLoadError, match="cannot read the model file"):
        LocalLLM(tmp_path / "missing.gguf").load()


def test_truncated_gguf_reports_llama_cpp_reason(tmp_path: Path, llm_path: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    with open(llm_path, "rb") as f:
        truncated.write_bytes(f.read(3_000_000))
    with pytest.raises(ModelLoadError) as err:
        LocalLLM(truncated).load()
    msg = str(err.value)
    assert "llama.cpp could not load truncated.gguf" in msg
    # llama.cpp's own words reach the user, not just "Failed to load model from file".
    assert (
        "file" in msg.lower() and len(msg) > len("llama.cpp could not load truncated.gguf: ") + 10
    )


def test_unknown_gguf_version_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "future.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<I", 99) + b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="GGUF version 99"):
        LocalLLM(bad).load()


def test_chat_template_cannot_escape_the_sandbox(tmp_path: Path, llm_path: Path) -> None:
    """A GGUF whose chat template tries the CVE-2024-34359 escape (reach ``os`` through Python
    object internals and run a command) is refused; the command never runs."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    marker = tmp_path / "escaped"
    payload = (
        "{% for c in [].__class__.__base__.__subclasses__() %}"
        "{% if c.__name__ == 'catch_warnings' %}"
        "{{ c()._module.__builtins__['__import__']('os').popen('touch "
        + str(marker)
        + "').read() }}"
        "{% endif %}{% endfor %}"
    )
    hostile = tmp_path / "hostile-template.gguf"
    reader = gguf.GGUFReader(str(llm_path))
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    assert arch is not None
    writer = gguf.GGUFWriter(str(hostile), arch.contents())
    copy_with_new_metadata(
        reader,
        writer,
        {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, payload)},
        [],
    )
    model = LocalLLM(hostile, n_ctx=512, threads=1)
    try:
        with pytest.raises(ModelLoadError, match="chat template was refused as unsafe"):
            list(model.stream(MESSAGES, max_tokens=4))
    finally:
        model.close()
    assert not marker.exists(), "the template ran a shell command"


def test_crafted_gguf_header_counts_are_refused(tmp_path: Path) -> None:
    crafted = tmp_path / "crafted.gguf"
    crafted.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 5) + b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="impossible GGUF header"):
        LocalLLM(crafted).load()
    short = tmp_path / "short.gguf"
    short.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\x01\x00")
    with pytest.raises(ModelLoadError, match="truncated"):
        LocalLLM(short).load()


def test_prefill_caches_the_shared_prefix_and_changes_nothing(llm: LocalLLM) -> None:
    """The system prompt evaluated ahead of time: the answer is the same as from a cold start."""
    from desktop_rag.core.generate.prompting import pack_prompt

    first = pack_prompt("a", [], 1500, llm.count_tokens).messages
    second = pack_prompt("b", [], 1500, llm.count_tokens).messages
    question = [first[0], {"role": "user", "content": "List the days of the week."}]
    llm.reset_cache()
    assert llm.cached_tokens == 0
    cold = "".join(llm.stream(question, max_tokens=24, temperature=0.0, seed=SEED))
    n = llm.prefill(first, second)
    assert n > 20 and llm.cached_tokens == n  # the system prompt is in the KV cache now
    warm = "".join(llm.stream(question, max_tokens=24, temperature=0.0, seed=SEED))
    assert warm == cold
