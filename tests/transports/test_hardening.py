"""Hardening of the drop folders, inboxes, SMTP login and stafet's own files (issue 16).

Each test names the finding it holds: 8 (planted symlinks), the low item "rejected/<name>
is overwritten" (keep both), 9 (SMTP login in clear), 11 (world-readable personal data,
processed exports kept forever), 12 (no size cap before reading). Only synthetic CPRs.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import servers
import yaml

from stafet.core.errors import ConfigError, DeliveryFailed, FileRejected
from transports import FolderInbox, SftpInbox, open_inbox, open_outlet

real = pytest.mark.slow  # starts or uses a real server

EML = b"From: a@x.dk\r\nTo: b@y.dk\r\nSubject: package\r\nMIME-Version: 1.0\r\n\r\nbody\r\n"
MB = 1024 * 1024


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def _sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (and no memory unless read)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
    return path


@pytest.fixture
def umask_022() -> Any:
    """A usual umask (022) during the test, whatever the runner's."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _sftp_inbox(sshd: servers.Sshd, folder: Path, **kw: Any) -> SftpInbox:
    inbox = open_inbox(sshd.url(folder), host_key=sshd.host_key, identity=str(sshd.client_key), **kw)
    assert isinstance(inbox, SftpInbox)
    return inbox


# ------------------------------------------------------------- finding 8: planted symlinks


def test_a_symlink_planted_in_rejected_never_overwrites_its_target(tmp_path: Path) -> None:
    inbox_dir, victim = tmp_path / "drop", tmp_path / "victim.conf"
    (inbox_dir / "rejected").mkdir(parents=True)
    victim.write_bytes(b"precious")
    (inbox_dir / "rejected" / "bad.csv.reason.txt").symlink_to(victim)
    (inbox_dir / "bad.csv").write_bytes(b"x")
    moved = FolderInbox(inbox_dir).reject("bad.csv", reason="header: column missing")
    assert victim.read_bytes() == b"precious"
    assert moved == "rejected/bad.1.csv"  # a free name: neither it nor its reason file exists
    reason = inbox_dir / "rejected" / "bad.1.csv.reason.txt"
    assert "column missing" in reason.read_text() and not reason.is_symlink()
    assert _mode(reason) == 0o600
    assert (inbox_dir / "rejected" / "bad.csv.reason.txt").is_symlink()  # left as it was


@pytest.mark.parametrize("sub", ["rejected", "processed"])
def test_a_symlinked_rejected_or_processed_folder_is_refused(tmp_path: Path, sub: str) -> None:
    inbox_dir, elsewhere = tmp_path / "drop", tmp_path / "elsewhere"
    inbox_dir.mkdir()
    elsewhere.mkdir()
    (inbox_dir / sub).symlink_to(elsewhere, target_is_directory=True)
    (inbox_dir / "a.csv").write_bytes(b"x")
    inbox = FolderInbox(inbox_dir)
    move = inbox.reject if sub == "rejected" else inbox.mark_processed
    with pytest.raises(ConfigError, match=f"{sub}/ in the inbox is a symlink"):
        move("a.csv")
    assert list(elsewhere.iterdir()) == []
    assert (inbox_dir / "a.csv").read_bytes() == b"x"  # stays, for after the operator's look


def test_a_symlinked_entry_is_never_opened_even_inside_the_inbox(tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_bytes(b"ok")
    (tmp_path / "alias.csv").symlink_to(tmp_path / "real.csv")
    with pytest.raises(FileRejected, match="is a symlink"):
        FolderInbox(tmp_path).open("alias.csv")


def test_open_checks_what_it_opened_not_what_it_looked_at(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The check-then-open race: the entry is swapped for a symlink after any look at the path.

    The attacker wins every race here (a look at the path says "a plain file"); only an
    open that refuses links itself (``O_NOFOLLOW``) and an ``fstat`` of what it opened hold.
    """
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not for you")
    inbox_dir = tmp_path / "drop"
    inbox_dir.mkdir()
    (inbox_dir / "x.csv").symlink_to(secret)
    monkeypatch.setattr(Path, "is_symlink", lambda self: False)
    monkeypatch.setattr(os.path, "islink", lambda p: False)
    with pytest.raises(FileRejected, match="is a symlink"):
        FolderInbox(inbox_dir).read("x.csv")


def test_a_fifo_in_the_inbox_does_not_hang_the_pass(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.csv")
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            FolderInbox(tmp_path).open("pipe.csv").close()
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # still blocked in open(): free it, then fail
        fd = os.open(tmp_path / "pipe.csv", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        t.join(5)
        pytest.fail("opening a FIFO in the inbox blocked")
    assert isinstance(outcome[0], FileRejected) and "not a regular file" in str(outcome[0])


def test_a_planted_link_is_moved_aside_as_the_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    inbox_dir = tmp_path / "drop"
    inbox_dir.mkdir()
    (inbox_dir / "evil.csv").symlink_to(victim)
    inbox = FolderInbox(inbox_dir)
    assert inbox.reject("evil.csv", reason="a symlink") == "rejected/evil.csv"
    assert (inbox_dir / "rejected" / "evil.csv").is_symlink()
    assert victim.read_bytes() == b"precious"


@real
def test_sftp_refuses_a_symlinked_rejected_folder_and_planted_reason_links(sshd: servers.Sshd,
                                                                         tmp_path: Path) -> None:
    folder = sshd.new_folder("hardening")
    victim = tmp_path / "victim.conf"
    victim.write_bytes(b"precious")
    (folder / "rejected").mkdir()
    (folder / "rejected" / "bad.csv.reason.txt").symlink_to(victim)
    (folder / "bad.csv").write_bytes(b"x")
    (folder / "alias.csv").symlink_to(folder / "bad.csv")
    with _sftp_inbox(sshd, folder) as inbox:
        with pytest.raises(FileRejected, match="is a symlink"):
            inbox.open("alias.csv")
        assert inbox.reject("bad.csv", reason="header: column missing") == "rejected/bad.1.csv"
        assert victim.read_bytes() == b"precious"
        assert "column missing" in (folder / "rejected" / "bad.1.csv.reason.txt").read_text()
        other = sshd.new_folder("hardening-elsewhere")
        (folder / "processed").symlink_to(other, target_is_directory=True)
        (folder / "ok.csv").write_bytes(b"y")
        with pytest.raises(ConfigError, match="processed/ in the inbox is a symlink"):
            inbox.mark_processed("ok.csv")
        assert list(other.iterdir()) == [] and (folder / "ok.csv").exists()


# ----------------------------------------------- low item: rejected/<name> keeps both copies


def test_a_rejected_file_never_replaces_an_earlier_one_or_its_reason(tmp_path: Path) -> None:
    inbox = FolderInbox(tmp_path)
    (tmp_path / "x.reason.txt").write_bytes(b"an export named like a reason file")
    inbox.reject("x.reason.txt", reason="first")
    (tmp_path / "x").write_bytes(b"second")
    assert inbox.reject("x", reason="second") == "rejected/x.1"
    rej = tmp_path / "rejected"
    assert (rej / "x.reason.txt").read_bytes() == b"an export named like a reason file"
    assert (rej / "x.1").read_bytes() == b"second"
    assert (rej / "x.1.reason.txt").read_text() == "second\n"
    (tmp_path / "x").write_bytes(b"third")
    assert inbox.reject("x", reason="third") == "rejected/x.2"
    assert (rej / "x.1").read_bytes() == b"second" and (rej / "x.2.reason.txt").read_text() == "third\n"


def test_refused_packages_of_one_name_are_all_kept_in_the_home(tmp_path: Path, umask_022: Any) -> None:
    from stafet.exchange.inbox import _keep_rejected

    ctx: Any = SimpleNamespace(home=tmp_path)
    _keep_rejected(ctx, "PKG-1.eml", b"first", "[bad_signature] first")
    _keep_rejected(ctx, "PKG-1.eml", b"second", "[replay] second")
    rej = tmp_path / "rejected"
    assert (rej / "PKG-1.eml").read_bytes() == b"first"
    assert (rej / "PKG-1.1.eml").read_bytes() == b"second"
    assert "[replay]" in (rej / "PKG-1.1.eml.reason.txt").read_text()
    assert "[bad_signature]" in (rej / "PKG-1.eml.reason.txt").read_text()
    assert _mode(rej) == 0o700 and {_mode(p) for p in rej.iterdir()} == {0o600}


# ------------------------------------------------------------ finding 9: SMTP login in clear


def _login_outlet(server: servers.SmtpServer, **kw: Any) -> Any:
    return open_outlet(server.endpoint, mail_from="stafet@ung.kommune.dk", rcpt_to="modtag@skole.dk",
                       username="stafet", password="hemmeligt-kodeord", timeout=10, **kw)


@real
@pytest.mark.parametrize("starttls", [None, "auto", "require"])
def test_smtp_never_sends_the_login_without_tls(make_smtp_server: Any, starttls: str | None) -> None:
    server: servers.SmtpServer = make_smtp_server(auth=True)  # offers AUTH in clear, no STARTTLS
    kw = {} if starttls is None else {"starttls": starttls}
    with pytest.raises(DeliveryFailed, match="does not offer STARTTLS") as e:
        _login_outlet(server, **kw).put("p.eml", EML)
    assert "hemmeligt" not in str(e.value)
    assert server.logins() == [] and server.messages() == []


def test_smtp_login_with_starttls_never_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="never sent in clear"):
        open_outlet("smtp://127.0.0.1:25", mail_from="a@x.dk", rcpt_to="b@y.dk", username="stafet",
                    password="hemmeligt-kodeord", starttls="never")


@real
def test_smtp_requires_starttls_by_default(smtp_server: servers.SmtpServer) -> None:
    out = open_outlet(smtp_server.endpoint, mail_from="a@x.dk", rcpt_to="b@y.dk", timeout=10)
    with pytest.raises(DeliveryFailed, match="does not offer STARTTLS"):
        out.put("p.eml", EML)
    assert smtp_server.messages() == []


@real
def test_smtp_login_goes_over_tls(make_smtp_server: Any) -> None:
    server: servers.SmtpServer = make_smtp_server(tls=True, auth=True)
    _login_outlet(server, cafile=str(server.cafile)).put("p.eml", EML)
    assert [(x["login"], x["tls"]) for x in server.logins()] == [("stafet", True)]
    assert [e["tls"] for e in server.envelopes()] == [True]


# ------------------------------------------- finding 11: private files, no clear exports kept


NETWORK = {"network": "t", "members": [
    {"id": "uu-viborg", "kind": "guidance", "name": "UU Viborg", "municipality": "791",
     "endpoint": "folder:inbox/uu-viborg", "email": "uu@viborg.example"}]}


def _network(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "network.yaml"
    path.write_text(yaml.safe_dump({**NETWORK, **extra}), encoding="utf-8")
    return path


@pytest.mark.parametrize("existing", [False, True])
def test_home_is_0700_and_the_database_0600(tmp_path: Path, umask_022: Any, existing: bool) -> None:
    from stafet.context import open_context

    home = tmp_path / "home"
    if existing:  # an older installation: 0755 home, 0644 database
        home.mkdir(mode=0o755)
        (home / "stafet.db").touch(mode=0o644)
    ctx = open_context(_network(tmp_path), home=home, create_secret=True)
    with ctx.store.session() as s:
        ctx.store.audit(s, "test", "touch", "x", {})
    ctx.store.engine.dispose()
    assert _mode(home) == 0o700
    assert _mode(home / "stafet.db") == 0o600
    for p in home.iterdir():
        if p.is_file():
            assert _mode(p) & 0o077 == 0, p.name


def test_outbox_reports_and_archive_are_private(tmp_path: Path, umask_022: Any) -> None:
    from ingest_fixtures import open_store

    from stafet.exchange.endpoints import write_durably
    from stafet.ingest.pipeline import archive
    from stafet.reports.validation import write_report

    home = tmp_path / "home"
    write_durably(home / "outbox" / "HO-1.eml", b"package")
    (home / "archive").mkdir(mode=0o755)  # made by an older version
    store = open_store(home)
    report = write_report(store, [], home=home, run="ingest-test")
    src = tmp_path / "export.csv"
    src.write_bytes(b"a;b\r\n")
    _, kept = archive(store, lambda: src.open("rb"), home)
    for folder, file in ((home / "outbox", home / "outbox" / "HO-1.eml"), (home / "reports", report),
                         (home / "archive", kept)):
        assert (_mode(folder), _mode(file)) == (0o700, 0o600), file
    # a temporary name planted as a link is never written through
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    for n in range(3):
        (home / "outbox" / f".HO-2.eml.{n}.part").symlink_to(victim)
    write_durably(home / "outbox" / "HO-2.eml", b"package 2")
    assert victim.read_bytes() == b"precious" and (home / "outbox" / "HO-2.eml").read_bytes() == b"package 2"


def _ingest_drop(tmp_path: Path, drop: Path, **options: Any) -> tuple[Any, Any, Path]:
    from ingest_fixtures import NOW, network, open_store

    from stafet.core.config import SourceConfig
    from stafet.ingest.pipeline import ingest_inbox

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    store, net = open_store(home), network()
    cfg = SourceConfig(name="easy-a", location=f"folder:{drop}", options=options)
    limit = {"max_bytes": net.max_bytes(cfg)} if "max_bytes" in options else {}
    with open_inbox(cfg.location, **limit) as inbox:
        results = ingest_inbox(store, net, inbox, cfg, now=NOW, home=home)
    return results, store, home


def test_processed_exports_are_removed_once_the_archive_holds_them(tmp_path: Path) -> None:
    from ingest_fixtures import EASYA, SAMPLES

    from stafet.store import files

    drop = tmp_path / "drop"
    drop.mkdir()
    original = (SAMPLES / EASYA).read_bytes()
    (drop / EASYA).write_bytes(original)
    (result,), store, _home = _ingest_drop(tmp_path, drop)
    assert result.accepted == 4 and not result.rejected
    assert not (drop / EASYA).exists() and not (drop / "processed").exists()  # no clear copy stays
    with store.session() as s:
        kept = Path(files.get(s, result.sha256).archive)
    out = tmp_path / "decrypted"
    with kept.open("rb") as src, out.open("wb") as dst:
        store.vault.decrypt_stream(src, dst)
    assert out.read_bytes() == original


def test_processed_retention_keeps_them_that_long_then_removes_them(tmp_path: Path) -> None:
    from ingest_fixtures import EASYA, SAMPLES

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / EASYA).write_bytes((SAMPLES / EASYA).read_bytes())
    _ingest_drop(tmp_path, drop, processed_retention_days=2)
    kept = drop / "processed" / EASYA
    assert kept.exists() and time.time() - kept.stat().st_mtime < 60  # the clock starts at the move
    old = time.time() - 3 * 86400
    os.utime(kept, (old, old))
    assert _ingest_drop(tmp_path, drop, processed_retention_days=2)[0] == []
    assert not kept.exists()


def test_network_options_for_limits_and_retention_are_checked(tmp_path: Path) -> None:
    from stafet.core.config import PACKAGE_MAX_BYTES, SOURCE_MAX_BYTES, load_network

    net = load_network(_network(tmp_path, sources=[
        {"name": "easy-a", "location": "folder:drop", "max_bytes": 5 * MB, "processed_retention_days": 7},
        {"name": "gymnasium", "location": "folder:drop2"}],
        endpoints={"uu-viborg": {"max_bytes": 1 * MB}}))
    a, b = net.sources
    assert (net.max_bytes(a), net.max_bytes(b)) == (5 * MB, SOURCE_MAX_BYTES)
    assert (a.processed_retention_days, b.processed_retention_days) == (7, 0)
    assert net.max_bytes("uu-viborg") == 1 * MB
    assert load_network(_network(tmp_path)).max_bytes("uu-viborg") == PACKAGE_MAX_BYTES == 25 * MB
    with pytest.raises(ConfigError) as e:
        load_network(_network(tmp_path, sources=[
            {"name": "easy-a", "location": "folder:drop", "max_bytes": 0, "processed_retention_days": -1}],
            endpoints={"uu-viborg": {"max_bytes": "lots"}}))
    for key in ("sources[0].max_bytes", "sources[0].processed_retention_days",
                "endpoints.uu-viborg.max_bytes"):
        assert key in str(e.value)


# ------------------------------------------------- finding 12: a size cap before reading


def test_a_file_over_the_limit_is_refused_unread_and_kept_once(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    _sparse(drop / "junk.eml", 127 * MB)
    inbox = open_inbox(f"folder:{drop}", max_bytes=25 * MB)
    [entry] = inbox.entries()
    assert inbox.too_large(entry)
    with pytest.raises(FileRejected, match="more than this inbox's limit") as e:
        inbox.open("junk.eml")
    assert e.value.rule == "too_large"
    assert inbox.reject("junk.eml", reason=str(e.value)) == "rejected/junk.eml"
    assert [p.name for p in drop.rglob("junk.eml*")] == ["junk.eml", "junk.eml.reason.txt"]
    assert (drop / "rejected" / "junk.eml").stat().st_size == 127 * MB


def test_a_file_that_grows_after_its_check_stops_at_the_limit(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"x" * 1000)
    inbox = FolderInbox(tmp_path, max_bytes=1000)
    with inbox.open("a.csv") as fh:
        with open(tmp_path / "a.csv", "ab") as grow:
            grow.write(b"y" * 5000)
        with pytest.raises(FileRejected, match="limit of 1000 bytes"):
            fh.read()


@real
def test_sftp_refuses_a_file_over_the_limit_unread(sshd: servers.Sshd) -> None:
    folder = sshd.new_folder("big")
    _sparse(folder / "junk.eml", 64 * MB)
    (folder / "ok.eml").write_bytes(EML)
    with _sftp_inbox(sshd, folder, max_bytes=MB) as inbox:
        with pytest.raises(FileRejected, match="more than this inbox's limit") as e:
            inbox.open("junk.eml")
        assert e.value.rule == "too_large"
        assert inbox.read("ok.eml") == EML
        assert inbox.reject("junk.eml", reason=str(e.value)) == "rejected/junk.eml"
    assert (folder / "rejected" / "junk.eml").stat().st_size == 64 * MB


def test_an_oversize_export_is_rejected_unread_and_not_archived(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    name = "779008_haendelser_2026112111.csv"
    _sparse(drop / name, 64 * MB)
    (result,), _store, home = _ingest_drop(tmp_path, drop, max_bytes=MB)
    assert result.rejected and "max_bytes" in result.reason
    assert (drop / "rejected" / name).stat().st_size == 64 * MB and not (drop / name).exists()
    assert "max_bytes" in (drop / "rejected" / f"{name}.reason.txt").read_text()
    assert list((home / "archive").glob("*.enc")) == []  # nothing of it was read, nor kept twice


_RECEIVE = r"""
import json, resource, sys
from stafet.context import open_context
from stafet.exchange.inbox import process_inbox

ctx = open_context(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = process_inbox(ctx, "uu-viborg")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kb": after - before, "rejected": result.rejected}))
"""


@pytest.mark.slow
def test_a_127mb_junk_package_costs_no_memory_and_is_kept_once(demo_net: Any, tmp_path: Path) -> None:
    """Finding 12 as measured: a 127 MB junk .eml took 94 → 558 MB and was kept twice."""
    from stafet.exchange.endpoints import inbox_location

    network, ctx = demo_net
    inbox = Path(ctx.network.locate(inbox_location(ctx, "uu-viborg")).removeprefix("folder:"))
    inbox.mkdir(parents=True, exist_ok=True)
    _sparse(inbox / "junk.eml", 127 * MB)
    env = {**os.environ, "STAFET_KEY_PASSPHRASE": "test-passphrase", "STAFET_HOME": str(ctx.home)}
    run = subprocess.run([sys.executable, "-c", _RECEIVE, network], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["growth_kb"] < 40 * 1024, f"peak RSS grew by {out['growth_kb'] // 1024} MB"
    assert out["rejected"] == {"junk.eml": "too_large"}
    assert (inbox / "rejected" / "junk.eml").stat().st_size == 127 * MB
    assert "too_large" in (inbox / "rejected" / "junk.eml.reason.txt").read_text()
    assert not (inbox / "junk.eml").exists()
    assert list((ctx.home / "rejected").glob("junk*")) == []  # one copy: not also in the home


@real
def test_sftp_processed_retention_and_removal(sshd: servers.Sshd) -> None:
    folder = sshd.new_folder("retention")
    (folder / "a.csv").write_bytes(b"a")
    (folder / "b.csv").write_bytes(b"b")
    old = time.time() - 10 * 86400
    os.utime(folder / "a.csv", (old, old))
    with _sftp_inbox(sshd, folder) as inbox:
        assert inbox.mark_processed("a.csv") == "processed/a.csv"
        kept = folder / "processed" / "a.csv"
        assert time.time() - kept.stat().st_mtime < 60  # its age counts from the move
        assert inbox.purge("processed", 86400) == 0
        os.utime(kept, (old, old))
        assert inbox.purge("processed", 86400) == 1 and not kept.exists()
        inbox.discard("b.csv")
        assert inbox.list() == []
