"""The receiving side's memory: which packages were imported (the replay check), and receipts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from stafet.store.clock import utcnow
from stafet.store.schema import ImportedPackage, Receipt


def imported_at(s: Session, package_ids: Sequence[str]) -> dict[str, dt.datetime]:
    """Package id → when it was imported, for those of ``package_ids`` that were."""
    return {pid: at for pid, at in s.execute(
        select(ImportedPackage.package_id, ImportedPackage.imported_at)
        .where(ImportedPackage.package_id.in_(package_ids)))}


def record_imports(s: Session, recipient: str, packages: Sequence[tuple[str, str, str, str]]) -> None:
    """Remember packages as imported by ``recipient``, one insert.

    ``(package id, sender, digest, consent ref)`` each; the consent ref is the one the
    package carried ("" under a legal duty): a withdrawal notice must name it.
    """
    now = utcnow()
    s.execute(insert(ImportedPackage), [
        {"package_id": pid, "sender": sender, "recipient": recipient, "digest": digest,
         "disposition": "imported", "imported_at": now, "consent_ref": ref}
        for pid, sender, digest, ref in packages])


def imported(s: Session, package_id: str) -> ImportedPackage | None:
    """The import of one package, if it was imported."""
    return s.get(ImportedPackage, package_id)


def imports(s: Session, package_ids: Sequence[str]) -> dict[str, ImportedPackage]:
    """Package id → its import, for those of ``package_ids`` that were imported."""
    return {p.package_id: p for p in s.scalars(
        select(ImportedPackage).where(ImportedPackage.package_id.in_(list(package_ids))))}


def add_receipt(s: Session, package_id: str, *, direction: str, org: str, disposition: str,
                digest: str) -> None:
    """A receipt sent (``out``, to ``org``) or accepted (``in``, from ``org``) for ``package_id``."""
    s.add(Receipt(package_id=package_id, direction=direction, org=org, disposition=disposition,
                  digest=digest, at=utcnow()))


def last_receipt_in(s: Session) -> dt.datetime | None:
    """When a receipt last came in."""
    return s.scalar(select(func.max(Receipt.at)).where(Receipt.direction == "in"))


def answered(s: Session, package_ids: Sequence[str]) -> set[str]:
    """Those of ``package_ids`` whose receipt was sent (direction ``out``)."""
    ids = list(package_ids)
    if not ids:
        return set()
    return set(s.scalars(select(Receipt.package_id).where(Receipt.direction == "out",
                                                          Receipt.package_id.in_(ids)).distinct()))


def awaiting_acknowledgement(s: Session, recipient: str) -> list[ImportedPackage]:
    """Packages imported for ``recipient`` that no receipt has answered yet, oldest first.

    Only a member whose ``acknowledge`` is ``person`` has any: a person acknowledges them.
    """
    sent = select(Receipt.package_id).where(Receipt.direction == "out")
    return list(s.scalars(select(ImportedPackage).where(ImportedPackage.recipient == recipient,
                                                        ImportedPackage.package_id.not_in(sent))
                          .order_by(ImportedPackage.imported_at)))
