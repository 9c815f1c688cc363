"""The engine of desktop_rag: extraction, chunking, embeddings, store, retrieval and generation.

This package never imports Qt; the CLI, the tests and the GUI are all clients of it.
"""
