"""The outbox: handover rows from plan to receipt, and what operations count of them.

Plain functions on the caller's :class:`~sqlalchemy.orm.Session` (one transaction is the
caller's choice). The order of writes a send follows is described in
:mod:`stafet.exchange.outbox`; each step here is one call inside one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from stafet.core.errors import ConfigError
from stafet.store import audit
from stafet.store.clock import utcnow
from stafet.store.inbox import RECEIPTS
from stafet.store.schema import Handover, RecordRow

WITHDRAWAL_RULE = "withdrawal_notice"
OPEN = ("pending", "sent")
"""Handed over but not taken over yet: waiting to be sent, or for the receipt."""


def handover_key(sender: str, recipient: str, youth: str, rule: str, digests: Sequence[str]) -> str:
    """Stable id of a handover: same sender, recipient, youth, rule and content → same key."""
    body = "|".join([sender, recipient, youth, rule, *sorted(digests)])
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    """One routing decision, as the outbox keeps it (``status``: pending or held)."""

    sender: str
    recipient: str
    youth: str
    rule: str
    status: str
    record_ids: tuple[int, ...]
    legal_basis: str = ""
    consent_ref: str = ""
    reason: str = ""
    omitted: tuple[tuple[str, str], ...] = field(default=())


def plan(s: Session, plans: Sequence[Plan], *, actor: str, new_id: Callable[[], str]) -> dict[str, int]:
    """Commit each plan as a handover row, idempotent by :func:`handover_key`.

    A row that exists is left alone, except a held one that is now pending (its basis
    came since). Each row written is audited (``handover.pending`` / ``handover.held``).
    """
    counts = {"planned": 0, "held": 0, "existing": 0}
    # the records and the existing rows of a batch of plans in two queries, not two a plan
    for start in range(0, len(plans), PLAN_BATCH):
        _plan_batch(s, plans[start:start + PLAN_BATCH], counts, actor=actor, new_id=new_id)
    return counts


PLAN_BATCH = 500
"""Plans whose records and existing rows :func:`plan` reads in one query each."""


def _plan_batch(s: Session, plans: Sequence[Plan], counts: dict[str, int], *, actor: str,
                new_id: Callable[[], str]) -> None:
    wanted = sorted({i for p in plans for i in p.record_ids})
    by_id = {r.id: r for r in s.scalars(select(RecordRow).where(RecordRow.id.in_(wanted)))} if wanted else {}
    found = [[by_id[i] for i in sorted(set(p.record_ids)) if i in by_id] for p in plans]
    keys = [handover_key(p.sender, p.recipient, p.youth, p.rule, [f"{r.id}:{r.digest}" for r in records])
            for p, records in zip(plans, found, strict=True)]
    existing = {h.handover_key: h
                for h in s.scalars(select(Handover).where(Handover.handover_key.in_(set(keys))))}
    for p, key, records in zip(plans, keys, found, strict=True):
        row = existing.get(key)
        if row is not None and not (row.status == "held" and p.status == "pending"):
            counts["existing"] += 1
            continue
        kinds = sorted({r.kind for r in records})
        if row is None:
            row = Handover(id=new_id(), handover_key=key, sender=p.sender, recipient=p.recipient,
                           youth=p.youth, status=p.status, created_at=utcnow())
            s.add(row)
            existing[key] = row  # a second plan of the same key in this batch finds it
        row.kinds, row.record_ids, row.rule = kinds, list(p.record_ids), p.rule
        row.legal_basis, row.consent_ref, row.status = p.legal_basis, p.consent_ref, p.status
        row.last_error = p.reason
        s.flush()
        audit.append(s, actor, f"handover.{p.status}", f"handover:{row.id}", {
            "sender": p.sender, "recipient": p.recipient, "youth": p.youth, "rule": p.rule,
            "legal_basis": p.legal_basis, "consent_ref": p.consent_ref, "reason": p.reason,
            "omitted": [list(o) for o in p.omitted], "kinds": kinds})
        counts["held" if p.status == "held" else "planned"] += 1


# --- sending ------------------------------------------------------------------------

CLAIM_SECONDS = 900
"""How long a claim on a pending handover holds (PostgreSQL) before another run may take it."""


def default_claimant() -> str:
    """Who claims when the caller names no one: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claims_apply(s: Session) -> bool:
    """Whether :func:`due` claims rows here (PostgreSQL: concurrent sends; SQLite has one writer)."""
    return s.get_bind().dialect.name == "postgresql"


def due(s: Session, now: dt.datetime, recipients: Sequence[str] | None = None, *, claimant: str = "",
        takeover: Sequence[str] = (), lease_seconds: float = CLAIM_SECONDS, limit: int | None = None,
        exclude: Sequence[str] = ()) -> list[Handover]:
    """Pending handovers whose next attempt is due, oldest first (to ``recipients`` if given).

    On PostgreSQL the rows are also *claimed* for ``claimant`` (default: host:pid) until
    ``lease_seconds`` from now, read with ``SELECT … FOR UPDATE SKIP LOCKED``: a row another
    transaction is claiming is skipped, and so is a row claimed by someone else whose lease
    has not run out, unless that someone is in ``takeover`` (a run known to be dead, e.g. a
    crashed flow run). Two concurrent sends therefore never get the same handover; the
    claim is committed with the caller's transaction. On SQLite (one writer) nothing is
    claimed, as before, and ``limit`` does not apply.

    ``limit``: claim at most this many (a send claims in batches, so concurrent sends to the
    same recipients share them); ``exclude``: ids the caller already holds and set aside.
    """
    q = select(Handover).where(Handover.status == "pending").order_by(Handover.created_at)
    if recipients:
        q = q.where(Handover.recipient.in_(recipients))
    if exclude:
        q = q.where(Handover.id.not_in(list(exclude)))
    if not claims_apply(s):
        return [h for h in s.scalars(q) if h.next_attempt_at is None or h.next_attempt_at <= now]
    who, wall = claimant or default_claimant(), utcnow()
    q = q.where(or_(Handover.next_attempt_at.is_(None), Handover.next_attempt_at <= now),
                or_(Handover.claimed_until.is_(None), Handover.claimed_until <= wall,
                    Handover.claimed_by.in_([who, *takeover]))).with_for_update(skip_locked=True)
    if limit:
        q = q.limit(limit)
    rows = list(s.scalars(q))
    until = wall + dt.timedelta(seconds=lease_seconds)
    for h in rows:
        h.claimed_by, h.claimed_until = who, until
    s.flush()
    return rows


def claims(s: Session) -> dict[str, int]:
    """Pending handovers per claimant whose claim still holds (operations: who is sending what)."""
    return {str(who): n for who, n in s.execute(
        select(Handover.claimed_by, func.count()).where(Handover.status == "pending",
                                                        Handover.claimed_until > utcnow())
        .group_by(Handover.claimed_by))}


def _release(row: Handover) -> None:
    row.claimed_by, row.claimed_until = None, None


def release(s: Session, handover_ids: Sequence[str]) -> None:
    """Let go of the claims on ``handover_ids`` (still pending: the next pass, any run, sends them)."""
    for hid in handover_ids:
        row = s.get(Handover, hid)
        if row is not None and row.status == "pending":
            _release(row)


def get(s: Session, handover_id: str) -> Handover | None:
    """One handover by id (its package id)."""
    return s.get(Handover, handover_id)


def _row(s: Session, handover_id: str) -> Handover:
    row = s.get(Handover, handover_id)
    assert row is not None
    return row


def record_built(s: Session, handover_id: str, package_path: str, digest: str) -> None:
    """Step 2: the package is in the outbox folder; keep where, and its digest."""
    row = _row(s, handover_id)
    row.package_path, row.digest = package_path, digest


def not_sendable(s: Session, handover_id: str, reason: str, *, withdrawn: bool, consent_ref: str) -> str:
    """The legal basis no longer holds at send time: cancelled (withdrawn) or held. Returns the status."""
    row = _row(s, handover_id)
    row.status = "cancelled" if withdrawn else "held"
    row.last_error = reason
    audit.append(s, "delivery", f"handover.{row.status}", f"handover:{handover_id}",
                 {"reason": reason, "consent_ref": consent_ref})
    return row.status


def attempt_failed(s: Session, handover_id: str, error: str, *, now: dt.datetime, max_attempts: int,
                   max_age_hours: float) -> bool:
    """A transient delivery failure: retry later with back-off, or fail past the limits.

    Returns True when the handover failed for good.
    """
    row = _row(s, handover_id)
    row.attempts += 1
    row.last_error = error
    if row.attempts >= max_attempts or (now - row.created_at).total_seconds() > max_age_hours * 3600:
        row.status = "failed"
        audit.append(s, "delivery", "handover.failed", f"handover:{handover_id}",
                     {"reason": error, "attempts": row.attempts})
        return True
    row.next_attempt_at = now + dt.timedelta(seconds=min(3600, 30 * 2 ** row.attempts))
    _release(row)  # the next due attempt may go to any run
    return False


def failed(s: Session, handover_id: str, error: str) -> None:
    """A delivery failure that no retry fixes."""
    row = _row(s, handover_id)
    row.status, row.last_error, row.attempts = "failed", error, row.attempts + 1
    audit.append(s, "delivery", "handover.failed", f"handover:{handover_id}", {"reason": error})


def sent(s: Session, handover_id: str, *, recipient: str, digest: str) -> None:
    """Step 4: the package was put to the recipient's endpoint."""
    row = _row(s, handover_id)
    row.status, row.attempts = "sent", row.attempts + 1
    row.sent_at = row.delivered_at = utcnow()
    row.last_error = ""
    audit.append(s, "delivery", "handover.sent", f"handover:{handover_id}",
                 {"recipient": recipient, "digest": digest})


def resend_due(s: Session, now: dt.datetime, *, limit_hours: float, max_resends: int) -> list[Handover]:
    """Sent handovers without a receipt past the limit, that may still be sent again.

    The k-th resend is due ``limit_hours`` after the last send (``sent_at`` moves with each).
    """
    cutoff = now - dt.timedelta(hours=limit_hours)
    return list(s.scalars(select(Handover).where(Handover.status == "sent", Handover.sent_at <= cutoff,
                                                 Handover.resends < max_resends)
                          .order_by(Handover.sent_at)))


def resent(s: Session, handover_id: str, *, actor: str = "delivery") -> int:
    """The package was put to the recipient again (same id, same bytes); returns the resend count."""
    row = _row(s, handover_id)
    row.resends = (row.resends or 0) + 1
    row.sent_at = row.delivered_at = utcnow()
    audit.append(s, actor, "handover.resent", f"handover:{handover_id}",
                 {"recipient": row.recipient, "resend": row.resends, "digest": row.digest})
    return int(row.resends)


def requeue(s: Session, handover_id: str, *, actor: str) -> None:
    """Make a failed handover pending again, as if new (``stafet outbox retry``)."""
    row = s.get(Handover, handover_id)
    if row is None:
        raise ConfigError(f"no handover {handover_id}")
    if row.status != "failed":
        raise ConfigError(f"handover {handover_id} is {row.status}, not failed")
    row.status, row.attempts, row.next_attempt_at = "pending", 0, None
    row.created_at = utcnow()
    _release(row)
    audit.append(s, actor, "handover.requeued", f"handover:{handover_id}", {})


ACCEPTED = ("imported", "read")
"""Dispositions that close a handover: imported by stafet, or read by a person in a mail client."""


class PendingAck(NamedTuple):
    """What :func:`acknowledge` leaves to :func:`write_acknowledged`: the receipt row and the audit entry."""

    actor: str
    receipt: dict[str, Any]  # the Receipt row's columns
    entry: tuple[str, str, dict[str, Any]]  # (action, subject, details)


def acknowledge(s: Session, h: Handover, disposition: str, *, receipt_from: str, digest: str,
                receipt_id: str, actor: str, pending: list[PendingAck] | None = None) -> str:
    """Close ``h`` with its verified receipt: acknowledged when imported, else failed.

    The receipt is kept (direction ``in``) and the outcome audited. Returns the status.
    With ``pending``, the receipt row and the audit entry are added to it instead, for the
    caller to write (:func:`write_acknowledged`, one insert each for a run of receipts)
    before anything else it writes in the transaction.
    """
    if disposition in ACCEPTED:
        h.status, h.acknowledged_at = "acknowledged", utcnow()
    else:
        h.status, h.last_error = "failed", f"rejected by recipient: {disposition}"
    done = PendingAck(actor, {"package_id": h.id, "direction": "in", "org": receipt_from,
                                "disposition": disposition, "digest": digest, "at": utcnow()},
                        (f"handover.{h.status}", f"handover:{h.id}",
                         {"disposition": disposition, "receipt": receipt_id}))
    if pending is not None:
        pending.append(done)
    else:
        write_acknowledged(s, [done])
    return str(h.status)


def write_acknowledged(s: Session, pending: list[PendingAck]) -> None:
    """Write what :func:`acknowledge` left pending, in its order, and empty ``pending``.

    The same rows as one :func:`acknowledge` after another wrote: the receipts (one
    insert) and the audit entries, chained in the same order (one
    :func:`~stafet.store.audit.append_many` per run of one actor).
    """
    if not pending:
        return
    s.execute(insert(RECEIPTS), [p.receipt for p in pending])
    for actor, run in itertools.groupby(pending, key=lambda p: p.actor):
        audit.append_many(s, actor, [p.entry for p in run])
    pending.clear()


def get_many(s: Session, handover_ids: Sequence[str]) -> dict[str, Handover]:
    """Handover id → handover, for those of ``handover_ids`` that exist, in one query.

    While the caller holds the result, :func:`get` finds them in the session without a query.
    """
    ids = sorted(set(handover_ids))
    return {h.id: h for h in s.scalars(select(Handover).where(Handover.id.in_(ids)))} if ids else {}


# --- consents withdrawn ---------------------------------------------------------------

def delivered_under_consent(s: Session, consent_ref: str, recipient: str) -> list[str]:
    """Ids of the packages ``recipient`` got under a consent (sent or acknowledged), sorted."""
    return sorted(s.scalars(select(Handover.id).where(
        Handover.consent_ref == consent_ref, Handover.recipient == recipient,
        Handover.rule != WITHDRAWAL_RULE, Handover.status.in_(("sent", "acknowledged")))))


def withdraw(s: Session, ref: str, on: dt.date, *, actor: str, new_id: Callable[[], str]) -> dict[str, int]:
    """Cancel what was not sent under consent ``ref``; plan one notice per recipient that got some.

    Idempotent: a notice is keyed by consent, sender and recipient.
    """
    counts = {"cancelled": 0, "notices": 0}
    handovers = list(s.scalars(select(Handover).where(Handover.consent_ref == ref,
                                                      Handover.rule != WITHDRAWAL_RULE)))
    for h in handovers:
        if h.status in ("pending", "held"):
            h.status, h.last_error = "cancelled", f"tilbagekaldt {on.isoformat()}"
            audit.append(s, actor, "handover.cancelled", f"handover:{h.id}",
                         {"consent_ref": ref, "reason": "tilbagekaldt"})
            counts["cancelled"] += 1
    got = {(h.sender, h.recipient, h.youth) for h in handovers if h.status in ("sent", "acknowledged")}
    for sender, recipient, youth in sorted(got):
        key = hashlib.sha256(f"{WITHDRAWAL_RULE}|{ref}|{sender}|{recipient}".encode()).hexdigest()
        if s.scalars(select(Handover).where(Handover.handover_key == key)).first():
            continue
        row = Handover(id=new_id(), handover_key=key, sender=sender, recipient=recipient,
                       youth=youth, rule=WITHDRAWAL_RULE, consent_ref=ref, status="pending",
                       legal_basis="Tilbagekaldelse af samtykke", created_at=utcnow())
        s.add(row)
        s.flush()
        audit.append(s, actor, "withdrawal.planned", f"handover:{row.id}",
                     {"consent_ref": ref, "recipient": recipient})
        counts["notices"] += 1
    return counts


# --- what operations look at ----------------------------------------------------------

def listing(s: Session, status: str | None = None) -> list[Handover]:
    """Every handover (of one status if given), oldest first."""
    q = select(Handover).order_by(Handover.created_at)
    if status:
        q = q.where(Handover.status == status)
    return list(s.scalars(q))


def listing_page(s: Session, status: str | None = None, since: dt.datetime | None = None,
                 limit: int | None = None) -> tuple[list[Handover], int]:
    """The newest ``limit`` handovers and how many match in all.

    Of one status if given, created at or after ``since`` (naive UTC, as the columns);
    oldest first within the page.
    """
    q = select(Handover)
    if status:
        q = q.where(Handover.status == status)
    if since is not None:
        q = q.where(Handover.created_at >= since)
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    q = q.order_by(Handover.created_at.desc(), Handover.id.desc())
    if limit is not None:
        q = q.limit(limit)
    return list(reversed(list(s.scalars(q)))), int(total)


def under_consent(s: Session, ref: str) -> list[Handover]:
    """The handovers made under consent ``ref``."""
    return list(s.scalars(select(Handover).where(Handover.consent_ref == ref)))


def of_youth(s: Session, youth: str) -> list[Handover]:
    """The handovers about one youth (by pseudonym)."""
    return list(s.scalars(select(Handover).where(Handover.youth == youth)))


def of_rule(s: Session, rule: str) -> list[Handover]:
    """The handovers made under one routing rule, oldest first."""
    return list(s.scalars(select(Handover).where(Handover.rule == rule).order_by(Handover.created_at)))


def of_statuses(s: Session, statuses: Sequence[str]) -> list[Handover]:
    """The handovers in any of ``statuses``."""
    return list(s.scalars(select(Handover).where(Handover.status.in_(statuses))))


def pending_recipients(s: Session) -> list[str]:
    """Recipients with handovers waiting to be sent, sorted."""
    return sorted(set(s.scalars(select(Handover.recipient).where(Handover.status == "pending"))))


def counts_by_status(s: Session) -> dict[str, int]:
    """Handovers by status."""
    return {st: n for st, n in s.execute(select(Handover.status, func.count()).group_by(Handover.status))}


_COLUMNS: dict[str, Any] = {"rule": Handover.rule, "recipient": Handover.recipient, "sender": Handover.sender}


def counts_by(s: Session, by: str) -> dict[str, dict[str, int]]:
    """Handovers per ``by`` (rule, recipient or sender), then per status."""
    column = _COLUMNS[by]
    out: dict[str, dict[str, int]] = {}
    for key, st, n in s.execute(select(column, Handover.status, func.count())
                                .group_by(column, Handover.status)):
        out.setdefault(key, {})[st] = n
    return out


def unacknowledged(s: Session) -> list[Handover]:
    """Handovers pending or sent (not yet taken over), oldest first."""
    return list(s.scalars(select(Handover).where(Handover.status.in_(OPEN)).order_by(Handover.created_at)))


def oldest_unacknowledged(s: Session) -> Handover | None:
    """The oldest handover pending or sent, if any."""
    return s.scalars(select(Handover).where(Handover.status.in_(OPEN))
                     .order_by(Handover.created_at).limit(1)).first()


def last_sent(s: Session) -> dt.datetime | None:
    """When a package was last sent."""
    return s.scalar(select(func.max(Handover.sent_at)))
