"""Comparing two documents (:mod:`desktop_rag.core.tasks.compare`) on two real 10-Qs of Apple
(fiscal 2023 Q1 and Q2 from the shared docugami set), indexed once for the module with the real
bundled embedding model, and the statement parsing on rows as the PDF extractor writes them.

The facts asserted were read on the filings' pages: total net sales were $117,154 million in the
quarter ended December 31, 2022 (Q1 filing, page 4) and $94,836 million in the quarter ended
April 1, 2023 (Q2 filing, page 4); each statement also prints the prior year's quarter
(123,945 and 97,278), which must never be reported.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from desktop_rag.core.embed.embedding import Embedder
from desktop_rag.core.engine import Engine
from desktop_rag.core.errors import Cancelled, UserError
from desktop_rag.core.paths import AppPaths
from desktop_rag.core.settings import Settings
from desktop_rag.core.tasks.compare import (
    CompareProgress,
    Comparison,
    compare,
    page_header,
    parse_header,
    parse_value,
    statement_rows,
)
from desktop_rag.core.types import CancelToken
from tests.conftest import DOCUGAMI, requires_docugami

Q1, Q2 = "2023 Q1 AAPL.pdf", "2023 Q2 AAPL.pdf"


@pytest.fixture(scope="module")
def filings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Engine]:
    """An engine whose index holds the two Apple 10-Qs (and nothing else)."""
    if not DOCUGAMI.is_dir():
        pytest.skip(f"the shared eval data is not here ({DOCUGAMI})")
    root = tmp_path_factory.mktemp("compare")
    docs = root / "docs"
    docs.mkdir()
    for name in (Q1, Q2):
        shutil.copy(DOCUGAMI / name, docs / name)
    paths = AppPaths(root / "data", root / "config", root / "cache", root / "logs")
    eng = Engine(paths, Settings(temperature=0.0), embedder=embedder)
    summary = eng.index_all([docs])
    assert summary.indexed == 2, summary
    yield eng
    eng.close()


def run(engine: Engine, a: str, b: str, **kwargs: Any) -> tuple[list[CompareProgress], Comparison]:
    events = list(compare(engine, a, b, **kwargs))
    result = events[-1]
    assert isinstance(result, Comparison)
    progress = [e for e in events[:-1] if isinstance(e, CompareProgress)]
    assert len(progress) == len(events) - 1
    return progress, result


def figure(result: Comparison, item: str, statement: str) -> dict[str, Any]:
    found = [f for f in result.figures_differ if f["item"] == item and f["statement"] == statement]
    assert len(found) == 1, [f["item"] for f in result.figures_differ]
    return found[0]


@requires_docugami
def test_figures_differ_use_each_reports_own_current_quarter(filings: Engine) -> None:
    import pymupdf

    _, result = run(filings, Q1, Q2)
    sales = figure(result, "Net sales › Total net sales", "operations")
    assert (sales["a"]["value"], sales["a"]["page"]) == ("117,154", 4)
    assert (sales["b"]["value"], sales["b"]["page"]) == ("94,836", 4)
    assert sales["a"]["number"] == 117154.0 and sales["b"]["number"] == 94836.0
    assert Path(sales["a"]["file"]).name == Q1 and Path(sales["b"]["file"]).name == Q2
    assert sales["a"]["period"] == "Three Months Ended December 31 2022"
    assert sales["b"]["period"] == "Three Months Ended April 1 2023"
    assert sales["same_span"] is True
    # The cited pages of the PDFs themselves print these values (page numbers are 1-based).
    for side, name in (("a", Q1), ("b", Q2)):
        with pymupdf.open(DOCUGAMI / name) as doc:
            text = doc[sales[side]["page"] - 1].get_text()
        assert "Total net sales" in text and sales[side]["value"] in text
    # The prior-year columns both statements print are never what is compared.
    values = {f[s]["value"].lstrip("$") for f in result.figures_differ for s in ("a", "b")}
    assert not values & {"123,945", "97,278", "34,630", "25,010"}
    eps = figure(result, "Earnings per share › Diluted", "operations")
    assert (eps["a"]["value"], eps["b"]["value"]) == ("$1.88", "$1.52")
    inventories = figure(result, "Current assets › Inventories", "balance")
    assert (inventories["a"]["value"], inventories["b"]["value"]) == ("6,820", "7,482")
    assert (inventories["a"]["page"], inventories["b"]["page"]) == (6, 6)
    assert inventories["a"]["period"] == "December 31 2022"
    # Q2's cash flow statement covers six months, Q1's three: flagged, not hidden.
    cash = figure(result, "Operating activities › Net income", "cash_flows")
    assert (cash["a"]["value"], cash["b"]["value"]) == ("29,998", "54,158")
    assert cash["same_span"] is False
    assert len(result.figures_differ) > 60


@requires_docugami
def test_passages_both_and_only(filings: Engine) -> None:
    _, result = run(filings, Q1, Q2)
    assert result.both and result.only_a and result.only_b
    topics = {p["topic"] for p in result.both}
    assert "statement of operations" in topics and "balance sheet" in topics
    # The Q1 filing carries the RSU award agreements as exhibits; Q2 does not.
    assert any(p["topic"] == "PERFORMANCE AWARD" for p in result.only_a)
    # Q2 announces the raised dividend (page 22); Q1 cannot.
    raised = [p for p in result.only_b if "$0.23 to $0.24" in p["text"]]
    assert raised and raised[0]["page"] == 22 and Path(raised[0]["file"]).name == Q2
    for p in (*result.only_a, *result.only_b, *(x[s] for x in result.both for s in ("a", "b"))):
        page_text = filings.page_text(p["file"], p["page"])
        assert page_text is not None and page_text[p["start"] : p["end"]] == p["text"]


@requires_docugami
def test_a_document_compared_with_itself(filings: Engine) -> None:
    _, result = run(filings, Q2, Q2)
    assert result.figures_differ == [] and result.only_a == [] and result.only_b == []
    assert result.changed == [], "a document has no changes against itself"
    assert result.figures_same > 50
    assert len(result.both) == result.stats["chunks_a"]


@requires_docugami
def test_progress_json_and_markdown(filings: Engine) -> None:
    progress, result = run(filings, Q1, Q2)
    done = [p.done for p in progress]
    assert done == sorted(done) and progress[-1].done == progress[-1].total
    assert all(p.eta_s is None or p.eta_s >= 0 for p in progress)
    data = json.loads(json.dumps(result.to_json()))
    assert set(data) >= {"both", "only_a", "only_b", "figures_differ"}
    assert data["figures_differ"][0].keys() >= {"item", "period", "a", "b"}
    md = result.to_markdown()
    row = next(line for line in md.splitlines() if line.startswith("| Net sales › Total net sales"))
    assert "117,154" in row and "2023 Q1 AAPL.pdf, page 4" in row
    assert "94,836" in row and "2023 Q2 AAPL.pdf, page 4" in row
    assert "## Only in 2023 Q2 AAPL.pdf" in md


@requires_docugami
def test_aspect_keeps_revenue_lines(filings: Engine) -> None:
    _, result = run(filings, Q1, Q2, aspect="revenue")
    items = {f["item"] for f in result.figures_differ}
    assert {"Net sales › Total net sales", "Net sales › Products", "Net sales › Services"} <= items
    assert not any("Cost of sales" in i or "Research" in i for i in items)
    _, everything = run(filings, Q1, Q2)
    assert len(result.both) < len(everything.both)


@requires_docugami
def test_cancel_stops_it(filings: Engine) -> None:
    token = CancelToken()
    events = compare(filings, Q1, Q2, cancel=token)
    assert isinstance(next(events), CompareProgress)
    token.cancel()
    with pytest.raises(Cancelled):
        for _ in events:
            pass


@requires_docugami
def test_what_is_not_a_document_is_refused(filings: Engine, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not in the index"):
        list(compare(filings, "2023 Q3 AAPL.pdf", Q2))
    stray = tmp_path / "stray.pdf"
    shutil.copy(DOCUGAMI / Q1, stray)
    with pytest.raises(UserError, match="not in the index"):
        list(compare(filings, Q1, stray))
    folder = Path(filings.store.files()[0].path).parent
    with pytest.raises(UserError, match="folder"):
        list(compare(filings, folder, Q2))


# -- parsing, on rows as the extractor writes them (no model) --------------------------------


def test_values() -> None:
    assert parse_value("$73,929") == 73929.0
    assert parse_value("(1,001)") == -1001.0
    assert parse_value("$(13,963)") == -13963.0
    assert parse_value("$1.53") == 1.53
    assert parse_value("—") == 0.0
    assert parse_value("$15,535  $") == 15535.0  # the next column's "$" printed beside it
    assert parse_value("Apple Inc.") is None and parse_value("1,863 $ 103,286") is None


def test_header_current_column_is_the_latest_date() -> None:
    head = parse_header(
        "in millions · Three Months Ended | Six Months Ended · April 1 2023 | March 26 2022"
    )
    assert (head.current, head.columns, head.period) == (0, 4, "Three Months Ended April 1 2023")
    head = parse_header("in millions · December 31 2022 | March 31 2023")
    assert (head.current, head.columns, head.period) == (1, 2, "March 31 2023")
    assert parse_header("in millions").current is None


def test_prior_year_first_and_header_below_the_rows() -> None:
    # Amazon prints the prior year first, its month and day once over both years.
    amazon = (
        "CONSOLIDATED STATEMENTS OF OPERATIONS\n(in millions, except per share data)\n(unaudited)\n"
        "Three Months Ended\nMarch 31,\n2022 | 2023\nNet product sales | $56,455 | $56,981\n"
        "Total net sales | 116,444 | 127,358\nOperating expenses:\nCost of sales | 66,499 | 67,791\n"
    )
    rows = statement_rows(
        amazon, 4, [(0, "operations", "in millions · Three Months Ended · March 31 2022")]
    )
    got = {r.item: (r.value, r.period) for r in rows}
    assert got["Total net sales"] == ("127,358", "Three Months Ended March 31 2023")
    assert got["Operating expenses › Cost of sales"] == (
        "67,791",
        "Three Months Ended March 31 2023",
    )
    # Intel's cash flow header comes out after the rows; a row that does not fit is left out.
    intel = (
        "Consolidated Condensed Statements of Cash Flows\nDepreciation | 1,901 | 2,847\n"
        "Odd row | 1 | 2 | 3\nThree Months Ended\n(In Millions; Unaudited) | Apr 1, 2023 | Apr 2, 2022\n"
    )
    rows = statement_rows(intel, 9, [(0, "cash_flows", "")])
    assert [(r.label, r.value, r.period) for r in rows] == [
        ("Depreciation", "1,901", "Three Months Ended Apr 1 2023")
    ]
    msft = page_header(["Three Months Ended September 30, | 2023 | 2022"])
    assert (msft.current, msft.columns, msft.period) == (
        0,
        2,
        "Three Months Ended September 30 2023",
    )


_POLICY = {
    "Purpose": [
        "This policy sets out how employees of Northwind Ltd may work away from the office. "
        "It applies to every permanent employee and to contractors engaged for more than three "
        "months.",
    ],
    "Eligibility": [
        "An employee may request remote work after completing the probation period. The "
        "request is made in writing to the line manager, who answers within 10 working days.",
        "Roles that need presence on site, such as laboratory and reception staff, are not "
        "eligible.",
    ],
    "Equipment and expenses": [
        "The company provides a laptop and a headset to every remote worker. Internet costs "
        "are reimbursed up to $50 per month against receipts submitted with the monthly "
        "expense claim.",
        "Furniture is not reimbursed. Employees keep company equipment in a safe place and "
        "report a loss or theft to the service desk at once.",
    ],
    "Ending the arrangement": [
        "Either party may end a remote work arrangement by giving 30 days written notice. The "
        "employee then returns to the office on the date the notice ends.",
    ],
}


def _write_policy(path: Path, sections: dict[str, list[str]]) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Remote Work Policy", 0)
    for heading, paragraphs in sections.items():
        document.add_heading(heading, 1)
        for text in paragraphs:
            document.add_paragraph(text)
    document.save(str(path))


def test_two_versions_of_a_policy(tmp_path: Path, embedder: Embedder) -> None:
    """Version 2 of a real-shaped policy (DOCX): a longer notice, a higher allowance, a new
    section, a dropped sentence, and a paragraph inserted early so every later chunk boundary
    moves. The changes are found as edits with both pages cited; unchanged sentences are not."""
    v2 = {k: list(v) for k, v in _POLICY.items()}
    v2["Purpose"].insert(0, "Northwind Ltd supports flexible work where the role allows it.")
    v2["Equipment and expenses"][0] = v2["Equipment and expenses"][0].replace("$50", "$75")
    v2["Ending the arrangement"][0] = v2["Ending the arrangement"][0].replace("30 days", "60 days")
    v2["Eligibility"] = v2["Eligibility"][:1]
    v2["Security"] = [
        "Remote workers connect only through the company VPN and lock their screen whenever "
        "they leave the device unattended."
    ]
    docs = tmp_path / "docs"
    docs.mkdir()
    _write_policy(docs / "policy v1.docx", _POLICY)
    _write_policy(docs / "policy v2.docx", v2)
    paths = AppPaths(tmp_path / "data", tmp_path / "config", tmp_path / "cache", tmp_path / "logs")
    engine = Engine(paths, Settings(), embedder=embedder)
    try:
        assert engine.index_all([docs]).indexed == 2
        _, result = run(engine, "policy v1.docx", "policy v2.docx")
    finally:
        engine.close()
    edits = [e for ch in result.changed for e in ch["edits"]]
    assert {(e["a"], e["b"]) for e in edits} >= {("$50", "$75"), ("30", "60")}, edits
    # The new section's sentence is added; the dropped one removed; nothing else changed.
    added = [t for ch in result.changed for t in ch["added"]]
    added += [p["text"] for p in result.only_b]
    removed = [t for ch in result.changed for t in ch["removed"]]
    removed += [p["text"] for p in result.only_a]
    assert any("company VPN" in t for t in added), added
    assert any("laboratory and reception" in t for t in removed), removed
    assert not any("provides a laptop" in t or "Furniture" in t for t in added + removed)
    # Figures in the text that differ, each cited to its file (no statements here).
    values = {(f["a"]["value"], f["b"]["value"]) for f in result.figures_differ}
    assert values == {("$50", "$75"), ("30", "60")}, result.figures_differ
    assert all(f["statement"] == "passage" and f["a"]["file"].endswith("policy v1.docx")
               and f["b"]["file"].endswith("policy v2.docx") for f in result.figures_differ)  # fmt: skip
    md = result.to_markdown()
    assert "## Changed passages" in md and "~~30~~ **60**" in md
    assert result.to_json()["changed"] == result.changed
