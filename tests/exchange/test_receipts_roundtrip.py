"""The receipt round trip closes a handover: pending → sent → (receiver imports, signs a
receipt) → acknowledged, over a folder, a real sshd (SFTP) and a real SMTP server whose
mail lands in the receiving organisation's inbox folder. And receipts that do not
match what was sent are refused."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from stafet.core.cpr import parse_cpr
from stafet.core.models import Provenance, record_from_payload
from stafet.duties.routing import Decision
from stafet.exchange.outbox import plan_handovers, send_pending
from stafet.packages.package import _json_part, build_package, new_package_id, split_signed
from stafet.store.schema import Handover, ImportedPackage, RecordRow

SENDER, RECEIVER = "779008", "uu-viborg"


def plan(net, sender: str = SENDER, recipient: str = RECEIVER, *, reason: str = "Skiftet retning") -> str:
    """A dropout in the sender's store and a pending handover of it; returns the package id."""
    ctx = net.ctx(sender)
    data = net.handover_doc()["records"][0]["data"] | {"reason_text": reason}
    rec = record_from_payload("dropout", data, parse_cpr("120308-4127"),
                              Provenance("easy-a", "779008_haendelser.csv", 2, dt.datetime.now(dt.UTC)))
    with ctx.store.session() as s:
        ctx.store.upsert_records(s, [rec], actor="test")
    with ctx.store.session() as s:
        row = s.scalars(select(RecordRow).where(RecordRow.kind == "dropout")
                        .order_by(RecordRow.id.desc())).first()
        rid, youth = row.id, row.youth
    decision = Decision(sender=sender, recipient=recipient, youth=youth, record_ids=(rid,),
                        rule="dropout_to_uu", legal_basis="vejledningsloven § 12 c")
    assert plan_handovers(net.ctx(sender), [decision])["planned"] == 1
    with ctx.store.session() as s:
        return s.scalars(select(Handover).where(Handover.recipient == recipient)
                         .order_by(Handover.created_at.desc())).first().id


def status(net, package_id: str, org: str = SENDER) -> str:
    with net.ctx(org).store.session() as s:
        return s.get(Handover, package_id).status


def round_trip(net) -> str:
    package_id = plan(net)
    assert status(net, package_id) == "pending"
    sent = send_pending(net.ctx(SENDER))
    assert (sent.sent, sent.failed, sent.errors) == (1, 0, {})
    assert status(net, package_id) == "sent"  # delivered, not yet acknowledged

    received = net.receive(RECEIVER)
    assert (received.imported, received.receipts_sent, received.rejected) == (1, 1, {})
    with net.ctx(RECEIVER).store.session() as s:
        assert s.get(ImportedPackage, package_id) is not None

    closed = net.receive(SENDER)
    assert (closed.acknowledged, closed.rejected) == (1, {})
    assert status(net, package_id) == "acknowledged"
    return package_id


def test_round_trip_over_folders(net):
    package_id = round_trip(net)
    # The sender keeps its own readable copy (encrypted to itself as well).
    copy = (net.home(SENDER) / "outbox" / f"{package_id}.eml").read_bytes()
    content, _ = split_signed(net.entity(copy, SENDER))
    assert _json_part(content)["package_id"] == package_id


@pytest.mark.slow
def test_round_trip_over_sftp(net, sshd):
    for org in (SENDER, RECEIVER):
        folder = sshd.new_folder(org)
        net.set_endpoint(org, sshd.url(folder), host_key=sshd.host_key, identity=str(sshd.client_key))
    round_trip(net)


@pytest.mark.slow
def test_round_trip_over_smtp(net, make_smtp_server):
    """Each organisation's sikker-mail lands in a folder, which is its ``endpoints.<org>.inbox``."""
    servers = {org: make_smtp_server() for org in (SENDER, RECEIVER)}
    config = net.config()
    for m in config["members"]:
        if m["id"] in servers:
            m["endpoint"] = servers[m["id"]].endpoint
    # the test servers offer no STARTTLS (required by default): these endpoints send in clear, without a login
    config["endpoints"] = {org: {"inbox": f"folder:{srv.maildir}", "starttls": "never"}
                           for org, srv in servers.items()}
    net.write_config(config)
    round_trip(net)
    (mail,) = servers[RECEIVER].envelopes()
    assert mail["rcpt_tos"] == [net.member(RECEIVER).email]
    assert mail["mail_from"] == net.member(SENDER).email


# --------------------------------------------------------------------------- refused receipts


def receipt(net, *, of: str, digest: str, frm: str = RECEIVER, to: str = SENDER,
            disposition: str = "imported") -> bytes:
    now = dt.datetime.now(dt.UTC).isoformat()
    doc = {"type": "receipt", "package_id": new_package_id(), "sender": frm, "recipient": to, "created": now,
           "receipt": {"package_id": of, "digest": digest, "disposition": disposition, "at": now}}
    return build_package(doc, sender=net.member(frm), sender_key=net.key(frm), recipient=net.member(to),
                         recipient_cert=net.key(to).cert).eml


def sent(net, recipient: str = RECEIVER) -> tuple[str, str]:
    package_id = plan(net, recipient=recipient, reason=f"til {recipient}")
    assert send_pending(net.ctx(SENDER), recipients=[recipient]).sent == 1
    with net.ctx(SENDER).store.session() as s:
        return package_id, s.get(Handover, package_id).digest


def refused_receipt(net, data: bytes, reason: str) -> None:
    net.deliver(SENDER, "receipt.eml", data)
    result = net.receive(SENDER)
    assert result.rejected == {"receipt.eml": reason}
    assert result.acknowledged == 0
    why = (net.home(SENDER) / "rejected" / "receipt.eml.reason.txt").read_text()
    assert f"[{reason}]" in why


def test_receipt_with_wrong_digest_is_refused(net):
    package_id, _ = sent(net)
    refused_receipt(net, receipt(net, of=package_id, digest="0" * 64), "receipt_mismatch")
    assert status(net, package_id) == "sent"


def test_receipt_from_another_member_is_refused(net):
    """The job centre (a member, validly signed) acknowledges a package sent to UU."""
    package_id, digest = sent(net)
    foreign = receipt(net, of=package_id, digest=digest, frm="jobcenter-viborg")
    refused_receipt(net, foreign, "receipt_mismatch")
    assert status(net, package_id) == "sent"


def test_swapped_receipts_are_refused(net):
    """Two handovers in flight; each receipt names the other's package with its own digest."""
    to_uu, uu_digest = sent(net, RECEIVER)
    to_jc, jc_digest = sent(net, "jobcenter-viborg")
    refused_receipt(net, receipt(net, of=to_uu, digest=jc_digest), "receipt_mismatch")
    (net.home(SENDER) / "rejected" / "receipt.eml").unlink()
    refused_receipt(net, receipt(net, of=to_jc, digest=uu_digest, frm="jobcenter-viborg"), "receipt_mismatch")
    assert (status(net, to_uu), status(net, to_jc)) == ("sent", "sent")
    # The right receipts close them.
    net.deliver(SENDER, "r1.eml", receipt(net, of=to_uu, digest=uu_digest))
    net.deliver(SENDER, "r2.eml", receipt(net, of=to_jc, digest=jc_digest, frm="jobcenter-viborg"))
    assert net.receive(SENDER).acknowledged == 2


def test_receipt_for_a_package_we_never_sent_is_refused(net):
    refused_receipt(net, receipt(net, of=new_package_id(), digest="a" * 64), "receipt_unknown")


def test_receipt_signed_by_someone_else_is_refused(net):
    """A receipt claiming to be from UU but signed by the job centre's key."""
    package_id, digest = sent(net)
    now = dt.datetime.now(dt.UTC).isoformat()
    doc = {"type": "receipt", "package_id": new_package_id(), "sender": RECEIVER, "recipient": SENDER,
           "created": now, "receipt": {"package_id": package_id, "digest": digest, "disposition": "imported",
                                       "at": now}}
    eml = build_package(doc, sender=net.member(RECEIVER), sender_key=net.key("jobcenter-viborg"),
                        recipient=net.member(SENDER), recipient_cert=net.key(SENDER).cert).eml
    refused_receipt(net, eml, "signer_not_sender")
    assert status(net, package_id) == "sent"


def test_a_rejection_receipt_fails_the_handover(net):
    package_id, digest = sent(net)
    net.deliver(SENDER, "r.eml", receipt(net, of=package_id, digest=digest, disposition="rejected: schema"))
    net.receive(SENDER)
    assert status(net, package_id) == "failed"


def test_duplicate_receipt_is_harmless(net):
    package_id, digest = sent(net)
    for name in ("r1.eml", "r2.eml"):
        net.deliver(SENDER, name, receipt(net, of=package_id, digest=digest))
    result = net.receive(SENDER)
    assert result.acknowledged == 1 and result.rejected == {}
    assert status(net, package_id) == "acknowledged"


@pytest.mark.slow
def test_an_unreachable_sender_does_not_stop_the_inbox_and_is_answered_later(net, make_smtp_server):
    """The receipt to one sender cannot be sent (SMTP 451): the other packages are still
    received, and the next pass answers the first one (a duplicate delivery by then)."""
    smtp = make_smtp_server()
    config = net.config()
    for m in config["members"]:
        if m["id"] == SENDER:
            m["endpoint"] = smtp.endpoint
    config["endpoints"] = {SENDER: {"inbox": f"folder:{smtp.maildir}", "starttls": "never"}}
    net.write_config(config)
    net.deliver(RECEIVER, "a.eml", net.build().eml)
    net.deliver(RECEIVER, "b.eml", net.build().eml)
    smtp.fail_next(451)
    first = net.receive(RECEIVER)
    assert first.imported == 2 and first.receipts_sent == 1
    assert list(first.receipt_errors) == ["a.eml"]
    assert (net.inbox(RECEIVER) / "a.eml").exists()  # kept: answered on the next pass
    second = net.receive(RECEIVER)
    assert second.rejected == {} and second.duplicates == 1 and second.imported == 0
    answers = [net.open(m, SENDER).doc["receipt"]["disposition"] for m in smtp.messages()]
    assert answers == ["imported", "imported"]
