"""The chat panel's transcript and conversations, driven through the real widgets (pytest-qt):
streaming touches only the answer being written, the finished transcript equals a full render,
citation links open their source, and conversations load off the GUI thread.

The answers are streamed by real workers on the task runner's LLM pool from generators that
yield what ``Engine.ask`` yields (evidence, text pieces, the :class:`Answer`), so no model loads.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import QMainWindow

from desktop_rag.core.conversations import ConversationStore, Message
from desktop_rag.core.engine import Engine
from desktop_rag.core.types import (
    Answer,
    CancelToken,
    Check,
    Citation,
    Evidence,
    EvidenceFound,
    Hit,
    Timings,
)
from desktop_rag.gui.chat import render_conversation
from desktop_rag.gui.chat_panel import ChatPanel
from desktop_rag.gui.conversations_panel import ConversationsPanel
from desktop_rag.gui.style_bar import StyleBar
from desktop_rag.gui.tasks import Notifier, TaskRunner

pytestmark = [
    pytest.mark.gui,
    pytest.mark.qt_log_ignore("This plugin does not support propagateSizeHints"),
]

ANSWER = ("In 2022 the orchard yielded 38 tonnes of apples [1]. Frost in April damaged the "
          "blossom on 12 lower rows, so the harvest was later than usual [2].\n") * 6  # fmt: skip


def _hit(n: int, path: str) -> Hit:
    text = "In 2022 the orchard yielded 38 tonnes of apples. Frost in April damaged the blossom."
    return Hit(chunk_id=n, file_id=n, path=path, page=2, start=0, end=len(text), text=text,
               context="", score=0.5)  # fmt: skip


def _answer(text: str) -> Answer:
    """A real :class:`Answer` for ``text``: two sources, [1] cited, "12" unsupported."""
    hits = [_hit(1, "/docs/orchard.pdf"), _hit(2, "/docs/notes.md")]
    s = text.index("12")
    return Answer(
        text=text, abstained=False, timings=Timings(5.0, 0.2, 40.0),
        citations=(Citation(1, hits[0], True), Citation(2, hits[1], False)),
        evidence=(Evidence(1, hits[0], 0, 48, hits[0].text[:48], 1.0),),
        generated=text, grounded=True,
        checks=(Check(s, s + 2, "12", "figure", False, ()), Check(0, 7, "2022", "figure", True, (1,))),
    )  # fmt: skip


def _work(text: str, piece_s: float = 0.001) -> Any:
    """What ``Engine.ask`` yields for an answer ``text``, word by word on the worker thread."""

    def work(cancel: CancelToken) -> Iterator[object]:
        answer = _answer(text)
        yield EvidenceFound(answer.evidence)
        for word in text.split(" "):
            if cancel.cancelled:
                return
            time.sleep(piece_s)
            yield word + " "
        yield answer

    return work


def _conversation(qtbot, path: Path, n: int) -> int:  # type: ignore[no-untyped-def]
    """Save a conversation of ``n`` messages (questions and checked answers with sources), on
    a thread of its own while the event loop runs (SQLite stays off the GUI thread here too);
    returns its id."""
    ids: list[int] = []
    thread = threading.Thread(target=lambda: ids.append(_save_conversation(path, n)))
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=30_000)
    return ids[0]


def _save_conversation(path: Path, n: int) -> int:
    store = ConversationStore(path)
    cid = store.create("The orchard")
    for i in range(n):
        if i % 2 == 0:
            store.add(cid, Message("user", f"Question {i}: how many tonnes in 2022?\nAnd why?"))
        else:
            a = _answer(f"Answer {i}: " + ANSWER[:160])
            data = a.to_json()
            checked = {k: data[k] for k in ("evidence", "checks", "grounded")}
            store.add(cid, Message("assistant", a.text, data["citations"], checked=checked))  # type: ignore[arg-type]
    store.close()
    return cid


@pytest.fixture
def chat(qtbot, fake_engine: Engine, home: Path) -> Iterator[ChatPanel]:  # type: ignore[no-untyped-def]
    """A shown chat panel over the real conversation store, task runner and notifier."""
    host = QMainWindow()
    notifier = Notifier(host.statusBar(), host)
    runner = TaskRunner(notifier, host)
    conversations = ConversationsPanel(home / "conversations.sqlite3", runner)
    style_bar = StyleBar(fake_engine.paths, runner)
    panel = ChatPanel(fake_engine, runner, conversations, style_bar, lambda: None)
    host.setCentralWidget(panel)
    host.resize(900, 600)
    qtbot.addWidget(host)
    host.show()
    qtbot.waitUntil(lambda: not conversations.pending, timeout=10_000)
    yield panel
    panel.shutdown()
    assert runner.shutdown(10_000), "a worker thread was left running"
    conversations.close_store()


def _open(qtbot, chat: ChatPanel, cid: int) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(chat.conversation_shown, timeout=20_000):
        chat.open_conversation(cid)


def _full_render(chat: ChatPanel) -> str:
    """The transcript rendered at once from the messages, in a document like the view's."""
    doc = QTextDocument()
    doc.setDefaultFont(chat.transcript.document().defaultFont())
    doc.setHtml(render_conversation(chat.messages))
    return doc.toHtml()


def _link_point(chat: ChatPanel, href: str, text: str = "[1]") -> QPoint:
    """Scroll to the link ``text`` to ``href`` and return a point on it (viewport
    coordinates)."""
    doc = chat.transcript.document()
    cursor = doc.find(text, 0)
    while not cursor.isNull() and cursor.charFormat().anchorHref() != href:
        cursor = doc.find(text, cursor.selectionEnd())
    assert not cursor.isNull(), f"no link to {href}"
    chat.transcript.setTextCursor(cursor)
    chat.transcript.ensureCursorVisible()
    middle = QTextCursor(doc)
    middle.setPosition(cursor.selectionStart() + 1)
    return chat.transcript.cursorRect(middle).center()


def test_streaming_into_a_long_conversation_changes_only_the_answer(
    qtbot, chat: ChatPanel, home: Path
) -> None:  # type: ignore[no-untyped-def]
    cid = _conversation(qtbot, home / "conversations.sqlite3", 58)
    _open(qtbot, chat, cid)
    view = chat.transcript
    doc = view.document()
    assert view.message_count == 58 and doc.toHtml() == _full_render(chat)
    changes: list[int] = []
    doc.contentsChange.connect(lambda pos, removed, added: changes.append(pos))

    with qtbot.waitSignal(chat.answer_finished, timeout=30_000) as finished:
        chat.start_answer("What did the orchard yield?", _work(ANSWER))
        # The question is appended once, after the 58 messages; then the answer streams.
        question_end, before = view.stream_position, changes[0]
        assert question_end is not None
        blocks = doc.findBlock(question_end).blockNumber()
        earlier = doc.toPlainText()[:question_end]
        qtbot.waitUntil(lambda: "harvest was later" in doc.toPlainText(), timeout=20_000)
        # Mid-stream: the messages before are the same text, the same blocks, never touched.
        assert doc.toPlainText()[:question_end] == earlier
        assert doc.findBlock(question_end).blockNumber() == blocks
        assert "▍" in doc.toPlainText()
    assert finished.args[0] is not None
    assert changes and min(changes) >= before, "streaming changed an earlier message"
    assert min(changes[1:]) >= question_end, "streaming changed the question"
    assert len(changes) > 10, "the answer was not streamed in pieces"
    # Finished: the answer re-rendered once with its marks and links: exactly a full render.
    assert view.message_count == len(chat.messages) == 60
    assert doc.toHtml() == _full_render(chat)
    html = doc.toHtml()
    assert 'href="cite:59:1"' in html and 'href="evidence:59:0"' in html
    assert "▍" not in doc.toPlainText() and "12?" in doc.toPlainText()  # "12" marked


def test_the_view_follows_the_answer_unless_scrolled_up(qtbot, chat: ChatPanel, home: Path) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, chat, _conversation(qtbot, home / "conversations.sqlite3", 20))
    bar = chat.transcript.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == bar.maximum()
    with qtbot.waitSignal(chat.answer_finished, timeout=30_000):
        chat.start_answer("What did the orchard yield?", _work(ANSWER * 2, piece_s=0.004))
        qtbot.waitUntil(lambda: len(chat._streaming or "") > 200, timeout=20_000)
        qtbot.wait(100)
        assert bar.value() == bar.maximum(), "the view did not follow the answer"
        bar.setValue(0)  # the person scrolls up to read
        grown = bar.maximum()
        qtbot.waitUntil(lambda: bar.maximum() > grown, timeout=20_000)
        assert bar.value() == 0, "the view jumped to the end while the person read above"


def test_a_citation_link_opens_its_source(qtbot, chat: ChatPanel, home: Path) -> None:  # type: ignore[no-untyped-def]
    _open(qtbot, chat, _conversation(qtbot, home / "conversations.sqlite3", 4))
    with qtbot.waitSignal(chat.answer_finished, timeout=30_000):
        chat.start_answer("What did the orchard yield?", _work(ANSWER[:200]))
    # A click on [1] of the answer just streamed (message 5) and of a loaded one (message 1).
    for index in (5, 1):
        point = _link_point(chat, f"cite:{index}:1")
        with qtbot.waitSignal(chat.citation_clicked, timeout=5_000) as clicked:
            qtbot.mouseClick(chat.transcript.viewport(), Qt.MouseButton.LeftButton, pos=point)
        sources, n = clicked.args
        assert n == 1 and sources == chat.messages[index].sources
        assert sources[0]["file"] == "/docs/orchard.pdf"
    # The evidence quoted above the answer opens its sentence.
    point = _link_point(chat, "evidence:5:0", "In 2022 the orchard")
    with qtbot.waitSignal(chat.evidence_clicked, timeout=5_000) as opened:
        qtbot.mouseClick(chat.transcript.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert opened.args[0] == chat.messages[5].checked["evidence"][0]


def test_opening_a_long_conversation_loads_it_off_the_gui_thread(
    qtbot, chat: ChatPanel, home: Path
) -> None:  # type: ignore[no-untyped-def]
    path = home / "conversations.sqlite3"
    short, long = _conversation(qtbot, path, 2), _conversation(qtbot, path, 300)
    chat.open_conversation(short)
    chat.open_conversation(long)
    # Nothing was read on the GUI thread: a placeholder, no messages yet.
    assert "Opening the conversation" in chat.transcript.toPlainText()
    assert chat.messages == [] and chat.opening
    chat.input.setPlainText("Another question?")
    chat.send()  # refused while the conversation opens
    assert chat.worker is None
    with qtbot.waitSignal(chat.conversation_shown, timeout=30_000) as shown:
        pass
    assert shown.args[0] == long and chat.conversations.conversation_id == long
    assert len(chat.messages) == 300 and chat.transcript.message_count == 300
    assert chat.transcript.document().toHtml() == _full_render(chat)
    assert "Opening the conversation" not in chat.transcript.toPlainText()


def test_send_with_nothing_indexed_says_so(qtbot, chat: ChatPanel) -> None:  # type: ignore[no-untyped-def]
    chat.input.setPlainText("Anything?")
    with qtbot.waitSignal(chat.notifier.shown, timeout=10_000) as shown:
        chat.send()
    assert shown.args[0].startswith("Nothing is indexed yet")
    assert chat.worker is None and chat.messages == [] and chat.send_btn.isEnabled()
    assert chat.input.toPlainText() == "Anything?"


def test_a_conversation_that_cannot_be_read_says_so_and_the_chat_goes_on(
    qtbot, chat: ChatPanel, home: Path
) -> None:  # type: ignore[no-untyped-def]
    path = home / "conversations.sqlite3"
    good, bad = _conversation(qtbot, path, 2), _conversation(qtbot, path, 4)
    _open(qtbot, chat, good)

    def damage() -> None:
        con = sqlite3.connect(path)
        con.execute("UPDATE messages SET sources='[{broken' WHERE conversation_id=?", (bad,))
        con.commit()
        con.close()

    thread = threading.Thread(target=damage)
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=10_000)
    with qtbot.waitSignal(chat.notifier.shown, timeout=10_000) as shown:
        chat.open_conversation(bad)
    assert shown.args[0].startswith("Opening the conversation failed")
    assert not chat.opening and chat.conversations.conversation_id == good
    assert chat.transcript.message_count == 2 and "Question 0" in chat.transcript.toPlainText()
