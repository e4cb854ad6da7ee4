"""The CPR vault: keyed pseudonyms and encryption at rest.

One network secret (32 bytes) feeds two keys derived with HKDF: an HMAC-SHA256 key
for pseudonyms (a youth's id everywhere in stafet's store, logs and Prefect) and an
AES-256-GCM key for what must be kept but not read by anyone who opens the store
(CPR numbers, quarantined raw rows, archived source files).

Where the secret comes from, in order (:mod:`stafet.core.secrets`): ``STAFET_SECRET``
(hex), a Prefect Secret block named by ``STAFET_SECRET_BLOCK``, the file
``$STAFET_HOME/secret.key`` (0600; created on demand for the demo).
"""

from __future__ import annotations

import hmac
import os
import secrets
import struct
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from stafet.core.errors import ConfigError, DataError
from stafet.core.secrets import SecretSpec, find_secret

_MAGIC = b"STV1"
_CHUNK = 1 << 16


def _derive(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"stafet-vault", info=label).derive(secret)


class Vault:
    """Pseudonymise and encrypt with keys derived from one network secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ConfigError("the network secret must be at least 32 bytes")
        self._mac_key = _derive(secret, b"pseudonym")
        self._aead = AESGCM(_derive(secret, b"encrypt"))

    def __repr__(self) -> str:
        return "Vault(<secret>)"

    def pseudonym(self, cpr_digits: str) -> str:
        """The youth's stable id: HMAC-SHA256 of the 10 CPR digits, hex, 32 chars."""
        return hmac.digest(self._mac_key, cpr_digits.encode(), "sha256")[:16].hex()

    def encrypt(self, plaintext: bytes, context: bytes = b"") -> bytes:
        """AES-256-GCM; ``context`` is bound as associated data (e.g. b"cpr")."""
        nonce = os.urandom(12)  # what secrets.token_bytes(12) returns, one call less
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def decrypt(self, blob: bytes, context: bytes = b"") -> bytes:
        """Reverse :meth:`encrypt`; a wrong key or tampering raises ``DataError``."""
        try:
            return self._aead.decrypt(blob[:12], blob[12:], context)
        except InvalidTag:
            raise DataError("vault: ciphertext does not authenticate", rule="vault") from None

    def encrypt_cpr(self, cpr_digits: str, pseudonym: str) -> bytes:
        """A youth's CPR encrypted for its row, bound to its pseudonym (:func:`cpr_context`)."""
        return self.encrypt(cpr_digits.encode(), cpr_context(pseudonym))

    def decrypt_cpr(self, blob: bytes, pseudonym: str) -> str:
        """The CPR digits of the youth ``pseudonym`` from :meth:`encrypt_cpr`'s ciphertext.

        A ciphertext moved to another youth's row does not authenticate there (the
        associated data is that youth's pseudonym), and what decrypts must also be the
        CPR the pseudonym is made from: either way ``DataError`` (rule ``vault``).
        """
        digits = self.decrypt(blob, cpr_context(pseudonym)).decode()
        if not hmac.compare_digest(self.pseudonym(digits), pseudonym):
            raise DataError("vault: the CPR does not belong to this youth", rule="vault")
        return digits

    def encrypt_stream(self, src: BinaryIO, dst: BinaryIO) -> None:
        """Encrypt a file of any size in 64 KiB AES-GCM segments (flat memory).

        Each segment's nonce is a random prefix plus its counter; the last segment is
        bound with ``b"final"`` so truncation is detected.
        """
        prefix = secrets.token_bytes(8)
        dst.write(_MAGIC + prefix)
        counter = 0
        chunk = src.read(_CHUNK)
        while True:
            nxt = src.read(_CHUNK)
            final = not nxt
            nonce = prefix + struct.pack(">I", counter)
            ct = self._aead.encrypt(nonce, chunk, b"final" if final else b"")
            dst.write(struct.pack(">I", len(ct)) + ct)
            if final:
                return
            chunk, counter = nxt, counter + 1

    def decrypt_stream(self, src: BinaryIO, dst: BinaryIO) -> None:
        """Reverse :meth:`encrypt_stream`."""
        head = src.read(12)
        if head[:4] != _MAGIC:
            raise DataError("vault: not an encrypted archive", rule="vault")
        prefix, counter = head[4:], 0
        size = src.read(4)
        while True:
            if len(size) < 4:
                raise DataError("vault: archive is truncated", rule="vault")
            ct = src.read(struct.unpack(">I", size)[0])
            size = src.read(4)
            final = size == b""
            nonce = prefix + struct.pack(">I", counter)
            try:
                dst.write(self._aead.decrypt(nonce, ct, b"final" if final else b""))
            except InvalidTag:
                raise DataError("vault: archive segment does not authenticate", rule="vault") from None
            if final:
                return
            counter += 1


LEGACY_CPR_CONTEXT = b"cpr"
"""The associated data of a stored CPR before store revision 0004: the same for every youth,
so a ciphertext copied into another youth's row decrypted there. Only the migration reads it."""


def cpr_context(pseudonym: str) -> bytes:
    """The AES-GCM associated data of a youth's stored CPR: ``cpr:`` and the youth's pseudonym."""
    return b"cpr:" + pseudonym.encode("ascii")


NETWORK_SECRET = SecretSpec(what="network secret", env="STAFET_SECRET", block_env="STAFET_SECRET_BLOCK",
                            file="secret.key")
"""Where the network secret is looked for (:func:`stafet.core.secrets.find_secret`)."""


def load_secret(home: Path, *, create: bool = False) -> bytes:
    """Find the network secret (see module docstring); create it under ``home`` if asked."""
    found = find_secret(NETWORK_SECRET, home,
                        generate=(lambda: secrets.token_bytes(32).hex()) if create else None)
    try:
        return bytes.fromhex(found.value.strip())
    except ValueError:
        if found.origin == "env":
            raise ConfigError("STAFET_SECRET must be hex (64 hex digits)") from None
        raise ConfigError(f"the network secret in {found.where} must be hex (64 hex digits)") from None
