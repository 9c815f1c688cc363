"""Index: what is stored and how it is looked up.

``store`` (SQLite in WAL mode, the source of truth: files, pages, chunks, embeddings, FTS5),
``vectors`` (the hnswlib cache rebuilt from it), ``postings`` (the in-memory lexical cache of
FTS5's index) and ``fts5`` (the FTS5 internals both read). May import: embed (identities only),
text and the shared modules.
"""
