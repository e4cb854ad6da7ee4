"""A demo network per test, copied from one built once per module (key generation is slow)."""

import shutil
from datetime import UTC, datetime

import pytest

from stafet import relay
from stafet.cpr import parse_cpr
from stafet.demo import member_home, setup_demo
from stafet.models import Provenance
from stafet.vault import load_secret


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-template")
    mp = pytest.MonkeyPatch()
    mp.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")
    setup_demo(root / "demo", root / "home", drop_samples=False, bits=2048)
    load_secret(root / "home", create=True)
    load_secret(member_home(root / "demo", "uu-skive"), create=True)
    mp.undo()
    return root


@pytest.fixture
def net(template, tmp_path, monkeypatch):
    """(network.yaml path, context) on a fresh copy of the demo network."""
    monkeypatch.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")
    shutil.copytree(template, tmp_path / "n")
    monkeypatch.setenv("STAFET_HOME", str(tmp_path / "n" / "home"))
    relay.context.cache_clear()
    path = str(tmp_path / "n" / "demo" / "network.yaml")
    yield path, relay.context(path)
    relay.context.cache_clear()


def prov(file="t.csv", row=2):
    return Provenance("test", file, row, datetime.now(UTC))


def cpr(text):
    return parse_cpr(text)
