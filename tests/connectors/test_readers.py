"""Streaming readers: the six sample files, CSV quirks, encodings, XSD, hostile XML."""

from __future__ import annotations

from pathlib import Path

import pytest
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

from connectors.readers import (
    CONSENT_CSV,
    EASYA_CSV,
    FAMILY_CSV,
    GYMNASIUM_XML,
    JOBCENTRE_CSV,
    UU_XML,
    CsvReader,
)
from stafet.errors import FileRejected


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
    assert "missing columns: Note" in str(e.value) and "unknown columns: 'Ekstra'" in str(e.value)
    assert e.value.rule == "header"


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
    head = ";".join(reader.columns).encode() + b"\r\n"
    data = head + b"x" * 70_000 + payload + b"\r\n"
    p = tmp_path / "f.csv"
    p.write_bytes(data)
    with pytest.raises(FileRejected) as e:
        list(reader(p))
    assert e.value.rule == "encoding"
    assert f"byte offset {data.index(offset_of)}" in str(e.value)
    assert "f.csv" in str(e.value)


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
