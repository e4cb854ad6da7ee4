"""A key file's full RSA check runs once for its exact bytes; its stamp lets later processes skip it.

The check (OpenSSL's RSA_check_key) is nearly all of a key load's cost; a night's flow runs
are new processes, and each loaded every sender's key afresh. The stamp is an HMAC under
the key passphrase of the file's SHA-256: only those bytes, only someone with the passphrase.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from keys import KeyStore
from keys.files import KeyFiles, stamp_path
from stafet.core.errors import ConfigError

PASS = b"kodeord-til-test"


@pytest.fixture()
def loads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each key load skipped the full check (the real loader still runs)."""
    seen: list[bool] = []
    real = serialization.load_pem_private_key

    def spy(data: bytes, password: bytes | None, **kw: Any) -> Any:
        seen.append(bool(kw.get("unsafe_skip_rsa_key_validation", False)))
        return real(data, password, **kw)

    monkeypatch.setattr(serialization, "load_pem_private_key", spy)
    return seen


def _write(path: Path, key: rsa.RSAPrivateKey, passphrase: bytes = PASS) -> bytes:
    """A key file as something other than stafet wrote it: no stamp."""
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def _invalid_key() -> rsa.RSAPrivateKey:
    """An RSA key whose CRT exponent is wrong: what the full check refuses."""
    n = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    bad = rsa.RSAPrivateNumbers(p=n.p, q=n.q, d=n.d, dmp1=n.dmp1 ^ 2, dmq1=n.dmq1, iqmp=n.iqmp,
                                public_numbers=n.public_numbers)
    return bad.private_key(unsafe_skip_rsa_key_validation=True)


def test_the_first_load_checks_in_full_and_stamps_then_later_processes_skip(tmp_path: Path,
                                                                            loads: list[bool]) -> None:
    path = tmp_path / "keys" / "uu-test" / "1a.key"
    data = _write(path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    first = KeyFiles(tmp_path, PASS)._load_key(path)
    assert loads == [False]  # checked in full
    stamp = stamp_path(path)
    assert stamp.name == "1a.key.checked" and stamp.stat().st_mode & 0o777 == 0o600
    assert stamp.read_text().strip() == KeyFiles(tmp_path, PASS).check_stamp(data)
    assert data.hex() not in stamp.read_text()  # nothing of the key in it
    second = KeyFiles(tmp_path, PASS)._load_key(path)  # a new instance: as a new process
    assert loads == [False, True]
    assert second.private_numbers() == first.private_numbers()


def test_a_replaced_file_or_a_foreign_stamp_is_checked_in_full(tmp_path: Path, loads: list[bool]) -> None:
    path = tmp_path / "keys" / "uu-test" / "1a.key"
    _write(path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    KeyFiles(tmp_path, PASS)._load_key(path)
    old_stamp = stamp_path(path).read_bytes()
    # another valid key in the same file, the old stamp left beside it: checked again, then stamped anew
    _write(path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    stamp_path(path).write_bytes(old_stamp)
    KeyFiles(tmp_path, PASS)._load_key(path)
    assert loads[-1] is False and stamp_path(path).read_bytes() != old_stamp
    # a stamp made under another passphrase (someone without ours) does not hold
    other = tmp_path / "other.key"
    data = _write(other, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    stamp_path(other).write_text(KeyFiles(tmp_path, b"a-different-passphrase").check_stamp(data))
    KeyFiles(tmp_path, PASS)._load_key(other)
    assert loads[-1] is False
    stamp_path(other).write_text("not a stamp at all \u00e6")
    KeyFiles(tmp_path, PASS)._load_key(other)
    assert loads[-1] is False


def test_an_invalid_key_with_a_copied_stamp_is_refused_and_not_stamped(tmp_path: Path,
                                                                     loads: list[bool]) -> None:
    path = tmp_path / "keys" / "uu-test" / "1a.key"
    _write(path, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    KeyFiles(tmp_path, PASS)._load_key(path)
    stamp = stamp_path(path).read_bytes()
    _write(path, _invalid_key())  # an adversary swaps the key file and keeps the stamp
    stamp_path(path).write_bytes(stamp)
    with pytest.raises(ConfigError, match="not a valid key"):
        KeyFiles(tmp_path, PASS)._load_key(path)
    assert loads[-1] is False
    assert stamp_path(path).read_bytes() == stamp  # no stamp for the invalid bytes
    fresh = tmp_path / "fresh.key"
    _write(fresh, _invalid_key())
    with pytest.raises(ConfigError):
        KeyFiles(tmp_path, PASS)._load_key(fresh)
    assert not stamp_path(fresh).exists()


def test_keys_stafet_makes_are_stamped_and_the_stamp_moves_with_the_key(tmp_path: Path,
                                                                       loads: list[bool]) -> None:
    home = tmp_path / "home"
    ks = KeyStore(home, passphrase=PASS)
    ks.init_ca(bits=2048)
    assert stamp_path(ks.ca_dir / "ca.key").exists()
    ks.new_key("uu-test", bits=2048)
    d = home / "keys" / "uu-test"
    assert stamp_path(d / "pending.key").exists()
    cert = ks.issue("uu-test")
    serial = format(cert.serial_number, "x")
    assert stamp_path(d / f"{serial}.key").exists() and not stamp_path(d / "pending.key").exists()
    loads.clear()
    key = KeyStore(home, passphrase=PASS).current("uu-test")  # a new process: no check needed
    assert loads == [True]
    assert key.key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_a_stamp_is_no_faster_to_guess_a_passphrase_with_than_the_key_file(tmp_path: Path) -> None:
    from asn1crypto import keys as asn1_keys
    from asn1crypto import pem

    from keys.files import STAMP_KDF_ITERATIONS

    ks = KeyStore(tmp_path / "home", passphrase=PASS)
    ks.new_key("uu-test", bits=2048)
    _, _, der = pem.unarmor((tmp_path / "home" / "keys" / "uu-test" / "pending.key").read_bytes())
    algorithm = asn1_keys.EncryptedPrivateKeyInfo.load(der)["encryption_algorithm"]
    assert algorithm["algorithm"].native == "pbes2"
    kdf = algorithm["parameters"]["key_derivation_func"]
    assert kdf["algorithm"].native == "pbkdf2"
    assert 10 * kdf["parameters"]["iteration_count"].native <= STAMP_KDF_ITERATIONS


def test_a_certificate_imported_for_a_current_key_keeps_its_stamp(tmp_path: Path, loads: list[bool]) -> None:
    home = tmp_path / "home"
    ks = KeyStore(home, passphrase=PASS)
    ks.init_ca(bits=2048)
    ks.new_key("uu-test", bits=2048, email="uu@test.dk")
    first = ks.issue("uu-test")
    d = home / "keys" / "uu-test"
    key = KeyStore(home, passphrase=PASS).current("uu-test")
    csr = x509.CertificateSigningRequestBuilder().subject_name(first.subject).sign(key.key, hashes.SHA256())
    second = ks.sign_csr("uu-test", csr)
    pem = second.public_bytes(serialization.Encoding.PEM)
    KeyStore(home, passphrase=PASS).import_certificate("uu-test", pem, [ks.ca_cert()])
    copied = d / f"{format(second.serial_number, 'x')}.key"
    assert copied.exists() and stamp_path(copied).exists()
    loads.clear()
    KeyFiles(home, PASS)._load_key(copied)
    assert loads == [True]
