"""Source files: every file an ingest received, with its status and counts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stafet.store.schema import SourceFile


def received_since(s: Session, since: dt.datetime) -> list[SourceFile]:
    """The files received since ``since``, in the order they came."""
    return list(s.scalars(select(SourceFile).where(SourceFile.received_at >= since)
                          .order_by(SourceFile.received_at)))


def last_received(s: Session) -> dt.datetime | None:
    """When a file was last received."""
    return s.scalar(select(func.max(SourceFile.received_at)))


def get(s: Session, sha256: str) -> SourceFile | None:
    """A received file by the sha256 of its content."""
    return s.get(SourceFile, sha256)


def put(s: Session, *, sha256: str, name: str, source: str, status: str, reason: str, archive: str,
        counts: dict[str, Any], received_at: dt.datetime) -> None:
    """Write what became of a received file (added or replaced, by sha256)."""
    s.merge(SourceFile(sha256=sha256, name=name, source=source, status=status, reason=reason,
                       archive=archive, counts=counts, received_at=received_at))


def find(s: Session, key: str) -> list[SourceFile]:
    """The received files ``key`` names: its sha256, a prefix of it (6+ hex digits) or its file name.

    Newest first; a name received twice (different content) gives both.
    """
    key = key.strip()
    q = select(SourceFile).order_by(SourceFile.received_at.desc())
    hexish = len(key) >= 6 and all(c in "0123456789abcdef" for c in key.lower())
    if hexish:
        found = list(s.scalars(q.where(SourceFile.sha256.startswith(key.lower(), autoescape=True))))
        if found:
            return found
    return list(s.scalars(q.where(SourceFile.name == key)))
