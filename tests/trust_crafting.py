"""Crafting what the trust-boundary tests and the attack suite need: back-dated signatures,
CRLs that cannot be used, certificates with the wrong key usage, member pins; CRL distribution
points, issuing distribution points and delta CRLs (the fetch tests and the RFC 5280 table)."""

from __future__ import annotations

import base64
import datetime as dt

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from testnet import email_of

from keys import OrgKey

NOW = dt.datetime.now(dt.UTC)


def backdate(net, eml: bytes, key: OrgKey, when: dt.datetime) -> bytes:
    """The package re-signed by ``key`` with its CMS signing time set to ``when`` (the sender's claim)."""
    from stafet.packages.package import split_signed

    entity = net.entity(eml)
    _, sig = split_signed(entity)
    info = cms.ContentInfo.load(sig)
    si = info["content"]["signer_infos"][0]
    attrs = []
    for a in si["signed_attrs"]:
        if a["type"].native == "signing_time":
            a = cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": when})]})
        attrs.append(a)
    signed_attrs = cms.CMSAttributes(attrs)
    si["signed_attrs"] = signed_attrs
    si["signature"] = key.key.sign(signed_attrs.dump(force=True), padding.PKCS1v15(), hashes.SHA256())
    new_sig = info.dump(force=True)
    old_b64 = base64.b64encode(sig)
    body = entity
    start = body.index(b"smime.p7s")
    start = body.index(b"\r\n\r\n", start) + 4
    end = body.index(b"\r\n--", start)
    lines = base64.b64encode(new_sig)
    assert old_b64[:20] in body[start:end].replace(b"\r\n", b"")
    body = body[:start] + b"\r\n".join(lines[i:i + 76] for i in range(0, len(lines), 76)) + body[end:]
    return net.envelope(body, like=eml)


def pin(net, org: str, *certs: x509.Certificate) -> None:
    """Configure ``certs`` as previous certificates of ``org`` (rotation overlap)."""
    config = net.config()
    names = []
    for i, c in enumerate(certs):
        path = net.root / "net" / "certs" / f"{org}-previous-{i}.pem"
        path.write_bytes(c.public_bytes(serialization.Encoding.PEM))
        names.append(f"certs/{path.name}")
    for m in config["members"]:
        if m["id"] == org:
            m["previous_certificates"] = names
    net.write_config(config)


def ca_crl(net, *, last: dt.timedelta, nxt: dt.timedelta, key=None) -> bytes:
    ca = net.ca
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.ca_cert().subject)
         .last_update(NOW + last).next_update(NOW + nxt))
    return b.sign(key or ca.ca_key(), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def rogue_crl(net) -> bytes:
    from keys import KeyStore

    rogue = KeyStore(net.root / "rogue-home", passphrase=b"rogue")  # the same CA name, another key
    return rogue.crl().public_bytes(serialization.Encoding.PEM)


CRL_CASES = {
    "missing": lambda net: None,
    "unreadable": lambda net: b"-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n",
    "forged-signature": lambda net: ca_crl(net, last=-dt.timedelta(hours=1), nxt=dt.timedelta(days=1),
                                           key=rsa.generate_private_key(public_exponent=65537,
                                                                        key_size=2048)),
    "other-key-same-name": rogue_crl,
    "stale-past-grace": lambda net: ca_crl(net, last=-dt.timedelta(days=8), nxt=-dt.timedelta(hours=7)),
}


def issue(net, org: str, *, key_encipherment: bool, digital_signature: bool = True,
           eku=ExtendedKeyUsageOID.EMAIL_PROTECTION, extra=()) -> OrgKey:
    """A certificate from the network CA with the CN and e-mail of ``org`` and the given usage.

    ``extra``: more ``(extension, critical)`` pairs (a cRLDistributionPoints, say).
    """
    from keys.store import org_name

    ca = net.ca
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    b = (x509.CertificateBuilder().subject_name(org_name(org, org, email_of(org)))
            .issuer_name(ca.ca_cert().subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(minutes=5)).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                                         key_encipherment=key_encipherment, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email_of(org))]), critical=False))
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    return OrgKey(key, b.sign(ca.ca_key(), hashes.SHA256()))


# --- CRL distribution points, issuing distribution points, delta CRLs (RFC 5280 §4.2.1.13, §5.2) ---
def crl_dp(*urls: str) -> x509.CRLDistributionPoints:
    """A cRLDistributionPoints extension naming ``urls`` (full names, no reasons, no CRL issuer)."""
    return x509.CRLDistributionPoints([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(u) for u in urls], relative_name=None, reasons=None,
        crl_issuer=None)])


def freshest_crl(*urls: str) -> x509.FreshestCRL:
    """A freshestCRL extension (where the delta CRLs of a complete CRL are published)."""
    return x509.FreshestCRL([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(u) for u in urls], relative_name=None, reasons=None,
        crl_issuer=None)])


def idp(*urls: str, user_only: bool = False, ca_only: bool = False) -> x509.IssuingDistributionPoint:
    """An issuingDistributionPoint extension: its scope (``urls``; user or CA certificates only)."""
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(u) for u in urls] or None, relative_name=None,
        only_contains_user_certs=user_only, only_contains_ca_certs=ca_only, only_some_reasons=None,
        indirect_crl=False, only_contains_attribute_certs=False)


def make_crl(issuer: x509.Name, key, revoked=(), *, last: dt.timedelta = -dt.timedelta(hours=1),
             nxt: dt.timedelta = dt.timedelta(days=1), number: int = 1, now: dt.datetime | None = None,
             extra=()) -> x509.CertificateRevocationList:
    """A CRL under ``issuer`` signed by ``key`` listing ``revoked`` certificates (or serials).

    ``extra``: ``(extension, critical)`` pairs (an IDP, a deltaCRLIndicator, freshestCRL).
    """
    now = now or NOW
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer).last_update(now + last)
         .next_update(now + nxt).add_extension(x509.CRLNumber(number), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False))
    for c in revoked:
        serial = c if isinstance(c, int) else c.serial_number
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(now - dt.timedelta(days=1)).build())
    for ext, critical in extra:
        b = b.add_extension(ext, critical=critical)
    return b.sign(key, hashes.SHA256())
