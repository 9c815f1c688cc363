"""``desktop-rag serve``: our own local API (see :mod:`desktop_rag.api.app` for the endpoints).

FastAPI and uvicorn are imported only when the command runs, so the main command line starts
as fast as before.
"""

from __future__ import annotations

import click

from desktop_rag.core.errors import UserError


@click.command()
@click.option("--host", default=None, metavar="ADDRESS",
              help="Address to listen on  [default: 127.0.0.1]. Anything but loopback lets other "
              "machines reach your documents (with the token): it is printed as a warning.")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="TCP port (0: any free port).")  # fmt: skip
@click.option("--queue", "queue_limit", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Answers admitted at a time, running and waiting for the model; one more "
              "gets 503 with Retry-After.")  # fmt: skip
@click.option("--show-token", is_flag=True,
              help="Print the API token (made on first use) and exit.")  # fmt: skip
def serve(host: str | None, port: int, queue_limit: int, show_token: bool) -> None:
    """Serve an OpenAI-compatible API answering from the indexed documents.

    POST /v1/chat/completions (streamed or not; "include_sources": true adds the sources and
    the claim check), POST /v1/search, GET /v1/collections, POST /v1/embeddings, GET /v1/models,
    and a public GET /health (503 while the models load). Every /v1 endpoint needs
    "Authorization: Bearer TOKEN" (see --show-token). Stops cleanly on Ctrl+C or SIGTERM.
    """
    from desktop_rag.logs import setup_logging

    try:
        setup_logging()
        _serve(host, port, queue_limit, show_token)
    except UserError as err:
        raise click.ClickException(str(err)) from None


def _serve(host: str | None, port: int, queue_limit: int, show_token: bool) -> None:
    from desktop_rag.api.server import (
        DEFAULT_HOST,
        ApiServer,
        is_loopback,
        load_or_create_token,
    )
    from desktop_rag.core.paths import app_paths

    paths = app_paths().ensure()
    token = load_or_create_token(paths)
    if show_token:
        click.echo(token)
        return
    host = host or DEFAULT_HOST
    if not is_loopback(host):
        click.echo(
            f"Warning: listening on {host}, not on this machine alone: anyone who can reach "
            f"it and has the token can read your indexed documents.",
            err=True,
        )
    from desktop_rag.core.engine import Engine

    engine = Engine(paths)  # opens the index (fast); the models load once serving
    try:
        server = ApiServer(engine, host, port, token, queue_limit)
        server.bind()  # a taken port fails here, before any model loads
        click.echo(
            f"desktop-rag API on {server.address}/v1 (token: `desktop-rag serve --show-token`, "
            f"stored in {paths.api_token_file}); the models load in the background "
            f"(GET /health says when they are ready). Ctrl+C stops.",
            err=True,
        )
        server.serve_forever()
    finally:
        engine.close()
    click.echo("Stopped.", err=True)
