"""Cost of the chat transcript's updates in a long conversation: before (the whole transcript
re-rendered with ``setHtml`` on every update) and after (:class:`TranscriptView`: the streamed
piece appended, the finished answer rendered alone), in one run on the same machine.

Usage: QT_QPA_PLATFORM=offscreen python bench/chat_render.py [--messages 60] [--open 300]
Each update is timed with the event processing it causes (layout and paint of the shown
window). Also times opening a long conversation the way the chat renders it (batches of
:data:`~desktop_rag.gui.chat_panel.BATCH` messages, one per event-loop turn): the longest batch
is the longest stall it causes. Prints milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

WORDS = ("The orchard yielded 38 tonnes of apples in 2022 [1], after frost in April damaged the "
         "blossom on the lower rows [2]; the cooperative paid 41 pence per kilogram [3]. ")  # fmt: skip


def conversation(n: int) -> list[Any]:
    """``n`` messages: questions, and answers with 5 sources, 3 evidence quotes and a mark."""
    from desktop_rag.core.conversations import Message

    messages = []
    text = WORDS * 3
    s = text.index("41")
    for i in range(n):
        if i % 2 == 0:
            messages.append(Message("user", f"Question {i}: how many tonnes in 2022?\nAnd why?"))
            continue
        sources = [{"n": k, "file": f"/docs/file{k}.pdf", "page": k, "text": "38 tonnes " * 20,
                    "cited": k < 3} for k in range(1, 6)]  # fmt: skip
        evidence = [{"n": k, "file": f"/docs/file{k}.pdf", "page": k,
                     "text": "In 2022 the orchard yielded 38 tonnes of apples."} for k in range(1, 4)]  # fmt: skip
        checks = [{"kind": "figure", "claim": "41", "start": s, "end": s + 2, "supported": False}]
        checked = {"evidence": evidence, "checks": checks, "grounded": True}
        messages.append(Message("assistant", text, sources, checked=checked))
    return messages


def stats(name: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"{name:<52} n={len(times):<4} median {statistics.median(times):6.2f} ms  "
          f"p95 {p95:6.2f} ms  max {times[-1]:6.2f} ms")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--messages", type=int, default=60, help="conversation length, the answer included"
    )
    ap.add_argument("--open", type=int, default=300, help="messages of the conversation opened")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    from desktop_rag.core.conversations import Message
    from desktop_rag.gui.chat import TranscriptView, render_conversation
    from desktop_rag.gui.chat_panel import BATCH

    app = QApplication(sys.argv)
    messages = conversation(args.messages)[:-1]  # the last answer is the one streamed
    evidence = messages[-2].checked["evidence"]
    pieces = [w + " " for w in (WORDS * 12).split(" ")]
    answer = conversation(args.messages)[-1]
    print(f"{len(messages)} messages + 1 streamed answer of {len(pieces)} pieces")

    def timed(step: Any) -> float:
        t = time.perf_counter()
        step()
        app.processEvents()
        return (time.perf_counter() - t) * 1000

    # Before: every update re-renders the whole transcript (the chat's render until issue 29).
    view = TranscriptView()
    view.resize(900, 700)
    view.show()
    app.processEvents()
    text, full = "", []
    for piece in pieces:
        text += piece

        def render(text: str = text) -> None:
            view.setHtml(render_conversation(messages, text, evidence))
            view.scroll_to_end()

        full.append(timed(render))
    finish_full = timed(lambda: view.setHtml(render_conversation([*messages, answer])))

    # After: the streamed piece appended; the finished answer rendered alone.
    view = TranscriptView()
    view.resize(900, 700)
    view.show()
    view.show_messages(messages)
    app.processEvents()
    timed(view.start_stream)
    timed(lambda: view.set_stream_evidence(evidence))
    inc = [timed(lambda piece=piece: view.append_stream_text(piece)) for piece in pieces]

    def finish() -> None:
        view.finish_stream(None)
        view.append_messages([answer], len(messages))

    finish_inc = timed(finish)

    stats("before: whole transcript re-rendered, per update", full)
    stats("after: streamed piece appended, per update", inc)
    print(f"{'finished answer: before (full render) / after (one message)':<52} "
          f"{finish_full:6.2f} ms / {finish_inc:6.2f} ms")  # fmt: skip

    # Opening a long conversation: all at once vs. in batches, one per event-loop turn.
    long = conversation(args.open)
    view = TranscriptView()
    view.resize(900, 700)
    view.show()
    app.processEvents()
    at_once = timed(lambda: view.show_messages(long))
    view.clear_messages()
    app.processEvents()
    batches = [
        timed(lambda k=k: view.append_messages(long[k : k + BATCH], k))
        for k in range(0, len(long), BATCH)
    ]
    print(f"open {args.open} messages: at once {at_once:.1f} ms; in batches of {BATCH}: "
          f"longest {max(batches):.1f} ms, total {sum(batches):.1f} ms")  # fmt: skip
    assert isinstance(answer, Message)


if __name__ == "__main__":
    main()
