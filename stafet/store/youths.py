"""Youths by pseudonym (the CPR itself is in the vault's ciphertext, see :class:`~stafet.store.db.Store`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from stafet.store.schema import Youth


def birth_date(s: Session, pseudonym: str) -> date | None:
    """A youth's birth date, None when the youth is unknown."""
    y = s.get(Youth, pseudonym)
    return y.birth_date if y is not None else None


def birth_date_of(s: Session, pseudonym: str) -> date:
    """A youth's birth date (the youth must exist: ``NoResultFound`` otherwise)."""
    return s.scalars(select(Youth.birth_date).where(Youth.pseudonym == pseudonym)).one()


def rows_of(s: Session, pseudonyms: Collection[str]) -> dict[str, Youth]:
    """The named youths' rows (those the store holds) by pseudonym, in one query.

    Read in ``s``: :meth:`~stafet.store.db.Store.cpr_of` and :func:`birth_date` of these
    youths then need no query of their own in that session.
    """
    if not pseudonyms:
        return {}
    return {y.pseudonym: y for y in s.scalars(select(Youth).where(Youth.pseudonym.in_(list(pseudonyms))))}


def birth_date_in(rows: Mapping[str, Youth], pseudonym: str) -> date:
    """:func:`birth_date_of` from rows read by :func:`rows_of` (``NoResultFound`` when not among them)."""
    y = rows.get(pseudonym)
    if y is None:
        raise NoResultFound("No row was found when one was required")
    return y.birth_date


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
