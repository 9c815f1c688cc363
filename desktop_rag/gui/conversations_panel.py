"""The saved conversations: the list, New chat, Export, and the conversation being shown.

The panel owns the :class:`ConversationStore` and the current conversation (its id and
messages); it saves every message and style change. Opening one or starting a new one is asked
for with ``open_requested`` / ``new_requested``: the chat decides (not while it answers).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QListView, QPushButton, QVBoxLayout, QWidget

from desktop_rag.core.conversations import ConversationStore, Message
from desktop_rag.gui.models import ConversationsModel, IdRole
from desktop_rag.gui.tasks import Notifier
from desktop_rag.gui.widgets import section


class ConversationsPanel(QWidget):
    """The "Conversations" section; :attr:`conversation_id` and :attr:`messages` are the
    conversation shown (None and [] for a new chat, until its first question)."""

    open_requested = Signal(int)
    new_requested = Signal()

    def __init__(self, path: Path, notifier: Notifier, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = ConversationStore(path)
        self.notifier = notifier
        self.conversation_id: int | None = None
        self.messages: list[Message] = []
        self.model = ConversationsModel()
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setWordWrap(True)
        self.view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.clicked.connect(lambda idx: self.open_requested.emit(idx.data(IdRole)))
        new_btn = QPushButton("New chat")
        new_btn.clicked.connect(self.new_requested)
        export_btn = QPushButton("Export…")
        export_btn.clicked.connect(lambda: self.export())
        buttons = QHBoxLayout()
        buttons.addWidget(new_btn)
        buttons.addWidget(export_btn)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(section("Conversations"))
        layout.addWidget(self.view, 1)
        layout.addLayout(buttons)
        self.refresh()

    def refresh(self) -> None:
        """Reload the conversation list."""
        self.model.set_items(self.store.list())

    def start_new(self) -> None:
        """Show no conversation: the next question starts a new one."""
        self.conversation_id = None
        self.messages = []

    def load(self, conversation_id: int) -> tuple[str | None, float]:
        """Make ``conversation_id`` the current conversation; returns its style."""
        self.conversation_id = conversation_id
        self.messages = self.store.messages(conversation_id)
        return self.store.style(conversation_id)

    def add_question(self, text: str, adapter: str | None, scale: float) -> None:
        """Save a question (starting a conversation titled after it if none is current) and the
        style it is asked with."""
        if self.conversation_id is None:
            self.conversation_id = self.store.create(text[:80])
        self.store.set_style(self.conversation_id, adapter, scale)
        self._add(Message("user", text))

    def add_answer(self, message: Message) -> None:
        """Save an answer to the current conversation (kept in memory when there is none)."""
        self._add(message)

    def _add(self, message: Message) -> None:
        if self.conversation_id is not None:
            message.id = self.store.add(self.conversation_id, message)
        self.messages.append(message)

    def save_style(self, adapter: str | None, scale: float) -> None:
        """Remember the style of the current conversation (none: nothing to do)."""
        if self.conversation_id is not None:
            self.store.set_style(self.conversation_id, adapter, scale)

    def export(self, path: str | None = None) -> None:
        """Save the current conversation as Markdown (asks where when ``path`` is not given)."""
        if self.conversation_id is None:
            self.notifier.info("No conversation to export.", 4000)
            return
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Export conversation", "conversation.md",
                                                  "Markdown (*.md)")  # fmt: skip
        if path:
            try:
                Path(path).write_text(
                    self.store.to_markdown(self.conversation_id), encoding="utf-8"
                )
            except OSError as exc:
                self.notifier.error(exc, "Exporting the conversation")
                return
            self.notifier.info(f"Saved {path}", 5000)

    def close_store(self) -> None:
        """Close the conversation database."""
        self.store.close()
