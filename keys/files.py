"""The key files of one ``$STAFET_HOME``: the passphrase, and reading and writing private keys.

Every private key under ``$STAFET_HOME/keys`` is PKCS#8, encrypted with the key
passphrase, mode 0600 from its first byte. :class:`KeyFiles` is the base that
:class:`keys.ca.NetworkCA` and :class:`keys.store.KeyStore` build on.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from stafet.core.errors import ConfigError
from stafet.core.secrets import SecretSpec, find_secret

DEFAULT_BITS = 3072
"""RSA key size of new keys."""

KEY_PASSPHRASE = SecretSpec(what="key passphrase", env="STAFET_KEY_PASSPHRASE",
                            block_env="STAFET_KEY_PASSPHRASE_BLOCK", file="key-passphrase")
"""Where the key passphrase is looked for (:func:`stafet.core.secrets.find_secret`)."""


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file with 0600 from the first byte (no window where it is readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def key_passphrase(home: Path, *, create: bool = False) -> bytes:
    """The passphrase that encrypts private keys (see :mod:`keys`)."""
    found = find_secret(KEY_PASSPHRASE, home,
                        generate=(lambda: secrets.token_urlsafe(32)) if create else None)
    return found.value.encode()


class KeyFiles:
    """Private keys under ``$STAFET_HOME/keys``, decrypted with the key passphrase."""

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

    def org_dir(self, org_id: str) -> Path:
        """Folder of one organisation's keys."""
        return self.root / org_id

