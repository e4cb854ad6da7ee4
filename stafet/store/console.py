"""The console's queries: every list a page shows, one page at a time (LIMIT/OFFSET).

No function here loads a whole table: lists take ``limit`` and ``offset`` and come with
a count; the charts read a bounded window of nights. A page's keys are found first (from an
index, offset included) and only its rows are read whole; each list's filter and order has
an index (revision 0009). Scoping (a steward's sources, a
member's organisation) is part of each query, never a filter after the fact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from stafet.store.schema import (
    Handover,
    ImportedPackage,
    ImportedRecordRow,
    Quarantine,
    Receipt,
    RecordRow,
    SourceFile,
    Youth,
)


def _sources(stmt: Any, column: Any, sources: Sequence[str] | None) -> Any:
    return stmt if sources is None else stmt.where(column.in_(list(sources)))


# --- quarantine -------------------------------------------------------------------
def quarantine_groups(s: Session, sources: Sequence[str] | None) -> list[tuple[str, int]]:
    """Open quarantined rows per rule (most rows first) within ``sources`` (None: every source)."""
    stmt = _sources(select(Quarantine.rule, func.count()).where(Quarantine.status == "open"),
                    Quarantine.source, sources)
    rows = s.execute(stmt.group_by(Quarantine.rule).order_by(func.count().desc(), Quarantine.rule))
    return [(str(r), int(n)) for r, n in rows]


def quarantine_page(s: Session, sources: Sequence[str] | None, *, rule: str | None = None,
                    status: str = "open", limit: int = 50, offset: int = 0) -> list[Quarantine]:
    """Quarantined rows by id within ``sources``, of one rule if given."""
    ids = _sources(select(Quarantine.id).where(Quarantine.status == status), Quarantine.source, sources)
    if rule:
        ids = ids.where(Quarantine.rule == rule)
    ids = ids.order_by(Quarantine.id).limit(limit).offset(offset)
    return list(s.scalars(select(Quarantine).where(Quarantine.id.in_(ids.scalar_subquery()))
                          .order_by(Quarantine.id)))


def quarantine_ids(s: Session, sources: Sequence[str] | None, *, rule: str, limit: int = 1000) -> list[int]:
    """Ids of the open rows of one rule within ``sources`` (a bulk decision on a rule group)."""
    stmt = _sources(select(Quarantine.id).where(Quarantine.status == "open", Quarantine.rule == rule),
                    Quarantine.source, sources)
    return [int(i) for i in s.scalars(stmt.order_by(Quarantine.id).limit(limit))]


def quarantine_of_file(s: Session, sha256: str, *, limit: int = 50) -> list[Quarantine]:
    """The first rows quarantined from one file."""
    return list(s.scalars(select(Quarantine).where(Quarantine.file_sha256 == sha256)
                          .order_by(Quarantine.row).limit(limit)))


# --- source files (the validation history) -----------------------------------------
def files_page(s: Session, sources: Sequence[str] | None, *, limit: int = 50,
               offset: int = 0) -> list[SourceFile]:
    """Received source files, newest first, within ``sources``."""
    stmt = _sources(select(SourceFile), SourceFile.source, sources)
    return list(s.scalars(stmt.order_by(SourceFile.received_at.desc(), SourceFile.sha256)
                          .limit(limit).offset(offset)))


def files_count(s: Session, sources: Sequence[str] | None) -> int:
    """How many source files were received within ``sources``."""
    return s.scalar(_sources(select(func.count()).select_from(SourceFile), SourceFile.source, sources)) or 0


def file(s: Session, sha256: str) -> SourceFile | None:
    """One received file by digest."""
    return s.get(SourceFile, sha256)


def file_counts_since(s: Session, sources: Sequence[str] | None,
                      since: dt.datetime) -> list[tuple[str, dt.datetime, dict[str, Any]]]:
    """``(source, received_at, counts)`` of every file received since ``since`` (the charts' window)."""
    stmt = _sources(select(SourceFile.source, SourceFile.received_at, SourceFile.counts)
                    .where(SourceFile.received_at >= since), SourceFile.source, sources)
    return [(str(a), b, dict(c or {})) for a, b, c in s.execute(stmt.order_by(SourceFile.received_at))]


# --- packages received ---------------------------------------------------------------
def packages_page(s: Session, recipient: str, *, limit: int = 50, offset: int = 0) -> list[ImportedPackage]:
    """Packages imported for ``recipient``, newest first."""
    order = (ImportedPackage.imported_at.desc(), ImportedPackage.package_id.desc())
    ids = (select(ImportedPackage.package_id).where(ImportedPackage.recipient == recipient)
           .order_by(*order).limit(limit).offset(offset))
    return list(s.scalars(select(ImportedPackage).where(ImportedPackage.package_id.in_(ids.scalar_subquery()))
                          .order_by(*order)))


def packages_count(s: Session, recipient: str) -> int:
    """How many packages were imported for ``recipient``."""
    return s.scalar(select(func.count()).select_from(ImportedPackage)
                    .where(ImportedPackage.recipient == recipient)) or 0


def package(s: Session, package_id: str) -> ImportedPackage | None:
    """One imported package by id."""
    return s.get(ImportedPackage, package_id)


def package_records(s: Session, recipient: str, package_id: str, *,
                    limit: int = 200) -> list[ImportedRecordRow]:
    """The records a package brought ``recipient``, in their order in the package."""
    return list(s.scalars(select(ImportedRecordRow).where(ImportedRecordRow.recipient == recipient,
                                                          ImportedRecordRow.package_id == package_id)
                          .order_by(ImportedRecordRow.row).limit(limit)))


def receipts_sent(s: Session, package_ids: Sequence[str]) -> dict[str, Receipt]:
    """The receipt we sent (direction ``out``) for each of these packages, when there is one."""
    if not package_ids:
        return {}
    rows = s.scalars(select(Receipt).where(Receipt.direction == "out",
                                           Receipt.package_id.in_(list(package_ids))))
    return {r.package_id: r for r in rows}


# --- handovers (the message log) -------------------------------------------------------
def _handovers(stmt: Select[Any], org: str | None, states: Sequence[str] | None,
               older_than: dt.datetime | None, newer_than: dt.datetime | None) -> Select[Any]:
    if org:
        stmt = stmt.where(or_(Handover.sender == org, Handover.recipient == org))
    if states:
        stmt = stmt.where(Handover.status.in_(list(states)))
    if older_than is not None:
        stmt = stmt.where(Handover.created_at <= older_than)
    if newer_than is not None:
        stmt = stmt.where(Handover.created_at >= newer_than)
    return stmt


def handovers_page(s: Session, *, org: str | None = None, states: Sequence[str] | None = None,
                   older_than: dt.datetime | None = None, newer_than: dt.datetime | None = None,
                   limit: int = 50, offset: int = 0) -> list[Handover]:
    """Handovers, newest first, filtered by organisation (sender or recipient), state and age."""
    order = (Handover.created_at.desc(), Handover.id.desc())
    ids = _handovers(select(Handover.id), org, states, older_than, newer_than).order_by(*order)
    keys = ids.limit(limit).offset(offset).scalar_subquery()
    return list(s.scalars(select(Handover).where(Handover.id.in_(keys)).order_by(*order)))


def handovers_count(s: Session, *, org: str | None = None, states: Sequence[str] | None = None,
                    older_than: dt.datetime | None = None, newer_than: dt.datetime | None = None) -> int:
    """How many handovers :func:`handovers_page` pages through."""
    return s.scalar(_handovers(select(func.count()).select_from(Handover), org, states, older_than,
                               newer_than)) or 0


def receipts_received(s: Session, package_ids: Sequence[str]) -> dict[str, Receipt]:
    """The receipt accepted (direction ``in``) for each of these handovers, when there is one."""
    if not package_ids:
        return {}
    rows = s.scalars(select(Receipt).where(Receipt.direction == "in",
                                           Receipt.package_id.in_(list(package_ids))))
    return {r.package_id: r for r in rows}


# --- a youth ----------------------------------------------------------------------------
def youth_exists(s: Session, pseudonym: str) -> bool:
    """Whether the store holds this youth."""
    return s.get(Youth, pseudonym) is not None


def youth_imported(s: Session, recipient: str, youth: str, *, limit: int = 500) -> list[ImportedRecordRow]:
    """What ``recipient`` received about ``youth``, oldest first."""
    return list(s.scalars(select(ImportedRecordRow).where(ImportedRecordRow.recipient == recipient,
                                                          ImportedRecordRow.youth == youth)
                          .order_by(ImportedRecordRow.received_at, ImportedRecordRow.id).limit(limit)))


def youth_handovers(s: Session, org: str, youth: str, *, limit: int = 200) -> list[Handover]:
    """Handovers about ``youth`` that ``org`` sent or received, oldest first."""
    return list(s.scalars(select(Handover).where(Handover.youth == youth,
                                                 or_(Handover.sender == org, Handover.recipient == org))
                          .order_by(Handover.created_at).limit(limit)))


def records_by_ids(s: Session, ids: Sequence[int]) -> list[RecordRow]:
    """Our own records by id (what a handover carried)."""
    if not ids:
        return []
    return list(s.scalars(select(RecordRow).where(RecordRow.id.in_(list(ids))).order_by(RecordRow.id)))
