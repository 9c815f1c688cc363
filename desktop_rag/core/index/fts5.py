"""SQLite FTS5 internals the lexical index reads: the tokenizer of ``chunks_fts``, the terms it
makes of a word, and the varints of its ``docsize`` rows.

Used by the store (document frequencies) and by the in-memory postings (which must hold exactly
FTS5's terms, so BM25 scores equal FTS5's).
"""

from __future__ import annotations

import re
import sqlite3
import string
from collections.abc import Iterable

# A text's words: its white-space separated pieces, ASCII punctuation turned into spaces first.
# FTS5's unicode61 never joins characters across white space or ASCII punctuation (separators in
# every Unicode category setting but custom ``tokenchars``), so a text's FTS5 tokens are exactly
# its words' FTS5 tokens, and each distinct word is tokenized by FTS5 once (:func:`fts5_terms`).
PUNCTUATION_TO_SPACE = str.maketrans({c: " " for c in string.punctuation})
_TOKENIZE_RE = re.compile(r"tokenize\s*=\s*'((?:[^']|'')*)'", re.IGNORECASE)
# word -> its FTS5 terms (a word of several tokens is a phrase), per tokenizer; bounded.
_TERMS: dict[str, dict[str, tuple[str, ...]]] = {}


def table_tokenizer(con: sqlite3.Connection) -> str:
    """The tokenizer declaration of ``chunks_fts`` (e.g. ``porter unicode61 remove_diacritics
    2``)."""
    row = con.execute("SELECT sql FROM sqlite_master WHERE name='chunks_fts'").fetchone()
    found = _TOKENIZE_RE.search(str(row[0])) if row else None
    return found.group(1).replace("''", "'") if found else "unicode61"


def fts5_terms(
    con: sqlite3.Connection,
    words: Iterable[str],
    cache: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, tuple[str, ...]]:
    """The FTS5 terms of each of ``words`` (case folded, diacritics removed, Porter-stemmed: by
    ``chunks_fts``'s own tokenizer, so they are exactly the terms it indexes; a word of
    several tokens has several, none has none). Each word not in ``cache`` (default: one kept
    per tokenizer, bounded) is one row of a temporary FTS5 table on ``con``, read back through
    ``fts5vocab``: about 10 us a word."""
    words = list(words)
    if cache is None:
        cache = _TERMS.setdefault(table_tokenizer(con), {})
        if len(cache) > 200_000:  # bound the memory of a long session
            cache.clear()
    todo = [w for w in dict.fromkeys(words) if w not in cache]
    if todo:
        quoted = table_tokenizer(con).replace("'", "''")
        con.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.drag_words USING fts5(w, "
                    f"tokenize='{quoted}')")  # fmt: skip
        con.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.drag_words_i USING "
                    "fts5vocab(temp, drag_words, instance)")  # fmt: skip
        got: dict[int, list[str]] = {}
        try:
            con.executemany("INSERT INTO temp.drag_words(rowid, w) VALUES (?, ?)",
                            enumerate(todo))  # fmt: skip
            for doc, term in con.execute(
                "SELECT doc, term FROM temp.drag_words_i ORDER BY doc, offset"
            ):
                got.setdefault(int(doc), []).append(str(term))
        finally:
            con.execute("DELETE FROM temp.drag_words")
        for i, w in enumerate(todo):
            cache[w] = tuple(got.get(i, ()))
    return {w: cache[w] for w in words}


def fts5_term(con: sqlite3.Connection, word: str) -> str | None:
    """The one FTS5 term of ``word`` (None: it has none, or several, a phrase)."""
    terms = fts5_terms(con, [word])[word]
    return terms[0] if len(terms) == 1 else None


def chunk_tokens(con: sqlite3.Connection, text: str, context: str) -> tuple[list[str], list[str]]:
    """FTS5's own terms of one chunk's text and context (a temporary FTS5 table, read back
    through ``fts5vocab``), for a chunk whose words do not give FTS5's token counts."""
    quoted = table_tokenizer(con).replace("'", "''")
    con.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.drag_chunk USING fts5(text, context, "
                f"tokenize='{quoted}')")  # fmt: skip
    con.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.drag_chunk_i USING "
                "fts5vocab(temp, drag_chunk, instance)")  # fmt: skip
    cols: tuple[list[str], list[str]] = ([], [])
    try:
        con.execute("INSERT INTO temp.drag_chunk(rowid, text, context) VALUES (1, ?, ?)",
                    (text, context))  # fmt: skip
        for col, term in con.execute("SELECT col, term FROM temp.drag_chunk_i"):
            cols[0 if col == "text" else 1].append(str(term))
    finally:
        con.execute("DELETE FROM temp.drag_chunk")
    return cols


def varints(data: bytes) -> list[int]:
    """Decode SQLite's big-endian varints (7 bits a byte, the ninth byte whole)."""
    out: list[int] = []
    i = 0
    while i < len(data):
        value = 0
        for k in range(9):
            if i >= len(data):  # truncated: keep what was whole
                return out
            c = data[i]
            i += 1
            if k == 8:
                value = (value << 8) | c
                break
            value = (value << 7) | (c & 0x7F)
            if not c & 0x80:
                break
        out.append(value)
    return out
