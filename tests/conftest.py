"""Shared fixtures: isolation from the developer's environment, and real peers.

Real servers (see ``tests/servers.py``) run on 127.0.0.1, each in its own folder and
process, and are stopped by PID:

* ``sshd`` (session): OpenSSH with SFTP; ``sshd.host_key``, ``sshd.client_key``,
  ``sshd.url(path)``, ``sshd.new_folder()``. ``make_sshd()`` gives a private one
  (for tests that kill it).
* ``smtp_server`` (per test): aiosmtpd in its own process; ``.endpoint``,
  ``.messages()``, ``.fail_next(451)``. ``make_smtp_server(tls=True)`` offers STARTTLS;
  ``auth=True`` offers SMTP AUTH (even in clear) and records the logins (``.logins()``).
* ``postgres_url`` (session): a SQLAlchemy URL; ``$STAFET_TEST_POSTGRES_URL`` if set,
  else a throwaway cluster.
* ``prefect_server`` (session): ``prefect server start`` on 127.0.0.1.
* ``demo_net`` / ``demo_relay`` (per test): a fresh copy of the demo network (keys made once
  per session): ``(path, context)`` / ``(path, home, demo folder)``.

A real peer that cannot start **fails** the tests that need it (``make test`` must not
go green without it). Only ``STAFET_TEST_ALLOW_SKIP=1`` turns that into a skip, with the
reason printed at the end of the run; ``make test`` never sets it.

Isolation (autouse, per test): every ``STAFET_*`` and ``PREFECT_*`` variable is removed
except the ones the fixture sets (``STAFET_HOME``, a fresh folder, and
``PREFECT_SERVER_ANALYTICS_ENABLED=false``). Test-run settings (``STAFET_TEST_*``) are
read once at start (``servers.setting``); a session fixture that needs environment
variables passes them to its process explicitly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests import ``servers`` as a top-level module whatever pytest's import mode is.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
from servers import Postgres, ServerUnavailable, SmtpServer, Sshd, peer_unavailable, setting, skipped_peers

# Set before any session fixture (e.g. a Prefect test server) starts: no telemetry.
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the developer's stafet home, database, network and Prefect.

    Every ``STAFET_*`` / ``PREFECT_*`` variable it does not set is removed (a developer's
    ``PREFECT_API_URL`` or ``STAFET_DATABASE_URL`` must never reach a test).
    """
    for var in [v for v in os.environ if v.startswith(("STAFET_", "PREFECT_"))]:
        if var not in ISOLATION_SETS:
            monkeypatch.delenv(var)
    monkeypatch.setenv("STAFET_HOME", str(tmp_path_factory.mktemp("stafet-home")))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("DO_NOT_TRACK", "1")


# What the isolation fixture sets; every other STAFET_* / PREFECT_* variable it removes.
ISOLATION_SETS = frozenset({"STAFET_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED"})


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name every real peer that was skipped (only with STAFET_TEST_ALLOW_SKIP=1)."""
    if skipped_peers:
        terminalreporter.section("real peers skipped (STAFET_TEST_ALLOW_SKIP=1)")
        for peer, reason in dict.fromkeys(skipped_peers):
            terminalreporter.write_line(f"{peer}: {reason.splitlines()[0] if reason else ''}")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH sshd (SFTP) for the whole session; use ``sshd.new_folder()``."""
    yield from _running("sshd", lambda: Sshd(tmp_path_factory.mktemp("sshd")).start())


@pytest.fixture
def make_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Sshd]]:
    """Factory for private sshd instances (started), stopped after the test."""
    started: list[Sshd] = []

    def make() -> Sshd:
        try:
            server = Sshd(tmp_path_factory.mktemp("sshd-private")).start()
        except ServerUnavailable as e:
            peer_unavailable("sshd", e)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def make_smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SmtpServer]]:
    """Factory: ``make_smtp_server(tls=False, auth=False)`` starts an aiosmtpd process; stopped after."""
    started: list[SmtpServer] = []

    def make(*, tls: bool = False, auth: bool = False) -> SmtpServer:
        try:
            server = SmtpServer(tmp_path_factory.mktemp("smtp"), tls=tls, auth=auth).start()
        except ServerUnavailable as e:
            peer_unavailable("SMTP server", e)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(make_smtp_server: Callable[..., SmtpServer]) -> SmtpServer:
    """A real SMTP server (aiosmtpd, own process, no TLS) for one test."""
    return make_smtp_server()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a PostgreSQL database for this session (fails if impossible)."""
    url = setting("STAFET_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        server = Postgres().start()
    except ServerUnavailable as e:
        peer_unavailable("PostgreSQL", e)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo network (keys, certificates, config), built once per session (RSA-2048)."""
    from stafet.core.vault import load_secret
    from stafet.demo.network import member_home, setup_demo

    root = tmp_path_factory.mktemp("demo-template")
    mp = pytest.MonkeyPatch()
    mp.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")
    setup_demo(root / "demo", root / "home", drop_samples=False, bits=2048)
    load_secret(root / "home", create=True)
    load_secret(member_home(root / "demo", "uu-skive"), create=True)
    mp.undo()
    return root


@pytest.fixture
def demo_net(demo_template: Path, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """(network.yaml path, opened context) on a fresh copy of the demo network."""
    import shutil

    from stafet import night

    monkeypatch.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")
    shutil.copytree(demo_template, tmp_path / "n")
    monkeypatch.setenv("STAFET_HOME", str(tmp_path / "n" / "home"))
    night.context.cache_clear()
    path = str(tmp_path / "n" / "demo" / "network.yaml")
    yield path, night.context(path)
    night.context.cache_clear()


@pytest.fixture
def demo_relay(demo_template: Path, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path, Path]]:
    """(network.yaml path, this node's home, the demo folder) on a fresh copy of the demo network.

    The folder holds the members' inboxes (``inbox/<org>``) and UU Skive's own node
    (``members/uu-skive``); ``STAFET_HOME`` is this node's home.
    """
    import shutil

    from stafet import night

    monkeypatch.setenv("STAFET_KEY_PASSPHRASE", "test-passphrase")
    shutil.copytree(demo_template, tmp_path / "n")
    home, folder = tmp_path / "n" / "home", tmp_path / "n" / "demo"
    monkeypatch.setenv("STAFET_HOME", str(home))
    night.context.cache_clear()
    yield str(folder / "network.yaml"), home, folder
    night.context.cache_clear()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real ``prefect server start`` on 127.0.0.1 for the session (SQLite, own home), stopped by PID.

    Clients use it through ``prefect_server.env()`` (``PREFECT_API_URL``) in a process of
    their own: Prefect reads its settings when it is imported.
    """
    from servers import PrefectServer

    yield from _running("prefect server",
                        lambda: PrefectServer(tmp_path_factory.mktemp("prefect-server")).start())


def _running(what: str, start: Callable[[], Any]) -> Iterator[Any]:
    """A started server for a fixture's life (fails if it cannot start), stopped by PID after."""
    try:
        server = start()
    except ServerUnavailable as e:
        peer_unavailable(what, e)
    yield server
    server.stop()
