"""Reporting periods in questions and document names, and the retriever preferring them."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_rag.core.engine import Engine
from desktop_rag.core.search.retrieval import _documents
from desktop_rag.core.text.periods import Period, asks_latest, document_period, question_periods
from tests.conftest import make_pdf

# What makes a document a filing (core/text/filings.py): the period and name preferences apply
# to filings and financial reports only.
COVER = "SECURITIES AND EXCHANGE COMMISSION\nFORM 10-Q\n\n"


@pytest.mark.parametrize(
    ("question", "periods"),
    [
        ("What was Apple's revenue in Q1 2023?", {Period(2023, 1)}),
        ("Intel's 2023 Q3 gross margin", {Period(2023, 3)}),
        ("results for 3Q22", {Period(2022, 3)}),
        ("in the third quarter of fiscal 2024", {Period(2024, 3)}),
        ("R&D spending in FY2022", {Period(2022)}),
        ("revenue in 2022 and 2023", {Period(2022), Period(2023)}),
        ("How did revenue change over time?", set()),
        ("net sales were $2023 million", set()),  # a figure is not a year
    ],
)
def test_question_periods(question: str, periods: set[Period]) -> None:
    assert question_periods(question) == periods


def test_document_period_reads_the_file_name_then_the_title() -> None:
    assert document_period("2023 Q1 AAPL") == (Period(2023, 1), "aapl")
    assert document_period("aapl-q3-2022") == (Period(2022, 3), "aapl")
    assert document_period("annual report", "Annual Report FY2021") == (
        Period(2021),
        "annual report",
    )
    # A range of years is no single period.
    assert document_period("results 2019-2023")[0] is None


def test_year_covers_its_quarters_only() -> None:
    assert Period(2023).covers(Period(2023, 2))
    assert not Period(2023, 1).covers(Period(2023, 2))
    assert not Period(2022).covers(Period(2023, 1))


def test_asks_latest() -> None:
    assert asks_latest("How did R&D in the most recent quarter compare?")
    assert asks_latest("In the latest 10-Q, what is the debt?")
    assert asks_latest("What did the last 10-Q say about debt?")
    assert not asks_latest("What is the debt?")


@pytest.mark.parametrize(
    "question",
    [
        "What was revenue last year?",
        "How did last quarter's revenue compare with the year before?",
        "Compare last quarter's revenue with the same quarter of 2022.",
        "What was the debt in the latest quarter, Q3 2023?",  # names its period
        "In the most recent fiscal 2022 report, what was the margin?",
    ],
)
def test_asks_latest_not_on_a_question_naming_a_period(question: str) -> None:
    assert not asks_latest(question)


def test_retrieval_prefers_the_filing_of_the_asked_quarter(engine: Engine, tmp_path: Path) -> None:
    """Four filings of one series say the same sentence with other figures: the question's
    quarter (and "the most recent quarter") picks the right file, which wording alone cannot."""
    docs = tmp_path / "filings"
    docs.mkdir()
    figures = {(2022, 4): "9,120", (2023, 1): "9,480", (2023, 2): "9,730", (2023, 3): "10,050"}
    for (year, q), fig in figures.items():
        make_pdf(docs / f"{year} Q{q} ACME.pdf", [
            f"{COVER}Acme Corp quarterly report.\n\nResearch and development expense was ${fig} million "
            "for the quarter, driven by headcount in the robotics division.",
            "Acme Corp sells industrial robots to automotive plants in Europe and Asia.",
        ])  # fmt: skip
    engine.index_all([docs])
    for (year, q), _ in figures.items():
        hits = engine.search(
            f"What was Acme's research and development expense in Q{q} {year}?"
        ).hits
        assert Path(hits[0].path).name == f"{year} Q{q} ACME.pdf"
    hits = engine.search("Acme research and development expense in the most recent quarter").hits
    assert Path(hits[0].path).name == "2023 Q3 ACME.pdf"


def test_a_name_in_the_question_prefers_its_series_among_dated_documents(
    fake_engine: Engine, tmp_path: Path
) -> None:
    """Filings of two issuers (the name in their titles) and two undated papers, all scored
    alike: a question naming one issuer lifts that issuer's filings by ``title_weight``, the
    other issuer's and the papers get nothing; a question without a name changes nothing."""
    engine = fake_engine
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, ticker in (("Acme Robotics", "ACME"), ("Globex Industries", "GLBX")):
        for q in (1, 2):
            make_pdf(docs / f"2023 Q{q} {ticker}.pdf",
                     [f"{COVER}Research and development spending was ${9000 + 110 * q:,} million."],
                     title=f"{name} Form 10-Q")  # fmt: skip
    for paper in ("acme-paper", "globex-paper"):
        make_pdf(docs / f"{paper}.pdf", ["Research on robot arms at Acme and Globex."],
                 title=f"A study of {paper.split('-')[0].title()} robots")  # fmt: skip
    engine.index_all([docs])
    retriever = engine.retriever()
    ids = [int(r[0]) for r in engine.store.con.execute("SELECT id FROM chunks ORDER BY id")]
    rows = engine.store.chunks_by_id(ids)
    flat = dict.fromkeys(ids, 1.0)
    found = _documents(ids, rows)
    ranked, score = retriever._match_titles(
        "How much did Acme spend on research and development?", ids, flat, rows, found
    )
    w = retriever.config.title_weight
    lifted = {Path(rows[c].path).name for c in ids if score[c] == pytest.approx(1.0 + w)}
    assert lifted == {"2023 Q1 ACME.pdf", "2023 Q2 ACME.pdf"}
    assert all(score[c] == 1.0 for c in ids if Path(rows[c].path).name not in lifted)
    assert Path(rows[ranked[0]].path).name in lifted
    same, _ = retriever._match_titles("How much was spent on research?", ids, flat, rows, found)
    assert same == ids
