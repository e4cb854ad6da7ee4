"""Every way a package is refused: each test builds such a package, drops it in the
receiver's inbox, runs the receive pass, and sees it refused with its reason code and
kept in ``rejected/`` with the reason beside it."""

from __future__ import annotations

import subprocess

import pytest
from asn1crypto import cms
from servers import require_tools

from stafet.packages import package as packages

NAME = "incoming.eml"


def refused(net, data: bytes, reason: str, *, org: str = "uu-viborg") -> str:
    """Deliver ``data``, receive, and check it is refused with ``reason``; returns the kept reason."""
    net.deliver(org, NAME, data)
    result = net.receive(org)
    assert result.rejected == {NAME: reason}
    assert result.imported == 0
    kept = net.home(org) / "rejected" / NAME
    assert kept.read_bytes() == data
    why = (net.home(org) / "rejected" / f"{NAME}.reason.txt").read_text()
    assert f"[{reason}]" in why
    assert "120308" not in why  # never a CPR in a reason
    assert not (net.inbox(org) / NAME).exists()  # moved out of the inbox
    return why


def ciphertext_span(der: bytes) -> tuple[int, int]:
    """Offset and length of the AES ciphertext inside the enveloped-data DER."""
    ct = cms.ContentInfo.load(der)["content"]["encrypted_content_info"]["encrypted_content"].native
    at = der.rfind(ct)
    assert at > 0
    return at, len(ct)


def flip(data: bytes, at: int, mask: int = 0x01) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1:]


def test_the_untouched_package_is_imported(net):
    """The baseline for every test below: the same path accepts an honest package."""
    net.deliver("uu-viborg", NAME, net.build().eml)
    result = net.receive()
    assert (result.imported, result.rejected) == (1, {})


def test_tampered_ciphertext_padding(net):
    """Changing the last byte of the second-last block breaks the CBC padding."""
    eml = net.build().eml
    der = net.der_of(eml)
    at, n = ciphertext_span(der)
    refused(net, net.with_der(eml, flip(der, at + n - 17, 0x80)), "decrypt_failed")


def test_tampered_ciphertext_inside_the_signed_content(net):
    """A changed block in the middle decrypts to garbage that the signature catches."""
    eml = net.build().eml
    der = net.der_of(eml)
    at, n = ciphertext_span(der)
    refused(net, net.with_der(eml, flip(der, at + n // 2)), "bad_signature")


def test_tampered_signed_content(net):
    """Re-encrypted to the recipient (anyone can) after one byte of the JSON changed."""
    eml = net.build().eml
    entity = net.entity(eml)
    json_at = entity.index(b"handover.json")
    body_at = entity.index(b"\r\n\r\n", json_at) + 40  # inside the base64 of the JSON
    other = b"B" if entity[body_at:body_at + 1] != b"B" else b"C"
    swapped = entity[:body_at] + other + entity[body_at + 1:]
    refused(net, net.envelope(swapped, like=eml), "bad_signature")


@pytest.mark.parametrize("where", ["preamble", "signature headers", "epilogue"])
def test_garbled_bytes_around_the_signed_content(net, where):
    """CBC lets a tamperer garble 32 bytes of plaintext anywhere (a spliced block and the one
    after it). Outside the signed content nothing authenticates them — so anything there
    that is not text is refused, as the attack suite once found by chance."""
    eml = net.build().eml
    entity = net.entity(eml)
    garbage = bytes(range(128, 160))  # what a garbled CBC block looks like: not text
    at = {"preamble": entity.index(b"This is an S/MIME signed message"),
          "signature headers": entity.index(b'filename="smime.p7s"'),
          "epilogue": len(entity)}[where]
    tampered = entity[:at] + garbage + entity[at + (len(garbage) if where != "epilogue" else 0):]
    if where == "epilogue":
        tampered = entity + garbage
    refused(net, net.envelope(tampered, like=eml), "malformed")


def test_tampered_signature(net):
    """One bit of the RSA signature value (the last bytes of the signature DER) flipped."""
    import base64

    eml = net.build().eml
    entity = net.entity(eml)
    start = entity.index(b"\r\n\r\n", entity.index(b"smime.p7s")) + 4
    end = entity.index(b"\r\n--", start)
    body = entity[start:end]
    width = len(body.split(b"\r\n")[0])
    sig = base64.b64decode(body)
    b64 = base64.b64encode(flip(sig, len(sig) - 5))
    bad = b"\r\n".join(b64[i:i + width] for i in range(0, len(b64), width))
    why = refused(net, net.envelope(entity[:start] + bad + entity[end:], like=eml), "bad_signature")
    assert "signature does not verify" in why


def test_unsigned_content(net):
    from stafet.packages.package import _inner_mime

    doc = {"schema": "stafet/1", **net.handover_doc()}
    inner = b"MIME-Version: 1.0\r\n" + _inner_mime(doc, net.member("779008"), net.member("uu-viborg"))
    refused(net, net.envelope(inner), "unsigned")


def test_unknown_signer_from_a_foreign_ca(net):
    """Same CN, same e-mail, same CA name — but the CA is not one of the network's anchors."""
    refused(net, net.build(sender_key=net.odd("rogue")).eml, "unknown_signer")


def test_unknown_sender_not_a_member(net):
    doc = net.handover_doc()
    doc["sender"] = "not-a-member"
    refused(net, net.craft({"schema": "stafet/1", **doc}), "unknown_signer")


def test_signer_is_not_the_sender(net):
    """A member (the job centre) signs a package that says it is from Mercantec."""
    refused(net, net.build(sender_key=net.key("jobcenter-viborg")).eml, "signer_not_sender")


def test_from_header_is_not_the_senders(net):
    eml = net.build().eml.replace(b"From: 779008@sikkermail.test.dk",
                                  b"From: x779008@sikkermail.test.dk", 1)
    refused(net, eml, "signer_not_sender")


def test_wrong_recipient_encrypted_to_someone_else(net):
    refused(net, net.build(recipient="jobcenter-viborg").eml, "wrong_recipient")


def test_wrong_recipient_addressed_to_someone_else(net):
    """Encrypted to us, but the signed document names another recipient."""
    doc = net.handover_doc(recipient="jobcenter-viborg")
    built = net.build(doc, recipient="jobcenter-viborg", recipient_cert=net.key("uu-viborg").cert)
    why = refused(net, built.eml, "wrong_recipient")
    assert "addressed to another" in why


def test_expired_signer_certificate(net):
    refused(net, net.build(sender_key=net.odd("expired")).eml, "expired")


def test_signer_certificate_not_yet_valid(net):
    refused(net, net.build(sender_key=net.odd("future")).eml, "not_yet_valid")


def test_revoked_signer_certificate(net):
    refused(net, net.build(sender_key=net.odd("revoked")).eml, "revoked")


def test_revocation_by_stafet_keys_revoke_takes_effect(net):
    """The sender's current certificate, revoked with the CA after it was sent."""
    eml = net.build().eml
    net.ca.revoke(net.key("779008").serial)
    net.ca.write_crl([net.root / "net/certs/crl.pem"])
    refused(net, eml, "revoked")


def test_the_same_package_again_is_a_duplicate_delivery(net):
    """A resend (same package id, same signed content) is not an attack: it is answered, not refused."""
    eml = net.build().eml
    net.deliver("uu-viborg", "first.eml", eml)
    assert net.receive().imported == 1
    receipts = sorted(net.inbox("779008").glob("*.eml"))
    assert len(receipts) == 1
    net.deliver("uu-viborg", "again.eml", eml)
    again_result = net.receive()
    assert (again_result.imported, again_result.duplicates, again_result.rejected) == (0, 1, {})
    assert not list((net.home("uu-viborg") / "rejected").glob("again.eml*"))  # nothing kept as refused
    # The sender is told again that it was imported (it may have lost the first receipt).
    again = sorted(set(net.inbox("779008").glob("*.eml")) - set(receipts))
    assert len(again) == 1
    assert net.open(again[0].read_bytes(), "779008").doc["receipt"]["disposition"] == "imported"


def test_replay_with_other_content_is_refused_and_answered(net):
    """Same package id, different content: refused as a replay, the sender told so."""
    doc = net.handover_doc()
    net.deliver("uu-viborg", "first.eml", net.build(doc).eml)
    assert net.receive().imported == 1
    doc["records"][0]["data"]["reason_text"] = "Andet"
    refused(net, net.build(doc).eml, "replay")
    answers = [net.open(p.read_bytes(), "779008").doc["receipt"] for p in net.inbox("779008").glob("*.eml")]
    assert sorted(a["disposition"] for a in answers) == ["imported", "rejected: replay"]


def test_schema_failure(net, monkeypatch):
    doc = net.handover_doc()
    doc["youth"]["cpr"] = "1203084127"  # the schema wants DDMMYY-SSSS
    del doc["rule"]
    eml = net.craft({"schema": "stafet/1", **doc})
    why = refused(net, eml, "schema")
    assert "1203084127" not in why


def test_schema_failure_record_does_not_fit_its_kind(net):
    doc = net.handover_doc()
    del doc["records"][0]["data"]["reason_code"]  # a dropout needs a reason code
    refused(net, net.build(doc).eml, "schema")


def test_no_json_part(net):
    inner = (b"Content-Type: text/plain; charset=utf-8\r\n\r\nHej\r\n")
    refused(net, net.envelope(net.sign(inner, net.key("779008"))), "schema")


def test_weak_rsa_key(net):
    refused(net, net.build(sender_key=net.odd("weak")).eml, "weak_algorithm")


@pytest.mark.parametrize(("sign", "encrypt", "what"), [
    (("-md", "sha1"), ("-aes256",), "sha1"),
    (("-md", "sha256"), ("-des3",), "tripledes"),
])
def test_weak_algorithms_from_openssl(net, tmp_path, sign, encrypt, what):
    require_tools("openssl", package="openssl")
    eml = net.openssl_package(tmp_path, net.handover_doc(), sign_args=sign, encrypt_args=encrypt)
    why = refused(net, eml, "weak_algorithm")
    assert what in why


def test_garbage_is_malformed(net):
    refused(net, b"From: someone@example.org\r\nSubject: hello\r\n\r\nnot a package\r\n", "malformed")


def test_one_bad_package_does_not_block_the_good_ones(net):
    good = [net.build().eml for _ in range(2)]
    net.deliver("uu-viborg", "a-good.eml", good[0])
    net.deliver("uu-viborg", "b-bad.eml", net.build(sender_key=net.odd("rogue")).eml)
    net.deliver("uu-viborg", "c-good.eml", good[1])
    result = net.receive()
    assert result.imported == 2
    assert result.rejected == {"b-bad.eml": "unknown_signer"}


def test_signing_is_checked_before_the_json(net, monkeypatch):
    """A document the schema would refuse, signed by a stranger, is refused for the signature."""
    doc = net.handover_doc()
    del doc["rule"]
    with monkeypatch.context() as m:
        m.setattr(packages, "validate_document", lambda d: None)
        eml = net.build(doc, sender_key=net.odd("rogue")).eml
    refused(net, eml, "unknown_signer")


def test_openssl_cli_is_not_needed_for_any_of_this(net):
    """The receive path runs no subprocess (the CLI tools are only for the interop tests)."""
    calls = []
    real = subprocess.Popen

    def spy(*a, **k):
        calls.append(a)
        return real(*a, **k)

    subprocess.Popen = spy  # type: ignore[misc]
    try:
        net.deliver("uu-viborg", NAME, net.build().eml)
        assert net.receive().imported == 1
    finally:
        subprocess.Popen = real  # type: ignore[misc]
    assert calls == []


def test_signing_time_too_old_or_in_the_future(net):
    """The signing time is the signer's claim: bounded, so an expired key cannot backdate."""
    import datetime as dt

    from stafet.core.errors import PackageRejected
    from stafet.packages.package import open_package

    eml = net.build().eml
    args = {"org_id": "uu-viborg", "keys": net.keystore("uu-viborg").decryption_keys("uu-viborg"),
            "trust": net.trust(), "members": net.members}
    now = dt.datetime.now(dt.UTC)
    with pytest.raises(PackageRejected) as late:
        open_package(eml, **args, now=now + dt.timedelta(days=31))
    assert late.value.reason == "expired"
    with pytest.raises(PackageRejected) as early:
        open_package(eml, **args, now=now - dt.timedelta(hours=1))
    assert early.value.reason == "not_yet_valid"
    assert open_package(eml, **args, now=now + dt.timedelta(days=3)).doc  # a late retry is fine
