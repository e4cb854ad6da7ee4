"""``stafet users`` and ``stafet web``: accounts from the command line, the console's server."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stafet.cli.main import app

runner = CliRunner()
PASSWORD = "korrekt-hest-batteri-klips"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from stafet.core.vault import load_secret

    h = tmp_path / "home"
    load_secret(h, create=True)
    monkeypatch.setenv("STAFET_HOME", str(h))
    monkeypatch.setenv("STAFET_USER_PASSWORD", PASSWORD)
    return h


def test_users_add_list_disable_reset(home: Path) -> None:
    r = runner.invoke(app, ["users", "add", "vera", "--role", "counsellor", "--org", "uu-viborg",
                            "--name", "Vera V"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "list", "--json"])
    (row,) = json.loads(r.output)
    assert (row["username"], row["role"], row["org"], row["disabled"]) == ("vera", "counsellor", "uu-viborg",
                                                                           False)
    assert row["created_at"].endswith("+00:00")
    assert runner.invoke(app, ["users", "disable", "vera"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["users", "list", "--json"]).output)[0]["disabled"] is True
    assert runner.invoke(app, ["users", "reset", "vera"]).exit_code == 0
    # the hash is argon2id, never the password
    from stafet.core.config import database_url
    from stafet.core.vault import Vault, load_secret
    from stafet.store import Store, users

    store = Store(database_url(home), Vault(load_secret(home)))
    with store.session() as s:
        u = users.by_name(s, "vera")
        assert u is not None and u.password_hash.startswith("$argon2id$") and PASSWORD not in u.password_hash


def test_users_errors_are_clear(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = runner.invoke(app, ["users", "add", "x", "--role", "wizard"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "--role" in r.output and "wizard" in r.output and "steward" in r.output  # the choices are listed
    r = runner.invoke(app, ["users", "add", "x", "--role", "counsellor"])
    assert r.exit_code == 2 and "--org" in r.output
    assert runner.invoke(app, ["users", "disable", "nobody"]).exit_code == 2
    monkeypatch.setenv("STAFET_USER_PASSWORD", "kort")
    r = runner.invoke(app, ["users", "add", "y", "--role", "operations"])
    assert r.exit_code == 2 and "12 characters" in r.output


def test_access_log_filter_masks_cpr() -> None:
    from stafet.cli.web import _RedactAccess

    rec = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"', ("127.0.0.1", "GET",
                            "/youth/120308-4127"), None)
    assert _RedactAccess().filter(rec)
    assert "120308-4127" not in rec.getMessage() and "/youth/" in rec.getMessage()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stafet_web_serves_the_login_page(demo_net: tuple[str, object]) -> None:
    path, _ = demo_net
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "stafet", "web", "--network", path, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body, headers = "", {}
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as resp:
                    body, headers = resp.read().decode(), dict(resp.headers)
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        assert 'name="username"' in body, proc.stdout.read().decode() if proc.poll() is not None else ""
        assert "default-src 'none'" in headers.get("content-security-policy", "")
        assert "server" not in {k.lower() for k in headers}
        # a CPR someone put in a URL by hand: refused, and masked in the access log
        req = urllib.request.Request(f"http://127.0.0.1:{port}/youth/120308-4127")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(req, timeout=5).read()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert "GET /youth/" in out and "120308-4127" not in out
