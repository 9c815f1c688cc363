"""Financial statements: which statement a page holds, and which ones a question is about.

Annual and quarterly reports (10-K, 10-Q, 20-F, IFRS interim reports) print their figures in a
handful of primary statements, each under a standard title: the balance sheet ("condensed
consolidated balance sheets", "statement of financial position"), the statement of operations
("income statements", "statements of earnings"), comprehensive income, cash flows and
stockholders' equity. A question about inventory levels, net sales or buybacks is answered by
the figures on those pages, while the wording of the question matches the prose of the
management discussion better, so lexical and embedding similarity alone rank the prose first.

This module names the statement of a title line (:func:`statement_of_title`, used by the PDF
extractor to make the title a heading, so every chunk of the statement carries it in its context
line), of a chunk's context line (:func:`statement_of_context`) and the statements a question's
accounting terms belong to (:func:`question_statements`), for the retriever to add those pages
of the candidate documents and prefer them
(:meth:`~desktop_rag.core.search.retrieval.Retriever.search`). The titles follow US GAAP (ASC 210, 220,
230, 505) and IFRS (IAS 1) naming; the terms are the line items those standards require.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: The statements: balance sheet, operations (income), comprehensive income, cash flows, equity.
KINDS: tuple[str, ...] = ("balance", "operations", "comprehensive", "cash_flows", "equity")

_OWNERS = r"(?:stock|share)\s*holders['’]?|share\s*owners['’]?|members['’]?|partners['’]?"
# Comprehensive income first: "comprehensive income statements" ends like an income statement.
_NAMES: tuple[tuple[str, str], ...] = (
    ("balance", r"balance\s+sheets?|statements?\s+of\s+financial\s+(?:position|condition)"),
    (
        "comprehensive",
        r"statements?\s+of\s+comprehensive\s+(?:income|loss|earnings)(?:\s+\(loss\))?"
        r"|comprehensive\s+income\s+statements?",
    ),
    (
        "operations",
        r"statements?\s+of\s+(?:consolidated\s+)?(?:operations|income|earnings|loss|"
        r"(?:profit\s+or\s+loss))(?:\s+and\s+comprehensive\s+(?:income|loss|earnings))?"
        r"|income\s+statements?|statements?\s+of\s+profit\s+(?:and|or)\s+loss",
    ),
    ("cash_flows", r"statements?\s+of\s+cash\s+flows?|cash\s+flows?\s+statements?"),
    (
        "equity",
        rf"statements?\s+of\s+(?:changes\s+in\s+)?(?:{_OWNERS})\s+equity(?:\s+\(deficit\))?"
        rf"|(?:{_OWNERS})\s+equity\s+statements?|statements?\s+of\s+changes\s+in\s+equity",
    ),
)
# A whole title line: an optional company name ("NVIDIA CORPORATION AND SUBSIDIARIES"), the
# usual qualifiers, the statement's name, and remarks in brackets ("(Unaudited)", "(Continued)",
# "(In millions)").
_PREFIX = (
    r"(?:[\w.,&'’\- ]{2,60}?\s+)?(?:(?:condensed|unaudited|interim|consolidated|combined)\s+)*"
)
_SUFFIX = r"(?:\s*[(\[][^()\[\]]{0,60}[)\]])*"
_SMALL_WORDS = frozenset({"of", "and", "or", "in", "the", "for", "to"})
_NOT_TITLE_START = frozenset({"see", "refer", "in", "the", "our", "from", "per", "to", "and"})
_TITLES = tuple(
    (kind, re.compile(rf"^{_PREFIX}(?:{name}){_SUFFIX}$", re.IGNORECASE)) for kind, name in _NAMES
)
MAX_TITLE_CHARS = 160


def statement_of_title(line: str) -> str | None:
    """The statement (one of :data:`KINDS`) a title line names, or None.

    The whole line must be the title, in title case or capitals ("CONDENSED CONSOLIDATED BALANCE
    SHEETS (Unaudited)", "Consolidated Statements of Cash Flows", "INCOME STATEMENTS"): a
    sentence or a line of one that mentions a statement ("see the consolidated balance sheets
    for ...", "net in our consolidated balance sheets.") is not one. "Statements of
    operations and comprehensive income" is the statement of operations.
    """
    text = " ".join(line.split())
    if not text or len(text) > MAX_TITLE_CHARS or text.lower().startswith("notes"):
        return None
    # A title is set in title case or capitals ("in our consolidated balance sheets." is the
    # tail of a sentence broken over two lines, not a title).
    words = re.sub(r"[(\[][^()\[\]]*[)\]]", " ", text).split()
    if not words or not words[0][:1].isupper() or words[0].lower() in _NOT_TITLE_START:
        return None
    if any(w[:1].islower() and w.lower() not in _SMALL_WORDS for w in words):
        return None
    for kind, pattern in _TITLES:
        if pattern.match(text):
            return kind
    return None


def statement_of_heading(heading: str) -> str | None:
    """The statement of a heading: its title, before any " · " (the PDF extractor adds the
    table's units and column dates there), or None."""
    return statement_of_title(heading.split(" · ", 1)[0].rstrip("…"))


@lru_cache(maxsize=65536)
def statement_of_context(context: str) -> str | None:
    """The statement of a chunk's context line (its headings joined by " › "): that of the
    innermost heading naming one, or None."""
    for part in reversed(context.split(" › ")):
        kind = statement_of_heading(part)
        if kind is not None:
            return kind
    return None


# Line items and terms of each statement, as a question words them (lower case, whole words).
_TERMS: dict[str, tuple[str, ...]] = {
    "balance": (
        r"balance\s+sheets?", r"financial\s+position", r"inventor(?:y|ies)", r"assets?",
        r"liabilit(?:y|ies)", r"debts?", r"borrowings?", r"receivables?", r"payables?",
        r"goodwill", r"working\s+capital", r"deferred\s+revenue", r"marketable\s+securities",
        r"cash\s+and\s+cash\s+equivalents", r"cash\s+position", r"leases?",
    ),
    "operations": (
        r"income\s+statements?", r"statements?\s+of\s+operations", r"revenues?", r"(?:net\s+)?sales",
        r"operating\s+(?:expenses?|costs?|income|margin|loss)", r"expenses?", r"expenditures?",
        r"costs?\s+of\s+(?:sales|revenues?|goods\s+sold)", r"gross\s+(?:margin|profit)",
        r"net\s+(?:income|loss|earnings)", r"earnings", r"eps", r"profit(?:s|ability)?",
        r"research\s+and\s+development", r"r\s?&\s?d", r"selling,?\s+general", r"sg\s?&\s?a",
        r"income\s+tax(?:es)?", r"(?:effective\s+)?tax\s+rate", r"interest\s+expenses?",
    ),
    "comprehensive": (r"comprehensive\s+(?:income|loss)", r"foreign\s+currency\s+translation",),
    "cash_flows": (
        r"cash\s+flows?", r"liquidity", r"(?:operating|investing|financing)\s+activities",
        r"capital\s+expenditures?", r"capex", r"repurchases?", r"buy\s*backs?", r"dividends?",
    ),
    "equity": (
        r"(?:stock|share)\s*holders['’]?\s+equity", r"repurchases?", r"buy\s*backs?",
        r"dividends?", r"retained\s+earnings", r"shares?\s+(?:issued|outstanding)",
    ),
}  # fmt: skip
_QUESTION = {
    kind: re.compile(rf"(?<![\w&])(?:{'|'.join(terms)})(?![\w&])", re.IGNORECASE)
    for kind, terms in _TERMS.items()
}


def question_statements(question: str) -> frozenset[str]:
    """The statements (of :data:`KINDS`) whose line items ``question`` names: "How have
    inventory levels changed?" gives ``{"balance"}``; "share repurchases" gives
    ``{"cash_flows", "equity"}``; a question without accounting terms gives an empty set."""
    return frozenset(kind for kind, pattern in _QUESTION.items() if pattern.search(question))
