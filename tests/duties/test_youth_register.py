"""Grundskole pupils and the youth register: support needs routed, opsporing, the 18–24 group, the ½ year.

Each rule's seed sentence is asserted against the seed texts (``tests/seeds.py``); the
rules are tested as pure functions at their boundaries, then against a real store, the
routing table and the CLI.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from seeds import assert_quoted
from typer.testing import CliRunner

import mappings
from stafet.cli.main import app
from stafet.context import Context
from stafet.core.config import Network
from stafet.core.cpr import parse_cpr
from stafet.core.models import (
    Consent,
    Dropout,
    EducationPlan,
    Enrolment,
    Organisation,
    OrgKind,
    Provenance,
    Pupil,
    Registration,
)
from stafet.core.vault import Vault
from stafet.duties.deadlines import Deadline, classify
from stafet.duties.routing import default_rules, route
from stafet.duties.youth_register import (
    CONTACT_VALID_DAYS,
    PupilFact,
    RegisterFacts,
    Residence,
    list_items,
    not_ready_item,
    opsporing_item,
    opsporing_list,
    register_deadlines,
    target_group_item,
    transition_due,
    transition_start,
)
from stafet.store import Store
from stafet.store.db import utcnow
from stafet.store.schema import ConsentRow

SEED_SUPPORT = "registrerer UUR løbende, hvis den unge har brug for støtte"            # seed 004
SEED_TRANSITIONS = "sikre gode overgange fra grundskole til ungdomsuddannelse"        # seed 000
SEED_HALF_YEAR = "sendes kontakt til UU ½ år før afslutningen af grundskolen"          # seed 002
SEED_DUTY_15_17 = "skal sikre, at 15-17 årige unge overholder deres pligt"             # seed 001
SEED_TARGET_18_24 = ("UU's målgruppe inden for 18-24 årige er unge, som ikke er i gang med en "
                     "ungdomsuddannelse, eller som ikke har afsluttet en ungdomsuddannelse")  # Thy
SEED_READY = "Alle 3 kriterier skal være opfyldt for at eleven kan vurderes"  # seed 001 (then hyphenated)
SEED_CONSENT = ("Efter aftale med forældre/elever kan UUR også tage kontakten til den søgte "
                "uddannelsesinstitution")                                              # seed 004

TODAY = date(2026, 11, 25)   # the sample register extract's day
UU = {"791": "uu-viborg", "779": "uu-skive"}.get


@pytest.mark.parametrize("quote", [SEED_SUPPORT, SEED_TRANSITIONS, SEED_HALF_YEAR, SEED_DUTY_15_17,
                                   SEED_TARGET_18_24, SEED_READY, SEED_CONSENT])
def test_each_quote_is_in_a_seed_document(quote: str) -> None:
    assert_quoted(quote)


def test_the_support_rules_quote_their_seeds_in_danish() -> None:
    rules = {r.id: r for r in default_rules()}
    duty, consent = rules["pupil_support_to_uu"], rules["pupil_support_to_institution"]
    assert (duty.basis, consent.basis) == ("duty", "consent")
    assert SEED_SUPPORT in duty.legal_basis and SEED_TRANSITIONS in duty.legal_basis
    assert SEED_CONSENT in consent.legal_basis
    assert consent.scopes == {"pupil": ("stoettebehov",)}


# --- pure rules -----------------------------------------------------------------------
def _facts(born: date, *, muni: str = "791", moved_in: date = date(2015, 1, 1), moved_out: date | None = None,
           events: tuple[tuple[date, str], ...] = (), contacts: tuple[date, ...] = (),
           agreements: tuple[date, ...] = (), orders: tuple[tuple[date, str], ...] = (),
           pupils: tuple[PupilFact, ...] = (), registered: bool = True) -> RegisterFacts:
    return RegisterFacts("Y1", born, residences=[Residence(muni, moved_in, moved_out)] if registered else [],
                         pupils=list(pupils), events=list(events), contacts=set(contacts),
                         agreements=set(agreements), orders=list(orders))


def _pupil(end: date = date(2027, 6, 25), ready: bool | None = None, assessed: date | None = None,
           updated: date = date(2026, 11, 24), muni: str = "791") -> PupilFact:
    return PupilFact("280012", muni, updated, end, ready, assessed, ("Ordblind",))


@pytest.mark.parametrize(("born", "today", "in_15_17", "in_18_24"), [
    (date(2011, 11, 25), date(2026, 11, 24), False, False),   # the day before the 15th birthday
    (date(2011, 11, 25), date(2026, 11, 25), True, False),    # the 15th birthday
    (date(2008, 11, 25), date(2026, 11, 24), True, False),    # the last day at 17
    (date(2008, 11, 25), date(2026, 11, 25), False, True),    # the 18th birthday
    (date(2001, 11, 25), date(2026, 11, 24), False, True),    # the last day at 24
    (date(2001, 11, 25), date(2026, 11, 25), False, False),   # 25: no longer UU's group
])
def test_the_birthdays_decide_the_group(born: date, today: date, in_15_17: bool, in_18_24: bool) -> None:
    f = _facts(born)
    assert (opsporing_item(f, UU, today) is not None) is in_15_17
    assert (target_group_item(f, UU, today) is not None) is in_18_24


@pytest.mark.parametrize(("moved_in", "moved_out", "listed"), [
    (TODAY, None, True),                         # moved in on the extract day: registered that day
    (TODAY + timedelta(days=1), None, False),    # not yet registered
    (date(2015, 1, 1), TODAY, False),            # moved out on the extract day: the new municipality's
    (date(2015, 1, 1), TODAY + timedelta(days=1), True),
])
def test_the_extract_day(moved_in: date, moved_out: date | None, listed: bool) -> None:
    f = _facts(date(2010, 3, 1), moved_in=moved_in, moved_out=moved_out)
    assert (opsporing_item(f, UU, TODAY) is not None) is listed


def test_a_youth_the_network_has_never_seen_is_listed_first_with_unknown_activity() -> None:
    never = _facts(date(2010, 3, 1))
    dropped = replace(_facts(date(2010, 4, 1), events=((date(2026, 6, 30), "dropout"),)), youth="Y2")
    old = replace(_facts(date(2010, 5, 1), events=((date(2025, 6, 30), "dropout"),)), youth="Y3")
    items = list_items([dropped, never, old], UU, TODAY)
    assert [(i.youth, i.days_since_activity, i.last_activity_kind) for i in items] == [
        ("Y1", None, ""), ("Y3", 513, "dropout"), ("Y2", 148, "dropout")]
    assert items[0].responsible == "uu-viborg" and items[0].municipality == "791" and items[0].age == 16
    assert items[0].as_json()["last_activity"] is None


@pytest.mark.parametrize(("facts", "listed"), [
    (_facts(date(2010, 3, 1), events=((date(2026, 8, 10), "enrolment"),)), False),
    (_facts(date(2010, 3, 1), events=((date(2026, 8, 10), "enrolment"), (date(2026, 10, 1), "dropout"))),
     True),
    (_facts(date(2010, 3, 1), events=((date(2026, 10, 1), "dropout"), (date(2026, 10, 1), "enrolment"))),
     False),   # the same day: in education wins
    (_facts(date(2010, 3, 1), events=((date(2026, 10, 1), "completion"),)), True),
    (_facts(date(2010, 3, 1), events=((TODAY + timedelta(days=3), "enrolment"),)), True),  # not started yet
    (_facts(date(2011, 3, 1), pupils=(_pupil(end=date(2027, 6, 25)),)), False),   # still in grundskole
    (_facts(date(2010, 3, 1), pupils=(_pupil(end=date(2026, 6, 25)),)), True),    # grundskole ended
])
def test_a_youth_in_education_is_not_listed(facts: RegisterFacts, listed: bool) -> None:
    assert (opsporing_item(facts, UU, TODAY) is not None) is listed


DROP = ((date(2026, 10, 1), "dropout"),)


@pytest.mark.parametrize(("facts", "listed"), [
    (_facts(date(2010, 3, 1), events=DROP, contacts=(date(2026, 10, 3),)), False),   # UU contact
    (_facts(date(2010, 3, 1), events=DROP, contacts=(date(2026, 9, 30),)), True),    # before the dropout
    (_facts(date(2010, 3, 1), events=DROP, agreements=(date(2026, 10, 20),)), False),  # an activity
    (_facts(date(2010, 3, 1), events=DROP, agreements=(date(2026, 9, 1),)), True),   # from before
    (_facts(date(2010, 3, 1), contacts=(TODAY - timedelta(days=CONTACT_VALID_DAYS),)), False),
    (_facts(date(2010, 3, 1), contacts=(TODAY - timedelta(days=CONTACT_VALID_DAYS + 1),)), True),
    (_facts(date(2010, 3, 1), events=DROP, contacts=(date(2026, 10, 3),), muni="101"), False),  # no UU
])
def test_an_activity_or_uu_contact_keeps_a_15_17_year_old_off_the_list(facts: RegisterFacts,
                                                                       listed: bool) -> None:
    assert (opsporing_item(facts, UU, TODAY) is not None) is listed


def test_the_last_known_activity_is_the_latest_fact() -> None:
    f = _facts(date(2010, 3, 1), events=DROP, contacts=(date(2026, 5, 1),),
               pupils=(_pupil(end=date(2026, 6, 25)),))
    item = opsporing_item(f, UU, TODAY)
    assert item is not None and (item.last_activity, item.last_activity_kind, item.days_since_activity) == (
        date(2026, 10, 1), "dropout", 55)


@pytest.mark.parametrize(("facts", "listed"), [
    (_facts(date(2005, 1, 1)), True),
    (_facts(date(2005, 1, 1), events=((date(2024, 8, 1), "enrolment"),)), False),
    (_facts(date(2005, 1, 1), events=((date(2024, 8, 1), "enrolment"), (date(2025, 3, 1), "dropout"))), True),
    (_facts(date(2005, 1, 1), events=((date(2024, 6, 20), "completion"),)), False),
    (_facts(date(2005, 1, 1), events=DROP, agreements=(date(2026, 11, 1),)), False),
    (_facts(date(2005, 1, 1), events=DROP, orders=((date(2026, 10, 15), "AKTIV"),)), False),
    (_facts(date(2005, 1, 1), events=DROP, orders=((date(2026, 10, 15), "AKTIV"),
                                                   (date(2026, 11, 1), "OPHOERT"))), True),
    (_facts(date(2005, 1, 1), events=DROP, contacts=(date(2026, 11, 1),)), True),  # followed up, still listed
    (_facts(date(2005, 1, 1), registered=False), False),
])
def test_the_18_24_target_group(facts: RegisterFacts, listed: bool) -> None:
    assert (target_group_item(facts, UU, TODAY) is not None) is listed


@pytest.mark.parametrize(("pupils", "events", "listed"), [
    ((_pupil(ready=False, assessed=date(2026, 11, 20)),), (), True),
    ((_pupil(ready=True, assessed=date(2026, 11, 20)),), (), False),
    ((_pupil(ready=None),), (), False),                                    # not assessed
    ((_pupil(ready=False, assessed=date(2026, 3, 1), updated=date(2026, 3, 2)),
      _pupil(ready=True, assessed=date(2026, 11, 20))), (), False),        # assessed ready since
    ((_pupil(ready=False, assessed=date(2025, 11, 20), end=date(2026, 6, 25)),),
     ((date(2026, 8, 10), "enrolment"),), False),                         # started a youth education
])
def test_a_pupil_not_ready_is_uus_to_follow(pupils: tuple[PupilFact, ...],
                                            events: tuple[tuple[date, str], ...], listed: bool) -> None:
    f = _facts(date(2011, 3, 1), pupils=pupils, events=events, registered=False)
    item = not_ready_item(f, UU, TODAY)
    assert (item is not None) is listed
    if item is not None:  # not registered: the school's municipality decides the UU
        assert (item.group, item.responsible, item.municipality) == ("ikke-parat", "uu-viborg", "791")


def test_a_registered_pupil_belongs_to_the_uu_of_the_home_municipality() -> None:
    f = _facts(date(2011, 3, 1), muni="779", pupils=(_pupil(ready=False, assessed=date(2026, 11, 20)),))
    item = not_ready_item(f, UU, TODAY)
    due = transition_due(f, UU, TODAY)
    assert item is not None and due is not None
    assert (item.responsible, due.responsible) == ("uu-skive", "uu-skive")


@pytest.mark.parametrize(("end", "start"), [
    (date(2027, 6, 25), date(2026, 12, 25)),
    (date(2027, 8, 31), date(2027, 2, 28)),     # no 31 February: the month's last day
    (date(2028, 8, 31), date(2028, 2, 29)),
])
def test_the_transition_starts_half_a_year_before_the_end(end: date, start: date) -> None:
    assert transition_start(end) == start


@pytest.mark.parametrize(("today", "contacts", "status", "days"), [
    (date(2026, 12, 17), (), "open", 8),
    (date(2026, 12, 18), (), "due_soon", 7),
    (date(2026, 12, 25), (), "due_soon", 0),                  # the start: due that day
    (date(2026, 12, 26), (), "overdue", 1),
    (date(2026, 12, 26), (date(2026, 12, 24),), "overdue", 1),  # a contact the day before does not count
    (date(2026, 12, 26), (date(2026, 12, 25),), None, 0),       # a contact on the start meets it
    (date(2027, 6, 25), (), "overdue", 182),                  # the last day of grundskole
    (date(2027, 6, 26), (), None, 0),                          # grundskole has ended: the 15–17 duty's
])
def test_the_half_year_boundary(today: date, contacts: tuple[date, ...], status: str | None,
                                days: int) -> None:
    f = _facts(date(2011, 3, 1), contacts=contacts, pupils=(_pupil(end=date(2027, 6, 25)),))
    due = transition_due(f, UU, today)
    if status is None:
        assert due is None
        return
    assert due is not None and (due.rule, due.due, due.responsible) == (
        "grundskole_transition", date(2026, 12, 25), "uu-viborg")
    item = classify(Deadline(*due), today)
    assert (item.status, item.days_left if status != "overdue" else item.days_overdue) == (status, days)


def test_an_enrolment_after_the_start_ends_the_transition_duty() -> None:
    f = _facts(date(2011, 3, 1), pupils=(_pupil(end=date(2027, 6, 25)),),
               events=((date(2027, 1, 10), "enrolment"),))
    assert transition_due(f, UU, date(2027, 1, 9)) is not None
    assert transition_due(f, UU, date(2027, 1, 10)) is None


# --- a real store ---------------------------------------------------------------------
def _org(oid: str, kind: OrgKind, muni: str, serves: tuple[str, ...] = ()) -> Organisation:
    return Organisation(oid, kind, oid, muni, f"folder:inbox/{oid}", f"{oid}@example.dk", serves=serves)


def _ctx(tmp_path: Path) -> Context:
    vault = Vault(secrets.token_bytes(32))
    members = {o.id: o for o in (_org("uu-viborg", OrgKind.GUIDANCE, "791", ("791",)),
                                 _org("uu-skive", OrgKind.GUIDANCE, "779", ("779",)),
                                 _org("779008", OrgKind.INSTITUTION, "791"),
                                 _org("280012", OrgKind.PRIMARY_SCHOOL, "791"))}
    net = Network("t", tmp_path / "network.yaml", members, (), (), (), ack_limit_hours=24)
    store = Store(f"sqlite:///{tmp_path / 'stafet.db'}", vault)
    return Context(home=tmp_path, vault=vault, store=store, network=net, keys=None)  # type: ignore[arg-type]


def _prov(file: str) -> Provenance:
    return Provenance("t", file, 1, datetime(2026, 11, 25, tzinfo=UTC), *mappings.origin(file))


REGISTER = "cpr_791_unge_20261125.csv"
GRUNDSKOLE = "grundskole_280012_elever_20261125.xml"


def _registration(c: str, muni: str = "791", moved_out: date | None = None,
                  moved_in: date = date(2020, 2, 1)) -> Registration:
    return Registration(cpr=parse_cpr(c), municipality=muni, moved_in=moved_in, moved_out=moved_out,
                        custody_holder=True, provenance=_prov(f"cpr_{muni}_unge_20261125.csv"))


def _pupil_record(c: str, needs: tuple[tuple[str, str], ...] = (("Ordblind", ""),), applied: str = "779008",
                  ready: bool | None = False) -> Pupil:
    return Pupil(cpr=parse_cpr(c), school="280012", municipality="791", updated=date(2026, 11, 24), grade=9,
                 expected_end=date(2027, 6, 25), readiness_assessed=date(2026, 11, 20) if ready is not None
                 else None, ready=ready, support_needs=needs, application_institution=applied,
                 provenance=_prov(GRUNDSKOLE))


def _school(cls: type, c: str, day: date, **kw: object) -> object:
    return cls(cpr=parse_cpr(c), institution="779008", home_municipality="791", event_date=day,
               programme_code="1640", provenance=_prov("779008_haendelser_2026112102.csv"), **kw)


SIXTEEN = "2811104398"      # 16: registered in 791, nothing else known
ENROLLED = "0304104563"     # 16: registered, in education at Mercantec
DROPPED = "1505094511"      # 17: registered, dropped out, then a plan without contact since
NINETEEN = "0102074455"     # 19: registered, dropped out: the 18–24 group
SKIVE = "0606104499"        # 16: moved from 791 to 779 before today: UU Skive's
PUPIL = "150311-4062"       # 15: in grundskole, not ready, with support needs


def _fill(ctx: Context) -> None:
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [
            _registration(SIXTEEN), _registration(ENROLLED), _registration(DROPPED), _registration(NINETEEN),
            _registration(SKIVE, moved_out=date(2026, 9, 1)),
            _registration(SKIVE, "779", moved_in=date(2026, 9, 1)),
            _registration(PUPIL), _pupil_record(PUPIL),
            _school(Enrolment, ENROLLED, date(2026, 8, 10)),
            _school(Dropout, DROPPED, date(2026, 10, 1), reason_code="03"),
            _school(Dropout, NINETEEN, date(2026, 3, 1), reason_code="03"),
            EducationPlan(cpr=parse_cpr(DROPPED), plan_id="UP-1", updated=date(2026, 9, 1), goal_code="5180",
                          contacts=(("2026-09-01", "samtale"),),
                          provenance=_prov("uu_791_planer_20261120.xml")),
        ])


def test_opsporing_from_the_store_with_masked_cprs(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    _fill(ctx)
    items = opsporing_list(ctx, TODAY)
    got = {i.masked_cpr: (i.responsible, i.days_since_activity) for i in items}
    assert got == {"281110-xxxx": ("uu-viborg", None), "150509-xxxx": ("uu-viborg", 55),
                   "060610-xxxx": ("uu-skive", None)}
    assert [i.masked_cpr for i in opsporing_list(ctx, TODAY, org="uu-skive")] == ["060610-xxxx"]
    assert [i.masked_cpr for i in opsporing_list(ctx, TODAY, group="18-24")] == ["010207-xxxx"]
    assert [i.masked_cpr for i in opsporing_list(ctx, TODAY, group="ikke-parat")] == ["150311-xxxx"]
    for i in items:
        assert not any(c.replace("-", "") in repr(i) + str(i.as_json())
                       for c in (SIXTEEN, DROPPED, SKIVE))


def test_the_transition_deadline_from_the_store_fits_the_duty_clock(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    _fill(ctx)
    with ctx.store.session() as s:
        [due] = register_deadlines(s, ctx.network, TODAY)
    item = classify(Deadline(*due), TODAY)
    assert (item.rule, item.responsible, item.due, item.status, item.days_left) == (
        "grundskole_transition", "uu-viborg", date(2026, 12, 25), "open", 30)
    assert item.reference == "grundskole ends 2027-06-25 (school 280012)"


# --- routing support needs ------------------------------------------------------------
def _consent(ctx: Context, c: str, scopes: tuple[str, ...],
             recipients: tuple[str, ...] = ("779008",)) -> None:
    con = Consent(cpr=parse_cpr(c), ref="S-1", signed_by="foraelder", signed_date=TODAY - timedelta(days=5),
                  valid_from=TODAY - timedelta(days=5), valid_to=TODAY + timedelta(days=300),
                  recipients=recipients, scopes=scopes)
    with ctx.store.session() as s:
        y = ctx.store.ensure_youths(s, [con.cpr])[con.cpr.digits]
        s.add(ConsentRow(ref="S-1", youth=y, payload=con.payload(), withdrawn_date=None, updated_at=utcnow()))


def _decisions(ctx: Context) -> dict[str, tuple[str, str, str, str]]:
    with ctx.store.session() as s:
        return {d.rule: (d.sender, d.recipient, d.status, d.reason) for d in route(s, ctx.network, TODAY)
                if d.rule.startswith("pupil_")}


def test_support_needs_go_to_uu_by_duty_and_to_the_institution_only_with_consent(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_pupil_record(PUPIL)])
    assert _decisions(ctx) == {
        "pupil_support_to_uu": ("280012", "uu-viborg", "send", ""),
        "pupil_support_to_institution": ("280012", "779008", "held", "ingen samtykke")}
    _consent(ctx, PUPIL, ("stoettebehov",))
    assert _decisions(ctx) == {
        "pupil_support_to_uu": ("280012", "uu-viborg", "send", ""),
        "pupil_support_to_institution": ("280012", "779008", "send", "")}


@pytest.mark.parametrize(("scopes", "recipients", "reason"), [
    (("uddannelsesplan",), ("779008",), "samtykke dækker ikke støttebehov"),
    (("stoettebehov",), ("751001",), "samtykke dækker ikke modtageren 779008"),
])
def test_a_consent_without_support_needs_or_for_another_recipient_holds_the_institutions_copy(
        tmp_path: Path, scopes: tuple[str, ...], recipients: tuple[str, ...], reason: str) -> None:
    ctx = _ctx(tmp_path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_pupil_record(PUPIL)])
    _consent(ctx, PUPIL, scopes, recipients)
    assert _decisions(ctx) == {"pupil_support_to_uu": ("280012", "uu-viborg", "send", ""),
                               "pupil_support_to_institution": ("280012", "779008", "held", reason)}


def test_a_pupil_without_support_needs_is_not_routed(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_pupil_record(PUPIL, needs=()), _pupil_record(SIXTEEN, applied="")])
    assert _decisions(ctx) == {"pupil_support_to_uu": ("280012", "uu-viborg", "send", "")}


# --- the CLI ----------------------------------------------------------------------------
def test_stafet_opsporing_lists_uu_viborgs_16_year_old(demo_net) -> None:
    path, ctx = demo_net
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_registration(SIXTEEN), _registration(ENROLLED),
                                     _school(Enrolment, ENROLLED, date(2026, 8, 10)),
                                     _registration(NINETEEN)])
    runner = CliRunner()
    r = runner.invoke(app, ["opsporing", "--network", path, "--json", "--today", TODAY.isoformat(),
                            "--org", "uu-viborg"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert (doc["format"], doc["group"], doc["count"]) == ("stafet.opsporing/1", "15-17", 1)
    assert doc["items"][0]["masked_cpr"] == "281110-xxxx" and doc["items"][0]["days_since_activity"] is None
    r = runner.invoke(app, ["opsporing", "--network", path, "--group", "18-24", "--today", TODAY.isoformat()])
    assert r.exit_code == 0, r.output
    assert "010207-xxxx" in r.output and "ukendt" in r.output and NINETEEN not in r.output
    r = runner.invoke(app, ["opsporing", "--network", path, "--group", "19-29"])
    assert r.exit_code != 0
    r = runner.invoke(app, ["opsporing", "--network", path, "--org", "nobody"])
    assert r.exit_code == 2
