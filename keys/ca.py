"""The network CA of demo and test networks: create it, sign CSRs, revoke, write the CRL.

A real network orders its organisation certificates from an external CA (in Denmark
OCES) and revokes them there; this CA lives in ``$STAFET_HOME/keys/ca``::

    ca.key, ca.pem              its key (encrypted like the others) and certificate
    issued.json, revoked.json   serials it issued / revoked (org, dates)
    crl.pem                     its current CRL (also written where ``crls:`` says)
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.files import DEFAULT_BITS, KeyFiles
from stafet.core.errors import ConfigError

CRL_DAYS = 30
"""How long a CRL of the network CA is valid."""


class NetworkCA(KeyFiles):
    """The demo/test network CA in this home (``keys/ca``)."""

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
        self.write_key(self.ca_dir / "ca.key", key)
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
        """A fresh CRL of the network CA, signed now, valid for :data:`CRL_DAYS` days.

        Its thisUpdate lies five minutes back (clock skew between nodes); a revocation
        dated later than that is listed as of thisUpdate, so that a validator comparing
        revocation dates with the time it checks at never misses it.
        """
        now = dt.datetime.now(dt.UTC)
        this_update = (now - dt.timedelta(minutes=5)).replace(microsecond=0)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.ca_cert().subject)
                   .last_update(this_update)
                   .next_update(now + dt.timedelta(days=CRL_DAYS)))
        revoked = self._index("revoked.json")
        for serial, info in sorted(revoked.items()):
            when = min(dt.datetime.fromisoformat(info["revoked_at"]), this_update)
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial, 16))
                .revocation_date(when).build())
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
