"""Which documents are financial filings or reports: the gate of the filing rules.

The extractor, the retriever and the claim check have rules made for 10-Ks, 10-Qs, 8-Ks and
earnings releases: statement titles as headings, "Item N." headings, "PART" lines dropped
(:mod:`desktop_rag.core.ingest.extract.pdf`); periods read from file names, names selecting a
series, statement preference, one chunk a page (:mod:`desktop_rag.core.search.retrieval`);
"total" and "net" as non-names (:mod:`desktop_rag.core.search.claims`). On a paper, a contract
or a slide deck they do harm (a paper's "Part II" heading dropped, two good chunks of one page
demoted, "Q3 2023 roadmap.pptx" read as a reporting period), so each runs only on a document
whose own text says it is a filing or a financial report (:func:`detect_genre`, decided once at
indexing and stored with the file).

Detection, from the text of the document's pages (nothing else, so an index can re-detect from
its stored pages):

- ``filing``: an SEC filing's cover page. Within the first :data:`COVER_PAGES` pages, at least
  two of: "SECURITIES AND EXCHANGE COMMISSION", a form name ("FORM 10-Q", "Form 8-K", 10-K,
  20-F, 40-F, 6-K, S-1, S-4, F-1, DEF 14A), "Commission File Number" (the fields every cover
  of Regulation S-K's forms carries).
- ``financial_report``: an earnings release, annual or interim report without that cover:
  title lines of at least two different primary financial statements
  (:func:`~desktop_rag.core.text.statements.statement_of_title`: balance sheet, statement of
  operations, cash flows, ...), or one such title and at least :data:`MIN_EPS` mentions of
  earnings per share ("per diluted share", "earnings per share", "EPS").
- ``other``: everything else (papers, contracts, slides, manuals, mail).

A paper that mentions the SEC or prints one "Balance sheet" table is not a filing: it needs two
of the cover's markers, or two statements.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from desktop_rag.core.text.statements import statement_of_title

FILING = "filing"
FINANCIAL_REPORT = "financial_report"
OTHER = "other"
#: The genres the filing rules apply to.
FINANCIAL: frozenset[str] = frozenset({FILING, FINANCIAL_REPORT})
COVER_PAGES = 3
MIN_EPS = 2

_COMMISSION = re.compile(r"securities\s+and\s+exchange\s+commission", re.IGNORECASE)
_FORM = re.compile(
    r"\bform\s+(10-?k|10-?q|8-?k|20-?f|40-?f|6-?k|s-[14]|f-1|def\s*14a)\b", re.IGNORECASE
)
_FILE_NUMBER = re.compile(r"commission\s+file\s+(?:number|no\.?)", re.IGNORECASE)
_EPS = re.compile(
    r"\b(?:earnings|income|loss)\s+per\s+(?:basic\s+|diluted\s+|common\s+)*share\b"
    r"|\bper\s+diluted\s+share\b|\beps\b",
    re.IGNORECASE,
)


def is_financial(genre: str | None) -> bool:
    """Whether the filing rules apply to a document of ``genre`` (None: not known yet)."""
    return genre in FINANCIAL


def detect_genre(pages: Iterable[str]) -> tuple[str, str]:
    """The genre of a document (:data:`FILING`, :data:`FINANCIAL_REPORT` or :data:`OTHER`) from
    the text of its pages in order, and why, in words ("SEC cover: securities and exchange
    commission, form 10-q"; "statement titles: balance, cash_flows"; "" for other). See the
    module docstring for the rules."""
    kinds: set[str] = set()
    eps = 0
    cover: list[str] = []
    for i, text in enumerate(pages):
        if i < COVER_PAGES:
            if _COMMISSION.search(text) and "securities and exchange commission" not in cover:
                cover.append("securities and exchange commission")
            if (m := _FORM.search(text)) and not any(c.startswith("form ") for c in cover):
                cover.append("form " + " ".join(m.group(1).lower().split()))
            if _FILE_NUMBER.search(text) and "commission file number" not in cover:
                cover.append("commission file number")
            if len(cover) >= 2:
                return FILING, "SEC cover: " + ", ".join(cover)
        for line in text.splitlines():
            # A title line is short; most lines are not, and the regexes need not see them.
            if len(line) <= 160 and (kind := statement_of_title(line.split(" · ")[0])):
                kinds.add(kind)
        eps += len(_EPS.findall(text))
        if len(kinds) >= 2:
            break
    if len(kinds) >= 2 or (kinds and eps >= MIN_EPS):
        basis = "statement titles: " + ", ".join(sorted(kinds))
        return FINANCIAL_REPORT, basis + (f"; {eps} per-share mentions" if len(kinds) < 2 else "")
    return OTHER, ""
