"""OCSP against a real responder (``openssl ocsp -index … -port``): fetched by the scheduled
refresh, used from its cache by the receive path; good and revoked answers, stale or absent ones
(``revocation_unknown``), and the night's refresh stage (counts only)."""

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
