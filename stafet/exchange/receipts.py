"""Receipts: the receiver's signed answer to a package, and the sender's acceptance of it.

A handover is done when its receipt is back: :func:`accept` checks that the receipt is
for a package we sent, from its recipient, with the digest of what was sent, and only
then closes the handover. Inquiries and answers are receipted the same way
(:func:`stafet.exchange.inquiries.accept_receipt`).
"""

from __future__ import annotations

import datetime as dt
import logging

from stafet.context import Context
from stafet.core.errors import PackageRejected, StafetError
from stafet.exchange.endpoints import outlet_for, recipient_certificate, signing_key
from stafet.exchange.inquiries import accept_receipt
from stafet.packages.document import (
    AnswerDocument,
    HandoverDocument,
    InquiryDocument,
    ReceiptDocument,
    WithdrawalDocument,
)
from stafet.packages.package import build_package, new_package_id
from stafet.store import Session, inbox, outbox

log = logging.getLogger("stafet.exchange")


def send_receipt(ctx: Context, org_id: str, to: str, package_id: str, digest: str,
                 disposition: str) -> None:
    """Sign, encrypt and send a receipt for ``package_id`` back to its sender."""
    now = dt.datetime.now(dt.UTC).isoformat()
    doc = ReceiptDocument(package_id=new_package_id(), sender=org_id, recipient=to, created=now,
                          for_package=package_id, digest=digest, disposition=disposition, at=now)
    built = build_package(doc, sender=ctx.network.member(org_id), sender_key=signing_key(ctx, org_id),
                          recipient=ctx.network.member(to), recipient_cert=recipient_certificate(ctx, to))
    outlet_for(ctx, to, ctx.network.member(org_id).email).put(f"{doc.package_id}.eml", built.eml)
    with ctx.store.session() as s:
        inbox.add_receipt(s, package_id, direction="out", org=to, disposition=disposition, digest=digest)


def accept(s: Session, org_id: str, receipt: ReceiptDocument,
           pending: list[outbox.PendingAck] | None = None) -> str:
    """Close a handover with a verified receipt whose digest matches what was sent.

    In the caller's transaction; every check comes before any write. Returns the
    handover's new status, or ``duplicate`` when it was acknowledged already.

    ``pending``: the receipt row and audit entry of an acknowledged handover are added to
    it instead of written (:func:`stafet.store.outbox.acknowledge`); the caller writes them
    with :func:`stafet.store.outbox.write_acknowledged` before anything else it writes.
    This writes what is pending first when the receipt is for an inquiry or an answer.
    """
    h = outbox.get(s, receipt.for_package)
    if h is None:  # an inquiry or an answer we sent (issue 18)?
        if pending:
            outbox.write_acknowledged(s, pending)
        outcome = accept_receipt(s, org_id, receipt.for_package, receipt.sender, receipt.digest,
                                 receipt.disposition)
        if outcome is not None:
            return outcome
    if h is None or h.sender != org_id:
        raise PackageRejected("receipt_unknown", "a receipt for a package we did not send",
                              package=receipt.for_package)
    if h.recipient != receipt.sender:
        raise PackageRejected("receipt_mismatch", "the receipt is not from the package's recipient",
                              package=receipt.for_package)
    if h.digest != receipt.digest:
        raise PackageRejected("receipt_mismatch", "the receipt's digest does not match what was sent",
                              package=receipt.for_package)
    if h.status == "acknowledged":
        return "duplicate"
    return outbox.acknowledge(s, h, receipt.disposition, receipt_from=receipt.sender, digest=receipt.digest,
                              receipt_id=receipt.package_id, actor=f"receive:{org_id}", pending=pending)


def answer_refusal(ctx: Context, org_id: str,
                   doc: HandoverDocument | WithdrawalDocument | InquiryDocument | AnswerDocument, digest: str,
                   e: PackageRejected) -> None:
    """Tell a verified sender why we refused (a handover, a withdrawal notice, an inquiry or an answer).

    A replay of what we imported is re-acknowledged.
    """
    disposition = f"rejected: {e.reason}"
    if e.reason == "replay":
        with ctx.store.session() as s:
            prior = inbox.imported(s, doc.package_id)
            if prior is not None and prior.digest == digest:
                disposition = "imported"
    try:
        send_receipt(ctx, org_id, doc.sender, doc.package_id, digest, disposition)
    except StafetError as err:
        log.warning("could not answer %s: %s", doc.package_id, err)
