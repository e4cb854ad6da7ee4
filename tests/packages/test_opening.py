"""Opening an inbox on every core (``stafet.packages.opening``): the same outcomes as one by one,
in the inbox's order; refusals keep their reason across the process boundary; the
workers die with their parent. And revocation is checked for issuing CAs too."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.trust import TrustStore
from stafet.core.errors import PackageRejected
from stafet.packages import opening
from stafet.packages.opening import open_all, workers_for
from stafet.packages.package import Opened


def _inbox(net) -> list[tuple[str, bytes]]:
    """Good packages for uu-viborg with refusals between them (each with its own reason)."""
    items = [(f"good-{i:02d}.eml", net.build().eml) for i in range(8)]
    tampered = bytearray(net.build().eml)
    tampered[len(tampered) // 2] ^= 0x04  # inside the base64 body: a damaged envelope
    items.insert(2, ("tampered.eml", bytes(tampered)))
    items.insert(5, ("to-jobcenter.eml", net.build(recipient="jobcenter-viborg").eml))
    items.insert(7, ("revoked.eml", net.build(sender_key=net.odd("revoked")).eml))
    items.append(("garbage.eml", b"From: x\r\n\r\nnot a package"))
    return items


def _summary(outcomes: list[tuple[str, bytes, object]]) -> list[tuple[str, str, str]]:
    out = []
    for name, _, o in outcomes:
        if isinstance(o, Opened):
            out.append((name, o.doc["package_id"], o.digest))
        else:
            assert isinstance(o, PackageRejected)
            out.append((name, o.reason, str(o)))
    return out


def test_workers_give_the_same_outcomes_in_the_same_order(net):
    items = _inbox(net)
    org = "uu-viborg"
    keys = net.keystore(org).decryption_keys(org)
    args = {"count": len(items), "org_id": org, "keys": keys, "trust": net.trust(), "members": net.members}
    alone = list(open_all(iter(items), workers=0, **args))
    pooled = list(open_all(iter(items), workers=2, **args))
    assert _summary(pooled) == _summary(alone)
    assert [n for n, _, _ in pooled] == [n for n, _ in items]
    reasons = {n: o.reason for n, _, o in pooled if isinstance(o, PackageRejected)}
    assert reasons == {"to-jobcenter.eml": "wrong_recipient", "revoked.eml": "revoked",
                       "garbage.eml": "malformed", "tampered.eml": reasons["tampered.eml"]}
    assert reasons["tampered.eml"] in {"malformed", "decrypt_failed", "bad_signature"}
    good = [o for _, _, o in pooled if isinstance(o, Opened)]
    assert len(good) == 8
    # The signer's certificate crossed the pipe as DER and is the sender's.
    assert {o.signed.org_id for o in good} == {"779008"}
    assert all(o.signed.content_digest == o.digest for o in good)


def test_a_full_inbox_pass_on_workers_imports_answers_and_keeps_refusals(net, monkeypatch):
    monkeypatch.setattr(opening, "MIN_PER_WORKER", 2)  # this inbox is small: make the pool pay anyway
    assert workers_for(12, cores=2) == 2
    for name, data in _inbox(net):
        net.deliver("uu-viborg", name, data)
    result = net.receive("uu-viborg")
    assert (result.imported, result.receipts_sent) == (8, 8)
    assert set(result.rejected) == {"tampered.eml", "to-jobcenter.eml", "revoked.eml", "garbage.eml"}
    rejected = net.home("uu-viborg") / "rejected"
    assert (rejected / "revoked.eml.reason.txt").read_text().startswith("[revoked]")
    assert not list(net.inbox("uu-viborg").glob("*.eml"))  # every file filed: processed or rejected
    assert len(list(net.inbox("779008").glob("*.eml"))) == 8  # a signed receipt for each import


def test_workers_for_keeps_small_inboxes_in_process():
    assert workers_for(10, cores=2) == 0
    assert workers_for(opening.MIN_PER_WORKER * 2, cores=2) == 2
    assert workers_for(10_000, cores=1) == 0
    assert workers_for(10_000, cores=8) == 8


def test_a_refusal_pickles_with_its_reason_and_message():
    e = PackageRejected("revoked", "the signer's certificate is revoked", serial="1f", signer="779008")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is PackageRejected
    assert (back.reason, str(back), back.context) == (e.reason, str(e), e.context)


def test_workers_exit_when_their_parent_is_killed(net, tmp_path: Path):
    """A SIGKILLed receive (the crash tests do this) leaves no worker behind."""
    org = "uu-viborg"
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import itertools, sys, time
        sys.path[:0] = {[str(Path(__file__).parents[2]), str(Path(__file__).parents[1])]!r}
        from testnet import TestNet
        from stafet.core.workers import live_pids
        from stafet.packages.opening import open_all
        net = TestNet(__import__("pathlib").Path({str(net.root)!r}))
        eml = net.build().eml
        keys = net.keystore({org!r}).decryption_keys({org!r})
        for i, _ in enumerate(open_all((("p.eml", eml) for _ in itertools.count()), count=10**6,
                                       org_id={org!r}, keys=keys, trust=net.trust(), members=net.members,
                                       workers=2)):
            if i == 3:
                print(" ".join(str(p) for p in live_pids()), flush=True)
            time.sleep(0.01)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        pids = [int(p) for p in line.split()]
        assert len(pids) >= 2, line
        assert all(Path(f"/proc/{p}").exists() for p in pids)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 20
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.1)
    assert alive == []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- revocation of an issuing CA ---------------------------------------------------------

def _cert(subject: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, *,
          ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                         key_encipherment=not ca, data_encipherment=False,
                                         key_agreement=False,
                                         key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .sign(issuer_key, hashes.SHA256()))


def _crl(issuer: str, key: rsa.RSAPrivateKey,
         revoked: list[x509.Certificate]) -> x509.CertificateRevocationList:
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
         .last_update(now).next_update(now + dt.timedelta(days=7)))
    for c in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(c.serial_number)
                                      .revocation_date(now).build())
    return b.sign(key, hashes.SHA256())


@pytest.mark.parametrize("revoke_intermediate", [False, True])
def test_a_revoked_issuing_ca_revokes_what_it_issued(revoke_intermediate: bool):
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    root = _cert("root", keys[0], "root", keys[0], ca=True)
    inter = _cert("intermediate", keys[1], "root", keys[0], ca=True)
    leaf = _cert("779008", keys[2], "intermediate", keys[1], ca=False)
    crls = [_crl("root", keys[0], [inter] if revoke_intermediate else []), _crl("intermediate", keys[1], [])]
    trust = TrustStore([root], crls)
    now = dt.datetime.now(dt.UTC)
    if revoke_intermediate:
        with pytest.raises(PackageRejected) as e:
            trust.check_certificate(leaf, now, [inter])
        assert e.value.reason == "revoked" and "issuing CA" in str(e.value)
    else:
        trust.check_certificate(leaf, now, [inter])  # chains, valid, nothing revoked


def test_one_batch_imports_once_what_arrives_twice_and_answers_both(net):
    """Two copies of one package in a single pass share a store transaction: the first is
    imported, the second is a duplicate delivery of it and is acknowledged again (same digest)."""
    from sqlalchemy import func, select

    from stafet.store.schema import ImportedPackage, Receipt

    eml = net.build().eml
    net.deliver("uu-viborg", "a.eml", eml)
    net.deliver("uu-viborg", "b.eml", eml)
    net.deliver("uu-viborg", "c.eml", net.build().eml)
    result = net.receive("uu-viborg")
    assert result.imported == 2 and result.duplicates == 1 and result.rejected == {}
    with net.ctx("uu-viborg").store.session() as s:
        assert s.scalar(select(func.count()).select_from(ImportedPackage)) == 2
        dispositions = sorted(s.scalars(select(Receipt.disposition).where(Receipt.direction == "out")))
    assert dispositions == ["imported", "imported", "imported"]  # the duplicate is re-acknowledged
    assert len(list(net.inbox("779008").glob("*.eml"))) == 3


def test_a_pass_that_died_after_its_store_commit_is_finished_by_the_next(net):
    """The state a SIGKILL leaves between step 1 (store commit) and step 2 (receipts, file
    moves): imports committed, no receipt sent, files still in the inbox. The next pass
    imports nothing twice, acknowledges every one of them and empties the inbox."""
    from sqlalchemy import func, select

    from stafet.exchange.inbox import Incoming, store_batch
    from stafet.store.schema import ImportedPackage, Receipt

    org = "uu-viborg"
    for i in range(3):
        net.deliver(org, f"p{i}.eml", net.build().eml)
    keys = net.keystore(org).decryption_keys(org)
    items = [(p.name, p.read_bytes()) for p in sorted(net.inbox(org).glob("*.eml"))]
    batch = [Incoming(n, d, opened=o) for n, d, o in open_all(iter(items), count=3, org_id=org, keys=keys,
                                                               trust=net.trust(), members=net.members)]
    store_batch(net.ctx(org), org, batch)  # step 1 committed … and the process is gone
    assert [i.outcome for i in batch] == ["imported"] * 3
    assert not list(net.inbox("779008").glob("*.eml"))  # no receipt went out
    result = net.receive(org)
    assert result.imported == 0 and result.duplicates == 3 and result.rejected == {}
    with net.ctx(org).store.session() as s:
        assert s.scalar(select(func.count()).select_from(ImportedPackage)) == 3
        answers = list(s.scalars(select(Receipt.disposition).where(Receipt.direction == "out")))
    assert answers == ["imported"] * 3  # each acknowledged as imported, not as refused
    assert len(list(net.inbox("779008").glob("*.eml"))) == 3
    assert not list(net.inbox(org).glob("*.eml"))


def test_two_packages_about_the_same_record_are_kept_apart(net):
    """Two packages about the same record in one pass: each is kept under its own package, and
    neither updates the other (nor any source record: issue 16, finding 1)."""
    from sqlalchemy import select

    from stafet.store.schema import AuditEntry, ImportedRecordRow, RecordRow

    first = net.handover_doc()
    second = net.handover_doc()
    second["records"][0]["data"] = dict(second["records"][0]["data"], reason_text="Flyttet til Aarhus")
    net.deliver("uu-viborg", "a.eml", net.build(first).eml)
    net.deliver("uu-viborg", "b.eml", net.build(second).eml)
    result = net.receive("uu-viborg")
    assert (result.imported, result.rejected) == (2, {})
    with net.ctx("uu-viborg").store.session() as s:
        rows = list(s.scalars(select(ImportedRecordRow).order_by(ImportedRecordRow.id)))
        assert list(s.scalars(select(RecordRow))) == []
        actions = list(s.scalars(select(AuditEntry.action)))
    assert [(r.package_id, r.payload["reason_text"]) for r in rows] == [
        (first["package_id"], "Skiftet retning"), (second["package_id"], "Flyttet til Aarhus")]
    assert actions.count("record.updated") == 0 and actions.count("package.imported") == 2
