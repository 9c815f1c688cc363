"""One thread that alone uses a model, and the queue of requests it serves.

A ``llama_cpp.Llama`` (its context, KV cache, samplers and adapters) is not thread-safe. A
:class:`ModelOwner` runs one thread, the only one that touches its model; every other thread
hands it requests and takes the results:

- **calls** (:meth:`ModelOwner.call`, :meth:`ModelOwner.submit`) run a function on the owner
  thread and return its result (or raise its exception) through a future;
- **streams** (:meth:`ModelOwner.stream`) run a generator on the owner thread one step at a time
  and pass each item it yields to the consumer through a queue of the request's own. A step is
  one generated token, or one chunk of prompt evaluation (the generator yields :data:`STEP`).

Scheduling, between two steps of a stream and between requests:

- Requests are served by :class:`Priority` (an interactive question before a background summary
  step), first come first served within one priority.
- *Light* calls (tokenizing, counting tokens: they read the vocabulary, never the context) are
  served between any two steps of a running stream, whatever its priority, so counting tokens
  never waits for an answer to finish.
- A stream submitted ``preemptible`` (background work) is parked between two steps when a
  request of a higher priority is waiting; that request runs, then the parked stream resumes
  before any later request of its own priority. It is the stream's job to find its model state
  changed when it resumes: :class:`~desktop_rag.core.generate.llm.LocalLLM`'s generations compare
  llama.cpp's cached tokens with their own before every token, so a resumed one re-evaluates
  what the interactive answer replaced (its sources and the tokens it generated so far; the
  system prompt they share stays cached). A stream that is not preemptible (an interactive
  answer) runs to its end; requests of its priority or lower, other than light calls, wait.
- Cancel: a stream's :class:`~desktop_rag.core.types.CancelToken` is checked before each step.
  The consumer's iterator returns at once when the token is set (it waits for items at most
  :data:`POLL_S` at a time), and a consumer that stops reading (closes the iterator, breaks out of
  its loop, drops it) cancels the request.

:meth:`ModelOwner.close` ends the thread: a running stream ends at its next step with
:class:`ModelClosedError`, every request still waiting fails with it, the close function runs on
the owner thread (freeing the model), and the thread is joined (bounded). The thread is not a
daemon, so it is never killed inside llama.cpp: owners still open when the interpreter exits are
closed first (through the hook :mod:`concurrent.futures` uses for its own worker threads), and an
owner whose last handle is garbage-collected ends its thread too.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from desktop_rag.core.errors import UserError
from desktop_rag.core.types import CancelToken

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest wait (s) of a stream's consumer for its next item before it checks its cancel token
#: again: the bound on how late a cancel can end the consumer's iteration.
POLL_S: Final = 0.01
#: How long (s) :meth:`ModelOwner.close` waits for the owner thread by default.
CLOSE_TIMEOUT_S: Final = 10.0
#: What a stream's generator yields between two units of work without output (a chunk of prompt
#: evaluation): a point where the owner checks cancel, serves light calls and may park the stream.
STEP: Final = object()


class Priority(enum.IntEnum):
    """Who waits for a request: lower values are served first."""

    INTERACTIVE = 0  #: a person waits for it (a question, the model loading, a style switch)
    BACKGROUND = 10  #: nobody waits for it now (a step of a whole-document summary)


class ModelClosedError(UserError):
    """The model was closed (another model was chosen, or the app is closing) before or while a
    request was served."""

    def __init__(self, name: str = "the model") -> None:
        super().__init__(
            f"{name} was closed before the request was finished",
            hint="another model was chosen or the app is closing; ask again",
        )


_ITEM, _END, _ERROR = "item", "end", "error"


@dataclass(eq=False)
class _Request:
    """One request in the owner's queue: a call (``fn`` and ``future``) or a stream (``job``,
    ``out`` and ``cancel``; ``gen`` once started)."""

    priority: int
    seq: int
    fn: Callable[[], Any] | None = None
    future: Future[Any] | None = None
    job: Callable[[], Generator[Any, None, Any]] | None = None
    out: queue.SimpleQueue[tuple[str, Any]] | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    preemptible: bool = False
    gen: Generator[Any, None, Any] | None = None

    def __lt__(self, other: _Request) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


class Stream(Iterator[T], Generic[T]):
    """The consumer's side of a stream request: iterate for the items the owner's generator
    yields. After the iteration ends normally, :attr:`result` is the generator's return value.

    Raises (from ``next``): whatever the generator raised, or :class:`ModelClosedError` when the
    owner was closed first. A set cancel token ends the iteration (no error) within
    :data:`POLL_S`.
    """

    def __init__(self, owner: ModelOwner, request: _Request) -> None:
        self._owner = owner
        self._request = request
        assert request.out is not None
        self._out = request.out
        self._done = False
        self.result: Any = None

    @property
    def cancel_token(self) -> CancelToken:
        """The request's cancel token (the caller's, or one of its own)."""
        return self._request.cancel

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        cancel = self._request.cancel
        while True:
            if cancel.cancelled:
                self._done = True
                raise StopIteration
            try:
                kind, value = self._out.get(timeout=POLL_S)
            except queue.Empty:
                if not self._owner.alive:
                    self._done = True
                    raise ModelClosedError(self._owner.name) from None
                continue
            if kind == _ITEM:
                return value  # type: ignore[no-any-return]
            self._done = True
            if kind == _END:
                self.result = value
                raise StopIteration
            raise value

    def close(self) -> None:
        """Stop reading: the request is cancelled (the owner drops it at its next step)."""
        if not self._done:
            self._done = True
            self._request.cancel.cancel()

    def __del__(self) -> None:
        self.close()


class ModelOwner:
    """One thread that alone uses a model; other threads submit requests (see the module
    docstring for the scheduling). ``name`` names the thread and the errors ("SmolLM2.gguf").

    The thread starts at once and runs until :meth:`close`.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._heap: list[_Request] = []
        self._light: deque[_Request] = deque()
        self._seq = itertools.count()
        self._closing = False
        self._finalizer: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._serve, name=f"model owner ({name})")
        _LIVE.add(self)
        self._thread.start()

    # -- what other threads call ------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """Whether the owner thread still runs (it may be finishing a close)."""
        return self._thread.is_alive()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (no new request is accepted)."""
        return self._closing

    def on_owner_thread(self) -> bool:
        """Whether the calling thread is the owner thread."""
        return threading.current_thread() is self._thread

    def submit(
        self,
        fn: Callable[[], T],
        *,
        priority: Priority = Priority.INTERACTIVE,
        light: bool = False,
    ) -> Future[T]:
        """Queue ``fn()`` to run on the owner thread; its future holds the result or exception.
        ``light``: ``fn`` reads only what no generation changes (the vocabulary), so it may run
        between two steps of a stream.

        Raises:
            ModelClosedError: the owner is closed.
        """
        future: Future[T] = Future()
        self._put(_Request(int(priority), next(self._seq), fn=fn, future=future), light)
        return future

    def call(
        self,
        fn: Callable[[], T],
        *,
        priority: Priority = Priority.INTERACTIVE,
        light: bool = False,
        timeout_s: float | None = None,
    ) -> T:
        """Run ``fn()`` on the owner thread and return its result (see :meth:`submit`); called on
        the owner thread itself, ``fn`` runs at once.

        Raises:
            whatever ``fn`` raises; ModelClosedError: the owner is closed;
            TimeoutError: no result within ``timeout_s``.
        """
        if self.on_owner_thread():
            return fn()
        return self.submit(fn, priority=priority, light=light).result(timeout_s)

    def stream(
        self,
        job: Callable[[], Generator[T | object, None, Any]],
        *,
        priority: Priority = Priority.INTERACTIVE,
        cancel: CancelToken | None = None,
        preemptible: bool | None = None,
    ) -> Stream[T]:
        """Queue a stream: ``job()`` is called on the owner thread when the request's turn
        comes and its generator is run step by step; each item it yields other than
        :data:`STEP` reaches the returned :class:`Stream`. ``preemptible`` (default: background
        priority) lets waiting requests of higher priority run between two of its steps.

        Raises:
            ModelClosedError: the owner is closed.
        """
        out: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        request = _Request(
            int(priority),
            next(self._seq),
            job=job,
            out=out,
            cancel=cancel or CancelToken(),
            preemptible=priority >= Priority.BACKGROUND if preemptible is None else preemptible,
        )
        self._put(request, light=False)
        return Stream(self, request)

    def close(
        self, finalizer: Callable[[], None] | None = None, timeout_s: float = CLOSE_TIMEOUT_S
    ) -> bool:
        """End the owner thread: a running stream stops at its next step and every waiting
        request fails with :class:`ModelClosedError`; then ``finalizer`` (freeing the model)
        runs on the owner thread, and the thread is joined for up to ``timeout_s``. Idempotent
        (a later call's ``finalizer`` is ignored). Returns whether the thread has ended (False on
        timeout, or when called on the owner thread itself, which ends after its current
        request)."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._finalizer = finalizer
            self._cond.notify_all()
        if self.on_owner_thread():
            return False
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("the model owner thread of %s did not end in %.0f s", self.name, timeout_s)
            return False
        return True

    # -- the owner thread ------------------------------------------------------------------
    def _put(self, request: _Request, light: bool) -> None:
        with self._cond:
            if self._closing:
                raise ModelClosedError(self.name)
            if light:
                self._light.append(request)
            else:
                heapq.heappush(self._heap, request)
            self._cond.notify_all()

    def _take(self) -> _Request | None:
        """The next request (light calls first, then by priority and order); None once closing."""
        with self._cond:
            while not (self._closing or self._light or self._heap):
                self._cond.wait()
            if self._closing:
                return None
            if self._light:
                return self._light.popleft()
            return heapq.heappop(self._heap)

    def _serve(self) -> None:
        try:
            while (request := self._take()) is not None:
                if request.job is not None:
                    self._run_stream(request)
                else:
                    self._run_call(request)
                del request  # a finished request's closures must not outlive it here
        finally:
            self._shutdown()

    @staticmethod
    def _run_call(request: _Request) -> None:
        future = request.future
        assert future is not None and request.fn is not None
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = request.fn()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _serve_light(self) -> None:
        """Run the light calls waiting now (between two steps of a stream)."""
        while True:
            with self._cond:
                if not self._light or self._closing:
                    return
                request = self._light.popleft()
            self._run_call(request)

    def _outranked(self, priority: int) -> bool:
        with self._cond:
            return bool(self._heap) and self._heap[0].priority < priority

    def _run_stream(self, request: _Request) -> None:
        out = request.out
        assert out is not None and request.job is not None
        if request.gen is None:
            if request.cancel.cancelled:
                out.put((_END, None))
                return
            try:
                request.gen = request.job()
            except BaseException as exc:
                out.put((_ERROR, exc))
                return
        gen = request.gen
        while True:
            if self._closing:
                _close_quietly(gen)
                out.put((_ERROR, ModelClosedError(self.name)))
                return
            if request.cancel.cancelled:
                _close_quietly(gen)
                out.put((_END, None))
                return
            self._serve_light()
            if request.preemptible and self._outranked(request.priority):
                with self._cond:  # parked: it keeps its place before later requests of its rank
                    heapq.heappush(self._heap, request)
                return
            try:
                item = next(gen)
            except StopIteration as stop:
                out.put((_END, stop.value))
                return
            except BaseException as exc:
                out.put((_ERROR, exc))
                return
            if item is not STEP:
                out.put((_ITEM, item))

    def _shutdown(self) -> None:
        """On the owner thread, once closing: fail what waits, run the finalizer."""
        with self._cond:
            self._closing = True
            pending = [*self._light, *self._heap]
            self._light.clear()
            self._heap.clear()
            finalizer, self._finalizer = self._finalizer, None
        for request in pending:
            if request.future is not None:
                if request.future.set_running_or_notify_cancel():
                    request.future.set_exception(ModelClosedError(self.name))
            else:
                if request.gen is not None:
                    _close_quietly(request.gen)
                assert request.out is not None
                request.out.put((_ERROR, ModelClosedError(self.name)))
        if finalizer is not None:
            try:
                finalizer()
            except Exception:
                log.exception("closing %s failed", self.name)
        _LIVE.discard(self)


def _close_quietly(gen: Generator[Any, None, Any]) -> None:
    try:
        gen.close()
    except Exception:
        log.exception("a model stream failed while it was stopped")


#: Owners whose thread may still run: closed before the interpreter joins its threads.
_LIVE: weakref.WeakSet[ModelOwner] = weakref.WeakSet()


def _close_all() -> None:
    for owner in list(_LIVE):
        owner.close(timeout_s=2.0)


# The hook concurrent.futures uses for its (non-daemon) worker threads: it runs after the main
# thread ends and before the interpreter joins the other threads, so an owner nobody closed
# cannot keep the process alive.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_close_all)
