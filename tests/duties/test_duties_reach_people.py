"""Duties reach people (issue 17): the new rules, notices and escalation, acknowledgement, resends.

Each rule quotes the seed sentence it comes from; the quote is asserted against the seed text.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from stafet import night
from stafet.core.cpr import parse_cpr
from stafet.core.errors import ConfigError, DataError
from stafet.core.models import ConcernFlag, Dropout, EducationOrder, Enrolment, Interview, Provenance
from stafet.demo.network import member_home, setup_demo
from stafet.duties.deadlines import (
    CaseFact,
    Deadline,
    FlagFact,
    OrderFact,
    SchoolFact,
    YouthFacts,
    add_working_days,
    anniversary,
    concern_deadlines,
    dropout_deadlines,
    duty_settings,
    first_contact_deadlines,
    order_deadlines,
    transition_deadlines,
)
from stafet.duties.notices import duty_key, plan_notices
from stafet.store.schema import AuditEntry, Handover, NoticeRow
from tests.seeds import assert_quoted

SEED_CONCERN = "Når UU modtager bekymringsmærke, kontakter UU relevant studievejleder"
SEED_INTERVIEW = "De unge får 1. samtale inden 7 dage med deres sagsbehandler"
SEED_SEL76 = "Unge som bevilges efterværn jf. SEL § 76 skal ikke på overleveringsmøder"
SEED_FIRST_CONTACT = "UU kontakter den unge og tilbyder en vejledningssamtale"
SEED_CUSTODY = "UU skal inden for 5 arbejdsdag kontakte den unge og forældremyndigheden"
SEED_LATE = "Ofte kommer meldinger fra Ungdomsuddannelserne for sent"
SEED_HANDOVER = "Vi slipper ikke de unge, før en anden tager over."


@pytest.mark.parametrize(
    "quote",
    [SEED_CONCERN, SEED_INTERVIEW, SEED_SEL76, SEED_FIRST_CONTACT, SEED_CUSTODY, SEED_LATE, SEED_HANDOVER],
)
def test_each_quote_is_in_a_seed_document(quote: str) -> None:
    assert_quoted(quote)


def test_every_duty_names_its_basis_in_rules_yaml() -> None:
    from stafet.duties.deadlines import RULES

    settings = duty_settings()
    assert set(settings.basis) == set(RULES)
    assert all(settings.basis[r] for r in RULES)
    for rule, quote in (
        ("concern_contact", SEED_CONCERN),
        ("first_interview", SEED_INTERVIEW),
        ("dropout_first_contact", SEED_FIRST_CONTACT),
    ):
        assert quote in settings.basis[rule]


def test_a_bad_duties_section_is_refused_with_its_key() -> None:
    with pytest.raises(ConfigError, match=r"duties\.rules\.nonsense: unknown duty"):
        duty_settings("duties:\n  rules:\n    nonsense: {basis: x}\n")
    with pytest.raises(ConfigError, match=r"escalate\.coordinator"):
        duty_settings("duties:\n  rules:\n    dropout_contact: {basis: x, escalate: {coordinator: 0}}\n")


UU = {"791": "uu-viborg", "779": "uu-skive"}.get
JC = {"791": "jobcenter-viborg"}.get


# --- early warning: the concern flag's clock and absence ---------------------------------------
def _flagged(*flags: FlagFact, absences: tuple[FlagFact, ...] = (), registered=(), events=()) -> YouthFacts:
    return YouthFacts(
        "Y1",
        date(2009, 5, 1),
        flags=list(flags),
        absences=list(absences),
        registered=set(registered),
        events=list(events),
    )


def test_a_concern_flag_starts_uus_clock_of_three_working_days_across_a_holiday() -> None:
    # SEED_CONCERN. Flag on Wednesday 1 April 2026: Maundy Thursday, Good Friday and Easter Monday skip.
    f = _flagged(FlagFact(date(2026, 4, 1), "779008", "791", "Lis <lis@mercantec.dk>"))
    [item] = concern_deadlines(f, UU, date(2026, 4, 2), working_days=3, absence_threshold=10, max_age_days=92)
    assert (item.rule, item.responsible, item.due) == ("concern_contact", "uu-viborg", date(2026, 4, 9))
    assert item.contact == "Lis <lis@mercantec.dk>"  # the school's counsellor: whom UU must contact


def test_the_concern_clock_is_met_by_a_registered_contact_with_the_school_counsellor() -> None:
    flag = FlagFact(date(2026, 11, 18), "779008", "791")
    youth_contact = _flagged(flag, registered=[(date(2026, 11, 19), "uu-viborg", "youth")])
    assert [
        i.rule
        for i in concern_deadlines(
            youth_contact, UU, date(2026, 11, 24), working_days=3, absence_threshold=10, max_age_days=92
        )
    ] == ["concern_contact"]
    other_org = _flagged(flag, registered=[(date(2026, 11, 19), "uu-skive", "school_counsellor")])
    assert concern_deadlines(
        other_org, UU, date(2026, 11, 24), working_days=3, absence_threshold=10, max_age_days=92
    )
    met = _flagged(flag, registered=[(date(2026, 11, 19), "uu-viborg", "school_counsellor")])
    assert (
        concern_deadlines(met, UU, date(2026, 11, 24), working_days=3, absence_threshold=10, max_age_days=92)
        == []
    )


def test_an_expired_flag_and_a_youth_of_25_start_no_clock() -> None:
    old = _flagged(FlagFact(date(2026, 8, 1), "779008", "791"))
    assert (
        concern_deadlines(old, UU, date(2026, 11, 24), working_days=3, absence_threshold=10, max_age_days=92)
        == []
    )
    f = YouthFacts("Y1", date(2001, 11, 18), flags=[FlagFact(date(2026, 11, 18), "779008", "791")])
    assert (
        concern_deadlines(f, UU, date(2026, 11, 24), working_days=3, absence_threshold=10, max_age_days=92)
        == []
    )  # 25 on the flag's day


@pytest.mark.parametrize(
    ("pct", "flag", "expected"),
    [
        (9.9, False, []),
        (10.0, False, ["absence_concern"]),
        (32.5, False, ["absence_concern"]),
        (32.5, True, ["concern_contact"]),  # the school sent a flag: that clock, not a second one
    ],
)
def test_absence_over_the_threshold_raises_a_concern_of_its_own(
    pct: float, flag: bool, expected: list[str]
) -> None:
    day = date(2026, 11, 16)
    absences = (FlagFact(day, "779008", "791", "", pct),)
    flags = (FlagFact(day, "779008", "791"),) if flag else ()
    f = _flagged(*flags, absences=absences, events=[SchoolFact("enrolment", day, "779008", "791")])
    items = concern_deadlines(
        f, UU, date(2026, 11, 24), working_days=3, absence_threshold=10, max_age_days=92
    )
    assert [i.rule for i in items] == expected


def test_absence_at_a_school_the_youth_left_raises_nothing() -> None:
    day = date(2026, 11, 16)
    f = _flagged(
        absences=(FlagFact(day, "779008", "791", "", 40.0),),
        events=[
            SchoolFact("enrolment", day, "779008", "791"),
            SchoolFact("dropout", date(2026, 11, 20), "779008", "791"),
        ],
    )
    assert (
        concern_deadlines(f, UU, date(2026, 11, 24), working_days=3, absence_threshold=10, max_age_days=92)
        == []
    )


# --- the job-centre loop --------------------------------------------------------------------
def _order(
    status: str = "AKTIV",
    day: date = date(2026, 11, 2),
    frist: date | None = date(2027, 2, 1),
    muni: str = "791",
) -> OrderFact:
    return OrderFact("UP-1", status, day, frist, muni, "Per <per@jobcenter.dk>")


def test_the_first_interview_is_due_within_7_days_of_the_order() -> None:
    # SEED_INTERVIEW
    f = YouthFacts("Y1", date(2003, 1, 1), order_facts=[_order()])
    items = {i.rule: i for i in order_deadlines(f, JC, date(2026, 11, 24))}
    assert items["first_interview"].due == date(2026, 11, 9)
    assert items["first_interview"].contact == "Per <per@jobcenter.dk>"
    assert items["order_start"].due == date(2027, 2, 1)
    assert {i.responsible for i in items.values()} == {"jobcenter-viborg"}
    held = YouthFacts("Y1", date(2003, 1, 1), order_facts=[_order()], interviews={date(2026, 11, 6)})
    assert [i.rule for i in order_deadlines(held, JC, date(2026, 11, 24))] == ["order_start"]
    before = YouthFacts("Y1", date(2003, 1, 1), order_facts=[_order()], interviews={date(2026, 10, 30)})
    assert "first_interview" in {i.rule for i in order_deadlines(before, JC, date(2026, 11, 24))}


def test_the_orders_frist_is_met_by_an_enrolment_and_a_closed_order_has_no_duty() -> None:
    started = YouthFacts(
        "Y1",
        date(2003, 1, 1),
        order_facts=[_order()],
        interviews={date(2026, 11, 3)},
        events=[SchoolFact("enrolment", date(2026, 12, 1), "779008", "791")],
    )
    assert order_deadlines(started, JC, date(2026, 12, 2)) == []
    closed = YouthFacts(
        "Y1", date(2003, 1, 1), order_facts=[_order(), _order("OPHOERT_UDDANNELSESSTART", date(2026, 11, 20))]
    )
    assert order_deadlines(closed, JC, date(2026, 12, 2)) == []
    elsewhere = YouthFacts("Y1", date(2003, 1, 1), order_facts=[_order(muni="787")])
    assert order_deadlines(elsewhere, JC, date(2026, 12, 2)) == []  # no job centre of that municipality


# --- rules the seeds state --------------------------------------------------------------------
def test_aftercare_under_sel_76_alone_needs_no_transition_meeting() -> None:
    # SEED_SEL76
    fam = lambda c: "familie-viborg"  # noqa: E731
    aftercare = CaseFact("F-1", None, aftercare_sel76=True, support_sel85=False, receiver="")
    support = CaseFact("F-2", None, aftercare_sel76=True, support_sel85=True, receiver="")
    f = YouthFacts("Y1", date(2010, 1, 1), cases=[aftercare, support])
    assert [i.reference for i in transition_deadlines(f, fam, date(2026, 11, 24))] == [
        "case F-2, no meeting date"
    ]


@pytest.mark.parametrize(
    ("born", "expected"),
    [
        (date(2008, 11, 16), ["dropout_first_contact"]),  # 18 on the dropout day
        (date(2008, 11, 17), []),  # 17: the 15–17 rules hold instead
        (date(2001, 11, 17), ["dropout_first_contact"]),  # 24 years 364 days
        (date(2001, 11, 16), []),  # 25 on the dropout day
    ],
)
def test_the_18_to_24_first_contact_is_a_clock_from_the_dropout(born: date, expected: list[str]) -> None:
    # SEED_FIRST_CONTACT: ten working days (rules.yaml), not the yearly follow-up
    f = YouthFacts("Y1", born, events=[SchoolFact("dropout", date(2026, 11, 16), "779008", "791")])
    items = first_contact_deadlines(f, UU, date(2026, 11, 16), working_days=10)
    assert [i.rule for i in items] == expected
    if items:
        assert items[0].due == add_working_days(date(2026, 11, 16), 10) == date(2026, 11, 30)
        # the duty lapses on the 25th birthday (the group is 18–24)
        assert first_contact_deadlines(f, UU, anniversary(born, 25), working_days=10) == []


def test_under_18_the_custody_holder_must_be_reached_too() -> None:
    # SEED_CUSTODY: "kontakte den unge og forældremyndigheden"
    f = YouthFacts(
        "Y1",
        date(2010, 6, 1),
        events=[SchoolFact("dropout", date(2026, 3, 30), "779008", "791")],
        contacts={date(2026, 4, 1)},
    )
    assert [i.rule for i in dropout_deadlines(f, UU)] == ["dropout_contact_custody", "dropout_agreement"]
    f.registered.add((date(2026, 4, 2), "uu-viborg", "custody_holder"))
    assert [i.rule for i in dropout_deadlines(f, UU)] == ["dropout_agreement"]


# --- notices and escalation (pure) ----------------------------------------------------------
@pytest.fixture(scope="module")
def demo_network(tmp_path_factory: pytest.TempPathFactory):
    from stafet.core.config import load_network

    root = tmp_path_factory.mktemp("notices")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")
        path = setup_demo(root / "demo", root / "home", drop_samples=False, bits=2048)
    return load_network(path)


def _overdue(rule: str = "dropout_contact", due: date = date(2026, 11, 23), contact: str = "") -> Deadline:
    return Deadline(
        rule,
        "a" * 32,
        "uu-viborg",
        due,
        "dropout 2026-11-16 at 751001",
        status="overdue",
        days_overdue=1,
        masked_cpr="030409-xxxx",
        contact=contact,
    )


def test_the_first_notice_goes_to_the_named_person_else_the_duty_address(demo_network) -> None:
    settings = duty_settings()
    [p] = plan_notices(
        [_overdue(contact="Anna <anna@uu-viborg.dk>")], {}, settings, demo_network, date(2026, 11, 24)
    )
    assert (p.step, p.recipient, p.addressee, p.since) == (
        "notice",
        "uu-viborg",
        "Anna <anna@uu-viborg.dk>",
        date(2026, 11, 24),
    )
    [p] = plan_notices([_overdue()], {}, settings, demo_network, date(2026, 11, 24))
    assert p.addressee == demo_network.members["uu-viborg"].duty_address != ""
    not_yet = Deadline("dropout_contact", "a" * 32, "uu-viborg", date(2026, 11, 30), "x", status="due_soon")
    assert plan_notices([not_yet], {}, settings, demo_network, date(2026, 11, 24)) == []


def test_escalation_comes_exactly_after_n_working_days(demo_network) -> None:
    settings = duty_settings()
    n = settings.escalate["dropout_contact"]["coordinator"]
    m = settings.escalate["dropout_contact"]["management"]
    item = _overdue(due=date(2026, 12, 18))
    key = duty_key(item)
    noticed = date(2026, 12, 21)  # a Monday; 24–26 December: Christmas Eve counts, the holidays do not
    sent = {(key, "notice"): noticed}
    on = add_working_days(noticed, n)
    assert plan_notices(
        [item], sent, settings, demo_network, on - timedelta(days=1)
    ) == [] or add_working_days(noticed, n - 1) >= on - timedelta(days=1)
    assert plan_notices([item], sent, settings, demo_network, add_working_days(noticed, n - 1)) == []
    [p] = plan_notices([item], sent, settings, demo_network, on)
    assert (p.step, p.recipient) == ("coordinator", "koordinator")
    sent[(key, "coordinator")] = on
    assert plan_notices([item], sent, settings, demo_network, add_working_days(on, m - 1)) == []
    [p] = plan_notices([item], sent, settings, demo_network, add_working_days(on, m))
    assert (p.step, p.recipient, p.addressee) == (
        "management",
        "uu-viborg",
        demo_network.members["uu-viborg"].management_address,
    )
    sent[(key, "management")] = add_working_days(on, m)
    assert plan_notices([item], sent, settings, demo_network, date(2027, 6, 1)) == []  # three steps, no more


def test_a_duty_keeps_its_key_while_its_status_text_changes() -> None:
    a = Deadline(
        "handover_ack", "a" * 32, "779008", date(2026, 11, 22), "package PKG-1 to uu-viborg (pending)"
    )
    b = Deadline("handover_ack", "a" * 32, "779008", date(2026, 11, 22), "package PKG-1 to uu-viborg (sent)")
    c = Deadline("handover_ack", "a" * 32, "779008", date(2026, 11, 22), "package PKG-2 to uu-viborg (sent)")
    assert duty_key(a) == duty_key(b) != duty_key(c)
    assert all(ch in "0123456789abcdef" for ch in duty_key(a))


# --- the whole chain on the demo network ------------------------------------------------------
def _event(cls, cpr, muni, inst="751001", day=date(2026, 11, 16), **kw):
    return cls(
        cpr=parse_cpr(cpr),
        institution=inst,
        home_municipality=muni,
        first_name="Test",
        last_name="Ung",
        event_date=day,
        programme_code="1199",
        programme_name="STX",
        provenance=Provenance("test", "t.csv", 2, datetime.now(UTC)),
        **kw,
    )


@pytest.fixture
def network(demo_relay):
    """The demo network on a fresh copy (tests/conftest.py's ``demo_relay``)."""
    path, home, folder = demo_relay
    return path, home, folder


def _open(ctx, org: str, eml: bytes):
    from stafet.exchange.endpoints import trust_store
    from stafet.packages.package import open_package

    return open_package(
        eml,
        org_id=org,
        keys=ctx.keys.decryption_keys(org),
        trust=trust_store(ctx),
        members=ctx.network.members,
    )


def test_an_overdue_dropout_contact_is_told_once_then_escalated(network) -> None:
    from stafet.exchange.notices import send_notices

    path, _home, demo = network
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_event(Dropout, "030409-4871", "791", reason_code="02")])
    today = date(2026, 11, 24)  # the contact was due Monday 23 November
    counts = send_notices(ctx, today)
    assert counts["notice"] >= 1 and counts["failed"] == 0
    assert send_notices(ctx, today)["notice"] == 0  # however often the night runs
    assert send_notices(ctx, today + timedelta(days=1))["notice"] == 0
    inbox = demo / "inbox" / "uu-viborg"
    emls = sorted(inbox.glob("*.eml"))
    assert {_open(ctx, "uu-viborg", p.read_bytes()).document.rule for p in emls} == {
        "dropout_contact",
        "dropout_contact_custody",
    }  # one notice per duty
    [data] = [
        p.read_bytes()
        for p in emls
        if _open(ctx, "uu-viborg", p.read_bytes()).document.rule == "dropout_contact"
    ]
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert "030409" not in head and "4871" not in head and "Test Ung" not in head
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert str(msg["Subject"]).startswith("Påmindelse om pligt fra Netværkskoordinator Viborg PKG-")
    assert "koordinator" in str(msg["From"])
    opened = _open(ctx, "uu-viborg", data)
    n = opened.document
    assert (n.step, n.rule, n.masked_cpr, n.due) == ("notice", "dropout_contact", "030409-xxxx", "2026-11-23")
    assert "0304094871" not in str(n.to_json())
    with ctx.store.session() as s:
        rows = s.scalars(select(NoticeRow).where(NoticeRow.rule == "dropout_contact")).all()
        assert [(r.step, r.status, r.recipient) for r in rows] == [("notice", "sent", "uu-viborg")]
        audited = s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("duty.%"))).all()
    assert "duty.notice" in audited
    # N working days on, still open: the coordinator is told, once.
    n_days = duty_settings().escalate["dropout_contact"]["coordinator"]
    later = add_working_days(today, n_days)
    assert send_notices(ctx, add_working_days(today, n_days - 1))["coordinator"] == 0
    assert send_notices(ctx, later)["coordinator"] >= 1
    assert send_notices(ctx, later)["coordinator"] == 0
    [up] = [
        p
        for p in (demo / "inbox" / "koordinator").glob("*.eml")
        if _open(ctx, "koordinator", p.read_bytes()).document.rule == "dropout_contact"
    ]
    assert _open(ctx, "koordinator", up.read_bytes()).document.step == "coordinator"


def test_a_registered_contact_closes_the_duty_and_no_notice_follows(network) -> None:
    from stafet.duties.contacts import register_contact
    from stafet.duties.deadlines import compute_deadlines
    from stafet.exchange.notices import send_notices

    path, _home, _demo = network
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_event(Dropout, "030409-4871", "791", reason_code="02")])
    youth = ctx.vault.pseudonym(parse_cpr("030409-4871").digits)
    today = date(2026, 11, 24)
    for party in ("youth", "custody_holder"):
        register_contact(
            ctx,
            youth=youth,
            day=date(2026, 11, 20),
            form="telefon",
            party=party,
            note="ringede 030409-4871",
            by="anna",
            org="uu-viborg",
            today=today,
        )
    rules = {i.rule for i in compute_deadlines(ctx, today) if i.youth == youth}
    assert not rules & {"dropout_contact", "dropout_contact_custody"}
    send_notices(ctx, today)
    with ctx.store.session() as s:
        assert not s.scalars(select(NoticeRow).where(NoticeRow.rule.like("dropout_contact%"))).all()
        from stafet.store import contacts

        [c, _] = contacts.of_youth(s, youth)
        assert "030409-4871" not in c.note  # a CPR in the note is masked before it is kept
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "contact.registered")).all()
    with pytest.raises(DataError, match="future"):
        register_contact(
            ctx,
            youth=youth,
            day=today + timedelta(days=1),
            form="telefon",
            by="a",
            org="uu-viborg",
            today=today,
        )
    with pytest.raises(DataError, match="unknown organisation"):
        register_contact(ctx, youth=youth, day=today, form="telefon", by="a", org="uu-nowhere", today=today)
    with pytest.raises(DataError, match="unknown form"):
        register_contact(ctx, youth=youth, day=today, form="brevdue", by="a", org="uu-viborg", today=today)
    with pytest.raises(DataError, match="no such youth"):
        register_contact(ctx, youth="f" * 32, day=today, form="telefon", by="a", org="uu-viborg", today=today)


def _person_mode(path: str, org: str) -> None:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    head, _, body = text.partition("network:")
    data = yaml.safe_load("network:" + body)
    for m in data["members"]:
        if m["id"] == org:
            m["acknowledge"] = "person"
    p.write_text(head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    night.context.cache_clear()


def test_a_person_acknowledges_and_only_then_is_the_handover_done(network) -> None:
    from stafet.exchange.acknowledge import acknowledge_package, awaiting

    path, _home, _demo = network
    _person_mode(path, "uu-viborg")
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_event(Dropout, "120308-4127", "791", inst="779008", reason_code="05")])
    night.route(path)
    assert night.send(path, ["uu-viborg"])["sent"] == 1
    r = night.receive(path, "uu-viborg")
    assert (r["imported"], r["receipts_sent"], r["awaiting_acknowledgement"]) == (1, 0, 1)
    assert night.receive(path, "779008")["acknowledged"] == 0
    assert night.outbox_counts(path) == {"sent": 1}
    [waiting] = awaiting(ctx, "uu-viborg")
    with pytest.raises(ConfigError, match="no package"):
        acknowledge_package(ctx, org="uu-skive", package_id=waiting["package_id"], by="eva")  # not hers
    done = acknowledge_package(ctx, org="uu-viborg", package_id=waiting["package_id"], by="anna")
    assert done.sender == "779008"
    with pytest.raises(ConfigError, match="already"):
        acknowledge_package(ctx, org="uu-viborg", package_id=waiting["package_id"], by="anna")
    assert night.receive(path, "779008")["acknowledged"] == 1
    assert night.outbox_counts(path) == {"acknowledged": 1}
    with ctx.store.session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "package.acknowledged")).one()
        assert entry.actor == "anna"


def test_a_package_read_in_a_mail_client_is_acknowledged_from_its_file(network, tmp_path) -> None:
    from stafet.exchange.acknowledge import acknowledge_file

    path, _home, demo = network
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_event(Dropout, "120308-4127", "791", inst="779008", reason_code="05")])
    night.route(path)
    night.send(path, ["uu-viborg"])
    [eml] = list((demo / "inbox" / "uu-viborg").glob("*.eml"))
    saved = tmp_path / "fra-mail.eml"
    saved.write_bytes(eml.read_bytes())
    eml.unlink()  # read in the mail client: no stafet inbox pass
    done = acknowledge_file(ctx, org="uu-viborg", path=saved, by="anna")
    assert done.disposition == "read"
    assert night.receive(path, "779008")["acknowledged"] == 1
    assert night.outbox_counts(path) == {"acknowledged": 1}
    tampered = tmp_path / "tampered.eml"
    tampered.write_bytes(saved.read_bytes()[:-200] + b"A" * 200)
    from stafet.core.errors import PackageRejected

    with pytest.raises(PackageRejected):
        acknowledge_file(ctx, org="uu-viborg", path=tampered, by="anna")


def test_an_unacknowledged_handover_is_resent_as_a_duplicate_then_escalated(network) -> None:
    from stafet.exchange.notices import send_notices
    from stafet.exchange.outbox import resend_unacknowledged

    path, _home, _demo = network
    _person_mode(path, "uu-viborg")  # nobody acknowledges: the package waits
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_event(Dropout, "120308-4127", "791", inst="779008", reason_code="05")])
    night.route(path)
    night.send(path, ["uu-viborg"])
    night.receive(path, "uu-viborg")
    limit = timedelta(hours=ctx.network.ack_limit_hours)
    now = datetime.now(UTC).replace(tzinfo=None)
    attempts = duty_settings().resend_attempts
    assert resend_unacknowledged(ctx, max_resends=attempts, now=now)["resent"] == 0  # not overdue yet
    for _ in range(attempts):
        with ctx.store.session() as s:  # the clock: the last send was longer ago than the limit
            h = s.scalars(select(Handover)).one()
            h.sent_at = now - limit - timedelta(minutes=1)
        assert resend_unacknowledged(ctx, max_resends=attempts, now=now)["resent"] == 1
        r = night.receive(path, "uu-viborg")
        assert (r["imported"], r["duplicates"], r["rejected"]) == (0, 1, 0)  # counted as duplicate delivery
    with ctx.store.session() as s:
        h = s.scalars(select(Handover)).one()
        assert (h.resends, h.status) == (attempts, "sent")
        h.sent_at = now - limit - timedelta(days=3)
        due_day = (h.sent_at + limit).date()
        resent_entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "handover.resent")).all()
    assert len(resent_entries) == attempts
    assert resend_unacknowledged(ctx, max_resends=attempts, now=now)["resent"] == 0  # bounded
    told = send_notices(ctx, due_day + timedelta(days=2))
    assert told["notice"] >= 1
    with ctx.store.session() as s:
        [row] = s.scalars(select(NoticeRow).where(NoticeRow.rule == "handover_ack")).all()
        assert (row.step, row.recipient) == ("notice", "779008")


def test_a_dropout_of_a_youth_with_an_active_order_also_reaches_the_job_centre(network) -> None:
    from stafet.duties.routing import route

    path, _home, _demo = network
    ctx = night.context(path)
    order = EducationOrder(
        cpr=parse_cpr("0902034120"),
        order_id="UP-2026-0140",
        target_education="SOSU",
        deadline=date(2027, 2, 1),
        mentor_granted=False,
        status="AKTIV",
        status_date=date(2026, 11, 2),
        caseworker_name="Per",
        provenance=Provenance(
            "jobcenter", "jobcenter_791_paalaeg_20261121.csv", 3, datetime.now(UTC), "", "791"
        ),
    )
    with ctx.store.session() as s:
        ctx.store.upsert_records(
            s, [order, _event(Dropout, "0902034120", "791", inst="779008", reason_code="03")]
        )
        decisions = {(d.rule, d.recipient, d.status) for d in route(s, ctx.network, date(2026, 11, 24))}
    assert ("dropout_to_job_centre", "jobcenter-viborg", "send") in decisions
    assert ("dropout_to_uu", "uu-viborg", "send") in decisions  # 23: UU's duty too


@pytest.mark.parametrize(("known", "expected"), [(True, {"dropout_25_29_to_job_centre"}), (False, set())])
def test_a_25_to_29_dropout_goes_to_the_job_centre_only_when_it_knows_the_youth(
    network, known, expected
) -> None:
    from stafet.duties.routing import route

    path, _home, _demo = network
    ctx = night.context(path)
    recs = [_event(Dropout, "150299-1234", "791", inst="779008", reason_code="03")]  # 27
    if known:
        recs.append(
            Interview(
                cpr=parse_cpr("150299-1234"),
                interview_id="S-1",
                interview_date=date(2026, 10, 1),
                interview_type="FOERSTE",
                status="AFHOLDT",
                provenance=Provenance("jobcenter", "t.csv", 1, datetime.now(UTC)),
            )
        )
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, recs)
        rules = {d.rule for d in route(s, ctx.network, date(2026, 11, 24))}
    assert rules == expected  # no UU duty at 25 or more


def test_the_nightly_notices_stage_counts_only(network) -> None:
    path, _home, _demo = network
    ctx = night.context(path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(
            s,
            [
                _event(Dropout, "030409-4871", "791", reason_code="02"),
                _event(ConcernFlag, "0711094563", "779", inst="779008"),
                _event(Enrolment, "230507-5218", "791", inst="779008"),
            ],
        )
    out = night.notices(path, date(2026, 12, 1))
    assert all(isinstance(v, int) for v in out.values())
    assert out["notices_notice"] >= 2 and out["notices_failed"] == 0
    assert night.notices(path, date(2026, 12, 1))["notices_notice"] == 0


def test_a_members_own_node_leaves_the_notices_to_the_hub(network) -> None:
    """UU Skive's node has no coordinator key: its night tells nobody and does not fail."""
    from stafet.context import open_context
    from stafet.exchange.notices import send_notices

    path, _home, demo = network
    skive = open_context(path, home=member_home(demo, "uu-skive"))
    with skive.store.session() as s:
        skive.store.upsert_records(s, [_event(Dropout, "0908094563", "779", inst="779008", reason_code="01")])
    told = send_notices(skive, date(2026, 12, 1))
    assert told["not_this_node"] >= 1 and told["notice"] == 0
    assert not list((demo / "inbox" / "uu-skive").glob("*.eml"))
