"""compute_deadlines against a real store: withdrawn and corrected records, who is responsible."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

import mappings
from stafet.context import Context
from stafet.core.config import Network
from stafet.core.cpr import parse_cpr
from stafet.core.errors import DataError
from stafet.core.models import Dropout, EducationPlan, Organisation, OrgKind, Provenance, TransitionCase
from stafet.core.vault import Vault
from stafet.duties.deadlines import compute_deadlines
from stafet.store import Store
from stafet.store.schema import Handover, RecordRow

TODAY = date(2026, 11, 24)
CPR_A = "030409-4871"   # 17, dropped out 16 Nov 2026
CPR_B = "3009085527"    # 18, transition case without meeting


def _org(oid: str, kind: OrgKind, muni: str, serves: tuple[str, ...] = ()) -> Organisation:
    return Organisation(oid, kind, oid, muni, f"folder:inbox/{oid}", f"{oid}@example.dk", serves=serves)


def _ctx(tmp_path: Path, *family: Organisation) -> Context:
    vault = Vault(secrets.token_bytes(32))
    members = {o.id: o for o in (_org("uu-viborg", OrgKind.GUIDANCE, "791", ("791",)),
                                 _org("751001", OrgKind.INSTITUTION, "791"), *family)}
    net = Network("t", tmp_path / "network.yaml", members, (), (), (), ack_limit_hours=24)
    store = Store(f"sqlite:///{tmp_path / 'stafet.db'}", vault)
    return Context(home=tmp_path, vault=vault, store=store, network=net, keys=None)  # type: ignore[arg-type]


def _prov(file: str) -> Provenance:
    """As ingest makes it: the sender from the file's name, by its source's declared pattern."""
    return Provenance("t", file, 1, datetime(2026, 11, 21, tzinfo=UTC), *mappings.origin(file))


def _dropout() -> Dropout:
    return Dropout(cpr=parse_cpr(CPR_A), institution="751001", home_municipality="791",
                   event_date=date(2026, 11, 16), programme_code="1199", reason_code="02",
                   provenance=_prov("751001_elevhaendelser_202611210200.xml"))


def _plan(*contacts: str, agreement: date | None = None) -> EducationPlan:
    return EducationPlan(cpr=parse_cpr(CPR_A), plan_id="UP-1", updated=date(2026, 11, 20), goal_code="5180",
                         contacts=tuple((c, "samtale") for c in contacts), agreement_date=agreement,
                         provenance=_prov("uu_791_planer_20261120.xml"))


def _case(file: str) -> TransitionCase:
    return TransitionCase(cpr=parse_cpr(CPR_B), case_no="F-9", aftercare_sel76=False, support_sel85=True,
                          receiver="socialafdeling", provenance=_prov(file))


def _rules(items: list) -> list[tuple[str, str]]:
    return sorted((i.rule, i.status) for i in items)


def test_a_corrected_plan_closes_the_deadline_and_withdrawn_records_count_not(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout(), _plan()])
    assert _rules(compute_deadlines(ctx, TODAY)) == [("dropout_agreement", "open"),
                                                      ("dropout_contact", "overdue"),
                                                      ("dropout_contact_custody", "overdue")]
    with ctx.store.session() as s:  # UU re-exports the same plan with a contact and an agreement
        assert [st for st, _ in ctx.store.upsert_records(
            s, [_plan("2026-11-23", agreement=date(2026, 11, 23))])] == ["updated"]
    # the plan's contact is with the youth: the custody holder's contact is still owed
    assert _rules(compute_deadlines(ctx, TODAY)) == [("dropout_contact_custody", "overdue")]
    from stafet.duties.contacts import register_contact

    register_contact(ctx, youth=ctx.vault.pseudonym(parse_cpr(CPR_A).digits), day=date(2026, 11, 23),
                     form="telefon", by="anna", org="uu-viborg", party="custody_holder", today=TODAY)
    assert compute_deadlines(ctx, TODAY) == []
    with ctx.store.session() as s:  # the plan is withdrawn (consent withdrawn): its facts go
        s.execute(update(RecordRow).where(RecordRow.kind == "education_plan").values(withdrawn=True))
    assert len(compute_deadlines(ctx, TODAY)) == 2
    with ctx.store.session() as s:
        s.execute(update(RecordRow).values(withdrawn=True))
    assert compute_deadlines(ctx, TODAY) == []


@pytest.mark.parametrize(("file", "responsible"), [
    ("familie_779_overgange_20261121.csv", "familie-skive"),
    ("familie_791_overgange_20261121.csv", "familie-viborg"),
    ("other.csv", ""),   # two family departments and no municipality: unknown, still listed
])
def test_the_family_department_of_the_exports_municipality_is_responsible(
        tmp_path: Path, file: str, responsible: str) -> None:
    ctx = _ctx(tmp_path, _org("familie-viborg", OrgKind.FAMILY_SERVICES, "791"),
               _org("familie-skive", OrgKind.FAMILY_SERVICES, "779"))
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_case(file)])
    [item] = compute_deadlines(ctx, TODAY)
    assert (item.rule, item.status, item.due, item.responsible) == (
        "transition_meeting", "overdue", date(2025, 9, 30), responsible)
    assert item.masked_cpr == "300908-xxxx"


def test_the_only_family_department_is_responsible_whatever_the_file(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, _org("familie-viborg", OrgKind.FAMILY_SERVICES, "791"))
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_case("other.csv")])
    assert [i.responsible for i in compute_deadlines(ctx, TODAY)] == ["familie-viborg"]


def test_handovers_by_status(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout(), _plan("2026-11-17", agreement=date(2026, 11, 18))])
        youth = ctx.vault.pseudonym(parse_cpr(CPR_A).digits)
        for n, status in enumerate(("pending", "sent", "failed", "acknowledged", "held")):
            s.add(Handover(id=f"PKG-{n}", handover_key=f"k{n}", sender="751001", recipient="uu-viborg",
                           youth=youth, status=status, created_at=datetime(2026, 11, 22, 6),
                           sent_at=datetime(2026, 11, 22, 7) if status != "pending" else None))
        s.add(Handover(id="PKG-X", handover_key="kx", sender="751001", recipient="uu-viborg",
                       youth="0" * 32, status="sent", created_at=datetime(2026, 11, 22, 6),
                       sent_at=datetime(2026, 11, 22, 7)))
    items = [i for i in compute_deadlines(ctx, TODAY) if i.rule == "handover_ack"]
    assert sorted(i.reference for i in items) == [
        "package PKG-0 to uu-viborg (pending)", "package PKG-1 to uu-viborg (sent)",
        "package PKG-2 to uu-viborg (failed)", "package PKG-X to uu-viborg (sent)"]
    assert {i.due for i in items} == {date(2026, 11, 23)}   # 24 h limit
    assert {i.masked_cpr for i in items} == {"030409-xxxx", ""}  # a youth this store does not hold: blank
    for i in items:
        assert parse_cpr(CPR_A).digits not in repr(i) + str(i.as_json())


def test_a_broken_stored_record_is_named_without_its_cpr(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [_dropout()])
        rid = s.scalars(select(RecordRow.id)).one()
        s.execute(update(RecordRow).values(payload={"event_date": CPR_A}))
    with pytest.raises(DataError) as e:
        compute_deadlines(ctx, TODAY)
    assert f"record={rid}" in str(e.value) and "0304094871" not in str(e.value)
    assert "030409-4871" not in str(e.value)
