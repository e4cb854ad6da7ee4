"""Key store: create, load and issue keys and certificates on disk."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stafet.errors import ConfigError

DEFAULT_BITS = 3072


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret file with 0600 from the first byte (no window where it is readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def key_passphrase(home: Path, *, create: bool = False) -> bytes:
    """The passphrase that encrypts private keys (see package docstring)."""
    env = os.environ.get("STAFET_KEY_PASSPHRASE")
    if env:
        return env.encode()
    block = os.environ.get("STAFET_KEY_PASSPHRASE_BLOCK")
    if block:
        from prefect.blocks.system import Secret

        return str(Secret.load(block).get()).encode()
    path = home / "key-passphrase"
    if path.exists():
        return path.read_bytes().strip()
    if not create:
        raise ConfigError("no key passphrase: looked in STAFET_KEY_PASSPHRASE, "
                          f"STAFET_KEY_PASSPHRASE_BLOCK and {path}")
    phrase = secrets.token_urlsafe(32).encode()
    _write_private(path, phrase + b"\n")
    return phrase


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


def org_name(org_id: str, display: str = "", email: str = "") -> x509.Name:
    """The subject of an organisation certificate."""
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, display or org_id),
             x509.NameAttribute(NameOID.COMMON_NAME, org_id)]
    if email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attrs)


class KeyStore:
    """Keys and certificates under ``$STAFET_HOME/keys``."""

    def __init__(self, home: Path, passphrase: bytes | None = None) -> None:
        self.root = home / "keys"
        self.home = home
        self._passphrase = passphrase

    @property
    def passphrase(self) -> bytes:
        """Loaded on first use only (runtime-only secret)."""
        if self._passphrase is None:
            self._passphrase = key_passphrase(self.home, create=True)
        return self._passphrase

    def _enc(self) -> serialization.KeySerializationEncryption:
        return serialization.BestAvailableEncryption(self.passphrase)

    def _load_key(self, path: Path) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(path.read_bytes(), self.passphrase)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(f"{path.name}: S/MIME key transport needs an RSA key")
        return key

    # --- CA ---------------------------------------------------------------------
    @property
    def ca_dir(self) -> Path:
        """Folder of the demo/test network CA."""
        return self.root / "ca"

    def init_ca(self, name: str = "stafet demo network CA", *, days: int = 3650,
                bits: int = DEFAULT_BITS) -> x509.Certificate:
        """Create the network CA (once; returns the existing one otherwise)."""
        if (self.ca_dir / "ca.pem").exists():
            return self.ca_cert()
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DK"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True, crl_sign=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write_private(self.ca_dir / "ca.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, self._enc()))
        (self.ca_dir / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cert

    def ca_cert(self) -> x509.Certificate:
        """The network CA's certificate."""
        path = self.ca_dir / "ca.pem"
        if not path.exists():
            raise ConfigError(f"no network CA at {path}: run `stafet keys init-ca`")
        return x509.load_pem_x509_certificate(path.read_bytes())

    def ca_key(self) -> rsa.RSAPrivateKey:
        """The network CA's private key."""
        return self._load_key(self.ca_dir / "ca.key")

    # --- organisation keys ------------------------------------------------------------
    def org_dir(self, org_id: str) -> Path:
        """Folder of one organisation's keys."""
        return self.root / org_id

    def new_key(self, org_id: str, *, display: str = "", email: str = "",
                bits: int = DEFAULT_BITS) -> x509.CertificateSigningRequest:
        """Make a new RSA key and a CSR for it (``pending.key`` / ``pending.csr``)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        builder = x509.CertificateSigningRequestBuilder().subject_name(org_name(org_id, display, email))
        if email:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        csr = builder.sign(key, hashes.SHA256())
        d = self.org_dir(org_id)
        _write_private(d / "pending.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, self._enc()))
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

    def sign_csr(self, org_id: str, csr: x509.CertificateSigningRequest, *, days: int = 730,
                 not_before: dt.datetime | None = None) -> x509.Certificate:
        """The network CA signs ``csr`` as an S/MIME organisation certificate."""
        if not csr.is_signature_valid:
            raise ConfigError(f"the CSR for {org_id} is not validly self-signed")
        ca = self.ca_cert()
        start = not_before or dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
                   .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                                key_encipherment=True, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                                  critical=False))
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            builder = builder.add_extension(san.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        return builder.sign(self.ca_key(), hashes.SHA256())

    def install(self, org_id: str, cert: x509.Certificate) -> OrgKey:
        """Make the pending key current with ``cert`` (which must match it)."""
        d = self.org_dir(org_id)
        key = self._load_key(d / "pending.key")
        if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
            raise ConfigError(f"the certificate does not match {org_id}'s pending key")
        serial = format(cert.serial_number, "x")
        os.replace(d / "pending.key", d / f"{serial}.key")
        (d / f"{serial}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / "pending.csr").unlink(missing_ok=True)
        return OrgKey(key, cert)

    def keys(self, org_id: str) -> list[OrgKey]:
        """All the org's keys with certificates, newest (latest not-before) first."""
        d = self.org_dir(org_id)
        out = []
        for pem in d.glob("*.pem") if d.exists() else []:
            key_path = pem.with_suffix(".key")
            if key_path.exists():
                out.append(OrgKey(self._load_key(key_path),
                                  x509.load_pem_x509_certificate(pem.read_bytes())))
        return sorted(out, key=lambda k: k.cert.not_valid_before_utc, reverse=True)

    def current(self, org_id: str) -> OrgKey:
        """The org's newest key that is valid now."""
        now = dt.datetime.now(dt.UTC)
        for k in self.keys(org_id):
            if k.cert.not_valid_before_utc <= now <= k.cert.not_valid_after_utc:
                return k
        raise ConfigError(f"{org_id} has no valid key and certificate under {self.org_dir(org_id)}")

    def decryption_keys(self, org_id: str) -> list[OrgKey]:
        """Keys that may still decrypt: current and previous ones not yet expired."""
        now = dt.datetime.now(dt.UTC)
        return [k for k in self.keys(org_id) if k.cert.not_valid_after_utc >= now]
