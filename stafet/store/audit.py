"""The hash-chained audit log: append an entry (or many), verify the chain, read entries.

Every entry holds the hash of its predecessor; :func:`verify_chain` finds the first link
that does not fit. Never put a CPR in an entry's details.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session

from stafet.core.errors import DataError
from stafet.store.clock import utcnow
from stafet.store.schema import AuditEntry

GENESIS = "0" * 64
_AUDIT_TABLE = cast(Table, AuditEntry.__table__)


def append(s: Session, actor: str, action: str, subject: str,
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Append one entry to the hash chain. Never put a CPR in ``details``.

    The entry is inserted first, so the transaction holds the database's write lock
    (SQLite) or the chain's advisory lock (PostgreSQL) before the predecessor is read:
    concurrent writers (parallel tasks, several workers) queue up instead of forking
    the chain.
    """
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(727272)"))
    entry = AuditEntry(at=utcnow(), actor=actor, action=action, subject=subject,
                       details=_plain(details or {}), prev_hash="", hash="")
    s.add(entry)
    s.flush()
    prev = s.scalars(select(AuditEntry.hash).where(AuditEntry.id < entry.id)
                     .order_by(AuditEntry.id.desc()).limit(1)).first()
    entry.prev_hash = prev or GENESIS
    entry.hash = _entry_hash(entry)
    s.flush()
    return entry


def append_many(s: Session, actor: str, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
    """Append ``(action, subject, details)`` entries to the hash chain, in order, at once.

    The same chain as :func:`append` entry by entry (the first entry takes the write lock
    before the predecessor is read), written with one multi-row insert: a receive pass
    audits every package it imports.
    """
    if not entries:
        return
    first = append(s, actor, *entries[0])
    prev, rows = first.hash, []
    for action, subject, details in entries[1:]:  # rows, not ORM objects: hashed as _entry_hash does
        row = {"at": utcnow(), "actor": actor, "action": action, "subject": subject,
               "details": _plain(details), "prev_hash": prev}
        row["hash"] = prev = _hash(prev, row["at"], actor, action, subject, row["details"])
        rows.append(row)
    if rows:
        s.execute(insert(_AUDIT_TABLE), rows)


def verify_chain(s: Session) -> int:
    """Check every link of the audit chain; returns the number of entries.

    Raises:
        DataError: rule ``audit_chain`` naming the first entry that does not fit.
    """
    prev, n = GENESIS, 0
    for e in s.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars():
        if e.prev_hash != prev or _entry_hash(e) != e.hash:
            raise DataError("audit log chain is broken", rule="audit_chain", entry=e.id)
        prev, n = e.hash, n + 1
    return n


def entries(s: Session, action: str) -> list[AuditEntry]:
    """The entries of one action."""
    return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [_plain(x) for x in v]
    if isinstance(v, date | datetime):
        return v.isoformat()
    return v


def _entry_hash(e: AuditEntry) -> str:
    return _hash(e.prev_hash, e.at, e.actor, e.action, e.subject, e.details)


def _hash(prev_hash: str, at: datetime, actor: str, action: str, subject: str, details: Any) -> str:
    body = json.dumps([prev_hash, at.isoformat(timespec="microseconds"), actor, action,
                       subject, details], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()
