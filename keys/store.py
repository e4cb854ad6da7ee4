"""The node's own keys: new keys and CSRs, certificates installed or imported, rotation, listing.

Each organisation this home holds keys for has a folder ``$STAFET_HOME/keys/<org>``::

    <serial>.key   PKCS#8, encrypted with the key passphrase, 0600
    <serial>.pem   the certificate for that key
    pending.key + pending.csr   a new key waiting for its certificate

:class:`KeyStore` is what the rest of stafet uses; the demo network CA's part of it
lives in :mod:`keys.ca`, the key files in :mod:`keys.files`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from keys.ca import NetworkCA
from keys.csr import make_csr, org_name
from keys.files import DEFAULT_BITS, key_passphrase, stamp_path, write_private
from stafet.core.errors import ConfigError, PackageRejected

__all__ = ["WARN_DAYS", "KeyInfo", "KeyStore", "OrgKey", "key_passphrase", "org_name"]

WARN_DAYS = 30
"""A key in use that expires within this many days is flagged by ``stafet keys list``."""


@dataclass(frozen=True)
class KeyInfo:
    """One line of ``stafet keys list``: a certificate (or pending key) and its state."""

    org: str
    serial: str
    subject: str
    not_after: dt.datetime | None
    days_left: int | None
    state: str  # current | previous | expired | revoked | not_yet_valid | pending | ca

    @property
    def warn(self) -> bool:
        """A key in use that expires within :data:`WARN_DAYS` days: renew or rotate it."""
        return (self.state in ("current", "ca") and self.days_left is not None
                and self.days_left < WARN_DAYS)


@dataclass(frozen=True)
class OrgKey:
    """A private key with its certificate."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def serial(self) -> str:
        """The certificate serial as hex."""
        return format(self.cert.serial_number, "x")

    def __repr__(self) -> str:
        return f"OrgKey(serial={self.serial})"


class KeyStore(NetworkCA):
    """Keys and certificates under ``$STAFET_HOME/keys``: the node's own, and the demo CA's."""

    def new_key(self, org_id: str, *, display: str = "", email: str = "",
                bits: int = DEFAULT_BITS) -> x509.CertificateSigningRequest:
        """Make a new RSA key and a CSR for it (``pending.key`` / ``pending.csr``)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        csr = make_csr(key, org_id, display, email)
        d = self.org_dir(org_id)
        self.write_key(d / "pending.key", key)
        (d / "pending.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        return csr

    def issue(self, org_id: str, *, days: int = 730,
              not_before: dt.datetime | None = None) -> x509.Certificate:
        """Let the network CA sign the org's pending CSR; the key becomes current."""
        csr_path = self.org_dir(org_id) / "pending.csr"
        if not csr_path.exists():
            raise ConfigError(f"no pending CSR for {org_id}: run `stafet keys new {org_id}`")
        cert = self.sign_csr(org_id, x509.load_pem_x509_csr(csr_path.read_bytes()), days=days,
                             not_before=not_before)
        self.install(org_id, cert)
        return cert

    def install(self, org_id: str, cert: x509.Certificate) -> OrgKey:
        """Make the pending key current with ``cert`` (which must match it)."""
        d = self.org_dir(org_id)
        key = self._load_key(d / "pending.key")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise ConfigError(f"the certificate does not match {org_id}'s pending key")
        serial = format(cert.serial_number, "x")
        os.replace(d / "pending.key", d / f"{serial}.key")
        if stamp_path(d / "pending.key").exists():  # the same bytes: their stamp goes with them
            os.replace(stamp_path(d / "pending.key"), stamp_path(d / f"{serial}.key"))
        (d / f"{serial}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / "pending.csr").unlink(missing_ok=True)
        return OrgKey(key, cert)

    def keys(self, org_id: str) -> list[OrgKey]:
        """All the org's keys with certificates, newest (latest not-before) first."""
        d = self.org_dir(org_id)
        out = []
        installed: dict[str, int] = {}
        for pem in d.glob("*.pem") if d.exists() else []:
            key_path = pem.with_suffix(".key")
            if key_path.exists():
                key = OrgKey(self._load_key(key_path), x509.load_pem_x509_certificate(pem.read_bytes()))
                installed[key.serial] = pem.stat().st_mtime_ns
                out.append(key)
        # certificate times are whole seconds: of two issued in the same second, the one
        # installed last is the newest (a rotation right after set-up must not pick the old one)
        return sorted(out, key=lambda k: (k.cert.not_valid_before_utc, k.cert.not_valid_after_utc,
                                          installed[k.serial]), reverse=True)

    def current(self, org_id: str) -> OrgKey:
        """The org's newest key that is valid now."""
        now = dt.datetime.now(dt.UTC)
        revoked = self.revoked_serials()
        for k in self.keys(org_id):
            if k.serial in revoked:
                continue
            if k.cert.not_valid_before_utc <= now <= k.cert.not_valid_after_utc:
                return k
        raise ConfigError(f"{org_id} has no valid key and certificate under {self.org_dir(org_id)}")

    def decryption_keys(self, org_id: str) -> list[OrgKey]:
        """Keys that may still decrypt: current and previous ones not yet expired."""
        now = dt.datetime.now(dt.UTC)
        return [k for k in self.keys(org_id) if k.cert.not_valid_after_utc >= now]

    def import_certificate(self, org_id: str, data: bytes, anchors: list[x509.Certificate], *,
                           email: str = "") -> OrgKey:
        """Install a certificate from an external CA (e.g. OCES) for one of the org's keys.

        ``data`` is PEM (the certificate, optionally followed by intermediates) or DER.
        The certificate must match the pending key (``stafet keys new``) or one of the
        org's keys, chain to one of ``anchors``, be valid now, allow signing and key
        encipherment, and name the organisation: its CN is ``org_id`` or it holds
        ``email`` (the member's sikker-mail address), which is how receivers tie a
        signature to a member.

        Raises:
            ConfigError: saying which of these checks failed.
        """
        from keys.trust import TrustStore

        try:
            certs = (x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data
                     else [x509.load_der_x509_certificate(data)])
        except ValueError:
            raise ConfigError(f"the certificate for {org_id} is neither PEM nor DER") from None
        d = self.org_dir(org_id)
        candidates: list[tuple[Path, rsa.RSAPrivateKey]] = []
        if (d / "pending.key").exists():
            candidates.append((d / "pending.key", self._load_key(d / "pending.key")))
        candidates += [(d / f"{k.serial}.key", k.key) for k in self.keys(org_id)]
        match: tuple[Path, rsa.RSAPrivateKey, x509.Certificate] | None = None
        for cert in certs:
            pub = cert.public_key()
            for path, key in candidates:
                if (isinstance(pub, rsa.RSAPublicKey)
                        and pub.public_numbers() == key.public_key().public_numbers()):
                    match = (path, key, cert)
                    break
            if match:
                break
        if match is None:
            raise ConfigError(f"the certificate does not match {org_id}'s pending key or any of its keys "
                              f"(make a key and CSR with `stafet keys new {org_id}` first)")
        key_path, key, cert = match
        if not anchors:
            raise ConfigError("no trust anchor to check the certificate against: configure "
                              "trust_anchors in the network or pass --anchor")
        try:
            # The path and key usage; revocation is checked where the certificate is used.
            TrustStore(anchors, [], require_revocation=False).check_certificate(
                cert, dt.datetime.now(dt.UTC), [c for c in certs if c is not cert])
        except PackageRejected as e:
            raise ConfigError(f"the certificate for {org_id} is not acceptable: {e}") from None
        try:
            ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
            if not (ku.digital_signature and ku.key_encipherment):
                raise ConfigError(f"the certificate for {org_id} must allow digital signature and "
                                  "key encipherment (S/MIME sign and encrypt)")
        except x509.ExtensionNotFound:
            pass
        names = _cert_names(cert)
        if org_id not in names and not (email and email.lower() in names):
            raise ConfigError(f"the certificate names neither {org_id} (CN) nor the member's e-mail "
                              "address, so receivers could not tie its signatures to the organisation")
        if key_path.name == "pending.key":
            return self.install(org_id, cert)
        serial = format(cert.serial_number, "x")
        data = key_path.read_bytes()
        write_private(d / f"{serial}.key", data)
        if self._stamp_holds(key_path, data):  # the same bytes: their stamp holds for the copy
            write_private(stamp_path(d / f"{serial}.key"), stamp_path(key_path).read_bytes())
        (d / f"{serial}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return OrgKey(key, cert)

    def rotate(self, org_id: str, *, bits: int = DEFAULT_BITS, days: int = 730) -> OrgKey:
        """A new key and certificate from the network CA; the new one signs from now on.

        The previous keys stay on disk: :meth:`decryption_keys` keeps using them for
        packages encrypted to their certificates until those expire. With an external
        CA use ``stafet keys new`` and ``stafet keys import`` instead.
        """
        if not (self.ca_dir / "ca.key").exists():
            raise ConfigError(f"no network CA in {self.ca_dir}: with an external CA run "
                              f"`stafet keys new {org_id}`, order the certificate, then `stafet keys import`")
        old = self.keys(org_id)
        display = email = ""
        if old:
            subject = old[0].cert.subject
            orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            mails = subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
            display = str(orgs[0].value) if orgs else ""
            email = str(mails[0].value) if mails else ""
        self.new_key(org_id, display=display, email=email, bits=bits)
        cert = self.issue(org_id, days=days)
        return OrgKey(self._load_key(self.org_dir(org_id) / f"{format(cert.serial_number, 'x')}.key"), cert)

    def listing(self, now: dt.datetime | None = None) -> list[KeyInfo]:
        """Every certificate and pending key in this home, with days to expiry and state."""
        now = now or dt.datetime.now(dt.UTC)
        revoked = self.revoked_serials()
        out: list[KeyInfo] = []

        def info(org: str, cert: x509.Certificate, state: str) -> KeyInfo:
            left = cert.not_valid_after_utc - now
            return KeyInfo(org, format(cert.serial_number, "x"), _subject_cn(cert),
                           cert.not_valid_after_utc, left.days, state)

        if (self.ca_dir / "ca.pem").exists():
            out.append(info("(network CA)", self.ca_cert(), "ca"))
        orgs = sorted(d for d in self.root.iterdir() if d.is_dir() and d.name != "ca") \
            if self.root.exists() else []
        for d in orgs:
            current: str | None = None
            with contextlib.suppress(ConfigError):
                current = self.current(d.name).serial
            for k in self.keys(d.name):
                if k.serial in revoked:
                    state = "revoked"
                elif k.serial == current:
                    state = "current"
                elif now > k.cert.not_valid_after_utc:
                    state = "expired"
                elif now < k.cert.not_valid_before_utc:
                    state = "not_yet_valid"
                else:
                    state = "previous"
                out.append(info(d.name, k.cert, state))
            if (d / "pending.key").exists():
                out.append(KeyInfo(d.name, "(pending)", "", None, None, "pending"))
        return out


def _subject_cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _cert_names(cert: x509.Certificate) -> set[str]:
    """The CN and every e-mail address (subject and SAN) of ``cert``, e-mails lower-cased."""
    names = {_subject_cn(cert)}
    names |= {str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names |= {str(e).lower() for e in san.get_values_for_type(x509.RFC822Name)}
    except x509.ExtensionNotFound:
        pass
    return names
