"""The API application: OpenAI-shaped endpoints answering from the indexed documents.

Endpoints (every one but ``/health`` needs ``Authorization: Bearer TOKEN``; a missing or wrong
token gets 401):

- ``POST /v1/chat/completions``: the last user message is the question, answered by
  :meth:`Engine.ask <desktop_rag.core.engine.Engine.ask>` (earlier messages are not used: each
  answer comes from the documents alone). The response is OpenAI's ``chat.completion`` (or, with
  ``"stream": true``, server-sent ``chat.completion.chunk`` events ending in ``data: [DONE]``);
  ``message.content`` is ``Answer.text``, what a reader gets after the claim check. Extra
  request fields: ``collections`` (collection ids: the search is scoped to them) and
  ``include_sources`` (PrivateGPT's field). ``model``, ``temperature``, ``max_tokens`` and other
  sampling fields are accepted and ignored: the settings file decides (greedy decoding and
  ``max_answer_tokens``).
- ``POST /v1/search`` ``{"query", "k", "collections"}``: retrieval only, hits with ``file``,
  ``page`` (1-based, null without pages), ``start``/``end`` (character offsets in the page
  text), ``text``, ``score``.
- ``GET /v1/collections``: the indexed folders with their counts.
- ``POST /v1/embeddings``: the bundled embedding model (384 dimensions, unit norm), OpenAI's
  shape, ``encoding_format`` ``float`` or ``base64`` (little-endian float32, what the openai
  client asks for by default).
- ``GET /v1/models``: the one model answering, ``desktop-rag`` (its ``llm`` field names the
  GGUF behind it).
- ``GET /health``: public; 503 ``{"status": "loading"}`` while the models load (they are warmed
  in a background thread when the server starts), 200 ``{"status": "ready"}`` after, 503
  ``{"status": "error", "error"}`` when they could not be loaded.

**Streamed text against checked text.** The model's pieces are streamed as ``delta.content`` as
they are written, but the claim check runs only on the whole answer and may change it (the
citations cleaned, or, when the answer fails the check, the whole text replaced by a statement
that it failed and the quoted evidence). The stream is honest about it: when ``Answer.text`` is
not exactly the concatenated pieces, one more content delta follows, a bracketed note
(:data:`WITHDRAWN_NOTE` when the answer failed the check, :data:`CHECKED_NOTE` when it passed
but its text changed, e.g. a citation attributed) and then ``Answer.text`` whole, so a client
that only concatenates deltas shows the checked answer, marked as such, after the unchecked
one. The chunk with ``finish_reason`` always carries three extension fields:
``checked_answer`` (``Answer.text``), ``replaced`` (whether it differs from the streamed pieces)
and ``grounded`` (whether the model's answer passed the check; null when no model ran), so a
client that knows them can show ``checked_answer`` alone. With ``answer_style`` ``"evidence"``
(no model) and for an abstention there is one piece, the final text itself.

**Sources** (only with ``"include_sources": true``): ``sources`` is the list of the numbered
sources given to the model, as ``ask --json``'s ``citations`` (``n``, ``file``, ``page``,
``start``, ``end``, ``text``, ``score``, ``cited``) each with its own ``evidence`` (the sentences
quoted from it: ``text``, ``start``, ``end``, ``score``) and ``checks`` (the checked claims of
the answer that name it among their ``sources``); beside it ``answer_check`` holds the whole check: ``abstained``, ``grounded``,
``generated``, ``backend``, ``evidence``, ``checks`` (unsupported claims too), ``timings`` and
``warnings``, as in ``ask --json``. Non-streamed they are top-level fields of the response; in
a stream they come once, in the last event before ``data: [DONE]`` (a chunk with empty
``choices``), never per delta.

**Queue.** Generation requests (chat completions) are admitted up to ``queue_limit`` at a time,
running and waiting together; the model's owner thread serves them one at a time in arrival
order, and a waiting request never cuts a running one short. One over the limit gets 503 with
``Retry-After``. A client that disconnects (mid-stream, or while waiting) cancels its request
(:meth:`CancelToken.cancel <desktop_rag.core.types.CancelToken.cancel>`), which frees the model
at its next token. Engine work runs in this app's own worker threads, never on the event loop.

**Errors** are OpenAI's ``{"error": {"message", "type", "code"}}``: a bad body 400, a
:class:`~desktop_rag.core.errors.UserError` 400 (nothing indexed, a bad adapter), a
:class:`~desktop_rag.core.errors.ModelLoadError` 500, a closed model or the models still loading
503, anything else 500 (logged). In a stream that has started, an error is one ``data:
{"error": ...}`` event, then ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from desktop_rag.core.errors import ModelLoadError, UserError
from desktop_rag.core.generate.owner import ModelClosedError, Priority
from desktop_rag.core.types import Answer, CancelToken

if TYPE_CHECKING:
    from desktop_rag.core.engine import Engine

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The model id clients see (``GET /v1/models``, ``model`` of every response).
MODEL_ID: Final = "desktop-rag"
#: Put before ``Answer.text`` when the checked answer passed the check but differs from what
#: was streamed (its citations cleaned or attributed; see the module docstring).
CHECKED_NOTE: Final = "\n\n[desktop-rag: the answer as checked against your documents:]\n\n"
#: Put before ``Answer.text`` when the streamed answer failed the check and was replaced.
WITHDRAWN_NOTE: Final = (
    "\n\n[desktop-rag: the text above is withdrawn: it did not pass the check against your "
    "documents.]\n\n"
)
#: Seconds a client is told to wait (``Retry-After``) when the queue is full or models load.
RETRY_AFTER_S: Final = 2
#: The most inputs one ``/v1/embeddings`` request may embed.
MAX_EMBED_INPUTS: Final = 2048
#: Seconds between two checks that a non-streamed request's client is still connected.
DISCONNECT_POLL_S: Final = 0.25


# -- errors ------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered as OpenAI's error JSON with HTTP ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        """``{"error": {"message", "type", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}

    def response(self) -> JSONResponse:
        """The error as a JSON response."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error(exc: BaseException) -> ApiError:
    """What an exception of the engine becomes: a :class:`UserError` 400 (a
    :class:`ModelLoadError` 500, a :class:`ModelClosedError` 503), anything else 500 (logged
    with its traceback; the client gets one line)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ModelClosedError):
        return ApiError(503, str(exc), "server_error", "model_closed",
                        {"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
    if isinstance(exc, ModelLoadError):
        return ApiError(500, str(exc), "server_error", "model_load_error")
    if isinstance(exc, UserError):
        return ApiError(400, str(exc), "invalid_request_error", type(exc).__name__)
    log.error("unexpected error in the API", exc_info=exc)
    return ApiError(500, f"internal error ({type(exc).__name__}: {exc}); see the log file",
                    "server_error", "internal_error")  # fmt: skip


class ClientGone(Exception):
    """The client of a request disconnected while it waited (its answer is cancelled)."""


def _queue_full() -> ApiError:
    return ApiError(503, "the model is busy: too many requests are waiting for it; retry later",
                    "server_error", "queue_full", {"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip


# -- request bodies ----------------------------------------------------------------------------


class _Body(BaseModel):
    """A request body: unknown fields (OpenAI's many options) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")


class ChatMessage(_Body):
    """One message: ``content`` a string or OpenAI's list of parts (text parts are read)."""

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text (its text parts joined)."""
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "\n".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


class StreamOptions(_Body):
    """OpenAI's ``stream_options``: ``include_usage`` adds a usage chunk at the end."""

    include_usage: bool = False


class ChatRequest(_Body):
    """``POST /v1/chat/completions``."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    include_sources: bool = False
    collections: list[int] | None = None

    def question(self) -> str:
        """The last user message's text, stripped.

        Raises:
            ApiError: there is no user message, or the last one is empty (400).
        """
        users = [m for m in self.messages if m.role == "user"]
        text = users[-1].text().strip() if users else ""
        if not text:
            raise ApiError(
                400, "the last user message is empty: it is the question", code="empty_question"
            )
        return text


class SearchRequest(_Body):
    """``POST /v1/search``."""

    query: str = Field(min_length=1)
    k: int | None = Field(default=None, ge=1, le=100)
    collections: list[int] | None = None


class EmbeddingsRequest(_Body):
    """``POST /v1/embeddings``."""

    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"


# -- shared state ------------------------------------------------------------------------------


class Admission:
    """The bounded queue of generation requests: a count of those admitted (running and
    waiting for the model) that never exceeds ``limit``."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the queue limit must be at least 1")
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        """Requests admitted now."""
        with self._lock:
            return self._count

    def try_enter(self) -> bool:
        """Admit one more request if under the limit; False (nothing counted) if not."""
        with self._lock:
            if self._count >= self.limit:
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        """One admitted request ended."""
        with self._lock:
            self._count = max(0, self._count - 1)


class _Readiness:
    """Whether the models are loaded: ``status`` "loading", "ready" or "error" (with ``error``)."""

    def __init__(self) -> None:
        self.status = "loading"
        self.error: str | None = None
        self.thread: threading.Thread | None = None

    def warm(self, engine: Engine) -> None:
        """Load the engine's models in a background thread (:meth:`Engine.warm_up`)."""

        def run() -> None:
            try:
                engine.warm_up()
            except Exception as exc:
                log.error("the API could not load the models", exc_info=exc)
                self.error = str(exc)
                self.status = "error"
            else:
                self.status = "ready"

        self.thread = threading.Thread(target=run, name="api-warm-up")
        self.thread.start()

    def require_loaded(self) -> None:
        """Raise a 503 while the models load (an error state lets requests meet the real error).

        Raises:
            ApiError: the models are still loading.
        """
        if self.status == "loading":
            raise ApiError(503, "the models are still loading; retry in a moment", "server_error",
                           "loading", {"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip


class _AnswerJob:
    """One :meth:`Engine.ask` run on a worker thread, its items handed to the event loop through
    an asyncio queue. It holds one admission from :meth:`start` until its thread ends."""

    def __init__(
        self,
        engine: Engine,
        question: str,
        collections: list[int] | None,
        admission: Admission,
    ) -> None:
        self.engine = engine
        self.question = question
        self.collections = collections
        self.admission = admission
        self.cancel = CancelToken()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    def start(self, executor: ThreadPoolExecutor) -> None:
        """Run the question on ``executor`` (the admission was taken by the caller: it is given
        back when the run ends, whatever way)."""
        try:
            executor.submit(self._run)
        except RuntimeError:  # the executor is shut down: the server is stopping
            self.admission.leave()
            raise ApiError(503, "the server is stopping", "server_error", "stopping") from None

    def _put(self, kind: str, value: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))

    def _run(self) -> None:
        try:
            if self.cancel.cancelled:
                self._put("end", None)
                return
            self.engine.require_indexed()
            gen = self.engine.ask(self.question, collections=self.collections,
                                  cancel=self.cancel, priority=Priority.INTERACTIVE)  # fmt: skip
            pieces = 0
            try:
                for item in gen:
                    pieces += isinstance(item, str)
                    self._put("item", item)
                    if self.cancel.cancelled:
                        break
            finally:
                close = getattr(gen, "close", None)  # a generator: stops the model's stream
                if close is not None:
                    close()
            if self.cancel.cancelled:
                log.info("answer cancelled: the client went away (or the server stops) after "
                         "%d pieces", pieces)  # fmt: skip
            self._put("end", None)
        except BaseException as exc:
            self._put("error", exc)
        finally:
            self.admission.leave()

    async def next(self, is_disconnected: Callable[[], Awaitable[bool]] | None = None) -> Any:
        """The next item of the answer (a text piece, an ``EvidenceFound``, the ``Answer``).

        ``is_disconnected``, when given, is polled while waiting; a disconnected client cancels
        the run.

        Raises:
            StopAsyncIteration: the answer is complete.
            ClientGone: ``is_disconnected`` said the client went away (the run is cancelled).
            Exception: what the engine raised.
        """
        while True:
            try:
                if is_disconnected is None:
                    kind, value = await self._queue.get()
                else:
                    kind, value = await asyncio.wait_for(self._queue.get(), DISCONNECT_POLL_S)
            except TimeoutError:
                if is_disconnected is not None and await is_disconnected():
                    self.cancel.cancel()
                    raise ClientGone() from None
                continue
            if kind == "item":
                return value
            if kind == "end":
                raise StopAsyncIteration
            raise value


# -- JSON shapes -------------------------------------------------------------------------------


def sources_json(answer: Answer) -> tuple[list[dict[str, object]], dict[str, object]]:
    """The sources extension of one answer: ``(sources, answer_check)`` (see the module
    docstring), built from :meth:`Answer.to_json` so it is what ``ask --json`` gives."""
    data = answer.to_json()
    evidence: list[dict[str, Any]] = data["evidence"]  # type: ignore[assignment]
    checks: list[dict[str, Any]] = data["checks"]  # type: ignore[assignment]
    citations: list[dict[str, Any]] = data["citations"]  # type: ignore[assignment]
    sources = []
    for c in citations:
        n = c["n"]
        quotes = [
            {k: e[k] for k in ("text", "start", "end", "score")} for e in evidence if e["n"] == n
        ]
        supports = [ch for ch in checks if n in ch["sources"]]
        sources.append({**c, "evidence": quotes, "checks": supports})
    check = {
        "abstained": data["abstained"],
        "grounded": data["grounded"],
        "generated": data["generated"],
        "backend": data.get("backend"),
        "evidence": evidence,
        "checks": checks,
        "timings": data["timings"],
        "warnings": data.get("warnings", []),
    }
    return sources, check


def _usage(answer: Answer | None) -> dict[str, int]:
    prompt = answer.timings.prompt_tokens if answer else 0
    completion = answer.timings.completion_tokens if answer else 0
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _finish_reason(engine: Engine, answer: Answer) -> str:
    """ "length" when the model ran out of answer tokens and its text was kept, else "stop"."""
    full = answer.timings.completion_tokens >= engine.settings.max_answer_tokens
    return "length" if full and answer.generated is not None and answer.grounded else "stop"


# -- the app -----------------------------------------------------------------------------------


def create_app(engine: Engine, token: str, queue_limit: int = 4) -> FastAPI:
    """The API over ``engine``, guarded by the bearer ``token``, admitting at most
    ``queue_limit`` generation requests (running and waiting) at a time.

    Its lifespan warms the engine in a background thread at start (``/health`` answers 503
    meanwhile) and, at shutdown, cancels the answers still running and joins its worker threads
    and the warm-up. The engine is the caller's: the app never closes it.

    Raises:
        ValueError: ``token`` is empty or ``queue_limit`` under 1.
    """
    if not token:
        raise ValueError("the API token is empty")
    admission = Admission(queue_limit)
    readiness = _Readiness()
    answers = ThreadPoolExecutor(max_workers=queue_limit, thread_name_prefix="api-answer")
    light = ThreadPoolExecutor(max_workers=2, thread_name_prefix="api-worker")
    jobs: set[_AnswerJob] = set()
    expected = token.encode("utf-8")
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        readiness.warm(engine)
        try:
            yield
        finally:
            for job in list(jobs):
                job.cancel.cancel()
            await asyncio.to_thread(_shutdown, answers, light, readiness)

    app = FastAPI(title="desktop-rag", version="1", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)  # fmt: skip
    app.state.admission = admission
    app.state.readiness = readiness

    async def off_loop(fn: Callable[[], T]) -> T:
        """Run engine work on a worker thread; its errors become :class:`ApiError`."""
        try:
            return await asyncio.get_running_loop().run_in_executor(light, fn)
        except ApiError:
            raise
        except RuntimeError as exc:
            if "shutdown" in str(exc):
                raise ApiError(503, "the server is stopping", "server_error", "stopping") from None
            raise api_error(exc) from exc
        except Exception as exc:
            raise api_error(exc) from exc

    async def authorize(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8"), expected
        ):
            raise ApiError(401, "a valid API token is required: Authorization: Bearer TOKEN "
                           "(`desktop-rag serve --show-token` prints it)",
                           "invalid_request_error", "invalid_api_key",
                           {"WWW-Authenticate": "Bearer"})  # fmt: skip

    @app.exception_handler(ApiError)
    async def on_api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def on_bad_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
            for e in exc.errors()
        )
        return ApiError(400, f"invalid request: {problems}", code="invalid_request").response()

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return ApiError(exc.status_code, str(exc.detail), "invalid_request_error", code,
                        dict(exc.headers or {})).response()  # fmt: skip

    @app.get("/health")
    async def health() -> JSONResponse:
        body: dict[str, object] = {"status": readiness.status}
        if readiness.error:
            body["error"] = readiness.error
        return JSONResponse(body, status_code=200 if readiness.status == "ready" else 503)

    guarded = [Depends(authorize)]

    @app.get("/v1/models", dependencies=guarded)
    async def models() -> dict[str, object]:
        llm = await off_loop(lambda: engine.llm_model.name)
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": created,
                                            "owned_by": "desktop-rag", "llm": llm}]}  # fmt: skip

    @app.get("/v1/collections", dependencies=guarded)
    async def collections() -> dict[str, object]:
        rows = await off_loop(engine.store.collections)
        data = [{"id": r.id, "name": r.name, "root": r.root, "files": r.files,
                 "indexed": r.indexed, "problems": r.problems, "chunks": r.chunks}
                for r in rows]  # fmt: skip
        return {"object": "list", "data": data}

    @app.post("/v1/search", dependencies=guarded)
    async def search(body: SearchRequest) -> dict[str, object]:
        readiness.require_loaded()

        def run() -> dict[str, object]:
            engine.require_indexed()
            result = engine.search(body.query, body.k, collections=body.collections)
            hits = [{"file": h.path, "page": h.page, "start": h.start, "end": h.end,
                     "text": h.text, "context": h.context, "score": round(h.score, 6)}
                    for h in result.hits]  # fmt: skip
            return {"object": "list", "data": hits, "retrieval_ms": round(result.retrieval_ms, 3)}

        return await off_loop(run)

    @app.post("/v1/embeddings", dependencies=guarded)
    async def embeddings(body: EmbeddingsRequest) -> dict[str, object]:
        readiness.require_loaded()
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts or len(texts) > MAX_EMBED_INPUTS:
            raise ApiError(
                400, f"input must hold 1 to {MAX_EMBED_INPUTS} strings", code="invalid_input"
            )

        def run() -> tuple[Any, int, str]:
            embedder = engine.embedder
            vectors = embedder.embed(texts)
            return vectors, _count_tokens(engine, texts), embedder.identity.name

        vectors, tokens, name = await off_loop(run)
        data = []
        for i, row in enumerate(vectors):
            value: object = (
                base64.b64encode(np.asarray(row, "<f4").tobytes()).decode("ascii")
                if body.encoding_format == "base64"
                else [float(x) for x in row]
            )
            data.append({"object": "embedding", "index": i, "embedding": value})
        return {"object": "list", "data": data, "model": name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}  # fmt: skip

    @app.post("/v1/chat/completions", dependencies=guarded, response_model=None)
    async def chat_completions(body: ChatRequest, request: Request) -> Response | dict[str, object]:
        question = body.question()
        readiness.require_loaded()
        if not admission.try_enter():
            raise _queue_full()
        job = _AnswerJob(engine, question, body.collections, admission)
        job.start(answers)
        jobs.add(job)
        job_id = f"chatcmpl-{uuid.uuid4().hex}"
        if not body.stream:
            try:
                return await _complete(engine, job, job_id, body, request)
            except ClientGone:  # nobody reads the answer: the status is for the log alone
                return Response(status_code=499)
            finally:
                job.cancel.cancel()  # ended (a no-op) or abandoned: the model is freed either way
                jobs.discard(job)
        # The first item (the evidence, after retrieval: well under a second) comes before the
        # response starts, so an error there (nothing indexed, a bad collection) is a status.
        try:
            first = await job.next(request.is_disconnected)
        except StopAsyncIteration:
            first = None
        except BaseException as exc:
            job.cancel.cancel()
            jobs.discard(job)
            if isinstance(exc, ClientGone):
                return Response(status_code=499)
            if not isinstance(exc, Exception):  # cancelled: the server stops
                raise
            raise api_error(exc) from exc
        return _event_stream(_stream(engine, job, first, job_id, body, jobs))

    return app


def _shutdown(
    answers: ThreadPoolExecutor, light: ThreadPoolExecutor, readiness: _Readiness
) -> None:
    """Join the app's threads: the answers (cancelled first), the light work, the warm-up."""
    answers.shutdown(wait=True, cancel_futures=True)
    light.shutdown(wait=True, cancel_futures=True)
    if readiness.thread is not None:
        readiness.thread.join()


def _count_tokens(engine: Engine, texts: list[str]) -> int:
    """The embedding model's word pieces in ``texts`` (what it reads, before its truncation)."""
    from desktop_rag.core.ingest.chunking import load_tokenizer

    tokenizer = load_tokenizer(str(engine.embedder.model_dir))
    return sum(len(e.ids) for e in tokenizer.encode_batch(texts))


async def _complete(
    engine: Engine, job: _AnswerJob, job_id: str, body: ChatRequest, request: Request
) -> dict[str, object]:
    """The non-streamed response: the whole answer, then one ``chat.completion``."""
    answer: Answer | None = None
    while True:
        try:
            item = await job.next(request.is_disconnected)
        except StopAsyncIteration:
            break
        except ClientGone:
            raise
        except Exception as exc:
            raise api_error(exc) from exc
        if isinstance(item, Answer):
            answer = item
    if answer is None:
        raise ApiError(500, "the answer ended without a result", "server_error", "no_answer")
    out: dict[str, object] = {
        "id": job_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                     "logprobs": None, "finish_reason": _finish_reason(engine, answer)}],
        "usage": _usage(answer),
    }  # fmt: skip
    if body.include_sources:
        out["sources"], out["answer_check"] = sources_json(answer)
    return out


def _event_stream(events: AsyncIterator[str]) -> Response:
    """Server-sent events (``data: ...`` lines), as OpenAI streams them; a disconnected client
    ends the iteration (its generator is closed, which cancels the answer)."""
    from sse_starlette.sse import EventSourceResponse

    return EventSourceResponse(events, sep="\n", ping=15, headers={"Cache-Control": "no-cache"})


async def _stream(
    engine: Engine,
    job: _AnswerJob,
    first: Any,
    job_id: str,
    body: ChatRequest,
    jobs: set[_AnswerJob],
) -> AsyncIterator[str]:
    """The events of a streamed answer (see the module docstring for their order)."""
    created = int(time.time())

    def chunk(delta: dict[str, object], finish: str | None = None, **extra: object) -> str:
        return json.dumps({"id": job_id, "object": "chat.completion.chunk", "created": created,
                           "model": MODEL_ID, "choices": [{"index": 0, "delta": delta,
                           "logprobs": None, "finish_reason": finish}], **extra},
                          ensure_ascii=False)  # fmt: skip

    done = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        streamed: list[str] = []
        answer: Answer | None = None
        error: ApiError | None = None
        item = first
        while True:
            if isinstance(item, str):
                streamed.append(item)
                yield chunk({"content": item})
            elif isinstance(item, Answer):
                answer = item
            try:
                item = await job.next()
            except StopAsyncIteration:
                break
            except Exception as exc:
                error = api_error(exc)
                break
        if error is not None or answer is None:
            error = error or ApiError(500, "the answer ended without a result", "server_error")
            yield json.dumps(error.body(), ensure_ascii=False)
        else:
            replaced = answer.text != "".join(streamed)
            if replaced:
                note = WITHDRAWN_NOTE if answer.grounded is False else CHECKED_NOTE
                yield chunk({"content": note + answer.text})
            yield chunk({}, _finish_reason(engine, answer), checked_answer=answer.text,
                        replaced=replaced, grounded=answer.grounded)  # fmt: skip
            if body.stream_options and body.stream_options.include_usage:
                yield json.dumps({"id": job_id, "object": "chat.completion.chunk",
                                  "created": created, "model": MODEL_ID, "choices": [],
                                  "usage": _usage(answer)})  # fmt: skip
            if body.include_sources:
                sources, check = sources_json(answer)
                yield json.dumps({"id": job_id, "object": "chat.completion.chunk",
                                  "created": created, "model": MODEL_ID, "choices": [],
                                  "sources": sources, "answer_check": check},
                                 ensure_ascii=False)  # fmt: skip
        done = True
        yield "[DONE]"
    finally:
        if not done:  # the client went away (or the server stops): free the model
            job.cancel.cancel()
        jobs.discard(job)


def iter_sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data`` payloads of a server-sent event stream's lines (comments and other fields
    skipped; multi-line data joined): a helper for clients and tests reading the raw stream."""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)
