"""OCSP against a real responder (``openssl ocsp -index … -port``): fetched by the scheduled
refresh, used from its cache by the receive path; good and revoked answers, stale or absent ones
(``revocation_unknown``), the night's refresh stage (counts only), and network.yaml's ``ocsp_url`` (asked
for a certificate whose authorityInfoAccess names no responder; validated with key and line)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from servers import OcspResponder, ServerUnavailable, peer_unavailable

from keys.trust import TrustStore, fetch_ocsp
from stafet.core.errors import PackageRejected


def responder(net, tmp_path, revoked: dt.datetime | None):
    ca = net.ca
    key_pem = ca.ca_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    r = OcspResponder(tmp_path / ("ocsp-revoked" if revoked else "ocsp"),
                      ca.ca_cert().public_bytes(serialization.Encoding.PEM), key_pem,
                      [(net.key("779008").cert, revoked)])
    try:
        return r.start()
    except ServerUnavailable as e:
        peer_unavailable("openssl ocsp", e)


@pytest.mark.parametrize("revoked", [False, True], ids=["good", "revoked"])
def test_ocsp_status_from_a_real_responder(net, tmp_path, revoked):
    when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1) if revoked else None
    r = responder(net, tmp_path, when)
    try:
        leaf, ca = net.key("779008").cert, net.ca.ca_cert()
        data = fetch_ocsp(leaf, ca, r.url)
    finally:
        r.stop()
    store = TrustStore([ca], [], ocsp_responses=[data])  # no CRL: the OCSP response alone
    if revoked:
        with pytest.raises(PackageRejected) as e:
            store.check_certificate(leaf, dt.datetime.now(dt.UTC))
        assert e.value.reason == "revoked"
    else:
        store.check_certificate(leaf, dt.datetime.now(dt.UTC))
        with pytest.raises(PackageRejected) as e:  # it covers 779008 only: absent for uu-viborg
            store.check_certificate(net.key("uu-viborg").cert, dt.datetime.now(dt.UTC))
        assert e.value.reason == "revocation_unknown"
        # stale: past its nextUpdate (one day) and the grace, with no CRL to fall back on
        with pytest.raises(PackageRejected) as e:
            store.check_certificate(leaf, dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
        assert e.value.reason == "revocation_unknown"
        with pytest.raises(PackageRejected) as e:  # and no OCSP response at all
            TrustStore([ca], []).check_certificate(leaf, dt.datetime.now(dt.UTC))
        assert e.value.reason == "revocation_unknown"


def test_the_scheduled_refresh_caches_responses_the_receive_path_uses(net, tmp_path):
    from stafet.exchange.endpoints import refresh_revocation, trust_store
    from stafet.packages.package import open_package

    r = responder(net, tmp_path, None)
    ctx = net.ctx("uu-viborg")
    try:
        done = refresh_revocation(ctx, ocsp_url=r.url)
    finally:
        r.stop()
    assert "ocsp" in done[format(net.key("779008").cert.serial_number, "x")]
    (net.root / "net" / "certs" / "crl.pem").unlink()  # the CRL is gone: the cached OCSP answer covers 779008
    trust = trust_store(ctx)
    assert any(s.kind == "ocsp" and s.state == "ok" for s in trust.revocation_state())
    trust.check_certificate(net.key("779008").cert, dt.datetime.now(dt.UTC))
    opened = open_package(net.build().eml, org_id="uu-viborg",
                          keys=net.keystore("uu-viborg").decryption_keys("uu-viborg"),
                          trust=trust, members=net.members)
    assert opened.signed.signer == net.key("779008").cert


def test_the_night_stage_refreshes_before_receiving_and_reports_counts_only(net, tmp_path):
    from stafet import night

    r = responder(net, tmp_path, None)
    home = str(net.home("uu-viborg"))
    try:
        counts = night.refresh_revocation(str(net.network_path), home, ocsp_url=r.url)
    finally:
        r.stop()
        night.context.cache_clear()  # type: ignore[attr-defined]
    assert set(counts) == {"certificates", "ocsp", "crl", "failed", "nothing_to_fetch"}
    assert counts["certificates"] >= 2 and counts["ocsp"] == counts["certificates"] and counts["failed"] == 0
    assert sorted((net.home("uu-viborg") / "revocation").glob("*.ocsp"))


def test_the_networks_ocsp_url_is_asked_for_certificates_that_name_no_responder(net, tmp_path):
    from stafet.exchange.endpoints import refresh_revocation, trust_store

    r = responder(net, tmp_path, None)
    config = net.config()
    config["ocsp_url"] = r.url  # network.yaml: the network's responder
    net.write_config(config)
    ctx = net.ctx("uu-viborg")
    assert ctx.network.ocsp_url == r.url
    try:
        done = refresh_revocation(ctx)  # no URL passed: network.yaml's is used
    finally:
        r.stop()
    assert done[format(net.key("779008").cert.serial_number, "x")] == "ocsp"
    (net.root / "net" / "certs" / "crl.pem").unlink()  # only the cached OCSP answer is left
    trust_store(ctx).check_certificate(net.key("779008").cert, dt.datetime.now(dt.UTC))
    with pytest.raises(PackageRejected) as e:  # the responder does not know uu-viborg: no good answer
        trust_store(ctx).check_certificate(net.key("uu-viborg").cert, dt.datetime.now(dt.UTC))
    assert e.value.reason == "revocation_unknown"


def test_a_responder_the_certificate_names_comes_before_the_networks(net, tmp_path):
    from servers import free_port
    from trust_crafting import issue

    from keys.trust import refresh_revocation

    r = responder(net, tmp_path, None)
    dead = f"http://127.0.0.1:{free_port()}/"  # nothing listens here
    ca = net.ca.ca_cert()
    own = _with_aia(net, issue(net, "779008", key_encipherment=True).cert, r.url)
    elsewhere = _with_aia(net, issue(net, "779008", key_encipherment=True).cert, dead)
    try:
        asked = refresh_revocation([(own, ca)], tmp_path / "c1", ocsp_url=dead, timeout=3)
        not_asked = refresh_revocation([(elsewhere, ca)], tmp_path / "c2", ocsp_url=r.url, timeout=3)
        fallback = refresh_revocation([(net.key("779008").cert, ca)], tmp_path / "c3", ocsp_url=r.url)
    finally:
        r.stop()
    assert asked[format(own.serial_number, "x")] == "ocsp"  # its own AIA, not the dead network URL
    assert not_asked[format(elsewhere.serial_number, "x")].startswith("ocsp failed")
    assert fallback[format(net.key("779008").cert.serial_number, "x")] == "ocsp"  # names none: the network's
    assert not (tmp_path / "c2").exists() or not list((tmp_path / "c2").glob("*.ocsp"))


def _with_aia(net, cert, url: str):
    """``cert`` re-issued by the network CA with an authorityInfoAccess naming the OCSP responder ``url``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import AuthorityInformationAccessOID

    b = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
         .public_key(cert.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc))
    for ext in cert.extensions:
        b = b.add_extension(ext.value, critical=ext.critical)
    b = b.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url))]), critical=False)
    return b.sign(net.ca.ca_key(), hashes.SHA256())


@pytest.mark.parametrize("value", ["ftp://ocsp.example/", "not a url", 42, "http://"])
def test_a_bad_ocsp_url_in_network_yaml_is_named_with_its_line(net, value):
    from stafet.core.config import load_network
    from stafet.core.errors import ConfigError

    config = net.config()
    config["ocsp_url"] = value
    net.write_config(config)
    with pytest.raises(ConfigError) as e:
        load_network(net.network_path)
    line = next(i for i, text in enumerate(net.network_path.read_text().splitlines(), 1)
                if text.startswith("ocsp_url:"))
    assert f"ocsp_url (line {line}): must be an http:// or https:// URL" in str(e.value)


def test_a_forged_ocsp_answer_never_replaces_the_cached_one(net, tmp_path):
    """A responder that signs with a key of its own (not the CA's, no delegation): the refresh
    refuses its answer and keeps the good cached one, which still covers the certificate."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from keys.trust import refresh_revocation

    leaf, ca = net.key("779008").cert, net.ca.ca_cert()
    cache = tmp_path / "cache"
    cache.mkdir()
    good = responder(net, tmp_path, None)
    try:
        refresh_revocation([(leaf, ca)], cache, ocsp_url=good.url)
    finally:
        good.stop()
    cached = (cache / f"{format(leaf.serial_number, 'x')}.ocsp").read_bytes()
    rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rogue_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    # the rogue answers "revoked" about the same certificate, signed with its own key under the CA's name
    rogue = OcspResponder(tmp_path / "rogue", _self_signed(rogue_key, ca.subject), pem,
                          [(leaf, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))])
    try:
        rogue.start()
    except ServerUnavailable as e:
        peer_unavailable("openssl ocsp", e)
    try:
        with pytest.raises(Exception, match="not signed by the issuer"):
            fetch_ocsp(leaf, ca, rogue.url)
        done = refresh_revocation([(leaf, ca)], cache, ocsp_url=rogue.url)
    finally:
        rogue.stop()
    assert "ocsp failed" in done[format(leaf.serial_number, "x")]
    assert (cache / f"{format(leaf.serial_number, 'x')}.ocsp").read_bytes() == cached
    TrustStore([ca], [], ocsp_responses=[cached]).check_certificate(leaf, dt.datetime.now(dt.UTC))


def _self_signed(key, name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)
