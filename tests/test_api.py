"""Our own API (``desktop-rag serve``) end to end: the real command in a child process over a
real index, called with the real ``openai`` client and raw HTTP (httpx).

One server (the module's) answers most tests; the queue tests start their own with
``--queue 1`` on the same data folder, and the start-up tests (token, warning, taken port) run
the command briefly. Every child process is stopped (SIGTERM: a clean stop exits 0) and waited
for, also when a test fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from desktop_rag.api.app import CHECKED_NOTE, WITHDRAWN_NOTE, iter_sse_data
from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.engine import Engine
from desktop_rag.core.paths import HOME_ENV, AppPaths
from desktop_rag.core.settings import Settings
from tests.conftest import ORCHARD, make_pdf

try:  # the openai client's own HTTP library: httpx, or its successor httpx2 (same API)
    import httpx
except ImportError:  # pragma: no cover - depends on the openai release installed
    import httpx2 as httpx  # type: ignore[no-redef]

pytestmark = pytest.mark.slow

SERVE = [sys.executable, "-c", "from desktop_rag.api.cli import serve; serve()"]
QUESTION = "How many tonnes of apples did the orchard yield in 2022?"
#: Short answers keep the module's model tests fast; the queue server writes longer ones.
MAX_TOKENS = 32
HEALTH_TIMEOUT_S = 240.0


def _paths(root: Path) -> AppPaths:
    """What ``app_paths()`` gives with ``DESKTOP_RAG_HOME=root``."""
    return AppPaths(root / "data", root / "config", root / "cache", root / "logs")


def _configure(home: Path, **values: object) -> Settings:
    """Write the child's settings: short answers, and the GGUF file as it is (no F16 copy to
    convert and time first: minutes on 2 cores)."""
    chosen: dict[str, object] = {"max_answer_tokens": MAX_TOKENS, "llm_weights": "original"}
    settings = Settings(**{**chosen, **values})  # type: ignore[arg-type]
    settings.save(_paths(home).ensure().settings_file)
    return settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    """The child's environment: its own home; the session's ONNX and GGUF caches (inherited
    from os.environ, where the conftest fixtures put them)."""
    env = dict(os.environ)
    env[HOME_ENV] = str(home)
    return env


@dataclass
class Served:
    """A running ``serve`` child process."""

    proc: subprocess.Popen[bytes]
    url: str
    token: str
    home: Path
    stderr: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def _launch(home: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    err = home.parent / f"{home.name}-stderr-{time.monotonic_ns()}.txt"
    with err.open("wb") as f:
        proc = subprocess.Popen([*SERVE, *args], env=_env(home), stdout=subprocess.DEVNULL,
                                stderr=f, stdin=subprocess.DEVNULL)  # fmt: skip
    return proc, err


def _stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then wait (killed after 60 s); the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], err: Path) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    seen_loading = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{err.read_text()[-3000:]}")
        try:
            res = httpx.get(f"{url}/health", timeout=5)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if res.status_code == 200:
            assert res.json()["status"] == "ready"
            return
        assert res.status_code == 503 and res.json()["status"] == "loading", res.text
        seen_loading = True
        time.sleep(0.2)
    pytest.fail(f"/health never became ready (loading seen: {seen_loading}):\n{err.read_text()}")


@pytest.fixture(scope="module")
def data_home(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A home with two indexed folders (collections): orchard.pdf (3 pages) and notes/."""
    root = tmp_path_factory.mktemp("api")
    home = root / "home"
    orchard = root / "orchard"
    notes = root / "notes"
    orchard.mkdir()
    notes.mkdir()
    make_pdf(orchard / "orchard.pdf", ORCHARD, title="Hollow Farm orchard report")
    (notes / "beekeeping.md").write_text(
        "# Beekeeping notes\n\n## Winter care\n\nIn winter the colony clusters to keep the queen "
        "warm; we leave 18 kg of honey in each hive.\n\n## Swarming\n\nSwarms usually leave in "
        "May, when the old queen departs with half of the workers.\n",
        encoding="utf-8",
    )
    paths = _paths(home)
    engine = Engine(paths, _configure(home), embedder=embedder)
    try:
        summary = engine.index_all([orchard, notes])
    finally:
        engine.close()
    assert summary.indexed == 2, summary
    return home


@pytest.fixture(scope="module")
def served(data_home: Path) -> Iterator[Served]:
    """The module's server (default queue), ready (``/health`` 200)."""
    port = _free_port()
    proc, err = _launch(data_home, "--port", str(port))
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, err)
        token = (_paths(data_home).api_token_file).read_text(encoding="utf-8").strip()
        yield Served(proc, url, token, data_home, err)
    finally:
        code = _stop(proc)
    assert code == 0, f"a clean stop exits 0, not {code}:\n{err.read_text()[-3000:]}"


def _client(s: Served):  # type: ignore[no-untyped-def]
    import openai

    return openai.OpenAI(base_url=f"{s.url}/v1", api_key=s.token, max_retries=0, timeout=120)


# -- auth and the plain endpoints --------------------------------------------------------------


def test_health_is_public_and_everything_else_needs_the_token(served: Served) -> None:
    assert httpx.get(f"{served.url}/health").json() == {"status": "ready"}
    for method, path in [("GET", "/v1/models"), ("GET", "/v1/collections"),
                         ("POST", "/v1/search"), ("POST", "/v1/embeddings"),
                         ("POST", "/v1/chat/completions")]:  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": served.token}):
            res = httpx.request(method, f"{served.url}{path}", headers=headers, json={})
            assert res.status_code == 401, (path, headers, res.text)
            error = res.json()["error"]
            assert set(error) == {"message", "type", "code"} and error["code"] == "invalid_api_key"
            assert res.headers["www-authenticate"] == "Bearer"
    import openai

    bad = openai.OpenAI(base_url=f"{served.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_models_collections_and_search(served: Served) -> None:
    models = _client(served).models.list()
    assert [m.id for m in models.data] == ["desktop-rag"]
    assert models.data[0].object == "model"
    res = httpx.get(f"{served.url}/v1/collections", headers=served.headers)
    assert res.status_code == 200
    cols = res.json()["data"]
    assert sorted(c["name"] for c in cols) == ["notes", "orchard"]
    assert all(c["indexed"] == 1 and c["chunks"] >= 1 for c in cols)

    res = httpx.post(f"{served.url}/v1/search", headers=served.headers,
                     json={"query": "apple harvest tonnes in 2022", "k": 3})  # fmt: skip
    assert res.status_code == 200, res.text
    hits = res.json()["data"]
    assert 1 <= len(hits) <= 3
    top = hits[0]
    assert set(top) >= {"file", "page", "start", "end", "text", "score"}
    assert Path(top["file"]).name == "orchard.pdf" and top["page"] == 2  # 1-based
    assert "38 tonnes" in top["text"] and 0 <= top["start"] < top["end"]
    # Scoped to the notes' collection, the orchard is out of reach.
    notes_id = next(c["id"] for c in cols if c["name"] == "notes")
    res = httpx.post(f"{served.url}/v1/search", headers=served.headers,
                     json={"query": "apple harvest tonnes in 2022", "collections": [notes_id]})  # fmt: skip
    assert res.status_code == 200
    assert {Path(h["file"]).name for h in res.json()["data"]} <= {"beekeeping.md"}


def test_embeddings_are_the_bundled_models(served: Served) -> None:
    # The openai client asks for base64 by default and decodes it.
    out = _client(served).embeddings.create(model="all-MiniLM-L6-v2",
                                            input=["apple orchard", "honey bees"])  # fmt: skip
    assert [d.index for d in out.data] == [0, 1]
    vectors = np.array([d.embedding for d in out.data])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert out.usage.prompt_tokens > 0
    res = httpx.post(f"{served.url}/v1/embeddings", headers=served.headers,
                     json={"input": "apple orchard", "encoding_format": "float"})  # fmt: skip
    assert res.status_code == 200
    floats = np.array(res.json()["data"][0]["embedding"])
    np.testing.assert_allclose(floats, vectors[0], atol=1e-5)


def test_bad_requests_are_openai_errors(served: Served) -> None:
    url = f"{served.url}/v1/chat/completions"
    for body in [{}, {"messages": []}, {"messages": [{"role": "user", "content": "  "}]},
                 {"messages": [{"role": "user", "content": "x"}], "collections": ["one"]},
                 {"messages": "not a list"}]:  # fmt: skip
        res = httpx.post(url, headers=served.headers, json=body)
        assert res.status_code == 400, (body, res.text)
        assert res.json()["error"]["type"] == "invalid_request_error"
    res = httpx.post(url, headers={**served.headers, "Content-Type": "application/json"},
                     content=b"{not json")  # fmt: skip
    assert res.status_code == 400 and "error" in res.json()
    res = httpx.get(f"{served.url}/v1/nothing-here", headers=served.headers)
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"
    # The server is still there.
    assert httpx.get(f"{served.url}/health").status_code == 200


def last_extra(chunks: list) -> dict:  # type: ignore[type-arg]
    """The extension fields of a stream's last chunk (the sources event)."""
    return chunks[-1].model_extra or {}


# -- answers -----------------------------------------------------------------------------------


def _check_sources(sources: list[dict], check: dict) -> None:  # type: ignore[type-arg]
    assert sources, "the sources given to the model"
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))
    first = sources[0]
    assert set(first) >= {"n", "file", "page", "start", "end", "text", "score", "cited",
                          "evidence", "checks"}  # fmt: skip
    assert Path(first["file"]).name == "orchard.pdf" and first["page"] == 2
    assert "38 tonnes" in first["text"]
    for s in sources:
        assert isinstance(s["cited"], bool) and isinstance(s["score"], float)
        assert s["page"] is None or s["page"] >= 1
        for e in s["evidence"]:
            assert set(e) == {"text", "start", "end", "score"}
        for c in s["checks"]:
            assert s["n"] in c["sources"] and isinstance(c["supported"], bool)
    assert set(check) >= {"abstained", "grounded", "generated", "backend", "evidence", "checks"}
    assert check["evidence"], "the evidence quoted above the answer (answer_style both)"
    assert any("38 tonnes" in e["text"] for e in check["evidence"])
    assert isinstance(check["grounded"], bool) and check["generated"] is not None
    for c in check["checks"]:
        assert set(c) == {"start", "end", "claim", "kind", "supported", "sources"}


def test_answer_with_sources(served: Served) -> None:
    out = _client(served).chat.completions.create(
        model="desktop-rag",
        messages=[{"role": "system", "content": "ignored"}, {"role": "user", "content": QUESTION}],
        extra_body={"include_sources": True},
    )
    assert out.object == "chat.completion" and out.model == "desktop-rag"
    assert out.id.startswith("chatcmpl-") and out.created > 0
    choice = out.choices[0]
    assert choice.message.role == "assistant" and choice.message.content.strip()
    assert choice.finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.completion_tokens > 0
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    extra = out.model_extra or {}
    _check_sources(extra["sources"], extra["answer_check"])
    # The reader's text: the generated answer when it passed the check.
    if extra["answer_check"]["grounded"]:
        assert choice.message.content == extra["answer_check"]["generated"]


def test_sources_only_when_asked(served: Served) -> None:
    out = _client(served).chat.completions.create(
        model="desktop-rag", messages=[{"role": "user", "content": QUESTION}]
    )
    assert out.choices[0].message.content.strip()
    assert "sources" not in (out.model_extra or {}) and "answer_check" not in (
        out.model_extra or {}
    )
    chunks = list(_client(served).chat.completions.create(
        model="desktop-rag", messages=[{"role": "user", "content": QUESTION}], stream=True))  # fmt: skip
    assert not any("sources" in (c.model_extra or {}) for c in chunks)


def test_streamed_answer_sources_come_once_last(served: Served) -> None:
    stream = _client(served).chat.completions.create(
        model="desktop-rag", messages=[{"role": "user", "content": QUESTION}], stream=True,
        extra_body={"include_sources": True}, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.model == "desktop-rag" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    with_choices = [c for c in chunks if c.choices]
    assert with_choices[0].choices[0].delta.role == "assistant"
    finish = [c for c in with_choices if c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0] is with_choices[-1]
    text = "".join(c.choices[0].delta.content or "" for c in with_choices)
    final = finish[0].model_extra or {}
    checked, replaced = final["checked_answer"], final["replaced"]
    assert final["grounded"] == last_extra(chunks)["answer_check"]["grounded"]
    if replaced:  # the checked text follows the streamed one, marked as such
        note = CHECKED_NOTE if final["grounded"] else WITHDRAWN_NOTE
        assert text.endswith(note + checked) and text != note + checked
    else:
        assert text == checked
    usage = [c for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].usage.completion_tokens > 0
    last = chunks[-1]
    assert not last.choices and "sources" in (last.model_extra or {})
    _check_sources(last.model_extra["sources"], last.model_extra["answer_check"])  # type: ignore[index]

    # The raw events: the sources once, as the last one before [DONE].
    body = {"model": "desktop-rag", "stream": True, "include_sources": True,
            "messages": [{"role": "user", "content": QUESTION}]}  # fmt: skip
    with httpx.stream("POST", f"{served.url}/v1/chat/completions", headers=served.headers,
                      json=body, timeout=120) as res:  # fmt: skip
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        events = list(iter_sse_data(res.iter_lines()))
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    data = [json.loads(e) for e in events[:-1]]
    with_sources = [i for i, d in enumerate(data) if "sources" in d]
    assert with_sources == [len(data) - 1]
    assert not any("sources" in c for d in data for c in d["choices"])
    pieces = "".join(d["choices"][0]["delta"].get("content", "") for d in data if d["choices"])
    assert pieces.strip()


def test_collections_scope_the_answer(served: Served) -> None:
    cols = httpx.get(f"{served.url}/v1/collections", headers=served.headers).json()["data"]
    notes_id = next(c["id"] for c in cols if c["name"] == "notes")
    out = _client(served).chat.completions.create(
        model="desktop-rag", messages=[{"role": "user", "content": QUESTION}],
        extra_body={"include_sources": True, "collections": [notes_id]},
    )  # fmt: skip
    files = {Path(s["file"]).name for s in (out.model_extra or {})["sources"]}
    assert files <= {"beekeeping.md"}, files
    assert "38 tonnes" not in out.choices[0].message.content


# -- the queue and cancel ----------------------------------------------------------------------


@pytest.fixture
def queue_of_one(data_home: Path, tmp_path: Path) -> Iterator[Served]:
    """A second server on the same index with ``--queue 1`` and long answers."""
    home = tmp_path / "queue-home"
    _configure(home, max_answer_tokens=384, data_dir=str(_paths(data_home).data))
    port = _free_port()
    proc, err = _launch(home, "--port", str(port), "--queue", "1")
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc, err)
        token = _paths(home).api_token_file.read_text(encoding="utf-8").strip()
        yield Served(proc, url, token, home, err)
    finally:
        code = _stop(proc)
    assert code == 0, err.read_text()[-3000:]


def test_overload_gets_503_and_the_running_stream_completes(queue_of_one: Served) -> None:
    s = queue_of_one
    url = f"{s.url}/v1/chat/completions"
    body = {"model": "desktop-rag", "stream": True,
            "messages": [{"role": "user", "content": QUESTION}]}  # fmt: skip
    statuses: list[int] = []
    retry_after: list[str] = []
    lock = threading.Lock()

    def another() -> None:
        with httpx.stream("POST", url, headers=s.headers, json=body, timeout=120) as res:
            res.read()
            with lock:
                statuses.append(res.status_code)
                if res.status_code == 503:
                    retry_after.append(res.headers.get("retry-after", ""))
                    assert res.json()["error"]["code"] == "queue_full"

    with httpx.stream("POST", url, headers=s.headers, json=body, timeout=120) as first:
        assert first.status_code == 200
        lines = first.iter_lines()
        events = []
        for payload in iter_sse_data(lines):
            events.append(payload)
            break  # admitted and started: now two more
        threads = [threading.Thread(target=another) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        events.extend(iter_sse_data(lines))
    assert 503 in statuses and retry_after and all(r.isdigit() for r in retry_after)
    assert events[-1] == "[DONE]", "the running stream was not cut short"
    finish = [json.loads(e) for e in events[:-1] if json.loads(e)["choices"]][-1]
    assert finish["choices"][0]["finish_reason"] in ("stop", "length")
    assert finish["checked_answer"].strip()


def test_a_client_that_disconnects_cancels_its_answer(queue_of_one: Served) -> None:
    s = queue_of_one
    url = f"{s.url}/v1/chat/completions"
    body = {"model": "desktop-rag", "stream": True,
            "messages": [{"role": "user", "content": "Describe the orchard, its history, its "
                          "harvests, its frosts and its market in detail."}]}  # fmt: skip
    with httpx.stream("POST", url, headers=s.headers, json=body, timeout=120) as res:
        assert res.status_code == 200
        for payload in iter_sse_data(res.iter_lines()):
            if json.loads(payload)["choices"][0]["delta"].get("content"):
                break  # the model is writing: go away
    # The model is free again soon: with --queue 1 the next question is admitted.
    deadline = time.monotonic() + 30
    while True:
        res = httpx.post(url, headers=s.headers, timeout=120,
                         json={**body, "stream": False, "messages": [
                             {"role": "user", "content": QUESTION}]})  # fmt: skip
        if res.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert res.status_code == 200, res.text
    log = s.home / "logs" / "desktop-rag.log"
    assert log.read_text(encoding="utf-8").count("cancelled: the client went away") == 1
    # A client that gives up on a non-streamed answer (a timeout) cancels it too.
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, headers=s.headers, timeout=httpx.Timeout(30, read=1.0),
                   json={**body, "stream": False})  # fmt: skip
    deadline = time.monotonic() + 30
    while log.read_text(encoding="utf-8").count("cancelled: the client went away") < 2:
        assert time.monotonic() < deadline, "the abandoned answer was not cancelled"
        time.sleep(0.1)


# -- starting and stopping ---------------------------------------------------------------------


def test_show_token_prints_the_stored_private_token(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    runs = [subprocess.run([*SERVE, "--show-token"], env=_env(home), capture_output=True,
                           text=True, timeout=60) for _ in range(2)]  # fmt: skip
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    token = runs[0].stdout.strip()
    assert len(token) >= 40 and runs[1].stdout.strip() == token  # made once, then kept
    path = _paths(home).api_token_file
    assert path.read_text(encoding="utf-8").strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        res = subprocess.run([*SERVE, "--port", str(port)], env=_env(tmp_path / "h"),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in res.stderr
    assert "Traceback" not in res.stderr


def test_listening_beyond_loopback_warns(tmp_path: Path) -> None:
    home = tmp_path / "wide"
    _configure(home)
    port = _free_port()
    proc, err = _launch(home, "--host", "0.0.0.0", "--port", str(port))
    try:
        deadline = time.monotonic() + 60
        while "desktop-rag API on" not in err.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, err.read_text()
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code in (200, 503)
    finally:
        code = _stop(proc)  # also while the models load: a clean stop
    out = err.read_text()
    assert "Warning: listening on 0.0.0.0" in out, out
    assert code == 0, out


def test_api_server_in_a_thread_starts_and_stops(engine: Engine, tmp_path: Path) -> None:
    """The GUI's way: uvicorn in a background thread, stopped and joined (the conftest guard
    checks no thread is left)."""
    from desktop_rag.api.server import ApiServer

    engine.settings.llm_weights = "original"  # no F16 copy to make first (see _configure)
    server = ApiServer(engine, port=0, token="secret-token", queue_limit=2)
    server.start()
    try:
        assert server.address == f"http://127.0.0.1:{server.port}" and server.port > 0
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while httpx.get(f"{server.address}/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        res = httpx.get(f"{server.address}/v1/collections",
                        headers={"Authorization": "Bearer secret-token"})  # fmt: skip
        assert res.status_code == 200 and res.json() == {"object": "list", "data": []}
        res = httpx.post(f"{server.address}/v1/search", json={"query": "anything"},
                         headers={"Authorization": "Bearer secret-token"})  # fmt: skip
        assert res.status_code == 400 and "nothing is indexed yet" in res.json()["error"]["message"]
        # answer_style "evidence": no model, the quoted evidence is the one piece streamed
        folder = tmp_path / "docs"
        folder.mkdir()
        make_pdf(folder / "orchard.pdf", ORCHARD)
        engine.index_all([folder])
        engine.settings.answer_style = "evidence"
        body = {"model": "desktop-rag", "stream": True, "include_sources": True,
                "messages": [{"role": "user", "content": QUESTION}]}  # fmt: skip
        with httpx.stream("POST", f"{server.address}/v1/chat/completions", json=body,
                          headers={"Authorization": "Bearer secret-token"}, timeout=60) as res:  # fmt: skip
            assert res.status_code == 200
            data = [json.loads(e) for e in iter_sse_data(res.iter_lines()) if e != "[DONE]"]
        content = [d["choices"][0]["delta"]["content"] for d in data
                   if d["choices"] and d["choices"][0]["delta"].get("content")]  # fmt: skip
        finish = next(d for d in data if d["choices"] and d["choices"][0]["finish_reason"])
        assert content == [finish["checked_answer"]] and "38 tonnes" in content[0]
        assert finish["replaced"] is False and finish["grounded"] is None
        assert data[-1]["answer_check"]["generated"] is None and data[-1]["sources"][0]["cited"]
    finally:
        server.stop()
    assert not server.running
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.address}/health", timeout=2)
