"""Saved conversations: what an answer saves, how it is copied and exported (no model needed)."""

from __future__ import annotations

from pathlib import Path

from desktop_rag.core.answer_text import message_text
from desktop_rag.core.conversations import ConversationStore, Message
from desktop_rag.core.types import Answer, Citation, Evidence, Hit, Timings


def _answer() -> Answer:
    pdf = Hit(1, 1, "/docs/q3/report.pdf", 4, 0, 40, "Net sales were $81.8 billion.", "", 0.9)
    note = Hit(2, 2, "/docs/notes.txt", None, 0, 20, "Sales rose in Q3.", "", 0.5)
    evidence = Evidence(1, pdf, 0, 29, "Net sales were\n$81.8 billion.", 0.8)
    return Answer(
        text="Net sales were $81.8 billion [1].",
        abstained=False,
        citations=(Citation(1, pdf, True), Citation(2, note, False)),
        timings=Timings(12.0, 1.5, 20.0),
        evidence=(evidence,),
        grounded=True,
    )


def test_an_answer_is_saved_with_its_sources_and_evidence(tmp_path: Path) -> None:
    msg = Message.from_answer(_answer())
    assert msg.role == "assistant" and msg.text == "Net sales were $81.8 billion [1]."
    assert [(s["n"], s["page"], s["cited"]) for s in msg.sources] == [
        (1, 4, True),
        (2, None, False),
    ]
    assert msg.checked["grounded"] is True and msg.checked["evidence"][0]["n"] == 1

    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = store.create("Q3 sales")
    store.add(cid, Message("user", "What were Q3 net sales?"))
    store.add(cid, msg)
    saved = store.messages(cid)[1]
    assert (saved.text, saved.sources, saved.checked) == (msg.text, msg.sources, msg.checked)
    md = store.to_markdown(cid)
    assert "> “Net sales were $81.8 billion.” [1] (report.pdf, page 4)" in md
    assert "1. report.pdf, page 4 (cited)" in md and "2. notes.txt: " in md
    assert "**Assistant:**\n\nFrom your documents:" in md
    store.close()


def test_a_stopped_answer_keeps_what_was_shown() -> None:
    shown = [{"n": 1, "file": "/docs/a.pdf", "page": 2, "text": "A quote."}]
    msg = Message.from_answer(None, stopped=True, streamed="Partial text", streamed_evidence=shown)
    assert msg.text == "Partial text [stopped]" and msg.sources == []
    assert msg.checked == {"evidence": shown}
    assert Message.from_answer(_answer(), stopped=True).text.endswith("[1]. [stopped]")


def test_copied_answer_lists_evidence_answer_and_sources() -> None:
    assert message_text(Message.from_answer(_answer())).splitlines() == [
        "From your documents:",
        "“Net sales were $81.8 billion.” [1] (report.pdf, page 4)",
        "",
        "Net sales were $81.8 billion [1].",
        "",
        "Sources:",
        "[1] report.pdf, page 4 (cited)",
        "[2] notes.txt",
    ]
