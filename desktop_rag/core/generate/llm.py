"""Local generation with llama-cpp-python (GGUF models on the CPU).

One :class:`LocalLLM` owns one ``Llama``. A ``Llama`` is not thread-safe, so it is used by one
thread only: a :class:`~desktop_rag.core.generate.owner.ModelOwner` started when the model
loads. Every method that needs llama.cpp (loading, tokenizing, switching adapters, prefilling,
generating, closing) hands the owner a request and waits for its result or reads its stream of
tokens; any thread may call them, at once. Rendering the chat template needs no llama.cpp and
runs on the caller's thread. Requests carry a :class:`~desktop_rag.core.generate.owner.Priority`:
a background generation (a summary step) is parked between two tokens while an interactive one
runs, and resumes afterwards (see the owner's module for the scheduling).

- The chat template comes from the GGUF (``tokenizer.chat_template``) and is rendered by us in
  Jinja2's ``ImmutableSandboxedEnvironment`` (template injection from GGUF metadata was
  CVE-2024-34359); models without a template get ChatML.
- ``n_threads`` and ``n_threads_batch`` are always set explicitly: llama.cpp and torch must not
  fight for the same cores (measured: with one of two cores busy, 2 llama.cpp threads fell to
  1.3 tokens/s against 73.7 with 1 thread).
- llama-cpp-python hides llama.cpp's log when ``verbose=False``; we install a log callback that
  keeps the last messages, so a failed load tells the user why.
- Generation is our own token loop over ``Llama.eval`` and llama-cpp-python's sampler chain
  (the chain ``create_completion`` builds: repetition penalty, top-k 40, top-p, min-p 0.05,
  temperature; greedy at temperature 0), not ``create_completion``: the prompt is evaluated in
  chunks of :data:`EVAL_CHUNK` tokens and each token is one step, so cancel is honoured between
  two chunks or tokens and a parked generation keeps its sampler (random state, penalties). Before
  every token the loop compares the tokens in llama.cpp's KV cache with its own and evaluates
  only what is missing: the prefix cache of the previous prompt, and the resume after another
  request used the context, are the same code. It uses three private parts of llama-cpp-python
  0.3 (``Llama._init_sampler``, ``Llama._ctx``, ``Llama._model``; checked in the tests).
- LoRA adapters are attached through the low-level API (``llama_adapter_lora_init`` and
  ``llama_set_adapters_lora`` on the live context), never ``Llama(lora_path=...)``: in
  llama-cpp-python 0.3.36 that path checks a failed load's NULL pointer with ``is None``, so a bad
  file passes and the process crashes at the first token; it also turns memory-mapping off. Loaded
  adapters are kept, so switching is a pointer swap; after any change the cached prompt prefix
  (computed under the old adapter) is discarded with ``reset()``. A generation names its adapter
  and re-attaches it before each token if a request served in between attached another.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from desktop_rag.core.errors import AdapterError, ModelLoadError, UserError
from desktop_rag.core.generate.chat_template import compile_template, render_chat
from desktop_rag.core.generate.gguf import check_gguf_header
from desktop_rag.core.generate.native import (
    clear_log,
    install_log_capture,
    open_llama,
    recent_errors,
)
from desktop_rag.core.generate.owner import STEP, ModelClosedError, ModelOwner, Priority, Stream
from desktop_rag.core.types import CancelToken

if TYPE_CHECKING:
    from desktop_rag.core.generate.constrained import AllowedFigures, VocabDigits

log = logging.getLogger(__name__)

#: Tokens of prompt evaluated between two cancel checks. Fixed, not sized by the measured
#: speed: llama.cpp's results depend (in the last bits) on how a prompt is split into batches,
#: so a split that varied with timing made greedy answers differ between runs.
EVAL_CHUNK: Final = 32


def default_threads() -> int:
    """The number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class GenerationStats:
    """Timings of one generation: time to first token (s, from the request to the first token
    generated, waiting for the model included), tokens, tokens/s after the first, the adapter in
    use (file stem, None for none) and the seconds spent switching to it (0 if it was already
    attached)."""

    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    tokens_per_s: float
    adapter: str | None = None
    adapter_switch_s: float = 0.0


@dataclass(frozen=True)
class StreamStarted:
    """The first event of a generation: the prompt is tokenized and its adapter attached."""

    prompt_tokens: int
    adapter: str | None
    switch_s: float


@dataclass(frozen=True)
class StreamToken:
    """One generated token: its text (may be empty: part of a character, or held back as the
    possible start of a stop string), the count so far and when it was sampled."""

    text: str
    n: int
    t: float


class _StatsSink(Protocol):
    """What keeps the stats of its last generation (:class:`LocalLLM`, the server backend)."""

    last_stats: GenerationStats | None


class TokenStream(Iterator[str]):
    """The text pieces of one generation, as :meth:`LocalLLM.stream` returns them.

    :attr:`stats` is set when the iteration ends (also when cancelled or closed early).
    :meth:`close` (or dropping the object) stops the generation.
    """

    def __init__(
        self, llm: _StatsSink, stream: Stream[StreamStarted | StreamToken], t_submit: float
    ) -> None:
        self._llm = llm
        self._stream = stream
        self._t_submit = t_submit
        self._started: StreamStarted | None = None
        self._first: StreamToken | None = None
        self._last: StreamToken | None = None
        self.stats: GenerationStats | None = None

    def __next__(self) -> str:
        while True:
            try:
                event = next(self._stream)
            except BaseException:
                self._finish()
                raise
            if isinstance(event, StreamStarted):
                self._started = event
                continue
            if self._first is None:
                self._first = event
            self._last = event
            if event.text:
                return event.text

    def _finish(self) -> None:
        if self.stats is not None:
            return
        started, first, last = self._started, self._first, self._last
        if started is None:
            return  # never started (an error before the first token, or cancelled while queued)
        n = last.n if last else 0
        ttft = (first.t if first else time.perf_counter()) - self._t_submit
        span = last.t - first.t if first and last else 0.0
        rate = (n - 1) / span if n > 1 and span > 0 else 0.0
        self.stats = GenerationStats(started.prompt_tokens, n, ttft, rate, started.adapter,
                                     started.switch_s)  # fmt: skip
        self._llm.last_stats = self.stats

    def close(self) -> None:
        """Stop the generation (the owner drops it at its next token) and set :attr:`stats`."""
        self._stream.close()
        self._finish()

    def __del__(self) -> None:
        self._stream.close()


class LocalLLM:
    """A GGUF chat model, loaded lazily; its ``Llama`` is used only by its owner thread."""

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
        self._owner_lock = threading.Lock()  # starts and stops the owner; never held for model work
        self._owner: ModelOwner | None = None
        self._llm: Any = None  # the Llama: touched on the owner thread only (see _model)
        self._template: Any = None
        self._bos = ""
        self._eos = ""
        self._context_size = 0
        self._metadata: dict[str, Any] = {}
        self._seeds = random.Random(0xFFFFFFFF)  # seeds of unseeded generations (owner thread)
        self.last_stats: GenerationStats | None = None  # of the last generation to end
        self._adapters: dict[Path, Any] = {}  # loaded LoRA handles, by resolved path
        self._active_adapter: tuple[Path, float] | None = None
        self._model_sha256: str | None = None
        self._digits: VocabDigits | None = None  # number tokens (figure-constrained decoding)

    @property
    def loaded(self) -> bool:
        """True once the model is in memory."""
        return self._llm is not None

    # -- the owner ----------------------------------------------------------------------------
    def _model(self) -> Any:
        """The ``Llama``; only the owner thread may use it."""
        owner = self._owner
        if owner is None or not owner.on_owner_thread():
            raise RuntimeError("the Llama is used by its owner thread only")
        if self._llm is None:
            raise ModelClosedError(self.model_path.name)
        return self._llm

    def _running_owner(self) -> ModelOwner:
        """The owner of the loaded model (loads it first).

        Raises:
            ModelLoadError: see :meth:`load`; ModelClosedError: closed meanwhile.
        """
        self.load()
        owner = self._owner
        if owner is None:
            raise ModelClosedError(self.model_path.name)
        return owner

    def load(self) -> None:
        """Load the model (idempotent); starts its owner thread.

        Raises:
            ModelLoadError: the file is missing, not a GGUF, or llama.cpp refused it (its own error
                text is included). The owner thread then ends: nothing is loaded.
        """
        if self._llm is not None:
            return
        check_gguf_header(self.model_path)  # file checks need no model (nor a thread)
        with self._owner_lock:
            if self._owner is None or self._owner.closed:
                self._owner = ModelOwner(self.model_path.name)
                # a LocalLLM dropped without close() still ends its thread
                weakref.finalize(self, self._owner.close, None, 0.0)
            owner = self._owner
        try:
            owner.call(self._load_here)
        except BaseException:
            if self._llm is None:
                with self._owner_lock:
                    if self._owner is owner:
                        self._owner = None
                owner.close()
            raise

    def _load_here(self) -> None:
        if self._llm is not None:
            return
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
        self._metadata = dict(llm.metadata or {})
        self._context_size = int(llm.n_ctx())
        self._template = compile_template(self._metadata.get("tokenizer.chat_template"))
        self._bos = _token_text(llm, llm.token_bos())
        self._eos = _token_text(llm, llm.token_eos())
        self._applied_threads = self.threads
        self._llm = llm

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

    # -- what needs no context ----------------------------------------------------------------
    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt string for ``messages`` by the model's chat template (sandboxed; loads the
        model, then runs on the caller's thread).

        Raises:
            ModelLoadError: the model did not load, or its template was refused or failed.
        """
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

    def tokenize(self, text: str) -> list[int]:
        """``text`` in this model's token ids (special tokens such as ``<|im_start|>`` parsed,
        no BOS added). Served between two tokens of a running generation."""
        owner = self._running_owner()
        data = text.encode("utf-8")
        return owner.call(
            lambda: self._model().tokenize(data, add_bos=False, special=True), light=True
        )

    def count_tokens(self, text: str) -> int:
        """The length of ``text`` in this model's tokens (see :meth:`tokenize`)."""
        return len(self.tokenize(text))

    @property
    def context_size(self) -> int:
        """The context window in tokens (prompt + answer); loads the model."""
        self.load()
        return self._context_size

    @property
    def architecture(self) -> str | None:
        """The model's ``general.architecture`` (loads the model)."""
        self.load()
        value = self._metadata.get("general.architecture")
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

    # -- requests that use the context --------------------------------------------------------
    def set_adapter(
        self, path: Path | None, scale: float = 1.0, *, priority: Priority = Priority.INTERACTIVE
    ) -> float:
        """Attach the LoRA adapter at ``path`` with LoRA ``scale`` (None, or a scale of 0: none).

        The base model stays loaded; an adapter is read from disk once and kept for fast switching.
        Waits for a running interactive generation to end. Returns the seconds the change took
        (0.0 when nothing changed).

        Raises:
            AdapterError: the file is not a valid LoRA adapter, or llama.cpp refused it for this
                model (its message is passed on, e.g. "model arch and LoRA arch mismatch" or
                "tensor ... has incorrect shape (hint: maybe wrong base model?)"). The previous
                adapter state is kept and the model stays usable.
        """
        want = _adapter_key(path, scale)
        return self._running_owner().call(lambda: self._set_adapter_here(want), priority=priority)

    def _set_adapter_here(self, want: tuple[Path, float] | None) -> float:
        import llama_cpp

        if want == self._active_adapter:
            return 0.0
        t0 = time.perf_counter()
        llm = self._model()
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

    def prefill(
        self,
        first: list[dict[str, str]],
        second: list[dict[str, str]],
        *,
        priority: Priority = Priority.INTERACTIVE,
    ) -> int:
        """Evaluate now the prompt prefix that ``first`` and ``second`` share (the system prompt
        and the opening of the user turn that every answer has), so the next :meth:`stream`
        starts from llama.cpp's cached prefix and evaluates only its own sources and question.
        Returns the number of prefix tokens evaluated (0 when the two share none)."""
        a = self.render(first).encode("utf-8")
        b = self.render(second).encode("utf-8")
        return self._running_owner().call(lambda: self._prefill_here(a, b), priority=priority)

    def _prefill_here(self, a: bytes, b: bytes) -> int:
        llm = self._model()
        ids_a = llm.tokenize(a, add_bos=False, special=True)
        ids_b = llm.tokenize(b, add_bos=False, special=True)
        n = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b, strict=False)) if x != y),
                 min(len(ids_a), len(ids_b)))  # fmt: skip
        n = min(n, len(ids_a) - 1)  # llama.cpp re-evaluates at least the last prompt token
        if n <= 0:
            return 0
        llm.reset()
        llm.eval(ids_a[:n])
        return n

    @property
    def cached_tokens(self) -> int:
        """How many tokens llama.cpp's KV cache holds now (the prefix a next prompt may reuse)."""
        return self._running_owner().call(lambda: int(self._model().n_tokens))

    def reset_cache(self) -> None:
        """Forget the cached prompt prefix: the next generation evaluates its whole prompt (for
        benchmarks of a cold start)."""
        self._running_owner().call(lambda: self._model().reset())

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
        priority: Priority = Priority.INTERACTIVE,
        figures: AllowedFigures | None = None,
    ) -> TokenStream:
        """Generate an answer token by token: an iterator of text pieces.

        Cancel (``cancel.cancel()``, or closing or dropping the iterator) ends the iteration
        within :data:`~desktop_rag.core.generate.owner.POLL_S` and the model's work at its next
        token or prompt chunk (:data:`EVAL_CHUNK` tokens). ``priority``: a background generation is
        parked between two tokens while interactive requests run (see the module docstring).

        ``seed`` fixes the sampler's random seed (None: a new one each time) so sampled answers
        (``temperature`` > 0) can be reproduced.

        ``adapter`` (a GGUF LoRA file) is attached at ``adapter_scale`` for this generation, or
        detached when None (see :meth:`set_adapter`, whose errors the iterator raises before the
        first piece). Sets :attr:`last_stats` (and the iterator's ``stats``) when done, also when
        cancelled.

        ``figures``: the numbers the answer may write (figure-constrained decoding, see
        :mod:`~desktop_rag.core.generate.constrained`); None leaves every token free.

        Raises:
            ModelLoadError: the model did not load or its chat template failed (at once);
            AdapterError, UserError (the prompt does not fit the context window),
            ModelClosedError (the model was closed meanwhile): from the iterator.
        """
        prompt = self.render(messages)
        want = _adapter_key(adapter, adapter_scale)
        owner = self._running_owner()
        t_submit = time.perf_counter()

        def job() -> Generator[object, None, None]:
            return self._generate_here(prompt, max_tokens, temperature, want, seed, figures)

        return TokenStream(self, owner.stream(job, priority=priority, cancel=cancel), t_submit)

    def _generate_here(
        self,
        prompt: str,
        max_tokens: int,
        temperature: float,
        want: tuple[Path, float] | None,
        seed: int | None,
        figures: AllowedFigures | None = None,
    ) -> Generator[object, None, None]:
        """The generation itself, on the owner thread: yields one :class:`StreamStarted`, then a
        :class:`StreamToken` per token (:data:`STEP` between chunks of prompt evaluation)."""
        import llama_cpp
        import numpy as np

        llm = self._model()
        switch_s = self._set_adapter_here(want)
        if self._applied_threads != self.threads:
            llama_cpp.llama_set_n_threads(llm.ctx, self.threads, self.threads)
            self._applied_threads = self.threads
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        room = self._context_size - len(ids) - 1
        if room < 1:
            raise UserError(
                f"the prompt ({len(ids)} tokens) does not fit the model's context window "
                f"({self._context_size} tokens)",
                hint="choose a larger context size in the settings, or fewer sources",
            )
        max_tokens = max(1, min(max_tokens, room))
        yield StreamStarted(len(ids), want[0].stem if want else None, switch_s)
        llm.set_seed(seed if seed is not None else self._seeds.randint(0, 2**32 - 1))
        sampler = llm._init_sampler(
            top_k=40, top_p=0.9, min_p=0.05, temp=temperature, repeat_penalty=1.1
        )
        vocab = llm._model.vocab
        constraint = None
        if figures is not None:
            from desktop_rag.core.generate.constrained import FigureConstraint

            constraint = FigureConstraint(figures.figures, figures.n_sources, self._vocab_digits())
            n_vocab = constraint.vocab.n_vocab
        written = ""  # the generated text so far, held-back text included (for the constraint)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = [s for s in dict.fromkeys((self._eos, "<|im_end|>", "<|endoftext|>")) if s]
        held = ""  # text that may be the start of a stop string
        n, stopped = 0, False
        try:
            while n < max_tokens:
                yield from self._feed_here(ids, want)
                if (
                    constraint is not None
                ):  # mask llama.cpp's logits in place; the sampler reads them
                    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
                    constraint.apply(written, np.ctypeslib.as_array(ptr, shape=(n_vocab,)))
                token = sampler.sample(llm._ctx, -1)
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                ids.append(token)
                n += 1
                piece = decoder.decode(llm.detokenize([token]))
                written += piece
                text = held + piece
                text, held, stopped = _hold_stops(text, stops)
                yield StreamToken(text, n, time.perf_counter())
                if stopped:
                    break
            if not stopped:  # what was held back, and a last incomplete character
                held += decoder.decode(b"", final=True)
                if held:
                    yield StreamToken(held, n, time.perf_counter())
        finally:
            sampler.close()

    def _vocab_digits(self) -> VocabDigits:
        """The model's number tokens for figure-constrained decoding (built once, ~0.1 s for a
        49,152-token vocabulary; owner thread)."""
        if self._digits is None:
            from desktop_rag.core.generate.constrained import VocabDigits

            llm = self._model()
            texts = [
                llm.detokenize([i]).decode("utf-8", errors="replace") for i in range(llm.n_vocab())
            ]
            self._digits = VocabDigits.from_texts(texts)
        return self._digits

    def _feed_here(
        self, ids: list[int], want: tuple[Path, float] | None
    ) -> Generator[object, None, None]:
        """Make llama.cpp's context hold ``ids`` under the adapter ``want``, with the logits of
        the last token: keep the longest cached prefix (the last token is always evaluated
        again) and evaluate the rest in chunks of :data:`EVAL_CHUNK` tokens, yielding
        :data:`STEP` between them. After each step the cache is compared again: another request
        may have used the context meanwhile (a parked background generation)."""
        import numpy as np

        llm = self._model()
        chunk = EVAL_CHUNK
        while True:
            if self._active_adapter != want:  # a request served meanwhile attached another
                self._set_adapter_here(want)
            m = min(int(llm.n_tokens), len(ids) - 1)
            cached = llm.input_ids[:m]
            diff = np.flatnonzero(cached != np.asarray(ids[:m], dtype=cached.dtype))
            keep = int(diff[0]) if diff.size else m
            if keep < llm.n_tokens and not llm._ctx.kv_cache_seq_rm(-1, keep, -1):
                llm.reset()  # a model whose cache cannot be cut (recurrent): evaluate it all
                keep = 0
            llm.n_tokens = keep
            part = ids[keep : keep + chunk]
            llm.eval(part)
            if keep + len(part) == len(ids):
                return
            yield STEP

    def close(self) -> None:
        """Free the model and end its owner thread; a generation still running ends with
        :class:`~desktop_rag.core.generate.owner.ModelClosedError` and queued requests fail
        with it. The model loads again on next use."""
        with self._owner_lock:
            owner, self._owner = self._owner, None
        if owner is not None:
            owner.close(self._close_here)

    def _close_here(self) -> None:
        if self._llm is not None:
            self._llm.close()  # loaded adapters are freed with the model
            self._llm = None
            self._digits = None
            self._adapters.clear()
            self._active_adapter = None


def _adapter_key(path: Path | None, scale: float) -> tuple[Path, float] | None:
    return None if path is None or scale == 0.0 else (Path(path).resolve(), float(scale))


def _token_text(llm: Any, token: int) -> str:
    if token < 0:
        return ""
    return str(llm.detokenize([token], special=True).decode("utf-8", errors="replace"))


def _hold_stops(text: str, stops: list[str]) -> tuple[str, str, bool]:
    """Split ``text`` into what may be shown now, what is held back (it ends with the start of
    a stop string) and whether a stop string was reached (the text from it is dropped)."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    if cut >= 0:
        return text[:cut], "", True
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    return text[: len(text) - hold], text[len(text) - hold :], False
