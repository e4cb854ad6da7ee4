"""Who may send to us: trust anchors, CRLs and the network's members.

Signature checking of CMS SignedData: cryptography cannot verify CMS signatures
(its pkcs7 module only signs), so the structure is parsed with asn1crypto — a
maintained ASN.1/CMS library — and each cryptographic check (RSA signature, issuer
signature, CRL signature) is done with cryptography. No ASN.1 is hand-written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from stafet.core.errors import PackageRejected

log = logging.getLogger("stafet.trust")

ACCEPTED_DIGESTS: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}
ACCEPTED_SIGNATURES = {"rsassa_pkcs1v15", "rsa", "sha256_rsa", "sha384_rsa", "sha512_rsa"}
MIN_RSA_BITS = 2048
ACCEPTED_CIPHERS = {"aes128_cbc", "aes192_cbc", "aes256_cbc"}
CLOCK_SKEW = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Signed:
    """A verified signature: who signed, when, and the content's digest."""

    signer: x509.Certificate
    signing_time: dt.datetime
    content_digest: str

    @property
    def org_id(self) -> str:
        """The organisation id in the signer's certificate (its common name)."""
        return common_name(self.signer)


def common_name(cert: x509.Certificate) -> str:
    """The subject's CN ("" when there is none or the subject does not parse)."""
    try:
        attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        return ""
    return str(attrs[0].value) if attrs else ""


class TrustStore:
    """Trust anchors and CRLs from the network configuration."""

    def __init__(self, anchors: list[x509.Certificate], crls: list[x509.CertificateRevocationList]) -> None:
        self.anchors = anchors
        self.crls = crls
        self._crl_checked: dict[tuple[int, x509.Certificate], bool] = {}

    @classmethod
    def from_files(cls, anchors: tuple[Path, ...], crls: tuple[Path, ...]) -> TrustStore:
        """Load PEM anchors and PEM/DER CRLs (missing CRL files are skipped).

        A CRL past its next update is still used — what it revokes stays revoked — and
        logged as a warning once per file and day: a newer one may revoke more.
        """
        certs = [c for p in anchors for c in x509.load_pem_x509_certificates(p.read_bytes())]
        lists = []
        for p in crls:
            if p.exists():
                crl = load_crl(p)
                lists.append(crl)
                stale = crl_stale_since(crl)
                if stale is not None:
                    _warn_stale(str(p), stale.date())
        return cls(certs, lists)

    def check_certificate(self, cert: x509.Certificate, at: dt.datetime,
                          extra: list[x509.Certificate] | None = None) -> None:
        """Chain ``cert`` to an anchor, check validity at ``at`` and revocation.

        Raises:
            PackageRejected: ``unknown_signer``, ``expired``, ``not_yet_valid`` or ``revoked``.
        """
        chain = self._chain(cert, extra or [])
        if chain is None:
            raise PackageRejected("unknown_signer", "the signer's certificate does not chain to "
                                  "a trust anchor of this network", signer=common_name(cert))
        for c in chain:
            if at > c.not_valid_after_utc:
                raise PackageRejected("expired", "a certificate had expired at signing time",
                                      signer=common_name(cert), expired=c.not_valid_after_utc.date())
            if at < c.not_valid_before_utc - CLOCK_SKEW:
                raise PackageRejected("not_yet_valid", "a certificate was not yet valid at signing time",
                                      signer=common_name(cert))
        # Every certificate below the anchor is looked up in the CRLs its issuer signed: the
        # signer's and any intermediate's (a revoked intermediate revokes what it issued).
        for c, issuer in itertools.pairwise(chain):
            for crl in self.crls:
                if crl.issuer != c.issuer or not self._crl_valid(crl, issuer):
                    continue
                if crl.get_revoked_certificate_by_serial_number(c.serial_number) is not None:
                    which = "the signer's certificate" if c is cert else "an issuing CA's certificate"
                    raise PackageRejected("revoked", f"{which} is revoked",
                                          signer=common_name(cert), serial=format(c.serial_number, "x"))

    def _crl_valid(self, crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
        """Whether ``issuer`` signed ``crl`` (remembered: both are fixed for the store's life)."""
        key = (id(crl), issuer)
        if key not in self._crl_checked:
            self._crl_checked[key] = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        return self._crl_checked[key]

    def _chain(self, cert: x509.Certificate, extra: list[x509.Certificate]) -> list[x509.Certificate] | None:
        chain, current = [cert], cert
        for _ in range(4):
            for anchor in self.anchors:
                if _issued_by(current, anchor):
                    return [*chain, anchor]
            nxt = next((c for c in extra if c != current and _issued_by(current, c)
                        and _is_ca(c)), None)
            if nxt is None:
                return None
            chain.append(nxt)
            current = nxt
        return None


def load_crl(path: Path) -> x509.CertificateRevocationList:
    """A CRL file, PEM or DER."""
    data = path.read_bytes()
    return x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)


def crl_stale_since(crl: x509.CertificateRevocationList,
                    now: dt.datetime | None = None) -> dt.datetime | None:
    """When the CRL's next update was due, if that has passed; else None."""
    due = crl.next_update_utc
    return due if due is not None and due < (now or dt.datetime.now(dt.UTC)) else None


@lru_cache(maxsize=64)  # once per file and day, not on every receive pass
def _warn_stale(path: str, since: dt.date) -> None:
    log.warning("CRL %s is stale: its next update was due %s; the revocations it lists still "
                "apply, but fetch or rewrite a fresh one (stafet keys list shows every CRL)", path, since)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@lru_cache(maxsize=1024)  # a signature over fixed bytes: the answer never changes
def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def verify_detached(content: bytes, p7s_der: bytes) -> tuple[Signed, list[x509.Certificate]]:
    """Verify a CMS SignedData over ``content`` (detached or with the same content inside).

    Returns the signature facts and the certificates the message carried. Anything
    that does not parse is ``malformed`` (asn1crypto parses lazily, so every access
    to the structure is guarded, not only the first).

    Raises:
        PackageRejected: ``malformed``, ``weak_algorithm``, ``unknown_signer`` or ``bad_signature``.
    """
    try:
        return _verify(content, p7s_der)
    except PackageRejected:
        raise
    except Exception as e:  # hostile DER: asn1crypto/cryptography raise ValueError, TypeError, …
        raise PackageRejected("malformed", f"the signature cannot be parsed: {type(e).__name__}") from None


_READ_ATTRIBUTES = frozenset({"content_type", "message_digest", "signing_time"})


def _verify(content: bytes, p7s_der: bytes) -> tuple[Signed, list[x509.Certificate]]:
    info = cms.ContentInfo.load(p7s_der, strict=True)  # no trailing bytes after the structure
    if info["content_type"].native != "signed_data":
        raise PackageRejected("malformed", "not a CMS signed-data structure")
    sd = info["content"]
    signer_infos = sd["signer_infos"]
    certs = [_load_certificate(c.chosen.dump()) for c in sd["certificates"] or [] if c.name == "certificate"]
    if len(signer_infos) != 1:
        raise PackageRejected("malformed", "expected exactly one signer")
    si = signer_infos[0]
    digest_name = si["digest_algorithm"]["algorithm"].native
    sig_algo = si["signature_algorithm"]["algorithm"].native
    if digest_name not in ACCEPTED_DIGESTS:
        raise PackageRejected("weak_algorithm", f"digest {digest_name} is not accepted (SHA-256 or better)")
    if sig_algo not in ACCEPTED_SIGNATURES:
        raise PackageRejected("weak_algorithm", f"signature algorithm {sig_algo} is not accepted")
    signer = _find_signer(si["sid"], certs)
    if signer is None:
        raise PackageRejected("unknown_signer", "the signer's certificate is not in the message")
    attrs = si["signed_attrs"]
    if not attrs or attrs.native is None:
        raise PackageRejected("malformed", "signed attributes are required")
    values: dict[str, list[object]] = {}
    for a in attrs:  # only the attributes checked below are decoded (S/MIME capabilities cost 0.1 ms)
        name = a["type"].native
        if name in _READ_ATTRIBUTES:
            values.setdefault(name, []).extend(v.native for v in a["values"])
    # RFC 5652 §5.3: exactly one content-type and one message-digest, content-type = eContentType.
    if values.get("content_type") != [sd["encap_content_info"]["content_type"].native]:
        raise PackageRejected("malformed", "the signed content-type attribute is missing or wrong")
    if len(values.get("message_digest", [])) != 1:
        raise PackageRejected("malformed", "exactly one message-digest attribute is required")
    content_digest = hashlib.new(digest_name, content).digest()
    if values["message_digest"][0] != content_digest:
        raise PackageRejected("bad_signature", "the signed content does not match its signature")
    key = signer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise PackageRejected("weak_algorithm", "only RSA signers are accepted")
    if key.key_size < MIN_RSA_BITS:
        raise PackageRejected("weak_algorithm", f"RSA keys below {MIN_RSA_BITS} bits are not accepted")
    # Signed over the DER of SET OF attributes: the bytes as received with a SET tag (the
    # values above were read from these very bytes); if the sender's encoding was not DER,
    # over asn1crypto's DER re-encoding, as OpenSSL does.
    # (The same contents under a SET tag: ``untag()`` would deep-copy the parsed tree.)
    signature, digest = si["signature"].native, ACCEPTED_DIGESTS[digest_name]
    try:
        key.verify(signature, cms.CMSAttributes(contents=attrs.contents).dump(), padding.PKCS1v15(), digest)
    except InvalidSignature:
        try:
            key.verify(signature, attrs.untag().dump(force=True), padding.PKCS1v15(), digest)
        except InvalidSignature:
            raise PackageRejected("bad_signature", "the signature does not verify") from None
    times = values.get("signing_time", [])
    when = times[0] if len(times) == 1 and isinstance(times[0], dt.datetime) else dt.datetime.now(dt.UTC)
    sha256 = content_digest if digest_name == "sha256" else hashlib.sha256(content).digest()
    return Signed(signer, when, sha256.hex()), certs


@lru_cache(maxsize=256)  # the same few signer certificates arrive in every package
def _load_certificate(der: bytes) -> x509.Certificate:
    """Parse a certificate from a message completely, now.

    cryptography parses fields lazily: a damaged certificate must fail here (``malformed``),
    not later in the chain checks.
    """
    cert = x509.load_der_x509_certificate(der)
    _ = (cert.subject, cert.issuer, cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc,
         cert.public_key(), list(cert.extensions), cert.signature_hash_algorithm)
    return cert


def _find_signer(sid: cms.SignerIdentifier, certs: list[x509.Certificate]) -> x509.Certificate | None:
    if sid.name == "issuer_and_serial_number":
        serial = sid.chosen["serial_number"].native
        issuer_der = sid.chosen["issuer"].dump()
        for c in certs:
            if c.serial_number == serial and c.issuer.public_bytes() == issuer_der:
                return c
        for c in certs:  # tolerate re-encoded issuer names
            if c.serial_number == serial:
                return c
        return None
    ski = sid.chosen.native
    for c in certs:
        try:
            if c.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest == ski:
                return c
        except x509.ExtensionNotFound:
            continue
    return None
