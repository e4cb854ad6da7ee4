"""``stafet status``: the one screen operations look at each morning."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509

from stafet.context import Context
from stafet.store import files, inbox, outbox, quarantine, utcnow

EXPIRY_WARN_DAYS = 30


def _validity(cert: x509.Certificate) -> dict[str, str]:
    """``valid_from``/``valid_to`` as everywhere in stafet's JSON: ISO 8601 with time zone (UTC)."""
    return {"valid_from": cert.not_valid_before_utc.isoformat(),
            "valid_to": cert.not_valid_after_utc.isoformat()}


def certificate_expiries(ctx: Context, today: dt.date) -> list[dict[str, Any]]:
    """Days left on every member certificate in the network config and every key we hold.

    Each item: ``org``, ``what``, ``valid_from``, ``valid_to`` (ISO 8601, UTC), ``days_left``, ``warn``.
    """
    out = []
    for org in ctx.network.members.values():
        if org.certificate and ctx.network.resolve(org.certificate).exists():
            cert = x509.load_pem_x509_certificate(ctx.network.resolve(org.certificate).read_bytes())
            days = (cert.not_valid_after_utc.date() - today).days
            out.append({"org": org.id, "what": "member certificate", **_validity(cert), "days_left": days,
                        "warn": days < EXPIRY_WARN_DAYS})
        if ctx.keys.org_dir(org.id).exists():
            for pem in sorted(ctx.keys.org_dir(org.id).glob("*.pem")):
                cert = x509.load_pem_x509_certificate(pem.read_bytes())
                days = (cert.not_valid_after_utc.date() - today).days
                out.append({"org": org.id, "what": f"own key {pem.stem}", **_validity(cert),
                            "days_left": days, "warn": days < EXPIRY_WARN_DAYS})
    return sorted(out, key=lambda e: e["days_left"])


def revocation_state(ctx: Context) -> list[dict[str, Any]]:
    """Every CRL and cached OCSP response the network's trust uses, and its state.

    ``state`` is ``ok``, ``stale`` (past nextUpdate but within ``crl_grace_hours``: still
    used), or — certificates it covers are refused ``revocation_unknown`` — ``expired``,
    ``missing``, ``unreadable``, ``bad_signature``. ``refusing`` says which.
    """
    from stafet.exchange.endpoints import trust_store

    out = []
    for src in trust_store(ctx).revocation_state():
        item = src.as_dict()
        item["refusing"] = not src.usable
        out.append(item)
    return out


def collect_status(ctx: Context, today: dt.date | None = None) -> dict[str, Any]:
    """Everything on the status screen, as plain data (no CPR: pseudonyms only)."""
    today = today or dt.date.today()
    now = utcnow()
    with ctx.store.session() as s:
        per_org = outbox.counts_by(s, "sender")
        oldest = outbox.oldest_unacknowledged(s)
        quarantine_open = quarantine.open_count(s)
        last_file = files.last_received(s)
        last_sent = outbox.last_sent(s)
        last_receipt = inbox.last_receipt_in(s)
    overdue = 0
    try:
        from stafet.duties.deadlines import compute_deadlines

        overdue = sum(1 for d in compute_deadlines(ctx, today) if d.status == "overdue")
    except ImportError:  # pragma: no cover - the duty clock is optional in a minimal install
        pass
    return {
        "network": ctx.network.name,
        "outbox": {k: dict(v) for k, v in sorted(per_org.items())},
        "oldest_unacknowledged": None if oldest is None else {
            "id": oldest.id, "sender": oldest.sender, "recipient": oldest.recipient,
            "status": oldest.status,
            "age_hours": round((now - (oldest.sent_at or oldest.created_at)).total_seconds() / 3600, 1)},
        "quarantine_open": quarantine_open,
        "deadlines_overdue": overdue,
        "last": {"file_received": str(last_file or ""), "package_sent": str(last_sent or ""),
                 "receipt_received": str(last_receipt or "")},
        "certificates": certificate_expiries(ctx, today),
        "revocation": revocation_state(ctx),
        "crl_grace_hours": ctx.network.crl_grace_hours,
    }
