"""Streaming readers: the six sample files, CSV quirks, encodings, XSD, hostile XML."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_fixtures import (
    EASYA,
    EASYA_HEADER,
    FAMILIE,
    GYMNASIUM,
    JOBCENTER,
    SAMPLES,
    SAMTYKKER,
    UU,
    easya_row,
    write_easya,
)
from lxml import etree

from connectors.readers import CsvReader, split_items
from mappings import easy_a, familie, grundskole, gymnasium, jobcenter, samtykker, uu_planer
from stafet.core.errors import FileRejected

# The generic readers, as the sources build them from their declared columns.
EASYA_CSV, GYMNASIUM_XML, JOBCENTRE_CSV = easy_a.READER, gymnasium.READER, jobcenter.READER
UU_XML, FAMILY_CSV, CONSENT_CSV = uu_planer.READER, familie.READER, samtykker.READER


@pytest.mark.parametrize(("reader", "name", "n"), [
    (EASYA_CSV, EASYA, 4), (GYMNASIUM_XML, GYMNASIUM, 2), (JOBCENTRE_CSV, JOBCENTER, 2),
    (UU_XML, UU, 2), (FAMILY_CSV, FAMILIE, 2), (CONSENT_CSV, SAMTYKKER, 3)])
def test_samples_read(reader, name: str, n: int) -> None:
    rows = list(reader(SAMPLES / name))
    assert len(rows) == n
    assert all(not r.problem for r in rows)


def test_easya_sample_quirks() -> None:
    rows = list(EASYA_CSV(SAMPLES / EASYA))
    first, second = rows[0].fields, rows[1].fields
    assert first["Afbrudsaarsag_tekst"] == "Ønsker omvalg; vil være smed"   # quoted ';', cp1252
    assert first["Fornavn"] == "Søren" and first["Fravaersprocent"] == "18,5"
    assert second["Note"] == "Højt fravær,\r\nsamtale aftalt"               # line break in quotes
    assert [r.number for r in rows] == [2, 3, 5, 6]                         # the line each row starts on
    assert "" not in first                                                  # trailing ';' dropped


def test_jobcentre_bom_and_family_latin1() -> None:
    job = next(iter(JOBCENTRE_CSV(SAMPLES / JOBCENTER))).fields
    assert "cpr" in job and job["maal_uddannelse"] == "Smed"
    fam = next(iter(FAMILY_CSV(SAMPLES / FAMILIE))).fields
    assert fam["SEL76_efterværn"] == "J" and fam["Raadgiver_navn"] == "Hanne Sørensen"


def test_xml_flattening() -> None:
    gym = list(GYMNASIUM_XML(SAMPLES / GYMNASIUM))
    assert gym[0].fields["/institution"] == "751001"
    assert gym[0].fields["Aarsag@kode"] == "02" and gym[0].fields["@type"] == "afbrud"
    assert "Aarsag@kode" not in gym[1].fields
    uu = list(UU_XML(SAMPLES / UU))
    assert "Stoettebehov/Mentor" in uu[0].fields and "Stoettebehov/SPS" not in uu[0].fields
    assert uu[1].fields["Stoettebehov/Andet"] == "Kort skoledag i opstart"


def test_trailing_semicolon_and_empty_optional_fields(tmp_path: Path) -> None:
    row = easya_row(absence="", reason="", text="", event="OPTAG")
    p = write_easya(tmp_path / "a.csv", [row], trailing=";")
    (row,) = EASYA_CSV(p)
    assert row.fields["Fravaersprocent"] == "" and row.fields["Kontakt_email"] == "aase@mercantec.example"
    assert not row.problem


def test_quoted_separator_and_line_breaks(tmp_path: Path) -> None:
    p = write_easya(tmp_path / "a.csv", [easya_row(text='"a; b ""quoted""\r\nnext line"', note='"x;y"'),
                                         easya_row()])
    rows = list(EASYA_CSV(p))
    assert rows[0].fields["Afbrudsaarsag_tekst"] == 'a; b "quoted"\r\nnext line'
    assert rows[0].fields["Note"] == "x;y"
    assert [r.number for r in rows] == [2, 4]


def test_missing_and_unknown_columns_reject(tmp_path: Path) -> None:
    p = write_easya(tmp_path / "a.csv", [], header=EASYA_HEADER.replace("Note;", "") + ";Ekstra")
    with pytest.raises(FileRejected) as e:
        list(EASYA_CSV(p))
    assert "missing columns: Note" in str(e.value) and "1 unknown column (at position 17)" in str(e.value)
    assert "Ekstra" not in str(e.value)   # a header's cells may be data: never echoed
    assert e.value.rule == "header"


def test_a_headerless_csv_names_the_missing_columns_never_the_first_row(tmp_path: Path) -> None:
    """Issue 16 (low): the first data row (names, a CPR) was echoed as 'unknown columns'."""
    p = tmp_path / "779008_haendelser_2026112102.csv"
    p.write_bytes(("\r\n".join([easya_row(), easya_row()]) + "\r\n").encode("cp1252"))
    with pytest.raises(FileRejected) as e:
        list(EASYA_CSV(p))
    reason = str(e.value)
    assert e.value.rule == "header" and p.name in reason
    for value in ("Søren", "Ægidius", "Åse Møller", "aase@mercantec.example", "Tømrer", "Omvalg", "120308"):
        assert value not in reason
    assert "missing columns: " + ", ".join(EASYA_CSV.columns) in reason
    assert "no header row" in reason


def test_duplicate_columns_are_named_only_when_they_are_the_formats(tmp_path: Path) -> None:
    p = write_easya(tmp_path / "a.csv", [], header=EASYA_HEADER + ";Note;Hemmelig;Hemmelig")
    with pytest.raises(FileRejected) as e:
        list(EASYA_CSV(p))
    assert "duplicate columns: Note" in str(e.value) and "Hemmelig" not in str(e.value)


def test_row_with_wrong_field_count_is_flagged_not_fatal(tmp_path: Path) -> None:
    p = write_easya(tmp_path / "a.csv", [easya_row(), "779008;EUD;120308-4127;only;four", easya_row()])
    rows = list(EASYA_CSV(p))
    assert [bool(r.problem) for r in rows] == [False, True, False]
    assert "5 fields" in rows[1].problem


@pytest.mark.parametrize(("reader", "payload", "offset_of"), [
    (EASYA_CSV, b"\x81", b"\x81"),                 # undefined in cp1252
    (CONSENT_CSV, b"\xc3\x28", b"\xc3"),           # invalid UTF-8
    (FAMILY_CSV, b"\x9d", b"\x9d"),                # C1 control: a UTF-8/cp1252 file read as Latin-1
    (JOBCENTRE_CSV, b"\x00", b"\x00"),             # NUL
])
def test_wrong_encoding_names_the_first_bad_byte(tmp_path: Path, reader: CsvReader, payload: bytes,
                                                 offset_of: bytes) -> None:
    head = ";".join(reader.columns).encode(reader.encoding) + b"\r\n"   # the header as the format writes it
    data = head + b"x" * 70_000 + payload + b"\r\n"
    p = tmp_path / "f.csv"
    p.write_bytes(data)
    with pytest.raises(FileRejected) as e:
        list(reader(p))
    assert e.value.rule == "encoding"
    assert f"byte offset {data.index(offset_of)}" in str(e.value)
    assert "f.csv" in str(e.value)


SOEREN_UTF8 = "Søren;Ægidius;Åse Møller".encode()


@pytest.mark.parametrize("reader", [EASYA_CSV, FAMILY_CSV], ids=["cp1252", "latin1"])
def test_a_utf8_file_where_the_source_declares_a_single_byte_encoding_is_refused(
        tmp_path: Path, reader: CsvReader) -> None:
    """Issue 16, finding 13: read as cp1252 it would store ``SÃ¸ren`` (valid cp1252, so it passed)."""
    head = ";".join(reader.columns).encode(reader.encoding) + b"\r\n"   # the header as declared
    data = head + b"x" * 70_000 + SOEREN_UTF8 + b"\r\n"
    p = tmp_path / "f.csv"
    p.write_bytes(data)
    with pytest.raises(FileRejected) as e:
        list(reader(p))
    msg = str(e.value)
    assert e.value.rule == "encoding" and "f.csv" in msg
    assert f"byte offset {data.index(SOEREN_UTF8[1:])}" in msg and "0xc3 0xb8" in msg
    assert "UTF-8" in msg and "Next step" in msg and "Søren" not in msg


@pytest.mark.parametrize("reader", [EASYA_CSV, FAMILY_CSV], ids=["cp1252", "latin1"])
def test_a_utf8_bom_where_the_source_declares_a_single_byte_encoding_is_refused(
        tmp_path: Path, reader: CsvReader) -> None:
    p = tmp_path / "f.csv"
    p.write_bytes(b"\xef\xbb\xbf" + ";".join(reader.columns).encode(reader.encoding) + b"\r\n")
    with pytest.raises(FileRejected) as e:
        list(reader(p))
    assert e.value.rule == "encoding" and "byte order mark" in str(e.value)


def test_a_utf8_character_split_by_a_read_chunk_is_still_seen(tmp_path: Path) -> None:
    """The readers stream: a sequence whose lead byte ends one 1 MiB read and whose continuation
    byte starts the next is found all the same."""
    head = EASYA_HEADER.encode() + b"\r\n"
    data = head + b"a" * ((1 << 20) - len(head) - 1) + "ø".encode() + b"\r\n"
    assert data[(1 << 20) - 1] == 0xc3
    p = tmp_path / "big.csv"
    p.write_bytes(data)
    with pytest.raises(FileRejected, match=f"0xc3 0xb8 at byte offset {(1 << 20) - 1}"):
        list(EASYA_CSV(p))


def test_real_single_byte_danish_text_is_not_taken_for_utf8(tmp_path: Path) -> None:
    """Every Danish letter, accented names, and cp1252's punctuation, as exports write them."""
    note = "Ærø, Åse, Øster-Ørum: «fravær» – 37½ % … ’ok’ “Müller” é Ü ÿ, 12° ©"
    p = write_easya(tmp_path / "779008_haendelser_2026112102.csv", [easya_row(note=note)])
    (row,) = list(EASYA_CSV(p))
    assert row.fields["Note"] == note
    latin = "Ærø, Åse, Øster-Ørum: «fravær» 37½ % é Ü ÿ, 12° ©"
    head = ";".join(FAMILY_CSV.columns)
    p = tmp_path / "f.csv"
    p.write_bytes((head + "\r\n" + ";".join([latin] * len(FAMILY_CSV.columns)) + "\r\n").encode("latin-1"))
    (row,) = list(FAMILY_CSV(p))
    assert set(row.fields.values()) == {latin}


def test_bad_byte_after_a_read_chunk_boundary(tmp_path: Path) -> None:
    head = EASYA_HEADER.encode() + b"\r\n"
    data = head + b"a" * ((1 << 20) + 17) + b"\x81"
    p = tmp_path / "big.csv"
    p.write_bytes(data)
    with pytest.raises(FileRejected, match=f"byte offset {len(data) - 1}"):
        list(EASYA_CSV(p))


def test_utf8_split_across_chunks_is_fine(tmp_path: Path) -> None:
    head = ";".join(CONSENT_CSV.columns).encode() + b"\r\n"
    filler = b"S-0;x;x;x;x;x;x;x;x;x;x\r\n"
    n = ((1 << 20) - len(head)) // len(filler)
    pad = (1 << 20) - len(head) - n * len(filler)
    data = head + filler * n + b"y" * (pad - 1) + "ø;x;x;x;x;x;x;x;x;x;x\r\n".encode()
    assert data[(1 << 20) - 1:(1 << 20) + 1] == "ø".encode()   # split by the 1 MiB read
    p = tmp_path / "c.csv"
    p.write_bytes(data)
    rows = list(CONSENT_CSV(p))
    assert len(rows) == n + 1 and rows[-1].fields["samtykke_ref"].endswith("yø")



def test_a_row_spanning_several_read_chunks_is_read_whole(tmp_path: Path) -> None:
    """Every field near csv's field limit: one 2 MB line over three 1 MiB reads."""
    values = [f"{i:02d}" + "x" * 120_000 for i in range(len(EASYA_CSV.columns))]
    p = write_easya(tmp_path / "a.csv", [easya_row(), ";".join(values), easya_row()])
    rows = list(EASYA_CSV(p))
    assert [r.number for r in rows] == [2, 3, 4] and not any(r.problem for r in rows)
    assert list(rows[1].fields.values()) == values
    assert rows[2].fields == rows[0].fields


def test_a_field_over_the_csv_field_limit_rejects_naming_the_row(tmp_path: Path) -> None:
    p = write_easya(tmp_path / "a.csv", [easya_row(), easya_row(note="n" * 200_000)])
    with pytest.raises(FileRejected) as e:
        list(EASYA_CSV(p))
    assert e.value.rule == "csv_structure" and e.value.row == 3 and "a.csv" in str(e.value)


def test_a_line_longer_than_any_row_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    """A field without a line break is refused once ``max_line`` characters are read:
    the rest of the file is never read, so memory stays bounded (tests/reliability has
    the 100 MB case with its memory measured)."""
    data = (EASYA_HEADER + "\r\n" + easya_row() + "\r\n779008;").encode("cp1252")
    data += b"A" * (3 * EASYA_CSV.max_line) + b";x\r\n"
    fh = io.BytesIO(data)
    with pytest.raises(FileRejected) as e:
        list(EASYA_CSV.rows(fh, "a.csv"))
    assert e.value.rule == "csv_structure" and e.value.row == 3 and "a.csv" in str(e.value)
    assert fh.tell() < EASYA_CSV.max_line + (2 << 20)


def test_max_line_leaves_room_for_every_field_at_the_limit_quoted() -> None:
    assert EASYA_CSV.max_line >= len(EASYA_CSV.columns) * (2 * csv.field_size_limit() + 3)


GYM_OK = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
          b'<Elevhaendelser xmlns="urn:stafet:formats:skoleadm:1" institution="751001" '
          b'dannet="2026-11-21T02:00:00">\n%s</Elevhaendelser>\n')
EVENT = (b'<Haendelse type="optag"><Cpr>030409-4871</Cpr><Navn>A B</Navn><Bopaelskommune>791'
         b'</Bopaelskommune><Uddannelse kode="1199">STX</Uddannelse><Dato>2026-11-16</Dato>'
         b'<Startdato>2026-11-16</Startdato></Haendelse>\n')


def test_xsd_failure_rejects(tmp_path: Path) -> None:
    p = tmp_path / "x.xml"
    p.write_bytes(GYM_OK % (EVENT + EVENT.replace(b"<Navn>A B</Navn>", b"")))
    with pytest.raises(FileRejected) as e:
        list(GYMNASIUM_XML(p))
    assert e.value.rule == "xsd" and "skoleadm.xsd" in str(e.value)


def test_xml_not_well_formed_rejects(tmp_path: Path) -> None:
    p = tmp_path / "x.xml"
    p.write_bytes(GYM_OK % EVENT + b"<oops>")
    with pytest.raises(FileRejected) as e:
        list(GYMNASIUM_XML(p))
    assert e.value.rule in ("xml_syntax", "xsd")


@pytest.mark.parametrize("reader", [GYMNASIUM_XML, UU_XML], ids=lambda r: r.name)
def test_xml_rejection_reason_is_this_files_own(tmp_path: Path, reader) -> None:
    """lxml's thread-wide error log holds earlier errors (another file's, anyone's parse):
    a file that is not XML at all is rejected as not well formed, with its own reason."""
    invalid = tmp_path / "invalid.xml"
    invalid.write_bytes(GYM_OK % EVENT.replace(b"<Navn>A B</Navn>", b"<Ukendt/>"))
    not_xml = tmp_path / "not.xml"
    not_xml.write_bytes(b"Instnr;CprNr\n1;2\n")
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(b"<stray><unclosed></stray>")
    for first in (GYMNASIUM_XML, UU_XML):
        with pytest.raises(FileRejected):
            list(first(invalid))
    with pytest.raises(FileRejected) as e:
        list(reader(not_xml))
    assert e.value.rule == "xml_syntax", str(e.value)
    for stale in ("Ukendt", "stray", "Elevhaendelser"):
        assert stale not in str(e.value), str(e.value)


def test_xml_wrong_root_rejects(tmp_path: Path) -> None:
    p = tmp_path / "x.xml"
    p.write_bytes(b'<Uddannelsesplaner xmlns="urn:stafet:formats:uu:1"/>')
    with pytest.raises(FileRejected):
        list(GYMNASIUM_XML(p))


XXE = (b'<?xml version="1.0"?>\n<!DOCTYPE Elevhaendelser [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
       b'<Elevhaendelser xmlns="urn:stafet:formats:skoleadm:1" institution="751001" '
       b'dannet="2026-11-21T02:00:00"><Haendelse type="optag"><Cpr>&x;</Cpr></Haendelse></Elevhaendelser>')
LAUGHS = (b'<?xml version="1.0"?>\n<!-- hi -->\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10))
          + b']>\n<Uddannelsesplaner xmlns="urn:stafet:formats:uu:1">&lol9;</Uddannelsesplaner>')


EXTERNAL_DTD = b"\xef\xbb\xbf<!DOCTYPE a SYSTEM 'http://example.invalid/a.dtd'><a/>"


@pytest.mark.parametrize("doc", [XXE, LAUGHS, EXTERNAL_DTD], ids=["xxe", "billion-laughs", "external-dtd"])
def test_hostile_xml_is_refused(tmp_path: Path, doc: bytes) -> None:
    p = tmp_path / "h.xml"
    p.write_bytes(doc)
    for reader in (GYMNASIUM_XML, UU_XML):
        with pytest.raises(FileRejected) as e:
            list(reader(p))
        assert e.value.rule == "xml_hostile"


DTD = b'<!DOCTYPE Elevhaendelser [<!ENTITY x SYSTEM "file:///etc/passwd">]>'


@pytest.mark.parametrize(("prolog", "rule"), [
    (b" " * 70_000, "xml_hostile"),                  # past the old 64 KiB look-ahead: lxml read the DTD
    (b"\n" * (1 << 20), "xml_syntax"),               # longer than any prolog may be
    (b'<?xml version="1.0"?>' + b"\t\r\n" * 30_000, "xml_hostile"),
    (b"\xef\xbb\xbf" + b" " * 70_000, "xml_hostile"),
    (b"<!--> <Elevhaendelser/> -->", "xml_hostile"),  # not a comment to the parser: it ends at the later -->
    (b"<?> <Elevhaendelser/> ?>", "xml_hostile"),
], ids=["70k-spaces", "1mib-newlines", "decl-then-whitespace", "bom-then-whitespace",
        "empty-looking-comment", "empty-looking-pi"])
def test_no_prolog_gets_a_doctype_past_the_pre_check(tmp_path: Path, prolog: bytes, rule: str) -> None:
    """Issue 16 (low): the pre-check looked 64 KiB ahead and then let the parser go on, and it
    closed a comment or PI earlier than the parser does."""
    p = tmp_path / "h.xml"
    p.write_bytes(prolog + DTD + GYM_OK.split(b"?>", 1)[1] % EVENT)
    with pytest.raises(FileRejected) as e:
        list(GYMNASIUM_XML(p))
    assert e.value.rule == rule


@pytest.mark.parametrize("prolog", [b"\x0b", b"\xef\xbb\xbf\xef\xbb\xbf", b"x", b"\xc2\xa0"],
                         ids=["vertical-tab", "two-boms", "text", "nbsp"])
def test_what_the_parser_would_not_read_past_is_refused_before_it(tmp_path: Path, prolog: bytes) -> None:
    p = tmp_path / "h.xml"
    p.write_bytes(prolog + DTD + GYM_OK.split(b"?>", 1)[1] % EVENT)
    with pytest.raises(FileRejected) as e:
        list(GYMNASIUM_XML(p))
    assert e.value.rule == "xml_syntax"


def test_the_parser_reads_the_formats_encoding_not_the_declared_one(tmp_path: Path) -> None:
    """A declaration naming another encoding (EBCDIC) would make the parser see other characters
    than the pre-check: the parser reads UTF-8, so the EBCDIC DOCTYPE is never a DOCTYPE to it."""
    p = tmp_path / "h.xml"
    p.write_bytes(b'<?xml version="1.0" encoding="IBM037"?>' + DTD.decode().encode("cp037"))
    with pytest.raises(FileRejected) as e:
        list(GYMNASIUM_XML(p))
    assert e.value.rule in ("encoding", "xml_syntax")   # EBCDIC bytes are not UTF-8: never parsed
    ok = tmp_path / "ok.xml"
    ok.write_bytes(GYM_OK.replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"') % EVENT.replace(
        b"A B", "Søren Ø".encode()))
    (row,) = list(GYMNASIUM_XML(ok))
    assert "Søren Ø" in row.fields.values()


def test_undeclared_entity_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "e.xml"
    p.write_bytes(GYM_OK % EVENT.replace(b"A B", b"&ent;"))
    with pytest.raises(FileRejected):
        list(GYMNASIUM_XML(p))


def test_xml_invalid_utf8_names_offset(tmp_path: Path) -> None:
    data = GYM_OK % EVENT.replace(b"A B", b"A \xff B")
    p = tmp_path / "u.xml"
    p.write_bytes(data)
    with pytest.raises(FileRejected) as e:
        list(GYMNASIUM_XML(p))
    bad = data.index(b"\xff")
    assert e.value.rule == "encoding" and f"byte offset {bad}" in str(e.value)


def test_xml_memory_stays_flat(tmp_path: Path) -> None:
    """Elements are cleared as they are read: the tree never holds more than one record."""
    p = tmp_path / "big.xml"
    with p.open("wb") as fh:
        fh.write((GYM_OK % b"").split(b"</Elevhaendelser>")[0])
        for _ in range(20_000):
            fh.write(EVENT)
        fh.write(b"</Elevhaendelser>\n")
    seen = 0
    for row in GYMNASIUM_XML(p):
        seen += 1
        assert row.fields["Cpr"] == "030409-4871"
    assert seen == 20_000


# --- grundskole (FORMATS.md 7): attribute-only elements and repeated Stoettebehov -------------

GRUNDSKOLE_DOC = ('<?xml version="1.0" encoding="UTF-8"?>\n<Elever xmlns="urn:stafet:formats:grundskole:1" '
                  'skole="280012" kommune="791" dannet="2026-11-25T02:00:00">%s</Elever>\n')
PUPIL = ('<Elev opdateret="2026-11-24"><Cpr>150311-4062</Cpr><Navn>Freja Kjær</Navn>'
         '<Klassetrin>9</Klassetrin>'
         '<ForventetAfslutning>2027-06-25</ForventetAfslutning>%s<Kontaktlaerer navn="Mette Dahl"/></Elev>')


def _pupils(tmp_path: Path, *inner: str) -> list[dict[str, str]]:
    p = tmp_path / "grundskole_280012_elever_20261125.xml"
    p.write_text(GRUNDSKOLE_DOC % "".join(PUPIL % i for i in inner), encoding="utf-8")
    return [r.fields for r in grundskole.READER(p)]


def test_grundskole_sample_flattening() -> None:
    freja, noah = (r.fields for r in grundskole.READER(SAMPLES / "grundskole_280012_elever_20261125.xml"))
    assert (freja["/skole"], freja["/kommune"], freja["@opdateret"]) == ("280012", "791", "2026-11-24")
    assert freja["Uddannelsesparathed@personlig"] == "ikke-parat" and freja["Uddannelsesparathed"] == ""
    assert freja["Stoettebehov@type"] == "Ordblind|Andet"
    assert split_items(freja["Stoettebehov"]) == ["", "Har brug for fast voksen ved skoleskift"]
    assert "Stoettebehov" not in noah and "Stoettebehov@type" not in noah
    assert noah["Ansoegning@institution"] == "751001" and noah["Kontaktlaerer@navn"] == "Mette Dahl"


def test_repeated_list_items_keep_a_typed_bar_and_backslash_apart(tmp_path: Path) -> None:
    (row,) = _pupils(tmp_path, '<Stoettebehov type="Andet">2 t | uge</Stoettebehov><Stoettebehov type="SPS"/>'
                               '<Stoettebehov type="Andet">C:\\skema</Stoettebehov>')
    assert split_items(row["Stoettebehov@type"]) == ["Andet", "SPS", "Andet"]
    assert split_items(row["Stoettebehov"]) == ["2 t | uge", "", "C:\\skema"]
    (one,) = _pupils(tmp_path, '<Stoettebehov type="Mentor"/>')
    assert (one["Stoettebehov@type"], split_items(one["Stoettebehov"])) == ("Mentor", [""])


def test_elements_outside_lists_are_joined_unescaped(tmp_path: Path) -> None:
    (row,) = _pupils(tmp_path, '<Ansoegning institution="779008">Tømrer | smed</Ansoegning>')
    assert row["Ansoegning"] == "Tømrer | smed"  # not a list path: as the source wrote it
    assert split_items("a|b") == ["a", "b"] and split_items("") == [""]


@pytest.mark.parametrize("inner", [
    '<Stoettebehov>uden type</Stoettebehov>',                                 # type is required
    '<Uddannelsesparathed vurderet="2026-11-20" faglig="parat" social="parat"/>',  # personlig missing
    '<Ansoegning>STX</Ansoegning>',                                           # institution missing
    '<Stoettebehov type="SPS"/><Uddannelsesparathed vurderet="2026-11-20" faglig="parat" '
    'personlig="parat" social="parat"/>',                                     # out of order
], ids=["need-without-type", "readiness-incomplete", "application-without-institution", "out-of-order"])
def test_grundskole_structure_is_checked_by_its_xsd(tmp_path: Path, inner: str) -> None:
    with pytest.raises(FileRejected) as e:
        _pupils(tmp_path, inner)
    assert e.value.rule == "xsd" and "grundskole.xsd" in str(e.value)


_DANISH = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ æøåÆØÅéüöäÉÜÖ"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(st.sampled_from(_DANISH), min_size=1, max_size=20), min_size=1, max_size=6)
       .filter(lambda names: not all(n.isascii() for n in names)))
def test_names_in_cp1252_are_read_and_the_same_names_in_utf8_are_refused(names: list[str]) -> None:
    """Whatever Danish names a file holds: as cp1252 it reads, as UTF-8 it is refused whole."""
    rows = [easya_row(note=n.replace(";", "")) for n in names]
    data = ("\r\n".join([EASYA_HEADER, *rows]) + "\r\n")
    assert [r.fields["Note"] for r in EASYA_CSV.rows(io.BytesIO(data.encode("cp1252")), "a.csv")] == names
    with pytest.raises(FileRejected) as e:
        list(EASYA_CSV.rows(io.BytesIO(data.encode("utf-8")), "a.csv"))
    assert e.value.rule == "encoding"
