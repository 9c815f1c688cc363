"""Provably offline: index and ask with networking removed; our code imports no network client."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "desktop_rag"

#: Modules that open network connections. None may be imported by desktop_rag's own code.
NETWORK_MODULES = (
    "socket", "ssl", "http", "urllib.request", "urllib3", "requests", "httpx", "aiohttp",
    "websocket", "websockets", "ftplib", "smtplib", "telnetlib", "xmlrpc", "PySide6.QtNetwork",
    "grpc", "paramiko", "huggingface_hub", "openai", "httpx2", "uvicorn", "fastapi", "starlette",
)  # fmt: skip
#: The two places that may use the network, and only when the user asks: our own API server
#: (``desktop-rag serve``, a server by definition) and the inference-server backend, which
#: imports its client inside functions (nothing is loaded until a server model is used).
NETWORK_ALLOWED = "api/"
NETWORK_LAZY = "core/generate/server.py"

# Any connection attempt (other than a local AF_UNIX socketpair, which multiprocessing uses)
# raises; used where the kernel does not allow a network namespace.
GUARD = """
import socket
_real_connect = socket.socket.connect
def _refuse(self, address, *a, **k):
    if self.family != socket.AF_UNIX:
        raise OSError("network access attempted: " + repr(address))
    return _real_connect(self, address, *a, **k)
socket.socket.connect = _refuse
socket.create_connection = lambda *a, **k: (_ for _ in ()).throw(OSError("network access"))
"""


def _network_isolation() -> list[str]:
    """A command prefix that removes networking (unshare -rn), or [] if not allowed here."""
    unshare = shutil.which("unshare")
    if unshare:
        ok = subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0
        if ok:
            return [unshare, "-rn"]
    return []


def test_our_code_imports_no_network_client() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(NETWORK_ALLOWED):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # In the server backend, only imports inside functions (lazy) are allowed.
        top = tree.body if rel == NETWORK_LAZY else None
        for node in top if top is not None else ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if any(name == m or name.startswith(m + ".") for m in NETWORK_MODULES):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {name}")
    assert not offenders, offenders


@pytest.mark.slow
def test_index_and_ask_with_networking_removed(corpus: Path, tmp_path: Path) -> None:
    prefix = _network_isolation()
    env = {**os.environ, "DESKTOP_RAG_HOME": str(tmp_path / "offline-home")}
    # With no network namespace, a guard makes every connection attempt fail loudly instead.
    boot = [] if prefix else ["-c", GUARD + "\nfrom desktop_rag.cli import main; main()"]
    cli = [sys.executable, *(boot or ["-m", "desktop_rag"])]
    if prefix:
        probe = subprocess.run(
            [*prefix, sys.executable, "-c",
             "import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()
    res = subprocess.run([*prefix, *cli, "index", str(corpus)], env=env, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Indexed 6 file(s)" in res.stdout
    question = "How many tonnes of apples did the orchard yield in 2022?"
    res = subprocess.run([*prefix, *cli, "ask", "--json", question], env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["citations"][0]["page"] == 2 and out["answer"].strip()
    assert "network access" not in res.stderr


@pytest.mark.slow
@pytest.mark.gui
def test_gui_session_offline_loads_no_network_module(corpus: Path, tmp_path: Path) -> None:
    """A scripted GUI session (index, ask) in a process without networking; QtNetwork and HTTP
    clients of our own (openai, the API server) are never loaded by it."""
    pytest.importorskip("PySide6")
    script = f"""
import sys
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QTimer
from desktop_rag.gui.main_window import MainWindow
app = QApplication([])
w = MainWindow(watch=False)
w.show()
def ask(_):
    w.input.setPlainText("How many tonnes of apples did the orchard yield in 2022?")
    w.send()
def done(answer):
    print("ANSWER", bool(answer and answer.text.strip()))
    # httpx/httpx2 and requests are not listed: transformers.utils.hub imports huggingface_hub's
    # HTTP client whenever the embedder loads (never used: HF_HUB_OFFLINE, and the network is
    # gone). What only our code would load must stay out: Qt's networking, the openai client,
    # the API server's stack.
    loaded = sorted(m for m in sys.modules if m.startswith(("PySide6.QtNetwork", "aiohttp",
                                                            "websocket", "openai", "uvicorn",
                                                            "fastapi", "starlette")))
    print("NETWORK_MODULES", loaded)
    app.quit()
w.indexing_finished.connect(ask)
w.answer_finished.connect(done)
w.ready.connect(lambda: w.add_paths([{str(corpus)!r}]))
QTimer.singleShot(300_000, app.quit)
app.exec()
w.shutdown()
"""
    env = {**os.environ, "DESKTOP_RAG_HOME": str(tmp_path / "gui-home"),
           "QT_QPA_PLATFORM": "offscreen"}  # fmt: skip
    prefix = _network_isolation()
    code = script if prefix else GUARD + script
    res = subprocess.run([*prefix, sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ANSWER True" in res.stdout, res.stdout + res.stderr[-2000:]
    assert "NETWORK_MODULES []" in res.stdout
