"""Email messages (.eml and Outlook .msg) from real generated files: parts, headings, attachments,
limits and hostile input.

No .msg file can be generated with a library here (olefile reads compound files but cannot create
them), so :func:`write_cfb` below writes a minimal compound file (CFB v3) that olefile reads back.
"""

from __future__ import annotations

import io
import random
import struct
import tempfile
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import olefile
import pytest

from desktop_rag.core.errors import ExtractionError
from desktop_rag.core.ingest.extract import extract, mail
from desktop_rag.core.text.citations import source_label
from desktop_rag.core.types import Heading
from tests.conftest import make_docx, make_pdf

# --- a minimal compound file writer (test tooling) -----------------------------------------------

ENDOFCHAIN, FREESECT, FATSECT, NOSTREAM = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF
Tree = dict[str, "bytes | Tree"]


def write_cfb(path: Path, tree: Tree) -> Path:
    """Write a compound file (MS-CFB v3, 512-byte sectors): dicts are storages, bytes streams;
    streams under 4096 bytes go to the mini stream (64-byte sectors). Layout: FAT, mini FAT,
    directory, mini stream, then the large streams."""
    entries: list[dict[str, Any]] = [{"name": "Root Entry", "type": 5, "kids": [], "data": b""}]

    def add(node: Tree, parent: dict[str, Any]) -> None:
        for name, value in node.items():
            entry = {"name": name, "type": 1 if isinstance(value, dict) else 2, "kids": [],
                     "data": value if isinstance(value, bytes) else b""}  # fmt: skip
            entries.append(entry)
            parent["kids"].append(len(entries) - 1)
            if isinstance(value, dict):
                add(value, entry)

    add(tree, entries[0])
    for e in entries:
        e.update(left=NOSTREAM, right=NOSTREAM, child=NOSTREAM, start=0, size=len(e["data"]))

    def siblings(ids: list[int]) -> int:  # a balanced binary tree in (length, upper name) order
        if not ids:
            return NOSTREAM
        mid = len(ids) // 2
        entries[ids[mid]].update(left=siblings(ids[:mid]), right=siblings(ids[mid + 1 :]))
        return ids[mid]

    for e in entries:
        kids = sorted(
            e["kids"], key=lambda i: (len(entries[i]["name"]), entries[i]["name"].upper())
        )
        e["child"] = siblings(kids)
    mini, minifat, big = bytearray(), [], []
    for e in entries:
        if e["type"] != 2:
            continue
        if e["size"] >= 4096:
            big.append(e)
            continue
        n = -(-e["size"] // 64)
        e["start"] = len(minifat) if n else ENDOFCHAIN
        minifat += [*range(len(minifat) + 1, len(minifat) + n), ENDOFCHAIN] if n else []
        mini += e["data"].ljust(n * 64, b"\0")

    def sectors(n_bytes: int) -> int:
        return -(-n_bytes // 512)

    counts = [sectors(len(minifat) * 4), sectors(len(entries) * 128), sectors(len(mini))]
    n_big = sum(sectors(e["size"]) for e in big)
    n_fat = 1
    while n_fat * 128 < n_fat + sum(counts) + n_big:
        n_fat += 1
    fat = [FATSECT] * n_fat

    def chain(n: int) -> int:
        if not n:
            return ENDOFCHAIN
        start = len(fat)
        fat.extend([*range(start + 1, start + n), ENDOFCHAIN])
        return start

    minifat_start, dir_start, mini_start = (chain(n) for n in counts)
    entries[0].update(start=mini_start if mini else ENDOFCHAIN, size=len(mini))
    for e in big:
        e["start"] = chain(sectors(e["size"]))
    fat += [FREESECT] * (n_fat * 128 - len(fat))

    def pad(data: bytes, fill: bytes = b"\0") -> bytes:
        return data + fill * ((-len(data) % 512) // len(fill))

    def direntry(e: dict[str, Any]) -> bytes:
        name = e["name"].encode("utf-16-le") + b"\0\0"
        return struct.pack("<64sHBBIII16sIQQIQ", name, len(name), e["type"], 1, e["left"],
                           e["right"], e["child"], bytes(16), 0, 0, 0, e["start"], e["size"])  # fmt: skip

    empty = struct.pack("<64sHBBIII16sIQQIQ", b"", 0, 0, 0, NOSTREAM, NOSTREAM, NOSTREAM,
                        bytes(16), 0, 0, 0, 0, 0)  # fmt: skip
    directory = b"".join(direntry(e) for e in entries)
    directory += empty * ((-len(directory) % 512) // 128)
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII", olefile.MAGIC, bytes(16), 0x3E, 3, 0xFFFE, 9, 6,
                         bytes(6), 0, n_fat, dir_start, 0, 4096, minifat_start, counts[0],
                         ENDOFCHAIN, 0)  # fmt: skip
    header += struct.pack("<109I", *range(n_fat), *[FREESECT] * (109 - n_fat))
    body = [struct.pack(f"<{len(fat)}I", *fat),
            pad(struct.pack(f"<{len(minifat)}I", *minifat), b"\xff\xff\xff\xff"),
            directory, pad(bytes(mini))] + [pad(e["data"]) for e in big]  # fmt: skip
    path.write_bytes(header + b"".join(body))
    return path


def u16(text: str) -> bytes:
    return text.encode("utf-16-le")


def props(header: int, *values: tuple[int, int, int]) -> bytes:
    """A ``__properties_version1.0`` stream: ``header`` reserved bytes, then (type, id, value)."""
    return bytes(header) + b"".join(struct.pack("<HHIQ", t, i, 6, v) for t, i, v in values)


def filetime(when: datetime) -> int:
    return int((when - datetime(1601, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)


def test_the_compound_file_writer_is_read_back_by_olefile(tmp_path: Path) -> None:
    large = bytes(range(256)) * 40  # 10 240 bytes: regular sectors
    path = write_cfb(tmp_path / "t.cfb", {"a": b"small", "st": {"b": large, "c": b"x" * 100}})
    with olefile.OleFileIO(str(path), raise_defects=olefile.DEFECT_INCORRECT) as ole:
        assert sorted(ole.listdir(storages=True)) == [["a"], ["st"], ["st", "b"], ["st", "c"]]
        assert ole.openstream("a").read() == b"small"
        assert ole.openstream("st/b").read() == large
        assert ole.openstream("st/c").read() == b"x" * 100


# --- .eml ----------------------------------------------------------------------------------------

PUMP = "The pump station at Weir Lane moved 4,310 litres per hour during the flood test."


def make_eml(folder: Path) -> Path:
    """A real message: RFC 2047 subject, plain + HTML alternative, a PDF, a .docx, an image we do
    not index and a forwarded message."""
    pdf = make_pdf(folder / "r.pdf", [PUMP, "The second page lists the valve inspections."])
    docx = make_docx(folder / "c.docx", "Highland climate", [("Rainfall", "It rains in October.")])
    m = EmailMessage()
    m["Subject"] = "Réunion budgétaire – Q3"
    m["From"] = "Jérôme Dupont <jerome@example.org>"
    m["To"] = '"Doe, Jane" <jane@example.com>, bob@example.com'
    m["Cc"] = "Ann Ellis <ann@example.org>"
    m["Date"] = "Tue, 05 Mar 2024 14:30:00 +0100"
    m.set_content("Hello Jane,\n\nthe figures are attached.\n")
    m.add_alternative("<html><body><h1>Hi</h1><p>the HTML body</p></body></html>", subtype="html")
    m.add_attachment(pdf.read_bytes(), maintype="application", subtype="pdf",
                     filename="report.pdf")  # fmt: skip
    m.add_attachment(docx.read_bytes(), maintype="application", subtype="octet-stream",
                     filename="climate.docx")  # fmt: skip
    m.add_attachment(b"\0\0\0\x18ftypheic", maintype="image", subtype="heic", filename="photo.heic")
    inner = EmailMessage()
    inner["Subject"] = "Harbour dues"
    inner["From"] = "port@example.net"
    inner.set_content("Harbour dues rise by 3 percent in May.\n")
    m.add_attachment(inner)
    pdf.unlink()
    docx.unlink()
    path = folder / "budget.eml"
    path.write_bytes(bytes(m))
    return path


def test_an_eml_is_the_message_then_one_part_per_indexed_attachment(tmp_path: Path) -> None:
    doc = extract(make_eml(tmp_path))
    assert (doc.kind, doc.title) == ("eml", "Réunion budgétaire – Q3")
    assert [p.number for p in doc.pages] == [1, 2, 3, 4]
    first = doc.pages[0]
    assert first.text == (
        "Réunion budgétaire – Q3\n"
        "From: Jérôme Dupont <jerome@example.org>\n"
        'To: "Doe, Jane" <jane@example.com>, bob@example.com\n'
        "Cc: Ann Ellis <ann@example.org>\n"
        "Date: Tue, 05 Mar 2024 14:30:00 +0100\n"
        "Attachments: report.pdf (part 2), climate.docx (part 3), photo.heic (not indexed), "
        "Harbour dues.eml (part 4)\n"
        "\n"
        "Hello Jane,\n\nthe figures are attached."
    )
    assert first.headings == (Heading(0, 1, "Réunion budgétaire – Q3"),)
    pdf, docx, fwd = doc.pages[1:]
    assert pdf.text.startswith(f"Attachment: report.pdf\n\n{PUMP}")
    assert "valve inspections" in pdf.text
    assert pdf.headings[0] == Heading(0, 1, "Attachment: report.pdf")
    assert docx.text.startswith("Attachment: climate.docx\n\nHighland climate\n\nRainfall\n\n")
    assert docx.headings == (
        Heading(0, 1, "Attachment: climate.docx"),
        Heading(26, 2, "Highland climate"),
        Heading(44, 2, "Rainfall"),
    )
    assert all(docx.text[h.offset :].startswith(h.text) for h in docx.headings)
    assert fwd.text == (
        "Attachment: Harbour dues.eml\n\nHarbour dues\nFrom: port@example.net\n\n"
        "Harbour dues rise by 3 percent in May."
    )
    assert fwd.headings == (Heading(0, 1, "Attachment: Harbour dues.eml"),
                            Heading(30, 2, "Harbour dues"))  # fmt: skip


def test_an_html_only_body_is_its_visible_text_with_headings(tmp_path: Path) -> None:
    m = EmailMessage()
    m["Subject"] = "=?iso-8859-1?q?Caf=E9_menu?="
    m["From"] = "chef@example.org"
    m.set_content(
        "<html><head><style>p{}</style></head><body><h2>Starters</h2><p>Leek soup</p>"
        "<div style='display:none'>tracking</div></body></html>",
        subtype="html",
    )
    path = tmp_path / "menu.eml"
    path.write_bytes(bytes(m))
    page = extract(path).pages[0]
    assert page.text == "Café menu\nFrom: chef@example.org\n\nStarters\nLeek soup"
    assert page.headings == (Heading(0, 1, "Café menu"), Heading(34, 3, "Starters"))


def test_bad_charsets_and_raw_8bit_headers_are_decoded(tmp_path: Path) -> None:
    raw = (
        b"From: J\xe9r\xf4me <j@example.org>\r\nSubject: Cr\xe8me br\xfbl\xe9e\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nLa cr\xe8me est cuite \xe0 150 \xb0C.\r\n"
    )
    path = tmp_path / "latin.eml"
    path.write_bytes(raw)
    doc = extract(path)
    assert doc.title == "Crème brûlée"
    assert doc.pages[0].text == (
        "Crème brûlée\nFrom: Jérôme <j@example.org>\n\nLa crème est cuite à 150 °C."
    )


def test_flowed_text_is_unwrapped(tmp_path: Path) -> None:
    raw = (
        b"From: a@example.org\r\nContent-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
        b"This line is soft \r\nwrapped here.\r\n Space-stuffed line.\r\n"
    )
    path = tmp_path / "flowed.eml"
    path.write_bytes(raw)
    assert (
        extract(path)
        .pages[0]
        .text.endswith("\n\nThis line is soft wrapped here.\nSpace-stuffed line.")
    )


def test_an_attachment_fact_is_found_and_cited_with_its_part(fake_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "mail"
    folder.mkdir()
    make_eml(folder)
    summary = fake_engine.index_all([folder])
    assert summary.indexed == 1 and not summary.problems
    hit = fake_engine.search("How many litres per hour did the pump station move?", 1).hits[0]
    assert (hit.file_name, hit.page) == ("budget.eml", 2) and "4,310 litres" in hit.text
    assert source_label(hit) == "budget.eml, part 2"


def test_an_attached_msg_file_is_read_as_a_nested_message(tmp_path: Path) -> None:
    msg = write_cfb(tmp_path / "x.msg", {"__substg1.0_0037001F": u16("Boiler service"),
                                         "__substg1.0_1000001F": u16("The boiler was serviced.")})  # fmt: skip
    m = EmailMessage()
    m["Subject"] = "FW: service"
    m.set_content("See attached.")
    m.add_attachment(msg.read_bytes(), maintype="application", subtype="vnd.ms-outlook",
                     filename="service.msg")  # fmt: skip
    path = tmp_path / "fw.eml"
    path.write_bytes(bytes(m))
    doc = extract(path)
    assert doc.pages[1].text == (
        "Attachment: service.msg\n\nBoiler service\n\nThe boiler was serviced."
    )


# --- hostile and limits --------------------------------------------------------------------------


def test_random_bytes_are_not_an_email(tmp_path: Path) -> None:
    path = tmp_path / "noise.eml"
    path.write_bytes(random.Random(7).randbytes(4096))
    with pytest.raises(ExtractionError, match=r"not an email message \(no headers found\)"):
        extract(path)


def test_a_message_over_the_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mail, "MAX_MESSAGE_BYTES", 1000)
    path = tmp_path / "big.eml"
    path.write_bytes(b"Subject: big\r\n\r\n" + b"x" * 2000)
    with pytest.raises(ExtractionError, match="too large for an email message"):
        extract(path)


def test_a_traversal_file_name_writes_nothing_outside_a_private_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch" / "temp"
    scratch.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    written: list[Path] = []
    real = mail.extract

    def spy(path: Path, **options: Any) -> Any:
        written.append(path)
        assert path.read_bytes() == b"The evil plan is harmless."
        return real(path, **options)

    monkeypatch.setattr(mail, "extract", spy)
    m = EmailMessage()
    m["Subject"] = "names"
    m.set_content("body")
    for name in ("../../evil.txt", "..\\..\\win.txt", "nul\0byte.txt", ".."):
        m.add_attachment(b"The evil plan is harmless.", maintype="text", subtype="plain",
                         filename=name)  # fmt: skip
    path = tmp_path / "names.eml"
    path.write_bytes(bytes(m))
    doc = extract(path)
    assert doc.pages[0].text.endswith(
        "Attachments: evil.txt (part 2), win.txt (part 3), nulbyte.txt (part 4), "
        "attachment-4.txt (part 5)\n\nbody"
    )
    assert doc.pages[1].text == "Attachment: evil.txt\n\nThe evil plan is harmless."
    assert len(written) == 4
    for p in written:  # a fixed name in a fresh folder of the temporary directory
        assert p.parent.parent == scratch and p.name == "attachment.txt"
    assert not list(scratch.iterdir())  # removed afterwards
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["names.eml"]


def nested(depth: int) -> EmailMessage:
    m = EmailMessage()
    m["Subject"] = f"Level {depth}"
    m.set_content(f"Body at level {depth}.")
    if depth < 6:
        m.add_attachment(nested(depth + 1))
    return m


def test_nesting_is_read_down_to_the_depth_limit(tmp_path: Path) -> None:
    path = tmp_path / "deep.eml"
    path.write_bytes(bytes(nested(0)))
    doc = extract(path)
    assert len(doc.pages) == 2
    text = doc.pages[1].text
    assert "Body at level 3." in text and "Level 4" in text and "Body at level 4." not in text
    assert "Attachments: Level 4.eml (not read: messages nested more than 3 deep)" in text
    assert [h.text for h in doc.pages[1].headings] == [
        "Attachment: Level 1.eml", "Level 1", "Attachment: Level 2.eml", "Level 2",
        "Attachment: Level 3.eml", "Level 3",
    ]  # fmt: skip
    assert [h.level for h in doc.pages[1].headings] == [1, 2, 2, 3, 3, 4]


def test_a_zip_bomb_attachment_fails_alone(tmp_path: Path, fake_engine) -> None:  # type: ignore[no-untyped-def]
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * 3_000_000)
    m = EmailMessage()
    m["Subject"] = "Minutes"
    m.set_content("The committee approved the new footbridge.")
    m.add_attachment(bomb.getvalue(), maintype="application", subtype="octet-stream",
                     filename="minutes.docx")  # fmt: skip
    folder = tmp_path / "box"
    folder.mkdir()
    (folder / "minutes.eml").write_bytes(bytes(m))
    doc = extract(folder / "minutes.eml")
    assert len(doc.pages) == 1
    assert "Attachments: minutes.docx (could not be read: refused: word/document.xml expands" in (
        doc.pages[0].text
    )
    summary = fake_engine.index_all([folder])
    assert summary.indexed == 1 and not summary.problems


def test_attachments_past_the_limit_are_named_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mail, "MAX_ATTACHMENTS", 2)
    m = EmailMessage()
    m["Subject"] = "many"
    m.set_content("body")
    for i in range(4):
        m.add_attachment(f"note {i}".encode(), maintype="text", subtype="plain",
                         filename=f"n{i}.txt")  # fmt: skip
    path = tmp_path / "many.eml"
    path.write_bytes(bytes(m))
    doc = extract(path)
    assert len(doc.pages) == 3
    assert "Attachments: n0.txt (part 2), n1.txt (part 3), 2 more not read (the limit is 2 " in (
        doc.pages[0].text
    )


def test_attachment_bytes_past_the_limit_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mail, "MAX_ATTACHMENT_BYTES", 30)
    m = EmailMessage()
    m["Subject"] = "bytes"
    m.set_content("body")
    for i in range(2):
        m.add_attachment(b"twenty bytes of text", maintype="text", subtype="plain",
                         filename=f"b{i}.txt")  # fmt: skip
    path = tmp_path / "bytes.eml"
    path.write_bytes(bytes(m))
    doc = extract(path)
    assert len(doc.pages) == 2
    assert "b1.txt (not read: attachments over 0 MB in all)" in doc.pages[0].text


# --- .msg ----------------------------------------------------------------------------------------


def make_msg(path: Path, pdf: bytes) -> Path:
    when = datetime(2024, 3, 5, 13, 30, tzinfo=UTC)
    embedded: Tree = {
        "__properties_version1.0": props(24, (0x0003, 0x3FFD, 1252)),
        "__substg1.0_0037001E": "Café notes".encode("cp1252"),
        "__substg1.0_1000001E": "Crème brûlée at the café on Friday.".encode("cp1252"),
    }
    return write_cfb(path, {
        "__properties_version1.0": props(32, (0x0040, 0x0039, filetime(when))),
        "__substg1.0_0037001F": u16("Quarterly pump report"),
        "__substg1.0_0C1A001F": u16("Ann Ellis"),
        "__substg1.0_0C1F001F": u16("/O=EXCHANGE/OU=ADMIN/CN=ANN"),
        "__substg1.0_5D01001F": u16("ann@example.org"),
        "__substg1.0_0E04001F": u16("Bob Lee"),
        "__substg1.0_1000001F": u16("Hi Bob,\r\n\r\nthe report is attached.\r\n"),
        "__substg1.0_10090102": b"compressed rtf",
        "__recip_version1.0_#00000000": {
            "__properties_version1.0": props(8, (0x0003, 0x0C15, 1)),
            "__substg1.0_3001001F": u16("Bob Lee"),
            "__substg1.0_39FE001F": u16("bob@example.com"),
        },
        "__recip_version1.0_#00000001": {
            "__properties_version1.0": props(8, (0x0003, 0x0C15, 2)),
            "__substg1.0_3001001F": u16("Cy Ray"),
            "__substg1.0_3003001F": u16("cy@example.com"),
        },
        "__attach_version1.0_#00000000": {
            "__properties_version1.0": props(8, (0x0003, 0x3705, 1)),
            "__substg1.0_3704001F": u16("REPORT~1.PDF"),
            "__substg1.0_3707001F": u16("report.pdf"),
            "__substg1.0_37010102": pdf,
        },
        "__attach_version1.0_#00000001": {
            "__substg1.0_3707001F": u16("photo.heic"),
            "__substg1.0_37010102": b"\0\0\0\x18ftypheic",
        },
        "__attach_version1.0_#00000002": {
            "__properties_version1.0": props(8, (0x000B, 0x7FFE, 1)),  # hidden: an inline image
            "__substg1.0_3707001F": u16("image001.png"),
            "__substg1.0_37010102": b"\x89PNG",
        },
        "__attach_version1.0_#00000003": {
            "__properties_version1.0": props(8, (0x0003, 0x3705, 5)),
            "__substg1.0_3001001F": u16("Café notes"),
            "__substg1.0_3701000D": embedded,
        },
    })  # fmt: skip


def test_an_outlook_msg_is_read_with_its_attachments(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "r.pdf", [PUMP])
    path = make_msg(tmp_path / "pump.msg", pdf.read_bytes())
    with olefile.OleFileIO(str(path), raise_defects=olefile.DEFECT_INCORRECT) as ole:
        assert ole.openstream("__attach_version1.0_#00000000/__substg1.0_37010102").read() == (
            pdf.read_bytes()
        )
    doc = extract(path)
    assert (doc.kind, doc.title) == ("msg", "Quarterly pump report")
    assert [p.number for p in doc.pages] == [1, 2, 3]
    assert doc.pages[0].text == (
        "Quarterly pump report\n"
        "From: Ann Ellis <ann@example.org>\n"
        "To: Bob Lee <bob@example.com>\n"
        "Cc: Cy Ray <cy@example.com>\n"
        "Date: Tue, 05 Mar 2024 13:30:00 +0000\n"
        "Attachments: report.pdf (part 2), photo.heic (not indexed), Café notes.msg (part 3)\n"
        "\n"
        "Hi Bob,\n\nthe report is attached."
    )
    assert doc.pages[0].headings == (Heading(0, 1, "Quarterly pump report"),)
    assert doc.pages[1].text == f"Attachment: report.pdf\n\n{PUMP}"
    assert doc.pages[2].text == (
        "Attachment: Café notes.msg\n\nCafé notes\n\nCrème brûlée at the café on Friday."
    )
    assert doc.pages[2].headings == (Heading(0, 1, "Attachment: Café notes.msg"),
                                     Heading(28, 2, "Café notes"))  # fmt: skip


def test_msg_bodies_html_and_rtf_only(tmp_path: Path) -> None:
    html = write_cfb(tmp_path / "html.msg", {
        "__substg1.0_0037001F": u16("Menu"),
        "__substg1.0_10130102": b"<html><body><h1>Soup</h1><p>Leek</p></body></html>",
    })  # fmt: skip
    page = extract(html).pages[0]
    assert page.text == "Menu\n\nSoup\nLeek"
    assert page.headings == (Heading(0, 1, "Menu"), Heading(6, 2, "Soup"))
    rtf = write_cfb(tmp_path / "rtf.msg", {
        "__substg1.0_0037001F": u16("Old client"),
        "__substg1.0_10090102": b"compressed rtf",
    })  # fmt: skip
    assert extract(rtf).pages[0].text == (
        "Old client\n\n(the message body is in RTF only and was not read)"
    )


def test_a_msg_that_is_not_an_outlook_message_fails_with_a_reason(tmp_path: Path) -> None:
    fake = tmp_path / "fake.msg"
    fake.write_bytes(b"just some text pretending to be a message" * 50)
    with pytest.raises(ExtractionError, match=r"not an Outlook \.msg file \(it is not an OLE"):
        extract(fake)
    word = write_cfb(tmp_path / "word.msg", {"WordDocument": b"\xec\xa5" * 100})
    with pytest.raises(ExtractionError, match="without message properties"):
        extract(word)
    truncated = tmp_path / "cut.msg"
    truncated.write_bytes(word.read_bytes()[:1600])
    with pytest.raises(ExtractionError, match=r"not an Outlook \.msg file"):
        extract(truncated)
