"""Quarantined rows: what failed a check, kept (encrypted) for a data steward to decide."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from stafet.core.errors import DataError
from stafet.store.schema import Quarantine


def get(s: Session, qid: int) -> Quarantine | None:
    """One quarantined row by id."""
    return s.get(Quarantine, qid)


def listing(s: Session, *, show_all: bool = False, file: str | None = None) -> list[Quarantine]:
    """Quarantined rows by id: open ones unless ``show_all``; of one source file if given."""
    stmt = select(Quarantine).order_by(Quarantine.id)
    if not show_all:
        stmt = stmt.where(Quarantine.status == "open")
    if file:
        stmt = stmt.where(Quarantine.source_file == file)
    return list(s.scalars(stmt))


def of_files(s: Session, shas: Sequence[str]) -> list[Quarantine]:
    """The rows quarantined from the files with these sha256s, by file and row."""
    rows: list[Quarantine] = []
    for i in range(0, len(shas), 500):
        rows.extend(s.scalars(select(Quarantine).where(Quarantine.file_sha256.in_(shas[i:i + 500]))
                              .order_by(Quarantine.source_file, Quarantine.row)))
    return rows


def open_count(s: Session) -> int:
    """How many rows wait for a steward's decision."""
    return s.scalar(select(func.count()).select_from(Quarantine).where(Quarantine.status == "open")) or 0


def add_many(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Quarantine rows (column → value each), one multi-row insert."""
    s.execute(insert(Quarantine), rows)


def open_for_decision(s: Session, qid: int) -> Quarantine:
    """A quarantined row that still waits for a steward's decision.

    Raises:
        DataError: rule ``quarantine``: no such row, or it was decided already.
    """
    q = s.get(Quarantine, qid)
    if q is None:
        raise DataError("no such quarantined row", rule="quarantine", id=qid)
    if q.status != "open":
        raise DataError(f"quarantined row is already {q.status}", rule="quarantine", id=qid)
    return q
