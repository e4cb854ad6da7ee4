"""Transports against real peers: local folders, OpenSSH sshd, aiosmtpd, PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import paramiko
import pytest
import servers
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from stafet.core.errors import ConfigError, DeliveryFailed, FileRejected, TransientError
from transports import (
    FolderInbox,
    FolderOutlet,
    SftpInbox,
    SftpOutlet,
    SmtpOutlet,
    check_name,
    open_inbox,
    open_outlet,
)

real = pytest.mark.slow  # starts or uses a real server

UNSAFE = ["../etc/passwd", "a/b.csv", "..", ".", "", "a\\b.csv", "x/../../y", "ok..csv", "nul\0.csv"]
EML = b"From: a@x.dk\r\nTo: b@y.dk\r\nSubject: package\r\nMIME-Version: 1.0\r\n\r\nbody\r\n"


def _drop(folder: Path, name: str, data: bytes) -> Path:
    p = folder / name
    p.write_bytes(data)
    return p


# --------------------------------------------------------------------------- folder inbox


def test_folder_inbox_lists_matching_regular_files_sorted(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "c.xml", ".a.csv.part"):
        _drop(tmp_path, name, b"x")
    (tmp_path / "processed").mkdir()
    (tmp_path / "dir.csv").mkdir()
    inbox = FolderInbox(tmp_path)
    assert inbox.list("*.csv") == ["a.csv", "b.csv"]
    assert inbox.list() == ["a.csv", "b.csv", "c.xml"]
    [entry] = inbox.entries("c.*")
    assert (entry.name, entry.size) == ("c.xml", 1)


def test_folder_inbox_min_age_skips_files_still_being_written(tmp_path: Path) -> None:
    old = _drop(tmp_path, "old.csv", b"x")
    _drop(tmp_path, "new.csv", b"x")
    os.utime(old, (time.time() - 120, time.time() - 120))
    assert FolderInbox(tmp_path).list("*.csv", min_age=60) == ["old.csv"]


def test_folder_inbox_streams_and_marks_processed(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    _drop(tmp_path, "export.xml", data)
    inbox = open_inbox(f"folder:{tmp_path}")
    h = hashlib.sha256()
    with inbox.open("export.xml") as fh:
        while chunk := fh.read(65536):
            h.update(chunk)
    assert h.digest() == hashlib.sha256(data).digest()
    assert inbox.mark_processed("export.xml") == "processed/export.xml"
    assert (tmp_path / "processed" / "export.xml").read_bytes() == data
    assert inbox.list() == []
    # the same name delivered again keeps both copies
    _drop(tmp_path, "export.xml", b"second")
    assert inbox.mark_processed("export.xml") == "processed/export.1.xml"
    assert (tmp_path / "processed" / "export.1.xml").read_bytes() == b"second"


def test_folder_inbox_reject_moves_and_writes_redacted_reason(tmp_path: Path) -> None:
    _drop(tmp_path, "bad.csv", b"x")
    inbox = FolderInbox(tmp_path)
    assert inbox.reject("bad.csv", reason="row 3: CPR 010203-1234 is not valid") == "rejected/bad.csv"
    assert (tmp_path / "rejected" / "bad.csv").exists()
    reason = (tmp_path / "rejected" / "bad.csv.reason.txt").read_text()
    assert "row 3" in reason and "1234" not in reason


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused_everywhere(tmp_path: Path, name: str) -> None:
    inbox, outlet = FolderInbox(tmp_path), FolderOutlet(tmp_path / "out")
    for call in (lambda: inbox.open(name), lambda: inbox.mark_processed(name),
                 lambda: inbox.reject(name), lambda: outlet.put(name, b"x")):
        with pytest.raises(FileRejected, match="unsafe file name") as e:
            call()
        assert e.value.rule == "file_name"
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_check_name_accepts_plain_names() -> None:
    assert check_name("HO-2026-0001.eml") == "HO-2026-0001.eml"
    assert check_name(".hidden") == ".hidden"


def test_symlinked_inbox_entries_are_refused(tmp_path: Path) -> None:
    """A symlink is never followed, wherever it leads (see also tests/transports/test_hardening.py)."""
    inbox_dir, outside = tmp_path / "inbox", tmp_path / "secret.txt"
    inbox_dir.mkdir()
    outside.write_bytes(b"not for you")
    (inbox_dir / "evil.csv").symlink_to(outside)
    _drop(inbox_dir, "real.csv", b"ok")
    (inbox_dir / "alias.csv").symlink_to(inbox_dir / "real.csv")
    inbox = FolderInbox(inbox_dir)
    assert inbox.list("*.csv") == ["alias.csv", "evil.csv", "real.csv"]
    for link in ("evil.csv", "alias.csv"):
        with pytest.raises(FileRejected, match="is a symlink") as e:
            inbox.open(link)
        assert e.value.rule == "file_name"
    assert inbox.read("real.csv") == b"ok"
    # the link itself can be moved aside; its target is untouched
    assert inbox.reject("evil.csv") == "rejected/evil.csv"
    assert outside.read_bytes() == b"not for you"


def test_missing_inbox_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        FolderInbox(tmp_path / "nope").list()


# --------------------------------------------------------------------------- folder outlet


def test_folder_outlet_put_is_atomic_and_replaces(tmp_path: Path) -> None:
    outlet = open_outlet(f"folder:{tmp_path / 'out'}", mail_from="a@x.dk", rcpt_to="b@y.dk",
                         host_key="", identity="")
    outlet.put("p.eml", EML)
    outlet.put("p.eml", EML + b"v2")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["p.eml"]
    assert (tmp_path / "out" / "p.eml").read_bytes() == EML + b"v2"


def test_folder_outlet_failed_put_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "p.eml").mkdir(parents=True)  # the rename into place must fail
    with pytest.raises(TransientError):
        FolderOutlet(out).put("p.eml", EML)
    assert [p.name for p in out.iterdir()] == ["p.eml"]  # no temp left behind
    assert (out / "p.eml").is_dir()


# --------------------------------------------------------------------------- factories


def test_factories_validate_endpoints_and_options(tmp_path: Path) -> None:
    assert isinstance(open_inbox(f"folder:{tmp_path}"), FolderInbox)
    with pytest.raises(ConfigError, match="must start with"):
        open_outlet("ftp://x/y")
    with pytest.raises(ConfigError, match="unknown option"):
        open_outlet(f"folder:{tmp_path}", starttls="auto")
    with pytest.raises(ConfigError, match=r"unknown option.*starttl"):
        open_outlet("smtp://127.0.0.1:25", mail_from="a@x.dk", rcpt_to="b@y.dk", starttl="auto")
    with pytest.raises(ConfigError, match="mail_from"):
        open_outlet("smtp://127.0.0.1:25", rcpt_to="b@y.dk")
    with pytest.raises(ConfigError, match="cannot read an inbox from smtp"):
        open_inbox("smtp://127.0.0.1:25")
    with pytest.raises(ConfigError, match="no passwords"):
        open_inbox("sftp://u:secret@127.0.0.1/x", host_key="ssh-ed25519 AAAA", identity="k")
    with pytest.raises(ConfigError) as e:
        open_inbox("sftp://u:secret@127.0.0.1/x")
    assert "secret" not in str(e.value)
    with pytest.raises(ConfigError, match="host key pinned"):
        open_inbox("sftp://u@127.0.0.1:2222/x", identity="k")
    with pytest.raises(ConfigError, match="needs user and host"):
        open_outlet("sftp://127.0.0.1/x")
    outlet = open_outlet("smtp://127.0.0.1:2525", mail_from="a@x.dk", rcpt_to="b@y.dk", timeout=5)
    assert isinstance(outlet, SmtpOutlet) and (outlet.host, outlet.port) == ("127.0.0.1", 2525)


def test_login_settings_go_to_every_factory_and_only_sftp_uses_them(tmp_path: Path) -> None:
    """``Network.sftp_login`` hands host_key, identity and passphrase to whichever endpoint."""
    login = {"host_key": "ssh-ed25519 AAAA", "identity": str(tmp_path / "id"), "passphrase": "p"}
    assert isinstance(open_inbox(f"folder:{tmp_path}", **login), FolderInbox)
    assert isinstance(open_outlet(f"folder:{tmp_path}", **login), FolderOutlet)
    assert isinstance(open_outlet("smtp://127.0.0.1:2525", mail_from="a@x.dk", rcpt_to="b@y.dk",
                                  **login), SmtpOutlet)
    # An encrypted identity key: the passphrase reaches it through open_inbox / open_outlet.
    host_key = servers.make_ed25519_key(tmp_path / "host")
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "id").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"p")))
    url = "sftp://u@127.0.0.1:2222/x"
    with pytest.raises(ConfigError, match="encrypted: give its passphrase"):
        open_inbox(url, **{**login, "host_key": host_key, "passphrase": None})
    assert isinstance(open_inbox(url, **{**login, "host_key": host_key}), SftpInbox)  # no connection yet
    assert isinstance(open_outlet(url, **{**login, "host_key": host_key}), SftpOutlet)


# --------------------------------------------------------------------------- SFTP


def _sftp_inbox(sshd: servers.Sshd, folder: Path, **kw: object) -> SftpInbox:
    inbox = open_inbox(sshd.url(folder), host_key=sshd.host_key, identity=str(sshd.client_key), **kw)
    assert isinstance(inbox, SftpInbox)
    return inbox


@real
def test_sftp_logs_in_with_an_encrypted_identity_and_its_passphrase(sshd: servers.Sshd,
                                                                    tmp_path: Path) -> None:
    key = serialization.load_ssh_private_key(sshd.client_key.read_bytes(), None)
    encrypted = tmp_path / "id_encrypted"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                            serialization.BestAvailableEncryption(b"kodeord")))
    folder = sshd.new_folder("encrypted-id")
    with open_outlet(sshd.url(folder), host_key=sshd.host_key, identity=str(encrypted),
                     passphrase="kodeord") as out:
        out.put("a.eml", EML)
    assert (folder / "a.eml").read_bytes() == EML


@real
def test_sftp_inbox_lists_streams_and_moves(sshd: servers.Sshd) -> None:
    folder = sshd.new_folder("inbox")
    big = os.urandom(9 * 1024 * 1024 + 12345)  # crosses several read windows
    _drop(folder, "big.xml", big)
    _drop(folder, "b.csv", b"b")
    _drop(folder, ".b.csv.part", b"partial")
    (folder / "sub.csv").mkdir()
    with _sftp_inbox(sshd, folder) as inbox:
        assert inbox.list("*.csv") == ["b.csv"]
        assert [(e.name, e.size) for e in inbox.entries("*.xml")] == [("big.xml", len(big))]
        h = hashlib.sha256()
        with inbox.open("big.xml") as fh:
            while chunk := fh.read(100_000):
                h.update(chunk)
        assert h.digest() == hashlib.sha256(big).digest()
        assert inbox.mark_processed("big.xml") == "processed/big.xml"
        assert inbox.reject("b.csv", reason="bad header") == "rejected/b.csv"
        assert inbox.list() == []
        _drop(folder, "big.xml", b"again")
        assert inbox.mark_processed("big.xml") == "processed/big.1.xml"
    assert (folder / "processed" / "big.xml").read_bytes() == big
    assert (folder / "processed" / "big.1.xml").read_bytes() == b"again"
    assert (folder / "rejected" / "b.csv.reason.txt").read_text() == "bad header\n"


@real
def test_sftp_inbox_refuses_traversal_and_symlinks(sshd: servers.Sshd, tmp_path: Path) -> None:
    folder = sshd.new_folder("inbox")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    (folder / "evil.csv").symlink_to(secret)
    (folder / "escape.csv").symlink_to("../../" + secret.name)
    _drop(folder, "ok.csv", b"ok")
    (folder / "alias.csv").symlink_to(folder / "ok.csv")
    with _sftp_inbox(sshd, folder) as inbox:
        assert inbox.list() == ["alias.csv", "escape.csv", "evil.csv", "ok.csv"]
        for name in ("evil.csv", "escape.csv", "alias.csv"):
            with pytest.raises(FileRejected, match="is a symlink"):
                inbox.open(name)
        assert inbox.read("ok.csv") == b"ok"
        for name in ("../" + folder.name + "/ok.csv", "..", "a/b"):
            with pytest.raises(FileRejected, match="unsafe file name"):
                inbox.open(name)
        with pytest.raises(TransientError, match="not found"):
            inbox.open("gone.csv")


@real
def test_sftp_unknown_host_key_is_refused(sshd: servers.Sshd, tmp_path: Path) -> None:
    other = servers.make_ed25519_key(tmp_path / "other_host_key")
    inbox = open_inbox(sshd.url(sshd.root), host_key=other, identity=str(sshd.client_key))
    with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{sshd.port}.*does not match the pinned"):
        inbox.list()


@real
def test_sftp_host_key_of_another_type_is_refused(sshd: servers.Sshd) -> None:
    rsa = paramiko.RSAKey.generate(2048)
    line = f"{rsa.get_name()} {rsa.get_base64()}"
    inbox = open_inbox(sshd.url(sshd.root), host_key=line, identity=str(sshd.client_key))
    with pytest.raises(ConfigError, match=rf"127\.0\.0\.1:{sshd.port}.*does not match the pinned"):
        inbox.list()


@real
def test_sftp_garbage_host_key_is_a_config_error(sshd: servers.Sshd) -> None:
    with pytest.raises(ConfigError, match="not a valid ssh-ed25519 key"):
        open_inbox(sshd.url(sshd.root), host_key="ssh-ed25519 bm90IGEga2V5",
                   identity=str(sshd.client_key))


@real
def test_sftp_wrong_client_key_is_refused(sshd: servers.Sshd, tmp_path: Path) -> None:
    servers.make_ed25519_key(tmp_path / "not_authorised")
    outlet = open_outlet(sshd.url(sshd.root), host_key=sshd.host_key,
                         identity=str(tmp_path / "not_authorised"))
    with pytest.raises(ConfigError, match="refused the identity key"):
        outlet.put("x.eml", EML)


@real
def test_sftp_missing_identity_file_is_a_config_error(sshd: servers.Sshd, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="identity key file not found"):
        open_outlet(sshd.url(sshd.root), host_key=sshd.host_key, identity=str(tmp_path / "nope"))


@real
def test_sftp_nothing_listening_is_transient(sshd: servers.Sshd) -> None:
    url = sshd.url(sshd.root).replace(f":{sshd.port}/", f":{servers.free_port()}/")
    inbox = open_inbox(url, host_key=sshd.host_key, identity=str(sshd.client_key), connect_timeout=3)
    with pytest.raises(TransientError, match="cannot connect"):
        inbox.list()


@real
def test_sftp_hung_server_times_out_as_transient(make_sshd) -> None:  # type: ignore[no-untyped-def]
    server: servers.Sshd = make_sshd()
    folder = server.new_folder("in")
    inbox = open_inbox(server.url(folder), host_key=server.host_key, identity=str(server.client_key),
                       connect_timeout=1, timeout=1)
    assert inbox.list() == []
    server.pause()
    try:
        for _ in range(2):  # an open connection, then a new one (no banner)
            t0 = time.monotonic()
            with pytest.raises(TransientError):
                inbox.list()
            assert time.monotonic() - t0 < 5
    finally:
        server.resume()
    assert inbox.list() == []
    inbox.close()


@real
def test_sftp_outlet_put_replaces_atomically(sshd: servers.Sshd) -> None:
    folder = sshd.new_folder("out")
    with open_outlet(sshd.url(folder), host_key=sshd.host_key, identity=str(sshd.client_key)) as out:
        assert isinstance(out, SftpOutlet)
        out.put("p.eml", EML)
        out.put("p.eml", EML + b"v2")  # posix_rename replaces an existing file
        out.put("q.eml", b"")
    assert sorted(p.name for p in folder.iterdir()) == ["p.eml", "q.eml"]
    assert (folder / "p.eml").read_bytes() == EML + b"v2"
    # the receiving side reads it through the same class
    with _sftp_inbox(sshd, folder) as inbox:
        assert inbox.list("*.eml") == ["p.eml", "q.eml"]


@real
def test_sftp_outlet_into_missing_folder_is_a_config_error(sshd: servers.Sshd) -> None:
    out = open_outlet(sshd.url(sshd.root / "no-such-dir"), host_key=sshd.host_key,
                      identity=str(sshd.client_key))
    with pytest.raises(ConfigError, match="not found"):
        out.put("p.eml", EML)


@real
def test_sftp_outlet_killed_server_mid_upload_leaves_nothing_under_the_name(make_sshd) -> None:  # type: ignore[no-untyped-def]
    server: servers.Sshd = make_sshd()
    folder = server.new_folder("out")
    outlet = open_outlet(server.url(folder), host_key=server.host_key,
                         identity=str(server.client_key), timeout=10)
    data = os.urandom(96 * 1024 * 1024)
    errors: list[BaseException] = []

    def upload() -> None:
        try:
            outlet.put("big.eml", data)
        except BaseException as e:  # handed to the test thread
            errors.append(e)

    t = threading.Thread(target=upload)
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        parts = [p for p in folder.iterdir() if p.name.endswith(".part")]
        if parts and parts[0].stat().st_size > 4 * 1024 * 1024:
            break
        if not t.is_alive():
            pytest.fail(f"the upload ended before the kill: {errors}")
        time.sleep(0.005)
    else:
        pytest.fail("the upload never started")
    assert parts[0].name.startswith(".big.eml.")
    assert not (folder / "big.eml").exists()
    server.kill()
    t.join(30)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], TransientError), errors
    assert not (folder / "big.eml").exists()
    assert all(p.name.startswith(".") for p in folder.iterdir())  # only the hidden temp
    assert FolderInbox(folder).list() == []

    server.start()  # same port, same keys
    outlet.put("big.eml", EML)  # the same outlet reconnects
    assert (folder / "big.eml").read_bytes() == EML
    outlet.close()


# --------------------------------------------------------------------------- SMTP


def _smtp(server: servers.SmtpServer, **kw: object) -> SmtpOutlet:
    if server.cafile is None:  # a test server without STARTTLS: say so (STARTTLS is required by default)
        kw.setdefault("starttls", "never")
    out = open_outlet(server.endpoint, mail_from="stafet@ung.kommune.dk",
                      rcpt_to="modtag@skole.dk", timeout=10, **kw)
    assert isinstance(out, SmtpOutlet)
    return out


@real
def test_smtp_delivers_once(smtp_server: servers.SmtpServer) -> None:
    _smtp(smtp_server).put("p.eml", EML)
    assert smtp_server.messages() == [EML]
    [env] = smtp_server.envelopes()
    assert env["mail_from"] == "stafet@ung.kommune.dk" and env["rcpt_tos"] == ["modtag@skole.dk"]
    assert env["tls"] is False


@real
@pytest.mark.parametrize("code", [421, 451])
def test_smtp_4xx_is_transient_and_a_retry_delivers(smtp_server: servers.SmtpServer, code: int) -> None:
    smtp_server.fail_next(code)
    out = _smtp(smtp_server)
    with pytest.raises(TransientError, match=str(code)) as e:
        out.put("p.eml", EML)
    assert "body" not in str(e.value)
    assert smtp_server.messages() == []
    out.put("p.eml", EML)
    assert smtp_server.messages() == [EML]


@real
def test_smtp_5xx_is_delivery_failed_with_server_text(smtp_server: servers.SmtpServer) -> None:
    smtp_server.fail_next("550 5.7.1 Mailbox policy says no")
    with pytest.raises(DeliveryFailed, match=r"550 5\.7\.1 Mailbox policy says no"):
        _smtp(smtp_server).put("p.eml", EML)
    assert smtp_server.messages() == []


@real
def test_smtp_starttls_when_offered(make_smtp_server) -> None:  # type: ignore[no-untyped-def]
    server: servers.SmtpServer = make_smtp_server(tls=True)
    _smtp(server, cafile=str(server.cafile)).put("p.eml", EML)
    assert [e["tls"] for e in server.envelopes()] == [True]
    # an untrusted certificate is a permanent failure, and nothing is sent in clear
    with pytest.raises(DeliveryFailed, match="certificate is not trusted"):
        _smtp(server).put("p.eml", EML)
    _smtp(server, starttls="never").put("p.eml", EML)
    assert [e["tls"] for e in server.envelopes()] == [True, False]


@real
def test_smtp_require_tls_without_starttls_refuses(smtp_server: servers.SmtpServer) -> None:
    with pytest.raises(DeliveryFailed, match="does not offer STARTTLS"):
        _smtp(smtp_server, starttls="require").put("p.eml", EML)
    assert smtp_server.messages() == []


@real
def test_smtp_server_down_is_transient(smtp_server: servers.SmtpServer) -> None:
    out = _smtp(smtp_server)
    smtp_server.kill()
    with pytest.raises(TransientError, match="SMTP delivery failed"):
        out.put("p.eml", EML)


# --------------------------------------------------------------------------- PostgreSQL


@real
@pytest.mark.postgres
def test_postgres_smoke(postgres_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar() == 1
            assert conn.execute(sa.text("select current_database()")).scalar() == engine.url.database
    finally:
        engine.dispose()
