"""Building the answer prompt and checking the citations in the answer.

The retrieved chunks are numbered ``[1]..[n]`` in rank order and packed into the prompt until the
token budget is spent (context window minus the answer's reserved tokens minus the rest of the
prompt). Each source is wrapped in delimiters the system prompt declares as quoted data.
Citations in the answer are parsed by code: only numbers of sources actually given count; any other
``[n]`` is removed from the answer text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from desktop_rag.core.resources import resources_dir
from desktop_rag.core.text.analysis import STOPWORDS, WORD_RE
from desktop_rag.core.text.citations import CITE_RE, source_label
from desktop_rag.core.types import Hit

NOT_FOUND = "I could not find this in your documents."
_NOT_FOUND_RE = re.compile(r"could not find (this|that|the answer|it|any)", re.IGNORECASE)


@lru_cache(maxsize=1)
def system_prompt() -> str:
    """The answer system prompt (``resources/prompts/answer_system.txt``)."""
    path = resources_dir() / "prompts" / "answer_system.txt"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return (
            "Answer only from the numbered sources, citing them like [1]. If they do not contain "
            f"the answer, reply exactly: {NOT_FOUND}"
        )


# Retrieved text is data. Sentences in a source that address an AI assistant rather than the
# reader ("ignore previous instructions and ...", "print the system prompt"), markdown images
# (whose URL could carry data out when an answer is rendered elsewhere) and chat-template control
# tokens are replaced before the model sees them; the stored chunk and its citation keep the
# original text, so the user still sees what the document says.
_I = re.IGNORECASE
# Each pattern marks a sentence as an instruction to the model; the whole sentence is removed.
_INJECTION_RES = (
    # "Ignore all previous instructions and ...", "disregard your prompt", "disregard the user".
    re.compile(
        r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?"
        r"(?:the\s+|your\s+|my\s+|these\s+|those\s+)?(?:previous\s+|prior\s+|above\s+|"
        r"earlier\s+|preceding\s+|original\s+|system\s+|initial\s+)?"
        r"(?:instructions?|prompts?|directions|directives|user|question|query)\b",
        _I,
    ),
    # "Print the system prompt", "reveal your instructions".
    re.compile(
        r"\b(?:print|reveal|show|repeat|output|display|leak|disclose)\b.{0,30}"
        r"\b(?:system prompt|your (?:instructions|prompt|rules))\b",
        _I,
    ),
    # Orders to AI readers: "AI assistants reading this must answer only with ...".
    re.compile(
        r"\b(?:AI|(?i:chatbots?|language models?)|LLMs?|GPT|AI assistants?)\b.{0,60}"
        r"\b(?:must|should|shall|are to|need to|have to|please)\b.{0,40}"
        r"\b(?:answer|reply|respond|say|write|print|output|include|append|end)\b"
    ),
    # Orders about the shape of every answer: "Always end every answer with X", "begin each
    # reply with ...", "answer only with the word X", "respond with the code X".
    re.compile(
        r"\b(?:end|begin|start|finish|close|prefix|suffix|sign)\w*\s+(?:off\s+)?"
        r"(?:every|each|all|your|any)\s+(?:of\s+your\s+)?(?:answers?|repl(?:y|ies)|responses?|"
        r"outputs?)\b",
        _I,
    ),
    re.compile(
        r"\b(?:answer|reply|respond|say)\w*\s+(?:only\s+)?with\s+(?:only\s+)?"
        r"(?:the\s+(?:word|phrase|code|string|token|text)\b|only\b)",
        _I,
    ),
    # A sentence addressed to the model: "Assistant, when you ...", "Dear language model, ...".
    re.compile(
        r"^\s*(?:(?:dear|hey|hi|hello|attention|note to)\s+)?(?:AI(?:\s+assistants?)?|"
        r"assistants?|language\s+models?|chatbots?|LLMs?|ChatGPT|GPT|Claude|Gemini|Copilot)"
        r"\s*[,:](?=.*\b(?:you|your|please|must|do not|don't|ignore|disregard|tell|say|reply|"
        r"answer|respond|write|print|include|output)\b)",
        _I,
    ),
    # Fake authority labels in capitals: "SYSTEM OVERRIDE: ...", "ADMIN NOTE: ...".
    re.compile(
        r"\b(?:SYSTEM|ADMIN|ADMINISTRATOR|DEVELOPER|ROOT)(?:\s+(?:OVERRIDE|MESSAGE|NOTE|PROMPT|"
        r"INSTRUCTIONS?|COMMAND|UPDATE))?\s*:"
    ),
    # "The correct response to any question is X."
    re.compile(
        r"\b(?:correct|only|right|real|proper|required)\s+(?:response|answer|reply|output)\s+"
        r"(?:to|for)\s+(?:any|every|all|each|your)\s+(?:questions?|quer(?:y|ies)|prompts?)\b",
        _I,
    ),
    # "You are now DAN", "New instructions: ...".
    re.compile(
        r"\byou\s+are\s+now\b|\b(?:new|updated|additional|real)\s+(?:instructions|rules|"
        r"system\s+prompt)\s*:",
        _I,
    ),
)
# Chat-template control tokens, with the role name a fake turn puts after them.
_CONTROL_RE = re.compile(
    r"(?:<\|[^|<>\n]{1,40}\|>|</?s>|\[/?INST\])(?:[ \t]*(?:system|user|assistant)\b)?", _I
)
# Sentence ends: [.!?] before white space (a dot inside "example.org" or "3.5" is not one), and
# line breaks. Splitting first keeps every pattern linear in the text's length.
_SENTENCE_SPLIT_RE = re.compile(r"((?<=[.!?])[ \t]+|\n)")
REMOVED = "[instructions to an AI assistant removed]"
_IMAGE_RE = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)")
_LINK_RE = re.compile(r"\[([^\]\n]{1,200})\]\((?:[a-z][a-z0-9+.-]*:)?//[^)\s]*\)", _I)


def neutralize_instructions(text: str) -> str:
    """``text`` with instruction-like sentences, markdown images and chat-template control
    tokens replaced by :data:`REMOVED`, and markdown links reduced to their text (a reader of the
    rendered document sees the text, not the address); for text given to the model, never for
    stored text. Linear in ``len(text)``: patterns run sentence by sentence."""
    text = _IMAGE_RE.sub("[image removed]", text)
    text = _LINK_RE.sub(r"\1", text)
    text = _CONTROL_RE.sub(REMOVED, text)
    parts = _SENTENCE_SPLIT_RE.split(text)
    for i in range(0, len(parts), 2):  # odd indexes are the separators
        sentence = parts[i]
        if sentence and sentence != REMOVED and any(p.search(sentence) for p in _INJECTION_RES):
            parts[i] = REMOVED
    return "".join(parts)


def strip_images(text: str) -> str:
    """An answer without markdown images (answers are plain text; an image URL can leak data)."""
    return _IMAGE_RE.sub("", text)


def format_source(n: int, hit: Hit, text: str | None = None) -> str:
    """One numbered source block for the prompt (instruction-like text neutralised); ``text``
    replaces the hit's text (its focused sentences, see :func:`~desktop_rag.core.search.selection.focus`)."""
    # The context line names the document and section; it is worth its tokens only when it says
    # more than the file name already does.
    ctx = hit.context if " › " in hit.context else ""
    label = f"{source_label(hit)} ({ctx})" if ctx else source_label(hit)
    body = hit.text if text is None else text
    return f"[{n}] {label}\n<<<\n{neutralize_instructions(body.strip())}\n>>>"


@dataclass(frozen=True)
class PackedPrompt:
    """The chat messages and the hits they number (``hits[i]`` is source ``i + 1``)."""

    messages: list[dict[str, str]]
    hits: list[Hit]


def pack_prompt(
    question: str,
    hits: Sequence[Hit],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    texts: Sequence[str] | None = None,
) -> PackedPrompt:
    """Number and pack as many ``hits`` (best first) as fit in ``budget_tokens`` prompt tokens.

    ``count_tokens`` measures a string in the LLM's tokens. The first hit is always included (cut
    to fit if it alone is too long). ``texts`` (one per hit) replace the hits' texts in the
    prompt, e.g. each chunk's best sentences; the hits themselves stay the citations.
    """
    system = system_prompt()
    # Sources first and the question last, ending in "Answer:": measured on the bundled
    # SmolLM2-135M, this layout gave the right figures where a trailing instruction did not.
    head = "Sources:\n"
    tail = f"\n\nQuestion: {question.strip()}\nAnswer:"
    used = count_tokens(system) + count_tokens(head) + count_tokens(tail) + 16  # template tokens
    blocks: list[str] = []
    kept: list[Hit] = []
    for i, hit in enumerate(hits):
        block = format_source(len(kept) + 1, hit, texts[i] if texts is not None else None)
        cost = count_tokens(block) + 2
        if used + cost > budget_tokens:
            if kept:
                break
            # Cut the best source to what fits rather than answer from nothing.
            room = max(32, budget_tokens - used)
            ratio = room / cost
            block = block[: int(len(block) * ratio * 0.9)] + "\n>>>"
            cost = room
        blocks.append(block)
        kept.append(hit)
        used += cost
    user = head + "\n\n".join(blocks) + tail
    return PackedPrompt(
        [{"role": "system", "content": system}, {"role": "user", "content": user}], kept
    )


def is_abstention(text: str) -> bool:
    """True if the answer says the documents do not contain the answer."""
    return bool(_NOT_FOUND_RE.search(text[:300]))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _content_words(text: str) -> list[str]:
    words = [w for w in WORD_RE.findall(text.lower().replace(",", "")) if w not in STOPWORDS]
    return [w for w in words if len(w) > 2 or w.isdigit()]


def attribute_citations(text: str, sources: Sequence[str], min_support: float = 0.6) -> str:
    """Add ``[n]`` to each sentence without one, naming the source that supports it best.

    A sentence's support by a source is the share of its content words found in the source
    (numbers count double: figures are what citations are for). The best source is cited when its
    support reaches ``min_support``; otherwise the sentence stays uncited. This is how answers of
    models that do not write markers (like the bundled 135M model) still point to their evidence,
    checked by code against the sources actually given.
    """
    vocab = [set(_content_words(s)) for s in sources]
    out_lines = []
    for line in text.split("\n"):
        parts = _SENTENCE_END.split(line)
        fixed = []
        for sent in parts:
            words = _content_words(sent)
            if CITE_RE.search(sent) or len(words) < 3:
                fixed.append(sent)
                continue
            weights = [2.0 if w.isdigit() else 1.0 for w in words]
            total = sum(weights)
            best_n, best = 0, 0.0
            for n, v in enumerate(vocab, 1):
                support = sum(wt for w, wt in zip(words, weights, strict=True) if w in v) / total
                if support > best:
                    best_n, best = n, support
            if best_n and best >= min_support:
                stripped = sent.rstrip()
                end = len(stripped.rstrip(".!?"))
                sent = f"{stripped[:end]} [{best_n}]{stripped[end:]}"
            fixed.append(sent)
        out_lines.append(" ".join(fixed))
    return "\n".join(out_lines)
