"""The coordinator's list (dropouts at 25–29 no job centre takes) and the youth's one tovholder."""

from datetime import UTC, date, datetime, timedelta

import pytest
from seeds import assert_quoted
from sqlalchemy import select

from stafet.core.errors import DataError
from stafet.core.models import Dropout, EducationOrder, Interview, Provenance, Tovholder
from stafet.duties.coordinator import (
    REASON_NO_MEMBER,
    REASON_UNKNOWN,
    DropoutFact,
    compute_coordinator_list,
    coordinator_list,
    load_coordinator_facts,
    set_tovholder,
    to_document,
    tovholder_of,
)
from stafet.store import audit
from stafet.store.schema import RecordRow

from .conftest import cpr, prov

SEED_NO_UU_DUTY = "UU kontakter den unge og tilbyder en vejledningssamtale"
SEED_TOVHOLDER = "For hver enkelt ung udnævnes en gennemgående tovholder blandt samarbejdspartnerne."
TODAY = date(2026, 11, 24)
JC = {"791": "jobcenter-viborg"}.get


@pytest.mark.parametrize("quote", [SEED_TOVHOLDER, SEED_NO_UU_DUTY])
def test_each_quote_is_in_a_seed_document(quote: str) -> None:
    assert_quoted(quote)


def _fact(born: date, day: date, *, order: bool = False, interview: bool = False, muni: str = "791",
          youth: str = "Y1") -> DropoutFact:
    return DropoutFact(1, youth, born, day, "779008", muni, order, interview)


# --- the 25th and 30th birthdays ------------------------------------------------------------
@pytest.mark.parametrize(("born", "listed"), [
    (date(2001, 6, 16), False),   # 24 on the dropout 2026-06-15: UU's duty, not the coordinator's
    (date(2001, 6, 15), True),    # the 25th birthday that day
    (date(1996, 6, 16), True),    # 29 years 364 days
    (date(1996, 6, 15), False),   # the 30th birthday: outside the network's 15–29
])
def test_the_list_starts_at_25_and_ends_at_30(born, listed) -> None:
    items = coordinator_list([_fact(born, date(2026, 6, 15))], JC, date(2026, 6, 15))
    assert (len(items) == 1) is listed
    if listed:
        assert items[0].reason == REASON_UNKNOWN and items[0].age in (25, 29)


def test_a_youth_who_turns_30_leaves_the_list() -> None:
    f = _fact(date(1996, 12, 1), date(2026, 6, 15))            # 29 at the dropout
    assert coordinator_list([f], JC, date(2026, 11, 30))
    assert not coordinator_list([f], JC, date(2026, 12, 1))    # 30 today
    assert not coordinator_list([f], JC, date(2026, 6, 14))    # the dropout lies ahead


@pytest.mark.parametrize(("order", "interview", "muni", "reason"), [
    (False, False, "791", REASON_UNKNOWN),
    (True, False, "791", None),          # the order's job centre is told (dropout_to_job_centre)
    (False, True, "791", None),          # known to the job centre of the home municipality
    (False, True, "999", REASON_NO_MEMBER),
    (True, False, "999", None),
])
def test_known_to_a_job_centre_is_not_listed(order, interview, muni, reason) -> None:
    items = coordinator_list([_fact(date(2000, 1, 1), date(2026, 11, 2), order=order, interview=interview,
                                    muni=muni)], JC, TODAY)
    assert [i.reason for i in items] == ([reason] if reason else [])


# --- from the store -------------------------------------------------------------------------
def _dropout(c: str, day: date) -> Dropout:
    return Dropout(cpr=cpr(c), institution="779008", home_municipality="791", event_date=day,
                   programme_code="1640", reason_code="03", provenance=prov())


def test_from_the_store_with_orders_and_interviews(net) -> None:
    _, ctx = net
    day = TODAY - timedelta(days=5)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [
            _dropout("010199-1234", day),      # 27, unknown to any job centre: listed
            _dropout("020299-1234", day),      # 27, active order
            _dropout("030399-1234", day),      # 27, an interview
            _dropout("040408-4127", day),      # 18: UU's
            EducationOrder(cpr=cpr("020299-1234"), order_id="UP-1", target_education="Smed",
                           deadline=TODAY + timedelta(days=30), mentor_granted=False, status="AKTIV",
                           status_date=TODAY - timedelta(days=40),
                           provenance=prov("jobcenter_791_paalaeg_20261121.csv")),
            Interview(cpr=cpr("030399-1234"), interview_id="S-1", interview_date=TODAY - timedelta(days=60),
                      interview_type="FOERSTE", status="AFHOLDT",
                      provenance=prov("jobcenter_791_samtaler_20261121.csv")),
        ])
        assert len(load_coordinator_facts(s)) == 4
    items = compute_coordinator_list(ctx, TODAY)
    assert [(i.masked_cpr, i.age, i.reason) for i in items] == [("010199-xxxx", 27, REASON_UNKNOWN)]
    doc = to_document(items, network=ctx.network.name, today=TODAY)
    assert doc["format"] == "stafet.coordinator_list/1" and doc["count"] == 1
    assert set(doc["items"][0]) == {"youth", "masked_cpr", "dropout_date", "institution", "municipality",
                                    "age", "reason"}
    assert "010199-1234" not in str(doc)


# --- the tovholder --------------------------------------------------------------------------
def _youth(ctx, c="120308-4127"):
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout(c, TODAY - timedelta(days=3))])
        return ctx.store.ensure_youths(s, [cpr(c)])[cpr(c).digits]


def test_one_tovholder_per_youth_set_by_a_person_and_audited(net) -> None:
    _, ctx = net
    y = _youth(ctx)
    first = set_tovholder(ctx, youth=y, org="uu-viborg", name="Anna Holm", by="anna", since=TODAY)
    assert first["status"] == "new"
    again = set_tovholder(ctx, youth=y, org="uu-viborg", name="Anna Holm", by="anna", since=TODAY)
    assert again["status"] == "duplicate"
    other = set_tovholder(ctx, youth=y, org="jobcenter-viborg", name="Lene  Juhl", by="lene", since=TODAY)
    assert other["status"] == "updated" and other["name"] == "Lene Juhl"
    with ctx.store.session() as s:
        rows = [r for r in s.scalars(select(RecordRow).where(RecordRow.kind == "tovholder"))]
        assert len(rows) == 1 and rows[0].source == "person"           # one per youth, the person's
        assert tovholder_of(s, y) == {"org": "jobcenter-viborg", "name": "Lene Juhl", "email": "",
                                      "since": TODAY.isoformat(), "set_by": "lene", "source": "person"}
        sets = audit.entries(s, "tovholder.set")
        assert [e.details["status"] for e in sets] == ["new", "duplicate", "updated"]
        assert [e.actor for e in sets] == ["anna", "anna", "lene"]


@pytest.mark.parametrize(("kw", "rule"), [
    ({"org": "nobody"}, "tovholder.org"),
    ({"by": " "}, "tovholder.by"),
    ({"name": ""}, "tovholder.name"),
    ({"name": "Anna 120308-4127"}, "tovholder.name"),
    ({"youth": "no-such-youth"}, "tovholder.youth"),
])
def test_refusals_name_their_rule(net, kw, rule) -> None:
    _, ctx = net
    args = {"youth": _youth(ctx), "org": "uu-viborg", "name": "Anna Holm", "by": "anna"} | kw
    with pytest.raises(DataError) as e:
        set_tovholder(ctx, **args)
    assert e.value.rule == rule
    assert "120308-4127" not in str(e.value)


def test_a_tovholder_from_another_source_is_never_overwritten(net) -> None:
    _, ctx = net
    y = _youth(ctx)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [Tovholder(cpr=cpr("120308-4127"), org="uu-viborg", name="Fra kilden",
                                               since=TODAY, set_by="system",
                                               provenance=Provenance("uu_planer", "x.xml", 1,
                                                                     datetime.now(UTC)))])
    with pytest.raises(DataError, match="not overwritten"):
        set_tovholder(ctx, youth=y, org="uu-viborg", name="Anna Holm", by="anna")
    with ctx.store.session() as s:
        assert tovholder_of(s, y)["name"] == "Fra kilden"
