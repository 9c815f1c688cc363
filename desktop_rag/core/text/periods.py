"""Reporting periods: which quarter or year a question asks about and a document covers.

Filings, reports and minutes come in series (``2023 Q1 AAPL.pdf``, ``2023 Q2 AAPL.pdf``, ...)
whose text is mostly the same from one period to the next, so neither the embedding nor BM25 can
tell "Apple's R&D in Q1 2023" from the same paragraph of the Q3 filing. The period a document
covers is in its name or title, the way people name such files; this module reads it there and in
the question, for the retriever to prefer the documents of the period asked about (see
:meth:`~desktop_rag.core.retrieval.Retriever.search`), and, for "the latest quarter" or "the most
recent 10-Q", the newest document of each series among the candidates.

Recognised: ``Q3 2023``, ``2023 Q3``, ``Q3-2023``, ``2023-Q3``, ``Q3 FY2023``, ``3Q23``,
``third quarter of 2023``, ``first quarter of fiscal 2024``, ``FY2023``, ``fiscal year 2023``,
and, in a question only, a bare year (``in 2022``: every quarter of that year matches). Years
are 1990-2099. A document title's bare years are not read as its period (a title "Results
2019-2023" covers no single period).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "1st": 1,
    "2nd": 2,
    "3rd": 3,
    "4th": 4,
}
_YEAR = r"((?:19|20)\d\d)"
_Q = r"q([1-4])"
_SEP = r"[\s\-_/.,']*"
_FY = r"(?:fy|fiscal(?:\s+year)?)?\s*"

# (regex, group of the quarter, group of the year); matched on lower-cased text.
_QUARTER_PATTERNS: tuple[tuple[re.Pattern[str], int, int], ...] = (
    (re.compile(rf"(?<![a-z0-9]){_Q}{_SEP}{_FY}'?{_YEAR}(?!\d)"), 1, 2),
    (re.compile(rf"(?<![a-z0-9]){_FY}{_YEAR}{_SEP}{_Q}(?![0-9])"), 2, 1),
    (re.compile(r"(?<![a-z0-9])([1-4])q[\s\-']?(\d\d)(?!\d)"), 1, 2),
    (
        re.compile(
            r"(?<![a-z0-9])(first|second|third|fourth|1st|2nd|3rd|4th)\s+(?:fiscal\s+)?quarter"
            rf"(?:\s+(?:of|in|for|ended))?(?:\s+(?:the\s+)?(?:fiscal\s+)?(?:year\s+)?)?\s*{_YEAR}"
        ),
        1,
        2,
    ),
)
_FISCAL_YEAR = re.compile(rf"(?<![a-z0-9])(?:fy\s*'?|fiscal\s+(?:year\s+)?){_YEAR}(?!\d)")
_FY_SHORT = re.compile(r"(?<![a-z0-9])fy'?(\d\d)(?![\d])")
_BARE_YEAR = re.compile(rf"(?<![\d,.$]){_YEAR}(?![\d,])")
_DOCUMENT_WORDS = r"(?:report|filing|10-?q|10-?k|8-?k|statement|results|document|version|release)"
_PERIOD_WORDS = r"(?:quarter|period|year|month|fiscal\s+year)"
_LATEST = re.compile(
    r"\b(?:latest|most\s+recent|newest|current|recent)\s+"
    r"(?:reported\s+|quarterly\s+|annual\s+|available\s+|fiscal\s+)*"
    rf"(?:{_PERIOD_WORDS}|{_DOCUMENT_WORDS})"
    # "last" names the newest document only before a document word ("the last 10-Q"); before
    # a period word it names a period relative to today ("last year", "last quarter's revenue").
    rf"|\blast\s+(?:reported\s+|quarterly\s+|annual\s+|available\s+)*{_DOCUMENT_WORDS}",
    re.IGNORECASE,
)


@dataclass(frozen=True, order=True)
class Period:
    """A reporting period: ``year`` (e.g. 2023) and ``quarter`` (1-4; None for a whole year)."""

    year: int
    quarter: int | None = None

    def covers(self, other: Period) -> bool:
        """Whether ``other`` (a document's period) falls in this one (a question's)."""
        if self.year != other.year:
            return False
        return self.quarter is None or self.quarter == other.quarter


def _year(text: str) -> int:
    y = int(text)
    return y + 2000 if y < 100 else y


def _quarters(text: str) -> tuple[list[Period], str]:
    """The quarters named in lower-cased ``text`` and the text with them blanked out."""
    found: list[Period] = []
    for pattern, qg, yg in _QUARTER_PATTERNS:
        for m in pattern.finditer(text):
            q = m.group(qg)
            quarter = _ORDINALS.get(q) or int(q)
            found.append(Period(_year(m.group(yg)), quarter))
        text = pattern.sub(" ", text)
    return found, text


def _fiscal_years(text: str) -> tuple[list[Period], str]:
    found = [Period(_year(m.group(1))) for m in _FISCAL_YEAR.finditer(text)]
    found += [Period(_year(m.group(1))) for m in _FY_SHORT.finditer(text)]
    return found, _FY_SHORT.sub(" ", _FISCAL_YEAR.sub(" ", text))


def question_periods(question: str) -> frozenset[Period]:
    """The periods ``question`` asks about: quarters, fiscal years, and bare years (whole years).

    Empty when it names none. "Q1 2023" gives ``{Period(2023, 1)}``; "in 2022 and 2023" gives
    ``{Period(2022), Period(2023)}``.
    """
    text = question.lower()
    quarters, text = _quarters(text)
    years, text = _fiscal_years(text)
    years += [Period(int(m.group(1))) for m in _BARE_YEAR.finditer(text)]
    return frozenset(quarters + years)


def asks_latest(question: str) -> bool:
    """Whether ``question`` asks about the newest document of a series ("the latest quarter",
    "the most recent 10-Q", "the last report").

    False for a question that names a period ("Q3 2023", "fiscal 2022", "in 2023":
    :func:`question_periods`) and for "last" before a period word: "last year" and "last
    quarter's revenue compared with ..." name a period relative to when the question is asked,
    which no file name gives, not the newest filing."""
    return _LATEST.search(question) is not None and not question_periods(question)


@lru_cache(maxsize=16384)
def document_period(stem: str, title: str = "") -> tuple[Period | None, str]:
    """The period a document covers and its series key.

    The period is read from the file name ``stem`` (how people label the documents of a series),
    else from its ``title``; None when neither holds exactly one quarter or fiscal year. The
    series key is the file name with the period removed, lower-cased, punctuation collapsed: the
    documents of one series (``2023 Q1 AAPL``, ``2023 Q2 AAPL``) share it (``aapl``). Cached:
    the retriever asks for every candidate document of every question.
    """
    found, rest = _one_period(stem.lower())
    if found is None and title:
        found, _ = _one_period(title.lower())
    return found, " ".join(re.findall(r"[a-z0-9]+", rest))


def _one_period(text: str) -> tuple[Period | None, str]:
    quarters, rest = _quarters(text)
    years, rest = _fiscal_years(rest)
    found = set(quarters) or set(years)
    return (next(iter(found)) if len(found) == 1 else None), rest
