"""Duty notices and escalations sent (issue 17): one row per duty per step.

The unique (duty_key, step) is what makes the night idempotent: :func:`claim` returns a
row to send only when this step of this duty was never sent (or its send failed), so a
re-run, or two nights, never tell the same person twice. Every change is audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stafet.store import audit
from stafet.store.clock import utcnow
from stafet.store.schema import NoticeRow

STEPS = ("notice", "coordinator", "management")
"""The order of a duty's notices: the responsible person, then the coordinator, then management."""


def claim(s: Session, *, duty_key: str, step: str, rule: str, youth: str, responsible: str,
          recipient: str, addressee: str, due: dt.date, day: dt.date) -> NoticeRow | None:
    """The row to send for this step of this duty, or None when it was sent already."""
    if step not in STEPS:
        raise ValueError(f"unknown notice step {step!r}")
    row = s.scalars(select(NoticeRow).where(NoticeRow.duty_key == duty_key, NoticeRow.step == step)).first()
    if row is not None:
        return None if row.status == "sent" else row
    row = NoticeRow(duty_key=duty_key, step=step, rule=rule, youth=youth, responsible=responsible,
                    recipient=recipient, addressee=addressee, due=due, day=day, package_id="",
                    status="pending", last_error="", created_at=utcnow(), sent_at=None)
    s.add(row)
    s.flush()
    return row


def mark_sent(s: Session, notice_id: int, package_id: str, *, actor: str) -> None:
    """The notice left as package ``package_id``; audited."""
    row = s.get(NoticeRow, notice_id)
    assert row is not None
    row.status, row.package_id, row.sent_at, row.last_error = "sent", package_id, utcnow(), ""
    audit.append(s, actor, f"duty.{'notice' if row.step == 'notice' else 'escalated'}",
                 f"duty:{row.duty_key}", {"rule": row.rule, "step": row.step, "recipient": row.recipient,
                                          "package": package_id, "due": row.due.isoformat()})


def mark_failed(s: Session, notice_id: int, error: str) -> None:
    """The notice could not be sent now; the next night tries again."""
    row = s.get(NoticeRow, notice_id)
    assert row is not None
    row.status, row.last_error = "failed", error


def first_sent(s: Session, duty_keys: Sequence[str]) -> dict[tuple[str, str], dt.date]:
    """(duty_key, step) → the night's day each sent step was decided on."""
    out: dict[tuple[str, str], dt.date] = {}
    keys = list(duty_keys)
    for i in range(0, len(keys), 500):
        for k, step, day in s.execute(select(NoticeRow.duty_key, NoticeRow.step, NoticeRow.day)
                                      .where(NoticeRow.duty_key.in_(keys[i:i + 500]),
                                             NoticeRow.status == "sent")):
            out[(k, step)] = day
    return out


def listing(s: Session, *, recipient: str | None = None, limit: int = 200) -> list[NoticeRow]:
    """The latest notices, newest first (optionally those sent to ``recipient``)."""
    q = select(NoticeRow).order_by(NoticeRow.id.desc()).limit(limit)
    if recipient is not None:
        q = q.where(NoticeRow.recipient == recipient)
    return list(s.scalars(q))


def counts(s: Session) -> dict[str, int]:
    """Sent notices per step, and failed ones (counts only)."""
    out = {st: 0 for st in STEPS} | {"failed": 0}
    for step, status, n in s.execute(select(NoticeRow.step, NoticeRow.status, func.count())
                                     .group_by(NoticeRow.step, NoticeRow.status)):
        if status == "sent":
            out[step] += n
        elif status == "failed":
            out["failed"] += n
    return out


def escalated_count(s: Session, responsible: str | None = None) -> int:
    """How many duties went up a step (coordinator or management), of ``responsible`` or all."""
    q = select(func.count(func.distinct(NoticeRow.duty_key))).where(
        NoticeRow.step.in_(("coordinator", "management")), NoticeRow.status == "sent")
    if responsible is not None:
        q = q.where(NoticeRow.responsible == responsible)
    return int(s.scalar(q) or 0)
