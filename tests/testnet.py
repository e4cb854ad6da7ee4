"""A small test network for the secure-exchange tests (RSA-2048 keys, for speed).

The network is built once per session (CA, three members with their own homes,
a foreign CA, and odd certificates for 779008: expired, not yet valid, revoked)
and copied into each test's ``tmp_path``, so tests may change anything in it.

Members::

    uu-viborg         guidance unit (UU), receives dropout handovers
    779008            Mercantec, an institution, sends them
    jobcenter-viborg  a third member (wrong recipient, swapped receipts)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from keys import KeyStore, OrgKey
from keys.trust import TrustStore
from stafet.core.models import Organisation
from stafet.packages.package import (
    Built,
    Opened,
    build_package,
    decrypt_package,
    new_package_id,
    open_package,
)

BITS = 2048
CPR = "120308-4127"  # synthetic
ORGS = [
    ("uu-viborg", "guidance", "UU Viborg", ["791"]),
    ("779008", "institution", "Mercantec", []),
    ("jobcenter-viborg", "job_centre", "Jobcenter Viborg", []),
]
ODD = ("expired", "future", "revoked", "rogue", "weak")


def email_of(org: str) -> str:
    return f"{org}@sikkermail.test.dk"


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def odd_key(ca: KeyStore, org: str, *, bits: int = BITS, days: int = 365,
            not_before: dt.datetime | None = None) -> OrgKey:
    """A key for ``org`` with a certificate from ``ca`` (not installed anywhere)."""
    from keys.store import org_name

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(org_name(org, org, email_of(org)))
           .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email_of(org))]), critical=False)
           .sign(key, hashes.SHA256()))
    return OrgKey(key, ca.sign_csr(org, csr, days=days, not_before=not_before))


def _build_template(root: Path) -> None:
    from stafet.core.vault import load_secret

    net = root / "net"
    (net / "certs").mkdir(parents=True)
    ca = KeyStore(root / "ca-home", passphrase=b"test-ca")
    ca.init_ca("stafet test network CA", bits=BITS)
    (net / "certs" / "ca.pem").write_bytes(ca.ca_cert().public_bytes(serialization.Encoding.PEM))
    members = []
    for org, kind, name, serves in ORGS:
        home = root / "homes" / org
        ks = KeyStore(home)
        csr = ks.new_key(org, display=name, email=email_of(org), bits=BITS)
        ks.install(org, ca.sign_csr(org, csr))
        load_secret(home, create=True)
        (net / "certs" / f"{org}.pem").write_bytes(
            ks.current(org).cert.public_bytes(serialization.Encoding.PEM))
        (net / "inbox" / org).mkdir(parents=True)
        m: dict[str, Any] = {"id": org, "kind": kind, "name": name, "municipality": "791",
                             "email": email_of(org), "endpoint": f"folder:inbox/{org}",
                             "certificate": f"certs/{org}.pem"}
        if serves:
            m["serves"] = serves
        members.append(m)
    now = dt.datetime.now(dt.UTC)
    odd = {
        "expired": odd_key(ca, "779008", days=10, not_before=now - dt.timedelta(days=40)),
        "future": odd_key(ca, "779008", days=365, not_before=now + dt.timedelta(days=10)),
        "revoked": odd_key(ca, "779008"),
    }
    ca.revoke(odd["revoked"].serial)
    ca.write_crl([net / "certs" / "crl.pem"])
    rogue = KeyStore(root / "rogue-home", passphrase=b"rogue")
    rogue.init_ca("stafet test network CA", bits=BITS)  # same name, other key: not a member CA
    odd["rogue"] = odd_key(rogue, "779008")
    odd["weak"] = odd_key(ca, "779008", bits=1024)
    (root / "odd").mkdir()
    for name, k in odd.items():
        _write_key(root / "odd" / f"{name}.key", k.key)
        (root / "odd" / f"{name}.pem").write_bytes(k.cert.public_bytes(serialization.Encoding.PEM))
    config = {"network": "exchange-test", "trust_anchors": ["certs/ca.pem"], "crls": ["certs/crl.pem"],
              "ack_limit_hours": 48, "members": members}
    (net / "network.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


@dataclass
class TestNet:
    """A copied test network: homes per member, the CA, odd keys, helpers."""

    root: Path
    _contexts: dict[str, Any] = field(default_factory=dict)
    _keys: dict[str, OrgKey] = field(default_factory=dict)
    _members: dict[str, Organisation] | None = None

    @property
    def network_path(self) -> Path:
        return self.root / "net" / "network.yaml"

    @property
    def ca(self) -> KeyStore:
        return KeyStore(self.root / "ca-home", passphrase=b"test-ca")

    def home(self, org: str) -> Path:
        return self.root / "homes" / org

    def inbox(self, org: str) -> Path:
        return self.root / "net" / "inbox" / org

    def keystore(self, org: str) -> KeyStore:
        return KeyStore(self.home(org))

    def key(self, org: str) -> OrgKey:
        """``org``'s current key (cached: decrypting a PKCS#8 key file is slow on purpose)."""
        if org not in self._keys:
            self._keys[org] = self.keystore(org).current(org)
        return self._keys[org]

    def odd(self, name: str) -> OrgKey:
        key = serialization.load_pem_private_key((self.root / "odd" / f"{name}.key").read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)
        cert = x509.load_pem_x509_certificate((self.root / "odd" / f"{name}.pem").read_bytes())
        return OrgKey(key, cert)

    def config(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.network_path.read_text(encoding="utf-8")))

    def write_config(self, config: dict[str, Any]) -> None:
        self.network_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self._contexts.clear()
        self._members = None

    def set_endpoint(self, org: str, endpoint: str, **options: Any) -> None:
        """Point ``org``'s endpoint elsewhere, with ``endpoints.<org>`` options."""
        config = self.config()
        for m in config["members"]:
            if m["id"] == org:
                m["endpoint"] = endpoint
        if options:
            config.setdefault("endpoints", {})[org] = options
        self.write_config(config)

    def ctx(self, org: str) -> Any:
        from stafet.context import open_context

        if org not in self._contexts:
            self._contexts[org] = open_context(self.network_path, home=self.home(org))
        return self._contexts[org]

    @property
    def members(self) -> dict[str, Organisation]:
        from stafet.core.config import load_network

        if self._members is None:
            self._members = load_network(self.network_path).members
        return self._members

    def member(self, org: str) -> Organisation:
        return self.members[org]

    def trust(self) -> TrustStore:
        from stafet.core.config import load_network

        return TrustStore.for_network(load_network(self.network_path))

    def handover_doc(self, sender: str = "779008", recipient: str = "uu-viborg",
                     package_id: str | None = None) -> dict[str, Any]:
        """A valid dropout handover about a synthetic youth."""
        return {
            "type": "handover", "package_id": package_id or new_package_id(), "sender": sender,
            "recipient": recipient, "created": dt.datetime.now(dt.UTC).isoformat(),
            "rule": "dropout_duty", "legal_basis": "vejledningsloven § 12 c",
            "youth": {"cpr": CPR, "name": "Testa Ungesen", "birth_date": "2008-03-12"},
            "records": [{"kind": "dropout", "natural_key": "779008|dropout|2026-11-20|1234", "data": {
                "institution": "779008", "home_municipality": "791", "first_name": "Testa",
                "last_name": "Ungesen", "event_date": "2026-11-20", "programme_code": "1234",
                "programme_name": "EUX Business", "reason_code": "A1", "reason_text": "Skiftet retning"}}],
            "history": [{"date": "2025-08-11", "kind": "enrolment", "summary": "Optagelse EUX Business"}],
        }

    def build(self, doc: dict[str, Any] | None = None, *, sender: str = "779008",
              recipient: str = "uu-viborg", sender_key: OrgKey | None = None,
              recipient_cert: x509.Certificate | None = None) -> Built:
        doc = doc or self.handover_doc(sender, recipient)
        return build_package(doc, sender=self.member(sender), sender_key=sender_key or self.key(sender),
                             recipient=self.member(recipient),
                             recipient_cert=recipient_cert or self.key(recipient).cert)

    def pem_files(self, key: OrgKey, name: str) -> tuple[Path, Path]:
        """``key`` as plain PEM files (certificate, unencrypted key) for the CLI tools."""
        folder = self.root / "pem"
        folder.mkdir(exist_ok=True)
        cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
        cert_path.write_bytes(key.cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key.key)
        return cert_path, key_path

    def open(self, eml: bytes, org: str = "uu-viborg") -> Opened:
        """``open_package`` as ``org`` receives it (all its keys, the network's trust)."""
        return open_package(eml, org_id=org, keys=self.keystore(org).decryption_keys(org),
                            trust=self.trust(), members=self.members)

    def receive(self, org: str = "uu-viborg") -> Any:
        """Run ``org``'s inbox pass (what ``stafet receive --org ORG`` does)."""
        from stafet.exchange.inbox import process_inbox

        return process_inbox(self.ctx(org), org)

    # --- crafting hostile packages (what an attacker with public certificates can do) ---
    def entity(self, eml: bytes, org: str = "uu-viborg") -> bytes:
        """The signed MIME entity inside a package, decrypted with ``org``'s key."""
        return decrypt_package(eml, self.keystore(org).decryption_keys(org))

    def envelope(self, entity: bytes, *, like: bytes | None = None, to: str = "uu-viborg",
                 recipient_cert: x509.Certificate | None = None,
                 cipher: Any = algorithms.AES256) -> bytes:
        """Encrypt ``entity`` to ``to`` and wrap it as a package (headers copied from ``like``)."""
        der = (pkcs7.PKCS7EnvelopeBuilder().set_data(entity).set_content_encryption_algorithm(cipher)
               .add_recipient(recipient_cert or self.key(to).cert)
               .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
        return with_der(like or self.build().eml, der)

    def sign(self, inner: bytes, key: OrgKey, digest: hashes.HashAlgorithm | None = None) -> bytes:
        """``inner`` as multipart/signed (detached), signed with ``key``."""
        return (pkcs7.PKCS7SignatureBuilder().set_data(inner)
                .add_signer(key.cert, key.key, digest or hashes.SHA256())  # type: ignore[arg-type]
                .sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature]))

    def craft(self, doc: dict[str, Any], *, signer: OrgKey | None = None, to: str = "uu-viborg",
              sender: str = "779008") -> bytes:
        """A package with any document (no schema check), signed by ``signer``."""
        from stafet.packages.package import _inner_mime

        inner = _inner_mime(doc, self.member(sender), self.member(to))
        return self.envelope(self.sign(inner, signer or self.key(sender)), to=to)

    with_der = staticmethod(lambda eml, der: with_der(eml, der))
    der_of = staticmethod(lambda eml: der_of(eml))

    def openssl_package(self, tmp: Path, doc: dict[str, Any], *, sender_key: OrgKey | None = None,
                        sign_args: tuple[str, ...] = ("-md", "sha256"),
                        encrypt_args: tuple[str, ...] = ("-aes256",), recipient: str = "uu-viborg") -> bytes:
        """``openssl cms -sign | openssl cms -encrypt`` with the sender's certificate and key."""
        sender_cert, sender_key_file = self.pem_files(sender_key or self.key(doc["sender"]), "signer")
        recip_cert, _ = self.pem_files(self.key(recipient), "recipient")
        (tmp / "inner.mime").write_bytes(plain_inner_mime({"schema": "stafet/1", **doc}))
        signed = run("openssl", "cms", "-sign", "-in", tmp / "inner.mime", "-signer", sender_cert,
                     "-inkey", sender_key_file, *sign_args)
        return run("openssl", "cms", "-encrypt", *encrypt_args, "-from", self.member(doc["sender"]).email,
                   "-to", self.member(recipient).email, "-subject", "Overlevering", recip_cert, stdin=signed)

    def deliver(self, org: str, name: str, data: bytes) -> Path:
        path = self.inbox(org) / name
        path.write_bytes(data)
        return path


def run(*args: str | Path, stdin: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    """Run a CLI tool; its stdout, or a failed assertion with its stderr."""
    proc = subprocess.run([str(a) for a in args], input=stdin, capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def plain_inner_mime(doc: dict[str, Any]) -> bytes:
    """A plain multipart/mixed with a text and the JSON, as another S/MIME tool would make it."""
    msg = EmailMessage()
    msg.set_content("Overlevering (lavet med openssl cms)\n")
    msg.add_attachment(json.dumps(doc).encode(), maintype="application", subtype="json",
                       filename="handover.json")
    return msg.as_bytes()  # LF line ends: openssl canonicalises to CRLF when it signs


def with_der(eml: bytes, der: bytes) -> bytes:
    """``eml``'s headers with ``der`` as its base64 body."""
    head = eml.split(b"\r\n\r\n", 1)[0]
    return head + b"\r\n\r\n" + base64.encodebytes(der).replace(b"\n", b"\r\n")


def der_of(eml: bytes) -> bytes:
    """The enveloped-data DER of a package."""
    return base64.b64decode(eml.split(b"\r\n\r\n", 1)[1])


@pytest.fixture(scope="session")
def net_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("exchange-net")
    _build_template(root)
    return root


@pytest.fixture
def net(net_template: Path, tmp_path: Path) -> TestNet:
    """A private copy of the test network."""
    root = tmp_path / "network"
    shutil.copytree(net_template, root)
    return TestNet(root)
