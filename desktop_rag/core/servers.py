"""Inference servers added as generation backends: the registry, and where each one may connect.

A team's server (llama.cpp's ``llama-server``, llama-cpp-python's ``llama_cpp.server``, vLLM,
Ollama's ``/v1``, LM Studio) speaks the OpenAI chat completions API. Each one added with
``desktop-rag models add-server`` (or the window's Models panel) is a :class:`ServerConfig` in
``servers.json`` beside the settings: a name, the API's base URL, the model name the server
serves, a timeout and a context window. Its API key, if any, is never in that file: it is copied
into ``keys/NAME.key`` with user-only permissions (see :func:`~desktop_rag.core.files.write_private`)
and read only when a request is made; it is never logged or printed.

The offline promise: nothing here opens a connection. With no server selected the app connects
nowhere; with one selected it connects to that server's host and port only (the backend's HTTP
client is given that base URL and no proxy from the environment: ``trust_env`` off).
:func:`address_warning` says when a URL is neither loopback nor a private-network address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from desktop_rag.core.errors import UserError
from desktop_rag.core.files import atomic_write, read_private, write_private
from desktop_rag.core.paths import app_paths

#: Seconds a server may take to send the first byte of a reply, or between two pieces of a
#: stream, before the request fails (a 135M model on a laptop is slower than any server; a
#: large model on a busy server may need a minute for a long prompt).
DEFAULT_TIMEOUT_S: Final = 60.0
#: The context window assumed for a server's model, in tokens (llama.cpp's and vLLM's common
#: default; set ``--context`` to what the server was started with).
DEFAULT_CONTEXT: Final = 4096
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: Host name endings of local networks (RFC 6762 ".local", RFC 8375 ".home.arpa", and the
#: common ".lan", ".internal", ".localdomain"); a name without a dot is a local host too.
_LOCAL_SUFFIXES: Final = (".local", ".lan", ".internal", ".localdomain", ".home.arpa")


@dataclass(frozen=True)
class ServerConfig:
    """One OpenAI-compatible inference server.

    ``url``: the API's base URL, ending in ``/v1`` (e.g. ``http://10.0.0.5:8080/v1``);
    ``model``: the model name its ``/v1/models`` lists; ``timeout_s``: seconds (see
    :data:`DEFAULT_TIMEOUT_S`); ``context``: the model's context window in tokens;
    ``has_key``: whether an API key is stored for it (in :meth:`key_file`).
    """

    name: str
    url: str
    model: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    context: int = DEFAULT_CONTEXT
    has_key: bool = False

    @property
    def host(self) -> str:
        """The host name or address the server is reached at."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The TCP port (80 or 443 when the URL names none)."""
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def label(self) -> str:
        """How the app names this backend: ``server: NAME (URL, model MODEL)``."""
        return f"server: {self.name} ({self.url}, model {self.model})"

    def key_file(self) -> Path:
        """Where this server's API key is kept (user-only)."""
        return app_paths().keys_dir / f"{self.name}.key"

    def api_key(self) -> str | None:
        """The stored API key, or None when the server needs none.

        Raises:
            UserError: the key file is missing, unreadable or readable by other users.
        """
        if not self.has_key:
            return None
        try:
            return read_private(self.key_file())
        except OSError as exc:
            raise UserError(
                f"the API key of server {self.name!r} cannot be read: {exc}",
                hint=f"add it again: desktop-rag models add-server {self.name} --url {self.url} "
                f"--model {self.model} --api-key-file FILE",
            ) from exc


def normalize_url(url: str) -> str:
    """``url`` as a base URL of the OpenAI API: scheme and host checked, no trailing slash, and
    ``/v1`` appended when it has no path (``http://host:8080`` -> ``http://host:8080/v1``).

    Raises:
        UserError: not an http(s) URL with a host, or it carries a user name or password.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"{url!r} is not a server address", hint="give one like http://10.0.0.5:8080/v1"
        )
    if parts.username or parts.password:
        raise UserError(
            "the server address must not hold a user name or password",
            hint="give the key with --api-key-file",
        )
    try:
        _ = parts.port
    except ValueError as exc:
        raise UserError(f"{url!r} has an invalid port") from exc
    path = parts.path.rstrip("/") or "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def address_warning(url: str) -> str | None:
    """A warning when ``url``'s host is neither loopback nor a private-network address (RFC
    1918, RFC 4193, link-local, or a local host name: :data:`_LOCAL_SUFFIXES`, or no dot), as
    text; None when it is. Nothing is resolved (a DNS query would be a connection itself)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or "." not in host or host.endswith(_LOCAL_SUFFIXES):
            return None
        return (
            f"{host} is a public host name, not a loopback or private-network address: "
            "questions and passages of your documents are sent to it"
        )
    if ip.is_loopback or ip.is_private or ip.is_link_local:
        return None
    return (
        f"{host} is a public address, not a loopback or private-network one: questions and "
        "passages of your documents are sent to it"
    )


def load_servers() -> list[ServerConfig]:
    """The servers added, in the order they were added (none when the file is missing or
    unreadable, and an entry that does not parse is left out: never fatal)."""
    path = app_paths().servers_file
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out = []
    for item in raw.get("servers", []) if isinstance(raw, dict) else []:
        with contextlib.suppress(TypeError, ValueError, KeyError):
            out.append(
                ServerConfig(
                    name=str(item["name"]),
                    url=normalize_url(str(item["url"])),
                    model=str(item["model"]),
                    timeout_s=float(item.get("timeout_s", DEFAULT_TIMEOUT_S)),
                    context=int(item.get("context", DEFAULT_CONTEXT)),
                    has_key=bool(item.get("has_key", False)),
                )
            )
    return out


def find_server(name: str) -> ServerConfig | None:
    """The server added under ``name``, or None."""
    return next((s for s in load_servers() if s.name == name), None)


def _save(servers: list[ServerConfig]) -> None:
    paths = app_paths()
    paths.config.mkdir(parents=True, exist_ok=True)
    data = {"servers": [asdict(s) for s in servers]}
    atomic_write(paths.servers_file, (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def add_server(
    name: str,
    url: str,
    model: str,
    *,
    api_key: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    context: int = DEFAULT_CONTEXT,
) -> ServerConfig:
    """Add (or replace) a server. Nothing is contacted: :meth:`ServerLLM.load
    <desktop_rag.core.generate.server.ServerLLM.load>` checks it when it is first used.

    ``api_key``: stored user-only in :meth:`ServerConfig.key_file`; None removes a stored one.

    Raises:
        UserError: a bad name (letters, digits, ``.``, ``_``, ``-``; at most 64), URL (see
            :func:`normalize_url`), empty model name, timeout or context. (A name a local model
            has is refused by :func:`~desktop_rag.core.models.add_server_model`.)
    """
    if not _NAME_RE.match(name):
        raise UserError(
            f"{name!r} is not a usable server name",
            hint="letters, digits, '.', '_' and '-', at most 64 characters",
        )
    if not model.strip():
        raise UserError(
            "the model name is empty", hint="give the name the server's /v1/models lists"
        )
    if not 1 <= timeout_s <= 3600:
        raise UserError("the timeout must be 1 to 3,600 seconds")
    if not 512 <= context <= 1_048_576:
        raise UserError("the context window must be 512 tokens or more")
    config = ServerConfig(name, normalize_url(url), model.strip(), float(timeout_s), int(context),
                          api_key is not None)  # fmt: skip
    if api_key is not None:
        if not api_key.strip() or any(c in api_key.strip() for c in "\r\n"):
            raise UserError("the API key file must hold the key on one line")
        write_private(config.key_file(), api_key.strip() + "\n")
    else:
        config.key_file().unlink(missing_ok=True)
    servers = [s for s in load_servers() if s.name != name]
    _save([*servers, config])
    return config


def remove_server(name: str) -> bool:
    """Remove a server and its stored key; False when none had that name."""
    servers = load_servers()
    kept = [s for s in servers if s.name != name]
    if len(kept) == len(servers):
        return False
    _save(kept)
    (app_paths().keys_dir / f"{name}.key").unlink(missing_ok=True)
    return True
