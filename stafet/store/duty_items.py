"""The duty clock's daily snapshot: one day's open duties, as the night (or the console) computed them.

``duty_snapshots`` says that a day was computed and when; ``duty_items`` holds its items
(never a CPR: the youth by pseudonym and the masked CPR for display). The console pages
through them (LIMIT/OFFSET, scoped by the responsible organisation in SQL) instead of
recomputing the clock in a request; a registered contact replaces one youth's items.
Items are ordered as the duty clock orders them: by due date (overdue, longest first, then
due soon, then open), rule, youth, reference.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from stafet.store.schema import DutyItemRow, DutySnapshotRow

COLUMNS = ("rule", "youth", "responsible", "due", "reference", "status", "days_overdue", "days_left",
           "masked_cpr", "contact")
"""What an item holds (besides its day and when it was computed)."""
_BATCH = 5000


def _rows(day: dt.date, items: Iterable[Mapping[str, Any]], at: dt.datetime) -> list[dict[str, Any]]:
    return [{**{k: item[k] for k in COLUMNS}, "day": day, "computed_at": at} for item in items]


def _insert(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    for i in range(0, len(rows), _BATCH):
        s.execute(insert(DutyItemRow), list(rows[i:i + _BATCH]))


def replace_day(s: Session, day: dt.date, items: Iterable[Mapping[str, Any]],
                computed_at: dt.datetime) -> int:
    """Make ``items`` the snapshot of ``day``; snapshots of earlier days go. Returns how many items.

    ``computed_at`` is when the computation began. A snapshot of ``day`` that began later
    (the night's, while the console's background computation of the same day was still
    running, or the other way round) is newer and is kept: nothing is written, and its
    count is returned.
    """
    held = s.get(DutySnapshotRow, day)
    if held is not None and held.computed_at > computed_at:
        return int(held.items)
    rows = _rows(day, items, computed_at)
    s.execute(delete(DutyItemRow).where(DutyItemRow.day <= day))
    s.execute(delete(DutySnapshotRow).where(DutySnapshotRow.day <= day))
    s.add(DutySnapshotRow(day=day, computed_at=computed_at, items=len(rows)))
    s.flush()
    _insert(s, rows)
    return len(rows)


def replace_youth(s: Session, day: dt.date, youth: str, items: Iterable[Mapping[str, Any]],
                  computed_at: dt.datetime) -> bool:
    """Replace one youth's items in ``day``'s snapshot; False (nothing written) when there is none."""
    snap = s.get(DutySnapshotRow, day)
    if snap is None:
        return False
    s.execute(delete(DutyItemRow).where(DutyItemRow.day == day, DutyItemRow.youth == youth))
    _insert(s, _rows(day, items, computed_at))
    snap.items = s.scalar(select(func.count()).select_from(DutyItemRow).where(DutyItemRow.day == day)) or 0
    return True


def snapshot(s: Session, day: dt.date) -> DutySnapshotRow | None:
    """The snapshot of ``day``, or None when that day was not computed."""
    return s.get(DutySnapshotRow, day)


def items_of_day(s: Session, day: dt.date) -> list[dict[str, Any]]:
    """Every item of ``day``'s snapshot, as plain values (:data:`COLUMNS`), in no particular order."""
    cols = [getattr(DutyItemRow, k) for k in COLUMNS]
    rows = s.execute(select(*cols).where(DutyItemRow.day == day))
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def _scoped(stmt: Any, day: dt.date, responsible: str | None) -> Any:
    stmt = stmt.where(DutyItemRow.day == day)
    return stmt if responsible is None else stmt.where(DutyItemRow.responsible == responsible)


def page(s: Session, day: dt.date, responsible: str | None = None, *, limit: int = 50,
         offset: int = 0) -> list[DutyItemRow]:
    """One page of ``day``'s items (of one responsible organisation when given), in the clock's order."""
    order = (DutyItemRow.due, DutyItemRow.rule, DutyItemRow.youth, DutyItemRow.reference, DutyItemRow.id)
    ids = _scoped(select(DutyItemRow.id), day, responsible).order_by(*order).limit(limit).offset(offset)
    return list(s.scalars(select(DutyItemRow).where(DutyItemRow.id.in_(ids.scalar_subquery()))
                          .order_by(*order)))


def counts(s: Session, day: dt.date, responsible: str | None = None) -> dict[str, int]:
    """``day``'s items per status (of one responsible organisation when given)."""
    stmt = _scoped(select(DutyItemRow.status, func.count()), day, responsible)
    return {str(st): int(n) for st, n in s.execute(stmt.group_by(DutyItemRow.status))}


def of_youth(s: Session, day: dt.date, youth: str, responsible: str | None = None) -> list[DutyItemRow]:
    """One youth's items of ``day`` (held by one responsible organisation when given)."""
    stmt = _scoped(select(DutyItemRow), day, responsible).where(DutyItemRow.youth == youth)
    return list(s.scalars(stmt.order_by(DutyItemRow.due, DutyItemRow.rule, DutyItemRow.reference)))
