"""Inquiries about a youth and their answers (issue 18): the rows of both sides, and their receipts.

Plain functions on the caller's session. The asking member keeps an ``out`` row from
the moment its inquiry is sent; the asked UU an ``in`` row when the inquiry is received.
What an answer carries is received apart (:mod:`stafet.store.imported`); here only that
it came, from whom, and on what basis.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from stafet.store.clock import utcnow
from stafet.store.schema import InquiryRow


def add(s: Session, *, package_id: str, org: str, direction: str, asker: str, guidance: str, youth: str,
        question: str, digest: str, status: str) -> InquiryRow:
    """Keep one side of an inquiry (``out``: sent by ``org``; ``in``: received by ``org``)."""
    row = InquiryRow(package_id=package_id, org=org, direction=direction, asker=asker, guidance=guidance,
                     youth=youth, question=question, digest=digest, status=status, created_at=utcnow(),
                     answer_id="", answer_digest="", answer_outcome="", answer_basis="", answer_records=0,
                     answered_by="")
    s.add(row)
    s.flush()
    return row


def get(s: Session, org: str, package_id: str) -> InquiryRow | None:
    """``org``'s row of the inquiry ``package_id``."""
    return s.scalars(select(InquiryRow).where(InquiryRow.org == org,
                                              InquiryRow.package_id == package_id)).first()


def by_answer(s: Session, org: str, answer_id: str) -> InquiryRow | None:
    """``org``'s row of the inquiry that the answer ``answer_id`` answers (sent or received)."""
    if not answer_id:
        return None
    return s.scalars(select(InquiryRow).where(InquiryRow.org == org,
                                              InquiryRow.answer_id == answer_id)).first()


def exists(s: Session, package_ids: Sequence[str]) -> set[str]:
    """Those of ``package_ids`` that some organisation here holds as an inquiry (received or sent)."""
    ids = list(package_ids)
    if not ids:
        return set()
    return set(s.scalars(select(InquiryRow.package_id).where(InquiryRow.package_id.in_(ids)).distinct()))


def received(s: Session, org: str, package_id: str) -> InquiryRow | None:
    """The inquiry ``package_id`` as ``org`` received it (direction ``in``)."""
    row = get(s, org, package_id)
    return row if row is not None and row.direction == "in" else None


def listing(s: Session, org: str | None = None, status: str | None = None) -> list[InquiryRow]:
    """Inquiries held by ``org`` (every organisation's when None), newest first."""
    q = select(InquiryRow)
    if org is not None:
        q = q.where(InquiryRow.org == org)
    if status is not None:
        q = q.where(InquiryRow.status == status)
    return list(s.scalars(q.order_by(InquiryRow.created_at.desc(), InquiryRow.id.desc())))


def acknowledged(s: Session, row: InquiryRow, *, answer: bool = False) -> None:
    """The receipt for the inquiry (or, ``answer``, for its answer) came back."""
    if answer:
        row.answer_acknowledged_at = row.answer_acknowledged_at or utcnow()
    else:
        row.acknowledged_at = row.acknowledged_at or utcnow()


def answered(s: Session, row: InquiryRow, *, answer_id: str, digest: str, outcome: str, basis: str,
             records: int, by: str = "", at: dt.datetime | None = None) -> None:
    """The inquiry is answered: sent by the UU (``in`` row) or received by the asker (``out`` row)."""
    row.status = "answered"
    row.answer_id, row.answer_digest, row.answer_outcome = answer_id, digest, outcome
    row.answer_basis, row.answer_records, row.answered_by = basis, records, by
    row.answered_at = at or utcnow()


__all__ = ["acknowledged", "add", "answered", "by_answer", "exists", "get", "listing", "received"]
