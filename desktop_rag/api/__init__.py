"""Our own local API: ``desktop-rag serve``, an OpenAI-shaped HTTP server over the engine.

- :mod:`desktop_rag.api.app`: the FastAPI application (:func:`~desktop_rag.api.app.create_app`):
  chat completions answered from the indexed documents (streamed or not, sources as an opt-in
  extension), search, collections, embeddings, models and a public health check; the bearer
  token, the bounded queue of generation requests and the cancel of a disconnected stream.
- :mod:`desktop_rag.api.server`: :class:`~desktop_rag.api.server.ApiServer`, uvicorn in a
  background thread (the GUI) or on the main thread until Ctrl+C / SIGTERM (the command).
- :mod:`desktop_rag.api.cli`: the click command ``serve``.

Nothing here is imported by :mod:`desktop_rag.core` or at GUI start: FastAPI and uvicorn load
only when a server is made (this package's own modules import them; ``cli`` imports them
lazily).
"""
