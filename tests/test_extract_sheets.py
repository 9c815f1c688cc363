"""Spreadsheets (.xlsx, .csv, .tsv) from real generated files: sheets as pages, header rows as
headings in every chunk's context, row lines that labels cite, and the failure reasons."""

from __future__ import annotations

import csv
import datetime as dt
import zipfile
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest
from openpyxl.chart import BarChart, Reference

from desktop_rag.core.errors import ExtractionError, UnsupportedFileError
from desktop_rag.core.ingest.chunking import Chunker, load_tokenizer
from desktop_rag.core.ingest.extract import extract, sheets
from desktop_rag.core.models import bundled_embedding_dir
from desktop_rag.core.text.citations import label_for, source_label


def _revenue_workbook(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Revenue"
    ws.append(["Date", "Region", "Amount", "Check"])
    ws.append([dt.date(2024, 1, 31), "North", 1200.0, "=C2*2"])
    ws.append([dt.datetime(2024, 2, 29, 14, 30), "  South\nEast ", 0.1 + 0.2, None])
    ws.append([dt.date(2024, 3, 31), None, 87.5, True])
    ws["C5"] = 0.153
    ws["C5"].number_format = "0.0%"
    notes = wb.create_sheet("Notes")
    notes["A1"] = "Remarks"
    notes["A3"] = "Harbour dues were raised in March."
    wb.save(path)
    return path


def test_workbook_sheets_are_pages_with_headings_and_row_lines(tmp_path: Path) -> None:
    doc = extract(_revenue_workbook(tmp_path / "revenue.xlsx"))
    assert doc.kind == "xlsx"
    assert doc.title == "revenue"  # no Title property: the file stem
    assert [p.number for p in doc.pages] == [1, 2]
    sheet = doc.pages[0]
    assert sheet.text.split("\n\n") == [
        "Revenue",
        "Date | Region | Amount | Check",
        # The formula was written by openpyxl, never calculated: no cached value, an empty cell
        # (never the formula text); each value is named by its column, empty cells left out.
        "Row 2 | Date = 2024-01-31 | Region = North | Amount = 1200",
        "Row 3 | Date = 2024-02-29 14:30 | Region = South East | Amount = 0.3",
        "Row 4 | Date = 2024-03-31 | Amount = 87.5 | Check = TRUE",
        "Row 5 | Amount = 15.3%",
    ]
    assert "C2*2" not in sheet.text
    assert [(h.level, h.text) for h in sheet.headings] == [
        (1, "Revenue"),
        (2, "Date | Region | Amount | Check"),
    ]
    for h in sheet.headings:
        assert sheet.text[h.offset : h.offset + len(h.text)] == h.text
    notes = doc.pages[1]
    assert notes.text == "Notes\n\nRemarks\n\nRow 3 | Remarks = Harbour dues were raised in March."
    assert label_for("revenue.xlsx", 1, sheet.text[sheet.text.index("Row 3") :]) == (
        "revenue.xlsx, sheet 1, rows 3\u20135"
    )


def test_sheet_numbers_follow_the_tabs_and_hidden_sheets_are_marked(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    data = wb.active
    assert data is not None
    data.title = "Data"
    data["B3"] = "Item"  # a table that does not start at A1: Excel's row numbers are kept
    data["C3"] = "Count"
    data["B4"] = "Buoys"
    data["C4"] = 14
    data["B9"] = "Chains"
    data["C9"] = 3
    chart = wb.create_chartsheet("Chart")
    bars = BarChart()
    bars.add_data(Reference(data, min_col=3, min_row=3, max_row=9))
    chart.add_chart(bars)
    wb.create_sheet("Empty")
    secret = wb.create_sheet("Salaries")
    secret.sheet_state = "hidden"
    secret.append(["Name", "Salary"])
    secret.append(["Ada", 5100])
    wb.properties.title = "Stores ledger"
    path = tmp_path / "stores.xlsx"
    wb.save(path)

    doc = extract(path)
    assert doc.title == "Stores ledger"
    assert [p.number for p in doc.pages] == [1, 2, 3, 4]
    assert (
        doc.pages[0].text
        == "Data\n\n | Item | Count\n\nRow 4 | Item = Buoys | Count = 14\n\nRow 9 | Item = Chains | Count = 3"
    )
    assert doc.pages[1].text == "" and doc.pages[2].text == ""  # the chart sheet, the empty sheet
    assert (
        doc.pages[3].text
        == "Salaries (hidden)\n\nName | Salary\n\nRow 2 | Name = Ada | Salary = 5100"
    )


def _chunker() -> Chunker:
    model = bundled_embedding_dir()
    assert model is not None, "the bundled embedding model is not installed"
    return Chunker(load_tokenizer(str(model)))


def test_every_chunk_of_a_long_sheet_carries_its_header_and_names_its_rows(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Moorings"
    ws.append(["Berth", "Vessel", "Arrived", "Tonnage", "Remarks"])
    for i in range(300):
        ws.append([f"B{i % 17}", f"Vessel {i}", dt.date(2023, 1 + i % 12, 1 + i % 28),
                   1000 + 7.25 * i, f"pilot {i % 5} boarded at dawn"])  # fmt: skip
    path = tmp_path / "moorings.xlsx"
    wb.save(path)
    doc = extract(path)
    page = doc.pages[0]
    chunks = _chunker().chunk_document(doc)
    assert len(chunks) > 10

    # Where each data row's line lies in the page text, found without the chunks.
    spans: dict[int, tuple[int, int]] = {}
    for row in range(2, 302):
        start = page.text.index(f"Row {row} | ")
        spans[row] = (start, page.text.index("\n", start) if row < 301 else len(page.text))

    covered: set[int] = set()
    for chunk in chunks:
        assert chunk.page == 1
        assert chunk.context == "moorings › Moorings › Berth | Vessel | Arrived | Tonnage | Remarks"
        rows = [r for r, (s, e) in spans.items() if s < chunk.end and e > chunk.start]
        # A chunk begins at a row's start (or the sheet's), so its label covers all it shows.
        assert all(spans[r][0] >= chunk.start for r in rows)
        covered.update(rows)
        first, last = min(rows), max(rows)
        expected = f"row {first}" if first == last else f"rows {first}\u2013{last}"
        assert label_for(str(path), chunk.page, chunk.text) == f"moorings.xlsx, sheet 1, {expected}"
    assert covered == set(range(2, 302))


def make_ledger(path: Path, *, more_cargo: Sequence[tuple[str, str, int]] = ()) -> Path:
    """A real XLSX workbook: sheet 1 "Summary" (Quarter, Total: Q1 512), sheet 2 "Cargo"
    (Vessel, Port, Tonnes: Albatross Hamburg 3100, Kittiwake Rotterdam 4200, then
    ``more_cargo``)."""
    wb = openpyxl.Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "Summary"
    summary.append(["Quarter", "Total"])
    summary.append(["Q1", 512])
    cargo = wb.create_sheet("Cargo")
    cargo.append(["Vessel", "Port", "Tonnes"])
    for row in [("Albatross", "Hamburg", 3100), ("Kittiwake", "Rotterdam", 4200), *more_cargo]:
        cargo.append(list(row))
    wb.save(path)
    return path


def test_a_row_fact_is_found_and_cited_with_its_sheet_and_row(fake_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "tables"
    folder.mkdir()
    make_ledger(folder / "ledger.xlsx", more_cargo=[("Petrel", "Antwerp", 2900)])
    with (folder / "crew.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Name", "Rank", "Certificate"])
        writer.writerow(["Ingrid Solberg", "Bosun", "STCW II/5"])
        writer.writerow(["Tomas Wrenfield", "Chief mate", "STCW II/2"])

    result = fake_engine.index_all([folder])
    assert result.indexed == 2 and not result.problems
    hit = fake_engine.search("Which port did the Kittiwake unload at?", 1).hits[0]
    assert (hit.file_name, hit.page) == ("ledger.xlsx", 2)
    assert "Row 3 | Vessel = Kittiwake | Port = Rotterdam | Tonnes = 4200" in hit.text
    assert "Vessel | Port | Tonnes" in hit.context
    assert source_label(hit) == "ledger.xlsx, sheet 2, rows 2\u20134"
    hit = fake_engine.search("What is Tomas Wrenfield's rank?", 1).hits[0]
    assert (hit.file_name, hit.page) == ("crew.csv", None)
    assert (
        "Row 3 | Name = Tomas Wrenfield | Rank = Chief mate | Certificate = STCW II/2" in hit.text
    )
    assert source_label(hit) == "crew.csv, rows 2\u20133"


def test_csv_semicolons_with_a_bom_and_decimal_commas(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    text = "Article;Prix;Stock\r\nÉcrou M8;0,45;1200\r\n\r\nRondelle;0,05;8000\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    doc = extract(path)
    assert (doc.kind, doc.title) == ("csv", "prices")
    page = doc.pages[0]
    assert page.number is None
    # The blank line is row 3: skipped, but the rows after it keep a spreadsheet's numbers.
    assert (
        page.text
        == "Article | Prix | Stock\n\nRow 2 | Article = Écrou M8 | Prix = 0,45 | Stock = 1200\n\n"
        "Row 4 | Article = Rondelle | Prix = 0,05 | Stock = 8000"
    )
    assert [(h.offset, h.level, h.text) for h in page.headings] == [
        (0, 1, "Article | Prix | Stock")
    ]


def test_csv_in_windows_1252(tmp_path: Path) -> None:
    path = tmp_path / "menu.csv"
    rows = [["Plat", "Prix", "Remarque"]] + [
        [f"Crème brûlée no {i}", f"{4 + i},50", "servie très fraîche, été comme hiver"]
        for i in range(12)
    ]
    with path.open("w", newline="", encoding="cp1252") as fh:
        csv.writer(fh).writerows(rows)
    page = extract(path).pages[0]
    assert page.headings[0].text == "Plat | Prix | Remarque"
    assert ("Row 2 | Plat = Crème brûlée no 0 | Prix = 4,50 | Remarque = servie très fraîche, "
            "été comme hiver") in page.text  # fmt: skip
    assert "Row 13 | Plat = Crème brûlée no 11 | Prix = 15,50 |" in page.text


def test_tsv_keeps_commas_in_cells(tmp_path: Path) -> None:
    path = tmp_path / "tides.tsv"
    path.write_text("Port\tHigh water\nBrest\t06:12, 18:40\nCherbourg\t07:01, 19:22\n", "utf-8")
    assert extract(path).pages[0].text == (
        "Port | High water\n\nRow 2 | Port = Brest | High water = 06:12, 18:40\n\n"
        "Row 3 | Port = Cherbourg | High water = 07:01, 19:22"
    )


def test_quoted_fields_with_newlines_and_commas_are_one_record(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(["Name", "Address", "Phone"])
        writer.writerow(["Smith, John", "12 Quay Street\nPlymouth\nPL1 2AB", "01752 000111"])
        writer.writerow(["Jones, Mary", "3 Dock Road", "01752 000222"])
        writer.writerow(["", "", ""])
        writer.writerow(["Brown, Ann", '"The Lookout", Cliff Lane', ""])
    assert extract(path).pages[0].text.split("\n\n") == [
        "Name | Address | Phone",
        "Row 2 | Name = Smith, John | Address = 12 Quay Street Plymouth PL1 2AB | "
        "Phone = 01752 000111",
        "Row 3 | Name = Jones, Mary | Address = 3 Dock Road | Phone = 01752 000222",
        'Row 5 | Name = Brown, Ann | Address = "The Lookout", Cliff Lane',
    ]


def test_a_first_row_of_numbers_is_data_not_a_header(tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_text("2024-01-01,12.5,7\n2024-01-02,13.0,\n", encoding="utf-8")
    page = extract(path).pages[0]
    assert page.headings == ()
    assert page.text == "Row 1 | 2024-01-01 | 12.5 | 7\n\nRow 2 | 2024-01-02 | 13.0"
    assert label_for("readings.csv", None, page.text) == "readings.csv, rows 1\u20132"


def _reason(path: Path, kind: type[ExtractionError] = ExtractionError) -> str:
    with pytest.raises(kind) as err:
        extract(path)
    if kind is ExtractionError:
        assert not isinstance(err.value, UnsupportedFileError), err.value.message
    return err.value.message


def test_an_old_xls_renamed_xlsx_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "old.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4096)
    assert ".xls" in _reason(path) and "not a ZIP" in _reason(path)


def test_a_password_protected_workbook_says_so(tmp_path: Path) -> None:
    path = tmp_path / "locked.xlsx"  # Office encrypts an .xlsx into an OLE file
    body = b"\x00" * 2048 + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 2048
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + body)
    assert "password-protected" in _reason(path)


def test_a_zip_bomb_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\x00" * (64 * 1024 * 1024))
    assert "ZIP bomb" in _reason(path)


def test_a_zip_that_is_not_a_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photos.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("holiday/readme.txt", "just some files")
    assert "Excel" in _reason(path)


def test_a_corrupt_workbook_is_refused(tmp_path: Path) -> None:
    good = _revenue_workbook(tmp_path / "good.xlsx")
    path = tmp_path / "corrupt.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]  # cut off mid-XML
            dst.writestr(info, data)
    assert "corrupt or unsupported Excel workbook" in _reason(path)


def test_a_workbook_over_the_cell_limit_is_refused_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sheets, "MAX_CELLS", 10)
    path = _revenue_workbook(tmp_path / "revenue.xlsx")  # 14 filled cells (the formula is empty)
    assert "more than 10 filled cells" in _reason(path)


def test_an_empty_csv_has_no_text(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert "no text" in _reason(path, UnsupportedFileError)
    path.write_text(",,\n\n , ,\n", "utf-8")
    assert "no text" in _reason(path, UnsupportedFileError)


def test_a_binary_file_named_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "image.csv"
    path.write_bytes(bytes(range(256)) * 64)
    assert "binary" in _reason(path)


def test_malformed_quoting_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text('Name,Note\nA,"fine"\nB,"closed" then more\n', "utf-8")
    reason = _reason(path)
    assert reason.startswith("malformed CSV near line 3"), reason
    path.write_text('Name,Note\nA,"never closed\n' + "x" * 200_000 + "\n", "utf-8")
    reason = _reason(path)
    assert "malformed CSV" in reason and "longer than 131,072 characters" in reason, reason
