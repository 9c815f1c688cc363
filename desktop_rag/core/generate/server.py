"""Generation on a team's inference server, through the OpenAI chat completions API.

:class:`ServerLLM` is the server backend beside the in-process :class:`~desktop_rag.core.generate.
llm.LocalLLM`, with the same interface for what the engine needs: ``load``, ``context_size``,
``count_tokens``, ``stream`` (a :class:`~desktop_rag.core.generate.llm.TokenStream`), ``prefill``,
``close``. It speaks ``POST /v1/chat/completions`` (streamed) and ``GET /v1/models`` with the
``openai`` client (v1+), which llama.cpp's ``llama-server``, llama-cpp-python's
``llama_cpp.server``, vLLM, Ollama (``:11434/v1``) and LM Studio all serve. Everything after
generation stays ours: the prompt with numbered sources, evidence first, the claim check and the
abstention.

- **One connection target.** The HTTP client gets the configured base URL and ignores the
  environment's proxy settings (``trust_env=False``), so the only host contacted is the
  server's; retries are off (a retried POST would generate twice).
- **Requests go through a model owner**, as the local model's do
  (:class:`~desktop_rag.core.generate.owner.ModelOwner`): one at a time, in priority order, a
  background summary parked between two pieces while a question is answered. The stream itself
  is read by a reader thread into a queue; the owner's step polls that queue, so cancel (Stop,
  closing the iterator) is honoured within :data:`~desktop_rag.core.generate.owner.POLL_S` even
  while the server sends nothing, and it closes the HTTP stream (the server stops generating
  when its client goes).
- **Failures are messages, not crashes.** A server that is down, slow (``timeout_s``), refuses
  the key (401/403), has no such model (404), is busy (429), fails (5xx), sends garbage or cuts
  the stream raises :class:`~desktop_rag.core.errors.BackendError` with a plain sentence; the
  engine then shows the evidence it found and that sentence. The API key is never in a message
  or a log line.
- **Token counts** are estimated (the server's tokenizer is not ours): :data:`CHARS_PER_TOKEN`
  characters a token, on the safe side, so a packed prompt fits the server's context window.
- Figure-constrained decoding needs the logits and applies in-process only; on a server the
  claim check alone guards the figures. LoRA adapters are the in-process model's too.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from desktop_rag.core.errors import BackendError
from desktop_rag.core.generate.llm import GenerationStats, StreamStarted, StreamToken, TokenStream
from desktop_rag.core.generate.owner import POLL_S, STEP, ModelClosedError, ModelOwner, Priority
from desktop_rag.core.servers import ServerConfig
from desktop_rag.core.types import CancelToken

if TYPE_CHECKING:
    from desktop_rag.core.generate.constrained import AllowedFigures

log = logging.getLogger(__name__)

#: Characters per token assumed when counting a prompt for a server's model: 3, below the ~4 of
#: English prose in BPE vocabularies (OpenAI's rule of thumb), because figures and tables take
#: more tokens; overestimating only leaves a little context unused.
CHARS_PER_TOKEN: Final = 3.0
#: Seconds to connect to the server before it counts as down.
CONNECT_TIMEOUT_S: Final = 5.0
#: Seconds :meth:`ServerLLM.close` waits for each reader thread still waiting for a reply.
READER_JOIN_S: Final = 5.0
_END: Final = object()


class ServerLLM:
    """A chat model on an OpenAI-compatible server (see the module docstring)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.model_path = Path(config.url)  # the backend's identity where a path is expected
        self.last_stats: GenerationStats | None = None
        self.threads = 0  # the server's own; kept so settings can be applied to any backend
        self._lock = threading.Lock()
        self._owner: ModelOwner | None = None
        self._client: Any = None
        self._checked = False
        self._readers: list[threading.Thread] = []  # readers still waiting after their close

    # -- what the engine reads ----------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        """True once the server answered :meth:`load`'s check."""
        return self._checked

    @property
    def context_size(self) -> int:
        """The model's context window in tokens, as configured for the server."""
        return self.config.context

    @property
    def architecture(self) -> str | None:
        """Unknown for a server's model (no GGUF header to read)."""
        return None

    @property
    def label(self) -> str:
        """How answers and status name this backend."""
        return self.config.label

    def count_tokens(self, text: str) -> int:
        """An estimate of ``text``'s length in the server model's tokens (see
        :data:`CHARS_PER_TOKEN`)."""
        return math.ceil(len(text) / CHARS_PER_TOKEN) + 1

    def prefill(self, *_messages: list[dict[str, str]]) -> int:
        """Nothing to prefill here (the server keeps its own prompt cache): 0 tokens."""
        return 0

    # -- the connection -----------------------------------------------------------------------
    def _openai(self) -> Any:
        """The ``openai.OpenAI`` client for this server (created once; no retries, no proxy
        from the environment, the configured timeouts)."""
        with self._lock:
            if self._client is None:
                import openai

                timeout = openai.Timeout(self.config.timeout_s, connect=CONNECT_TIMEOUT_S)
                self._client = openai.OpenAI(
                    base_url=self.config.url,
                    # The client insists on a key; a server without one ignores the header.
                    api_key=self.config.api_key() or "none",
                    timeout=timeout,
                    max_retries=0,
                    http_client=openai.DefaultHttpxClient(timeout=timeout, trust_env=False),
                )
            return self._client

    def _running_owner(self) -> ModelOwner:
        self.load()
        owner = self._owner
        if owner is None:
            raise ModelClosedError(self.config.name)
        return owner

    def load(self) -> None:
        """Check the server once: it answers ``GET /v1/models`` with the configured key and lists
        the configured model (idempotent once it succeeded); starts the request owner.

        Raises:
            BackendError: the server is down, refuses the key, or does not serve the model
                (the message names the models it does serve).
        """
        with self._lock:
            if self._owner is None:
                self._owner = ModelOwner(f"server {self.config.name}")
        if self._checked:
            return
        try:
            models = [m.id for m in self._openai().models.list()]
        except BackendError:
            raise
        except Exception as exc:
            raise self._error(exc) from None
        if self.config.model not in models:
            served = ", ".join(models[:10]) or "none"
            raise BackendError(
                f"the server {self.config.name} ({self.config.url}) has no model named "
                f"{self.config.model!r}; it serves: {served}",
                hint=f"add it again with --model set to one of: {served}",
            )
        self._checked = True

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
        """Generate an answer on the server, piece by piece (``stream=True``), as
        :meth:`LocalLLM.stream <desktop_rag.core.generate.llm.LocalLLM.stream>` does. ``seed``
        is sent (servers that support it reproduce sampled answers); ``adapter`` and
        ``figures`` do not apply to a server (the caller warns; see the module docstring).
        Cancel, closing or dropping the iterator closes the HTTP stream.

        Raises:
            BackendError: from :meth:`load` (at once) or from the iterator (see the module
                docstring); ModelClosedError: closed meanwhile.
        """
        del adapter, adapter_scale, figures
        owner = self._running_owner()
        prompt_tokens = sum(self.count_tokens(m.get("content", "")) for m in messages)
        request: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        if seed is not None:
            request["seed"] = seed
        t_submit = time.perf_counter()

        def job() -> Generator[object, None, None]:
            return self._generate_here(request, prompt_tokens)

        return TokenStream(self, owner.stream(job, priority=priority, cancel=cancel), t_submit)

    def _generate_here(
        self, request: dict[str, Any], prompt_tokens: int
    ) -> Generator[object, None, None]:
        """On the owner thread: open the stream, then relay what the reader thread puts in the
        queue (:data:`STEP` while it is empty, so the owner can cancel or park between polls).
        Closing the generator closes the HTTP stream and joins the reader."""
        client = self._openai()
        pieces: queue.SimpleQueue[object] = queue.SimpleQueue()
        holder: dict[str, Any] = {}
        done = threading.Event()

        def read() -> None:
            try:
                response = client.chat.completions.create(**request)
                holder["response"] = response
                if done.is_set():  # closed while connecting
                    response.close()
                    return
                http = getattr(response, "response", None)
                ctype = str(getattr(http, "headers", {}).get("content-type", ""))
                if "event-stream" not in ctype:  # an HTML page, a proxy's error, plain text
                    raise ValueError(f"a {ctype or 'reply without a content type'} instead of "
                                     "an event stream")  # fmt: skip
                for chunk in response:
                    choices = getattr(chunk, "choices", None) or []
                    if not choices:
                        continue
                    delta = getattr(choices[0], "delta", None)
                    text = getattr(delta, "content", None) if delta is not None else None
                    if text:
                        pieces.put(str(text))
                    reason = getattr(choices[0], "finish_reason", None)
                    if reason:
                        holder["finish_reason"] = reason
                pieces.put(_END)
            except BaseException as exc:  # relayed to the consumer (or dropped after close)
                pieces.put(exc)

        reader = threading.Thread(target=read, name=f"server-stream-{self.config.name}",
                                  daemon=True)  # fmt: skip
        reader.start()
        yield StreamStarted(prompt_tokens, None, 0.0)
        n = 0
        try:
            while True:
                try:
                    item = pieces.get(timeout=POLL_S)
                except queue.Empty:
                    yield STEP
                    continue
                if item is _END:
                    if n == 0 and holder.get("finish_reason") is None:
                        raise BackendError(
                            f"the server {self.config.name} ended the answer without a word",
                            hint="check the server's log",
                        )
                    return
                if isinstance(item, BaseException):
                    raise self._error(item, mid_stream=n > 0) from None
                n += 1
                yield StreamToken(str(item), n, time.perf_counter())
        finally:
            done.set()
            response = holder.get("response")
            if response is not None:
                _hang_up(response)
            reader.join(POLL_S * 10)
            if reader.is_alive():  # still waiting for the reply's headers: the timeout ends it
                with self._lock:
                    self._readers.append(reader)

    # -- errors -------------------------------------------------------------------------------
    def _error(self, exc: BaseException, *, mid_stream: bool = False) -> BackendError:
        """``exc`` (from the openai client or httpx) as a plain sentence naming the server."""
        import openai

        where = f"the server {self.config.name} ({self.config.url})"
        status = getattr(exc, "status_code", None)
        if isinstance(exc, openai.APITimeoutError):
            return BackendError(
                f"{where} did not answer within {self.config.timeout_s:g} s",
                hint="the server may be overloaded; try again, or raise its timeout",
            )
        if isinstance(exc, openai.APIConnectionError) and not mid_stream:
            return BackendError(
                f"{where} cannot be reached: is it running?",
                hint="start the server, or choose another model in Models",
            )
        if status in (401, 403):
            return BackendError(
                f"{where} refused the API key ({status})",
                hint=f"add the server again with the right --api-key-file ({self.config.name})",
            )
        if status == 404:
            return BackendError(
                f"{where} has no model {self.config.model!r} or no chat completions API (404)",
                hint="check the model name in /v1/models and that the URL ends in /v1",
            )
        if status == 429:
            return BackendError(f"{where} is busy (429 too many requests)", hint="try again")
        if isinstance(status, int):
            detail = re.sub(r"^Error code: \d+ - ", "", getattr(exc, "message", "") or str(exc))
            detail = _short(detail)
            return BackendError(f"{where} failed ({status}): {detail}")
        if mid_stream:
            return BackendError(
                f"{where} cut the answer off mid-stream", hint="the server may have stopped"
            )
        return BackendError(f"{where} sent a reply that is not the chat completions API: "
                            f"{_short(str(exc))}")  # fmt: skip

    def close(self) -> None:
        """End the request owner (a running stream is closed) and the HTTP client."""
        with self._lock:
            owner, self._owner = self._owner, None
            client, self._client = self._client, None
            readers, self._readers = self._readers, []
        if owner is not None:
            owner.close()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        for reader in readers:  # each ends by its connect or read timeout at the latest
            reader.join(READER_JOIN_S)


def _hang_up(response: Any) -> None:
    """Close a streamed reply at once: shut its socket down (a reader blocked in ``recv`` on
    another thread wakes now, not at the next byte the server sends), then close it."""
    import socket

    http = getattr(response, "response", None)  # openai's Stream wraps an httpx.Response
    extensions = getattr(http, "extensions", None) or {}
    network = extensions.get("network_stream")
    with contextlib.suppress(Exception):
        sock = network.get_extra_info("socket") if network is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
