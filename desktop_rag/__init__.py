"""desktop_rag: an offline desktop document assistant (retrieval-augmented generation on CPU)."""

__version__ = "0.1.0"
