"""CRL fetching from distribution points against a real HTTP server (``python -m http.server``).

The scheduled refresh (:func:`keys.trust.refresh_revocation`) fetches the CRL a certificate's
cRLDistributionPoints names into the cache the receive path reads. A new CRL is picked up
(a revoked certificate is then refused ``revoked``); what cannot replace the cached CRL — the
server down, a 404, garbage bytes, a CRL signed by another key or under another name, a stale
or older CRL, a download over the size cap, a server that never answers — leaves the cache as
it was: used within ``crl_grace_hours`` past its nextUpdate, then ``revocation_unknown``. And end
to end on the test network: the network refresh (current and previous member certificates) and
the receive path's trust store.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from servers import HttpServer, ServerUnavailable, peer_unavailable
from trust_crafting import crl_dp, make_crl

from keys.trust import CRL_MAX_BYTES, TrustStore, fetch_crl, refresh_revocation
from stafet.core.errors import PackageRejected, TransientError

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
GRACE = dt.timedelta(hours=6)
ROOT_NAME = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"),
                       x509.NameAttribute(NameOID.COMMON_NAME, "stafet fetch test CA")])
ROOT_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def _ku(**bits: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign")
    return x509.KeyUsage(**{n: bits.get(n, False) for n in names}, encipher_only=False, decipher_only=False)


ROOT = (x509.CertificateBuilder().subject_name(ROOT_NAME).issuer_name(ROOT_NAME)
        .public_key(ROOT_KEY.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ku(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ROOT_KEY.public_key()), critical=False)
        .sign(ROOT_KEY, hashes.SHA256()))


def leaf(url: str, cn: str = "779008") -> x509.Certificate:
    """An S/MIME signing certificate under :data:`ROOT` whose cRLDistributionPoints names ``url``."""
    k = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).issuer_name(ROOT_NAME)
            .public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_ku(digital_signature=True, key_encipherment=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(f"{cn}@sikkermail.test.dk")]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ROOT_KEY.public_key()),
                           critical=False)
            .add_extension(crl_dp(url), critical=False)
            .sign(ROOT_KEY, hashes.SHA256()))


@pytest.fixture
def http(tmp_path: Path):
    server = HttpServer(tmp_path / "http")
    try:
        server.start()
    except ServerUnavailable as e:
        peer_unavailable("python -m http.server", e)
    yield server
    server.stop()


def publish(http: HttpServer, crl: x509.CertificateRevocationList | bytes, *, pem: bool = False) -> None:
    data = crl if isinstance(crl, bytes) else crl.public_bytes(
        serialization.Encoding.PEM if pem else serialization.Encoding.DER)
    (http.root / "ca.crl").write_bytes(data)


def store(tmp_path: Path, cache: Path) -> TrustStore:
    """The receive path's view: the anchor and whatever the refresh cached (as ``for_network`` reads it)."""
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(ROOT.public_bytes(serialization.Encoding.PEM))
    return TrustStore.from_files((anchor,), tuple(sorted(cache.glob("*.crl"))), crl_grace=GRACE)


def test_the_refresh_picks_up_a_new_crl_and_a_revoked_certificate_is_then_refused(http, tmp_path):
    cache = tmp_path / "revocation"
    cert, other = leaf(http.url("ca.crl")), leaf(http.url("ca.crl"), "uu-viborg")
    with pytest.raises(PackageRejected) as e:  # nothing fetched yet: nothing says it is not revoked
        store(tmp_path, cache).check_certificate(cert, NOW)
    assert e.value.reason == "revocation_unknown"

    publish(http, make_crl(ROOT_NAME, ROOT_KEY, last=-dt.timedelta(hours=2)), pem=True)
    done = refresh_revocation([(cert, ROOT), (other, ROOT)], cache)
    assert done[format(cert.serial_number, "x")] == "crl" == done[format(other.serial_number, "x")]
    assert len(list(cache.glob("*.crl"))) == 1  # one distribution point, one cached CRL
    store(tmp_path, cache).check_certificate(cert, NOW)

    publish(http, make_crl(ROOT_NAME, ROOT_KEY, [cert], last=-dt.timedelta(hours=1), number=2))
    assert refresh_revocation([(cert, ROOT)], cache)[format(cert.serial_number, "x")] == "crl"
    trust = store(tmp_path, cache)
    with pytest.raises(PackageRejected) as e:
        trust.check_certificate(cert, NOW)
    assert e.value.reason == "revoked"
    trust.check_certificate(other, NOW)  # the same CRL, not listed


def _no_answer(http: HttpServer) -> None:
    http.pause()


FAILURES = {
    "server-down": lambda http: http.stop(),
    "not-found": lambda http: (http.root / "ca.crl").unlink(),
    "garbage": lambda http: publish(http, b"\x30\x82\x01\x00 this is not a CRL" * 20),
    "signed-by-another-key": lambda http: publish(
        http, make_crl(ROOT_NAME, OTHER_KEY, last=-dt.timedelta(minutes=10), number=2)),
    "another-issuer-name": lambda http: publish(http, make_crl(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "another CA")]), ROOT_KEY,
        last=-dt.timedelta(minutes=10), number=2)),
    "stale": lambda http: publish(http, make_crl(ROOT_NAME, ROOT_KEY, last=-dt.timedelta(days=2),
                                                 nxt=-dt.timedelta(hours=1), number=2)),
    "older-than-the-cached-one": lambda http: publish(http, make_crl(ROOT_NAME, ROOT_KEY,
                                                                     last=-dt.timedelta(hours=3))),
    "over-the-size-cap": lambda http: publish(http, b"\0" * (CRL_MAX_BYTES + 1)),
    "never-answers": _no_answer,
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_refresh_keeps_the_cached_crl_within_the_grace_then_fails_closed(http, tmp_path, failure):
    cache = tmp_path / "revocation"
    cert = leaf(http.url("ca.crl"))
    good = make_crl(ROOT_NAME, ROOT_KEY, last=-dt.timedelta(hours=1), nxt=dt.timedelta(days=1))
    publish(http, good)
    assert refresh_revocation([(cert, ROOT)], cache)[format(cert.serial_number, "x")] == "crl"
    (cached,) = cache.glob("*.crl")
    before = cached.read_bytes()

    FAILURES[failure](http)
    started = time.monotonic()
    outcome = refresh_revocation([(cert, ROOT)], cache, timeout=1.0)[format(cert.serial_number, "x")]
    assert outcome.startswith("crl failed"), outcome
    assert time.monotonic() - started < 10
    assert cached.read_bytes() == before  # the cache is kept as it was

    trust = store(tmp_path, cache)
    trust.check_certificate(cert, NOW)
    due = good.next_update_utc
    trust.check_certificate(cert, due + dt.timedelta(hours=1))  # stale, within the grace: still used
    assert [s.state for s in trust.revocation_state(due + dt.timedelta(hours=1))] == ["stale"]
    with pytest.raises(PackageRejected) as e:
        trust.check_certificate(cert, due + GRACE + dt.timedelta(hours=1))
    assert e.value.reason == "revocation_unknown"
    assert [s.state for s in trust.revocation_state(due + GRACE + dt.timedelta(hours=1))] == ["expired"]


def test_fetch_crl_refuses_a_download_over_the_size_cap(http):
    publish(http, b"-----BEGIN X509 CRL-----\n" + b"A" * CRL_MAX_BYTES)
    with pytest.raises(TransientError, match="more than the"):
        fetch_crl(http.url("ca.crl"))
    publish(http, make_crl(ROOT_NAME, ROOT_KEY))  # a CRL of ordinary size is fetched
    assert x509.load_der_x509_crl(fetch_crl(http.url("ca.crl"))).issuer == ROOT_NAME


def test_fetch_crl_gives_up_on_a_server_that_never_answers(http):
    publish(http, make_crl(ROOT_NAME, ROOT_KEY))
    http.pause()
    started = time.monotonic()
    with pytest.raises(TransientError, match="cannot fetch"):
        fetch_crl(http.url("ca.crl"), timeout=1.0)
    assert time.monotonic() - started < 5
    http.resume()
    assert fetch_crl(http.url("ca.crl"), timeout=5.0)


def test_fetch_crl_checks_the_issuer_when_given_one(http):
    publish(http, make_crl(ROOT_NAME, OTHER_KEY))
    assert fetch_crl(http.url("ca.crl"))  # a CRL, but
    with pytest.raises(TransientError, match="not signed by the issuer"):
        fetch_crl(http.url("ca.crl"), issuer=ROOT)
    with pytest.raises(TransientError, match="not an HTTP URL"):
        fetch_crl("file:///etc/passwd")


def test_the_night_refresh_fetches_a_members_crl_and_the_receive_path_refuses_it_revoked(net, http):
    """End to end on the test network: a member certificate naming a distribution point on the
    HTTP server, the refresh of ``stafet.exchange.endpoints``, the receive path's trust store."""
    from trust_crafting import issue, pin

    from stafet.exchange.endpoints import refresh_revocation as refresh_network
    from stafet.exchange.endpoints import trust_store
    from stafet.packages.package import open_package

    ca_name, ca_key = net.ca.ca_cert().subject, net.ca.ca_key()
    key = issue(net, "779008", key_encipherment=True, extra=[(crl_dp(http.url("ca.crl")), False)])
    pin(net, "779008", key.cert)  # configured for 779008 (a previous certificate: rotation overlap)
    (net.root / "net" / "certs" / "crl.pem").unlink()  # nothing but the distribution point covers it
    publish(http, make_crl(ca_name, ca_key, last=-dt.timedelta(hours=2)))
    ctx = net.ctx("uu-viborg")
    done = refresh_network(ctx)
    assert done[format(key.cert.serial_number, "x")] == "crl"
    eml = net.build(sender_key=key).eml
    keys = net.keystore("uu-viborg").decryption_keys("uu-viborg")
    assert open_package(eml, org_id="uu-viborg", keys=keys, trust=trust_store(ctx),
                        members=net.members).signed.signer == key.cert

    publish(http, make_crl(ca_name, ca_key, [key.cert], last=-dt.timedelta(hours=1), number=2))
    refresh_network(ctx)
    with pytest.raises(PackageRejected) as e:
        open_package(eml, org_id="uu-viborg", keys=keys, trust=trust_store(ctx), members=net.members)
    assert e.value.reason == "revoked"


def test_the_night_refresh_covers_a_member_certificate_issued_by_an_intermediate_ca(net, http):
    """A member whose certificate an intermediate CA issued (its file carries the intermediate
    after its own certificate): the refresh fetches the intermediate's CRL for it, and the root's
    for the intermediate, so a revocation by the intermediate reaches the receive path."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from trust_crafting import issue

    from stafet.exchange.endpoints import refresh_revocation as refresh_network
    from stafet.exchange.endpoints import trust_store

    # a second anchor of the network, without the demo CA's pathLenConstraint 0
    ca_cert, ca_key = ROOT, ROOT_KEY
    pem, der = serialization.Encoding.PEM, serialization.Encoding.DER
    (net.root / "net" / "certs" / "second-anchor.pem").write_bytes(ROOT.public_bytes(pem))
    inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inter_name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"),
                            x509.NameAttribute(NameOID.COMMON_NAME, "stafet test intermediate CA")])
    inter = (x509.CertificateBuilder().subject_name(inter_name).issuer_name(ca_cert.subject)
             .public_key(inter_key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=60))
             .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
             .add_extension(_ku(key_cert_sign=True, crl_sign=True), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False)
             .add_extension(crl_dp(http.url("root.crl")), critical=False)
             .sign(ca_key, hashes.SHA256()))
    # the member's certificate, as the network CA would issue it, but signed by the intermediate
    template = issue(net, "779008", key_encipherment=True).cert
    b = (x509.CertificateBuilder().subject_name(template.subject).issuer_name(inter_name)
         .public_key(template.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - dt.timedelta(minutes=5)).not_valid_after(NOW + dt.timedelta(days=30))
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()),
                        critical=False)
         .add_extension(crl_dp(http.url("inter.crl")), critical=False))
    for ext in template.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            b = b.add_extension(ext.value, critical=ext.critical)
    member = b.sign(inter_key, hashes.SHA256())
    path = net.root / "net" / "certs" / "779008-via-intermediate.pem"
    path.write_bytes(member.public_bytes(serialization.Encoding.PEM)
                     + inter.public_bytes(serialization.Encoding.PEM))
    config = net.config()
    for m in config["members"]:
        if m["id"] == "779008":
            m["previous_certificates"] = [f"certs/{path.name}"]
    config["trust_anchors"] = [*config["trust_anchors"], "certs/second-anchor.pem"]
    net.write_config(config)
    (net.root / "net" / "certs" / "crl.pem").unlink()  # only the distribution points cover them
    (http.root / "root.crl").write_bytes(make_crl(ca_cert.subject, ca_key).public_bytes(der))
    (http.root / "inter.crl").write_bytes(make_crl(inter_name, inter_key).public_bytes(der))

    ctx = net.ctx("uu-viborg")
    done = refresh_network(ctx)
    assert done[format(member.serial_number, "x")] == "crl"  # was skipped: its issuer is no anchor
    assert done[format(inter.serial_number, "x")] == "crl"
    trust_store(ctx).check_certificate(member, NOW, [inter])  # valid, revocation known

    (http.root / "inter.crl").write_bytes(make_crl(inter_name, inter_key, [member], number=2)
                                          .public_bytes(serialization.Encoding.DER))
    refresh_network(ctx)
    with pytest.raises(PackageRejected) as e:
        trust_store(ctx).check_certificate(member, NOW, [inter])
    assert e.value.reason == "revoked"


def test_a_look_alike_issuer_of_the_same_name_is_not_taken_for_the_intermediate():
    """The refresh pairs a certificate with the CA whose key verifies it, not with any of that name."""
    from stafet.exchange.endpoints import _issuer_of

    cert = leaf("http://127.0.0.1:1/ca.crl")
    impostor = (x509.CertificateBuilder().subject_name(ROOT_NAME).issuer_name(ROOT_NAME)
                .public_key(OTHER_KEY.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(OTHER_KEY, hashes.SHA256()))
    assert _issuer_of(cert, [impostor]) is None
    assert _issuer_of(cert, [impostor, ROOT]) == ROOT
    assert _issuer_of(ROOT, [ROOT]) is None  # an anchor is no certificate to refresh
