"""The youth register's query: every live fact about the youths a register extract or grundskole export names.

The duties of :mod:`stafet.duties.youth_register` (the 15–17 duty, the 18–24 target
group, pupils not ready, the transition from grundskole) judge the youths that the
municipality's register (``registration``) or a primary school (``pupil``) names, by
what else the store knows of them. One query gathers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stafet.store.schema import RecordRow, Youth

LISTING_KINDS = ("registration", "pupil")
"""The record kinds that put a youth on the municipality's books."""


def facts_of_listed(s: Session, kinds: Sequence[str]) -> list[Any]:
    """Live records of ``kinds`` about every youth with a live registration or pupil record.

    Each row: ``(youth, birth_date, id, kind, payload)``, by youth, then record id.
    Withdrawn records are left out, also as the record that lists a youth.
    """
    listed = select(RecordRow.youth).where(RecordRow.kind.in_(LISTING_KINDS),
                                           RecordRow.withdrawn.is_(False))
    return list(s.execute(
        select(RecordRow.youth, Youth.birth_date, RecordRow.id, RecordRow.kind, RecordRow.payload)
        .join(Youth, Youth.pseudonym == RecordRow.youth)
        .where(RecordRow.kind.in_(list(kinds)), RecordRow.withdrawn.is_(False),
               RecordRow.youth.in_(listed))
        .order_by(RecordRow.youth, RecordRow.id)).all())
