"""The outbox: handover rows from plan to receipt, and what operations count of them.

Plain functions on the caller's :class:`~sqlalchemy.orm.Session` (one transaction is the
caller's choice). The order of writes a send follows is described in
:mod:`stafet.exchange.outbox`; each step here is one call inside one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stafet.core.errors import ConfigError
from stafet.store import audit
from stafet.store.clock import utcnow
from stafet.store.schema import Handover, Receipt, RecordRow

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
    for p in plans:
        records = list(s.scalars(select(RecordRow).where(RecordRow.id.in_(p.record_ids))))
        key = handover_key(p.sender, p.recipient, p.youth, p.rule, [f"{r.id}:{r.digest}" for r in records])
        row = s.scalars(select(Handover).where(Handover.handover_key == key)).first()
        if row is not None and not (row.status == "held" and p.status == "pending"):
            counts["existing"] += 1
            continue
        kinds = sorted({r.kind for r in records})
        if row is None:
            row = Handover(id=new_id(), handover_key=key, sender=p.sender, recipient=p.recipient,
                           youth=p.youth, status=p.status, created_at=utcnow())
            s.add(row)
        row.kinds, row.record_ids, row.rule = kinds, list(p.record_ids), p.rule
        row.legal_basis, row.consent_ref, row.status = p.legal_basis, p.consent_ref, p.status
        row.last_error = p.reason
        s.flush()
        audit.append(s, actor, f"handover.{p.status}", f"handover:{row.id}", {
            "sender": p.sender, "recipient": p.recipient, "youth": p.youth, "rule": p.rule,
            "legal_basis": p.legal_basis, "consent_ref": p.consent_ref, "reason": p.reason,
            "omitted": [list(o) for o in p.omitted], "kinds": kinds})
        counts["held" if p.status == "held" else "planned"] += 1
    return counts


# --- sending ------------------------------------------------------------------------

def due(s: Session, now: dt.datetime, recipients: Sequence[str] | None = None) -> list[Handover]:
    """Pending handovers whose next attempt is due, oldest first (to ``recipients`` if given)."""
    q = select(Handover).where(Handover.status == "pending").order_by(Handover.created_at)
    if recipients:
        q = q.where(Handover.recipient.in_(recipients))
    return [h for h in s.scalars(q) if h.next_attempt_at is None or h.next_attempt_at <= now]


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
    audit.append(s, actor, "handover.requeued", f"handover:{handover_id}", {})


ACCEPTED = ("imported", "read")
"""Dispositions that close a handover: imported by stafet, or read by a person in a mail client."""


def acknowledge(s: Session, h: Handover, disposition: str, *, receipt_from: str, digest: str,
                receipt_id: str, actor: str) -> str:
    """Close ``h`` with its verified receipt: acknowledged when imported, else failed.

    The receipt is kept (direction ``in``) and the outcome audited. Returns the status.
    """
    if disposition in ACCEPTED:
        h.status, h.acknowledged_at = "acknowledged", utcnow()
    else:
        h.status, h.last_error = "failed", f"rejected by recipient: {disposition}"
    s.add(Receipt(package_id=h.id, direction="in", org=receipt_from, disposition=disposition,
                  digest=digest, at=utcnow()))
    audit.append(s, actor, f"handover.{h.status}", f"handover:{h.id}",
                 {"disposition": disposition, "receipt": receipt_id})
    return str(h.status)


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


def under_consent(s: Session, ref: str) -> list[Handover]:
    """The handovers made under consent ``ref``."""
    return list(s.scalars(select(Handover).where(Handover.consent_ref == ref)))


def of_youth(s: Session, youth: str) -> list[Handover]:
    """The handovers about one youth (by pseudonym)."""
    return list(s.scalars(select(Handover).where(Handover.youth == youth)))


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
