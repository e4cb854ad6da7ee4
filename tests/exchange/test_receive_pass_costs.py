"""What a receive pass writes stays what it was when its per-package work was cut (issue: receive CPU).

The cuts: the receipts of a batch close their handovers with one query and one insert each
for the receipt rows and the audit entries (:func:`stafet.store.outbox.write_acknowledged`),
the signing key, certificates and endpoint paths a pass's receipts use are read once a pass
(:func:`stafet.exchange.endpoints.pass_memo`), receipt rows and audit entries are plain inserts.

Each test works out on its own, from the inbox's order and the documented order of effects
(:func:`stafet.exchange.inbox.process_inbox`: per batch of ``IMPORT_BATCH`` files, first the
store, then file by file the answers, refusals and moves), which rows, audit entries (action,
subject, in chain order), receipts and file moves a pass must leave, and compares.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from typing import Any

import pytest
from sqlalchemy import select

from stafet.core.cpr import parse_cpr
from stafet.core.models import Provenance, record_from_payload
from stafet.duties.routing import Decision
from stafet.exchange.endpoints import one_trust, pass_memo, recipient_certificate, signing_key
from stafet.exchange.inbox import IMPORT_BATCH
from stafet.exchange.outbox import plan_handovers, send_pending
from stafet.packages.package import build_package, new_package_id, open_package
from stafet.store import audit
from stafet.store.schema import AuditEntry, Handover, ImportedPackage, Receipt, RecordRow

SENDER, RECEIVER = "779008", "uu-viborg"
N = IMPORT_BATCH + 4  # two batches


def _cprs(n: int) -> list[str]:
    """Synthetic CPRs, one per youth (birth dates in 2008, serials starting with 4)."""
    first = dt.date(2008, 1, 1)
    return [f"{first + dt.timedelta(days=i):%d%m%y}-4{i:03d}" for i in range(n)]


def _send(net: Any, n: int) -> dict[str, str]:
    """``n`` dropout handovers planned and sent by the sender; package id → digest."""
    ctx = net.ctx(SENDER)
    data = net.handover_doc()["records"][0]["data"]
    now = dt.datetime.now(dt.UTC)
    recs = [record_from_payload("dropout", data, parse_cpr(c), Provenance("easy-a", "f.csv", i + 2, now))
            for i, c in enumerate(_cprs(n))]
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, recs, actor="test")
    with ctx.store.session() as s:
        rows = [(r.id, r.youth) for r in s.scalars(select(RecordRow).where(RecordRow.kind == "dropout"))]
    decisions = [Decision(sender=SENDER, recipient=RECEIVER, youth=y, record_ids=(rid,), rule="dropout_to_uu",
                          legal_basis="vejledningsloven § 12 c") for rid, y in rows]
    assert plan_handovers(ctx, decisions)["planned"] == n
    assert send_pending(ctx).sent == n
    with ctx.store.session() as s:
        return {h.id: h.digest for h in s.scalars(select(Handover).where(Handover.recipient == RECEIVER))}


def _trail(net: Any, org: str, since: int = 0) -> list[tuple[str, str]]:
    """``(action, subject)`` of ``org``'s audit entries after id ``since``, in chain order (chain checked)."""
    with net.ctx(org).store.session() as s:
        audit.verify_chain(s)
        return [(e.action, e.subject) for e in s.scalars(select(AuditEntry).where(AuditEntry.id > since)
                                                          .order_by(AuditEntry.id))]


def _last_audit_id(net: Any, org: str) -> int:
    with net.ctx(org).store.session() as s:
        return max([0, *s.scalars(select(AuditEntry.id))])


def _receipts(net: Any, org: str, direction: str) -> list[tuple[str, str, str, str]]:
    with net.ctx(org).store.session() as s:
        return [(r.package_id, r.org, r.disposition, r.digest) for r in s.scalars(
            select(Receipt).where(Receipt.direction == direction).order_by(Receipt.id))]


def _files(folder: Any) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []


def _batches(names: list[str]) -> list[list[str]]:
    return [names[i:i + IMPORT_BATCH] for i in range(0, len(names), IMPORT_BATCH)]


def _receipt_doc(net: Any, *, of: str, digest: str, disposition: str = "imported") -> bytes:
    now = dt.datetime.now(dt.UTC).isoformat()
    doc = {"type": "receipt", "package_id": new_package_id(), "sender": RECEIVER, "recipient": SENDER,
           "created": now,
           "receipt": {"package_id": of, "digest": digest, "disposition": disposition, "at": now}}
    return build_package(doc, sender=net.member(RECEIVER), sender_key=net.key(RECEIVER),
                         recipient=net.member(SENDER), recipient_cert=net.key(SENDER).cert).eml


def _opened(net: Any, org: str, data: bytes) -> Any:
    return open_package(data, org_id=org, keys=net.keystore(org).decryption_keys(org), trust=net.trust(),
                        members=net.members)


def test_a_receive_pass_writes_what_one_package_after_another_writes(net: Any) -> None:
    """Imports, a resend in the same batch, a refused file: rows, audit, receipts and moves as expected."""
    sent = _send(net, N)
    inbox = net.inbox(RECEIVER)
    first = sorted(sent)[0]
    resend = first.replace(".eml", "") + "0.eml"  # sorts right after the first package: the same batch
    (inbox / resend).write_bytes((inbox / f"{first}.eml").read_bytes())
    (inbox / "PKG-junk.eml").write_bytes(b"Content-Type: text/plain\r\n\r\nnot a package\r\n")
    names = _files(inbox)
    what = {f"{pid}.eml": pid for pid in sent} | {resend: first}
    since = _last_audit_id(net, RECEIVER)

    result = net.receive(RECEIVER)

    assert (result.imported, result.duplicates, result.receipts_sent) == (N, 1, N + 1)
    assert result.rejected == {"PKG-junk.eml": "malformed"}
    expected_trail: list[tuple[str, str]] = []
    expected_out: list[tuple[str, str, str, str]] = []
    for batch in _batches(names):
        imports = []  # step 1, in the inbox's order: a resend is audited as it is met, the imports of
        for name in batch:  # a run of handovers together after it (here: at the batch's end)
            if name == resend:
                expected_trail.append(("package.duplicate", f"package:{what[name]}"))
            elif name in what:
                imports.append(("package.imported", f"package:{what[name]}"))
        expected_trail += imports
        for name in batch:  # step 2: answers and refusals, file by file
            if name in what:
                expected_out.append((what[name], SENDER, "imported", sent[what[name]]))
            else:
                expected_trail.append(("package.rejected", f"file:{name}"))
    assert _trail(net, RECEIVER, since) == expected_trail
    assert _receipts(net, RECEIVER, "out") == expected_out
    with net.ctx(RECEIVER).store.session() as s:
        got = {p.package_id: (p.sender, p.recipient, p.digest, p.disposition)
               for p in s.scalars(select(ImportedPackage))}
    assert got == {pid: (SENDER, RECEIVER, digest, "imported") for pid, digest in sent.items()}
    assert _files(inbox) == []
    assert _files(inbox / "processed") == sorted(what)
    assert "PKG-junk.eml" in _files(inbox / "rejected")
    receipts = [_opened(net, SENDER, p.read_bytes()).document for p in (net.inbox(SENDER)).glob("*.eml")]
    assert sorted((r.for_package, r.digest, r.disposition) for r in receipts) == sorted(
        (pid, digest, "imported") for pid, digest in [*sent.items(), (first, sent[first])])


def test_receipts_close_their_handovers_in_the_inbox_order_whatever_comes_between(net: Any) -> None:
    """The sender's pass: receipts around a handover, one twice, one refused, one saying 'rejected'."""
    sent = _send(net, N)
    assert net.receive(RECEIVER).receipts_sent == N
    box = net.inbox(SENDER)
    names = _files(box)
    by_name = {n: _opened(net, SENDER, (box / n).read_bytes()).document for n in names}
    assert sorted(d.for_package for d in by_name.values()) == sorted(sent)
    # between the first two receipts: a handover to the sender (its import is audited between theirs)
    handover = net.build(sender=RECEIVER, recipient=SENDER)
    between = names[0].replace(".eml", "") + "0.eml"
    (box / between).write_bytes(handover.eml)
    # the third receipt twice, in the same batch: the second finds the handover acknowledged
    twice = names[2].replace(".eml", "") + "1.eml"
    (box / twice).write_bytes((box / names[2]).read_bytes())
    # a receipt for a package never sent: refused
    unknown = "PKG--unknown.eml"
    (box / unknown).write_bytes(_receipt_doc(net, of=new_package_id(), digest="0" * 64))
    # the fifth handover's receipt says the receiver refused it: the handover fails
    refused_pid = by_name[names[4]].for_package
    (box / names[4]).write_bytes(_receipt_doc(net, of=refused_pid, digest=sent[refused_pid],
                                              disposition="rejected: schema"))
    by_name[names[4]] = _opened(net, SENDER, (box / names[4]).read_bytes()).document
    order = _files(box)
    assert order.index(between) == 2  # after the unknown receipt (sorts first) and the first receipt
    assert order.index(twice) == order.index(names[2]) + 1
    since = _last_audit_id(net, SENDER)

    result = net.receive(SENDER)

    assert (result.acknowledged, result.imported, result.rejected) == (N - 1, 1, {unknown: "receipt_unknown"})
    expected_trail: list[tuple[str, str]] = []
    expected_in: list[tuple[str, str, str, str]] = []
    closed: set[str] = set()
    for batch in _batches(order):
        for name in batch:  # the handover's import is written when the next receipt comes
            if name == between:
                expected_trail.append(("package.imported", f"package:{handover.package_id}"))
            elif name in by_name or name == twice:
                doc = by_name[names[2] if name == twice else name]
                if doc.for_package in closed:
                    continue  # acknowledged already: nothing written
                closed.add(doc.for_package)
                status = "failed" if doc.disposition.startswith("rejected") else "acknowledged"
                expected_trail.append((f"handover.{status}", f"handover:{doc.for_package}"))
                expected_in.append((doc.for_package, RECEIVER, doc.disposition, sent[doc.for_package]))
        for name in batch:
            if name == unknown:
                expected_trail.append(("package.rejected", f"file:{name}"))
    assert _trail(net, SENDER, since) == expected_trail
    assert _receipts(net, SENDER, "in") == expected_in
    with net.ctx(SENDER).store.session() as s:
        states = {h.id: (h.status, h.last_error) for h in s.scalars(
            select(Handover).where(Handover.recipient == RECEIVER))}
        acked = {h.id: h.acknowledged_at
                 for h in s.scalars(select(Handover).where(Handover.recipient == RECEIVER))}
    assert states == {pid: ("failed", "rejected by recipient: rejected: schema") if pid == refused_pid
                      else ("acknowledged", "") for pid in sent}
    assert all(acked[pid] is not None for pid in sent if pid != refused_pid)
    assert _files(box) == []
    assert _files(box / "processed") == sorted(n for n in order if n != unknown)
    assert unknown in _files(box / "rejected")


def test_one_acknowledgement_alone_is_written_at_once(net: Any) -> None:
    """Without ``pending``, :func:`stafet.store.outbox.acknowledge` writes its receipt and audit entry."""
    from stafet.store import outbox

    sent = _send(net, 1)
    (pid, digest), = sent.items()
    ctx = net.ctx(SENDER)
    since = _last_audit_id(net, SENDER)
    with ctx.store.session() as s:
        h = outbox.get(s, pid)
        assert h is not None
        assert outbox.acknowledge(s, h, "read", receipt_from=RECEIVER, digest=digest, receipt_id="PKG-r",
                                  actor="test") == "acknowledged"
        assert [r.package_id for r in s.scalars(select(Receipt).where(Receipt.direction == "in"))] == [pid]
    assert _trail(net, SENDER, since) == [("handover.acknowledged", f"handover:{pid}")]
    with ctx.store.session() as s:
        e = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert e.details == {"disposition": "read", "receipt": "PKG-r"} and e.actor == "test"


def test_audit_entries_written_together_hash_as_the_chain_defines(net: Any) -> None:
    """Entries of :func:`append_many` carry the hash the chain's definition gives (computed here by hand)."""
    ctx = net.ctx(RECEIVER)
    with ctx.store.session() as s:
        audit.append_many(s, "test", [("a.one", "x:1", {"n": 1, "when": dt.date(2026, 1, 2)}),
                                      ("a.two", "x:2", {"list": (1, "æ")}), ("a.three", "x:3", {})])
    with ctx.store.session() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))[-3:]
        audit.verify_chain(s)
    assert [(r.action, r.subject, r.details) for r in rows] == [
        ("a.one", "x:1", {"n": 1, "when": "2026-01-02"}), ("a.two", "x:2", {"list": [1, "æ"]}),
        ("a.three", "x:3", {})]
    for before, row in itertools.pairwise(rows):
        body = json.dumps([before.hash, row.at.isoformat(timespec="microseconds"), row.actor, row.action,
                           row.subject, row.details], sort_keys=True, ensure_ascii=False)
        assert row.prev_hash == before.hash
        assert row.hash == hashlib.sha256(body.encode()).hexdigest()


def test_a_pass_reads_its_signing_key_and_certificates_once_and_still_checks_them(net: Any) -> None:
    """Inside one trust pass: the same key and certificate as outside; an expired one is never used."""
    from stafet.core.errors import DeliveryFailed

    ctx = net.ctx(RECEIVER)
    assert pass_memo(ctx) is None  # outside a pass nothing is kept
    outside_key, outside_cert = ctx.keys.current(RECEIVER), recipient_certificate(ctx, SENDER)
    reads: list[str] = []
    real_current = ctx.keys.current

    def counted(org: str) -> Any:
        reads.append(org)
        return real_current(org)
    ctx.keys.current = counted
    try:
        assert signing_key(ctx, RECEIVER).serial == signing_key(ctx, RECEIVER).serial == outside_key.serial
        assert reads == [RECEIVER] * 2  # outside a pass: read each time
        with one_trust(ctx):
            for _ in range(3):
                assert signing_key(ctx, RECEIVER).serial == outside_key.serial
        assert reads == [RECEIVER] * 3  # inside one: read once
    finally:
        del ctx.keys.current
    with one_trust(ctx):
        memo = pass_memo(ctx)
        assert memo is not None
        assert signing_key(ctx, RECEIVER).serial == outside_key.serial
        assert recipient_certificate(ctx, SENDER) == outside_cert
        assert ("signing_key", RECEIVER) in memo and ("certificate", SENDER) in memo
        # what the pass keeps is checked at each use: an expired key or certificate is not used
        expired = net.odd("expired")
        memo[("signing_key", RECEIVER)] = expired
        assert signing_key(ctx, RECEIVER).serial == outside_key.serial
        memo[("certificate", SENDER)] = expired.cert
        try:
            recipient_certificate(ctx, SENDER)
        except DeliveryFailed as e:
            assert "not valid now" in str(e)
        else:
            raise AssertionError("an expired certificate kept by the pass was used")
    assert pass_memo(ctx) is None


def test_a_signing_key_revoked_during_a_pass_is_not_used(net: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from stafet.core.errors import ConfigError

    ctx = net.ctx(RECEIVER)
    key = ctx.keys.current(RECEIVER)
    now = dt.datetime.now(dt.UTC)
    others = [k for k in ctx.keys.keys(RECEIVER) if k.serial != key.serial
              and k.cert.not_valid_before_utc <= now <= k.cert.not_valid_after_utc]
    with one_trust(ctx):
        assert signing_key(ctx, RECEIVER).serial == key.serial
        # `stafet keys revoke` meanwhile
        monkeypatch.setattr(ctx.keys, "revoked_serials", lambda: {key.serial})
        if others:
            assert signing_key(ctx, RECEIVER).serial == others[0].serial
        else:
            with pytest.raises(ConfigError, match="no valid key"):
                signing_key(ctx, RECEIVER)


def test_a_send_pass_reads_its_senders_key_once(net: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = net.ctx(SENDER)
    reads: list[str] = []
    real = ctx.keys.current
    monkeypatch.setattr(ctx.keys, "current", lambda org: reads.append(org) or real(org))
    before = len(_receipts(net, SENDER, "in"))
    _send(net, 4)  # four packages from one sender in one pass
    assert reads == [SENDER]
    assert len(_receipts(net, SENDER, "in")) == before  # nothing else happened on the way
