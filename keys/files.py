"""The key files of one ``$STAFET_HOME``: the passphrase, and reading and writing private keys.

Every private key under ``$STAFET_HOME/keys`` is PKCS#8, encrypted with the key
passphrase, mode 0600 from its first byte. :class:`KeyFiles` is the base that
:class:`keys.ca.NetworkCA` and :class:`keys.store.KeyStore` build on.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from stafet.core.errors import ConfigError
from stafet.core.secrets import SecretSpec, find_secret

log = logging.getLogger("stafet.keys")

STAMP_KDF_ITERATIONS = 100_000
"""PBKDF2-HMAC-SHA256 rounds of the stamps' MAC key (the key files' own encryption uses 2,048)."""
_UNSTAMPED: set[str] = set()  # key files whose stamp could not be written (warned once a process)

DEFAULT_BITS = 3072
"""RSA key size of new keys."""

KEY_PASSPHRASE = SecretSpec(what="key passphrase", env="STAFET_KEY_PASSPHRASE",
                            block_env="STAFET_KEY_PASSPHRASE_BLOCK", file="key-passphrase")
"""Where the key passphrase is looked for (:func:`stafet.core.secrets.find_secret`)."""


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file with 0600 from the first byte (no window where it is readable).

    Through a temporary file of its own (``mkstemp``: 0600, created exclusively), renamed
    over ``path``: two processes writing the same file never mix their bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stamp_path(key_path: Path) -> Path:
    """Where a key file's check stamp is kept (:meth:`KeyFiles.check_stamp`): ``<name>.key.checked``."""
    return key_path.with_name(key_path.name + ".checked")


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
        # A key is read once per file version per process, not once per package (see
        # _read_key for what a read costs). Keyed by mtime and size, so a rotated or
        # replaced file is read again.
        st = path.stat()
        stamp = (str(path), st.st_mtime_ns, st.st_size)
        cache: dict[tuple[str, int, int], rsa.RSAPrivateKey] = self.__dict__.setdefault("_key_cache", {})
        if stamp in cache:
            return cache[stamp]
        cache[stamp] = key = self._read_key(path)
        return key

    def _read_key(self, path: Path) -> rsa.RSAPrivateKey:
        # The full RSA key check (OpenSSL's RSA_check_key: p and q prime, the CRT values
        # consistent) is ~110 ms of a 3072-bit key's ~110 ms load; the decryption ~0.3 ms.
        # It runs the first time this node sees a key file's exact bytes; a stamp (see
        # check_stamp) then lets a later process skip it for those bytes only.
        data = path.read_bytes()
        checked = self._stamp_holds(path, data)
        try:
            key = serialization.load_pem_private_key(data, self.passphrase,
                                                     unsafe_skip_rsa_key_validation=checked)
        except (TypeError, ValueError):
            raise ConfigError(f"cannot decrypt the private key {path.name} of {path.parent.name}: "
                              "wrong key passphrase, or the file is damaged or not a valid key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(f"{path.name}: S/MIME key transport needs an RSA key")
        if not checked:
            self._write_stamp(path, data)
        return key

    def check_stamp(self, data: bytes) -> str:
        """The stamp of a key file's bytes: HMAC-SHA256 of their SHA-256 under the key passphrase.

        Written beside the file (``<name>.checked``) once the bytes passed the full RSA key
        check, or when stafet made the key itself. Only someone who holds the passphrase
        can make one, and it names those bytes only: a replaced or altered file, or a
        stamp copied from another, is checked in full again (and refused if invalid).
        """
        return hmac.new(self._stamp_key, hashlib.sha256(data).digest(), hashlib.sha256).hexdigest()

    @functools.cached_property
    def _stamp_key(self) -> bytes:
        # Derived more slowly than the key files' own encryption derives theirs: a stamp
        # gives no faster way to test a guessed passphrase than a key file does. Once per
        # instance (a process has one key store).
        return hashlib.pbkdf2_hmac("sha256", self.passphrase, b"stafet/key-file-checked/1",
                                   STAMP_KDF_ITERATIONS)

    def _stamp_holds(self, path: Path, data: bytes) -> bool:
        try:
            held = stamp_path(path).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(held, self.check_stamp(data))

    def _write_stamp(self, path: Path, data: bytes) -> None:
        try:
            write_private(stamp_path(path), (self.check_stamp(data) + "\n").encode("ascii"))
        except OSError as e:  # a read-only home: every process checks the key in full, as before
            if not _UNSTAMPED:
                log.warning("cannot write the check stamp beside %s (%s): each process checks the key "
                            "in full (≈ 0.1 s a key); run `stafet keys list` where the folder is writable",
                            path.name, type(e).__name__)
            _UNSTAMPED.add(str(path))

    def write_key(self, path: Path, key: rsa.RSAPrivateKey) -> None:
        """Write a key stafet made (PKCS#8, encrypted, 0600) and its stamp: it needs no check."""
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, self._enc())
        write_private(path, data)
        self._write_stamp(path, data)

    def org_dir(self, org_id: str) -> Path:
        """Folder of one organisation's keys."""
        return self.root / org_id

