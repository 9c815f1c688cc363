"""Ingest: from files on disk to stored chunks.

``extract`` (one small module per format, run in the ``sandbox`` child process), ``chunking``
(token-bounded chunks with their headings) and ``indexer`` (the resumable run that lists a
folder, extracts, chunks, embeds and writes to the index). May import: index, embed, text and the
shared modules; never search, generate or a client.
"""
