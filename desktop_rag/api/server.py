"""Run the API (:func:`desktop_rag.api.app.create_app`) with uvicorn: in a background thread
(:meth:`ApiServer.start` / :meth:`ApiServer.stop`, for the GUI) or on the main thread until
Ctrl+C or SIGTERM (:meth:`ApiServer.serve_forever`, for ``desktop-rag serve``).

The listening socket is bound before uvicorn starts, so a port in use is a clear
:class:`PortInUseError` at once, and port 0 picks a free port (:attr:`ApiServer.port` is then the
one bound). The bearer token lives in ``app_paths().api_token_file`` (mode 0600), made on first
use (:func:`load_or_create_token`).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import secrets
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import uvicorn

from desktop_rag.api.app import create_app
from desktop_rag.core.errors import UserError
from desktop_rag.core.files import read_private, write_private
from desktop_rag.core.paths import AppPaths, app_paths

if TYPE_CHECKING:
    from desktop_rag.core.engine import Engine

log = logging.getLogger(__name__)

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8765
DEFAULT_QUEUE: Final = 4
#: Seconds open streams get to finish when the server stops, before they are cancelled.
GRACEFUL_S: Final = 3
#: Seconds :meth:`ApiServer.start` waits for uvicorn to be listening.
START_TIMEOUT_S: Final = 30.0


class PortInUseError(UserError):
    """The address and port to listen on are taken (or cannot be bound)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"cannot listen on {host}:{port}: {reason}",
            hint="choose another port with --port, or stop the program that uses this one",
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_or_create_token(paths: AppPaths | None = None) -> str:
    """The API's bearer token: read from ``api_token_file``, or made there on first use
    (``secrets.token_urlsafe(32)``, written user-only with :func:`write_private`).

    Raises:
        UserError: the token file cannot be read or written, or others can read it.
    """
    path = (paths or app_paths()).api_token_file
    try:
        if path.exists():
            token = read_private(path)
            if token:
                return token
        token = secrets.token_urlsafe(32)
        write_private(path, token + "\n")
        return token
    except PermissionError as exc:
        raise UserError(str(exc), hint=f"or delete {path} to get a new token") from None
    except OSError as exc:
        raise UserError(f"cannot use the API token file {path}: {exc}") from None


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: a free one).

    Raises:
        PortInUseError: the port is taken, or the address cannot be bound.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortInUseError(host, port, f"unknown host ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = (
            "the port is already in use"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror or str(exc)
        )
        raise PortInUseError(host, port, reason) from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server with our signal handling: on the main thread, SIGINT and SIGTERM ask
    for a graceful stop (a second one forces it) and are not raised again afterwards, so a
    clean stop exits 0; elsewhere (a background thread) no handler is installed."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            if self.should_exit and signum == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

        old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29 calls this instead
        """Handled by :meth:`capture_signals`."""


class ApiServer:
    """The API over ``engine`` on ``host``:``port``, guarded by ``token`` (None: the stored one,
    made on first use), admitting ``queue_limit`` generation requests at a time.

    The engine stays the caller's (it is not closed here).
    """

    def __init__(
        self,
        engine: Engine,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str | None = None,
        queue_limit: int = DEFAULT_QUEUE,
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.token = token or load_or_create_token(engine.paths)
        self.queue_limit = queue_limit
        self._server: _Server | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``http://host:port`` (the port bound, once bound)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the background server thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def bind(self) -> None:
        """Bind the listening socket now (idempotent); :attr:`port` becomes the port bound.

        Raises:
            PortInUseError: the port is taken.
        """
        if self._socket is None:
            self._socket = bind_socket(self.host, self.port)
            self.port = int(self._socket.getsockname()[1])

    def _make_server(self) -> _Server:
        app = create_app(self.engine, self.token, self.queue_limit)
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                timeout_graceful_shutdown=GRACEFUL_S)  # fmt: skip
        self._server = _Server(config)
        return self._server

    def _run(self, server: _Server) -> None:
        assert self._socket is not None
        try:
            server.run(sockets=[self._socket])
        finally:
            self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Serve in a background thread; return once it listens (the models may still load:
        ``/health`` says when they are ready).

        Raises:
            PortInUseError: the port is taken.
            RuntimeError: it is running already, or uvicorn did not start within ``timeout``.
        """
        if self.running:
            raise RuntimeError("the API server is running already")
        self.bind()
        server = self._make_server()
        self._thread = threading.Thread(target=self._run, args=(server,), name="api-server")
        self._thread.start()
        waited = threading.Event()
        while not server.started and self._thread.is_alive() and timeout > 0:
            waited.wait(0.02)
            timeout -= 0.02
        if not server.started:
            self.stop()
            raise RuntimeError(f"the API server did not start on {self.address}")
        log.info("API server listening on %s", self.address)

    def stop(self, timeout: float | None = None) -> None:
        """Stop serving and join the server thread (open streams get :data:`GRACEFUL_S`
        seconds, then are cancelled). Idempotent."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None
        self._close_socket()

    def serve_forever(self) -> None:
        """Serve on this (the main) thread until Ctrl+C or SIGTERM, then stop cleanly.

        Raises:
            PortInUseError: the port is taken.
        """
        self.bind()
        self._run(self._make_server())

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
