"""Gold pages a reader would cite, located by reading the filings: two page-level question sets.

Usage: python bench/cited_pages.py [--filings DIR] [--check]

Writes ``bench/data/docugami_cited_pages.jsonl`` (71 docugami 10-Q questions) and
``bench/data/filings_pages.jsonl`` (40 questions of our own on Lyft's and Uber's 2021 10-Ks and
Uber's 2022 10-Qs, in ``bench/data/filings/`` or ``--filings``). Unlike
``bench/filing_pages.py``, whose gold pages are wherever an answer's figures are printed, every
page here was chosen by hand: the statement, note or section that answers the question (the
income statement for a year's revenue, the debt note for the terms of the notes, Part II Item 1
for legal proceedings, the MD&A paragraph that explains a change), found by reading the filing's
pages (PyMuPDF text) and kept only when its text answers. A question may cite a second page
that answers it as well (a figure both in a statement and in the MD&A table that discusses it);
a retrieved chunk on any cited page is a page hit. Pages whose section ends in ``[pooled]`` were
added after the first measurement, from reading the top-5 pages of the questions it missed
(``bench/data/README.md``). Questions whose answer is an absence ("no
acquisitions were reported") or spread over a whole section (risk factors) were left out.

Each :class:`Item` records, for every cited page, the section it belongs to and a pattern of the
line on that page that answers (a statement row's label, the sentence that states it). The script
checks every pattern against that page of the PDF and writes the line found, with the figures
printed after it, into ``how`` ("2023 Q3 AAPL.pdf p.21, MD&A Provision for Income Taxes table:
'Effective tax rate [12.5 % | 15.7 % | 14.6 % | 16.3 %]'"), so a reader can check each gold
page without opening the PDF. A pattern not found on its page is an error (exit status 1);
``--check`` checks without writing.

Lines are the questions file of ``desktop-rag eval`` (``id``, ``question``, ``answer``,
``evidence`` [{doc, page, text: null}]) plus ``file`` (the cited file, or a list of files),
``pages`` (1-based physical page numbers; a list of lists, one per file, when several files are
cited) and ``how``. Docugami questions keep the shared set's id, question and answer (MIT,
docugami/KG-RAG-datasets); our own questions have ``answer`` null (the gold is the page, the
``how`` line quotes the figure). Not a test.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
DOCUGAMI = ROOT.parent / "shared" / "eval" / "docugami_sec10q"
_FIGURE = re.compile(r"^[\s$(]*[\d,.]+\s*%?\)?\s*\$?\s*$")


@dataclass(frozen=True)
class Item:
    """One question and the pages it cites: (file, 1-based page, section, line pattern)."""

    id: str
    cited: list[tuple[str, int, str, str]]
    question: str | None = None  # None: the docugami question of that id
    note: str = ""


# Docugami 10-Qs (shared/eval/docugami_sec10q/docs): the shared set's questions, pages by reading.
DOCUGAMI_ITEMS = [
    Item(
        id="docugami_sec10q_001",
        cited=[
            (
                "2022 Q3 AAPL.pdf",
                4,
                "condensed consolidated statements of operations",
                "^Total net sales$",
            ),
            (
                "2023 Q1 AAPL.pdf",
                4,
                "condensed consolidated statements of operations",
                "^Total net sales$",
            ),
            (
                "2023 Q2 AAPL.pdf",
                4,
                "condensed consolidated statements of operations",
                "^Total net sales$",
            ),
            (
                "2023 Q3 AAPL.pdf",
                4,
                "condensed consolidated statements of operations",
                "^Total net sales$",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_018",
        cited=[
            ("2022 Q3 NVDA.pdf", 3, "condensed consolidated statements of income", "^Revenue$"),
            ("2023 Q1 NVDA.pdf", 3, "condensed consolidated statements of income", "^Revenue$"),
            ("2023 Q2 NVDA.pdf", 3, "condensed consolidated statements of income", "^Revenue$"),
            ("2023 Q3 NVDA.pdf", 3, "condensed consolidated statements of income", "^Revenue$"),
        ],
    ),
    Item(
        id="docugami_sec10q_027",
        cited=[
            ("2022 Q3 INTC.pdf", 5, "consolidated condensed statements of income", "^Net revenue$"),
            ("2023 Q1 INTC.pdf", 6, "consolidated condensed statements of income", "^Net revenue$"),
            ("2023 Q2 INTC.pdf", 6, "consolidated condensed statements of income", "^Net revenue$"),
            ("2023 Q3 INTC.pdf", 6, "consolidated condensed statements of income", "^Net revenue$"),
        ],
    ),
    Item(
        id="docugami_sec10q_042",
        cited=[
            ("2022 Q3 MSFT.pdf", 3, "income statements", "^Total revenue$"),
            ("2023 Q1 MSFT.pdf", 3, "income statements", "^Total revenue$"),
            ("2023 Q2 MSFT.pdf", 3, "income statements", "^Total revenue$"),
            ("2023 Q3 MSFT.pdf", 3, "income statements", "^Total revenue$"),
        ],
    ),
    Item(
        id="docugami_sec10q_054",
        cited=[
            ("2022 Q3 AMZN.pdf", 4, "consolidated statements of operations", "^Total net sales$"),
            ("2023 Q1 AMZN.pdf", 4, "consolidated statements of operations", "^Total net sales$"),
            ("2023 Q2 AMZN.pdf", 4, "consolidated statements of operations", "^Total net sales$"),
            ("2023 Q3 AMZN.pdf", 4, "consolidated statements of operations", "^Total net sales$"),
        ],
    ),
    Item(
        id="docugami_sec10q_069",
        cited=[
            ("2023 Q3 AAPL.pdf", 20, "MD&A Gross Margin table", "^Total gross margin$"),
            (
                "2023 Q3 AAPL.pdf",
                4,
                "condensed consolidated statements of operations",
                "^Gross margin$",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_070",
        cited=[
            (
                "2023 Q1 AAPL.pdf",
                4,
                "condensed consolidated statements of operations",
                "^Total operating expenses$",
            ),
            ("2023 Q1 AAPL.pdf", 22, "MD&A Operating Expenses table", "^Total operating expenses$"),
        ],
    ),
    Item(
        id="docugami_sec10q_071",
        cited=[
            (
                "2023 Q2 AAPL.pdf",
                17,
                "MD&A quarterly highlights / segment operating performance",
                "unfavorable impact on the Company.s total net sales, which decreased 3%",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_072",
        cited=[
            ("2023 Q3 AAPL.pdf", 10, "Note 2 Revenue, net sales by category", "^iPhone$"),
        ],
    ),
    Item(
        id="docugami_sec10q_073",
        cited=[
            ("2023 Q3 AAPL.pdf", 10, "Note 2 Revenue, net sales by category", "^Services$"),
            (
                "2023 Q3 AAPL.pdf",
                4,
                "condensed consolidated statements of operations",
                "^Total net sales$",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_074",
        cited=[
            (
                "2023 Q3 AAPL.pdf",
                17,
                "MD&A, net sales discussion",
                "Weakness in foreign currencies relative to the U.S. dollar had an unfavorable impact",
            ),
            (
                "2023 Q3 AAPL.pdf",
                18,
                "MD&A segment operating performance",
                "weakness in foreign currencies relative to the U.S. dollar had a net unfavorable",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_075",
        cited=[
            (
                "2022 Q3 AAPL.pdf",
                8,
                "condensed consolidated statements of cash flows",
                "^Cash generated by operating activities",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_076",
        cited=[
            (
                "2023 Q1 AAPL.pdf",
                22,
                "MD&A Operating Expenses table and R&D paragraph",
                "^Research and development$",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_077",
        cited=[
            ("2023 Q2 AAPL.pdf", 23, "Part II Item 1 Legal Proceedings", "^Epic Games$"),
            ("2023 Q2 AAPL.pdf", 15, "Note 9 Commitments and Contingencies", "Contingencies"),
        ],
    ),
    Item(
        id="docugami_sec10q_078",
        cited=[
            (
                "2023 Q3 AAPL.pdf",
                24,
                "Part II Item 2 issuer purchases of equity securities table",
                "^Share repurchase activity during the three months",
            ),
            (
                "2023 Q3 AAPL.pdf",
                18,
                "MD&A capital return",
                "The Company repurchased \\$18.0 billion",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_079",
        cited=[
            (
                "2023 Q1 AAPL.pdf",
                14,
                "Note 6 Debt, commercial paper",
                "Commercial Paper outstanding",
            ),
            ("2023 Q1 AAPL.pdf", 15, "Note 6 Debt, term debt", "^Term Debt"),
        ],
    ),
    Item(
        id="docugami_sec10q_080",
        cited=[
            (
                "2023 Q3 AAPL.pdf",
                21,
                "MD&A Provision for Income Taxes table",
                "^Effective tax rate$",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_082",
        cited=[
            ("2022 Q3 AAPL.pdf", 6, "condensed consolidated balance sheets", "^Inventories$"),
        ],
    ),
    Item(
        id="docugami_sec10q_084",
        cited=[
            ("2023 Q3 MSFT.pdf", 3, "income statements", "^Gross margin$"),
            ("2023 Q3 MSFT.pdf", 33, "MD&A summary results of operations", "^Gross margin$"),
        ],
    ),
    Item(
        id="docugami_sec10q_085",
        cited=[
            ("2023 Q1 MSFT.pdf", 3, "income statements", "^Total revenue$"),
            ("2023 Q1 MSFT.pdf", 3, "income statements", "^Research and development$"),
        ],
    ),
    Item(
        id="docugami_sec10q_086",
        cited=[
            (
                "2023 Q2 MSFT.pdf",
                8,
                "Note 1 Accounting Policies, change in accounting estimate (useful lives)",
                "operating income of \\$885 million",
            ),
            (
                "2023 Q2 MSFT.pdf",
                34,
                "MD&A overview, change in accounting estimate",
                "operating income of \\$885 million",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_087",
        cited=[
            (
                "2023 Q3 MSFT.pdf",
                27,
                "Note 16 Segment Information, revenue by product and service offering",
                "^Server products and cloud services$",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_088",
        cited=[
            (
                "2023 Q3 MSFT.pdf",
                27,
                "Note 16 Segment Information, segment revenue",
                "^More Personal Computing$",
            ),
            (
                "2023 Q3 MSFT.pdf",
                34,
                "MD&A segment results of operations",
                "^More Personal Computing$",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_089",
        cited=[
            ("2022 Q3 MSFT.pdf", 6, "cash flows statements", "^Net cash from operations"),
        ],
    ),
    Item(
        id="docugami_sec10q_090",
        cited=[
            (
                "2023 Q1 MSFT.pdf",
                40,
                "MD&A Operating Expenses, Research and Development",
                "Research and development expenses increased \\$1.1 billion",
            ),
            ("2023 Q1 MSFT.pdf", 3, "income statements", "^Research and development$"),
        ],
    ),
    Item(
        id="docugami_sec10q_091",
        cited=[
            (
                "2023 Q2 MSFT.pdf",
                51,
                "Part II Item 1 Legal Proceedings and Item 1A Risk Factors",
                "ITEM 1. LEGAL PROCEEDINGS",
            ),
            ("2023 Q2 MSFT.pdf", 25, "Note 14 Contingencies", "NOTE 14 . CONTINGENCIES"),
        ],
    ),
    Item(
        id="docugami_sec10q_092",
        cited=[
            (
                "2023 Q3 MSFT.pdf",
                23,
                "Note 14 Stockholders Equity, share repurchases",
                "remained of this \\$60.0 billion",
            ),
            (
                "2023 Q3 MSFT.pdf",
                58,
                "Part II Item 2 share repurchases table",
                "^SHARE REPURCHASES AND DIVIDENDS",
            ),
            (
                "2023 Q3 MSFT.pdf",
                39,
                "MD&A liquidity, share repurchases",
                "remained of our \\$60 billion",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_093",
        cited=[
            ("2023 Q1 MSFT.pdf", 20, "Note 10 Debt", "^Total face value"),
            (
                "2023 Q1 MSFT.pdf",
                41,
                "MD&A other income, interest expense",
                "Interest expense decreased",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_094",
        cited=[
            (
                "2023 Q3 MSFT.pdf",
                20,
                "Note 10 Income Taxes, effective tax rate",
                "Our effective tax rate was 18% and 19%",
            ),
            (
                "2023 Q3 MSFT.pdf",
                37,
                "MD&A Income Taxes, effective tax rate",
                "Our effective tax rate was 18% and 19%",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_095",
        cited=[
            ("2023 Q2 MSFT.pdf", 19, "Note 7 Business Combinations", "Activision Blizzard, Inc."),
        ],
    ),
    Item(
        id="docugami_sec10q_096",
        cited=[
            ("2022 Q3 MSFT.pdf", 17, "Note 6 Inventories", "^Finished goods"),
            ("2022 Q3 MSFT.pdf", 5, "balance sheets [pooled]", "^Inventories"),
        ],
    ),
    Item(
        id="docugami_sec10q_099",
        cited=[
            (
                "2023 Q3 NVDA.pdf",
                3,
                "condensed consolidated statements of income",
                "^Gross profit$",
            ),
            ("2023 Q3 NVDA.pdf", 29, "MD&A results of operations table", "^Gross profit"),
        ],
    ),
    Item(
        id="docugami_sec10q_100",
        cited=[
            (
                "2023 Q1 NVDA.pdf",
                27,
                "MD&A results of operations, expenses as % of revenue",
                "^Total operating expenses",
            ),
        ],
        note="the percentage column shows total operating expenses at 34.9% of revenue",
    ),
    Item(
        id="docugami_sec10q_101",
        cited=[
            (
                "2023 Q2 NVDA.pdf",
                27,
                "MD&A second quarter of fiscal 2024 summary table",
                "^Net income$",
            ),
            ("2023 Q2 NVDA.pdf", 3, "condensed consolidated statements of income", "^Net income$"),
        ],
    ),
    Item(
        id="docugami_sec10q_102",
        cited=[
            (
                "2023 Q3 NVDA.pdf",
                24,
                "Note 15 Segment Information, revenue by specialized market",
                "^Gaming$",
            ),
            (
                "2023 Q3 NVDA.pdf",
                28,
                "MD&A Gaming [pooled]",
                "^Gaming revenue for the third quarter",
            ),
            (
                "2023 Q3 NVDA.pdf",
                29,
                "MD&A Professional Visualization [pooled]",
                "^Professional Visualization revenue for the third quarter",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_103",
        cited=[
            (
                "2023 Q3 NVDA.pdf",
                24,
                "Note 15 Segment Information, revenue by specialized market",
                "^Data Center$",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_104",
        cited=[
            (
                "2023 Q3 NVDA.pdf",
                18,
                "Note 11 Derivative Financial Instruments, foreign currency forward contracts",
                "foreign currency forward contracts to mitigate",
            ),
            (
                "2023 Q3 NVDA.pdf",
                35,
                "Item 3 market risk, foreign exchange rate risk",
                "^Foreign Exchange Rate Risk",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_105",
        cited=[
            (
                "2022 Q3 NVDA.pdf",
                8,
                "condensed consolidated statements of cash flows",
                "^Net cash provided by operating activities",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_106",
        cited=[
            (
                "2023 Q1 NVDA.pdf",
                28,
                "MD&A operating expenses, research and development",
                "^Research and development expenses",
            ),
            (
                "2023 Q1 NVDA.pdf",
                3,
                "condensed consolidated statements of income",
                "^Research and development$",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_107",
        cited=[
            (
                "2023 Q2 NVDA.pdf",
                20,
                "Note 13 Commitments and Contingencies, litigation",
                "^Securities Class Action and Derivative Lawsuits",
            ),
            (
                "2023 Q2 NVDA.pdf",
                21,
                "Note 13, accrual for contingent liabilities",
                "not recorded any accrual for contingent liabilities",
            ),
            (
                "2023 Q2 NVDA.pdf",
                34,
                "Part II Item 1 Legal Proceedings",
                "ITEM 1. LEGAL PROCEEDINGS",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_108",
        cited=[
            (
                "2023 Q3 NVDA.pdf",
                21,
                "Note 14 Shareholders Equity, share repurchase program",
                "we repurchased 8.3 million and 15.9 million shares",
            ),
            (
                "2023 Q3 NVDA.pdf",
                45,
                "Part II Item 2 issuer purchases of equity securities",
                "we repurchased 8.3 million and 15.9 million shares",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_109",
        cited=[
            ("2023 Q1 NVDA.pdf", 18, "Note 12 Debt, long-term debt", "^Net carrying amount"),
            (
                "2023 Q1 NVDA.pdf",
                29,
                "MD&A interest expense",
                "^Interest expense is primarily comprised",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_110",
        cited=[
            ("2023 Q3 NVDA.pdf", 12, "Note 6 Income Taxes", "expense of 12.2% and 11.3%"),
            ("2023 Q3 NVDA.pdf", 32, "MD&A income taxes", "expense of 12.2% and 11.3%"),
        ],
    ),
    Item(
        id="docugami_sec10q_112",
        cited=[
            (
                "2022 Q3 NVDA.pdf",
                26,
                "MD&A, supply and demand / inventory in advance of anticipated demand",
                "maintain inventory in advance of anticipated demand",
            ),
            (
                "2022 Q3 NVDA.pdf",
                16,
                "Note 10 Balance Sheet Components, inventories",
                "^Total inventories",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_114",
        cited=[
            (
                "2023 Q3 INTC.pdf",
                6,
                "consolidated condensed statements of income",
                "^Gross margin$",
            ),
            ("2023 Q3 INTC.pdf", 5, "A Quarter in Review, gross margin", "^Gross Margin$"),
        ],
    ),
    Item(
        id="docugami_sec10q_115",
        cited=[
            (
                "2023 Q1 INTC.pdf",
                6,
                "consolidated condensed statements of income",
                "^Operating expenses$",
            ),
            ("2023 Q1 INTC.pdf", 6, "consolidated condensed statements of income", "^Net revenue$"),
        ],
    ),
    Item(
        id="docugami_sec10q_116",
        cited=[
            ("2023 Q2 INTC.pdf", 5, "A Quarter in Review", "^Total revenue of \\$12.9 billion"),
        ],
    ),
    Item(
        id="docugami_sec10q_117",
        cited=[
            ("2023 Q3 INTC.pdf", 5, "A Quarter in Review", "^Total revenue of"),
            ("2023 Q3 INTC.pdf", 6, "consolidated condensed statements of income", "^Net revenue$"),
        ],
    ),
    Item(
        id="docugami_sec10q_118",
        cited=[
            (
                "2023 Q3 INTC.pdf",
                12,
                "Note 2 Operating Segments, net revenue by segment",
                "^Data Center and AI$",
            ),
            (
                "2023 Q3 INTC.pdf",
                28,
                "MD&A Data Center and AI revenue summary [pooled]",
                "^Revenue was \\$3.8 billion",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_119",
        cited=[
            (
                "2023 Q3 INTC.pdf",
                20,
                "Note 11 Derivative Financial Instruments, cash flow hedges",
                "cash flow hedges recognized in other comprehensive income",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_120",
        cited=[
            (
                "2022 Q3 INTC.pdf",
                8,
                "consolidated condensed statements of cash flows",
                "^Net cash provided by operating activities",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_121",
        cited=[
            (
                "2023 Q1 INTC.pdf",
                6,
                "consolidated condensed statements of income",
                "^Research and development$",
            ),
            ("2023 Q1 INTC.pdf", 33, "MD&A Research and Development", "^Research and Development$"),
        ],
    ),
    Item(
        id="docugami_sec10q_122",
        cited=[
            ("2023 Q2 INTC.pdf", 21, "Note 13 Contingencies", "We have accrued a charge of"),
            (
                "2023 Q2 INTC.pdf",
                22,
                "Note 13 Contingencies, European Commission competition matter",
                "^European Commission Competition Matter",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_123",
        cited=[
            (
                "2023 Q1 INTC.pdf",
                16,
                "Note 9 Borrowings",
                "we issued a total of \\$11.0 billion aggregate principal amount of senior notes",
            ),
            (
                "2023 Q1 INTC.pdf",
                35,
                "MD&A liquidity and capital resources",
                "we issued a total of \\$11.0 billion",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_124",
        cited=[
            (
                "2023 Q3 INTC.pdf",
                15,
                "Note 7 Income Taxes, effective tax rate",
                "^Effective tax rate",
            ),
            (
                "2023 Q3 INTC.pdf",
                38,
                "MD&A provision for taxes, effective tax rate",
                "^Effective tax rate",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_125",
        cited=[
            (
                "2023 Q2 INTC.pdf",
                16,
                "Note 9 Acquisitions and Divestitures, acquisition of Tower Semiconductor",
                "^Acquisition of Tower Semiconductor",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_126",
        cited=[
            (
                "2022 Q3 INTC.pdf",
                12,
                "Note 4 Other Financial Statement Details, inventories",
                "^Total inventories",
            ),
            ("2022 Q3 INTC.pdf", 7, "consolidated condensed balance sheets", "^Inventories"),
        ],
    ),
    Item(
        id="docugami_sec10q_127",
        cited=[
            (
                "2023 Q3 INTC.pdf",
                14,
                "Note 5, change in estimated useful life of machinery and equipment",
                "increased the estimated useful life of certain production machinery",
            ),
            (
                "2023 Q3 INTC.pdf",
                36,
                "MD&A gross margin, useful life change",
                "increased the estimated useful life of certain production machinery",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_129",
        cited=[
            ("2023 Q3 AMZN.pdf", 4, "consolidated statements of operations", "^Total net sales$"),
            ("2023 Q3 AMZN.pdf", 4, "consolidated statements of operations", "^Cost of sales$"),
        ],
        note="gross margin = net sales less cost of sales, both on this statement",
    ),
    Item(
        id="docugami_sec10q_130",
        cited=[
            (
                "2023 Q1 AMZN.pdf",
                4,
                "consolidated statements of operations",
                "^Total operating expenses$",
            ),
            ("2023 Q1 AMZN.pdf", 4, "consolidated statements of operations", "^Total net sales$"),
        ],
    ),
    Item(
        id="docugami_sec10q_131",
        cited=[
            (
                "2023 Q2 AMZN.pdf",
                25,
                "MD&A Operating Income (Loss) by segment and its drivers",
                "^Operating income increased from \\$3.3\\s+billion",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_132",
        cited=[
            (
                "2023 Q3 AMZN.pdf",
                19,
                "Note 8 Segment Information, net sales by segment",
                "^North America$",
            ),
            ("2023 Q3 AMZN.pdf", 24, "MD&A net sales by segment", "^North America$"),
        ],
    ),
    Item(
        id="docugami_sec10q_133",
        cited=[
            (
                "2023 Q3 AMZN.pdf",
                20,
                "Note 8, net sales by groups of similar products and services",
                "^Online stores",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_134",
        cited=[
            (
                "2023 Q3 AMZN.pdf",
                24,
                "MD&A net sales, effect of foreign exchange",
                "foreign exchange rates increased net sales by \\$1.4\\s+billion",
            ),
            (
                "2023 Q3 AMZN.pdf",
                30,
                "MD&A Effect of Foreign Exchange Rates table",
                "^Effect of Foreign Exchange Rates",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_135",
        cited=[
            (
                "2022 Q3 AMZN.pdf",
                3,
                "consolidated statements of cash flows",
                "^Net cash provided by \\(used in\\) operating activities",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_136",
        cited=[
            (
                "2023 Q1 AMZN.pdf",
                4,
                "consolidated statements of operations",
                "^Technology and content$",
            ),
            ("2023 Q1 AMZN.pdf", 28, "MD&A Technology and Content", "^Technology and Content$"),
        ],
    ),
    Item(
        id="docugami_sec10q_137",
        cited=[
            (
                "2023 Q2 AMZN.pdf",
                14,
                "Note 4 Commitments and Contingencies, Legal Proceedings",
                "Kove IO, Inc. filed a complaint",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_138",
        cited=[
            (
                "2023 Q3 AMZN.pdf",
                16,
                "Note 6 Stockholders Equity, Stock Repurchase Activity",
                "remaining under the repurchase program",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_139",
        cited=[
            ("2023 Q1 AMZN.pdf", 15, "Note 5 Debt", "unsecured 364-day term loan"),
        ],
    ),
    Item(
        id="docugami_sec10q_140",
        cited=[
            (
                "2023 Q2 AMZN.pdf",
                14,
                "Note 4 Commitments and Contingencies, pending acquisition",
                "agreement to acquire iRobot Corporation",
            ),
            ("2023 Q2 AMZN.pdf", 9, "Note 1 Acquisition Activity", "^Acquisition Activity"),
            (
                "2023 Q2 AMZN.pdf",
                10,
                "Note 1 Acquisition Activity, One Medical (continued) [pooled]",
                "effects of the One Medical acquisition",
            ),
        ],
    ),
    Item(
        id="docugami_sec10q_141",
        cited=[
            (
                "2022 Q3 AMZN.pdf",
                9,
                "Note 1 Accounting Policies, Inventories",
                "inventory valuation allowance",
            ),
            ("2022 Q3 AMZN.pdf", 6, "consolidated balance sheets", "^Inventories$"),
        ],
    ),
]

# Lyft and Uber 2021 10-Ks and Uber 2022 10-Qs (bench/data/filings/): questions of our own.
FILINGS_ITEMS = [
    Item(
        id="lyft10k_01",
        question="What was Lyft's total revenue in 2021?",
        cited=[
            ("lyft_2021.pdf", 79, "Lyft consolidated statements of operations", "^Revenue"),
            (
                "lyft_2021.pdf",
                56,
                "MD&A overview, 2021 financial highlights",
                "^Total revenue was \\$3.2 billion",
            ),
            ("lyft_2021.pdf", 63, "MD&A results of operations table", "^Revenue"),
        ],
    ),
    Item(
        id="lyft10k_02",
        question="How many Active Riders did Lyft have in the fourth quarter of 2021?",
        cited=[
            (
                "lyft_2021.pdf",
                57,
                "MD&A Active Riders table (in thousands)",
                "^Three Months Ended December 31",
            ),
        ],
    ),
    Item(
        id="lyft10k_03",
        question="What was Lyft's revenue per Active Rider at the end of 2021?",
        cited=[
            (
                "lyft_2021.pdf",
                58,
                "MD&A Revenue per Active Rider table",
                "^Three Months Ended December 31$",
            ),
        ],
    ),
    Item(
        id="lyft10k_04",
        question="What was Lyft's net loss for the year 2021?",
        cited=[
            ("lyft_2021.pdf", 79, "Lyft consolidated statements of operations", "^Net loss$"),
            (
                "lyft_2021.pdf",
                56,
                "MD&A overview, 2021 financial highlights",
                "^Net loss was \\$1.0 billion",
            ),
            ("lyft_2021.pdf", 63, "MD&A results of operations table", "^Net loss"),
        ],
    ),
    Item(
        id="lyft10k_05",
        question="What were Lyft's total assets as of December 31, 2021?",
        cited=[
            ("lyft_2021.pdf", 78, "Lyft consolidated balance sheets", "^Total assets"),
        ],
    ),
    Item(
        id="lyft10k_06",
        question="How large were Lyft's insurance reserves at the end of 2021?",
        cited=[
            ("lyft_2021.pdf", 78, "Lyft consolidated balance sheets", "^Insurance reserves"),
            (
                "lyft_2021.pdf",
                101,
                "Note 6 supplemental information, insurance reserves roll-forward",
                "^Insurance Reserves",
            ),
        ],
    ),
    Item(
        id="lyft10k_07",
        question="How much cash did Lyft use in operating activities in 2021?",
        cited=[
            (
                "lyft_2021.pdf",
                83,
                "Lyft consolidated statements of cash flows",
                "^Net cash used in operating activities",
            ),
            (
                "lyft_2021.pdf",
                71,
                "MD&A liquidity, operating activities",
                "^Net cash used in operating activities",
            ),
        ],
    ),
    Item(
        id="lyft10k_08",
        question="How many employees did Lyft have at the end of 2021?",
        cited=[
            ("lyft_2021.pdf", 12, "Item 1 Business, human capital", "we had 4,453 employees"),
        ],
    ),
    Item(
        id="lyft10k_09",
        question="Where is Lyft's corporate headquarters and how much space does it occupy?",
        cited=[
            ("lyft_2021.pdf", 53, "Item 2 Properties", "approximately 420,000 square feet"),
        ],
    ),
    Item(
        id="lyft10k_10",
        question="What was Lyft's transaction with Woven Planet and what gain did Lyft recognize from it?",
        cited=[
            (
                "lyft_2021.pdf",
                57,
                "MD&A, transaction with Woven Planet",
                "We recognized a pre-tax gain of \\$119.3 million",
            ),
            ("lyft_2021.pdf", 96, "Note 4 Divestitures", "^4. Divestitures"),
        ],
    ),
    Item(
        id="lyft10k_11",
        question="What are the terms of Lyft's convertible senior notes due 2025?",
        cited=[
            (
                "lyft_2021.pdf",
                111,
                "Note 10 Debt, 2025 Notes",
                "1.50% convertible senior notes due 2025",
            ),
        ],
    ),
    Item(
        id="lyft10k_12",
        question="What was Lyft's Adjusted EBITDA for 2021?",
        cited=[
            (
                "lyft_2021.pdf",
                70,
                "MD&A reconciliation of net loss to Adjusted EBITDA",
                "^Adjusted EBITDA$",
            ),
            (
                "lyft_2021.pdf",
                56,
                "MD&A overview, 2021 financial highlights",
                "^Adjusted EBITDA was \\$92.9 million",
            ),
        ],
    ),
    Item(
        id="lyft10k_13",
        question="When did Lyft acquire Flexdrive and for how much?",
        cited=[
            (
                "lyft_2021.pdf",
                95,
                "Note 3 Acquisitions, Flexdrive",
                "completed its acquisition of Flexdrive for approximately \\$20.0 million",
            ),
        ],
    ),
    Item(
        id="lyft10k_14",
        question="How did Lyft's research and development expenses change in 2021 and why?",
        cited=[
            (
                "lyft_2021.pdf",
                64,
                "MD&A research and development",
                "^Research and development expenses increased \\$2.8 million",
            ),
            (
                "lyft_2021.pdf",
                79,
                "Lyft consolidated statements of operations",
                "^Research and development",
            ),
            ("lyft_2021.pdf", 63, "MD&A results of operations table", "^Research and development"),
        ],
    ),
    Item(
        id="lyft10k_15",
        question="What legal proceedings does Lyft face over the classification of drivers as independent contractors?",
        cited=[
            (
                "lyft_2021.pdf",
                108,
                "Note 9 Commitments and Contingencies, Legal Proceedings",
                "^Independent Contractor Classification Matters",
            ),
        ],
    ),
    Item(
        id="uber10k_01",
        question="What was Uber's revenue in 2021?",
        cited=[
            ("uber_2021.pdf", 77, "Uber consolidated statements of operations", "^Revenue"),
            ("uber_2021.pdf", 53, "MD&A financial and operational highlights", "^Revenue"),
            (
                "uber_2021.pdf",
                60,
                "MD&A segment results of operations, revenue by segment",
                "^Total revenue",
            ),
        ],
    ),
    Item(
        id="uber10k_02",
        question="What was Uber's net loss attributable to Uber Technologies in 2021?",
        cited=[
            (
                "uber_2021.pdf",
                77,
                "Uber consolidated statements of operations",
                "^Net loss attributable to Uber Technologies, Inc\\.$",
            ),
            (
                "uber_2021.pdf",
                53,
                "MD&A financial and operational highlights",
                "^Net loss attributable to Uber Technologies, Inc\\. was \\$496 million",
            ),
        ],
    ),
    Item(
        id="uber10k_03",
        question="What were Uber's Gross Bookings in 2021?",
        cited=[
            ("uber_2021.pdf", 53, "MD&A financial and operational highlights", "^Gross Bookings"),
        ],
    ),
    Item(
        id="uber10k_04",
        question="How many Monthly Active Platform Consumers did Uber have in the fourth quarter of 2021?",
        cited=[
            (
                "uber_2021.pdf",
                53,
                "MD&A financial and operational highlights",
                "^Monthly Active Platform Consumers",
            ),
        ],
    ),
    Item(
        id="uber10k_05",
        question="How many trips were completed on Uber's platform in 2021?",
        cited=[
            ("uber_2021.pdf", 53, "MD&A financial and operational highlights", "^Trips"),
        ],
    ),
    Item(
        id="uber10k_06",
        question="How much revenue did Uber's Delivery business generate in 2021?",
        cited=[
            ("uber_2021.pdf", 98, "Note 2 Revenue, revenue by offering", "^Delivery revenue"),
            (
                "uber_2021.pdf",
                60,
                "MD&A segment results of operations, revenue by segment",
                "^Delivery",
            ),
        ],
    ),
    Item(
        id="uber10k_07",
        question="How much cash and cash equivalents did Uber hold at the end of 2021?",
        cited=[
            ("uber_2021.pdf", 76, "Uber consolidated balance sheets", "^Cash and cash equivalents"),
        ],
    ),
    Item(
        id="uber10k_08",
        question="How much cash did Uber use in operating activities in 2021?",
        cited=[
            (
                "uber_2021.pdf",
                65,
                "MD&A liquidity, operating activities",
                "^Net cash used in operating activities was \\$445 million",
            ),
            (
                "uber_2021.pdf",
                82,
                "Uber consolidated statements of cash flows [pooled]",
                "^Net cash used in operating activities$",
            ),
        ],
    ),
    Item(
        id="uber10k_09",
        question="What notes and term loans make up Uber's long-term debt?",
        cited=[
            (
                "uber_2021.pdf",
                113,
                "Note 8 Long-Term Debt and Revolving Credit Arrangements, components of debt",
                "^Total debt",
            ),
        ],
    ),
    Item(
        id="uber10k_10",
        question="How much did Uber pay to acquire Transplace?",
        cited=[
            (
                "uber_2021.pdf",
                144,
                "Note 18 Business Combinations, Transplace",
                "consideration transferred for Transplace was \\$2.3 billion",
            ),
        ],
    ),
    Item(
        id="uber10k_11",
        question="What was the purchase consideration for Uber's acquisition of Postmates?",
        cited=[
            (
                "uber_2021.pdf",
                141,
                "Note 18 Business Combinations, Postmates",
                "consideration transferred for Postmates was approximately \\$3.9 billion",
            ),
        ],
    ),
    Item(
        id="uber10k_12",
        question="How many employees did Uber have at the end of 2021?",
        cited=[
            (
                "uber_2021.pdf",
                10,
                "Item 1 Business, employees",
                "approximately 29,300 employees globally",
            ),
        ],
    ),
    Item(
        id="uber10k_13",
        question="What was the adjusted EBITDA of each of Uber's segments in 2021?",
        cited=[
            (
                "uber_2021.pdf",
                128,
                "Note 14 Segment Information, segment adjusted EBITDA",
                "^Segment adjusted EBITDA:",
            ),
            (
                "uber_2021.pdf",
                53,
                "MD&A financial and operational highlights",
                "^Mobility Adjusted EBITDA",
            ),
            ("uber_2021.pdf", 61, "MD&A segment adjusted EBITDA table [pooled]", "^Mobility"),
        ],
    ),
    Item(
        id="uber10k_14",
        question="What is the Massachusetts Attorney General's lawsuit against Uber about?",
        cited=[
            (
                "uber_2021.pdf",
                130,
                "Note 15 Commitments and Contingencies, Massachusetts Attorney General lawsuit",
                "^Massachusetts Attorney General Lawsuit",
            ),
        ],
    ),
    Item(
        id="uber10k_15",
        question="How much office space did Uber lease and own at the end of 2021?",
        cited=[
            ("uber_2021.pdf", 48, "Item 2 Properties", "10.6 million square feet"),
        ],
    ),
    Item(
        id="uber10k_16",
        question="What was Uber's Mobility take rate in 2021?",
        cited=[
            (
                "uber_2021.pdf",
                61,
                "MD&A, Mobility Gross Bookings and Take Rate",
                "Mobility Take Rate was 19.0%",
            ),
        ],
    ),
    Item(
        id="uber10k_17",
        question="What was Uber's provision for (benefit from) income taxes in 2021?",
        cited=[
            (
                "uber_2021.pdf",
                122,
                "Note 12 Income Taxes, components of the provision",
                "^Total provision for \\(benefit from\\) income taxes",
            ),
            (
                "uber_2021.pdf",
                77,
                "Uber consolidated statements of operations",
                "^Provision for \\(benefit from\\) income taxes",
            ),
            (
                "uber_2021.pdf",
                60,
                "MD&A Provision for (Benefit from) Income Taxes table [pooled]",
                "^Provision for \\(benefit from\\) income taxes$",
            ),
        ],
    ),
    Item(
        id="uber10q_01",
        question="What was Uber's Adjusted EBITDA in the first quarter of 2022?",
        cited=[
            (
                "uber_10q_march_2022.pdf",
                35,
                "MD&A financial and operational highlights, Q1 2022",
                "^Adjusted EBITDA was \\$168 million",
            ),
            (
                "uber_10q_march_2022.pdf",
                44,
                "MD&A Adjusted EBITDA discussion",
                "^Adjusted EBITDA was \\$168 million",
            ),
        ],
    ),
    Item(
        id="uber10q_02",
        question="How much cash did Uber's operating activities provide in the first quarter of 2022?",
        cited=[
            (
                "uber_10q_march_2022.pdf",
                48,
                "MD&A liquidity, operating activities",
                "^Net cash provided by operating activities was \\$15 million",
            ),
            (
                "uber_10q_march_2022.pdf",
                10,
                "condensed consolidated statements of cash flows [pooled]",
                "^Net cash provided by \\(used in\\) operating activities",
            ),
        ],
    ),
    Item(
        id="uber10q_03",
        question="What unrealized losses on its equity investments did Uber record in the first quarter of 2022?",
        cited=[
            (
                "uber_10q_march_2022.pdf",
                35,
                "MD&A highlights, net loss drivers",
                "unrealized loss on our Aurora investments",
            ),
            (
                "uber_10q_march_2022.pdf",
                41,
                "MD&A other income (expense), net",
                "unrealized loss on our Grab investment",
            ),
        ],
    ),
    Item(
        id="uber10q_04",
        question="How did Uber account for its Didi investment after Didi delisted from the NYSE?",
        cited=[
            (
                "uber_10q_june_2022.pdf",
                16,
                "Note 3 Investments, Didi Investment",
                "^Didi Investment",
            ),
        ],
    ),
    Item(
        id="uber10q_05",
        question="What was Uber's revenue in the second quarter of 2022?",
        cited=[
            (
                "uber_10q_june_2022.pdf",
                6,
                "condensed consolidated statements of operations",
                "^Revenue",
            ),
            (
                "uber_10q_june_2022.pdf",
                37,
                "MD&A highlights, Q2 2022",
                "^Revenue was \\$8.1 billion",
            ),
        ],
    ),
    Item(
        id="uber10q_06",
        question="What was Uber's Mobility Adjusted EBITDA in the second quarter of 2022?",
        cited=[
            (
                "uber_10q_june_2022.pdf",
                37,
                "MD&A highlights, Q2 2022",
                "Mobility Adjusted EBITDA profit was \\$771 million",
            ),
        ],
    ),
    Item(
        id="uber10q_07",
        question="What was Uber's net loss attributable to Uber in the third quarter of 2022?",
        cited=[
            (
                "uber_10q_sept_2022.pdf",
                6,
                "condensed consolidated statements of operations",
                "^Net loss attributable to Uber Technologies, Inc\\.",
            ),
            (
                "uber_10q_sept_2022.pdf",
                38,
                "MD&A highlights, Q3 2022",
                "^Net loss attributable to Uber Technologies, Inc\\. was \\$1.2",
            ),
        ],
    ),
    Item(
        id="uber10q_08",
        question="How much cash did Uber's operating activities provide in the first nine months of 2022?",
        cited=[
            (
                "uber_10q_sept_2022.pdf",
                53,
                "MD&A liquidity, operating activities",
                "^Net cash provided by operating activities was \\$886 million",
            ),
        ],
    ),
]


def page_texts(pdf: Path) -> list[str]:
    """PyMuPDF text of every page of ``pdf`` (index 0 = page 1)."""
    import pymupdf

    with pymupdf.open(pdf) as doc:
        if doc.needs_pass:
            doc.authenticate("")
        return [page.get_text() for page in doc]


def answering_line(text: str, pattern: str) -> str | None:
    """The first line of ``text`` matching ``pattern`` (case-insensitive), with the figures printed
    on the lines right after it (a table row's values) in brackets; None when no line matches."""
    lines = [line.replace("\xa0", " ").strip() for line in text.splitlines()]
    rx = re.compile(pattern, re.IGNORECASE)
    for i, line in enumerate(lines):
        if rx.search(line):
            figures: list[str] = []
            for nxt in lines[i + 1 : i + 12]:
                if nxt in ("", "$"):
                    continue
                if not _FIGURE.match(nxt) or len(figures) == 4:
                    break
                figures.append(" ".join(nxt.replace("$", "").split()))
            shown = line if len(line) <= 160 else line[:157] + "..."
            return shown + (f" [{' | '.join(figures)}]" if figures else "")
    return None


def build(items: list[Item], folder: Path, known: dict[str, dict]) -> tuple[list[dict], list[str]]:
    """The JSONL records of ``items`` and the list of patterns not found on their pages."""
    cache: dict[str, list[str]] = {}
    records, errors = [], []
    for item in items:
        how, evidence = [], []
        for doc, page, section, pattern in item.cited:
            if doc not in cache:
                cache[doc] = page_texts(folder / doc)
            found = answering_line(cache[doc][page - 1], pattern)
            if found is None:
                errors.append(f"{item.id}: /{pattern}/ not on {doc} p.{page}")
                found = "?"
            how.append(f"{doc} p.{page}, {section}: '{found}'")
            evidence.append({"doc": doc, "page": page, "text": None})
        files = list(dict.fromkeys(d for d, *_ in item.cited))
        pages = [sorted({p for d, p, *_ in item.cited if d == f}) for f in files]
        base = known.get(item.id, {})
        records.append({
            "id": item.id,
            "question": item.question or base["question"],
            "answer": base.get("answer"),
            "file": files[0] if len(files) == 1 else files,
            "pages": pages[0] if len(files) == 1 else pages,
            "how": "; ".join(how) + (f" ({item.note})" if item.note else ""),
            "evidence": evidence,
        })  # fmt: skip
    return records, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--filings", type=Path, default=DATA / "filings")
    ap.add_argument("--check", action="store_true", help="check the cited lines, write nothing")
    args = ap.parse_args()
    known = {}
    for line in (DOCUGAMI / "questions.jsonl").read_text().splitlines():
        if line.strip():
            q = json.loads(line)
            known[q["id"]] = q
    failed = False
    for items, folder, out in ((DOCUGAMI_ITEMS, DOCUGAMI / "docs", DATA / "docugami_cited_pages.jsonl"),
                               (FILINGS_ITEMS, args.filings, DATA / "filings_pages.jsonl")):  # fmt: skip
        records, errors = build(items, folder, known)
        for e in errors:
            print("not found:", e, file=sys.stderr)
        failed |= bool(errors)
        n_pages = sum(len(r["evidence"]) for r in records)
        print(f"{out.name}: {len(records)} questions, {n_pages} cited pages, "
              f"{len(errors)} lines not found")  # fmt: skip
        if not args.check:
            out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
