"""Financial statements: titles, questions' line items, and retrieval of the statement pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_rag.core.engine import Engine
from desktop_rag.core.search.retrieval import RetrievalConfig
from desktop_rag.core.text.statements import (
    question_statements,
    statement_of_context,
    statement_of_title,
)


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ("CONDENSED CONSOLIDATED BALANCE SHEETS (Unaudited)", "balance"),
        ("BALANCE SHEETS", "balance"),
        ("Consolidated Statement of Financial Position", "balance"),
        (
            "NVIDIA CORPORATION AND SUBSIDIARIES CONDENSED CONSOLIDATED STATEMENTS OF INCOME",
            "operations",
        ),
        ("INCOME STATEMENTS", "operations"),
        ("Condensed Consolidated Statements of Operations and Comprehensive Income", "operations"),
        ("COMPREHENSIVE INCOME STATEMENTS", "comprehensive"),
        ("Condensed Consolidated Statements of Cash Flows (in millions)", "cash_flows"),
        ("CASH FLOWS STATEMENTS", "cash_flows"),
        ("CONDENSED CONSOLIDATED STATEMENTS OF SHAREHOLDERS’ EQUITY (Unaudited)", "equity"),
        ("NOTES TO CONDENSED CONSOLIDATED FINANCIAL STATEMENTS", None),
        ("See the consolidated balance sheets for the inventory by product line.", None),
        ("Results of Operations", None),
    ],
)
def test_statement_titles(line: str, kind: str | None) -> None:
    assert statement_of_title(line) == kind


def test_statement_of_a_context_line_is_its_innermost_title() -> None:
    ctx = "2023 Q3 ACME: Form 10-Q › Item 1. Financial Statements › CONSOLIDATED BALANCE SHEETS › ASSETS"
    assert statement_of_context(ctx) == "balance"
    assert statement_of_context("Guide › Install") is None


def test_question_statements() -> None:
    assert question_statements("How have inventory levels changed?") == {"balance"}
    assert question_statements("What was R&D spending?") == {"operations"}
    assert question_statements("Did the company buy back shares?") == {"cash_flows", "equity"}
    assert question_statements("What is the incubation period of COVID-19?") == frozenset()


def _filing(path: Path, quarter_inventory: str) -> Path:
    """A small 10-Q as filers print one: a discussion that mentions inventory levels, a
    statement of operations, and a balance sheet whose title is in body type (no bold) and
    whose rows are one text line per cell."""
    import pymupdf

    doc = pymupdf.open()
    prose = doc.new_page()
    text = (
        "Management's Discussion and Analysis\n\n"
        "Net sales increased 4% in the second quarter, driven by shipments of industrial robots "
        "to automotive plants in Europe. Gross margin was lower because of component costs and "
        "freight. We continue to manage inventory levels with our suppliers as supply chain "
        "conditions normalise. Operating expenses rose with headcount in engineering."
    )
    prose.insert_text((50, 50), "Acme Robotics Inc. Form 10-Q", fontsize=20)
    prose.insert_textbox(pymupdf.Rect(50, 70, 550, 800), text, fontsize=10)

    def table(title: str, rows: list[tuple[str, str, str]]) -> None:
        page = doc.new_page()
        page.insert_text((72, 50), "ACME ROBOTICS INC.", fontsize=10)
        page.insert_text((72, 66), title, fontsize=10)
        page.insert_text((72, 82), "(In millions)", fontsize=10)
        page.insert_text((300, 100), "June 30, 2023", fontsize=10)
        page.insert_text((400, 100), "December 31, 2022", fontsize=10)
        for i, (label, a, b) in enumerate(rows):
            y = 120 + 15 * i
            page.insert_text((72, y), label, fontsize=10)
            page.insert_text((300, y), a, fontsize=10)
            page.insert_text((400, y), b, fontsize=10)

    table("CONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS", [
        ("Net sales", "12,410", "11,902"), ("Cost of sales", "7,215", "7,010"),
        ("Research and development", "1,311", "1,207"), ("Net income", "1,804", "1,611"),
    ])  # fmt: skip
    table("CONDENSED CONSOLIDATED BALANCE SHEETS", [
        ("Cash and cash equivalents", "4,210", "3,980"),
        ("Accounts receivable, net", "2,118", "2,407"),
        ("Inventories", quarter_inventory, "2,950"),
        ("Total current assets", "9,874", "9,337"),
        ("Property, plant and equipment, net", "5,502", "5,377"),
        ("Total assets", "15,376", "14,714"),
    ])  # fmt: skip
    doc.save(path)
    return path


def test_a_question_on_a_line_item_finds_its_statement_page(engine: Engine, tmp_path: Path) -> None:
    docs = tmp_path / "filings"
    docs.mkdir()
    _filing(docs / "2023 Q2 ACME.pdf", "3,071")
    engine.index_all([docs])
    chunks = engine.store.con.execute("SELECT page, context FROM chunks").fetchall()
    # The balance sheet's title heads its chunks (it is in body type: found by its words).
    assert any(p == 3 and statement_of_context(c) == "balance" for p, c in chunks)
    # ... with the table's units and column dates, which the rows far down a table lack.
    assert any(c.endswith("in millions · June 30 2023 | December 31 2022") for _, c in chunks)
    question = "How have Acme's inventory levels changed?"
    hits = engine.search(question, 3).hits
    assert hits[0].page == 3 and "Inventories | 3,071 | 2,950" in hits[0].text
    # Without the statement preference the discussion's wording wins.
    plain = engine.retriever()
    plain.config = RetrievalConfig(statement_weight=0.0)
    assert plain.search(question, 3).hits[0].page == 1


def test_table_header_reads_units_spans_and_dates_over_two_lines() -> None:
    from desktop_rag.core.ingest.extract.pdf import table_header

    lines = [
        ["(In millions, except per share amounts)"],
        ["(Unaudited)"],
        ["Three Months Ended", "Nine Months Ended"],
        ["July 1,"], ["2023"], ["June 25,"], ["2022"],
        ["Net sales:"],
        ["Products", "$60,584", "$63,355"],
    ]  # fmt: skip
    assert table_header(lines) == (
        "in millions · Three Months Ended | Nine Months Ended · July 1 2023 | June 25 2022"
    )
    # A row of days over a row of years, in column order.
    assert table_header([["October 29,", "January 29,"], ["2023", "2023"], ["ASSETS"]]) == (
        "October 29 2023 | January 29 2023"
    )
    assert table_header([["Total net sales", "81,797"]]) == ""
