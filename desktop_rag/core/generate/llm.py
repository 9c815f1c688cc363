"""Local generation with llama-cpp-python (GGUF models on the CPU).

One :class:`LocalLLM` owns one ``Llama``; a ``Llama`` is not thread-safe, so every call takes the
object's lock (the GUI additionally runs all generation on one worker thread).

- The chat template comes from the GGUF (``tokenizer.chat_template``) and is rendered by us in
  Jinja2's ``ImmutableSandboxedEnvironment`` (template injection from GGUF metadata was
  CVE-2024-34359); models without a template get ChatML.
- ``n_threads`` and ``n_threads_batch`` are always set explicitly: llama.cpp and torch must not
  fight for the same cores (measured: with one of two cores busy, 2 llama.cpp threads fell to
  1.3 tokens/s against 73.7 with 1 thread).
- llama-cpp-python hides llama.cpp's log when ``verbose=False``; we install a log callback that
  keeps the last messages, so a failed load tells the user why.
- Cancellation: a stopping criterion checks the cancel token after every token.
- LoRA adapters are attached through the low-level API (``llama_adapter_lora_init`` and
  ``llama_set_adapters_lora`` on the live context), never ``Llama(lora_path=...)``: in
  llama-cpp-python 0.3.36 that path checks a failed load's NULL pointer with ``is None``, so a bad
  file passes and the process crashes at the first token; it also turns memory-mapping off. Loaded
  adapters are kept, so switching is a pointer swap; after any change the cached prompt prefix
  (computed under the old adapter) is discarded with ``reset()``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop_rag.core.errors import AdapterError, ModelLoadError
from desktop_rag.core.generate.chat_template import compile_template, render_chat
from desktop_rag.core.generate.gguf import check_gguf_header
from desktop_rag.core.generate.native import (
    clear_log,
    install_log_capture,
    open_llama,
    recent_errors,
)
from desktop_rag.core.types import CancelToken

log = logging.getLogger(__name__)


def default_threads() -> int:
    """The number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class GenerationStats:
    """Timings of one generation: time to first token (s), tokens, tokens/s after the first, the
    adapter in use (file stem, None for none) and the seconds spent switching to it (0 if it was
    already attached)."""

    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    tokens_per_s: float
    adapter: str | None = None
    adapter_switch_s: float = 0.0


class LocalLLM:
    """A GGUF chat model, loaded lazily; all calls are serialised by ``self.lock``."""

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        threads: int | None = None,
        weights_cache: Path | None = None,
    ) -> None:
        """``weights_cache``: where a faster F16 copy of a small quantized model may be kept (see
        :mod:`desktop_rag.core.generate.llm_weights`); None loads ``model_path`` as it is."""
        self.model_path = Path(model_path)  # the model's identity (adapters, settings)
        self.weights_cache = weights_cache
        self.load_path = self.model_path  # the file llama.cpp loaded (an F16 copy, or the same)
        self.n_ctx = n_ctx
        self.threads = threads or default_threads()  # desired; applied at each generation start
        self._applied_threads = self.threads
        self.lock = threading.RLock()
        self._llm: Any = None
        self._template: Any = None
        self._bos = ""
        self._eos = ""
        self.last_stats: GenerationStats | None = None
        self._adapters: dict[Path, Any] = {}  # loaded LoRA handles, by resolved path
        self._active_adapter: tuple[Path, float] | None = None
        self._model_sha256: str | None = None

    @property
    def loaded(self) -> bool:
        """True once the model is in memory."""
        return self._llm is not None

    def load(self) -> None:
        """Load the model (idempotent).

        Raises:
            ModelLoadError: the file is missing, not a GGUF, or llama.cpp refused it (its own error
                text is included).
        """
        with self.lock:
            if self._llm is not None:
                return
            check_gguf_header(self.model_path)
            import llama_cpp

            if self.weights_cache is not None:
                from desktop_rag.core.generate.llm_weights import weights_for_inference

                self.load_path = weights_for_inference(
                    self.model_path, self.weights_cache, self.threads
                )
            try:
                llm = self._open(llama_cpp, self.load_path)
            except ModelLoadError:
                if self.load_path == self.model_path:
                    raise
                log.warning("the F16 copy %s did not load; using the original", self.load_path)
                self.load_path = self.model_path
                llm = self._open(llama_cpp, self.model_path)
            install_log_capture()  # Llama() may reset the callback; keep ours
            self._llm = llm
            self._init_template()

    def _open(self, llama_cpp: Any, path: Path) -> Any:
        install_log_capture()
        clear_log()
        try:
            return open_llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                n_gpu_layers=0,
                use_mmap=True,
                verbose=False,
            )
        except Exception as exc:
            detail = recent_errors() or str(exc)
            raise ModelLoadError(
                f"llama.cpp could not load {self.model_path.name}: {detail}"
            ) from None

    def _init_template(self) -> None:
        meta = self._llm.metadata or {}
        self._template = compile_template(meta.get("tokenizer.chat_template"))
        self._bos = self._token_text(self._llm.token_bos())
        self._eos = self._token_text(self._llm.token_eos())

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt string for ``messages`` by the model's chat template (sandboxed)."""
        from jinja2.exceptions import SecurityError, TemplateError

        self.load()
        try:
            return render_chat(self._template, messages, self._bos, self._eos)
        except SecurityError as exc:
            raise ModelLoadError(
                f"the model's chat template was refused as unsafe: {exc}"
            ) from None
        except TemplateError as exc:
            raise ModelLoadError(f"the model's chat template failed: {exc}") from None

    def count_tokens(self, text: str) -> int:
        """The length of ``text`` in this model's tokens."""
        self.load()
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    @property
    def context_size(self) -> int:
        """The context window in tokens (prompt + answer)."""
        self.load()
        return int(self._llm.n_ctx())

    @property
    def architecture(self) -> str | None:
        """The model's ``general.architecture`` (loads the model)."""
        self.load()
        value = (self._llm.metadata or {}).get("general.architecture")
        return str(value) if value else None

    @property
    def active_adapter(self) -> tuple[Path, float] | None:
        """The attached adapter's path and scale, or None."""
        return self._active_adapter

    def model_sha256(self) -> str:
        """The SHA-256 of the model file (computed once, ~0.3 s per 100 MB)."""
        if self._model_sha256 is None:
            from desktop_rag.core.files import sha256_file

            self._model_sha256 = sha256_file(self.model_path)
        return self._model_sha256

    def set_adapter(self, path: Path | None, scale: float = 1.0) -> float:
        """Attach the LoRA adapter at ``path`` with LoRA ``scale`` (None, or a scale of 0: none).

        The base model stays loaded; an adapter is read from disk once and kept for fast switching.
        Returns the seconds the change took (0.0 when nothing changed).

        Raises:
            AdapterError: the file is not a valid LoRA adapter, or llama.cpp refused it for this
                model (its message is passed on, e.g. "model arch and LoRA arch mismatch" or
                "tensor ... has incorrect shape (hint: maybe wrong base model?)"). The previous
                adapter state is kept and the model stays usable.
        """
        import llama_cpp

        self.load()
        want = None if path is None or scale == 0.0 else (Path(path).resolve(), float(scale))
        with self.lock:
            if want == self._active_adapter:
                return 0.0
            t0 = time.perf_counter()
            llm = self._llm
            if want is not None and want[0] not in self._adapters:
                from desktop_rag.core.generate.adapters import read_adapter_info

                read_adapter_info(want[0])  # a clear error before llama.cpp sees the file
                clear_log()
                handle = llama_cpp.llama_adapter_lora_init(
                    llm._model.model, str(want[0]).encode("utf-8")
                )
                # A failed load returns a NULL pointer object, which is not None: test truthiness.
                if not handle:
                    detail = recent_errors() or "unknown error"
                    raise AdapterError(
                        f"llama.cpp could not load the adapter {want[0].name}: {detail}",
                        hint="an adapter only works with the base model it was trained for",
                    )
                self._adapters[want[0]] = handle
            if want is None:
                rc = llama_cpp.llama_set_adapters_lora(llm.ctx, None, 0, None)
            else:
                arr = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(self._adapters[want[0]])
                scales = (ctypes.c_float * 1)(want[1])
                rc = llama_cpp.llama_set_adapters_lora(llm.ctx, arr, 1, scales)
            if rc != 0:
                raise AdapterError(f"llama.cpp could not attach the adapter (code {rc})")
            # The cached prompt prefix was computed under the previous adapter.
            llm.reset()
            self._active_adapter = want
            return time.perf_counter() - t0

    def prefill(self, first: list[dict[str, str]], second: list[dict[str, str]]) -> int:
        """Evaluate now the prompt prefix that ``first`` and ``second`` share (the system prompt
        and the opening of the user turn that every answer has), so the next :meth:`stream`
        starts from llama.cpp's cached prefix and evaluates only its own sources and question.
        Returns the number of prefix tokens evaluated (0 when the two share none)."""
        a = self.render(first)
        b = self.render(second)
        with self.lock:
            llm = self._llm
            ids_a = llm.tokenize(a.encode("utf-8"), add_bos=False, special=True)
            ids_b = llm.tokenize(b.encode("utf-8"), add_bos=False, special=True)
            n = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y),
                     min(len(ids_a), len(ids_b)))  # fmt: skip
            n = min(n, len(ids_a) - 1)  # llama.cpp re-evaluates at least the last prompt token
            if n <= 0:
                return 0
            llm.reset()
            llm.eval(ids_a[:n])
            return n

    def stream(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int = 384,
        temperature: float = 0.2,
        cancel: CancelToken | None = None,
        adapter: Path | None = None,
        adapter_scale: float = 1.0,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Generate an answer token by token (text pieces); stops within one token of ``cancel``.

        ``seed`` fixes the sampler's random seed (None: llama.cpp's default) so sampled answers
        (``temperature`` > 0) can be reproduced.

        ``adapter`` (a GGUF LoRA file) is attached at ``adapter_scale`` for this generation, or
        detached when None (see :meth:`set_adapter`, whose errors this raises before generating).
        Sets :attr:`last_stats` when done (also when cancelled).
        """
        import llama_cpp

        prompt = self.render(messages)
        with self.lock:
            switch_s = self.set_adapter(adapter, adapter_scale)
            llm = self._llm
            if self._applied_threads != self.threads:
                llama_cpp.llama_set_n_threads(llm.ctx, self.threads, self.threads)
                self._applied_threads = self.threads
            prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
            room = self.context_size - len(prompt_ids) - 1
            max_tokens = max(16, min(max_tokens, room))
            stop_flag = cancel or CancelToken()
            criteria = llama_cpp.StoppingCriteriaList([lambda ids, logits: stop_flag.cancelled])
            t0 = time.perf_counter()
            t_first = 0.0
            n = 0
            try:
                for part in llm.create_completion(
                    prompt_ids,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_p=0.9,
                    repeat_penalty=1.1,
                    stream=True,
                    stopping_criteria=criteria,
                    seed=seed,
                    stop=[s for s in (self._eos, "<|im_end|>", "<|endoftext|>") if s],
                ):
                    text = part["choices"][0]["text"]
                    n += 1
                    if n == 1:
                        t_first = time.perf_counter() - t0
                    if text:
                        yield text
                    if stop_flag.cancelled:
                        break
            finally:
                total = time.perf_counter() - t0
                rate = (n - 1) / (total - t_first) if n > 1 and total > t_first else 0.0
                active = self._active_adapter
                self.last_stats = GenerationStats(
                    len(prompt_ids),
                    n,
                    t_first or total,
                    rate,
                    active[0].stem if active else None,
                    switch_s,
                )

    def close(self) -> None:
        """Free the model."""
        with self.lock:
            if self._llm is not None:
                self._llm.close()  # loaded adapters are freed with the model
                self._llm = None
                self._adapters.clear()
                self._active_adapter = None
