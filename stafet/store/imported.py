"""Records received in packages, kept apart from our own source records (:class:`ImportedRecordRow`).

A package adds rows here, scoped by its recipient and its id; it never updates a source
record (:mod:`stafet.store.records`) nor another package's rows. Routing, deadlines and
reports read source records only; what a node received is read here, explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from stafet.store.clock import utcnow
from stafet.store.schema import ImportedRecordRow


def add(s: Session, recipient: str,
        packages: Sequence[tuple[str, str, Sequence[tuple[str, str, str, str, str]]]]) -> int:
    """Keep what ``recipient`` received: ``(package id, sender, rows)`` per package, one insert for all.

    Each row is ``(kind, youth, natural key, payload JSON, digest)`` in the package's order;
    ``payload JSON`` is the payload's canonical JSON (:func:`stafet.store.db.canonical_json`).
    The caller has checked that no two rows of a package share a kind and natural key.
    Returns how many records were kept.
    """
    from stafet.store.db import _insert_many

    now = utcnow()
    values = [[recipient, pid, sender, kind, youth, nk, payload, digest, i, now, False]
              for pid, sender, rows in packages
              for i, (kind, youth, nk, payload, digest) in enumerate(rows, 1)]
    if values:
        _insert_many(s, ImportedRecordRow.__table__, _COLUMNS, values, raw=("payload",))
    return len(values)


_COLUMNS = ("recipient", "package_id", "sender", "kind", "youth", "natural_key", "payload", "digest", "row",
            "received_at", "withdrawn")


def of_youth(s: Session, youth: str, recipient: str | None = None) -> list[ImportedRecordRow]:
    """What was received about one youth (by any of our organisations, or ``recipient``), oldest first."""
    q = select(ImportedRecordRow).where(ImportedRecordRow.youth == youth)
    if recipient is not None:
        q = q.where(ImportedRecordRow.recipient == recipient)
    return list(s.scalars(q.order_by(ImportedRecordRow.id)))


def of_package(s: Session, recipient: str, package_id: str) -> list[ImportedRecordRow]:
    """The records ``recipient`` received in one package, in the package's order."""
    return list(s.scalars(select(ImportedRecordRow).where(
        ImportedRecordRow.recipient == recipient, ImportedRecordRow.package_id == package_id)
        .order_by(ImportedRecordRow.row)))


def live(s: Session, recipient: str, kinds: Sequence[str]) -> list[Any]:
    """Received records of ``kinds`` not withdrawn, by id: ``(id, kind, youth, payload, sender)``.

    For a receiving node that asks for what it received (never mixed into source data).
    """
    return list(s.execute(select(ImportedRecordRow.id, ImportedRecordRow.kind, ImportedRecordRow.youth,
                                 ImportedRecordRow.payload, ImportedRecordRow.sender)
                          .where(ImportedRecordRow.recipient == recipient,
                                 ImportedRecordRow.kind.in_(list(kinds)),
                                 ImportedRecordRow.withdrawn.is_(False))
                          .order_by(ImportedRecordRow.id)).all())


def withdraw(s: Session, recipient: str, package_ids: Sequence[str]) -> int:
    """Mark what ``recipient`` received in these packages as withdrawn; returns how many records.

    The caller has checked that the notice's signer may withdraw each of them
    (:func:`stafet.exchange.withdrawals.apply_notice`).
    """
    rows = list(s.scalars(select(ImportedRecordRow).where(ImportedRecordRow.recipient == recipient,
                                                          ImportedRecordRow.package_id.in_(package_ids))))
    for r in rows:
        r.withdrawn = True
    return len(rows)
