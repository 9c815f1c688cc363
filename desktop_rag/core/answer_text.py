"""An answer as text, with everything the window shows: the one renderer of every text path.

*Copy answer*, the Markdown export of a conversation and ``desktop-rag ask`` all print an answer
through :func:`answer_text`, so a pasted or exported answer keeps what the window shows:

- the evidence quoted from the documents, each with its ``[n]`` and its source's label;
- the answer with its ``[n]`` markers, and the claim check's marks: a figure or name no given
  source holds is followed by :data:`CLAIM_MARK` (the window: red, with a "?"), a sentence no
  source supports is followed by :data:`SENTENCE_MARK` (the window: yellow), and a line saying
  what was marked; an answer that failed the check as a whole is replaced by the statement the
  window shows (never the unchecked text);
- the numbered sources, each labelled by its own unit (page, slide, sheet row, part: see
  :func:`~desktop_rag.core.text.citations.label_for`).

The input is the data an answer is saved as (``Answer.to_json`` and
:class:`~desktop_rag.core.conversations.Message`): plain dicts, so a saved conversation renders
the same as a fresh answer. Two flavours: plain text and Markdown (same content and marks; the
Markdown quotes evidence as block quotes, bolds marked claims and numbers the sources).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from desktop_rag.core.text.citations import label_of

if TYPE_CHECKING:
    from desktop_rag.core.types import Answer

#: Follows a figure or name that no given source holds (the window's red "?").
CLAIM_MARK = "[?]"
#: Follows a sentence that no given source supports (the window's yellow sentence).
SENTENCE_MARK = "[unsupported]"

#: What replaces an answer that failed the check when its evidence is quoted above it (the
#: window's words).
NOT_SHOWN = (
    "The model's answer did not match your documents, so it is not shown; "
    "what they say is quoted above."
)


class SavedAnswer(Protocol):
    """What :func:`message_text` reads: a saved assistant message (see
    :class:`~desktop_rag.core.conversations.Message`)."""

    text: str
    sources: list[dict[str, Any]]
    checked: dict[str, Any]


@dataclass(frozen=True)
class AnswerText:
    """An answer rendered as text, in its three parts (each "" when it has nothing to say):
    ``evidence`` (the quotes), ``body`` (the answer with its marks and the check's line) and
    ``sources`` (the numbered list). ``str()`` joins them with blank lines."""

    evidence: str
    body: str
    sources: str

    def __str__(self) -> str:
        return "\n\n".join(p for p in (self.evidence, self.body, self.sources) if p)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def evidence_text(evidence: Sequence[Mapping[str, Any]], *, markdown: bool = False) -> str:
    """The quoted evidence under "From your documents:", one quote a line:
    ``“quote” [n] (file, page N)``; in Markdown each quote is a block quote. "" for none.

    ``evidence``: items as ``Evidence.to_json`` gives them (``n``, ``file``, ``page``, ``text``).
    """
    if not evidence:
        return ""
    lines = [f"“{_one_line(e['text'])}” [{e['n']}] ({label_of(e)})" for e in evidence]
    if markdown:
        return "From your documents:\n\n" + "\n>\n".join(f"> {line}" for line in lines)
    return "From your documents:\n" + "\n".join(lines)


def marked_text(text: str, checks: Sequence[Mapping[str, Any]], *, markdown: bool = False) -> str:
    """``text`` with the claim check's marks: :data:`CLAIM_MARK` after each figure or name no
    source holds (bold in Markdown), :data:`SENTENCE_MARK` after each sentence no source
    supports. ``checks`` are ``Check.to_json`` items whose offsets point into ``text``; one
    whose span does not hold its claim (the text was changed since) is left out."""
    inserts: list[tuple[int, int, str]] = []  # (offset, order at that offset, text)
    for c in checks:
        if c.get("supported", True):
            continue
        a, b = int(c["start"]), int(c["end"])
        if not (0 <= a < b <= len(text)) or text[a:b] != c.get("claim"):
            continue
        if c["kind"] == "sentence":
            inserts.append((b, 2, f" {SENTENCE_MARK}"))
        else:
            if markdown:
                inserts.append((a, 1, "**"))
            inserts.append((b, 0, ("**" if markdown else "") + f" {CLAIM_MARK}"))
    out, pos = [], 0
    for at, _, piece in sorted(inserts):
        out += [text[pos:at], piece]
        pos = at
    out.append(text[pos:])
    return "".join(out)


def check_line(checked: Mapping[str, Any]) -> str:
    """One line on what the claim check marked (the window's "Check: ..." note, with the claims
    named); "" when nothing was checked or the answer is not shown."""
    if checked.get("grounded") is not True:
        return ""
    bad = [c for c in checked.get("checks") or [] if not c.get("supported")]
    if not bad:
        return ""
    kinds = {"figure": "figure", "entity": "name"}
    claims = [c for c in bad if c["kind"] != "sentence"]
    n_sent = len(bad) - len(claims)
    parts = []
    if claims:
        named = ", ".join(f"“{c['claim']}” ({kinds.get(c['kind'], c['kind'])})" for c in claims)
        parts.append(f"marked {CLAIM_MARK}, not found in the sources: {named}")
    if n_sent:
        parts.append(f"{n_sent} sentence{'s' if n_sent != 1 else ''} marked {SENTENCE_MARK} "
                     f"(no source supports {'it' if n_sent == 1 else 'them'})")  # fmt: skip
    return "Check: " + "; ".join(parts) + "."


def sources_text(
    sources: Sequence[Mapping[str, Any]], *, markdown: bool = False, snippet_chars: int = 0
) -> str:
    """The numbered sources under "Sources:": ``[n] label`` (``n. label`` in Markdown), "
    (cited)" when the answer cites it, and the first ``snippet_chars`` characters of its text
    (0: none). ``sources``: ``Answer.to_json``'s citations (``n``, ``file``, ``page``,
    ``text``, ``cited``). "" for none."""
    if not sources:
        return ""
    lines = []
    for s in sources:
        line = f"{s['n']}. " if markdown else f"[{s['n']}] "
        line += label_of(s) + (" (cited)" if s.get("cited") else "")
        snippet = _one_line(s.get("text") or "")
        if snippet_chars and snippet:
            cut = snippet[:snippet_chars]
            line += f": “{cut}{'…' if len(snippet) > snippet_chars else ''}”"
        lines.append(line)
    return "Sources:\n" + "\n".join(lines)


def answer_text(
    text: str,
    sources: Sequence[Mapping[str, Any]],
    checked: Mapping[str, Any],
    *,
    markdown: bool = False,
    snippet_chars: int | None = None,
) -> AnswerText:
    """Render an answer as text with everything the window shows (see the module docstring).

    ``text`` is the answer as saved (``Answer.text``); ``sources`` its citations and
    ``checked`` a mapping with its ``evidence``, ``checks`` (offsets into ``text`` when it
    passed) and ``grounded`` (None or absent: no check ran, e.g. a stopped answer), as in
    ``Answer.to_json`` or ``Message.checked``. ``snippet_chars``: how much of each source's
    text to quote in the list (default: none in plain text, 200 in Markdown).
    """
    evidence = list(checked.get("evidence") or [])
    if checked.get("grounded") is False:
        # Failed as a whole: the checks refer to the text that is not shown.
        body = NOT_SHOWN if evidence else text
    else:
        body = marked_text(text, checked.get("checks") or [], markdown=markdown)
        line = check_line(checked)
        if line:
            body += "\n\n" + (f"*{line}*" if markdown else line)
    if snippet_chars is None:
        snippet_chars = 200 if markdown else 0
    return AnswerText(
        evidence_text(evidence, markdown=markdown),
        body.strip(),
        sources_text(sources, markdown=markdown, snippet_chars=snippet_chars),
    )


def message_text(message: SavedAnswer, *, markdown: bool = False) -> str:
    """A saved assistant message as text (what *Copy answer* puts on the clipboard)."""
    return str(answer_text(message.text, message.sources, message.checked, markdown=markdown))


def answer_json_text(answer: Answer, *, markdown: bool = False, snippet_chars: int | None = None
                     ) -> AnswerText:  # fmt: skip
    """:func:`answer_text` of a fresh :class:`~desktop_rag.core.types.Answer`."""
    data = answer.to_json()
    citations = data["citations"]
    assert isinstance(citations, list)
    return answer_text(answer.text, citations, data, markdown=markdown, snippet_chars=snippet_chars)
