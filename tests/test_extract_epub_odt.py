"""EPUB books and OpenDocument text from real packages written here with zipfile: chapters as
pages, headings, tables and lists, citations end to end, and hostile packages (not a ZIP, no
container, DRM, paths outside the package, XXE, billion laughs, ZIP bombs, a renamed spreadsheet)."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

from desktop_rag.core.errors import ExtractionError, UnsupportedFileError
from desktop_rag.core.ingest.extract import extract
from desktop_rag.core.text.citations import source_label
from desktop_rag.core.types import Heading

# -- builders -------------------------------------------------------------------------------------

CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>"""


def xhtml(title: str, body: str, doctype: str = "<!DOCTYPE html>") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f"<head><title>{title}</title></head><body>{body}</body></html>"
    )


CHAPTERS = [
    (
        "Text/ch1.xhtml",
        "Chapter One",
        "<h1>The Lighthouse</h1><p>The lighthouse on Skerry Point was built in 1868.</p>"
        "<h2>The Keeper</h2><p>Agnes Munro kept the light for thirty-one years.</p>",
    ),
    (
        "Text/ch2.xhtml",
        "Chapter Two",
        "<h1>The Storm</h1><p>In the gale of 1953 the lamp burned all night.</p>"
        "<h2>Aftermath</h2><p>The boathouse roof was lost &amp; rebuilt in spring.</p>",
    ),
    (
        "Text/chapter 3.xhtml",  # a space: the OPF writes it URL-encoded
        "Chapter Three",
        "<h1>The Fog Signal</h1><p>The foghorn was fitted in 1911 and sounded "
        "four blasts every ninety seconds.</p><h2>Silence</h2><p>It fell silent in 2005.</p>",
    ),
]


def make_epub(
    path: Path,
    chapters: list[tuple[str, str, str]] = CHAPTERS,
    *,
    title: str = "The Keepers of Skerry Point",
    container: str | None = CONTAINER,
    extra: dict[str, bytes | str] | None = None,
    manifest_extra: str = "",
    spine_extra: str = "",
    nav_titles: list[str] | None = None,
    opf_doctype: str = "",
    doctypes: dict[str, str] | None = None,
    ncx: bool = False,
) -> Path:
    """Write a valid EPUB 3 (mimetype stored first, container, OPF, XHTML chapters, a nav)."""
    items, refs, links = [], [], []
    for i, (href, _, _) in enumerate(chapters, start=1):
        encoded = href.replace(" ", "%20")
        items.append(f'<item id="c{i}" href="{encoded}" media-type="application/xhtml+xml"/>')
        refs.append(f'<itemref idref="c{i}"/>')
        label = nav_titles[i - 1] if nav_titles else chapters[i - 1][1]
        links.append(f'<li><a href="{encoded.removeprefix("Text/")}">{label}</a></li>')
    nav_props = "" if ncx else ' properties="nav"'  # EPUB 2: only the NCX
    points = "".join(
        f'<navPoint id="p{i}" playOrder="{i}"><navLabel><text>{label}</text></navLabel>'
        f'<content src="{href.replace(" ", "%20")}"/></navPoint>'
        for i, (href, label, _) in enumerate(chapters, start=1)
    )
    toc = (
        '<?xml version="1.0" encoding="UTF-8"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" '
        f'version="2005-1"><navMap>{points}</navMap></ncx>'
    )
    opf = f"""<?xml version="1.0" encoding="UTF-8"?>{opf_doctype}
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:0d7a3e9c-7d1b-4c1e-9a1e-2f5b7c3d9e10</dc:identifier>
    <dc:title>{title}</dc:title><dc:language>en</dc:language>
  </metadata>
  <manifest>
    <item id="nav" href="Text/nav.xhtml" media-type="application/xhtml+xml"{nav_props}/>
    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
    {"".join(items)}{manifest_extra}
  </manifest>
  <spine toc="ncx">{"".join(refs)}{spine_extra}</spine>
</package>"""
    nav = xhtml(
        "Contents",
        f'<nav epub:type="toc"><h1>Contents</h1><ol>{"".join(links)}</ol></nav>',
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip", zipfile.ZIP_STORED)
        if container is not None:
            z.writestr("META-INF/container.xml", container)
        z.writestr("OEBPS/content.opf", opf)
        z.writestr("OEBPS/Text/nav.xhtml", nav)
        z.writestr("OEBPS/toc.ncx", toc)
        for href, head, body in chapters:
            doctype = (doctypes or {}).get(href, "<!DOCTYPE html>")
            z.writestr(f"OEBPS/{href}", xhtml(head, body, doctype))
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


ODT_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"'
)

ODT_BODY = """
<text:sequence-decls><text:sequence-decl text:display-outline-level="0" text:name="Table"/></text:sequence-decls>
<text:h text:style-name="H1" text:outline-level="1">Mill Report</text:h>
<text:p text:style-name="P1">The  water mill at
   Ashby Cross grinds <text:span text:style-name="T1">rye</text:span>and<text:s/>wheat.<text:note text:id="n1" text:note-class="footnote"><text:note-citation>1</text:note-citation><text:note-body><text:p>Restored in 1994.</text:p></text:note-body></text:note></text:p>
<text:p>Tabs:<text:tab/>here<text:s text:c="3"/>spaces<text:line-break/>next line<office:annotation><dc:creator>Ann</dc:creator><text:p>private reviewer remark</text:p></office:annotation></text:p>
<text:p/>
<text:h text:outline-level="2">Output</text:h>
<text:list text:style-name="L1">
  <text:list-item><text:p>Flour: 2 tonnes a week</text:p></text:list-item>
  <text:list-item><text:p>Bran</text:p><text:list><text:list-item><text:p>sold to farms</text:p></text:list-item></text:list></text:list-item>
</text:list>
<table:table table:name="Table1">
  <table:table-column table:number-columns-repeated="2"/>
  <table:table-header-rows><table:table-row>
    <table:table-cell office:value-type="string"><text:p>Month</text:p></table:table-cell>
    <table:table-cell office:value-type="string"><text:p>Sacks</text:p></table:table-cell>
  </table:table-row></table:table-header-rows>
  <table:table-row>
    <table:table-cell><text:p>March</text:p></table:table-cell>
    <table:table-cell><text:p>412</text:p></table:table-cell>
  </table:table-row>
</table:table>
<text:h text:outline-level="2">Staff</text:h>
<text:p>The miller, Tom Hale, has worked here since 1987.</text:p>
"""


def odt_content(body: str = ODT_BODY, doctype: str = "", kind: str = "text") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{doctype}\n'
        f'<office:document-content {ODT_NS} office:version="1.3">'
        f"<office:body><office:{kind}>{body}</office:{kind}></office:body>"
        "</office:document-content>"
    )


def make_odt(
    path: Path,
    content: str | None = None,
    *,
    title: str = "Ashby Cross mill",
    mimetype: str | None = "application/vnd.oasis.opendocument.text",
    manifest_entry: str = "",
) -> Path:
    """Write a valid .odt (mimetype stored first, content.xml, meta.xml, manifest)."""
    meta = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-meta {ODT_NS} '
        f'office:version="1.3"><office:meta><dc:title>{title}</dc:title></office:meta>'
        "</office:document-meta>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">'
        f"{manifest_entry}</manifest:file-entry>"
        '<manifest:file-entry manifest:full-path="meta.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        if mimetype is not None:
            z.writestr(zipfile.ZipInfo("mimetype"), mimetype, zipfile.ZIP_STORED)
        if content != "":
            z.writestr("content.xml", content if content is not None else odt_content())
        z.writestr("meta.xml", meta)
        z.writestr("META-INF/manifest.xml", manifest)
    return path


def refused_or_text(path: Path, text: bool = False) -> str:
    """The refusal's message, else the title (or the first page's text): a hostile file must be
    refused or read without expanding its entities, whichever libxml2 does."""
    try:
        doc = extract(path)
    except ExtractionError as err:
        return err.message
    return doc.pages[0].text if text else doc.title


def failure(path: Path) -> str:
    with pytest.raises(ExtractionError) as err:
        extract(path)
    return err.value.message


# -- EPUB -----------------------------------------------------------------------------------------


def test_epub_chapters_are_pages_in_spine_order_with_headings(tmp_path: Path) -> None:
    doc = extract(make_epub(tmp_path / "book.epub"))
    assert (doc.kind, doc.title) == ("epub", "The Keepers of Skerry Point")
    assert [p.number for p in doc.pages] == [1, 2, 3]
    first, second, third = doc.pages
    assert first.text == (
        "The Lighthouse\nThe lighthouse on Skerry Point was built in 1868.\n"
        "The Keeper\nAgnes Munro kept the light for thirty-one years.\n"
    )
    assert "The boathouse roof was lost & rebuilt in spring." in second.text
    assert [(h.level, h.text) for h in third.headings] == [(1, "The Fog Signal"), (2, "Silence")]
    for page in doc.pages:
        assert page.headings
        for h in page.headings:
            assert page.text[h.offset :].startswith(h.text)
    assert "Chapter Three" not in third.text  # the <head> is not text


def test_epub_keeps_empty_and_non_text_spine_items_so_numbers_match(tmp_path: Path) -> None:
    cover = ("Text/cover.xhtml", "Cover", '<div><img src="../cover.jpg" alt=""/></div>')
    book = make_epub(
        tmp_path / "book.epub",
        [cover, *CHAPTERS],
        manifest_extra='<item id="img" href="cover.jpg" media-type="image/jpeg"/>'
        '<item id="notes" href="Text/notes.xhtml" media-type="application/xhtml+xml"/>',
        spine_extra='<itemref idref="img"/><itemref idref="notes" linear="no"/>',
        extra={"OEBPS/cover.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
               "OEBPS/Text/notes.xhtml": xhtml("Notes", "<p>Note one: the log books survive.</p>")},
    )  # fmt: skip
    doc = extract(book)
    assert [p.number for p in doc.pages] == [1, 2, 3, 4, 5, 6]
    assert doc.pages[0].text.strip() == "" and doc.pages[4].text == ""  # cover page, image item
    assert doc.pages[2].text.startswith("The Storm")
    assert doc.pages[5].text.strip() == "Note one: the log books survive."  # linear="no" kept


def test_epub_chapter_without_headings_takes_its_nav_title_where_the_text_shows_it(
    tmp_path: Path,
) -> None:
    chapters = [
        ("Text/a.xhtml", "A", "<p class='title'>Prologue</p><p>It began at sea.</p>"),
        ("Text/b.xhtml", "B", "<p>No title line here, only text.</p>"),
    ]
    doc = extract(make_epub(tmp_path / "b.epub", chapters, nav_titles=["Prologue", "Part Two"]))
    first, second = doc.pages
    assert first.headings[0].offset == 0 and first.headings[0].text == "Prologue"
    assert first.text.startswith("Prologue\n")
    assert second.headings == ()


def test_epub2_chapter_titles_come_from_the_ncx(tmp_path: Path) -> None:
    chapters = [("Text/a.xhtml", "Letters Home", "<p>Letters  Home</p><p>Dear mother, ...</p>")]
    (page,) = extract(make_epub(tmp_path / "b.epub", chapters, ncx=True)).pages
    assert page.text == "Letters Home\nDear mother, ...\n"
    assert page.headings == (Heading(0, 1, "Letters Home"),)


def test_epub_without_title_metadata_uses_the_file_name(tmp_path: Path) -> None:
    assert extract(make_epub(tmp_path / "field-notes.epub", title="")).title == "field-notes"


def test_book_and_odt_facts_are_found_and_cited(fake_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "library"
    folder.mkdir()
    make_epub(folder / "book.epub")
    make_odt(folder / "mill.odt")
    summary = fake_engine.index_all([folder])
    assert summary.indexed == 2 and not summary.problems
    hit = fake_engine.search("When was the foghorn fitted and how many blasts?", 1).hits[0]
    assert (hit.file_name, hit.page) == ("book.epub", 3) and "fitted in 1911" in hit.text
    assert source_label(hit) == "book.epub, chapter 3"
    hit = fake_engine.search("How long has the miller Tom Hale worked here?", 1).hits[0]
    assert (hit.file_name, hit.page) == ("mill.odt", None) and "since 1987" in hit.text
    assert source_label(hit) == "mill.odt"


# -- EPUB, hostile --------------------------------------------------------------------------------


def test_not_a_zip_is_not_a_book(tmp_path: Path) -> None:
    (tmp_path / "x.epub").write_bytes(b"%PDF-1.7 this is a renamed pdf")
    assert failure(tmp_path / "x.epub") == "not an EPUB book (it is not a ZIP package)"


def test_zip_without_container_is_refused_with_a_reason(tmp_path: Path) -> None:
    book = make_epub(tmp_path / "x.epub", container=None)
    assert failure(book) == "not an EPUB book (the package has no META-INF/container.xml)"


def test_container_naming_a_missing_package_document(tmp_path: Path) -> None:
    book = make_epub(tmp_path / "x.epub", container=CONTAINER.replace("content.opf", "gone.opf"))
    assert failure(book) == "corrupt EPUB book (its package document OEBPS/gone.opf is missing)"


def test_drm_encrypted_book_is_refused(tmp_path: Path) -> None:
    encryption = """<?xml version="1.0"?>
<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container"
            xmlns:enc="http://www.w3.org/2001/04/xmlenc#">
  <enc:EncryptedData>
    <enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>
    <enc:CipherData><enc:CipherReference URI="OEBPS/Text/ch1.xhtml"/></enc:CipherData>
  </enc:EncryptedData>
</encryption>"""
    book = make_epub(tmp_path / "drm.epub", extra={"META-INF/encryption.xml": encryption})
    assert failure(book) == "the book is DRM-protected (encrypted); it cannot be read"
    # Font obfuscation alone is not DRM: the text is readable.
    fonts = encryption.replace("http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                               "http://www.idpf.org/2008/embedding").replace(
        "OEBPS/Text/ch1.xhtml", "OEBPS/Fonts/serif.otf")  # fmt: skip
    book = make_epub(tmp_path / "fonts.epub", extra={"META-INF/encryption.xml": fonts,
                                                      "OEBPS/Fonts/serif.otf": b"\x00" * 64})  # fmt: skip
    assert len(extract(book).pages) == 3


def test_spine_item_outside_the_package_is_refused(tmp_path: Path) -> None:
    book = make_epub(
        tmp_path / "escape.epub",
        manifest_extra='<item id="pw" href="../../etc/passwd" media-type="application/xhtml+xml"/>',
        spine_extra='<itemref idref="pw"/>',
        extra={"etc/passwd": "root:x:0:0:zip-member-not-the-real-file"},
    )
    assert failure(book) == "refused: chapter 4 points outside the book package (../../etc/passwd)"


def test_xxe_in_a_chapter_or_the_package_document_reads_no_local_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LOCAL-CONTENT", encoding="utf-8")
    entity = f'[<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
    chapters = [
        ("Text/x.xhtml", "X", "<h1>Intro</h1><p>Before &xxe; after.</p>"),
        ("Text/y.xhtml", "Y", "<p>Again &xxe; here.</p>"),
    ]
    book = make_epub(tmp_path / "xxe.epub", chapters, title="Title &xxe;",
                     opf_doctype=f"<!DOCTYPE package {entity}",
                     doctypes={href: f"<!DOCTYPE html {entity}" for href, _, _ in chapters})  # fmt: skip
    doc = extract(book)
    everything = doc.title + "".join(p.text for p in doc.pages)
    assert "TOP-SECRET" not in everything
    assert doc.title == "Title"  # the entity reference is left out, not expanded
    assert doc.pages[0].text.startswith("Intro\nBefore")
    assert "Again" in doc.pages[1].text
    assert "]>" not in everything  # the internal subset is not shown as text


def billion_laughs() -> str:
    """An internal DTD subset whose &lol9; would expand to 10^9 "lol"s."""
    decls = ['<!ENTITY lol "lol">', f'<!ENTITY lol1 "{"&lol;" * 10}">']
    decls += [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(2, 10)]
    return "[" + "".join(decls) + "]>"


def test_billion_laughs_in_a_chapter_does_not_expand(tmp_path: Path) -> None:
    chapters = [("Text/ch1.xhtml", "B", "<p>Start &lol9; end.</p>")]
    book = make_epub(tmp_path / "lol.epub", chapters,
                     doctypes={"Text/ch1.xhtml": f"<!DOCTYPE html {billion_laughs()}"})  # fmt: skip
    started = time.monotonic()
    doc = extract(book)
    assert time.monotonic() - started < 5
    assert doc.pages[0].text == "Start &lol9; end.\n"  # left as written, never expanded


def test_billion_laughs_in_the_package_document_is_refused(tmp_path: Path) -> None:
    book = make_epub(tmp_path / "lol.epub", title="T &lol9;",
                     opf_doctype=f"<!DOCTYPE package {billion_laughs()}")  # fmt: skip
    started = time.monotonic()
    outcome = refused_or_text(book)
    assert time.monotonic() - started < 5
    assert outcome in {
        "refused: the EPUB book (its package document) declares entities that expand without "
        'bound (a "billion laughs" file?)',
        "T",  # an older libxml2 parses it, leaving the reference out
    }


def test_zip_bomb_book_is_refused(tmp_path: Path) -> None:
    book = make_epub(tmp_path / "bomb.epub", extra={"OEBPS/Text/huge.xhtml": b"\0" * 4_000_000})
    message = failure(book)
    assert message.startswith("refused: OEBPS/Text/huge.xhtml expands") and "ZIP bomb" in message


# -- ODT ------------------------------------------------------------------------------------------


def test_odt_headings_paragraphs_lists_tables_and_notes(tmp_path: Path) -> None:
    doc = extract(make_odt(tmp_path / "mill.odt"))
    assert (doc.kind, doc.title) == ("odt", "Ashby Cross mill")
    (page,) = doc.pages
    assert page.number is None
    assert page.text == (
        "Mill Report\n\n"
        "The water mill at Ashby Cross grinds ryeand wheat.[1]\n\n"
        "Tabs:\there   spaces\nnext line\n\n"
        "Output\n\n"
        "Flour: 2 tonnes a week\nBran\nsold to farms\n\n"
        "Month | Sacks\nMarch | 412\n\n"
        "Staff\n\n"
        "The miller, Tom Hale, has worked here since 1987.\n\n"
        "Notes\n\n"
        "[1] Restored in 1994."
    )
    assert [(h.level, h.text) for h in page.headings] == [
        (1, "Mill Report"), (2, "Output"), (2, "Staff"), (1, "Notes")
    ]  # fmt: skip
    for h in page.headings:
        assert page.text[h.offset :].startswith(h.text)
    assert "private reviewer remark" not in page.text  # comments are left out


def test_odt_title_style_paragraph_is_a_heading(tmp_path: Path) -> None:
    content = odt_content(
        '<text:p text:style-name="P7">Annual Notes</text:p><text:p>Body text here.</text:p>'
    ).replace(
        "<office:body>",
        '<office:automatic-styles><style:style xmlns:style="urn:oasis:names:tc:opendocument:'
        'xmlns:style:1.0" style:name="P7" style:family="paragraph" style:parent-style-name="Title"/>'
        "</office:automatic-styles><office:body>",
    )
    doc = extract(make_odt(tmp_path / "notes.odt", content, title=""))
    assert doc.title == "Annual Notes"
    assert doc.pages[0].headings == (Heading(0, 1, "Annual Notes"),)


def test_odt_title_falls_back_to_the_first_heading_then_the_stem(tmp_path: Path) -> None:
    assert extract(make_odt(tmp_path / "a.odt", title="")).title == "Mill Report"
    plain = odt_content("<text:p>Just a line of text.</text:p>")
    assert extract(make_odt(tmp_path / "memo.odt", plain, title="")).title == "memo"


def test_odt_not_a_zip_and_without_content(tmp_path: Path) -> None:
    (tmp_path / "old.odt").write_bytes(b"\xd0\xcf\x11\xe0 an old binary document")
    assert (
        failure(tmp_path / "old.odt") == "not an OpenDocument .odt file (it is not a ZIP package)"
    )
    empty = make_odt(tmp_path / "empty.odt", "")
    assert failure(empty) == "not an OpenDocument .odt file (the package has no content.xml)"


def test_spreadsheet_renamed_odt_is_refused(tmp_path: Path) -> None:
    sheet = odt_content("<table:table table:name='S'/>", kind="spreadsheet")
    ods = make_odt(tmp_path / "sheet.odt", sheet,
                   mimetype="application/vnd.oasis.opendocument.spreadsheet")  # fmt: skip
    assert failure(ods) == (
        "not an OpenDocument text document (it is a spreadsheet (.ods): "
        "application/vnd.oasis.opendocument.spreadsheet)"
    )
    no_mimetype = make_odt(tmp_path / "sheet2.odt", sheet, mimetype=None)
    assert failure(no_mimetype) == "not an OpenDocument text document (it is a spreadsheet (.ods))"


def test_password_protected_odt_is_refused(tmp_path: Path) -> None:
    encryption = (
        '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="x">'
        '<manifest:algorithm manifest:algorithm-name="Blowfish CFB" manifest:initialisation-vector="y"/>'
        "</manifest:encryption-data>"
    )
    locked = make_odt(tmp_path / "locked.odt", "<not xml: ciphertext>", manifest_entry=encryption)
    assert failure(locked) == "the document is password-protected; it cannot be read"


def test_odt_billion_laughs_does_not_expand(tmp_path: Path) -> None:
    content = odt_content("<text:p>Start &lol9; end.</text:p>",
                          doctype=f"<!DOCTYPE office:document-content {billion_laughs()}")  # fmt: skip
    started = time.monotonic()
    outcome = refused_or_text(make_odt(tmp_path / "lol.odt", content), text=True)
    assert time.monotonic() - started < 5
    assert outcome in {
        "refused: the OpenDocument file (content.xml) declares entities that expand without "
        'bound (a "billion laughs" file?)',
        "Start end.",  # an older libxml2 parses it, leaving the reference out
    }


def test_odt_xxe_reads_no_local_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-LOCAL-CONTENT", encoding="utf-8")
    content = odt_content("<text:p>Before &xxe; after.</text:p>",
                          doctype=f'<!DOCTYPE office:document-content [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>')  # fmt: skip
    doc = extract(make_odt(tmp_path / "xxe.odt", content))
    assert doc.pages[0].text == "Before after."


def test_odt_zip_bomb_is_refused(tmp_path: Path) -> None:
    bomb = make_odt(tmp_path / "bomb.odt")
    with zipfile.ZipFile(bomb, "a", zipfile.ZIP_DEFLATED) as z:
        z.writestr("Pictures/huge.png", b"\0" * 4_000_000)
    assert "ZIP bomb" in failure(bomb)


def test_odt_without_text_is_skipped(tmp_path: Path) -> None:
    blank = make_odt(tmp_path / "blank.odt", odt_content("<text:p/>"))
    with pytest.raises(UnsupportedFileError) as err:
        extract(blank)
    assert err.value.message == "the document contains no text"
