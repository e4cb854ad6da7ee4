"""The night computes the duty clock once: its report and notices read back what its deadlines stage wrote.

The clock read back from the day's snapshot (:func:`stafet.duties.snapshot.snapshot_items`)
must be the clock itself, item for item; a resend moves a handover's due date, so after one
the notices compute the clock afresh.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from stafet import night
from stafet.duties.deadlines import compute_deadlines
from stafet.duties.snapshot import snapshot_items
from stafet.store import duty_items, utcnow
from stafet.store.schema import DutyItemRow, Handover
from tests.web.conftest import TODAY

MARK = " MÆRKET-I-SNAPSHOTTET"


def _mark_first(ctx: Any, day: dt.date, field: str = "reference") -> str:
    """Append MARK to ``field`` of one stored overdue item; returns the marked value."""
    with ctx.store.session() as s:
        first = s.scalars(select(DutyItemRow).where(DutyItemRow.day == day, DutyItemRow.status == "overdue")
                          .order_by(DutyItemRow.id)).first()
        assert first is not None, "the world has no overdue duties"
        value = getattr(first, field) + MARK
        s.execute(update(DutyItemRow).where(DutyItemRow.id == first.id).values({field: value}))
        return value


def _captured_notices(monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """The items each ``send_notices`` call is given (the real function still runs)."""
    from stafet.exchange import notices as notice_module

    seen: list[list[Any]] = []
    real = notice_module.send_notices

    def spy(ctx: Any, today: dt.date, *, items: Any = None) -> dict[str, int]:
        seen.append(list(items))
        return real(ctx, today, items=items)

    monkeypatch.setattr(notice_module, "send_notices", spy)
    return seen


def test_the_snapshot_read_back_is_the_clock(world: dict[str, Any]) -> None:
    ctx = world["ctx"]
    night.deadlines(world["path"], TODAY)
    clock = compute_deadlines(ctx, TODAY)
    assert len({i.rule for i in clock}) >= 3, "too few rules in the world to tell anything"
    assert {i.status for i in clock} >= {"overdue"}
    assert snapshot_items(ctx, TODAY) == clock  # the same items, the same order
    # no snapshot of a day: nothing to read back
    assert snapshot_items(ctx, TODAY + dt.timedelta(days=5)) is None


def test_the_report_reads_the_snapshot_only_when_told(world: dict[str, Any]) -> None:
    ctx = world["ctx"]
    night.deadlines(world["path"], TODAY)
    marked = _mark_first(ctx, TODAY, "responsible")  # the report's table shows who is responsible
    from_snapshot = Path(night.report(world["path"], TODAY, True)).read_text(encoding="utf-8")
    computed = Path(night.report(world["path"], TODAY, False)).read_text(encoding="utf-8")
    assert "MÆRKET-I-SNAPSHOTTET" in from_snapshot and "MÆRKET-I-SNAPSHOTTET" not in computed
    assert f"<td>{marked.removesuffix(MARK)}</td>" in computed
    # another day has no snapshot: told to read it, the report computes the clock
    later = TODAY + dt.timedelta(days=2)
    page = Path(night.report(world["path"], later, True)).read_text(encoding="utf-8")
    assert "MÆRKET-I-SNAPSHOTTET" not in page
    with ctx.store.session() as s:
        assert duty_items.snapshot(s, later) is None


def test_the_notices_read_the_snapshot_unless_something_was_resent(world: dict[str, Any],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = world["ctx"]
    night.deadlines(world["path"], TODAY)
    _mark_first(ctx, TODAY)
    seen = _captured_notices(monkeypatch)
    told = night.notices(world["path"], TODAY, True)
    assert told["resent"] == 0
    assert any(i.reference.endswith(MARK) for i in seen[-1])  # read back, not computed
    assert seen[-1] == snapshot_items(ctx, TODAY)
    # not told: computed, whatever the snapshot holds
    night.notices(world["path"], TODAY, False)
    assert not any(i.reference.endswith(MARK) for i in seen[-1])
    assert seen[-1] == compute_deadlines(ctx, TODAY)
    # a package past the receipt limit is sent again: its handover_ack due date moves, the clock is computed
    with ctx.store.session() as s:
        h = s.scalars(select(Handover).where(Handover.status == "sent", Handover.resends == 0)
                      .order_by(Handover.id)).first()
        assert h is not None, "the world has no sent, unacknowledged handover"
        hid = h.id
        s.execute(update(Handover).where(Handover.id == hid)
                  .values(sent_at=utcnow() - dt.timedelta(hours=ctx.network.ack_limit_hours + 24)))
    night.deadlines(world["path"], TODAY)  # the snapshot has the old due date
    _mark_first(ctx, TODAY)
    stale = [i for i in snapshot_items(ctx, TODAY) or [] if i.rule == "handover_ack" and hid in i.reference]
    told = night.notices(world["path"], TODAY, True)
    assert told["resent"] >= 1
    assert not any(i.reference.endswith(MARK) for i in seen[-1])
    fresh = [i for i in seen[-1] if i.rule == "handover_ack" and hid in i.reference]
    assert stale and fresh and stale[0].due < fresh[0].due
    assert seen[-1] == compute_deadlines(ctx, TODAY)


def test_a_contact_registered_while_the_clock_is_computed_reaches_the_snapshot(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from stafet.duties import deadlines as deadline_module
    from stafet.store import contacts

    ctx = world["ctx"]
    day = TODAY + dt.timedelta(days=1)
    before = compute_deadlines(ctx, day)
    youth = next(i.youth for i in before if i.rule == "dropout_first_contact")  # a contact closes it
    real = deadline_module.compute_deadlines

    def slow(ctx: Any, today: dt.date, **kw: Any) -> list[Any]:
        items = real(ctx, today, **kw)  # computed: then a counsellor registers a contact
        with ctx.store.session() as s:
            contacts.add(s, youth=youth, org="uu-viborg", day=today, form="telefon", party="youth",
                         note="", by="test")
        return items

    monkeypatch.setattr(deadline_module, "compute_deadlines", slow)
    night.deadlines(world["path"], day)
    monkeypatch.undo()
    after = compute_deadlines(ctx, day)
    assert [i for i in before if i.youth == youth and i.rule == "dropout_first_contact"]
    assert not [i for i in after if i.youth == youth and i.rule == "dropout_first_contact"]
    assert snapshot_items(ctx, day) == after  # the contact made during the computation is in


def test_an_older_computation_does_not_replace_a_newer_snapshot(world: dict[str, Any]) -> None:
    from stafet.duties.snapshot import write_snapshot

    ctx = world["ctx"]
    day = TODAY + dt.timedelta(days=3)
    items = compute_deadlines(ctx, day)
    started = utcnow()
    write_snapshot(ctx, day, items, since=started)
    marked = _mark_first(ctx, day)
    # the console's background computation began before it and ends after it: its items are older
    write_snapshot(ctx, day, items, since=started - dt.timedelta(minutes=5))
    kept = snapshot_items(ctx, day)
    assert kept is not None and any(i.reference == marked for i in kept)
    with ctx.store.session() as s:
        snap = duty_items.snapshot(s, day)
        assert snap is not None and snap.computed_at == started and snap.items == len(items)
    # one that began later does replace it
    write_snapshot(ctx, day, items, since=started + dt.timedelta(seconds=1))
    assert snapshot_items(ctx, day) == items
