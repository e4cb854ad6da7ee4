"""One secret lookup (``stafet.core.secrets``) behind the network secret and the key passphrase."""

from __future__ import annotations

import os
import stat
import sys
import types
from pathlib import Path

import pytest

from keys.files import key_passphrase
from stafet.core import secrets
from stafet.core.errors import ConfigError
from stafet.core.secrets import SecretSpec, find_secret
from stafet.core.vault import load_secret

SPEC = SecretSpec(what="test secret", env="STAFET_TEST_SECRET_X", block_env="STAFET_TEST_SECRET_X_BLOCK",
                  file="x.secret")


def test_order_env_then_block_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "x.secret").write_text("from-file\n")
    assert (find_secret(SPEC, tmp_path).value, find_secret(SPEC, tmp_path).origin) == ("from-file", "file")
    loads: list[tuple[str, dict[str, object]]] = []

    class Secret:
        @staticmethod
        def load(name: str, **kw: object) -> types.SimpleNamespace:
            loads.append((name, kw))
            return types.SimpleNamespace(get=lambda: "from-block")

    monkeypatch.setitem(sys.modules, "prefect.blocks.system", types.SimpleNamespace(Secret=Secret))
    monkeypatch.setenv("STAFET_TEST_SECRET_X_BLOCK", "blk")
    found = find_secret(SPEC, tmp_path)
    assert (found.value, found.origin) == ("from-block", "block")
    assert loads == [("blk", {"_sync": True})]  # sync load: callable from inside an async flow
    monkeypatch.setenv("STAFET_TEST_SECRET_X", "from-env")
    assert find_secret(SPEC, tmp_path).value == "from-env"
    assert "from-env" not in repr(find_secret(SPEC, tmp_path))


def test_missing_names_every_place_and_no_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        find_secret(SPEC, tmp_path)
    msg = str(e.value)
    assert "no test secret" in msg and "STAFET_TEST_SECRET_X_BLOCK" in msg and "x.secret" in msg


def test_created_0600_once_and_a_racing_creator_keeps_the_first(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "new-home"
    first = find_secret(SPEC, home, generate=lambda: "one").value
    assert first == "one"
    assert stat.S_IMODE((home / "x.secret").stat().st_mode) == 0o600
    assert find_secret(SPEC, home, generate=lambda: "two").value == "one"
    # Another process creates the file between our look and our link: we take its value.
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        Path(dst).write_text("winner\n")
        real_link(src, dst)

    monkeypatch.setattr(secrets.os, "link", racing_link)
    other = tmp_path / "other-home"
    assert find_secret(SPEC, other, generate=lambda: "loser").value == "winner"
    assert [p.name for p in other.iterdir()] == ["x.secret"]  # no temporary left behind


def test_both_callers_share_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    phrase = key_passphrase(tmp_path, create=True)
    assert key_passphrase(tmp_path) == phrase
    assert stat.S_IMODE((tmp_path / "key-passphrase").stat().st_mode) == 0o600
    monkeypatch.setenv("STAFET_KEY_PASSPHRASE", " spaced ")
    assert key_passphrase(tmp_path) == b" spaced "  # a passphrase is taken as given
    monkeypatch.setenv("STAFET_SECRET", "ab" * 32 + "\n")
    assert load_secret(tmp_path) == bytes.fromhex("ab" * 32)
    monkeypatch.setenv("STAFET_SECRET", "not hex")
    with pytest.raises(ConfigError, match=r"^STAFET_SECRET must be hex"):
        load_secret(tmp_path)
    monkeypatch.delenv("STAFET_SECRET")
    (tmp_path / "secret.key").write_text("zz\n")
    with pytest.raises(ConfigError, match=r"secret\.key must be hex"):
        load_secret(tmp_path)
