"""The server backend against the real thing: llama-cpp-python's own OpenAI-compatible server
(``python -m llama_cpp.server``) serving the bundled GGUF on a free loopback port, and small
real HTTP servers on loopback for the failures a real engine rarely shows on demand (garbage,
429, 500, silence). Answers go through the engine as in the app: evidence first, the claim
check, abstention; a failing server gives a message and the evidence, never a crash or a hang.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import UserError
from desktop_rag.core.models import add_server_model, list_models, resolve_model
from desktop_rag.core.paths import app_paths
from desktop_rag.core.servers import address_warning, find_server, normalize_url, remove_server
from desktop_rag.core.settings import Settings
from desktop_rag.core.types import Answer, CancelToken

pytestmark = pytest.mark.slow

KEY = "test-key-7f3a"
QUESTION = "How many tonnes of apples did the orchard yield in 2022?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: ``python -m llama_cpp.server`` with llama.cpp's extra CPU buffer types (weight repacking, the
#: AMX kernels) off, as a team would run it on a Xeon with AMX: with them, llama-cpp-python
#: 0.3.36 crashes (segmentation fault) at the first prompt of more than one token there, which
#: the app avoids the same way in-process.
LLAMA_SERVER = """
import runpy
import llama_cpp.llama_cpp as bindings
original = bindings.llama_model_default_params
def params():
    p = original()
    if hasattr(p, "use_extra_bufts"):
        p.use_extra_bufts = False
    return p
bindings.llama_model_default_params = params
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def start_llama_server(
    llm_path: Path, port: int, *, key: str | None = KEY
) -> subprocess.Popen[bytes]:
    """``python -m llama_cpp.server`` with the bundled model on ``port``, ready (its /v1/models
    answers) when this returns. Run as :data:`LLAMA_SERVER` does: the real server, with the
    AMX workaround the app also applies (see ``desktop_rag.core.generate.native.open_llama``)."""
    cmd = [sys.executable, "-c", LLAMA_SERVER, "--model", str(llm_path), "--host",
           "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--model_alias", "smol",
           "--n_threads", "1"]  # fmt: skip
    if key:
        cmd += ["--api_key", key]
    # Its log goes to a file: llama.cpp logs enough at load to fill a pipe and block.
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text(errors="replace")[-2000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def llama_server(llm_path: Path) -> Iterator[int]:
    """One real llama_cpp.server for the module (key :data:`KEY`, model alias "smol")."""
    port = free_port()
    proc = start_llama_server(llm_path, port)
    yield port
    stop(proc)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A data folder with the test corpus indexed once for the module (copied per test)."""
    from tests.conftest import ORCHARD, make_pdf

    root = tmp_path_factory.mktemp("server-home")
    docs = root / "docs"
    docs.mkdir()
    make_pdf(docs / "orchard.pdf", ORCHARD, title="Hollow Farm orchard report")
    old = os.environ.get("DESKTOP_RAG_HOME")
    os.environ["DESKTOP_RAG_HOME"] = str(root / "home")
    try:
        eng = Engine(app_paths(), Settings(), embedder=embedder)
        eng.index_all([docs])
        eng.close()
    finally:
        if old is None:
            os.environ.pop("DESKTOP_RAG_HOME", None)
        else:
            os.environ["DESKTOP_RAG_HOME"] = old
    return root / "home"


@pytest.fixture
def server_engine(indexed: Path, home: Path, embedder: Embedder) -> Iterator[Engine]:
    """An engine over a copy of the indexed folder (the test's own home), answers short."""
    import shutil

    shutil.copytree(indexed, home, dirs_exist_ok=True)
    eng = Engine(app_paths(), Settings(temperature=0.0, max_answer_tokens=48), embedder=embedder)
    yield eng
    eng.close()


def _add(name: str, port: int, *, model: str = "smol", key: str | None = KEY,
         timeout_s: float = 30.0) -> None:  # fmt: skip
    add_server_model(name, f"http://127.0.0.1:{port}/v1", model, api_key=key, timeout_s=timeout_s)


def _ask(engine: Engine, cancel: CancelToken | None = None) -> tuple[list[str], Answer]:
    pieces: list[str] = []
    final = None
    for item in engine.ask(QUESTION, cancel=cancel):
        if isinstance(item, Answer):
            final = item
        elif isinstance(item, str):
            pieces.append(item)
    assert final is not None
    return pieces, final


# -- the registry ------------------------------------------------------------------------------
def test_servers_are_models_and_their_keys_stay_private(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY + "\n")
    info = add_server_model("team", "http://10.1.2.3:8080", "big-model", api_key=KEY, context=8192)
    assert info.server is not None and info.server.url == "http://10.1.2.3:8080/v1"
    assert resolve_model("team", "llm").server == info.server
    assert [m.name for m in list_models() if m.server] == ["team"]
    stored = info.server.key_file()
    assert stored.stat().st_mode & 0o777 == 0o600
    assert stored.parent.stat().st_mode & 0o777 == 0o700
    assert KEY not in app_paths().servers_file.read_text()  # the key is never in the list
    assert info.server.api_key() == KEY
    stored.chmod(0o644)  # a key others can read is refused, with the fix in the message
    with pytest.raises(UserError, match="chmod 600"):
        info.server.api_key()
    # The CLI lists it without its key, and refuses a name a local model has.
    env = {**os.environ}
    res = subprocess.run([sys.executable, "-m", "desktop_rag", "models", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    listed = {m["name"]: m for m in json.loads(res.stdout)}
    assert listed["team"]["server"] == {"url": "http://10.1.2.3:8080/v1", "model": "big-model",
                                        "timeout_s": 60.0, "context": 8192, "api_key": True}  # fmt: skip
    assert KEY not in res.stdout
    with pytest.raises(UserError, match="already named"):
        add_server_model("SmolLM2-135M-Instruct-Q4_1", "http://127.0.0.1:1", "x")
    assert remove_server("team") and not stored.exists() and find_server("team") is None


def test_urls_and_address_warnings() -> None:
    assert normalize_url("http://host:11434/") == "http://host:11434/v1"
    assert normalize_url("https://gpu.lan/v1/") == "https://gpu.lan/v1"
    for bad in ("ftp://x/v1", "localhost:8080", "http://user:pw@host/v1", "http:///v1"):
        with pytest.raises(UserError):
            normalize_url(bad)
    for private in ("http://127.0.0.1:8080/v1", "http://localhost/v1", "http://10.0.0.5/v1",
                    "http://192.168.1.20:1234/v1", "http://[::1]:8000/v1", "http://gpu-box/v1",
                    "http://gpu.internal/v1", "http://[fd00::1]/v1"):  # fmt: skip
        assert address_warning(private) is None, private
    for public in (
        "http://8.8.8.8/v1",
        "https://api.example.com/v1",
        "http://[2001:4860::8888]/v1",
    ):
        warning = address_warning(public)
        assert warning is not None and "sent to it" in warning


# -- answering through llama_cpp.server --------------------------------------------------------
def test_answer_through_llama_cpp_server(server_engine: Engine, llama_server: int) -> None:
    _add("team", llama_server)
    server_engine.set_llm_model("team")
    assert server_engine.backend_label.startswith("server: team (http://127.0.0.1:")
    pieces, answer = _ask(server_engine)
    assert answer.error is None, answer.error
    assert answer.backend == server_engine.backend_label
    assert answer.generated is not None and len(pieces) > 1  # streamed, piece by piece
    assert answer.citations and answer.citations[0].hit.page == 2  # retrieval is ours
    assert answer.checks or answer.grounded is not None  # and so is the claim check
    assert answer.to_json()["backend"] == answer.backend
    # Switching back to the in-process model needs no restart.
    server_engine.set_llm_model(None)
    _, local = _ask(server_engine)
    assert local.backend == "local: SmolLM2-135M-Instruct-Q4_1" and local.error is None


def test_stop_closes_the_stream_and_the_server_answers_the_next(
    server_engine: Engine, llama_server: int
) -> None:
    _add("team", llama_server)
    server_engine.set_llm_model("team")
    server_engine.settings.max_answer_tokens = 300
    cancel = CancelToken()
    t_stop = None
    n = 0
    for item in server_engine.ask(QUESTION, cancel=cancel):
        if isinstance(item, str):
            n += 1
            if n == 3:
                t_stop = time.perf_counter()
                cancel.cancel()
        if isinstance(item, Answer):
            break
    assert t_stop is not None
    assert time.perf_counter() - t_stop < 2.0  # the stream ended at once
    server_engine.settings.max_answer_tokens = 48
    _, answer = _ask(server_engine)
    assert answer.error is None and answer.generated


def test_wrong_key_and_wrong_model_are_messages_with_the_evidence(
    server_engine: Engine, llama_server: int
) -> None:
    _add("badkey", llama_server, key="not-the-key")
    server_engine.set_llm_model("badkey")
    _, answer = _ask(server_engine)
    assert answer.error is not None and "refused the API key (401)" in answer.error
    assert "not-the-key" not in answer.error and "not-the-key" not in answer.text
    assert answer.evidence and answer.text.startswith("No answer from the model")
    assert "“" in answer.text  # the evidence is quoted
    _add("badmodel", llama_server, model="llama-70b")
    server_engine.set_llm_model("badmodel")
    _, answer = _ask(server_engine)
    assert answer.error is not None and "no model named 'llama-70b'" in answer.error
    assert "it serves: smol" in answer.error


def test_a_server_that_is_down(server_engine: Engine) -> None:
    _add("down", free_port())
    server_engine.set_llm_model("down")
    t0 = time.perf_counter()
    _, answer = _ask(server_engine)
    assert time.perf_counter() - t0 < 15
    assert answer.error is not None and "cannot be reached" in answer.error
    assert answer.evidence and answer.citations


def test_a_server_killed_mid_stream(server_engine: Engine, llm_path: Path) -> None:
    port = free_port()
    proc = start_llama_server(llm_path, port)
    try:
        _add("fragile", port)
        server_engine.set_llm_model("fragile")
        server_engine.settings.max_answer_tokens = 300
        pieces = 0
        final = None
        t_kill = None
        for item in server_engine.ask(QUESTION):
            if isinstance(item, str):
                pieces += 1
                if pieces == 2:
                    proc.kill()
                    t_kill = time.perf_counter()
            elif isinstance(item, Answer):
                final = item
        assert final is not None and t_kill is not None
        assert time.perf_counter() - t_kill < 10  # no hang
        # Killed after two pieces: the answer was cut (a message), unless the model had finished.
        if final.error is not None:
            assert "fragile" in final.error and final.evidence
            assert final.generated is None  # nothing the server wrote is shown unchecked
    finally:
        stop(proc)


class _Scripted(http.server.BaseHTTPRequestHandler):
    """A real HTTP server answering every request as its ``mode`` says."""

    mode = "garbage"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._send(200, json.dumps({"object": "list", "data": [{"id": "m", "object": "model",
                                                                 "owned_by": "x"}]}).encode())  # fmt: skip

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "garbage":
            self._send(200, b"<html>this is not an API</html>", "text/html")
        elif self.mode == "busy":
            self._send(429, b'{"error": {"message": "slow down"}}')
        elif self.mode == "fail":
            self._send(500, b'{"error": {"message": "out of memory"}}')
        elif self.mode == "silent":
            time.sleep(3)
            self._send(200, b"{}")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("garbage", "not the chat completions API"), ("busy", "is busy (429"),
     ("fail", "failed (500): out of memory"), ("silent", "did not answer within 1 s")],
)  # fmt: skip
def test_misbehaving_servers(server_engine: Engine, mode: str, expected: str) -> None:
    handler = type("Handler", (_Scripted,), {"mode": mode})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        _add(mode, httpd.server_address[1], model="m", timeout_s=1.0)
        server_engine.set_llm_model(mode)
        t0 = time.perf_counter()
        _, answer = _ask(server_engine)
        assert time.perf_counter() - t0 < 10
        assert answer.error is not None and expected in answer.error, answer.error
        assert answer.evidence  # the evidence is still the answer
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_a_summary_through_the_server(server_engine: Engine, llama_server: int) -> None:
    from desktop_rag.core.tasks.summarize import Summary, summarize

    _add("team", llama_server)
    server_engine.set_llm_model("team")
    final = None
    for ev in summarize(server_engine, "orchard.pdf", length="short"):
        if isinstance(ev, Summary):
            final = ev
    assert final is not None and final.sentences
    assert all(s.citations for s in final.sentences)  # every sentence cited, model or not


# -- where connections go -----------------------------------------------------------------------
AUDIT = textwrap.dedent(
    """
    import json, os, socket, sys
    log = open(os.environ["CONNECT_LOG"], "a")
    def hook(event, args):
        if event == "socket.connect":
            sock, address = args
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                log.write(json.dumps(list(address[:2])) + "\\n"); log.flush()
        elif event == "socket.getaddrinfo":
            log.write(json.dumps(["resolve", str(args[0])]) + "\\n"); log.flush()
    sys.addaudithook(hook)
    from desktop_rag.cli import main
    main()
    """
)


def test_connections_go_to_the_configured_host_only(
    llama_server: int, indexed: Path, home: Path, tmp_path: Path
) -> None:
    """Every TCP connection and name lookup of ``ask`` is recorded (Python's audit hooks, PEP
    578): with a server selected, all go to its host and port; with the defaults, none at all."""
    import shutil

    shutil.copytree(indexed, home, dirs_exist_ok=True)
    log = tmp_path / "connects.jsonl"
    env = {**os.environ, "CONNECT_LOG": str(log)}
    run = [sys.executable, "-c", AUDIT]
    res = subprocess.run([*run, "ask", "--json", QUESTION], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["backend"].startswith("local: ")
    assert not log.exists() or log.read_text() == ""  # the defaults connect nowhere
    _add("team", llama_server)
    res = subprocess.run([*run, "ask", "--json", "--model", "team", QUESTION], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["backend"].startswith("server: team") and out["error"] is None
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    connects = [tuple(a) for a in seen if a[0] != "resolve"]
    assert connects and set(connects) == {("127.0.0.1", llama_server)}
    assert {a[1] for a in seen if a[0] == "resolve"} <= {"127.0.0.1"}


def test_cli_add_server_ask_and_status(llama_server: int, indexed: Path, home: Path,
                                       tmp_path: Path) -> None:  # fmt: skip
    import shutil

    shutil.copytree(indexed, home, dirs_exist_ok=True)
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    cli = [sys.executable, "-m", "desktop_rag"]
    res = subprocess.run([*cli, "models", "add-server", "team", "--url",
                          f"http://127.0.0.1:{llama_server}", "--model", "smol",
                          "--api-key-file", str(key_file), "--use"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Answers now come from server: team" in res.stdout and KEY not in res.stdout
    res = subprocess.run([*cli, "status", "--json"], capture_output=True, text=True, timeout=120)
    backend = json.loads(res.stdout)["backend"]
    assert backend["kind"] == "server" and backend["warning"] is None
    res = subprocess.run([*cli, "ask", QUESTION], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "From your documents:" in res.stdout
    stop_port = free_port()
    subprocess.run([*cli, "models", "add-server", "gone", "--url", f"http://127.0.0.1:{stop_port}",
                    "--model", "smol"], capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    res = subprocess.run([*cli, "ask", "--model", "gone", QUESTION], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 1  # the answer asked for could not be had...
    assert "From your documents:" in res.stdout  # ...but the evidence is printed
    assert "cannot be reached" in res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    res = subprocess.run([*cli, "models", "add-server", "pub", "--url", "http://8.8.8.8/v1",
                          "--model", "x"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0 and "public address" in res.stderr
