"""Withdrawn consents, on both sides of the exchange.

The sender stops what is not sent and notifies who already received; the receiver
marks what a withdrawal notice names as withdrawn.
"""

from __future__ import annotations

import datetime as dt

from stafet.context import Context
from stafet.core.errors import PackageRejected
from stafet.packages.document import WithdrawalDocument
from stafet.packages.package import new_package_id
from stafet.store import Session, consents, imported, inbox, outbox
from stafet.store.outbox import WITHDRAWAL_RULE
from stafet.store.schema import Handover

__all__ = ["WITHDRAWAL_RULE", "WITHDRAWAL_TEXT", "apply_notice", "check_notice", "withdraw_consent",
           "withdrawal_document"]

WITHDRAWAL_TEXT = ("Samtykket er tilbagekaldt. Slet de modtagne oplysninger og ophør med at bruge dem "
                   "(delete / stop further use).")


def withdrawal_document(ctx: Context, h: Handover) -> WithdrawalDocument:
    """A withdrawal notice: the consent and the packages the recipient got under it."""
    with ctx.store.session() as s:
        ids = outbox.delivered_under_consent(s, h.consent_ref, h.recipient)
    return WithdrawalDocument(package_id=h.id, sender=h.sender, recipient=h.recipient,
                              created=h.created_at.replace(tzinfo=dt.UTC).isoformat(),
                              consent_ref=h.consent_ref, package_ids=tuple(ids), instruction=WITHDRAWAL_TEXT)


def withdraw_consent(ctx: Context, ref: str, on: dt.date, *, actor: str) -> dict[str, int]:
    """Withdraw a consent: stop what is not sent, notify who already received.

    Idempotent: run again (e.g. every night for withdrawals that came in the
    consent export) it cancels and notifies nothing twice.
    """
    with ctx.store.session() as s:
        consents.withdraw(s, ref, on, actor=actor)
        return outbox.withdraw(s, ref, on, actor=actor, new_id=new_package_id)


def check_notice(s: Session, org_id: str, notice: WithdrawalDocument) -> None:
    """Refuse a withdrawal notice its signer may not give; every check before any write.

    A notice may withdraw only packages that its signer (``notice.sender``: the package
    check binds the two) itself sent to ``org_id``, and that came under the consent the
    notice names. Package ids are in clear headers, so any member could name any of them:
    a notice naming one it may not withdraw is refused whole, and withdraws nothing.

    Raises:
        PackageRejected: ``not_entitled`` (a package another member sent, or sent to
            another recipient), ``unknown_package`` (never imported here),
            ``consent_mismatch`` (a package that came under another consent, or under
            none, or before its consent was kept).
    """
    ids = list(dict.fromkeys(notice.package_ids))
    if not ids:
        raise PackageRejected("unknown_package", "the withdrawal notice names no package",
                              package=notice.package_id)
    found = inbox.imports(s, ids)
    foreign = [p for p in ids if p in found and (found[p].sender != notice.sender
                                                 or found[p].recipient != org_id)]
    if foreign:
        raise PackageRejected("not_entitled", f"the notice names {len(foreign)} package(s) that its signer "
                              f"did not send to {org_id}", package=notice.package_id,
                              sender=notice.sender, named=",".join(foreign[:5]))
    unknown = [p for p in ids if p not in found]
    if unknown:
        raise PackageRejected("unknown_package", f"the notice names {len(unknown)} package(s) never "
                              f"imported by {org_id}", package=notice.package_id, named=",".join(unknown[:5]))
    other = [p for p in ids if not notice.consent_ref or found[p].consent_ref != notice.consent_ref]
    if other:
        raise PackageRejected("consent_mismatch", f"{len(other)} package(s) named did not come under the "
                              "notice's consent", package=notice.package_id, named=",".join(other[:5]))


def apply_notice(ctx: Context, s: Session, org_id: str, notice: WithdrawalDocument) -> int:
    """Mark what ``org_id`` received in the packages a withdrawal notice names as withdrawn.

    Only after :func:`check_notice`: the notice's signer sent each of them to ``org_id``,
    under the consent it names. Returns how many records were withdrawn.
    """
    check_notice(s, org_id, notice)
    ids = list(dict.fromkeys(notice.package_ids))
    n = imported.withdraw(s, org_id, ids)
    ctx.store.audit(s, f"receive:{org_id}", "consent.withdrawn", f"consent:{notice.consent_ref}",
                    {"sender": notice.sender, "packages": ids, "records": n})
    return n
