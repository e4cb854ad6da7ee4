"""The receiving side's memory: which packages were imported (the replay check), receipts, and inbox claims.

Inbox claims (revision 0011, issue 21): on PostgreSQL a receive pass claims the inbox files
it is about to open (:func:`register_files`, then :func:`claim_files` under ``SELECT … FOR
UPDATE SKIP LOCKED`` and a lease), so two passes over one inbox at once never import or
answer the same package twice; :func:`release_files` drops the claims when the files left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, delete, func, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from stafet.store.clock import utcnow
from stafet.store.schema import ImportedPackage, InboxClaim, Receipt

RECEIPTS = cast(Table, Receipt.__table__)
"""The receipts table (a plain insert: no flush of the session)."""
INBOX_CLAIM_SECONDS = 600
"""How long a claim on an inbox file holds (PostgreSQL) before another run may take it."""


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
    """A receipt sent (``out``, to ``org``) or accepted (``in``, from ``org``) for ``package_id``.

    A plain insert into the table: the same row as adding a ``Receipt``, without a flush.
    """
    s.execute(insert(RECEIPTS), [{"package_id": package_id, "direction": direction, "org": org,
                                 "disposition": disposition, "digest": digest, "at": utcnow()}])


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


# --- inbox claims (PostgreSQL) ------------------------------------------------------


def claims_apply(s: Session) -> bool:
    """Whether this store claims inbox files (PostgreSQL: concurrent passes; SQLite has one writer)."""
    return s.get_bind().dialect.name == "postgresql"


def register_files(s: Session, org: str, names: Sequence[str]) -> None:
    """Make a claim row for each of ``names`` that has none (unclaimed: its lease is already over).

    Its own short transaction before :func:`claim_files`: an insert that meets another
    transaction's uncommitted insert of the same file waits for it, so keep it brief.
    Sorted, so two registrations of overlapping files take their locks in one order.
    """
    if not names:
        return
    free = utcnow() - dt.timedelta(seconds=1)
    s.execute(pg_insert(InboxClaim).values([{"org": org, "name": n, "claimed_by": "", "claimed_until": free}
                                           for n in sorted(set(names))]).on_conflict_do_nothing())


def claim_files(s: Session, org: str, names: Sequence[str], *, claimant: str, takeover: Sequence[str] = (),
                lease_seconds: float = INBOX_CLAIM_SECONDS) -> list[str]:
    """Claim those of ``names`` (registered) that nobody else holds; the names claimed, sorted.

    ``SELECT … FOR UPDATE SKIP LOCKED``: a file another transaction is claiming is skipped,
    not waited for; so is one claimed by someone else whose lease holds, unless that
    someone is in ``takeover`` (a run known to be dead). The claim is committed with the
    caller's transaction.
    """
    if not names:
        return []
    wall = utcnow()
    rows = list(s.scalars(select(InboxClaim).where(
        InboxClaim.org == org, InboxClaim.name.in_(sorted(set(names))),
        or_(InboxClaim.claimed_until <= wall, InboxClaim.claimed_by.in_([claimant, *takeover])))
        .order_by(InboxClaim.name).with_for_update(skip_locked=True)))
    until = wall + dt.timedelta(seconds=lease_seconds)
    for row in rows:
        row.claimed_by, row.claimed_until = claimant, until
    s.flush()
    return [row.name for row in rows]


def release_files(s: Session, org: str, names: Sequence[str], *, claimant: str) -> int:
    """Drop ``claimant``'s claims on ``names`` (the files left the inbox, or the pass is over)."""
    if not names:
        return 0
    r = s.execute(delete(InboxClaim).where(InboxClaim.org == org, InboxClaim.name.in_(list(names)),
                                           InboxClaim.claimed_by == claimant))
    return int(r.rowcount or 0)  # type: ignore[attr-defined]


def inbox_claims(s: Session) -> dict[str, int]:
    """Inbox files per claimant whose claim still holds (operations: who is receiving what)."""
    return {str(who): n for who, n in s.execute(
        select(InboxClaim.claimed_by, func.count()).where(InboxClaim.claimed_until > utcnow())
        .group_by(InboxClaim.claimed_by))}
