"""Issue 16, findings 4–7 and the From/To item: each as the attacker (or the mistake) found it.

4. back-dated signing time with an expired signer; 5. revocation fails closed (missing,
unreadable, forged, wrongly keyed, stale CRL) after ``crl_grace_hours`` and ``stafet status``
says so; 6. nothing is encrypted to a revoked recipient; 7. members are pinned to their
configured certificates, key usage is required, e-mails are unique; From/To are checked.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from testnet import email_of, odd_key
from trust_crafting import CRL_CASES, backdate, ca_crl, issue, pin

from stafet.core.errors import ConfigError, DeliveryFailed, PackageRejected

NOW = dt.datetime.now(dt.UTC)


def refused(net, eml: bytes) -> str:
    with pytest.raises(PackageRejected) as e:
        net.open(eml)
    return e.value.reason


# --- finding 4 ----------------------------------------------------------------------------------

def test_an_expired_signer_with_a_back_dated_signing_time_is_refused_expired(net):
    """Validity is checked at the time of receipt, not at the signing time the sender claims."""
    lapsed = odd_key(net.ca, "779008", days=10, not_before=NOW - dt.timedelta(days=12))  # expired 2 days ago
    pin(net, "779008", lapsed.cert)
    eml = net.build(sender_key=lapsed).eml
    assert refused(net, eml) == "expired"
    back = backdate(net, eml, lapsed, NOW - dt.timedelta(days=5))  # within the 30 days a package may take
    assert refused(net, back) == "expired"


# --- finding 5 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("case", list(CRL_CASES))
def test_revocation_fails_closed_when_the_crl_is_not_usable(net, case):
    crl_path = net.root / "net" / "certs" / "crl.pem"
    data = CRL_CASES[case](net)
    if data is None:
        crl_path.unlink()
    else:
        crl_path.write_bytes(data)
    assert refused(net, net.build().eml) == "revocation_unknown"
    from stafet.reports.status import collect_status

    state = {Path(s["path"]).name: s for s in collect_status(net.ctx("uu-viborg"))["revocation"]}
    assert state["crl.pem"]["refusing"] is True
    assert state["crl.pem"]["state"] == {"missing": "missing", "unreadable": "unreadable",
                                         "stale-past-grace": "expired"}.get(case, "bad_signature")


def test_a_stale_crl_is_used_within_the_grace_period_only(net):
    crl_path = net.root / "net" / "certs" / "crl.pem"
    crl_path.write_bytes(ca_crl(net, last=-dt.timedelta(days=8), nxt=-dt.timedelta(hours=1)))
    eml = net.build().eml
    assert net.open(eml).digest  # due an hour ago; the default grace is 6 h
    from stafet.reports.status import collect_status

    [src] = [s for s in collect_status(net.ctx("uu-viborg"))["revocation"] if s["path"].endswith("crl.pem")]
    assert src["state"] == "stale" and not src["refusing"]
    config = net.config()
    config["crl_grace_hours"] = 0.5
    net.write_config(config)
    assert refused(net, eml) == "revocation_unknown"


def test_status_shows_the_revocation_state(net):
    from typer.testing import CliRunner

    from stafet.cli.main import app

    (net.root / "net" / "certs" / "crl.pem").unlink()
    result = CliRunner().invoke(app, ["status", "--network", str(net.network_path),
                                      "--home", str(net.home("uu-viborg"))])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "revocation" in flat and "missing" in flat and "refusing" in flat


def test_the_demo_network_writes_its_crl(tmp_path):
    from stafet.core.config import load_network
    from stafet.demo.network import setup_demo

    path = setup_demo(tmp_path / "demo", tmp_path / "home", drop_samples=False, bits=2048)
    net = load_network(path)
    assert all(p.exists() for p in net.crls) and net.crls
    from keys.trust import TrustStore

    store = TrustStore.for_network(net)
    assert {s.state for s in store.revocation_state()} == {"ok"}


# --- finding 6 ----------------------------------------------------------------------------------

def test_nothing_is_encrypted_to_a_revoked_recipient(net):
    from stafet.exchange.endpoints import recipient_certificate

    ctx = net.ctx("779008")
    assert recipient_certificate(ctx, "uu-viborg")
    net.ca.revoke(format(net.key("uu-viborg").cert.serial_number, "x"))
    net.ca.write_crl([net.root / "net" / "certs" / "crl.pem"])
    with pytest.raises(DeliveryFailed) as e:
        recipient_certificate(ctx, "uu-viborg")
    assert "uu-viborg" in str(e.value) and "revoked" in str(e.value)


def test_nothing_is_encrypted_to_a_certificate_without_key_encipherment(net):
    from stafet.exchange.endpoints import recipient_certificate

    cert = issue(net, "uu-viborg", key_encipherment=False, eku=ExtendedKeyUsageOID.EMAIL_PROTECTION).cert
    (net.root / "net" / "certs" / "uu-viborg.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(DeliveryFailed) as e:
        recipient_certificate(net.ctx("779008"), "uu-viborg")
    assert "uu-viborg" in str(e.value) and "bad_usage" in str(e.value)


# --- finding 7 ----------------------------------------------------------------------------------

def test_a_key_encipherment_only_server_auth_certificate_is_refused(net):
    """Under the anchor, CN and e-mail of the sender, even configured for it: not a signing certificate."""
    odd = issue(net, "779008", key_encipherment=True, digital_signature=False,
                eku=ExtendedKeyUsageOID.SERVER_AUTH)
    pin(net, "779008", odd.cert)
    assert refused(net, net.build(sender_key=odd).eml) == "bad_usage"


def test_a_certificate_not_configured_for_the_sender_is_refused_and_rotation_overlap_is_allowed(net):
    other = odd_key(net.ca, "779008")  # under the anchor, CN and e-mail of 779008, valid, unrevoked
    eml = net.build(sender_key=other).eml
    assert refused(net, eml) == "signer_not_sender"
    pin(net, "779008", other.cert)  # configured as a previous certificate: accepted during the overlap
    assert net.open(eml).digest
    assert net.open(net.build().eml).digest  # and the current one still is


def test_member_e_mails_are_unique(net):
    from stafet.core.config import load_network

    config = net.config()
    config["members"][2]["email"] = config["members"][0]["email"].upper()
    net.write_config(config)
    with pytest.raises(ConfigError) as e:
        load_network(net.network_path)
    assert "members[2].email (line" in str(e.value) and "members[0]" in str(e.value)


# --- From / To ----------------------------------------------------------------------------------

def _headers(eml: bytes, **changes: str | None) -> bytes:
    head, body = eml.split(b"\r\n\r\n", 1)
    lines = [ln for ln in head.split(b"\r\n")
             if ln.split(b":", 1)[0].decode() not in changes]
    for k, v in changes.items():
        if v is not None:
            lines.extend(f"{k}: {x}".encode() for x in v.split("\n"))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.mark.parametrize(("change", "reason"), [
    ({"From": None}, "signer_not_sender"),
    ({"From": f"{email_of('779008')}, {email_of('jobcenter-viborg')}"}, "signer_not_sender"),
    ({"From": f"{email_of('779008')}\n{email_of('779008')}"}, "signer_not_sender"),
    ({"From": email_of("jobcenter-viborg")}, "signer_not_sender"),
    ({"To": None}, "wrong_recipient"),
    ({"To": email_of("jobcenter-viborg")}, "wrong_recipient"),
    ({"To": f"{email_of('uu-viborg')}, {email_of('jobcenter-viborg')}"}, "wrong_recipient"),
], ids=["no-from", "two-from-addresses", "two-from-fields", "other-from", "no-to", "other-to", "two-to"])
def test_from_and_to_are_the_sender_and_the_recipient(net, change, reason):
    eml = net.build().eml
    assert net.open(_headers(eml, From=email_of("779008"))).digest
    assert refused(net, _headers(eml, **change)) == reason
