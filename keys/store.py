"""Key store: create, load and issue keys and certificates on disk."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stafet.core.errors import ConfigError, PackageRejected

DEFAULT_BITS = 3072
WARN_DAYS = 30
CRL_DAYS = 30


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

        # _sync: load() would return a coroutine when called from inside an async flow.
        secret: Any = Secret.load(block, _sync=True)  # type: ignore[call-arg]
        return str(secret.get()).encode()
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
        # Decrypting a PKCS#8 key costs ~70 ms (its KDF): once per file version per
        # process, not once per package. Keyed by mtime and size, so a rotated or
        # replaced file is read again.
        st = path.stat()
        stamp = (str(path), st.st_mtime_ns, st.st_size)
        cache: dict[tuple[str, int, int], rsa.RSAPrivateKey] = self.__dict__.setdefault("_key_cache", {})
        if stamp in cache:
            return cache[stamp]
        cache[stamp] = key = self._read_key(path)
        return key

    def _read_key(self, path: Path) -> rsa.RSAPrivateKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), self.passphrase)
        except (TypeError, ValueError):
            raise ConfigError(f"cannot decrypt the private key {path.name} of {path.parent.name}: "
                              "wrong key passphrase, or the file is damaged") from None
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
        cert = builder.sign(self.ca_key(), hashes.SHA256())
        issued = self._index("issued.json")
        issued[format(cert.serial_number, "x")] = {
            "org": org_id, "not_after": cert.not_valid_after_utc.isoformat()}
        self._save_index("issued.json", issued)
        return cert

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
        return sorted(out, key=lambda k: (k.cert.not_valid_before_utc, k.cert.not_valid_after_utc),
                      reverse=True)

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

    # --- import, rotate, revoke, list ---------------------------------------------------
    def _index(self, name: str) -> dict[str, dict[str, str]]:
        path = self.ca_dir / name
        if not path.exists():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}

    def _save_index(self, name: str, data: dict[str, dict[str, str]]) -> None:
        path = self.ca_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def revoked_serials(self) -> set[str]:
        """Serials (hex) this home's network CA has revoked."""
        return set(self._index("revoked.json"))

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
            TrustStore(anchors, []).check_certificate(cert, dt.datetime.now(dt.UTC),
                                                      [c for c in certs if c is not cert])
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
        _write_private(d / f"{serial}.key", key_path.read_bytes())
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

    def _known_serials(self) -> dict[str, str]:
        """Serial → org of every certificate this CA issued or this home holds."""
        out = {serial: str(v.get("org", "")) for serial, v in self._index("issued.json").items()}
        if self.root.exists():
            for d in self.root.iterdir():
                if d.is_dir() and d.name != "ca":
                    for pem in d.glob("*.pem"):
                        out.setdefault(pem.stem, d.name)
        return out

    def revoke(self, target: str) -> list[str]:
        """Revoke an organisation's certificates (``ORG``) or one certificate (``SERIAL``, hex).

        Revocation is recorded in ``ca/revoked.json`` and the CRL is rewritten to
        ``ca/crl.pem`` (copy it with :meth:`write_crl` to the files the network lists
        under ``crls:``). Returns the serials newly revoked.

        Raises:
            ConfigError: no network CA, or nothing known by that name or serial.
        """
        if not (self.ca_dir / "ca.key").exists():
            raise ConfigError(f"no network CA in {self.ca_dir}: revocation of certificates from an "
                              "external CA is done at that CA (its CRL is then listed under crls:)")
        known = self._known_serials()
        revoked = self._index("revoked.json")
        if target in known.values():
            serials = [s for s, org in known.items() if org == target]
        else:
            serial = target.lower().removeprefix("0x").replace(":", "")
            if serial not in known:
                raise ConfigError(f"{target!r} is neither an organisation nor a serial this CA issued")
            serials = [serial]
        new = [s for s in serials if s not in revoked]
        now = dt.datetime.now(dt.UTC).isoformat()
        for s in new:
            revoked[s] = {"org": known[s], "revoked_at": now}
        self._save_index("revoked.json", revoked)
        self.write_crl()
        return new

    def crl(self) -> x509.CertificateRevocationList:
        """A fresh CRL of the network CA, signed now, valid for :data:`CRL_DAYS` days."""
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.ca_cert().subject)
                   .last_update(now - dt.timedelta(minutes=5))
                   .next_update(now + dt.timedelta(days=CRL_DAYS)))
        revoked = self._index("revoked.json")
        for serial, info in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial, 16))
                .revocation_date(dt.datetime.fromisoformat(info["revoked_at"])).build())
        builder = builder.add_extension(x509.CRLNumber(len(revoked) + 1), critical=False)
        return builder.sign(self.ca_key(), hashes.SHA256())

    def write_crl(self, paths: Iterable[Path] = ()) -> x509.CertificateRevocationList:
        """Write the CA's CRL (PEM) to ``ca/crl.pem`` and to each of ``paths``."""
        crl = self.crl()
        pem = crl.public_bytes(serialization.Encoding.PEM)
        for path in [self.ca_dir / "crl.pem", *paths]:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(pem)
            os.replace(tmp, path)
        return crl

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
