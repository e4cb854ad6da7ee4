"""Inbox claims (migration 0011): on a real PostgreSQL, concurrent receive passes over one inbox
never get the same file (``SELECT … FOR UPDATE SKIP LOCKED`` and a lease), nothing is left
behind, and a claim is released when the file has left; on SQLite nothing is claimed.

The claimers are threads, each with its own connection, over one real folder inbox
(:class:`transports.folder.FolderInbox`): each lists, claims through the receive pass's own
step (:func:`stafet.exchange.inbox._claim`), "receives" what it got by moving the file to
``processed/`` as a pass does, and releases.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, select, text

from stafet.core.vault import Vault
from stafet.exchange.inbox import _claim, _release
from stafet.store import Store, inbox
from stafet.store.clock import utcnow
from stafet.store.schema import Base, InboxClaim
from transports.folder import FolderInbox


def _fresh(url: str) -> Store:
    eng = create_engine(url)
    Base.metadata.drop_all(eng)
    with eng.begin() as c:
        c.execute(text("DROP TABLE IF EXISTS alembic_version"))
    eng.dispose()
    return Store(url, Vault(os.urandom(32)))


@pytest.fixture
def pg(postgres_url: str):
    store = _fresh(postgres_url)
    yield store
    store.engine.dispose()


def _files(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"PKG-{i:024d}.eml" for i in range(n)]
    for name in names:
        (folder / name).write_bytes(b"x")
    return names


@pytest.mark.postgres
def test_a_second_pass_skips_what_the_first_is_claiming(pg: Store) -> None:
    names = [f"PKG-{i:024d}.eml" for i in range(5)]
    with pg.session() as s:
        inbox.register_files(s, "uu-viborg", names)
    with pg.session() as s:   # registering twice is harmless
        inbox.register_files(s, "uu-viborg", names[:2])
    a, b = pg._sessions(), pg._sessions()
    try:
        assert inbox.claim_files(a, "uu-viborg", names[:3], claimant="run-a") == names[:3]  # locked
        assert inbox.claim_files(b, "uu-viborg", names, claimant="run-b") == names[3:]      # skipped
        b.commit()
        a.commit()
        # committed: run-a's lease holds against run-b; run-a (a retry) and a takeover get them
        assert inbox.claim_files(b, "uu-viborg", names, claimant="run-b") == names[3:]
        assert inbox.claim_files(b, "uu-viborg", names[:3], claimant="run-a") == names[:3]
        b.rollback()
        assert inbox.claim_files(b, "uu-viborg", names[:3], claimant="run-c", takeover=["run-a"]) == names[:3]
        b.commit()
        # another organisation's inbox is apart
        inbox.register_files(b, "uu-skive", names[:1])
        assert inbox.claim_files(b, "uu-skive", names[:1], claimant="run-a") == names[:1]
        b.commit()
    finally:
        a.close()
        b.close()
    with pg.session() as s:
        assert inbox.inbox_claims(s) == {"run-c": 3, "run-b": 2, "run-a": 1}
        assert inbox.release_files(s, "uu-viborg", names, claimant="run-b") == 2   # only its own
    with pg.session() as s:
        s.query(InboxClaim).update({InboxClaim.claimed_until: utcnow() - dt.timedelta(seconds=1)})
    with pg.session() as s:   # an expired lease: anyone may take the file
        assert inbox.claim_files(s, "uu-viborg", names, claimant="run-d") == names[:3]


@pytest.mark.postgres
def test_concurrent_passes_over_one_inbox_receive_each_file_once(pg: Store, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    names = _files(folder, 240)
    ctx = SimpleNamespace(store=pg)
    got: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def receive(who: str) -> None:
        mine: list[str] = []
        try:
            box = FolderInbox(folder)
            barrier.wait()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                listed = box.list("*.eml")
                if not listed:
                    break
                claimed = _claim(ctx, "uu-viborg", box, listed[:60], who, ())
                try:
                    for name in claimed:
                        box.read(name)              # a claimed file is there to be read
                        mine.append(name)
                        box.mark_processed(name)    # the file leaves the inbox last
                finally:
                    _release(ctx, "uu-viborg", claimed, who)
        except BaseException as e:   # pragma: no cover - reported below
            errors.append(e)
        got[who] = mine

    threads = [threading.Thread(target=receive, args=(f"worker-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    received = Counter(n for v in got.values() for n in v)
    assert set(received) == set(names)                       # 0 lost
    assert [n for n, c in received.items() if c > 1] == []    # 0 received twice
    assert sum(1 for v in got.values() if v) >= 2              # the work was shared
    assert sorted(p.name for p in (folder / "processed").iterdir()) == names
    with pg.session() as s:                                   # every claim released
        assert list(s.scalars(select(InboxClaim))) == []


@pytest.mark.postgres
def test_a_file_moved_away_meanwhile_is_let_go(pg: Store, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    names = _files(folder, 3)
    box = FolderInbox(folder)
    listed = box.list("*.eml")
    box.mark_processed(names[1])             # another pass received it after this listing
    ctx = SimpleNamespace(store=pg)
    assert _claim(ctx, "uu-viborg", box, listed, "run-a", ()) == [names[0], names[2]]
    with pg.session() as s:
        assert {c.name for c in s.scalars(select(InboxClaim).where(InboxClaim.claimed_by == "run-a"))} == {
            names[0], names[2]}


def test_sqlite_claims_nothing(tmp_path: Path) -> None:
    store = _fresh(f"sqlite:///{tmp_path / 's.db'}")
    names = _files(tmp_path / "inbox", 3)
    box = FolderInbox(tmp_path / "inbox")
    ctx = SimpleNamespace(store=store)
    assert _claim(ctx, "uu-viborg", box, box.list("*.eml"), "run-a", ()) == names
    assert _claim(ctx, "uu-viborg", box, box.list("*.eml"), "run-b", ()) == names
    with store.session() as s:
        assert list(s.scalars(select(InboxClaim))) == []
    store.engine.dispose()
