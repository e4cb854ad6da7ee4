"""Interoperability is the proof: openssl cms and gpgsm read what stafet sends, and
stafet reads what ``openssl cms -sign | openssl cms -encrypt -aes256`` produces."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from servers import require_tools

from stafet.packages.package import split_signed


@pytest.fixture(autouse=True)
def _openssl() -> None:
    """openssl is a real peer here: missing, the test fails (``make system-deps`` installs it)."""
    require_tools("openssl", package="openssl")


def run(*args: str | Path, stdin: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    proc = subprocess.run([str(a) for a in args], input=stdin, capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def json_of(mime: bytes) -> dict:
    msg = email.message_from_bytes(mime, policy=email.policy.default)
    for part in msg.walk():
        if part.get_content_type() == "application/json":
            return json.loads(part.get_payload(decode=True))
    raise AssertionError("no application/json part")


def der_body(eml: bytes) -> bytes:
    payload = email.message_from_bytes(eml).get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


# --------------------------------------------------------------------------- openssl reads stafet


@pytest.mark.parametrize("reader", ["uu-viborg", "779008"])
def test_openssl_decrypts_and_verifies_what_stafet_sends(net, tmp_path, reader):
    """The recipient reads it, and so does the sender (its archived copy)."""
    doc = net.handover_doc()
    built = net.build(doc)
    eml = tmp_path / f"{doc['package_id']}.eml"
    eml.write_bytes(built.eml)
    cert, key = net.pem_files(net.key(reader), reader)
    signed = run("openssl", "cms", "-decrypt", "-in", eml, "-recip", cert, "-inkey", key)
    assert b"multipart/signed" in signed
    content = run("openssl", "cms", "-verify", "-CAfile", net.root / "net/certs/ca.pem",
                  "-purpose", "smimesign", stdin=signed)
    assert json_of(content) == {"schema": "stafet/1", **doc}


def test_openssl_refuses_stafet_package_for_another_key(net, tmp_path):
    built = net.build()
    (tmp_path / "p.eml").write_bytes(built.eml)
    cert, key = net.pem_files(net.key("jobcenter-viborg"), "jc")
    proc = subprocess.run(["openssl", "cms", "-decrypt", "-in", str(tmp_path / "p.eml"), "-recip", str(cert),
                           "-inkey", str(key)], capture_output=True, timeout=60)
    assert proc.returncode != 0


# --------------------------------------------------------------------------- gpgsm reads stafet


@pytest.fixture
def gnupghome(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A throwaway GNUPGHOME (offline, loopback pinentry); its agent is stopped after."""
    require_tools("gpgsm", "gpgconf", package="gpgsm")
    home = Path(tempfile.mkdtemp(prefix="stafet-gpgsm-", dir="/tmp"))  # socket paths must stay short
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    # Offline. (disable-crl-checks in gpgsm.conf made --decrypt fail here: pass it to --verify only.)
    (home / "gpgsm.conf").write_text("disable-dirmngr\n")
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    yield env
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True,
                   timeout=30, check=False)
    shutil.rmtree(home, ignore_errors=True)


def test_gpgsm_decrypts_and_verifies_what_stafet_sends(net, tmp_path, gnupghome):
    doc = net.handover_doc()
    built = net.build(doc)
    (tmp_path / "msg.der").write_bytes(der_body(built.eml))
    uu = net.key("uu-viborg")
    # gpgsm 2.2 reads PKCS#12 only with the legacy PBE (SHA1 + 3DES) and a SHA-1 MAC.
    enc = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
           .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())
           .build(b"test-pw"))
    p12 = pkcs12.serialize_key_and_certificates(b"uu", uu.key, uu.cert, None, enc)
    (tmp_path / "uu.p12").write_bytes(p12)
    # gpgsm needs the network CA (marked as trusted in trustlist.txt) before it imports the key:
    # imported after, the decryption now and then failed with "issuer certificate not found".
    ca = net.root / "net/certs/ca.pem"
    run("gpgsm", "--batch", "--import", ca, env=gnupghome)
    fpr = run("openssl", "x509", "-in", ca, "-noout", "-fingerprint", "-sha1").decode().split("=", 1)[1]
    (Path(gnupghome["GNUPGHOME"]) / "trustlist.txt").write_text(f"{fpr.strip()} S\n")
    gpgsm = ["gpgsm", "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0"]
    run(*gpgsm, "--import", tmp_path / "uu.p12", stdin=b"test-pw\n", env=gnupghome)
    # The package is also encrypted to the sender (its archived copy). gpgsm tries the recipients
    # in the order of the SET, logs "no secret key" for the sender's and then exits 2 even when it
    # decrypted with ours: DECRYPTION_OKAY on the status channel is what says it read the package.
    proc = subprocess.run([*gpgsm, "--status-fd", "2", "--decrypt", str(tmp_path / "msg.der")],
                          input=b"test-pw\n", capture_output=True, env=gnupghome, timeout=60)
    assert b"[GNUPG:] DECRYPTION_OKAY" in proc.stderr, proc.stderr.decode(errors="replace")
    signed = proc.stdout
    content, sig = split_signed(signed)

    (tmp_path / "content").write_bytes(content)
    (tmp_path / "sig.p7s").write_bytes(sig)
    verify = ["gpgsm", "--batch", "--disable-crl-checks", "--status-fd", "1", "--verify"]
    status = run(*verify, tmp_path / "sig.p7s",
                 tmp_path / "content", env=gnupghome).decode()
    assert "GOODSIG" in status and "/CN=779008/" in status
    assert "TRUST_FULLY" in status
    assert json_of(content)["package_id"] == doc["package_id"]

    (tmp_path / "content").write_bytes(content[:-40] + bytes([content[-40] ^ 1]) + content[-39:])
    proc = subprocess.run([*verify, str(tmp_path / "sig.p7s"),
                           str(tmp_path / "content")], capture_output=True, env=gnupghome, timeout=60)
    assert proc.returncode != 0 and b"BADSIG" in proc.stdout


# --------------------------------------------------------------------------- stafet reads openssl


def test_stafet_reads_what_openssl_signs_and_encrypts(net, tmp_path):
    doc = net.handover_doc()
    eml = net.openssl_package(tmp_path, doc)
    opened = net.open(eml)
    assert opened.doc == {"schema": "stafet/1", **doc}
    assert opened.signed.org_id == "779008"

    net.deliver("uu-viborg", f"{doc['package_id']}.eml", eml)
    result = net.receive("uu-viborg")
    assert (result.imported, result.rejected, result.receipts_sent) == (1, {}, 1)
    assert len(list(net.inbox("779008").glob("*.eml"))) == 1  # the signed receipt went back


def test_stafet_reads_openssl_opaque_signed_data(net, tmp_path):
    """``-nodetach``: application/pkcs7-mime; smime-type=signed-data inside the envelope."""
    doc = net.handover_doc()
    eml = net.openssl_package(tmp_path, doc, sign_args=("-md", "sha256", "-nodetach"))
    opened = net.open(eml)
    assert opened.doc["package_id"] == doc["package_id"]


def test_stafet_reads_openssl_aes128_and_sha512(net, tmp_path):
    doc = net.handover_doc()
    eml = net.openssl_package(tmp_path, doc, sign_args=("-md", "sha512"), encrypt_args=("-aes128",))
    opened = net.open(eml)
    assert opened.doc["package_id"] == doc["package_id"]
