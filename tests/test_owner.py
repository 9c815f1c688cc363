"""The model's one owner thread: scheduling by priority, light calls between steps, parked
background streams, cancel, close; and a stress test on the real model (generating while other
threads tokenize, count, switch adapters and close)."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from pathlib import Path

import pytest

from desktop_rag.core.generate.llm import LocalLLM
from desktop_rag.core.generate.owner import (
    STEP,
    ModelClosedError,
    ModelOwner,
    Priority,
)
from desktop_rag.core.types import CancelToken
from tests.test_adapters import make_lora

MESSAGES = [{"role": "user", "content": "Write one sentence about apples."}]


@pytest.fixture
def owner() -> Generator[ModelOwner, None, None]:
    o = ModelOwner("test")
    yield o
    assert o.close(timeout_s=5.0)


def _block(owner: ModelOwner) -> threading.Event:
    """Occupy the owner thread until the returned event is set."""
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(5.0)

    owner.submit(hold)
    assert started.wait(5.0)
    return release


def test_calls_return_results_and_raise_errors_on_the_owner_thread(owner: ModelOwner) -> None:
    assert owner.call(lambda: threading.current_thread().name) == "model owner (test)"
    with pytest.raises(ZeroDivisionError):
        owner.call(lambda: 1 / 0)
    # a call made on the owner thread itself runs at once (no deadlock)
    assert owner.call(lambda: owner.call(lambda: 7)) == 7


def test_interactive_requests_go_ahead_of_background_ones(owner: ModelOwner) -> None:
    order: list[str] = []
    release = _block(owner)
    later = [
        owner.submit(lambda: order.append("background 1"), priority=Priority.BACKGROUND),
        owner.submit(lambda: order.append("interactive 1")),
        owner.submit(lambda: order.append("background 2"), priority=Priority.BACKGROUND),
        owner.submit(lambda: order.append("interactive 2")),
    ]
    release.set()
    for f in later:
        f.result(5.0)
    assert order == ["interactive 1", "interactive 2", "background 1", "background 2"]


def _steps(
    log: list[str], name: str, n: int, permits: threading.Semaphore | None = None
) -> Generator[object, None, str]:
    """A stream of ``n`` steps (even ones yield an item, odd ones STEP), each taking a permit."""
    for i in range(n):
        if permits is not None:
            assert permits.acquire(timeout=5.0)
        log.append(f"{name}{i}")
        yield STEP if i % 2 else f"{name}{i}"
    return f"{name} done"


def test_light_calls_run_between_two_steps_of_a_stream(owner: ModelOwner) -> None:
    log: list[str] = []
    permits = threading.Semaphore(1)
    stream = owner.stream(lambda: _steps(log, "s", 4, permits))
    assert next(stream) == "s0"  # the stream now waits for its second step's permit
    light = owner.submit(lambda: log.append("light"), light=True)
    heavy = owner.submit(lambda: log.append("heavy"))
    permits.release()  # step s1; then the light call, before s2 waits
    assert light.result(5.0) is None
    assert not heavy.done(), "a call that is not light waits for the stream"
    permits.release(2)
    assert list(stream) == ["s2"]
    assert stream.result == "s done"
    heavy.result(5.0)
    assert log == ["s0", "s1", "light", "s2", "s3", "heavy"]


def test_a_background_stream_is_parked_for_an_interactive_one_and_resumes(
    owner: ModelOwner,
) -> None:
    log: list[str] = []
    permits = threading.Semaphore(1)
    background = owner.stream(lambda: _steps(log, "b", 6, permits), priority=Priority.BACKGROUND)
    assert next(background) == "b0"
    interactive = owner.stream(lambda: _steps(log, "i", 4))
    permits.release(5)
    assert list(interactive) == ["i0", "i2"]
    assert list(background) == ["b2", "b4"]
    assert log == ["b0", "b1", "i0", "i1", "i2", "i3", "b2", "b3", "b4", "b5"]


def test_cancel_ends_a_stream_between_steps_and_closes_its_generator(owner: ModelOwner) -> None:
    closed = threading.Event()

    def endless() -> Generator[object, None, None]:
        try:
            while True:
                time.sleep(0.002)
                yield "x"
        finally:
            closed.set()

    cancel = CancelToken()
    stream = owner.stream(endless, cancel=cancel)
    assert next(stream) == "x"
    t0 = time.perf_counter()
    cancel.cancel()
    assert list(stream) == []
    assert time.perf_counter() - t0 < 0.1
    assert closed.wait(1.0)
    assert owner.call(lambda: 5) == 5  # the owner serves the next request


def test_dropping_a_stream_cancels_it(owner: ModelOwner) -> None:
    closed = threading.Event()

    def endless() -> Generator[object, None, None]:
        try:
            while True:
                yield "x"
        finally:
            closed.set()

    stream = owner.stream(endless)
    assert next(stream) == "x"
    del stream
    assert closed.wait(1.0)


def test_close_fails_what_waits_ends_the_running_stream_and_joins() -> None:
    owner = ModelOwner("closing")
    freed: list[str] = []
    permits = threading.Semaphore(1)
    stream = owner.stream(lambda: _steps([], "s", 100, permits))
    assert next(stream) == "s0"
    waiting = owner.submit(lambda: "never")
    closer = threading.Thread(
        target=owner.close, args=(lambda: freed.append(threading.current_thread().name),)
    )
    closer.start()
    permits.release(100)
    closer.join(5.0)
    assert not closer.is_alive() and not owner.alive
    with pytest.raises(ModelClosedError):
        list(stream)
    with pytest.raises(ModelClosedError):
        waiting.result(1.0)
    assert freed == ["model owner (closing)"], "the finalizer runs on the owner thread"
    with pytest.raises(ModelClosedError):
        owner.submit(lambda: 1)


# -- the real model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llm(llm_path: Path) -> Generator[LocalLLM, None, None]:
    model = LocalLLM(llm_path, n_ctx=1024, threads=1)
    model.load()
    yield model
    model.close()


def _gen(llm: LocalLLM, **kwargs: object) -> str:
    return "".join(llm.stream(MESSAGES, max_tokens=24, temperature=0.0, seed=0, **kwargs))  # type: ignore[arg-type]


def test_tokenizing_is_served_while_an_answer_is_generated(llm: LocalLLM) -> None:
    text = "Apple's total net sales were $81,797 million [1]."
    expected = llm.tokenize(text)
    pieces: list[str] = []
    started = threading.Event()

    def generate() -> None:
        for piece in llm.stream(MESSAGES, max_tokens=120, temperature=0.0, seed=0):
            pieces.append(piece)
            started.set()

    worker = threading.Thread(target=generate)
    worker.start()
    assert started.wait(30.0)
    assert llm.tokenize(text) == expected
    during = len(pieces)
    worker.join(60.0)
    assert during < len(pieces), "tokenize waited for the whole answer"


def test_stress_generate_while_tokenizing_counting_switching_adapters(
    llm: LocalLLM, tmp_path: Path
) -> None:
    a = make_lora(tmp_path / "a.gguf", seed=1)
    b = make_lora(tmp_path / "b.gguf", seed=2)
    base, with_a = _gen(llm), _gen(llm, adapter=a)
    assert base != with_a
    texts = [f"Revenue in quarter {i} was ${i * 1234:,} million [2]." for i in range(20)]
    token_ref = [llm.tokenize(t) for t in texts]
    done = threading.Event()
    errors: list[str] = []
    counts = {"tokenize": 0, "switch": 0, "background": 0}

    def generator() -> None:
        try:
            for i in range(10):
                want, adapter = (with_a, a) if i % 2 else (base, None)
                got = _gen(llm, adapter=adapter)
                if got != want:
                    errors.append(f"round {i}: {got!r} != {want!r}")
        finally:
            done.set()

    def tokenizer() -> None:
        while not done.is_set():
            for t, ref in zip(texts, token_ref, strict=True):
                if llm.tokenize(t) != ref or llm.count_tokens(t) != len(ref):
                    errors.append(f"tokens of {t!r} changed")
                counts["tokenize"] += 1

    def switcher() -> None:
        while not done.is_set():
            llm.set_adapter(b)
            llm.set_adapter(None)
            counts["switch"] += 1

    def background() -> None:
        while not done.is_set():
            out = "".join(llm.stream(MESSAGES, max_tokens=16, temperature=0.0,
                                     priority=Priority.BACKGROUND))  # fmt: skip
            if not out.strip():
                errors.append("a background answer came back empty")
            counts["background"] += 1

    threads = [threading.Thread(target=f) for f in (generator, tokenizer, switcher, background)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300.0)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert counts["tokenize"] > 20 and counts["switch"] > 0 and counts["background"] > 0
    assert _gen(llm) == base


def test_closing_while_generating_ends_the_answer_and_the_model_loads_again(
    llm_path: Path,
) -> None:
    model = LocalLLM(llm_path, n_ctx=1024, threads=1)
    try:
        base = _gen(model)
        outcome: list[object] = []
        started = threading.Event()

        def generate() -> None:
            try:
                for _ in model.stream(MESSAGES, max_tokens=300, temperature=0.0, seed=0):
                    started.set()
                outcome.append("finished")
            except ModelClosedError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=generate)
        worker.start()
        assert started.wait(30.0)
        t0 = time.perf_counter()
        model.close()
        closed_s = time.perf_counter() - t0
        worker.join(10.0)
        assert not worker.is_alive()
        assert isinstance(outcome[0], ModelClosedError)
        assert closed_s < 5.0
        assert not model.loaded
        assert _gen(model) == base  # loads again on next use, same output
    finally:
        model.close()
