"""Style examples and LoRA adapter training: the prompt layout, citations, the GGUF llama.cpp loads."""

from __future__ import annotations

import ctypes
import itertools
import re
from pathlib import Path

import pytest

from desktop_rag.core.errors import Cancelled
from desktop_rag.core.generate.prompting import NOT_FOUND, format_source, pack_prompt, system_prompt
from desktop_rag.core.types import CancelToken, Hit
from desktop_rag.train.lora import (
    KEY_BASE_FILE,
    KEY_BASE_NAME,
    KEY_BASE_SHA256,
    KEY_STYLE_DESCRIPTION,
    KEY_STYLE_MARKER,
    KEY_STYLE_NAME,
    TrainProgress,
    llama_permute,
    load_examples,
    read_base_info,
    render_prompt,
    sha256_file,
    train_adapter,
    write_lora_gguf,
)
from desktop_rag.train.style_examples import (
    KEY_POINTS,
    MARKER,
    generate_examples,
    read_jsonl,
    write_jsonl,
)

BLOCK = re.compile(r"\[(\d+)\] ([^\n]+)\n<<<\n(.*?)\n>>>", re.S)
LABEL = re.compile(r"^(\S+?\.(?:pdf|docx|md|txt|html))(?:, page (\d+))?(?: \((.+ › .+)\))?$")
CITED_LINE = re.compile(r"^(?:Bottom line: |- )(.+) \[(\d+)\]\.?$")


def parse_user(content: str) -> tuple[list[tuple[int, str, str]], str]:
    """The numbered source blocks (n, label, text) and the question of a user message."""
    assert content.startswith("Sources:\n")
    head, question = content.rsplit("\n\nQuestion: ", 1)
    assert question.endswith("\nAnswer:")
    blocks = [(int(n), label, text) for n, label, text in BLOCK.findall(head)]
    return blocks, question.removesuffix("\nAnswer:")


def test_examples_have_the_answer_prompt_layout() -> None:
    for ex in generate_examples(60, seed=11):
        system, user, assistant = ex["messages"]
        assert system == {"role": "system", "content": system_prompt()}
        assert user["role"] == "user" and assistant["role"] == "assistant"
        blocks, question = parse_user(user["content"])
        assert [n for n, _, _ in blocks] == list(range(1, len(blocks) + 1))
        assert 2 <= len(blocks) <= 5
        # Rebuilt from hits, the app's own prompt code gives the very same user message.
        hits = []
        for n, label, text in blocks:
            m = LABEL.match(label)
            assert m, label
            name, page, ctx = m.groups()
            hits.append(
                Hit(
                    n,
                    n,
                    f"/docs/{name}",
                    int(page) if page else None,
                    0,
                    len(text),
                    text,
                    ctx or "",
                    0.5,
                )
            )
            assert format_source(n, hits[-1]) == f"[{n}] {label}\n<<<\n{text}\n>>>"
        packed = pack_prompt(question, hits, 10**9, lambda s: len(s) // 4)
        assert packed.messages == [system, user]


def test_answers_are_briefs_whose_citations_hold_the_fact() -> None:
    examples = generate_examples(200, seed=3)
    abstaining = [ex for ex in examples if ex["meta"]["abstain"]]
    assert 15 <= len(abstaining) <= 25  # about 10 %
    for ex in examples:
        blocks, _question = parse_user(ex["messages"][1]["content"])
        texts = {n: text for n, _, text in blocks}
        answer = ex["messages"][2]["content"]
        if ex["meta"]["abstain"]:
            assert answer == NOT_FOUND
            continue
        lines = answer.split("\n")
        assert lines[0].startswith(MARKER + " ") and lines[0].endswith("].")
        assert lines[1] == KEY_POINTS
        assert 1 <= len(lines) - 2 <= 3 and all(ln.startswith("- ") for ln in lines[2:])
        cited = []
        for line in [lines[0], *lines[2:]]:
            m = CITED_LINE.match(line)
            assert m, line
            fact, n = m.group(1), int(m.group(2))
            assert fact in texts[n], (fact, n)  # copied from the source it cites
            cited.append(n)
        # The key fact's source is one of those about the entity asked about.
        assert cited[0] in ex["meta"]["answer_sources"]
        assert [c["n"] for c in ex["meta"]["cited"]] == cited
        assert ex["meta"]["cited"][0]["fact"] == ex["meta"]["question_fact"]
        assert len(set(lines)) == len(lines)  # no fact repeated


def test_abstaining_examples_lack_the_fact_asked_for() -> None:
    for ex in generate_examples(300, seed=5):
        if not ex["meta"]["abstain"]:
            continue
        blocks, _question = parse_user(ex["messages"][1]["content"])
        assert ex["messages"][2]["content"] == NOT_FOUND
        assert not any(ex["meta"]["question_fact"] in text for _, _, text in blocks)
        # Either the entity asked about is absent, or one source describes it without the fact.
        assert len(ex["meta"]["answer_sources"]) <= 1


def test_examples_are_deterministic_per_seed(tmp_path: Path) -> None:
    a = generate_examples(25, seed=7)
    assert a == generate_examples(25, seed=7)
    assert a != generate_examples(25, seed=8)
    path = tmp_path / "ex.jsonl"
    assert write_jsonl(a, path) == 25
    assert list(read_jsonl(path)) == a
    chats = load_examples(path, max_examples=4)
    assert len(chats) == 4 and chats[0] == a[0]["messages"]


def test_load_examples_refuses_malformed_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        load_examples(bad)
    bad.write_text("not json\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_examples(bad)
    bad.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no examples"):
        load_examples(bad)


def test_llama_permute_interleaves_rotary_halves() -> None:
    import numpy as np

    # One head of dimension 4: rows (r0, r1 | r2, r3) become (r0, r2, r1, r3).
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    assert llama_permute(w, 1).tolist() == [[0, 1], [4, 5], [2, 3], [6, 7]]


def test_adapter_file_is_written_atomically(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    out = tmp_path / "a.gguf"
    out.write_bytes(b"previous")
    tensors = {
        "blk.0.attn_v.weight.lora_a": np.ones((2, 8), dtype=np.float16),
        "blk.0.attn_v.weight.lora_b": np.ones((4, 2), dtype=np.float16),
    }
    with pytest.raises(TypeError, match="unsupported type"):
        write_lora_gguf(out, tensors, alpha=4, metadata={"bad": [1]}, name="x")  # type: ignore[dict-item]
    assert out.read_bytes() == b"previous"  # a failed write leaves the old file
    assert [p.name for p in tmp_path.iterdir()] == ["a.gguf"]
    write_lora_gguf(out, tensors, alpha=4, metadata={"k.s": "v", "k.i": 3, "k.f": 0.5}, name="x")
    reader = gguf.GGUFReader(str(out))
    assert reader.fields["k.s"].contents() == "v" and reader.fields["k.i"].contents() == 3
    assert reader.fields["adapter.lora.alpha"].contents() == 4.0
    assert [t.name for t in reader.tensors] == list(tensors)
    assert [p.name for p in tmp_path.iterdir()] == ["a.gguf"]


def test_training_prompt_matches_the_app_renderer(llm_path: Path) -> None:
    from desktop_rag.core.generate.llm import LocalLLM

    ex = generate_examples(1, seed=2)[0]
    llm = LocalLLM(llm_path, n_ctx=512, threads=1)
    try:
        info = read_base_info(llm_path)
        ours = render_prompt(info.chat_template, ex["messages"][:-1], "<|im_start|>", "<|im_end|>")
        assert ours == llm.render(ex["messages"][:-1])
    finally:
        llm.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, llm_path: Path) -> tuple[Path, list]:
    """A real adapter trained for 3 steps on 3 examples (a high rate, so that it shows)."""
    root = tmp_path_factory.mktemp("adapter")
    examples = root / "ex.jsonl"
    write_jsonl(generate_examples(3, seed=1), examples)
    out = root / "style.gguf"
    reports = list(
        train_adapter(
            examples,
            "test-style",
            out,
            rank=4,
            alpha=8,
            lr=3e-3,
            description="a test",
            threads=1,
            seed=0,
        )
    )
    return out, reports


@pytest.mark.slow
def test_training_reports_progress_and_writes_a_llama_cpp_lora(
    trained: tuple[Path, list[TrainProgress]], llm_path: Path
) -> None:
    import gguf

    out, reports = trained
    phases = [r.phase for r in reports]
    assert phases[0] == "loading" and phases[-2:] == ["writing", "done"]
    steps = [r for r in reports if r.phase == "training" and r.step > 0]
    assert [r.step for r in steps] == [1, 2, 3] and all(r.total_steps == 3 for r in steps)
    assert all(r.loss is not None and 0 < r.loss < 10 for r in steps)
    assert all(b.elapsed_s >= a.elapsed_s for a, b in itertools.pairwise(reports))
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]

    reader = gguf.GGUFReader(str(out))

    def field(key: str) -> object:
        return reader.fields[key].contents()

    assert field("general.type") == "adapter"
    assert field("adapter.type") == "lora"
    assert field("general.architecture") == "llama"
    alpha = reader.fields["adapter.lora.alpha"]
    assert alpha.types == [gguf.GGUFValueType.FLOAT32] and field("adapter.lora.alpha") == 8.0
    assert field(KEY_BASE_NAME) == read_base_info(llm_path).name
    assert field(KEY_BASE_FILE) == llm_path.name
    assert field(KEY_BASE_SHA256) == sha256_file(llm_path)
    assert field(KEY_STYLE_NAME) == "test-style"
    assert field(KEY_STYLE_DESCRIPTION) == "a test"
    assert field(KEY_STYLE_MARKER) == "Bottom line:"
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in reader.tensors}
    assert len(shapes) == 30 * 7 * 2
    # GGUF lists dimensions innermost first: lora_a is (n_in, rank), lora_b (rank, n_out).
    assert shapes["blk.0.attn_q.weight.lora_a"] == (576, 4)
    assert shapes["blk.0.attn_q.weight.lora_b"] == (4, 576)
    assert shapes["blk.29.attn_k.weight.lora_b"] == (4, 192)
    assert shapes["blk.7.ffn_down.weight.lora_a"] == (1536, 4)
    assert shapes["blk.7.ffn_down.weight.lora_b"] == (4, 576)


@pytest.mark.slow
def test_llama_cpp_generates_with_the_trained_adapter(
    trained: tuple[Path, list[TrainProgress]], llm_path: Path
) -> None:
    import llama_cpp
    import numpy as np

    from desktop_rag.core.generate.native import open_llama

    out, _ = trained
    hit = Hit(1, 1, "/docs/pump.txt", None, 0, 40, "The pump moves 40 litres per minute.", "", 0.9)
    packed = pack_prompt("How fast is the pump?", [hit], 10**6, lambda s: len(s) // 4)
    info = read_base_info(llm_path)
    prompt = render_prompt(info.chat_template, packed.messages, "<|im_start|>", "<|im_end|>")
    llm = open_llama(model_path=str(llm_path), n_ctx=512, n_threads=1, verbose=False)
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)

    def next_token_scores() -> np.ndarray:
        llm.reset()
        llm.eval(ids)
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()

    try:
        plain = next_token_scores()
        adapter = llama_cpp.llama_adapter_lora_init(llm._model.model, str(out).encode())
        assert adapter
        arr = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(1.0)
        assert llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, arr, 1, scales) == 0
        styled = next_token_scores()
        assert np.abs(styled - plain).max() > 0.05  # the adapter changes the next-token scores
        llm.reset()
        completion = llm.create_completion(ids, max_tokens=8, temperature=0.0, seed=0)  # greedy
        text = completion["choices"][0]["text"]
        assert text.strip()
        assert llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, None, 0, None) == 0
        llama_cpp.llama_adapter_lora_free(adapter)
    finally:
        llm.close()


@pytest.mark.slow
def test_cancel_stops_training_without_writing(tmp_path: Path) -> None:
    examples = tmp_path / "ex.jsonl"
    write_jsonl(generate_examples(4, seed=2), examples)
    out = tmp_path / "out" / "style.gguf"
    cancel = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for report in train_adapter(examples, "x", out, threads=1, cancel=cancel):
            seen.append(report)
            if report.phase == "training" and report.step == 1:
                cancel.cancel()
    assert seen[-1].phase == "training" and seen[-1].step == 1 and seen[-1].total_steps == 4
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.iterdir())


# -- the whole `adapters train` workflow (desktop_rag.train.workflow) ----------------------------


def test_new_adapter_names_are_checked_before_training(tmp_path: Path) -> None:
    from desktop_rag.core.errors import AdapterError
    from desktop_rag.core.paths import app_paths
    from desktop_rag.train.workflow import train_new_adapter, valid_adapter_name

    assert valid_adapter_name("my-style_2") and not valid_adapter_name("my style")
    assert not valid_adapter_name("") and not valid_adapter_name("--")
    examples = tmp_path / "ex.jsonl"
    write_jsonl(generate_examples(2, seed=3), examples)
    with pytest.raises(AdapterError, match="letters, digits"):
        next(train_new_adapter(examples, "../evil"))
    paths = app_paths().ensure()
    (paths.adapters_dir / "taken.gguf").write_bytes(b"an adapter")
    with pytest.raises(AdapterError, match="already imported"):
        next(train_new_adapter(examples, "taken", paths=paths))
    assert (paths.adapters_dir / "taken.gguf").read_bytes() == b"an adapter"


def test_training_needs_the_train_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    from desktop_rag.core.errors import MissingExtraError, UserError
    from desktop_rag.train.workflow import require_training, train_new_adapter

    require_training()  # installed here
    monkeypatch.setitem(sys.modules, "accelerate", None)
    with pytest.raises(MissingExtraError) as err:
        next(train_new_adapter(tmp_path / "ex.jsonl", "mine"))
    assert isinstance(err.value, UserError) and err.value.missing == ("accelerate",)
    assert err.value.hint == "pip install 'desktop-rag[train]'"


@pytest.mark.slow
def test_new_adapter_is_trained_into_the_adapters_folder(tmp_path: Path) -> None:
    from desktop_rag.core.generate.adapters import list_adapters
    from desktop_rag.core.paths import app_paths
    from desktop_rag.train.workflow import train_new_adapter

    examples = tmp_path / "ex.jsonl"
    write_jsonl(generate_examples(2, seed=4), examples)
    paths = app_paths().ensure()
    steps = train_new_adapter(examples, "tiny", paths=paths, rank=2, alpha=4, description="d")
    phases = []
    while True:
        try:
            phases.append(next(steps).phase)
        except StopIteration as stop:
            info = stop.value
            break
    assert phases[0] == "loading" and phases[-2:] == ["writing", "done"]
    assert info.path == paths.adapters_dir / "tiny.gguf" and info.rank == 2
    assert info.description == "d" and "tiny" in [a.name for a in list_adapters(paths)]
    assert not (paths.cache / "tiny.gguf").exists()  # the training copy is gone
