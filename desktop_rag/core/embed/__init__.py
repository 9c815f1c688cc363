"""Embed: sentence embeddings on the CPU, offline.

``identity`` (what names a model, read without loading it), ``embedding`` (the ``Embedder``:
sentence-transformers or its ONNX graph) and ``onnx`` (the exported graph and its runtime).
May import: the shared modules only.
"""
