"""Contacts with a youth registered by a person (CLI or console): evidence that closes a duty.

Kept in a table of their own, never in ``records``: what a person registers does not
change what a source system said. Every registration is audited (who, when, which form).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from stafet.store import audit
from stafet.store.clock import utcnow
from stafet.store.schema import ContactRow

FORMS = ("samtale", "telefon", "moede", "brev", "mail", "sms", "hjemmebesoeg")
"""The forms of contact a person can register (the UU plan export's words, plus mail and møde)."""

PARTIES = ("youth", "custody_holder", "school_counsellor")
"""Whom the contact reached: the youth, the custody holder (under 18), the school's study counsellor."""


def add(
    s: Session, *, youth: str, org: str, day: dt.date, form: str, note: str, by: str, party: str = "youth"
) -> ContactRow:
    """Register a contact; audited as ``contact.registered`` (the note is not in the audit)."""
    row = ContactRow(youth=youth, org=org, day=day, form=form, party=party, note=note, by=by, at=utcnow())
    s.add(row)
    s.flush()
    audit.append(
        s,
        by,
        "contact.registered",
        f"youth:{youth}",
        {"org": org, "day": day.isoformat(), "form": form, "party": party, "contact": row.id},
    )
    return row


def by_youth(s: Session) -> dict[str, set[tuple[dt.date, str, str]]]:
    """Every youth's registered contacts as ``(day, org, party)``."""
    out: dict[str, set[tuple[dt.date, str, str]]] = defaultdict(set)
    for youth, day, org, party in s.execute(
        select(ContactRow.youth, ContactRow.day, ContactRow.org, ContactRow.party)
    ):
        out[youth].add((day, org, party))
    return dict(out)


def by_youth_of(s: Session, youths: Sequence[str]) -> dict[str, set[tuple[dt.date, str, str]]]:
    """:func:`by_youth` for the named youths only."""
    out: dict[str, set[tuple[dt.date, str, str]]] = defaultdict(set)
    if not youths:
        return {}
    for youth, day, org, party in s.execute(
        select(ContactRow.youth, ContactRow.day, ContactRow.org, ContactRow.party)
        .where(ContactRow.youth.in_(list(youths)))
    ):
        out[youth].add((day, org, party))
    return dict(out)


def youths_since(s: Session, at: dt.datetime) -> list[str]:
    """The youths with a contact registered at or after ``at``, sorted."""
    return sorted(set(s.scalars(select(ContactRow.youth).where(ContactRow.at >= at))))


def of_youth(s: Session, youth: str) -> list[ContactRow]:
    """A youth's registered contacts, oldest first."""
    return list(
        s.scalars(select(ContactRow).where(ContactRow.youth == youth).order_by(ContactRow.day, ContactRow.id))
    )
