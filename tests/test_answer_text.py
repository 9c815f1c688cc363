"""An answer as text (core/answer_text.py): Copy answer, the Markdown export and the command
line carry the window's marks and label each source by its own unit, on real documents (a
slide deck and a spreadsheet, indexed with the fake embedder: no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_rag import cli as cli_module
from desktop_rag.core.answer_text import (
    CLAIM_MARK,
    NOT_SHOWN,
    SENTENCE_MARK,
    answer_json_text,
    answer_text,
    message_text,
)
from desktop_rag.core.conversations import ConversationStore, Message
from desktop_rag.core.engine import Engine
from desktop_rag.core.search.claims import check_answer
from desktop_rag.core.search.selection import score_sentences, select_evidence
from desktop_rag.core.types import Answer, Citation, Hit, Timings
from tests.test_extract import make_pptx
from tests.test_extract_sheets import make_ledger

QUESTION = "How many tanker calls were there, and what did the Kittiwake unload?"
# The first figure is the deck's; the second is in no source (the ledger says 4200 tonnes).
GENERATED = "There were 87 tanker calls [1]. The Kittiwake unloaded 9,100 tonnes at Rotterdam [2]."


def _sources(engine: Engine, folder: Path) -> tuple[Hit, Hit]:
    """A slide (review.pptx, slide 3) and a sheet's rows (ledger.xlsx, sheet 2), as retrieved."""
    folder.mkdir()
    make_pptx(folder / "review.pptx")
    make_ledger(folder / "ledger.xlsx")
    assert engine.index_all([folder]).indexed == 2
    slide = engine.search("How many tanker calls were there?", 1).hits[0]
    rows = engine.search("Which port did the Kittiwake unload at?", 1).hits[0]
    assert (slide.file_name, slide.page, rows.file_name, rows.page) == (
        "review.pptx", 3, "ledger.xlsx", 2
    )  # fmt: skip
    return slide, rows


def _answer(slide: Hit, rows: Hit, *, grounded: bool | None = None) -> Answer:
    """The checked answer to :data:`GENERATED` over the two sources. ``grounded``: what the
    check decided (by default its own verdict; True renders an answer saved before the
    stricter rule, which passed it with the unsupported figure marked)."""
    checked = check_answer(GENERATED, [slide, rows])
    scores = score_sentences(QUESTION, [slide, rows])
    evidence = select_evidence(scores, 2)
    assert evidence
    ok = checked.passed if grounded is None else grounded
    return Answer(
        text=checked.text if ok else "The model's answer did not match your documents.",
        abstained=False,
        citations=(Citation(1, slide, True), Citation(2, rows, True)),
        timings=Timings(10.0, 1.0, 20.0),
        evidence=evidence,
        generated=checked.text,
        checks=checked.checks,
        grounded=ok,
    )


def _invented(answer: Answer) -> str:
    [bad] = [c.claim for c in answer.checks if c.kind == "figure" and not c.supported]
    assert bad == "9,100"
    return bad


def test_copy_export_and_cli_mark_the_invented_figure_and_label_slides_and_rows(
    fake_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slide, rows = _sources(fake_engine, tmp_path / "docs")
    answer = _answer(slide, rows, grounded=True)
    bad = _invented(answer)
    message = Message.from_answer(answer)

    copied = message_text(message)
    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = store.create("Harbour")
    store.add(cid, Message("user", QUESTION))
    store.add(cid, message)
    exported = store.to_markdown(cid)
    store.close()
    cli_module._print_answer(answer)
    printed = capsys.readouterr().out

    for text in (copied, exported, printed):
        assert "review.pptx, slide 3" in text and "ledger.xlsx, sheet 2, row" in text
        assert ", page" not in text, "a slide or a sheet is never a page"
        assert "There were 87 tanker calls [1]." in text, "a sourced figure is not marked"
        assert "Check: marked [?], not found in the sources: “" + bad + "” (figure)" in text
        assert "“" in text.split("From your documents:")[1], "the evidence is quoted"
    assert f"unloaded {bad} {CLAIM_MARK} tonnes at Rotterdam [2]. {SENTENCE_MARK}" in copied
    assert copied == str(answer_json_text(answer)), "Copy answer renders a fresh answer alike"
    assert f"unloaded {bad} {CLAIM_MARK} tonnes at Rotterdam [2]. {SENTENCE_MARK}" in printed
    assert f"unloaded **{bad}** {CLAIM_MARK} tonnes at Rotterdam" in exported
    assert "**You:** " + QUESTION in exported and "1. review.pptx, slide 3 (cited): “" in exported


def test_an_answer_failing_the_check_is_never_copied(fake_engine: Engine, tmp_path: Path) -> None:
    slide, rows = _sources(fake_engine, tmp_path / "docs")
    answer = _answer(slide, rows)
    assert answer.grounded is False, "one invented figure fails the answer (the stricter rule)"
    bad = _invented(answer)
    for flavour in (False, True):
        text = str(answer_json_text(answer, markdown=flavour))
        assert NOT_SHOWN in text and bad not in text and CLAIM_MARK not in text
        assert "review.pptx, slide 3" in text and "From your documents:" in text


def test_marks_need_their_claim_and_an_unchecked_answer_is_shown_as_is() -> None:
    sources = [{"n": 1, "file": "/d/deck.pptx", "page": 2, "text": "Sales grew 12%.", "cited": True},
               {"n": 2, "file": "/d/t.csv", "page": None, "text": "Row 7 | a | b", "cited": False},
               {"n": 3, "file": "/d/mail.eml", "page": 2, "text": "Hello", "cited": False}]  # fmt: skip
    check = {"start": 11, "end": 14, "claim": "15%", "kind": "figure", "supported": False,
             "sources": []}  # fmt: skip
    shown = answer_text("Sales grew 15% [1].", sources, {"checks": [check], "grounded": True})
    assert shown.body.startswith(f"Sales grew 15% {CLAIM_MARK} [1].")
    assert shown.sources.splitlines() == [
        "Sources:", "[1] deck.pptx, slide 2 (cited)", "[2] t.csv, row 7", "[3] mail.eml, part 2"
    ]  # fmt: skip
    # A stopped answer (no check ran) and a check whose offsets no longer hold their claim.
    stopped = answer_text("Sales grew 15% [stopped]", sources, {"evidence": []})
    assert stopped.body == "Sales grew 15% [stopped]" and stopped.evidence == ""
    moved = answer_text("In short: sales grew 15%.", sources, {"checks": [check], "grounded": True})
    assert moved.body.startswith("In short: sales grew 15%.\n\nCheck:")
