"""``stafet deadlines`` on the demo network: every rule overdue once and on time once.

The store holds canonical records mirroring the demo sample files
(``stafet/demo_data``) plus a few youths the samples lack, so that each rule has
one overdue item and one due within the week on 24 November 2026. The test
asserts the whole ``--json`` document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import mappings
from stafet.context import Context, open_context
from stafet.core.cpr import parse_cpr
from stafet.core.models import (
    ConcernFlag,
    Dropout,
    EducationOrder,
    EducationPlan,
    Enrolment,
    Provenance,
    Record,
    TransitionCase,
)
from stafet.core.vault import load_secret
from stafet.demo.network import setup_demo
from stafet.duties.deadlines import compute_deadlines, deadlines_summary
from stafet.store.schema import Handover

TODAY = date(2026, 11, 24)  # a Tuesday, three days after the demo exports
PASSPHRASE = "test-passphrase"


def _prov(file: str, row: int) -> Provenance:
    return Provenance("demo", file, row, datetime(2026, 11, 21, 2, tzinfo=UTC), *mappings.origin(file))


def _school(cls: type[Record], cpr: str, inst: str, muni: str, day: date, code: str, name: str,
            file: str, row: int, **kw: Any) -> Record:
    return cls(cpr=parse_cpr(cpr), institution=inst, home_municipality=muni, event_date=day,
               programme_code=code, programme_name=name, provenance=_prov(file, row), **kw)


def _plan(cpr: str, plan_id: str, updated: date, *contacts: str, agreement: date | None = None,
          file: str = "uu_791_planer_20261120.xml", row: int = 1) -> EducationPlan:
    return EducationPlan(cpr=parse_cpr(cpr), plan_id=plan_id, updated=updated, goal_code="1650",
                         contacts=tuple((c, "telefon") for c in contacts), agreement_date=agreement,
                         provenance=_prov(file, row))


EASYA = "779008_haendelser_2026112102.csv"
GYM = "751001_elevhaendelser_202611210200.xml"
JOB = "jobcenter_791_paalaeg_20261121.csv"
FAM = "familie_791_overgange_20261121.csv"
EXTRA = "tests_extra.csv"


def demo_records() -> list[Record]:
    """The demo sample files as canonical records, then the extra youths."""
    return [
        # 779008_haendelser_2026112102.csv (Mercantec, EASY-A)
        _school(Dropout, "120308-4127", "779008", "791", date(2026, 11, 17), "1640", "Tømrer", EASYA, 2,
                reason_code="05", reason_text="Ønsker omvalg; vil være smed"),
        _school(ConcernFlag, "0711094563", "779008", "779", date(2026, 11, 18), "1020", "Frisør", EASYA, 3),
        _school(Enrolment, "230507-5218", "779008", "791", date(2026, 11, 19), "1640", "Tømrer", EASYA, 5),
        _school(Dropout, "150299-1234", "779008", "787", date(2026, 11, 20), "1020", "Frisør", EASYA, 6,
                reason_code="03"),
        # 751001_elevhaendelser_202611210200.xml (Viborg Katedralskole)
        _school(Dropout, "030409-4871", "751001", "791", date(2026, 11, 16), "1199", "STX", GYM, 1,
                reason_code="02"),
        _school(ConcernFlag, "2112084466", "751001", "791", date(2026, 11, 18), "1199", "STX", GYM, 2),
        # jobcenter_791_paalaeg_20261121.csv
        EducationOrder(cpr=parse_cpr("1405024913"), order_id="UP-2026-0113", target_education="Smed",
                       target_institution="779008", deadline=date(2027, 1, 5), mentor_granted=True,
                       status="OPHOERT_UDDANNELSESSTART", status_date=date(2026, 11, 19),
                       provenance=_prov(JOB, 2)),
        EducationOrder(cpr=parse_cpr("0902034120"), order_id="UP-2026-0140", target_education="SOSU-hjælper",
                       deadline=date(2027, 2, 1), mentor_granted=False, status="AKTIV",
                       status_date=date(2026, 11, 2), provenance=_prov(JOB, 3)),
        # uu_791_planer_20261120.xml
        _plan("120308-4127", "UP-77812", date(2026, 11, 20), "2026-11-19", row=1),
        _plan("030409-4871", "UP-77930", date(2026, 11, 20), row=2),
        # familie_791_overgange_20261121.csv
        TransitionCase(cpr=parse_cpr("050609-4410"), case_no="F-2231", meeting_date=date(2026, 3, 14),
                       aftercare_sel76=True, support_sel85=False, receiver="jobcenter",
                       provenance=_prov(FAM, 2)),
        TransitionCase(cpr=parse_cpr("300908-5527"), case_no="F-2240", meeting_date=None,
                       aftercare_sel76=False, support_sel85=True, receiver="socialafdeling",
                       provenance=_prov(FAM, 3)),
        # --- extra youths: one on-time item for the rules the samples leave overdue, and back
        # dropout_contact, on time: the youth flagged on 18 Nov drops out on Friday 20 Nov.
        _school(Dropout, "2112084466", "751001", "791", date(2026, 11, 20), "1199", "STX", EXTRA, 1,
                reason_code="03"),
        # dropout_agreement, overdue: contacted in time, no agreement after 30 days.
        _school(Dropout, "1404104127", "779008", "791", date(2026, 10, 20), "1640", "Tømrer", EXTRA, 2,
                reason_code="04"),
        _plan("1404104127", "UP-78001", date(2026, 10, 22), "2026-10-22", row=3),
        # dropout_agreement, on time: UU Skive's youth, contacted, agreement due 26 Nov.
        _school(Dropout, "0908094563", "779008", "779", date(2026, 10, 27), "1020", "Frisør", EXTRA, 3,
                reason_code="01"),
        _plan("0908094563", "UP-51002", date(2026, 10, 29), "2026-10-29", file="uu_779_planer.xml", row=1),
        # followup_18_24, overdue: 22, dropped out March 2025, one follow-up since.
        _school(Dropout, "1005044218", "779008", "791", date(2025, 3, 1), "1640", "Tømrer", EXTRA, 4,
                reason_code="03"),
        _plan("1005044218", "UP-70010", date(2025, 4, 1), "2025-04-01", row=4),
        # followup_18_24, on time: 21, two follow-ups, the next due 28 Nov.
        _school(Dropout, "1501054871", "751001", "791", date(2024, 6, 20), "1199", "STX", EXTRA, 5,
                reason_code="01"),
        _plan("1501054871", "UP-70020", date(2026, 6, 1), "2025-11-28", "2026-06-01", row=5),
        # transition_meeting, on time: turns 17 on 28 Nov, no meeting date yet.
        TransitionCase(cpr=parse_cpr("2811094410"), case_no="F-2255", meeting_date=None,
                       aftercare_sel76=True, support_sel85=False, receiver="jobcenter",
                       provenance=_prov(FAM, 4)),
    ]


HANDOVERS = [
    # (id, sender, recipient, youth CPR, status, sent_at UTC)
    ("PKG-DEMO-0001", "779008", "uu-viborg", "120308-4127", "sent", datetime(2026, 11, 20, 9, 0)),
    ("PKG-DEMO-0002", "751001", "uu-viborg", "030409-4871", "sent", datetime(2026, 11, 24, 7, 0)),
    ("PKG-DEMO-0003", "779008", "uu-skive", "0711094563", "acknowledged", datetime(2026, 11, 19, 9, 0)),
    ("PKG-DEMO-0004", "751001", "uu-viborg", "2112084466", "held", None),
]


@dataclass
class Demo:
    network: Path
    home: Path
    ctx: Context

    def pseudonym(self, cpr: str) -> str:
        return self.ctx.vault.pseudonym(parse_cpr(cpr).digits)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("deadlines-demo")
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STAFET_KEY_PASSPHRASE", PASSPHRASE)
        mp.setenv("STAFET_HOME", str(home))
        mp.delenv("STAFET_DATABASE_URL", raising=False)
        network = setup_demo(root / "demo", home, drop_samples=False, bits=2048)
        load_secret(home, create=True)
        ctx = open_context(network, home=home, database=f"sqlite:///{home / 'stafet.db'}")
        with ctx.store.session() as s:
            ctx.store.upsert_records(s, demo_records())
            for pid, sender, recipient, cpr, status, sent in HANDOVERS:
                s.add(Handover(id=pid, handover_key=pid, sender=sender, recipient=recipient,
                               youth=ctx.vault.pseudonym(parse_cpr(cpr).digits), status=status,
                               created_at=datetime(2026, 11, 19, 2, 0), sent_at=sent,
                               acknowledged_at=datetime(2026, 11, 19, 12) if status == "acknowledged"
                               else None))
        yield Demo(network, home, ctx)
        ctx.store.engine.dispose()


def _item(demo: Demo, rule: str, status: str, due: str, over: int, left: int, responsible: str, cpr: str,
          reference: str) -> dict[str, Any]:
    return {"rule": rule, "status": status, "due": due, "days_overdue": over, "days_left": left,
            "responsible": responsible, "youth": demo.pseudonym(cpr),
            "masked_cpr": parse_cpr(cpr).masked, "reference": reference, "contact": ""}


def _run(demo: Demo, *args: str) -> Any:
    from stafet.cli.main import app

    result = CliRunner().invoke(app, ["deadlines", "--network", str(demo.network), "--home", str(demo.home),
                                      "--today", TODAY.isoformat(), *args],
                                env={"STAFET_KEY_PASSPHRASE": PASSPHRASE})
    assert result.exit_code == 0, result.output
    return result


FIRST_RULES = ("dropout_contact", "dropout_agreement", "followup_18_24", "transition_meeting", "handover_ack")
"""The duty clock's first five rules; the issue-17 rules are asserted in their own test below."""


def _first(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with only the first five rules' items (and their counts)."""
    items = [i for i in doc["items"] if i["rule"] in FIRST_RULES]
    return doc | {"items": items, "counts": {st: sum(i["status"] == st for i in items)
                                             for st in ("overdue", "due_soon")}}


def test_deadlines_json_for_the_demo(demo: Demo) -> None:
    result = _run(demo, "--json")
    full = json.loads(result.stdout)
    assert full["counts"] == {st: sum(i["status"] == st for i in full["items"]) for st in ("overdue", "due_soon")}  # noqa: E501
    doc = _first(full)
    expected_items = [
        _item(demo, "transition_meeting", "overdue", "2025-09-30", 420, 0, "familie-viborg", "300908-5527",
              "case F-2240, no meeting date"),
        _item(demo, "followup_18_24", "overdue", "2026-03-01", 268, 0, "uu-viborg", "1005044218",
              "not in education since 2025-03-01; 0 follow-up(s) in 12 months"),
        _item(demo, "dropout_agreement", "overdue", "2026-11-19", 5, 0, "uu-viborg", "1404104127",
              "dropout 2026-10-20 at 779008"),
        _item(demo, "handover_ack", "overdue", "2026-11-22", 2, 0, "779008", "120308-4127",
              "package PKG-DEMO-0001 to uu-viborg (sent)"),
        _item(demo, "dropout_contact", "overdue", "2026-11-23", 1, 0, "uu-viborg", "030409-4871",
              "dropout 2026-11-16 at 751001"),
        _item(demo, "dropout_agreement", "due_soon", "2026-11-26", 0, 2, "uu-skive", "0908094563",
              "dropout 2026-10-27 at 779008"),
        _item(demo, "handover_ack", "due_soon", "2026-11-26", 0, 2, "751001", "030409-4871",
              "package PKG-DEMO-0002 to uu-viborg (sent)"),
        _item(demo, "dropout_contact", "due_soon", "2026-11-27", 0, 3, "uu-viborg", "2112084466",
              "dropout 2026-11-20 at 751001"),
        _item(demo, "followup_18_24", "due_soon", "2026-11-28", 0, 4, "uu-viborg", "1501054871",
              "not in education since 2024-06-20; 2 follow-up(s) in 12 months"),
        _item(demo, "transition_meeting", "due_soon", "2026-11-28", 0, 4, "familie-viborg", "2811094410",
              "case F-2255, no meeting date"),
    ]
    assert [(i["rule"], i["status"], i["masked_cpr"]) for i in doc["items"]] == \
        [(i["rule"], i["status"], i["masked_cpr"]) for i in expected_items]
    for got, want in zip(doc["items"], expected_items, strict=True):
        assert got == want
    assert doc == {
        "format": "stafet.deadlines/1",
        "network": "demo-viborg",
        "today": "2026-11-24",
        "window_days": 7,
        "org": None,
        "counts": {"overdue": 5, "due_soon": 5},
        "items": expected_items,
    }
    # Every rule appears once overdue and once on time.
    rules = {(i["rule"], i["status"]) for i in doc["items"]}
    assert rules == {(r, st) for r in ("dropout_contact", "dropout_agreement", "followup_18_24",
                                       "transition_meeting", "handover_ack")
                     for st in ("overdue", "due_soon")}


def test_no_full_cpr_anywhere_in_the_output(demo: Demo) -> None:
    outputs = [_run(demo, "--json").stdout, _run(demo).stdout]
    cprs = {r.cpr.digits for r in demo_records()}
    for out in outputs:
        for digits in cprs:
            assert digits not in out
            assert f"{digits[:6]}-{digits[6:]}" not in out
        assert "-xxxx" in out


def test_the_issue_17_duties_on_the_demo(demo: Demo) -> None:
    """Custody holder, concern flag and the job centre's order: each item, reasoned from the records.

    Custody: every 15–17 dropout with a UU in the network (five working days, like the youth's
    contact; no registered custody contact exists). Concern flags of 18 Nov: three working days
    → Monday 23 Nov. The active order UP-2026-0140 (2 Nov): first interview by 9 Nov, started by
    its frist 1 Feb 2027 (open, so not listed). The 18–24 dropouts were all contacted.
    """
    doc = json.loads(_run(demo, "--json").stdout)
    new = [(i["rule"], i["status"], i["due"], i["responsible"], i["masked_cpr"], i["reference"])
           for i in doc["items"] if i["rule"] not in FIRST_RULES]
    assert sorted(new) == sorted([
        ("dropout_contact_custody", "overdue", "2026-10-27", "uu-viborg", "140410-xxxx", "dropout 2026-10-20 at 779008"),  # noqa: E501
        ("dropout_contact_custody", "overdue", "2026-11-03", "uu-skive", "090809-xxxx", "dropout 2026-10-27 at 779008"),  # noqa: E501
        ("first_interview", "overdue", "2026-11-09", "jobcenter-viborg", "090203-xxxx",
         "order UP-2026-0140 active since 2026-11-02"),
        ("concern_contact", "overdue", "2026-11-23", "uu-viborg", "211208-xxxx", "concern flag 2026-11-18 from 751001"),  # noqa: E501
        ("concern_contact", "overdue", "2026-11-23", "uu-skive", "071109-xxxx", "concern flag 2026-11-18 from 779008"),  # noqa: E501
        ("dropout_contact_custody", "overdue", "2026-11-23", "uu-viborg", "030409-xxxx", "dropout 2026-11-16 at 751001"),  # noqa: E501
        ("dropout_contact_custody", "due_soon", "2026-11-27", "uu-viborg", "211208-xxxx", "dropout 2026-11-20 at 751001"),  # noqa: E501
    ])


def test_org_filter_shows_only_that_organisations_items(demo: Demo) -> None:
    doc = _first(json.loads(_run(demo, "--json", "--org", "uu-skive").stdout))
    assert doc["org"] == "uu-skive"
    assert [(i["rule"], i["masked_cpr"]) for i in doc["items"]] == [("dropout_agreement", "090809-xxxx")]
    assert doc["counts"] == {"overdue": 0, "due_soon": 1}
    doc = _first(json.loads(_run(demo, "--json", "--org", "779008").stdout))
    assert [i["reference"] for i in doc["items"]] == ["package PKG-DEMO-0001 to uu-viborg (sent)"]


def test_unknown_org_and_bad_date_are_refused(demo: Demo) -> None:
    from stafet.cli.main import app

    base = ["deadlines", "--network", str(demo.network), "--home", str(demo.home)]
    r = CliRunner().invoke(app, [*base, "--org", "uu-nowhere"])
    assert r.exit_code == 2 and "unknown organisation" in r.output
    r = CliRunner().invoke(app, [*base, "--today", "24-11-2026"])
    assert r.exit_code == 2 and "YYYY-MM-DD" in r.output


def test_table_output_names_rules_and_counts(demo: Demo) -> None:
    out = _run(demo).stdout
    assert "11 overdue, 6 due within 7 days" in out  # the first five rules' 5 + 5, and the issue-17 ones
    for rule in ("dropout_contact", "dropout_agreement", "followup_18_24", "transition_meeting",
                 "handover_ack"):
        assert rule in out


def test_compute_and_summary_for_the_flow(demo: Demo) -> None:
    every = compute_deadlines(demo.ctx, TODAY)
    items = [i for i in every if i.rule in FIRST_RULES]
    summary = deadlines_summary(items)
    assert (summary["overdue"], summary["due_soon"]) == (5, 5)
    assert {(i.rule, i.status) for i in every if i.rule not in FIRST_RULES and i.status == "open"} == {
        ("order_start", "open")}
    # Open (later) items are computed too: the demo's own dropout youth (18, contacted 19 Nov)
    # and the 15–17 agreements not yet near.
    assert summary["open"] == 3
    assert {(i.rule, i.masked_cpr) for i in items if i.status == "open"} == {
        ("followup_18_24", "120308-xxxx"), ("dropout_agreement", "030409-xxxx"),
        ("dropout_agreement", "211208-xxxx")}
    assert all(isinstance(v, int) for v in summary.values())
    # Judged a week later, the due-soon items have become overdue.
    later = deadlines_summary(compute_deadlines(demo.ctx, date(2026, 12, 1)))
    assert later["due_soon"] == 0 and later["overdue"] >= 10
