"""Saved conversations (SQLite, beside the index): listed, reopened after a restart, exported."""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop_rag.core.answer_text import message_text

if TYPE_CHECKING:
    from desktop_rag.core.types import Answer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations(
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY, conversation_id INTEGER NOT NULL REFERENCES conversations(id)
    ON DELETE CASCADE, role TEXT NOT NULL, text TEXT NOT NULL, sources TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL, checked TEXT NOT NULL DEFAULT '{}');
"""


@dataclass
class Message:
    """One chat message; ``sources`` are the citations' JSON objects (see ``Answer.to_json``);
    ``checked`` holds an answer's ``evidence``, ``checks`` and ``grounded`` as in
    ``Answer.to_json`` (empty for questions and for answers saved before the claim check)."""

    role: str
    text: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    id: int | None = None
    checked: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_answer(
        cls,
        answer: Answer | None,
        *,
        stopped: bool = False,
        streamed: str = "",
        streamed_evidence: list[dict[str, Any]] | None = None,
    ) -> Message:
        """The assistant message to save for an answer: its text (`` [stopped]`` appended when
        the person stopped it), its citations and what the check found. ``answer`` is None when
        generation ended without one (stopped or failed): the ``streamed`` text and evidence
        shown so far are kept instead."""
        text = answer.text if answer is not None else streamed
        if stopped:
            text = (text + " [stopped]").strip()
        data: dict[str, Any] = answer.to_json() if answer is not None else {}
        checked: dict[str, Any] = {
            key: data[key] for key in ("evidence", "checks", "grounded") if key in data
        }
        if answer is None and streamed_evidence:
            checked = {"evidence": list(streamed_evidence)}
        return cls("assistant", text, list(data.get("citations", [])), checked=checked)


@dataclass(frozen=True)
class ConversationInfo:
    """A conversation in the list (``updated`` is a Unix time in seconds)."""

    id: int
    title: str
    updated: float


class ConversationStore:
    """Conversations in ``<data>/conversations.sqlite3``; thread-safe (one lock, one connection)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA foreign_keys=ON")
        self._con.executescript(_SCHEMA)
        cols = {r[1] for r in self._con.execute("PRAGMA table_info(conversations)")}
        if "adapter" not in cols:  # databases made before style adapters existed
            self._con.execute("ALTER TABLE conversations ADD COLUMN adapter TEXT")
            self._con.execute("ALTER TABLE conversations ADD COLUMN adapter_scale REAL")
        cols = {r[1] for r in self._con.execute("PRAGMA table_info(messages)")}
        if "checked" not in cols:  # databases made before the claim check
            self._con.execute("ALTER TABLE messages ADD COLUMN checked TEXT NOT NULL DEFAULT '{}'")
        self._lock = threading.Lock()

    def set_style(self, conversation_id: int, adapter: str | None, scale: float) -> None:
        """Remember the conversation's style adapter (None = the base model) and its strength."""
        with self._lock:
            self._con.execute(
                "UPDATE conversations SET adapter=?, adapter_scale=? WHERE id=?",
                (adapter, float(scale), conversation_id),
            )

    def style(self, conversation_id: int) -> tuple[str | None, float]:
        """The conversation's style adapter and strength (``(None, 1.0)`` if never set)."""
        with self._lock:
            row = self._con.execute(
                "SELECT adapter, adapter_scale FROM conversations WHERE id=?", (conversation_id,)
            ).fetchone()
        if row is None or row[0] is None:
            return None, 1.0 if row is None or row[1] is None else float(row[1])
        return str(row[0]), 1.0 if row[1] is None else float(row[1])

    def create(self, title: str) -> int:
        """A new conversation; returns its id."""
        now = time.time()
        with self._lock:
            cur = self._con.execute("INSERT INTO conversations(title, created, updated) VALUES (?, ?, ?)",
                                    (title[:120] or "New chat", now, now))  # fmt: skip
            return int(cur.lastrowid or 0)

    def add(self, conversation_id: int, message: Message) -> int:
        """Append a message; returns its id."""
        now = time.time()
        with self._lock:
            cur = self._con.execute(
                "INSERT INTO messages(conversation_id, role, text, sources, created, checked) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    message.role,
                    message.text,
                    json.dumps(message.sources),
                    now,
                    json.dumps(message.checked),
                ),
            )
            self._con.execute(
                "UPDATE conversations SET updated=? WHERE id=?", (now, conversation_id)
            )
            return int(cur.lastrowid or 0)

    def list(self) -> list[ConversationInfo]:
        """All conversations, most recently updated first."""
        with self._lock:
            rows = self._con.execute(
                "SELECT id, title, updated FROM conversations ORDER BY updated DESC, id DESC"
            ).fetchall()
        return [ConversationInfo(*r) for r in rows]

    def messages(self, conversation_id: int) -> builtins.list[Message]:
        """The messages of a conversation in order."""
        with self._lock:
            rows = self._con.execute(
                "SELECT id, role, text, sources, checked FROM messages WHERE conversation_id=? "
                "ORDER BY id",
                (conversation_id,),
            ).fetchall()
        return [Message(r[1], r[2], json.loads(r[3]), r[0], json.loads(r[4] or "{}")) for r in rows]

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation and its messages."""
        with self._lock:
            self._con.execute("DELETE FROM conversations WHERE id=?", (conversation_id,))

    def to_markdown(self, conversation_id: int) -> str:
        """The conversation as Markdown: each question, then each answer as
        :func:`~desktop_rag.core.answer_text.answer_text` renders it (its evidence, its marks
        and its numbered sources)."""
        title = next((c.title for c in self.list() if c.id == conversation_id), "Conversation")
        out = [f"# {title}", ""]
        for m in self.messages(conversation_id):
            if m.role == "user":
                out += [f"**You:** {m.text}", ""]
            else:
                out += ["**Assistant:**", "", message_text(m, markdown=True), ""]
        return "\n".join(out).rstrip() + "\n"

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._con.close()
