"""Youths by pseudonym (the CPR itself is in the vault's ciphertext, see :class:`~stafet.store.db.Store`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from stafet.store.schema import Youth


def birth_date(s: Session, pseudonym: str) -> date | None:
    """A youth's birth date, None when the youth is unknown."""
    y = s.get(Youth, pseudonym)
    return y.birth_date if y is not None else None


def birth_date_of(s: Session, pseudonym: str) -> date:
    """A youth's birth date (the youth must exist: ``NoResultFound`` otherwise)."""
    return s.scalars(select(Youth.birth_date).where(Youth.pseudonym == pseudonym)).one()


def births(s: Session) -> dict[str, date]:
    """Every youth's birth date by pseudonym."""
    return dict(s.execute(select(Youth.pseudonym, Youth.birth_date)).tuples().all())


def births_of(s: Session, pseudonyms: Sequence[str]) -> dict[str, date]:
    """The birth dates of the named youths (those the store holds) by pseudonym."""
    if not pseudonyms:
        return {}
    return dict(s.execute(select(Youth.pseudonym, Youth.birth_date)
                          .where(Youth.pseudonym.in_(list(pseudonyms)))).tuples().all())


def pseudonyms(s: Session) -> list[str]:
    """Every youth's pseudonym, sorted (to walk the youths in batches)."""
    return list(s.scalars(select(Youth.pseudonym).order_by(Youth.pseudonym)))
