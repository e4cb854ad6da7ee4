"""Consents: the rows behind consent-based handovers, their withdrawal."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stafet.core.errors import ConfigError
from stafet.store import audit
from stafet.store.clock import utcnow
from stafet.store.schema import ConsentRow, Youth


def get(s: Session, ref: str) -> ConsentRow | None:
    """One consent by reference."""
    return s.get(ConsentRow, ref)


def add(s: Session, ref: str, youth: str, payload: dict[str, Any]) -> None:
    """Add a consent, not withdrawn (``ref`` must be new: see :func:`get`)."""
    s.add(ConsentRow(ref=ref, youth=youth, payload=payload, withdrawn_date=None, updated_at=utcnow()))


def of_youth(s: Session, youth: str) -> list[ConsentRow]:
    """A youth's consents."""
    return list(s.scalars(select(ConsentRow).where(ConsentRow.youth == youth)))


def with_birth_dates(s: Session) -> list[tuple[ConsentRow, dt.date]]:
    """Every consent with its youth's birth date, by reference."""
    return [(c, born) for c, born in s.execute(select(ConsentRow, Youth.birth_date).join(
        Youth, Youth.pseudonym == ConsentRow.youth).order_by(ConsentRow.ref))]


def withdrawn_by(s: Session, today: dt.date) -> list[tuple[str, dt.date]]:
    """``(ref, withdrawn date)`` of the consents withdrawn on or before ``today``."""
    out = []
    for c in s.scalars(select(ConsentRow).where(ConsentRow.withdrawn_date.is_not(None),
                                                ConsentRow.withdrawn_date <= today)):
        assert c.withdrawn_date is not None
        out.append((c.ref, c.withdrawn_date))
    return out


def withdraw(s: Session, ref: str, on: dt.date, *, actor: str) -> None:
    """Record that consent ``ref`` is withdrawn from ``on`` (an earlier date stays; audited once).

    Raises:
        ConfigError: no such consent.
    """
    c = s.get(ConsentRow, ref)
    if c is None:
        raise ConfigError(f"no consent {ref}")
    if c.withdrawn_date is None or c.withdrawn_date > on:
        c.withdrawn_date = on
        c.payload = {**c.payload, "withdrawn_date": on.isoformat()}
        c.updated_at = utcnow()
        audit.append(s, actor, "consent.withdrawn", f"consent:{ref}", {"on": on.isoformat()})


def put(s: Session, ref: str, youth: str, payload: dict[str, Any], withdrawn_date: dt.date | None,
        updated_at: dt.datetime) -> None:
    """Write a consent as its source says it now is (added or replaced, by reference)."""
    s.merge(ConsentRow(ref=ref, youth=youth, payload=payload, withdrawn_date=withdrawn_date,
                       updated_at=updated_at))
