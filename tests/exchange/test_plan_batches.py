"""Planning handovers in batches (:func:`stafet.store.outbox.plan`): the records and the
existing rows of up to ``PLAN_BATCH`` plans are read in one query each, and what a plan
finds is what it found when each plan read its own: the same key twice in one batch or
across two is one row, a held row becomes pending once its basis came, each row written is
audited once."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from stafet.core.cpr import parse_cpr
from stafet.core.models import Provenance, record_from_payload
from stafet.exchange.outbox import new_package_id
from stafet.store import audit, outbox
from stafet.store.schema import Handover, RecordRow

SENDER, RECEIVER = "779008", "uu-viborg"


def _records(net, n: int) -> list[tuple[int, str]]:
    ctx = net.ctx(SENDER)
    base = net.handover_doc()["records"][0]["data"]
    days = [{"reason_text": f"grund {i}", "event_date": f"2026-11-{10 + i}"} for i in range(n)]
    recs = [record_from_payload("dropout", base | days[i], parse_cpr("120308-4127"),
                                Provenance("easy-a", "779008_haendelser.csv", 2 + i, dt.datetime.now(dt.UTC)))
            for i in range(n)]
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, recs, actor="test")
    with ctx.store.session() as s:
        return [(r.id, r.youth) for r in s.scalars(select(RecordRow).where(RecordRow.kind == "dropout")
                                                   .order_by(RecordRow.id))]


def _plan(rid: int, youth: str, status: str = "pending") -> outbox.Plan:
    return outbox.Plan(SENDER, RECEIVER, youth, "dropout_to_uu", status, (rid, rid),
                       "vejledningsloven § 12 c", "", "", ())


@pytest.mark.parametrize("batch", [2, 500])
def test_one_row_per_key_within_and_across_batches_and_held_becomes_pending(net, monkeypatch, batch):
    monkeypatch.setattr(outbox, "PLAN_BATCH", batch, raising=False)  # the old path had none
    (a, y), (b, _), (c, _) = _records(net, 3)[:3]
    ctx = net.ctx(SENDER)
    with ctx.store.session() as s:
        first = outbox.plan(s, [_plan(a, y), _plan(b, y, "held"), _plan(a, y), _plan(a, y), _plan(c, y)],
                            actor="routing", new_id=new_package_id)
    assert first == {"planned": 2, "held": 1, "existing": 2}
    with ctx.store.session() as s:
        again = outbox.plan(s, [_plan(c, y), _plan(b, y, "pending"), _plan(b, y, "pending")],
                            actor="routing", new_id=new_package_id)
        rows = {tuple(h.record_ids): h for h in s.scalars(select(Handover))}
        pending, held = len(audit.entries(s, "handover.pending")), len(audit.entries(s, "handover.held"))
    # c exists; b was held and is now pending, once: the second b finds the row it became
    assert again == {"planned": 1, "held": 0, "existing": 2}
    assert {k: h.status for k, h in rows.items()} == {(a, a): "pending", (b, b): "pending", (c, c): "pending"}
    assert {k: h.kinds for k, h in rows.items()} == {k: ["dropout"] for k in rows}
    assert (pending, held) == (3, 1)
