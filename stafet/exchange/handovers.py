"""The relay itself: outbox, sending, receiving, receipts.

Order of writes on the sending side (the outbox pattern; a crash between any two
steps is recovered by the next run, and never loses or duplicates a handover):

1. the routing decision is committed as a ``pending`` handover row (unique key);
2. the package is built once, written to ``$STAFET_HOME/outbox/<id>.eml`` (fsync)
   and its digest committed — a retry resends these same bytes, same package id;
3. the bytes are put to the recipient's endpoint (temp name + rename / SMTP);
4. the row becomes ``sent`` (delivered). A crash between 3 and 4 resends the same
   package; the receiver's replay check imports it once and re-sends its receipt.
5. the receiver's signed receipt, verified and matching the digest, makes it
   ``acknowledged``: only then has someone else taken over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from keys.trust import TrustStore
from stafet.context import Context
from stafet.core.errors import ConfigError, DeliveryFailed, PackageRejected, StafetError, TransientError
from stafet.core.models import Provenance, Record, record_from_payload
from stafet.duties.routing import Decision, package_scope
from stafet.packages.opening import open_all
from stafet.packages.package import Opened, build_package, new_package_id
from stafet.store.db import utcnow
from stafet.store.schema import Handover, ImportedPackage, Receipt, RecordRow, Youth

log = logging.getLogger("stafet.exchange")


def handover_key(d: Decision, digests: list[str]) -> str:
    """Stable id of a handover: same sender, recipient, youth, rule and content → same key."""
    body = "|".join([d.sender, d.recipient, d.youth, d.rule, *sorted(digests)])
    return hashlib.sha256(body.encode()).hexdigest()


def plan_handovers(ctx: Context, decisions: list[Decision], *, actor: str = "routing") -> dict[str, int]:
    """Step 1: commit each decision as a handover row (idempotent by key)."""
    counts = {"planned": 0, "held": 0, "existing": 0}
    with ctx.store.session() as s:
        for d in decisions:
            digests = [f"{r.id}:{r.digest}" for r in s.scalars(
                select(RecordRow).where(RecordRow.id.in_(d.record_ids)))]
            key = handover_key(d, digests)
            row = s.scalars(select(Handover).where(Handover.handover_key == key)).first()
            status = "held" if d.status == "held" else "pending"
            if row is not None and not (row.status == "held" and status == "pending"):
                counts["existing"] += 1
                continue
            kinds = sorted({r.kind for r in s.scalars(select(RecordRow).where(
                RecordRow.id.in_(d.record_ids)))})
            if row is None:
                row = Handover(id=new_package_id(), handover_key=key, sender=d.sender,
                               recipient=d.recipient, youth=d.youth, status=status, created_at=utcnow())
                s.add(row)
            row.kinds, row.record_ids, row.rule = kinds, list(d.record_ids), d.rule
            row.legal_basis, row.consent_ref, row.status = d.legal_basis, d.consent_ref, status
            row.last_error = d.reason
            s.flush()
            ctx.store.audit(s, actor, f"handover.{status}", f"handover:{row.id}", {
                "sender": d.sender, "recipient": d.recipient, "youth": d.youth, "rule": d.rule,
                "legal_basis": d.legal_basis, "consent_ref": d.consent_ref, "reason": d.reason,
                "omitted": [list(o) for o in d.omitted], "kinds": kinds})
            counts["held" if status == "held" else "planned"] += 1
    return counts


def _history(s: Any, youth: str, kinds: set[str]) -> list[dict[str, str]]:
    rows = s.scalars(select(RecordRow).where(RecordRow.youth == youth, RecordRow.kind.in_(kinds),
                                             RecordRow.withdrawn.is_(False)))
    out = []
    from stafet.packages.package import KIND_DA

    for r in rows:
        p = r.payload
        when = p.get("event_date") or p.get("updated") or p.get("status_date") or ""
        what = p.get("programme_name") or p.get("goal_name") or p.get("target_education") or ""
        out.append({"date": str(when), "kind": r.kind, "org": str(p.get("institution", "")),
                    "summary": f"{KIND_DA.get(r.kind, r.kind)} {what}".strip()})
    return sorted(out, key=lambda h: h["date"])


class NotSendable(Exception):
    """The legal basis no longer holds at send time (consent withdrawn, expired, …)."""

    def __init__(self, reason: str, *, withdrawn: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.withdrawn = reason, withdrawn


def handover_document(ctx: Context, h: Handover, today: dt.date | None = None) -> dict[str, Any]:
    """The JSON document of a handover (holds the CPR: only ever inside a package).

    The legal basis is checked again here, at send time: a consent withdrawn or
    expired since routing stops the send (:class:`NotSendable`).
    """
    if h.rule == WITHDRAWAL_RULE:
        return withdrawal_document(ctx, h)
    with ctx.store.session() as s:
        scope = package_scope(s, ctx.network, h.rule, h.youth, h.recipient, set(h.kinds), h.consent_ref,
                              today or dt.date.today())
        if not scope.usable:
            raise NotSendable(scope.reason, withdrawn=scope.reason.startswith("tilbagekaldt"))
        cpr = ctx.store.cpr_of(s, h.youth)
        records = list(s.scalars(select(RecordRow).where(RecordRow.id.in_(h.record_ids))
                                 .order_by(RecordRow.id)))
        name = next((f"{r.payload.get('first_name', '')} {r.payload.get('last_name', '')}".strip()
                     for r in records if r.payload.get("first_name")), "")
        youth_row = s.get(Youth, h.youth)
        doc: dict[str, Any] = {
            "type": "handover", "package_id": h.id, "sender": h.sender, "recipient": h.recipient,
            "created": h.created_at.replace(tzinfo=dt.UTC).isoformat(), "rule": h.rule,
            "legal_basis": h.legal_basis, "consent_ref": h.consent_ref,
            "youth": {"cpr": cpr.formatted, "name": name,
                      "birth_date": youth_row.birth_date.isoformat() if youth_row else ""},
            "records": [{"kind": r.kind, "natural_key": r.natural_key,
                         "data": {k: v for k, v in r.payload.items() if k not in scope.strip_fields},
                         "source": {"system": r.source, "file": r.source_file, "row": r.source_row}}
                        for r in records],
            "history": _history(s, h.youth, set(scope.history_kinds)) if scope.history_kinds else [],
            "omitted": [{"kind": sc, "reason": why} for sc, why in scope.omitted],
        }
        if not doc["youth"]["name"]:
            del doc["youth"]["name"]
    return doc


WITHDRAWAL_RULE = "withdrawal_notice"
WITHDRAWAL_TEXT = ("Samtykket er tilbagekaldt. Slet de modtagne oplysninger og ophør med at bruge dem "
                   "(delete / stop further use).")


def withdrawal_document(ctx: Context, h: Handover) -> dict[str, Any]:
    """A withdrawal notice: the consent and the packages the recipient got under it."""
    with ctx.store.session() as s:
        ids = sorted(s.scalars(select(Handover.id).where(
            Handover.consent_ref == h.consent_ref, Handover.recipient == h.recipient,
            Handover.rule != WITHDRAWAL_RULE, Handover.status.in_(("sent", "acknowledged")))))
    return {"type": "withdrawal", "package_id": h.id, "sender": h.sender, "recipient": h.recipient,
            "created": h.created_at.replace(tzinfo=dt.UTC).isoformat(),
            "withdrawal": {"consent_ref": h.consent_ref, "package_ids": ids, "instruction": WITHDRAWAL_TEXT}}


def withdraw_consent(ctx: Context, ref: str, on: dt.date, *, actor: str) -> dict[str, int]:
    """Withdraw a consent: stop what is not sent, notify who already received.

    Idempotent: run again (e.g. every night for withdrawals that came in the
    consent export) it cancels and notifies nothing twice.
    """
    from stafet.store.schema import ConsentRow

    counts = {"cancelled": 0, "notices": 0}
    with ctx.store.session() as s:
        c = s.get(ConsentRow, ref)
        if c is None:
            raise ConfigError(f"no consent {ref}")
        if c.withdrawn_date is None or c.withdrawn_date > on:
            c.withdrawn_date = on
            c.payload = {**c.payload, "withdrawn_date": on.isoformat()}
            c.updated_at = utcnow()
            ctx.store.audit(s, actor, "consent.withdrawn", f"consent:{ref}", {"on": on.isoformat()})
        handovers = list(s.scalars(select(Handover).where(Handover.consent_ref == ref,
                                                          Handover.rule != WITHDRAWAL_RULE)))
        for h in handovers:
            if h.status in ("pending", "held"):
                h.status, h.last_error = "cancelled", f"tilbagekaldt {on.isoformat()}"
                ctx.store.audit(s, actor, "handover.cancelled", f"handover:{h.id}",
                                {"consent_ref": ref, "reason": "tilbagekaldt"})
                counts["cancelled"] += 1
        got = {(h.sender, h.recipient, h.youth) for h in handovers if h.status in ("sent", "acknowledged")}
        for sender, recipient, youth in sorted(got):
            key = hashlib.sha256(f"{WITHDRAWAL_RULE}|{ref}|{sender}|{recipient}".encode()).hexdigest()
            if s.scalars(select(Handover).where(Handover.handover_key == key)).first():
                continue
            row = Handover(id=new_package_id(), handover_key=key, sender=sender, recipient=recipient,
                           youth=youth, rule=WITHDRAWAL_RULE, consent_ref=ref, status="pending",
                           legal_basis="Tilbagekaldelse af samtykke", created_at=utcnow())
            s.add(row)
            s.flush()
            ctx.store.audit(s, actor, "withdrawal.planned", f"handover:{row.id}",
                            {"consent_ref": ref, "recipient": recipient})
            counts["notices"] += 1
    return counts


def recipient_certificate(ctx: Context, org_id: str) -> x509.Certificate:
    """The recipient's certificate as configured in the network (never our guess)."""
    org = ctx.network.member(org_id)
    if not org.certificate:
        raise ConfigError(f"no certificate configured for {org_id}", org=org_id)
    cert = x509.load_pem_x509_certificate(ctx.network.resolve(org.certificate).read_bytes())
    now = dt.datetime.now(dt.UTC)
    if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        raise DeliveryFailed("the recipient's certificate is not valid now", org=org_id)
    return cert


def _write_durably(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _outlet_for(ctx: Context, org_id: str, mail_from: str = "") -> Any:
    from transports.transport import open_outlet

    org = ctx.network.member(org_id)
    opts = dict(ctx.network.endpoint_options.get(org_id, {}))
    opts.pop("inbox", None)
    for k in ("max_attempts", "max_age_hours"):
        opts.pop(k, None)
    if opts.get("identity"):
        opts["identity"] = str(ctx.network.resolve(str(opts["identity"])))
    return open_outlet(ctx.network.locate(org.endpoint), mail_from=mail_from, rcpt_to=org.email, **opts)


def build_outbox_package(ctx: Context, h: Handover, doc: dict[str, Any] | None = None) -> tuple[bytes, str]:
    """Step 2: the package bytes for ``h``, built once and kept in the outbox folder."""
    path = ctx.home / "outbox" / f"{h.id}.eml"
    if h.package_path and path.exists() and h.digest:
        return path.read_bytes(), h.digest
    sender = ctx.network.member(h.sender)
    built = build_package(doc or handover_document(ctx, h), sender=sender,
                          sender_key=ctx.keys.current(h.sender),
                          recipient=ctx.network.member(h.recipient),
                          recipient_cert=recipient_certificate(ctx, h.recipient))
    _write_durably(path, built.eml)
    with ctx.store.session() as s:
        row = s.get(Handover, h.id)
        assert row is not None
        row.package_path, row.digest = str(path.relative_to(ctx.home)), built.digest
    h.package_path, h.digest = str(path), built.digest
    return built.eml, built.digest


@dataclass
class SendResult:
    """Counts of one send pass."""

    sent: int = 0
    held: int = 0
    retry_later: int = 0
    failed: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def _limits(ctx: Context, org_id: str) -> tuple[int, float]:
    opts = ctx.network.endpoint_options.get(org_id, {})
    return int(opts.get("max_attempts", 8)), float(opts.get("max_age_hours", 72))


def send_pending(ctx: Context, *, recipients: list[str] | None = None,
                 now: dt.datetime | None = None) -> SendResult:
    """Steps 2–4 for every due pending handover; one failing endpoint never blocks the others."""
    now = now or utcnow()
    result = SendResult()
    with ctx.store.session() as s:
        q = select(Handover).where(Handover.status == "pending").order_by(Handover.created_at)
        if recipients:
            q = q.where(Handover.recipient.in_(recipients))
        due = [h for h in s.scalars(q) if h.next_attempt_at is None or h.next_attempt_at <= now]
    for h in due:
        try:
            data, _ = build_outbox_package(ctx, h)
            _outlet_for(ctx, h.recipient, ctx.network.member(h.sender).email).put(f"{h.id}.eml", data)
        except NotSendable as e:
            with ctx.store.session() as s:
                row = s.get(Handover, h.id)
                assert row is not None
                row.status = "cancelled" if e.withdrawn else "held"
                row.last_error = e.reason
                ctx.store.audit(s, "delivery", f"handover.{row.status}", f"handover:{h.id}",
                                {"reason": e.reason, "consent_ref": h.consent_ref})
            result.held += 1
            continue
        except TransientError as e:
            max_attempts, max_age = _limits(ctx, h.recipient)
            with ctx.store.session() as s:
                row = s.get(Handover, h.id)
                assert row is not None
                row.attempts += 1
                row.last_error = str(e)
                if row.attempts >= max_attempts or (now - row.created_at).total_seconds() > max_age * 3600:
                    row.status = "failed"
                    result.failed += 1
                    ctx.store.audit(s, "delivery", "handover.failed", f"handover:{h.id}",
                                    {"reason": str(e), "attempts": row.attempts})
                else:
                    row.next_attempt_at = now + dt.timedelta(seconds=min(3600, 30 * 2 ** row.attempts))
                    result.retry_later += 1
            result.errors[h.id] = str(e)
            log.warning("handover %s to %s: will retry: %s", h.id, h.recipient, e)
            continue
        except StafetError as e:
            with ctx.store.session() as s:
                row = s.get(Handover, h.id)
                assert row is not None
                row.status, row.last_error, row.attempts = "failed", str(e), row.attempts + 1
                ctx.store.audit(s, "delivery", "handover.failed", f"handover:{h.id}", {"reason": str(e)})
            result.failed += 1
            result.errors[h.id] = str(e)
            log.error("handover %s to %s failed: %s", h.id, h.recipient, e)
            continue
        with ctx.store.session() as s:
            row = s.get(Handover, h.id)
            assert row is not None
            row.status, row.attempts = "sent", row.attempts + 1
            row.sent_at = row.delivered_at = utcnow()
            row.last_error = ""
            ctx.store.audit(s, "delivery", "handover.sent", f"handover:{h.id}",
                            {"recipient": h.recipient, "digest": h.digest})
        result.sent += 1
    return result


def retry_handover(ctx: Context, handover_id: str, *, actor: str = "operator") -> None:
    """Re-queue a failed handover after its cause was fixed (``stafet outbox retry``)."""
    with ctx.store.session() as s:
        row = s.get(Handover, handover_id)
        if row is None:
            raise ConfigError(f"no handover {handover_id}")
        if row.status != "failed":
            raise ConfigError(f"handover {handover_id} is {row.status}, not failed")
        row.status, row.attempts, row.next_attempt_at = "pending", 0, None
        row.created_at = utcnow()
        ctx.store.audit(s, actor, "handover.requeued", f"handover:{handover_id}", {})


# --- the receiving side -------------------------------------------------------------

@dataclass
class InboxResult:
    """Counts of one pass over an organisation's inbox."""

    imported: int = 0
    receipts_sent: int = 0
    acknowledged: int = 0
    withdrawn: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # file → reason code
    receipt_errors: dict[str, str] = field(default_factory=dict)  # file → why its receipt was not sent


def trust_store(ctx: Context) -> TrustStore:
    """The network's trust anchors and CRLs."""
    return TrustStore.from_files(ctx.network.trust_anchors, ctx.network.crls)


def inbox_location(ctx: Context, org_id: str) -> str:
    """Where ``org_id`` reads incoming packages: ``endpoints.<org>.inbox`` or its endpoint."""
    opts = ctx.network.endpoint_options.get(org_id, {})
    loc = str(opts.get("inbox") or ctx.network.member(org_id).endpoint)
    if loc.startswith("smtp"):
        raise ConfigError(f"{org_id} receives by mail: set endpoints.{org_id}.inbox to the folder "
                          "its mail is delivered to", org=org_id)
    return loc


def send_receipt(ctx: Context, org_id: str, to: str, package_id: str, digest: str,
                 disposition: str) -> None:
    """Sign, encrypt and send a receipt for ``package_id`` back to its sender."""
    now = dt.datetime.now(dt.UTC)
    doc = {"type": "receipt", "package_id": new_package_id(), "sender": org_id, "recipient": to,
           "created": now.isoformat(), "receipt": {"package_id": package_id, "digest": digest,
                                                   "disposition": disposition, "at": now.isoformat()}}
    built = build_package(doc, sender=ctx.network.member(org_id), sender_key=ctx.keys.current(org_id),
                          recipient=ctx.network.member(to), recipient_cert=recipient_certificate(ctx, to))
    _outlet_for(ctx, to, ctx.network.member(org_id).email).put(f"{doc['package_id']}.eml", built.eml)
    with ctx.store.session() as s:
        s.add(Receipt(package_id=package_id, direction="out", org=to, disposition=disposition,
                      digest=digest, at=utcnow()))


def _keep_rejected(ctx: Context, name: str, data: bytes, reason: str) -> None:
    folder = ctx.home / "rejected"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120] or "package"
    _write_durably(folder / safe, data)
    _write_durably(folder / f"{safe}.reason.txt", (reason + "\n").encode())


def _records_to_import(opened: Opened, imported: dict[str, dt.datetime]) -> list[Record]:
    """Check a handover for import — not a replay, every record fits its kind — and return its records.

    ``imported``: package id → when, for the ids the caller knows imported (the store's,
    and those checked earlier in the same batch: this one is added).
    """
    from stafet.core.cpr import parse_cpr

    doc = opened.doc
    first = imported.get(doc["package_id"])
    if first is not None:
        raise PackageRejected("replay", "this package id was already imported",
                              package=doc["package_id"], first=first.isoformat())
    cpr, now = parse_cpr(doc["youth"]["cpr"]), utcnow()
    recs = []
    for i, r in enumerate(doc["records"], 1):
        src = r.get("source") or {}
        prov = Provenance(source=f"package:{doc['sender']}", file=doc["package_id"], row=i, received_at=now)
        try:
            recs.append(record_from_payload(r["kind"], r["data"], cpr, prov))
        except (KeyError, TypeError, ValueError):
            raise PackageRejected("schema", f"record {i} does not fit its kind",
                                  package=doc["package_id"], kind=r["kind"],
                                  source=src.get("system")) from None
    imported[doc["package_id"]] = now
    return recs


def _write_imports(ctx: Context, s: Session, org_id: str, checked: list[tuple[Opened, list[Record]]]) -> None:
    """Write checked handovers: their records in one upsert, each package's row and audit entry."""
    if not checked:
        return
    recs = [r for _, rs in checked for r in rs]
    vias = [o.doc["package_id"] for o, rs in checked for _ in rs]
    ctx.store.upsert_records(s, recs, via_package=vias, actor=f"receive:{org_id}")
    now = utcnow()
    s.execute(insert(ImportedPackage), [
        {"package_id": o.doc["package_id"], "sender": o.doc["sender"], "recipient": org_id,
         "digest": o.digest, "disposition": "imported", "imported_at": now} for o, _ in checked])
    ctx.store.audit_many(s, f"receive:{org_id}", [
        ("package.imported", f"package:{o.doc['package_id']}",
         {"sender": o.doc["sender"], "records": len(rs), "digest": o.digest}) for o, rs in checked])


def _accept(ctx: Context, s: Session, org_id: str, opened: Opened) -> str:
    """Close a handover with a verified receipt whose digest matches what was sent.

    In the caller's transaction; every check comes before any write.
    """
    doc, r = opened.doc, opened.doc["receipt"]
    h = s.get(Handover, r["package_id"])
    if h is None or h.sender != org_id:
        raise PackageRejected("receipt_unknown", "a receipt for a package we did not send",
                              package=r["package_id"])
    if h.recipient != doc["sender"]:
        raise PackageRejected("receipt_mismatch", "the receipt is not from the package's recipient",
                              package=r["package_id"])
    if h.digest != r["digest"]:
        raise PackageRejected("receipt_mismatch", "the receipt's digest does not match what was sent",
                              package=r["package_id"])
    if h.status == "acknowledged":
        return "duplicate"
    disposition = str(r["disposition"])
    if disposition == "imported":
        h.status, h.acknowledged_at = "acknowledged", utcnow()
    else:
        h.status, h.last_error = "failed", f"rejected by recipient: {disposition}"
    s.add(Receipt(package_id=h.id, direction="in", org=doc["sender"], disposition=disposition,
                  digest=r["digest"], at=utcnow()))
    ctx.store.audit(s, f"receive:{org_id}", f"handover.{h.status}", f"handover:{h.id}",
                    {"disposition": disposition, "receipt": doc["package_id"]})
    return str(h.status)


IMPORT_BATCH = 16
"""Opened packages whose store writes share one transaction (see :func:`process_inbox`)."""


@dataclass
class Incoming:
    """One inbox file on its way through a receive pass."""

    name: str
    data: bytes
    opened: Opened | None = None
    refused: PackageRejected | None = None
    outcome: str = ""  # imported | withdrawn | acknowledged | duplicate | failed
    count: int = 0


def process_inbox(ctx: Context, org_id: str, *, location: str | None = None) -> InboxResult:
    """Receive everything waiting for ``org_id``: handovers, receipts, withdrawal notices.

    Each file is opened and checked (see :func:`stafet.packages.package.open_package`), on
    worker processes when the inbox is large (:mod:`stafet.packages.opening`); a refused file
    is kept under ``$STAFET_HOME/rejected/`` with its reason beside it.

    Order of effects, per batch of up to :data:`IMPORT_BATCH` files in the inbox's
    order (a crash between any two steps is recovered by the next pass):

    1. one transaction writes what the batch's packages carry — imports, receipts
       accepted, withdrawals — each package's checks before its writes, so a refused
       package leaves nothing behind;
    2. then, file by file: the receipt is sent for what was imported (a crash before
       it: the file is still in the inbox, the next pass finds a replay of what was
       imported and acknowledges it again), the refusal is kept and answered, and
       the file leaves the inbox (processed or rejected) last.
    """
    from transports.transport import open_inbox

    loc = ctx.network.locate(location or inbox_location(ctx, org_id))
    opts = ctx.network.endpoint_options.get(org_id, {})
    identity = str(ctx.network.resolve(str(opts["identity"]))) if opts.get("identity") else ""
    inbox = open_inbox(loc, host_key=str(opts.get("host_key", "")), identity=identity)
    keys = ctx.keys.decryption_keys(org_id)
    trust = trust_store(ctx)
    result = InboxResult()
    names = inbox.list("*.eml")
    opened = open_all(((n, inbox.read(n)) for n in names), count=len(names), org_id=org_id, keys=keys,
                      trust=trust, members=ctx.network.members)
    batch: list[Incoming] = []
    for name, data, outcome in opened:
        batch.append(Incoming(name, data, refused=outcome) if isinstance(outcome, PackageRejected)
                     else Incoming(name, data, opened=outcome))
        if len(batch) >= IMPORT_BATCH:
            _receive_batch(ctx, org_id, inbox, batch, result)
            batch = []
    if batch:
        _receive_batch(ctx, org_id, inbox, batch, result)
    return result


def store_batch(ctx: Context, org_id: str, batch: list[Incoming]) -> None:
    """Step 1 of a receive pass: write what the batch's opened packages carry, in one transaction.

    Sets each item's ``outcome`` (and ``count``), or its ``refused`` when a check fails
    (replay, a record that does not fit its kind, a receipt that does not match). Every
    package is checked before anything of it is written; consecutive handovers are
    written together (their records in one upsert), and always before a receipt or a
    withdrawal notice that comes after them is applied.
    """
    ids = [i.opened.doc["package_id"] for i in batch if i.opened is not None]
    with ctx.store.session() as s:
        imported = {pid: at for pid, at in s.execute(
            select(ImportedPackage.package_id, ImportedPackage.imported_at)
            .where(ImportedPackage.package_id.in_(ids)))}
        checked: list[tuple[Opened, list[Record]]] = []
        keys: set[tuple[str, str, str]] = set()  # records waiting in ``checked``
        for item in batch:
            if item.opened is None:
                continue
            try:
                kind = item.opened.doc["type"]
                if kind == "handover":
                    recs = _records_to_import(item.opened, imported)
                    mine = {(r.kind, r.cpr.digits, r.natural_key()) for r in recs}
                    if mine & keys:  # a later package about the same record: an update, audited
                        _write_imports(ctx, s, org_id, checked)
                        checked, keys = [], set()
                    checked.append((item.opened, recs))
                    keys |= mine
                    item.outcome, item.count = "imported", len(recs)
                    continue
                _write_imports(ctx, s, org_id, checked)
                checked, keys = [], set()
                if kind == "receipt":
                    item.outcome = _accept(ctx, s, org_id, item.opened)
                else:
                    item.outcome, item.count = "withdrawn", _withdraw(ctx, s, org_id, item.opened)
            except PackageRejected as e:
                item.refused = e
        _write_imports(ctx, s, org_id, checked)


def _receive_batch(ctx: Context, org_id: str, inbox: Any, batch: list[Incoming],
                   result: InboxResult) -> None:
    store_batch(ctx, org_id, batch)  # step 1: the store, in one transaction
    for item in batch:  # step 2: answers and files, in order
        if item.refused is not None:
            _refuse(ctx, org_id, inbox, item.name, item.data, item.opened, item.refused, result)
            continue
        assert item.opened is not None
        if item.outcome == "acknowledged":
            result.acknowledged += 1
        elif item.outcome in ("imported", "withdrawn"):
            if item.outcome == "imported":
                result.imported += 1
            else:
                result.withdrawn += item.count
            doc = item.opened.doc
            try:
                send_receipt(ctx, org_id, doc["sender"], doc["package_id"], item.opened.digest, "imported")
            except PackageRejected as e:
                _refuse(ctx, org_id, inbox, item.name, item.data, item.opened, e, result)
                continue
            except StafetError as e:
                # Imported, but the sender cannot be told now: leave the file in the inbox so the
                # next pass answers it (as a replay, re-acknowledged), and go on with the others.
                result.receipt_errors[item.name] = str(e)
                log.warning("imported %s but its receipt was not sent: %s", item.name, e)
                continue
            result.receipts_sent += 1
        inbox.mark_processed(item.name)


def _refuse(ctx: Context, org_id: str, inbox: Any, name: str, data: bytes, opened: Opened | None,
            e: PackageRejected, result: InboxResult) -> None:
    result.rejected[name] = e.reason
    _keep_rejected(ctx, name, data, str(e))
    with ctx.store.session() as s:
        ctx.store.audit(s, f"receive:{org_id}", "package.rejected", f"file:{name}",
                        {"reason": e.reason, "message": str(e)})
    log.warning("refused %s: %s", name, e)
    if opened is not None and opened.doc["type"] == "handover":
        _answer_refusal(ctx, org_id, opened, e)
    inbox.reject(name, reason=str(e))


def _answer_refusal(ctx: Context, org_id: str, opened: Opened, e: PackageRejected) -> None:
    """Tell a verified sender why we refused; a replay of what we imported is re-acknowledged."""
    doc = opened.doc
    disposition = f"rejected: {e.reason}"
    if e.reason == "replay":
        with ctx.store.session() as s:
            prior = s.get(ImportedPackage, doc["package_id"])
            if prior is not None and prior.digest == opened.digest:
                disposition = "imported"
    try:
        send_receipt(ctx, org_id, doc["sender"], doc["package_id"], opened.digest, disposition)
    except StafetError as err:
        log.warning("could not answer %s: %s", doc["package_id"], err)


def _withdraw(ctx: Context, s: Session, org_id: str, opened: Opened) -> int:
    """Mark the records imported from the packages a withdrawal notice names as withdrawn."""
    w = opened.doc["withdrawal"]
    rows = list(s.scalars(select(RecordRow).where(RecordRow.via_package.in_(w["package_ids"]))))
    for r in rows:
        r.withdrawn = True
    ctx.store.audit(s, f"receive:{org_id}", "consent.withdrawn", f"consent:{w['consent_ref']}",
                    {"packages": w["package_ids"], "records": len(rows)})
    return len(rows)
