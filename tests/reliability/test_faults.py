"""Faults that tests/transports/test_transports.py does not cover: an SMTP connection
reset in the middle of DATA, a locked SQLite store, a PostgreSQL server restarted (and
killed) mid-run, concurrent writers of the audit chain — and the failure path of the
flow itself."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))
import contextlib

import servers
from ingest_fixtures import NOW, SAMPLES, easya_row, network, open_store, write_easya
from sqlalchemy import func, select

from stafet.core.errors import StafetError, TransientError
from stafet.core.vault import Vault
from stafet.ingest.pipeline import ingest_file
from stafet.store.db import Store
from stafet.store.schema import RecordRow, SourceFile
from transports import open_outlet

# --- SMTP: connection reset mid-DATA ------------------------------------------------------


class ResettingSmtp:
    """A minimal SMTP peer on 127.0.0.1: the first ``resets`` sessions are reset (RST) in the
    middle of DATA; later ones accept and keep the message."""

    def __init__(self, resets: int = 1) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.resets, self.messages, self.sessions = resets, [], 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.sessions += 1
            reset = self.sessions <= self.resets
            with contextlib.suppress(OSError):
                self._session(conn, reset)

    def _session(self, conn: socket.socket, reset: bool) -> None:
        f = conn.makefile("rb")
        conn.sendall(b"220 resetting-smtp ready\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line[:4].upper()
            if cmd in (b"EHLO", b"HELO"):
                conn.sendall(b"250-resetting-smtp\r\n250 8BITMIME\r\n")
            elif cmd == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                if reset:
                    f.readline()
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    conn.close()
                    return
                body = []
                while (ln := f.readline()) not in (b".\r\n", b""):
                    body.append(ln)
                self.messages.append(b"".join(body))
                conn.sendall(b"250 stored\r\n")
            elif cmd == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                conn.close()
                return
            else:
                conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.sock.close()


def test_smtp_reset_mid_data_is_transient_and_the_retry_delivers_once() -> None:
    peer = ResettingSmtp(resets=1)
    try:
        outlet = open_outlet(f"smtp://127.0.0.1:{peer.port}", mail_from="a@stafet.example",
                             rcpt_to="b@stafet.example", starttls="never")  # the peer offers no STARTTLS
        data = b"Subject: x\r\n\r\n" + b"line\r\n" * 20000
        with pytest.raises(TransientError):
            outlet.put("PKG-1.eml", data)
        assert peer.messages == []
        outlet.put("PKG-1.eml", data)
        assert len(peer.messages) == 1 and peer.messages[0].count(b"line") == 20000
    finally:
        peer.close()


# --- SQLite locked ---------------------------------------------------------------------------

def test_sqlite_locked_mid_run_waits_then_completes_with_nothing_lost(tmp_path: Path) -> None:
    import sqlite3
    import time

    store = open_store(tmp_path)
    db = tmp_path / "stafet.db"
    locker = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    released = threading.Event()

    def release() -> None:
        time.sleep(1.5)
        locker.execute("COMMIT")
        released.set()

    threading.Thread(target=release).start()
    r = ingest_file(store, network(), SAMPLES / "779008_haendelser_2026112102.csv", now=NOW, home=tmp_path)
    assert released.is_set()
    assert (r.rows, r.accepted, r.rejected) == (4, 4, False)
    locker.close()


def test_sqlite_locked_for_longer_than_the_timeout_is_transient_and_a_rerun_completes(tmp_path: Path) -> None:
    import sqlite3

    store = open_store(tmp_path)
    fast = Store(f"sqlite:///{tmp_path / 'stafet.db'}", store.vault, upgrade=False)
    fast.engine.dispose()
    from sqlalchemy import create_engine

    fast.engine = create_engine(f"sqlite:///{tmp_path / 'stafet.db'}", connect_args={"timeout": 0.3})
    from sqlalchemy.orm import sessionmaker

    fast._sessions = sessionmaker(fast.engine, expire_on_commit=False)
    locker = sqlite3.connect(tmp_path / "stafet.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(TransientError):
        ingest_file(fast, network(), SAMPLES / "779008_haendelser_2026112102.csv", now=NOW, home=tmp_path)
    locker.execute("COMMIT")
    locker.close()
    r = ingest_file(fast, network(), SAMPLES / "779008_haendelser_2026112102.csv", now=NOW, home=tmp_path)
    assert (r.rows, r.accepted, r.rejected, r.duplicate_file) == (4, 4, False, False)
    with fast.session() as s:
        assert s.scalar(select(func.count()).select_from(RecordRow)) == 4
    assert fast.verify_audit_chain() > 0


# --- PostgreSQL restarted / killed mid-run ------------------------------------------------------

def _restart(pg: servers.Postgres, sig: int) -> None:
    """Stop the postmaster with ``sig`` and start it again on the same data and port."""
    assert pg.proc is not None and pg.home is not None
    if sig == signal.SIGKILL:  # a crash: the postmaster and its backends, by pid
        servers.signal_tree(pg.proc.pid, signal.SIGKILL)
    else:
        pg.proc.send_signal(sig)
    pg.proc.wait(timeout=30)
    home = pg.home
    logf = open(home / "postgres.log", "ab")  # noqa: SIM115
    try:
        pg.proc = subprocess.Popen(
            [str(pg.bindir / "postgres"), "-D", str(home / "data"), "-p", str(pg.port),
             "-c", f"listen_addresses={servers.HOST}", "-c", f"unix_socket_directories={home}",
             "-c", "fsync=off", "-c", "max_connections=50"],
            cwd=home, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True,
            **pg._run_as)
    finally:
        logf.close()
    servers.wait_for_port(pg.port, proc=pg.proc)
    import time

    import psycopg2

    deadline = time.monotonic() + 30
    while True:  # accepting connections, not only listening (crash recovery may run first)
        try:
            psycopg2.connect(host=servers.HOST, port=pg.port, user=pg.user, dbname=pg.dbname,
                             connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def private_postgres():
    try:
        pg = servers.Postgres().start()
    except servers.ServerUnavailable as e:
        servers.peer_unavailable("PostgreSQL", e)
    yield pg
    pg.stop()


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_restarted_between_and_killed_during_ingest_rerun_loses_nothing(private_postgres,
                                                                                 tmp_path: Path) -> None:
    pg = private_postgres
    store = Store(pg.url, Vault(bytes(range(32))))
    net = network()
    r = ingest_file(store, net, SAMPLES / "779008_haendelser_2026112102.csv", now=NOW, home=tmp_path)
    assert r.accepted == 4
    _restart(pg, signal.SIGINT)  # a clean restart between two files: the pool reconnects
    r = ingest_file(store, net, SAMPLES / "jobcenter_791_paalaeg_20261121.csv", now=NOW, home=tmp_path)
    assert not r.rejected and r.rows > 0
    # a big file, and the server killed while it is being stored
    rows = [easya_row(cpr=f"{(i % 28) + 1:02d}0{(i % 9) + 1}08-{4000 + i % 5000:04d}", event="OPTAG",
                      date="19-11-2026", start="19-11-2026", reason="", text="", absence="",
                      note=f"n{i}") for i in range(15000)]
    big = write_easya(tmp_path / "779008_haendelser_2026112206.csv", rows)
    errors: list[BaseException] = []
    done = []

    def run() -> None:
        try:
            done.append(ingest_file(store, net, big, now=NOW, home=tmp_path))
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    import time

    time.sleep(1.0)
    _restart(pg, signal.SIGKILL)
    t.join(120)
    assert not t.is_alive()
    if errors:  # killed mid-run: a typed, retriable failure, nothing half-stored
        assert isinstance(errors[0], TransientError), repr(errors[0])
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(RecordRow).where(
                RecordRow.source_file == big.name)) == 0
        done.append(ingest_file(store, net, big, now=NOW, home=tmp_path))  # the rerun
    final = done[-1]
    assert not final.rejected and final.rows == 15000
    assert final.rows == final.accepted + final.duplicates + final.updated + final.quarantined
    with store.session() as s:
        assert {f.name: f.status for f in s.scalars(select(SourceFile))}[big.name] == "processed"
        stored = s.scalar(select(func.count()).select_from(RecordRow)
                          .where(RecordRow.source_file == big.name))
    assert stored == final.accepted  # every new record of the file is stored once
    assert ingest_file(store, net, big, now=NOW, home=tmp_path).duplicate_file
    assert store.verify_audit_chain() > 0
    store.engine.dispose()


# --- the audit chain under concurrent writers ----------------------------------------------------

def test_audit_chain_survives_concurrent_writers(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        for j in range(25):
            try:
                with store.session() as s:
                    store.audit(s, f"thread{i}", "test", f"s{j}", {})
            except StafetError as e:
                errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.verify_audit_chain() == 100 - len(errors)


# --- the flow's own failure path ------------------------------------------------------------------

def test_flow_failure_text_of_a_typed_error() -> None:
    from flows.nightly import _why

    assert _why(TransientError("SFTP host down", endpoint="sftp://x")) == \
        "TransientError: SFTP host down (endpoint=sftp://x)"
    assert _why(ValueError("row (120308-4127, ...)")) == "ValueError"  # driver text may quote values
