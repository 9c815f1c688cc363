"""The filing rules apply where a document is a filing or a financial report, and nowhere else.

Each rule (statement titles as headings, "Item N." levels and PART lines dropped in the PDF
extractor; periods from file names, names selecting a series, statement preference (and its cap
of one chunk a document), one chunk a page in the retriever; "total" and "net" as non-names in the claim check) is shown changing
nothing on a document it must not touch: a paper (covidqa's text, set as a PDF), a contract and
a slide deck; and the detection (core/text/filings.py) on real filings and papers, stored per
file, migrated for an old index and shown by ``status --json``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from desktop_rag.core.engine import Engine
from desktop_rag.core.index.store import Store
from desktop_rag.core.ingest.extract.pdf import extract_pdf
from desktop_rag.core.search.claims import check_answer, entities
from desktop_rag.core.search.retrieval import _documents
from desktop_rag.core.text.filings import FILING, FINANCIAL_REPORT, OTHER, detect_genre
from desktop_rag.core.types import Hit
from tests.conftest import DOCUGAMI, EVAL, requires_docugami

COVIDQA = EVAL / "covidqa" / "docs"
requires_covidqa = pytest.mark.skipif(not COVIDQA.is_dir(), reason=f"no {COVIDQA}")
SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"
COVER = ("UNITED STATES\nSECURITIES AND EXCHANGE COMMISSION\nWashington, D.C. 20549\nFORM 10-Q\n"
         "Commission File Number: 001-36743\nAcme Robotics Inc.")  # fmt: skip


def _pdf(path: Path, pages: list[list[tuple[str, bool]]]) -> Path:
    """A real PDF: each page a list of (line, heading); headings in 13 pt bold, the other lines
    in 10 pt body type, as papers and contracts set them."""
    import pymupdf

    doc = pymupdf.open()
    for lines in pages:
        page = doc.new_page()
        y = 60.0
        for text, heading in lines:
            if heading:
                page.insert_text((60, y), text, fontsize=13, fontname="hebo")
                y += 22
            else:
                rect = pymupdf.Rect(60, y - 10, 540, y + 110)
                left = page.insert_textbox(rect, text, fontsize=10)
                y += 120 - max(left, 0.0) + 8
    doc.save(path)
    doc.close()
    return path


def _paper_text() -> list[str]:
    """Paragraphs of a real covidqa paper (the first long ones)."""
    text = (COVIDQA / "1545.txt").read_text(encoding="utf-8")
    paras = [p for p in text.split("\n") if len(p) > 300]
    return [p[:600] for p in paras[:4]]


def _paper(path: Path) -> Path:
    """A paper whose sections are called "PART II" and "Item 1." and which names a statement
    of cash flows in body type: in a filing all three are filing structure."""
    paras = _paper_text()
    return _pdf(path, [
        [("Species-specific clinical characteristics of coronavirus infection", True),
         (paras[0], False), ("PART II. Results", True), (paras[1], False)],
        [("Item 1. Study population", True), (paras[2], False),
         ("Statements of Cash Flows", False), (paras[3], False)],
    ])  # fmt: skip


def _contract(path: Path) -> Path:
    """A short services contract: parts, items and an exhibit titled like a balance sheet."""
    return _pdf(path, [
        [("MASTER SERVICES AGREEMENT", True),
         ("This Agreement is made between Orchard Labs Ltd. (the Supplier) and Birch Foods plc "
          "(the Customer). The Supplier shall provide the services described in Exhibit A.", False),
         ("PART I DEFINITIONS", True),
         ("Services means the maintenance of the Customer's refrigeration plant. Total Fees "
          "means the fees of Exhibit B. Net Terms means payment within thirty days.", False),
         ("Item 1. Fees and Payment", True),
         ("The Customer shall pay the Total Fees of 48,000 pounds a year in four instalments, "
          "on Net Terms, against the Supplier's invoices.", False)],
        [("Consolidated Balance Sheets", True),
         ("Exhibit B lists the Supplier's assets pledged for the performance of this Agreement: "
          "two service vans and the spare parts inventory held at the Customer's depot.", False),
         ("Item 2. Term and Termination", True),
         ("This Agreement runs for three years and may be ended by either party on ninety days' "
          "written notice. The liability of the Supplier is limited to the Total Fees.", False)],
    ])  # fmt: skip


def _deck(path: Path) -> Path:
    """A slide deck named like a quarter's report: "2023 Q3 roadmap.pptx"."""
    import pptx

    deck = pptx.Presentation()
    for title, body in (
        ("Q3 2023 roadmap", "Ship the orchard sensor to the first ten farms. Net promoter "
         "score survey in September."),
        ("Revenue and costs", "Revenue from pilots is small; costs are the sensor boards and the "
         "field visits. Total budget unchanged."),
        ("Risks", "Supply of sensor boards, weather during field trials, and hiring."),
    ):  # fmt: skip
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(path))
    return path


# -- detection -----------------------------------------------------------------------------


@requires_docugami
def test_real_10qs_are_filings_by_their_cover() -> None:
    import pymupdf

    for name in ("2023 Q1 AAPL.pdf", "2022 Q3 NVDA.pdf"):
        with pymupdf.open(DOCUGAMI / name) as doc:
            genre, basis = detect_genre(page.get_text() for page in doc)
        assert genre == FILING
        assert "form 10-q" in basis and "commission file number" in basis


def test_an_earnings_release_is_a_financial_report_by_its_statements() -> None:
    release = [
        "Acme Robotics Reports Third Quarter Results\nRevenue of $1.2 billion, up 8%. Diluted "
        "earnings per share of $0.41.",
        "ACME ROBOTICS INC.\nCONDENSED CONSOLIDATED STATEMENTS OF OPERATIONS\n(In millions)\n"
        "Net sales | 1,204 | 1,115",
        "CONDENSED CONSOLIDATED BALANCE SHEETS\nCash and cash equivalents | 410 | 398",
    ]
    genre, basis = detect_genre(release)
    assert genre == FINANCIAL_REPORT and basis == "statement titles: balance, operations"
    # One statement and earnings per share twice is one too.
    genre, _ = detect_genre([release[0] + " GAAP EPS was $0.38.", release[1]])
    assert genre == FINANCIAL_REPORT


@requires_covidqa
def test_papers_samples_and_a_paper_citing_the_sec_are_other() -> None:
    papers = sorted(COVIDQA.glob("*.txt"))
    assert papers
    assert all(detect_genre([p.read_text(encoding="utf-8")])[0] == OTHER for p in papers)
    for sample in SAMPLES.iterdir():
        if sample.suffix == ".pdf":
            assert extract_pdf(sample).genre == OTHER
        else:
            assert detect_genre([sample.read_text(encoding="utf-8")])[0] == OTHER
    # Naming the SEC, or one statement, is no cover.
    cites = ("We read 10-K filings from the Securities and Exchange Commission's EDGAR "
             "archive.\nConsolidated Balance Sheets\nTable 2 lists the firms.")  # fmt: skip
    assert detect_genre([cites]) == (OTHER, "")


# -- the PDF extractor's rules --------------------------------------------------------------


@requires_covidqa
def test_a_papers_extraction_keeps_part_item_and_statement_lines(tmp_path: Path) -> None:
    """The filing rules leave a paper as the extractor read it before them: "PART II. Results"
    is a heading, "Item 1." one of the same level, and "Statements of Cash Flows" in body type
    is text, not a heading; the same pages behind an SEC cover are a filing, where PART is
    dropped, Item is level 2 and the statement title heads its page."""
    import pymupdf

    paper = extract_pdf(_paper(tmp_path / "paper.pdf"))
    assert paper.genre == OTHER
    # (a page's headings include those it continues under, from the page before)
    heads = list(dict.fromkeys((h.level, h.text) for p in paper.pages for h in p.headings))
    assert heads == [
        (3, "Species-specific clinical characteristics of coronavirus infection"),
        (3, "PART II. Results"),
        (3, "Item 1. Study population"),
    ]
    # As a filing: a cover page first.
    with pymupdf.open(tmp_path / "paper.pdf") as doc:
        cover = doc.new_page(0)
        cover.insert_textbox(pymupdf.Rect(60, 60, 540, 400), COVER, fontsize=10)
        doc.save(tmp_path / "filing.pdf")
    filing = extract_pdf(tmp_path / "filing.pdf")
    assert filing.genre == FILING
    fheads = [(h.level, h.text) for p in filing.pages for h in p.headings]
    assert (2, "Item 1. Study population") in fheads
    assert not any(t.startswith("PART") for _, t in fheads)
    assert (3, "Statements of Cash Flows") in fheads
    # The text of the pages is the same either way.
    assert [p.text for p in filing.pages[1:]] == [p.text for p in paper.pages]


def test_a_contracts_extraction_keeps_its_parts_and_items(tmp_path: Path) -> None:
    doc = extract_pdf(_contract(tmp_path / "contract.pdf"))
    assert doc.genre == OTHER
    heads = [(h.level, h.text) for p in doc.pages for h in p.headings]
    assert (3, "PART I DEFINITIONS") in heads and (3, "Item 1. Fees and Payment") in heads
    # A statement-like exhibit title stays a plain heading: no table header added.
    assert (3, "Consolidated Balance Sheets") in heads
    assert not any(" · " in t for _, t in heads)


# -- stored per file, migrated, shown ------------------------------------------------------


def _index_three(engine: Engine, tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    _contract(docs / "2023 Q3 services agreement.pdf")
    _deck(docs / "2023 Q3 roadmap.pptx")
    _pdf(docs / "2023 Q3 ACME.pdf", [
        [(COVER, False)],
        [("CONDENSED CONSOLIDATED BALANCE SHEETS", True),
         ("Total assets | 15,376 | 14,714", False)],
    ])  # fmt: skip
    engine.index_all([docs])
    return docs


def test_genre_is_stored_per_file_migrated_and_in_status_json(
    fake_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from desktop_rag import cli as cli_module

    _index_three(fake_engine, tmp_path)
    genres = {Path(f.path).name: f.genre for f in fake_engine.store.files()}
    assert genres == {"2023 Q3 services agreement.pdf": OTHER, "2023 Q3 roadmap.pptx": OTHER,
                      "2023 Q3 ACME.pdf": FILING}  # fmt: skip
    monkeypatch.setattr(cli_module, "_engine", lambda: fake_engine)
    res = CliRunner().invoke(cli_module.cli, ["status", "--json"])
    assert res.exit_code == 0, res.output
    shown = {Path(f["path"]).name: (f["genre"], f["genre_basis"]) for f in json.loads(res.output)["files"]}  # fmt: skip
    assert shown["2023 Q3 ACME.pdf"][0] == FILING
    assert shown["2023 Q3 ACME.pdf"][1].startswith("SEC cover: ")
    assert shown["2023 Q3 roadmap.pptx"] == (OTHER, "")
    # An index of schema 5 (no genre columns) is migrated: detected from its stored pages.
    path = fake_engine.store.path
    fake_engine.close()
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE files DROP COLUMN genre")
    con.execute("ALTER TABLE files DROP COLUMN genre_basis")
    con.execute("UPDATE meta SET value='5' WHERE key='schema_version'")
    con.commit()
    con.close()
    store = Store(path)
    try:
        assert {Path(f.path).name: f.genre for f in store.files()} == genres
    finally:
        store.close()


# -- the retriever's rules ------------------------------------------------------------------


def test_retrieval_rules_change_nothing_on_a_contract_and_a_deck(
    fake_engine: Engine, tmp_path: Path
) -> None:
    """On documents that are not filings, none of the page or period rules moves a chunk:
    the period in their file names is not read, a name in the question selects nothing, the
    statement preference adds nothing to the contract's "balance sheets" exhibit, and two
    chunks of one page may both be in the top k."""
    _index_three(fake_engine, tmp_path)
    retriever = fake_engine.retriever()
    store = fake_engine.store
    ids = [int(r[0]) for r in store.con.execute("SELECT id FROM chunks ORDER BY id")]
    rows = store.chunks_by_id(ids)
    other = [c for c in ids if rows[c].genre == OTHER]
    filing = [c for c in ids if rows[c].genre == FILING]
    assert other and filing
    found = _documents(ids, rows)
    assert all(found[rows[c].file_id].period is None for c in other)  # "2023 Q3" not read
    assert all(found[rows[c].file_id].period is not None for c in filing)
    flat = dict.fromkeys(other, 1.0)
    for rule, args in (
        (retriever._match_periods, ("What changed in Q3 2023?",)),
        (retriever._match_periods, ("What is in the latest report?",)),
        (retriever._match_titles, ("What does Orchard supply to Birch?",)),
    ):
        ranked, score = rule(*args, other, flat, rows, _documents(other, rows))
        assert ranked == other and score == flat
    ranked, score = retriever._match_statements(frozenset({"balance"}), other, flat, rows)
    assert ranked == other and score == flat
    exhibit = [c for c in other if "Balance Sheets" in rows[c].context]
    assert exhibit  # the contract's exhibit heads its chunks, yet gets no statement bonus
    # Two chunks of one slide or page: both stay in the top k.
    same_page = [other[0], other[0]]  # the same page twice is the extreme case
    assert retriever._spread_pages(same_page, rows, 5) == same_page
    assert retriever._spread_pages([filing[0], filing[0]], rows, 1) == [filing[0], filing[0]]
    top = retriever._spread_pages([filing[0], filing[0], other[0]], rows, 2)
    assert top[:2] == [filing[0], other[0]]  # in a filing, one chunk a page


def test_statement_preference_lifts_one_chunk_a_document(
    fake_engine: Engine, tmp_path: Path
) -> None:
    """Another company's balance sheet over several pages no longer takes the top places from
    the right filing: one statement chunk of each document is lifted, the others keep their
    scores (uncapped, ``statement_per_file`` 0, all of them were)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    sheet = [
        ("CONDENSED CONSOLIDATED BALANCE SHEETS", True),
        ("Inventories | 3,071 | 2,950", False),
    ]
    for ticker, sheets in (("ACME", 1), ("GLBX", 3)):
        _pdf(docs / f"2023 Q3 {ticker}.pdf", [
            [(COVER.replace("Acme Robotics", ticker), False),
             ("Inventory levels rose with demand for robots in Europe.", False)],
            *[sheet] * sheets,
        ])  # fmt: skip
    fake_engine.index_all([docs])
    store = fake_engine.store
    retriever = fake_engine.retriever()
    ids = [int(r[0]) for r in store.con.execute("SELECT id FROM chunks ORDER BY id")]
    rows = store.chunks_by_id(ids)
    name = {c: Path(rows[c].path).stem[-4:] for c in ids}
    is_sheet = {c: "BALANCE" in rows[c].context for c in ids}
    # GLBX's sheets first, then ACME's prose, then ACME's sheet and GLBX's prose.
    ranked = sorted(ids, key=lambda c: (not (is_sheet[c] and name[c] == "GLBX"),
                                        name[c] != "ACME", not is_sheet[c]))  # fmt: skip
    score = {c: 1.0 - 0.05 * i for i, c in enumerate(ranked)}
    kinds = frozenset({"balance"})
    _, out = retriever._match_statements(kinds, ranked, score, rows)
    lifted = [c for c in ids if out[c] > score[c]]
    assert sorted(name[c] for c in lifted) == ["ACME", "GLBX"]  # one each
    assert all(is_sheet[c] for c in lifted)
    uncapped = fake_engine.retriever()
    uncapped.config = replace(uncapped.config, statement_per_file=0)
    _, out = uncapped._match_statements(kinds, ranked, score, rows)
    assert sum(out[c] > score[c] for c in ids) == sum(is_sheet.values()) == 4


# -- the claim check ------------------------------------------------------------------------


def _hit(text: str, genre: str) -> Hit:
    return Hit(1, 1, "/docs/x.pdf", 1, 0, len(text), text, "x", 1.0, genre=genre)


def test_total_and_net_are_names_outside_filings() -> None:
    text = "Total Recall was shown after Net Zero Week."
    assert [e[2] for e in entities(text)] == ["Total Recall", "Net Zero Week"]
    assert [e[2] for e in entities(text, filing=True)] == ["Recall", "Zero Week"]
    # A contract source: "Net Terms" is a defined name the answer must find in its source.
    source = "The Customer pays the Total Fees on Net Terms."
    checked = check_answer("The Customer pays on Net Payment Terms [1].", [_hit(source, OTHER)])
    assert any(c.kind == "entity" and c.claim == "Net Payment Terms" and not c.supported
               for c in checked.checks)  # fmt: skip
    checked = check_answer("Net Sales were 1,204 [1].", [_hit("Net sales | 1,204", FILING)])
    assert not any(c.kind == "entity" and c.claim.startswith("Net") for c in checked.checks)
