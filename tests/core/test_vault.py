"""The CPR vault: pseudonyms, encryption, and no clear CPR in the database file."""

import io
import os
import stat
from datetime import UTC, date, datetime

import pytest

from stafet.core.cpr import parse_cpr
from stafet.core.errors import ConfigError, DataError
from stafet.core.models import Dropout, Provenance
from stafet.core.vault import Vault, load_secret
from stafet.store import Store

CPRS = ["120308-4127", "030409-4871", "2112084466"]


def _dropout(cpr: str, n: int) -> Dropout:
    return Dropout(cpr=parse_cpr(cpr), institution="779008", home_municipality="791",
                   event_date=date(2026, 11, 17), programme_code=str(1000 + n), reason_code="05",
                   provenance=Provenance("easy-a", "f.csv", n, datetime(2026, 11, 21, tzinfo=UTC)))


def test_pseudonym_is_stable_keyed_and_not_the_cpr() -> None:
    a, b = Vault(b"a" * 32), Vault(b"b" * 32)
    assert a.pseudonym("1203084127") == a.pseudonym("1203084127")
    assert a.pseudonym("1203084127") != b.pseudonym("1203084127")
    assert "1203084127" not in a.pseudonym("1203084127")


def test_encrypt_round_trip_and_tamper_detection() -> None:
    v = Vault(os.urandom(32))
    blob = v.encrypt(b"1203084127", b"cpr")
    assert v.decrypt(blob, b"cpr") == b"1203084127"
    with pytest.raises(DataError):
        v.decrypt(blob, b"other-context")
    with pytest.raises(DataError):
        v.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), b"cpr")


def test_a_cpr_ciphertext_is_bound_to_its_youth() -> None:
    """Issue 16 (low): the associated data was the constant b"cpr", so a ciphertext moved to
    another youth's row decrypted there. Now it is the youth's pseudonym."""
    from stafet.core.vault import LEGACY_CPR_CONTEXT, cpr_context

    v = Vault(os.urandom(32))
    a, b = v.pseudonym("1203084127"), v.pseudonym("0304094871")
    blob = v.encrypt_cpr("1203084127", a)
    assert v.decrypt_cpr(blob, a) == "1203084127"
    with pytest.raises(DataError, match="does not authenticate"):
        v.decrypt_cpr(blob, b)                                   # moved to youth b's row
    with pytest.raises(DataError):
        v.decrypt(blob, LEGACY_CPR_CONTEXT)
    assert cpr_context(a) != cpr_context(b) and a.encode() in cpr_context(a)
    # Bound to b's row but holding a's CPR (a forged re-encryption): still refused.
    with pytest.raises(DataError, match="does not belong"):
        v.decrypt_cpr(v.encrypt(b"1203084127", cpr_context(b)), b)


def test_stream_encryption_detects_truncation() -> None:
    v = Vault(os.urandom(32))
    data = os.urandom(300_000)
    out = io.BytesIO()
    v.encrypt_stream(io.BytesIO(data), out)
    back = io.BytesIO()
    v.decrypt_stream(io.BytesIO(out.getvalue()), back)
    assert back.getvalue() == data
    with pytest.raises(DataError):
        v.decrypt_stream(io.BytesIO(out.getvalue()[:70_000]), io.BytesIO())


def test_secret_file_is_created_0600(tmp_path) -> None:
    s = load_secret(tmp_path, create=True)
    assert len(s) == 32
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert load_secret(tmp_path) == s


def test_missing_secret_says_where_it_looked(tmp_path) -> None:
    with pytest.raises(ConfigError) as e:
        load_secret(tmp_path)
    assert "STAFET_SECRET" in str(e.value) and "secret.key" in str(e.value)


def test_no_clear_cpr_in_the_sqlite_file(tmp_path) -> None:
    db = tmp_path / "stafet.db"
    store = Store(f"sqlite:///{db}", Vault(os.urandom(32)))
    with store.session() as s:
        store.upsert_records(s, [_dropout(c, i) for i, c in enumerate(CPRS)])
        store.audit(s, "test", "x", "y", {"n": 1})
    store.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("stafet.db*"))
    for c in CPRS:
        digits = c.replace("-", "")
        for form in (digits, f"{digits[:6]}-{digits[6:]}", f"{digits[:6]} {digits[6:]}"):
            assert form.encode() not in raw
    assert b"779008" in raw  # the file is readable: the check above could fail


def test_cpr_comes_back_from_the_vault(tmp_path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}", Vault(os.urandom(32)))
    with store.session() as s:
        ids = store.ensure_youths(s, [parse_cpr("120308-4127")])
        assert store.cpr_of(s, ids["1203084127"]).formatted == "120308-4127"
