"""A send pass reads the documents of a batch of handovers at once: the same documents, the same outcomes.

:func:`~stafet.exchange.outbox.handover_documents` (one session, a few queries for the batch)
against :func:`~stafet.exchange.outbox.handover_document` (one handover at a time), on a batch
with a legal-duty handover with its history (two events on one day: their order counts), a
consent-based one with history and a scope left out, one whose consent was withdrawn since
routing, one whose consent expired since, one whose youth's CPR does not decrypt, and a
withdrawal notice. Then a send pass over the batch, against the one-by-one pass on a copy.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

import mappings
from stafet import night
from stafet.context import open_context
from stafet.core.cpr import parse_cpr
from stafet.core.errors import DataError, TransientError
from stafet.core.models import (
    ConcernFlag,
    Consent,
    Dropout,
    EducationOrder,
    EducationPlan,
    Enrolment,
    Provenance,
)
from stafet.exchange import outbox as exchange
from stafet.exchange.outbox import NotSendable, handover_document, handover_documents, send_pending
from stafet.exchange.withdrawals import WITHDRAWAL_RULE, withdraw_consent
from stafet.packages.document import HandoverDocument, WithdrawalDocument
from stafet.packages.package import _json_part, decrypt_package, split_signed
from stafet.store.db import utcnow
from stafet.store.schema import ConsentRow, Handover, Youth

TODAY = date.today()
DUTY, PLAN, WITHDRAWN, EXPIRED, SENT_BEFORE, BROKEN = (  # synthetic CPRs
    "120308-4127", "120308-4127", "1405024913", "3009085527", "0902034120", "0304094871")


def _prov(file: str = "779008_haendelser_t.csv", row: int = 2) -> Provenance:
    return Provenance("test", file, row, datetime.now(UTC), **mappings.origin(file)._asdict())


def _school(cls: Any, c: str, event: date, **kw: Any) -> Any:
    return cls(cpr=parse_cpr(c), institution="779008", home_municipality="791", event_date=event,
               programme_code="1640", programme_name="Tømrer", first_name="Sofie", last_name="Test",
               provenance=_prov(), **kw)


def _order(c: str, ref: str, order_id: str = "UP-2026-0113") -> EducationOrder:
    return EducationOrder(cpr=parse_cpr(c), order_id=order_id, target_education="Smed",
                          target_institution="779008", deadline=TODAY + timedelta(days=40),
                          mentor_granted=True, mentor_name="Kim Brandt", caseworker_name="Lene Juhl",
                          status="OPHOERT_UDDANNELSESSTART", status_date=TODAY, consent_ref=ref,
                          provenance=_prov("jobcenter_791_paalaeg_20261121.csv"))


def _consent(ctx: Any, c: str, ref: str, scopes: list[str], recipients: list[str]) -> None:
    con = Consent(cpr=parse_cpr(c), ref=ref, signed_by="ung", signed_date=TODAY,
                  valid_from=TODAY - timedelta(days=1), valid_to=TODAY + timedelta(days=200),
                  recipients=tuple(recipients), scopes=tuple(scopes))
    with ctx.store.session() as s:
        y = ctx.store.ensure_youths(s, [con.cpr])[con.cpr.digits]
        s.add(ConsentRow(ref=ref, youth=y, payload=con.payload(), withdrawn_date=None, updated_at=utcnow()))


def _store(ctx: Any, *records: Any) -> None:
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, list(records))


def _pseudonym(ctx: Any, c: str) -> str:
    return str(ctx.vault.pseudonym(parse_cpr(c).digits))


@pytest.fixture
def batch(demo_net: tuple[str, Any]) -> tuple[str, Any]:
    """The demo network with one handover of each sort pending (see the module's docstring)."""
    path, ctx = demo_net
    # sent under consent S-32 before, then S-32 withdrawn: a withdrawal notice is pending
    _store(ctx, _order(SENT_BEFORE, "S-32"))
    _consent(ctx, SENT_BEFORE, "S-32", ["paalaeg"], ["779008"])
    night.route(path, TODAY)
    assert send_pending(ctx).sent == 1
    withdraw_consent(ctx, "S-32", TODAY, actor="steward")
    # a duty with history (the dropout and the concern flag on one day), a partial consent with history
    # (the dropout stored first: the history's order of the two is the record key's, not the ids')
    _store(ctx, _school(Dropout, DUTY, TODAY - timedelta(days=3), reason_code="05"))
    _store(ctx, _school(Enrolment, DUTY, TODAY - timedelta(days=400)),
           _school(ConcernFlag, DUTY, TODAY - timedelta(days=3)),
           EducationPlan(cpr=parse_cpr(PLAN), plan_id="UP-77812", updated=TODAY, goal_code="1650",
                         goal_name="Smed", goal_institution="779008", support_needs=("Mentor", "Ordblind"),
                         provenance=_prov("uu_791_planer_20261120.xml")),
           _order(WITHDRAWN, "S-31"), _order(EXPIRED, "S-33"),
           _school(Dropout, BROKEN, TODAY - timedelta(days=2), reason_code="02"))
    _consent(ctx, PLAN, "S-50", ["uddannelsesplan", "historik"], ["779008"])
    _consent(ctx, WITHDRAWN, "S-31", ["paalaeg"], ["779008"])
    _consent(ctx, EXPIRED, "S-33", ["paalaeg"], ["779008"])
    night.route(path, TODAY)
    with ctx.store.session() as s:  # since routing: one withdrawn, one expired, one youth's CPR broken
        s.get(ConsentRow, "S-31").withdrawn_date = TODAY
        c = s.get(ConsentRow, "S-33")
        c.payload = {**c.payload, "valid_to": (TODAY - timedelta(days=1)).isoformat()}
        s.get(Youth, _pseudonym(ctx, BROKEN)).cpr_enc = b"\0" * 40
    return path, ctx


def _pending(ctx: Any) -> list[Handover]:
    with ctx.store.session() as s:
        return list(s.scalars(select(Handover).where(Handover.status == "pending").order_by(Handover.id)))


def _outcome(fn: Any) -> Any:
    """A document as the package writes it, or what was raised (type, message, NotSendable's fields)."""
    try:
        got = fn()
    except Exception as e:
        return _raised(e)
    return _written(got)


def _written(doc: Any) -> Any:
    if isinstance(doc, Exception):
        return _raised(doc)
    return json.dumps(doc.to_json(), ensure_ascii=False, separators=(",", ":"))


def _raised(e: Exception) -> tuple[Any, ...]:
    return (type(e).__name__, str(e), getattr(e, "reason", None), getattr(e, "withdrawn", None))


def test_the_batch_has_every_sort_of_handover(batch: tuple[str, Any]) -> None:
    _, ctx = batch
    hs = _pending(ctx)
    assert sorted(h.rule for h in hs) == ["dropout_to_uu", "dropout_to_uu", "order_to_institution",
                                         "order_to_institution", "plan_to_institution", WITHDRAWAL_RULE]
    docs = handover_documents(ctx, hs, TODAY)
    by_youth = {h.youth: docs[h.id] for h in hs if h.rule != WITHDRAWAL_RULE and h.rule != "dropout_to_uu"}
    withdrawn, expired = by_youth[_pseudonym(ctx, WITHDRAWN)], by_youth[_pseudonym(ctx, EXPIRED)]
    assert isinstance(withdrawn, NotSendable) and withdrawn.withdrawn
    assert withdrawn.reason == f"tilbagekaldt {TODAY.isoformat()}"
    assert isinstance(expired, NotSendable) and not expired.withdrawn and expired.reason.startswith("udløbet")
    duty = next(docs[h.id] for h in hs if h.rule == "dropout_to_uu" and h.youth == _pseudonym(ctx, DUTY))
    assert isinstance(duty, HandoverDocument)
    kinds = [e.kind for e in duty.history]
    assert kinds == ["enrolment", "concern_flag", "dropout"]  # the day's two: in the record key's order
    plan = by_youth[_pseudonym(ctx, PLAN)]
    assert isinstance(plan, HandoverDocument) and plan.consent_ref == "S-50"
    assert [e.kind for e in plan.history] == ["education_plan"]
    assert [o.kind for o in plan.omitted] == ["stoettebehov"]
    assert "support_needs" not in plan.records[0].data
    broken = next(docs[h.id] for h in hs if h.youth == _pseudonym(ctx, BROKEN))
    assert isinstance(broken, DataError)
    notice = next(docs[h.id] for h in hs if h.rule == WITHDRAWAL_RULE)
    assert isinstance(notice, WithdrawalDocument) and len(notice.package_ids) == 1


def test_the_batched_documents_are_the_one_by_one_documents(batch: tuple[str, Any]) -> None:
    _, ctx = batch
    hs = _pending(ctx)
    one_by_one = {h.id: _outcome(lambda h=h: handover_document(ctx, h, TODAY)) for h in hs}
    batched = {i: _written(d) for i, d in handover_documents(ctx, hs, TODAY).items()}
    assert batched == one_by_one
    assert sum(isinstance(v, str) for v in batched.values()) == 3  # documents; 3 raised
    # a batch of one, and the batch the other way round, give the same
    assert {h.id: _written(handover_documents(ctx, [h], TODAY)[h.id]) for h in hs} == one_by_one
    assert {i: _written(d) for i, d in handover_documents(ctx, hs[::-1], TODAY).items()} == one_by_one


def test_a_batch_that_cannot_be_read_is_read_one_by_one(batch: tuple[str, Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _, ctx = batch
    hs = _pending(ctx)
    assert set(exchange._documents_to_build(ctx, hs)) == {h.id for h in hs if h.rule != WITHDRAWAL_RULE}

    def busy(*a: Any, **k: Any) -> Any:
        raise TransientError("database unavailable: OperationalError")
    monkeypatch.setattr(exchange, "handover_documents", busy)
    assert exchange._documents_to_build(ctx, hs) == {}


def _sent_documents(ctx: Any) -> dict[str, Any]:
    """The document in each package built (the sender's copy, opened with the recipient's keys)."""
    out, keys = {}, {}
    with ctx.store.session() as s:
        rows = list(s.scalars(select(Handover).where(Handover.package_path != "")))
    for h in rows:
        if h.recipient not in keys:  # each recipient's keys listed once
            keys[h.recipient] = ctx.keys.decryption_keys(h.recipient)
        data = (ctx.home / h.package_path).read_bytes()
        out[h.id] = _json_part(split_signed(decrypt_package(data, keys[h.recipient]))[0])
    return out


def _states(ctx: Any) -> dict[str, tuple[str, str, int]]:
    with ctx.store.session() as s:
        return {h.id: (h.status, h.last_error, h.attempts) for h in s.scalars(select(Handover))}


def test_a_send_pass_has_the_outcomes_of_the_one_by_one_pass(batch: tuple[str, Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path, ctx = batch
    copy = ctx.home.parent / "home-one-by-one"
    shutil.copytree(ctx.home, copy)
    before = open_context(path, home=copy)
    with monkeypatch.context() as m:  # the pass as it was: each document read when its package is built
        m.setattr(exchange, "_documents_to_build", lambda ctx, hs: {})
        old = send_pending(before)
    reads: list[int] = []
    real = exchange.handover_documents

    def counted(ctx: Any, hs: Any, *a: Any) -> Any:
        reads.append(len(hs))
        return real(ctx, hs, *a)
    monkeypatch.setattr(exchange, "handover_documents", counted)
    new = send_pending(ctx)
    assert reads == [5]  # the batch's five plain handovers in one read (the notice is read when built)
    assert (new.sent, new.held, new.retry_later, new.failed, new.deferred) == \
        (old.sent, old.held, old.retry_later, old.failed, old.deferred) == (3, 2, 0, 1, 0)
    assert new.errors == old.errors and len(new.errors) == 1
    assert _states(ctx) == _states(before)
    assert {s for s, _, _ in _states(ctx).values()} == {"sent", "held", "cancelled", "failed"}
    sent_new, sent_old = _sent_documents(ctx), _sent_documents(before)
    assert sent_new == sent_old and len(sent_new) == 4  # the one sent before, the three sent now
