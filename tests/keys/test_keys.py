"""The certificate lifecycle: ``stafet keys init-ca|new|import|issue|rotate|revoke|list``."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from keys import KeyStore
from keys.store import org_name
from stafet.cli.main import app

runner = CliRunner()


def stafet(*args: str | Path, passphrase: str | None = "kodeord-til-test") -> tuple[int, str, str]:
    """Run the CLI; ``passphrase=None``: the home's own key-passphrase file."""
    result = runner.invoke(app, [str(a) for a in args], env={"STAFET_KEY_PASSPHRASE": passphrase})
    assert result.exit_code in (0, 2), result.exception  # 2: a clean error; anything else is a crash
    return result.exit_code, result.stdout, result.stderr


def test_demo_ca_lifecycle_from_the_cli(tmp_path):
    home = tmp_path / "home"
    code, out, _ = stafet("keys", "init-ca", "--home", home, "--bits", "2048")
    assert code == 0 and "ca.pem" in out
    assert stafet("keys", "new", "uu-test", "--home", home, "--bits", "2048", "--email", "uu@test.dk")[0] == 0
    assert (home / "keys/uu-test/pending.csr").exists()
    code, out, _ = stafet("keys", "issue", "uu-test", "--home", home, "--days", "20")
    assert code == 0 and "(19 days)" in out
    code, out, err = stafet("keys", "list", "--home", home)
    assert code == 0 and "current" in out
    assert "uu-test" in err and "expires in 19 days" in err  # warned: under 30 days

    ks = KeyStore(home, passphrase=b"kodeord-til-test")
    first = ks.current("uu-test")
    code, out, _ = stafet("keys", "rotate", "uu-test", "--home", home, "--bits", "2048")
    assert code == 0 and "keeps decrypting" in out
    second = ks.current("uu-test")
    assert second.serial != first.serial
    assert {k.serial for k in ks.decryption_keys("uu-test")} == {first.serial, second.serial}
    assert second.cert.subject.rfc4514_string() == first.cert.subject.rfc4514_string()
    code, out, err = stafet("keys", "list", "--home", home)
    assert "previous" in out and "warning" not in err  # the old one is no longer in use

    code, out, _ = stafet("keys", "revoke", first.serial, "--home", home)
    assert code == 0 and f"revoked {first.serial}" in out
    crl = x509.load_pem_x509_crl((home / "keys/ca/crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(first.cert.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(second.cert.serial_number) is None
    assert crl.is_signature_valid(ks.ca_cert().public_key())  # type: ignore[arg-type]
    code, out, _ = stafet("keys", "revoke", "uu-test", "--home", home)
    assert f"revoked {second.serial}" in out and first.serial not in out
    code, _, err = stafet("keys", "revoke", "deadbeef", "--home", home)
    assert code == 2 and "neither an organisation nor a serial" in err


def test_private_keys_are_encrypted_0600_and_the_passphrase_never_shown(tmp_path):
    home = tmp_path / "home"
    passphrase = "hemmelig-frase-42"
    outputs = []
    for args in (("init-ca", "--bits", "2048"), ("new", "org-a", "--bits", "2048"), ("issue", "org-a"),
                 ("list",), ("rotate", "org-a", "--bits", "2048")):
        code, out, err = stafet("keys", *args, "--home", home, passphrase=passphrase)
        assert code == 0, err
        outputs.append(out + err)
    assert passphrase not in "".join(outputs)
    keys = list((home / "keys").rglob("*.key"))
    assert len(keys) == 3  # CA + two org keys
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises((TypeError, ValueError)):
            serialization.load_pem_private_key(path.read_bytes(), None)


# --------------------------------------------------------------------------- import (external CA)


def _external_cert(issuer: KeyStore, csr_path: Path, org: str, **kw) -> bytes:
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    return issuer.sign_csr(org, csr, **kw).public_bytes(serialization.Encoding.PEM)


def test_import_an_external_certificate_and_publish_it(net, tmp_path):
    home, org = net.home("uu-viborg"), "uu-viborg"
    old = net.key(org)
    code, _, err = stafet("keys", "new", org, "--home", home, "--network", net.network_path, "--bits", "2048",
           passphrase=None)
    assert code == 0, err
    csr = x509.load_pem_x509_csr((home / "keys" / org / "pending.csr").read_bytes())
    assert csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.RFC822Name) == [net.member(org).email]  # from the network config
    cert = tmp_path / "ordered.pem"
    cert.write_bytes(_external_cert(net.ca, home / "keys" / org / "pending.csr", org))
    code, out, err = stafet("keys", "import", org, cert, "--home", home, "--network", net.network_path,
                            passphrase=None)
    assert code == 0, err
    assert "published to" in out
    new = KeyStore(home).current(org)
    assert new.serial != old.serial
    assert (net.root / "net/certs/uu-viborg.pem").read_bytes() == cert.read_bytes()


@pytest.mark.parametrize("case", ["foreign_ca", "other_key", "expired", "other_org"])
def test_import_refuses_a_certificate_that_does_not_fit(net, tmp_path, case):
    home, org = net.home("uu-viborg"), "uu-viborg"
    stafet("keys", "new", org, "--home", home, "--network", net.network_path, "--bits", "2048",
           passphrase=None)
    csr_path = home / "keys" / org / "pending.csr"
    if case == "foreign_ca":
        pem, why = _external_cert(KeyStore(net.root / "rogue-home", passphrase=b"rogue"), csr_path, org), \
            "unknown_signer"
    elif case == "other_key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        csr = x509.CertificateSigningRequestBuilder().subject_name(org_name(org)).sign(other, hashes.SHA256())
        (tmp_path / "other.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        pem, why = _external_cert(net.ca, tmp_path / "other.csr", org), "does not match"
    elif case == "expired":
        pem, why = _external_cert(net.ca, csr_path, org, days=5,
                                  not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10)), "expired"
    else:
        key = KeyStore(home)._load_key(home / "keys" / org / "pending.key")
        csr = x509.CertificateSigningRequestBuilder().subject_name(org_name("someone-else")).sign(
            key, hashes.SHA256())
        (tmp_path / "o.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        pem, why = _external_cert(net.ca, tmp_path / "o.csr", org), "names neither"
    (tmp_path / "cert.pem").write_bytes(pem)
    before = (net.root / "net/certs/uu-viborg.pem").read_bytes()
    code, _, err = stafet("keys", "import", org, tmp_path / "cert.pem", "--home", home,
                          "--network", net.network_path, passphrase=None)
    assert code == 2
    assert why in err
    assert (home / "keys" / org / "pending.key").exists()  # nothing installed
    assert (net.root / "net/certs/uu-viborg.pem").read_bytes() == before


# --------------------------------------------------------------------------- rotation in a running network


def test_after_rotation_old_and_new_packages_are_read_and_receipts_verify(net, tmp_path):
    """Packages already encrypted to the old certificate still open after a rotation."""
    home, org = net.home("uu-viborg"), "uu-viborg"
    to_old = net.build().eml
    stafet("keys", "new", org, "--home", home, "--network", net.network_path, "--bits", "2048",
           passphrase=None)
    (tmp_path / "c.pem").write_bytes(_external_cert(net.ca, home / "keys" / org / "pending.csr", org))
    assert stafet("keys", "import", org, tmp_path / "c.pem", "--home", home, "--network", net.network_path,
                  passphrase=None)[0] == 0
    new_cert = x509.load_pem_x509_certificate((net.root / "net/certs/uu-viborg.pem").read_bytes())
    to_new = net.build(recipient_cert=new_cert).eml
    net.deliver(org, "old.eml", to_old)
    net.deliver(org, "new.eml", to_new)
    result = net.receive(org)
    assert (result.imported, result.rejected) == (2, {})
    # uu-viborg's receipts are now signed with its new key; the sender accepts them.
    receipts = list(net.inbox("779008").glob("*.eml"))
    assert len(receipts) == 2
    for r in receipts:
        assert net.open(r.read_bytes(), "779008").signed.signer.serial_number == new_cert.serial_number


def test_revoke_an_organisation_through_the_network_crl(net):
    """``stafet keys revoke ORG --network`` writes the CRL the receivers read (crls: in the config)."""
    eml = net.build().eml
    code, out, err = stafet("keys", "revoke", "779008", "--home", net.root / "ca-home",
                            "--network", net.network_path, passphrase="test-ca")
    assert code == 0, err
    assert str(net.root / "net/certs/crl.pem") in out.replace("\n", "")
    net.deliver("uu-viborg", "p.eml", eml)
    assert net.receive("uu-viborg").rejected == {"p.eml": "revoked"}


def test_list_shows_every_state(net):
    home, org = net.home("uu-viborg"), "uu-viborg"
    ks = KeyStore(home)
    ks.new_key(org, bits=2048)
    ks.install(org, net.ca.sign_csr(org, x509.load_pem_x509_csr((home / "keys" / org / "pending.csr")
                                                                  .read_bytes()),
                                    days=5, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10)))
    ks.new_key(org, bits=2048)
    states = {i.state for i in ks.listing() if i.org == org}
    assert states == {"current", "expired", "pending"}
    code, out, _ = stafet("keys", "list", "--home", home, passphrase=None)
    assert code == 0 and "expired" in out and "pending" in out


def test_list_shows_the_crls_and_warns_when_one_is_stale(net, caplog):
    """A CRL past its next update (and the grace period) is flagged, and the trust store says so."""
    from cryptography.x509.oid import NameOID

    from keys.trust import TrustStore

    home = net.home("uu-viborg")
    code, out, errs = stafet("keys", "list", "--home", home, "--network", net.network_path, passphrase=None)
    assert code == 0 and "CRLs" in out and "crl.pem" in out.replace("\n", "")
    assert "stale" not in errs
    # An external CA's CRL that nobody refreshed: next update two days ago, revoking the odd key.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    crl = (x509.CertificateRevocationListBuilder()
           .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ekstern CA")]))
           .last_update(now - dt.timedelta(days=32)).next_update(now - dt.timedelta(days=2))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(42)
                                    .revocation_date(now - dt.timedelta(days=40)).build())
           .sign(key, hashes.SHA256()))
    stale = net.root / "net" / "certs" / "ekstern.crl"
    stale.write_bytes(crl.public_bytes(serialization.Encoding.DER))
    config = net.config()
    config["crls"] = [*config["crls"], "certs/ekstern.crl", "certs/missing.crl"]
    net.write_config(config)
    code, out, errs = stafet("keys", "list", "--home", home, "--network", net.network_path, passphrase=None)
    assert code == 0
    flat = " ".join(errs.split())
    assert "ekstern.crl is stale since" in flat and "missing.crl is missing" in flat
    assert "ekstern CA" in out
    store = TrustStore.from_files((net.root / "net" / "certs" / "ca.pem",), (stale, stale.with_name("x.crl")))
    state = {Path(src.path).name: src.state for src in store.revocation_state()}
    assert state == {"ekstern.crl": "expired", "x.crl": "missing"}  # past nextUpdate + grace: fails closed
