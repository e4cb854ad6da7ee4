"""The queries behind the network's statistics (``stafet statistics``): facts, never people.

Each query returns plain tuples of what a count needs — kind, dates, institution,
municipality, reason code, arrival time — keyed by the youth's pseudonym only where a
youth must be counted once (a cohort). Nothing here returns a CPR; the counting and the
suppression of small counts are :mod:`stafet.reports.statistics`. Only live records of our
own sources count (withdrawn ones and records received in packages do not).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from stafet.store.schema import RecordRow, Youth

SCHOOL_KINDS = ("enrolment", "dropout", "completion", "concern_flag")
"""The school-administration events the statistics count."""


class SchoolEventRow(NamedTuple):
    """One school event: what the monthly tables count."""

    kind: str
    youth: str  # pseudonym: only to tell youths apart (cohorts), never shown
    event_date: date
    institution: str
    municipality: str  # the youth's home municipality, as the school reported it
    reason_code: str  # dropouts only, else ""
    received_at: datetime  # naive UTC: when the record's file first reached stafet


class CaseRow(NamedTuple):
    """One family-department transition case."""

    youth: str
    case_no: str
    meeting_date: date | None
    municipality: str  # the export's municipality (its file name), "" when unknown
    received_at: datetime


class RegistrationRow(NamedTuple):
    """One registration in a municipality's youth register."""

    youth: str
    municipality: str
    moved_in: date
    moved_out: date | None


def _day(v: Any) -> date | None:
    return date.fromisoformat(v) if v else None


def _live(kinds: Sequence[str]) -> Any:
    return (select(RecordRow.kind, RecordRow.youth, RecordRow.payload, RecordRow.origin_municipality,
                   RecordRow.received_at)
            .where(RecordRow.kind.in_(list(kinds)), RecordRow.withdrawn.is_(False))
            .order_by(RecordRow.id))


def school_events(s: Session) -> list[SchoolEventRow]:
    """Every live enrolment, dropout, completion and concern flag, by id."""
    out = []
    for kind, youth, p, _origin, received_at in s.execute(_live(SCHOOL_KINDS)):
        out.append(SchoolEventRow(kind, youth, date.fromisoformat(p["event_date"]),
                                  str(p.get("institution", "")), str(p.get("home_municipality", "")),
                                  str(p.get("reason_code") or ""),
                                  received_at))
    return out


def transition_cases(s: Session) -> list[CaseRow]:
    """Every live transition case, by id."""
    return [CaseRow(youth, str(p.get("case_no", "")), _day(p.get("meeting_date")), origin or "", received_at)
            for _kind, youth, p, origin, received_at in s.execute(_live(("transition_case",)))]


def registrations(s: Session) -> list[RegistrationRow]:
    """Every live registration of the youth register, by id."""
    return [RegistrationRow(youth, str(p.get("municipality", "")), date.fromisoformat(p["moved_in"]),
                            _day(p.get("moved_out")))
            for _kind, youth, p, _origin, _at in s.execute(_live(("registration",)))]


def births(s: Session) -> dict[str, date]:
    """Every youth's birth date by pseudonym (a cohort is a birth year)."""
    return dict(s.execute(select(Youth.pseudonym, Youth.birth_date)).tuples().all())
