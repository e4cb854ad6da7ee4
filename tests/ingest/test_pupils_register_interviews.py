"""FORMATS.md 7, 8, 9 through ingest: primary school pupils, the youth register, job-centre interviews.

Each published sample ingests end to end; a row breaking one of its source's rules is
quarantined with that rule named (the suite's rules and the mapping's own), the rest
of the file is stored.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from ingest_fixtures import SAMPLES, network
from sqlalchemy import select

from mappings import get_source
from stafet.core.config import Network
from stafet.ingest import gx
from stafet.ingest.pipeline import ingest_file, known_institutions
from stafet.store import Store
from stafet.store.schema import Quarantine, RecordRow

GRUNDSKOLE = "grundskole_280012_elever_20261125.xml"
UNGEREGISTER = "cpr_791_unge_20261125.csv"
SAMTALER = "jobcenter_791_samtaler_20261121.csv"
NOW = datetime(2026, 11, 26, 6, 0)  # the morning after the newest of the three exports
TODAY = NOW.date()


@pytest.mark.parametrize(("name", "source", "kind", "n"), [
    (GRUNDSKOLE, "grundskole", "pupil", 2), (UNGEREGISTER, "ungeregister", "registration", 5),
    (SAMTALER, "jobcenter-samtaler", "interview", 3)], ids=["grundskole", "ungeregister", "samtaler"])
def test_the_sample_is_ingested(store: Store, net: Network, tmp_path: Path, name: str, source: str, kind: str,
                                n: int) -> None:
    r = ingest_file(store, net, SAMPLES / name, now=NOW, home=tmp_path)
    assert (r.source, r.rows, r.accepted, r.quarantined, r.rejected) == (source, n, n, 0, False), r.reason
    with store.session() as s:
        assert list(s.scalars(select(RecordRow.kind).distinct())) == [kind]
        payloads = [json.loads(p) if isinstance(p, str) else p for p in s.scalars(select(RecordRow.payload))]
    assert len(payloads) == n
    found = re.findall(rb"(\d{6})-?(\d{4})", (SAMPLES / name).read_bytes())
    cprs = [a + b for a, b in found] + [a + b"-" + b for a, b in found]
    assert len(found) == n
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(c in data for c in cprs), f"clear CPR in {f.name}"
    again = ingest_file(store, net, SAMPLES / name, now=NOW, home=tmp_path)
    assert again.duplicate_file and again.rows == 0


def test_the_pupils_support_needs_and_readiness_are_stored(store: Store, net: Network,
                                                           tmp_path: Path) -> None:
    ingest_file(store, net, SAMPLES / GRUNDSKOLE, now=NOW, home=tmp_path)
    with store.session() as s:
        rows = [p if isinstance(p, dict) else json.loads(p) for p in s.scalars(select(RecordRow.payload))]
    by_name = {p["first_name"]: p for p in rows}
    assert by_name["Freja"]["ready"] is False and by_name["Noah"]["ready"] is True
    assert by_name["Freja"]["support_needs"] == [["Ordblind", ""],
                                                 ["Andet", "Har brug for fast voksen ved skoleskift"]]


def _grundskole(tmp_path: Path, *pupils: str) -> Path:
    good = (SAMPLES / GRUNDSKOLE).read_text(encoding="utf-8")
    head, rest = good.split("<Elev ", 1)
    first = "<Elev " + rest.split("</Elev>", 1)[0] + "</Elev>"
    p = tmp_path / "grundskole_280012_elever_20261126.xml"
    body = "".join(first.replace(*change) if change else first for change in pupils)  # type: ignore[misc]
    p.write_text(head + body + "\n</Elever>\n", encoding="utf-8")
    return p


def _quarantined(store: Store) -> dict[int, str]:
    with store.session() as s:
        return {q.row: q.rule for q in s.scalars(select(Quarantine))}


def test_grundskole_bad_rows_go_to_quarantine(store: Store, net: Network, tmp_path: Path) -> None:
    path = _grundskole(tmp_path, (), ("<Klassetrin>9<", "<Klassetrin>7<"),
                       ('personlig="ikke-parat"', 'personlig="maaske"'),
                       ('type="Ordblind"', 'type="Lektiehjaelp"'),
                       ("150311-4062", "150318-4062"),  # born 2018: 8 years old in 9th grade
                       ('opdateret="2026-11-24"', 'opdateret="2026-12-24"'))
    r = ingest_file(store, net, path, now=NOW, home=tmp_path)
    assert (r.rows, r.accepted, r.quarantined) == (6, 1, 5)
    assert r.rules == {"grade": 1, "readiness": 1, "support_need": 1, "age_range": 1, "date_not_future": 1}


def _csv(tmp_path: Path, sample: str, name: str, *rows: str) -> Path:
    header = (SAMPLES / sample).read_text(encoding="utf-8-sig").splitlines()[0]
    p = tmp_path / name
    data = "\r\n".join([header, *rows]) + "\r\n"
    p.write_bytes(("\ufeff" if sample == SAMTALER else "").encode() + data.encode("utf-8"))
    return p


def test_youth_register_bad_rows_go_to_quarantine(store: Store, net: Network, tmp_path: Path) -> None:
    path = _csv(tmp_path, UNGEREGISTER, "cpr_791_unge_20261126.csv",
                "0711094563;Mathilde;Østergaard;791;2015-08-01;2026-10-31;779;J",  # fine
                "0711094563;Mathilde;Østergaard;791;2015-08-01;2026-10-31;779;X",  # not J/N
                "0711094563;Mathilde;Østergaard;791;2015-08-01;2014-10-31;779;J",  # out before in
                "0711094563;Mathilde;Østergaard;79;2015-08-01;;;J",                # municipality
                "0711094563;Mathilde;Østergaard;791;2015-08-01;;779;J",            # moved to, not out
                "0711124563;Lille;Bror;791;2015-08-01;;;J",                        # 14 years old
                "0711094563;Mathilde;Østergaard;791;2027-08-01;;;J")               # in the future
    r = ingest_file(store, net, path, now=NOW, home=tmp_path)
    assert (r.rows, r.accepted, r.quarantined) == (7, 1, 6)
    assert r.rules == {"yes_no": 1, "moved_out_after_in": 1, "municipality_format": 1, "moved_to": 1,
                       "age_range": 1, "date_not_future": 1}
    assert _quarantined(store) == {3: "yes_no", 4: "moved_out_after_in", 5: "municipality_format",
                                   6: "moved_to", 7: "age_range", 8: "date_not_future"}


def test_interview_bad_rows_go_to_quarantine(store: Store, net: Network, tmp_path: Path) -> None:
    row = "1405024913;SA-2026-0881;{date};{type};{status};Lene Juhl;lene.juhl@jobcenter.example"
    path = _csv(tmp_path, SAMTALER, "jobcenter_791_samtaler_20261126.csv",
                row.format(date="2026-11-12", type="FOERSTE", status="AFHOLDT"),
                row.format(date="2026-12-03", type="OPFOELGNING", status="PLANLAGT"),  # planned: ahead ok
                row.format(date="2026-12-03", type="OPFOELGNING", status="AFHOLDT"),   # held: not ahead
                row.format(date="2026-11-12", type="ANDEN", status="AFHOLDT"),
                row.format(date="2026-11-12", type="FOERSTE", status="AFLYST"),
                row.format(date="2026-11-12", type="FOERSTE", status="AFHOLDT").replace("1405024913",
                                                                                         "1405104913"))  # 16
    r = ingest_file(store, net, path, now=NOW, home=tmp_path)
    assert (r.rows, r.accepted, r.quarantined) == (6, 2, 4)
    assert r.rules == {"date_not_future": 1, "interview_type": 1, "interview_status": 1, "age_range": 1}


def test_the_suites_name_the_rule_of_each_failing_row() -> None:
    src = get_source("grundskole")
    base = next(iter(src.reader(SAMPLES / GRUNDSKOLE))).fields
    rows = [base, {**base, "/kommune": "79"}, {**base, "Ansoegning@institution": "77900"},
            {**base, "Uddannelsesparathed@social": ""}, {**base, "ForventetAfslutning": "2027-02-30"},
            {k: v for k, v in base.items() if not k.startswith("Uddannelsesparathed")},
            {**base, "Cpr": "150311-406"}]
    got = gx.validate(src, rows, today=TODAY, institutions=known_institutions(network()))
    assert {i: sorted({f.rule for f in fs}) for i, fs in got.items()} == {
        1: ["municipality_format"], 2: ["institution_format"], 3: ["readiness"], 4: ["date_format"],
        6: ["cpr_format"]}


@pytest.mark.parametrize(("cpr", "ok"), [("010113-4123", True), ("010109-4123", True), ("010114-4123", False),
                                          ("010108-4123", False)], ids=["13", "17", "12", "18"])
def test_pupils_are_13_to_17(cpr: str, ok: bool) -> None:
    src = get_source("grundskole")
    base = {**next(iter(src.reader(SAMPLES / GRUNDSKOLE))).fields, "@opdateret": "2026-11-24", "Cpr": cpr}
    got = gx.validate(src, [base], today=TODAY, institutions=[])
    assert (0 not in got) is ok and (ok or got[0][0].rule == "age_range")


def test_a_register_extract_is_read_on_the_day_it_is_ingested() -> None:
    src = get_source("ungeregister")
    base = next(iter(src.reader(SAMPLES / UNGEREGISTER))).fields
    turned_30 = {**base, "cpr": "251196-4062"}  # 30 on 2026-11-25
    assert gx.validate(src, [turned_30], today=date(2026, 11, 24), institutions=[]) == {}
    assert gx.validate(src, [turned_30], today=date(2026, 11, 26), institutions=[])[0][0].rule == "age_range"


def test_routing_and_the_deadline_clock_pass_over_the_new_kinds(store: Store, net: Network,
                                                                tmp_path: Path) -> None:
    """Only the move rule routes registrations and no rule routes interviews (they are evidence);
    pupils: tests/duties/test_youth_register.py, moves: tests/duties/test_moves.py."""
    from stafet.duties.deadlines import load_facts
    from stafet.duties.routing import default_rules, route

    for name in (GRUNDSKOLE, UNGEREGISTER, SAMTALER, "779008_haendelser_2026112102.csv"):
        assert not ingest_file(store, net, SAMPLES / name, now=NOW, home=tmp_path).rejected
    new = {"registration", "interview"}
    assert [r.id for r in default_rules() if new & set(r.kinds)] == ["move_handover"]
    with store.session() as s:
        decisions = route(s, net, TODAY)
        facts = load_facts(s)
    assert decisions and facts  # the EASY-A events still route and count
