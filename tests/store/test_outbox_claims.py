"""Outbox claims (migration 0010): on a real PostgreSQL, concurrent sends never get the
same pending handover (``SELECT … FOR UPDATE SKIP LOCKED`` and a lease); on SQLite
``due()`` is as before. And the audit hash chain stays one verifiable chain when many
threads append at once (its advisory lock)."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from stafet.core.vault import Vault
from stafet.store import Store, audit, outbox
from stafet.store.clock import utcnow
from stafet.store.schema import Base, Handover


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


def _handovers(store: Store, n: int, recipient: str = "uu-viborg") -> list[str]:
    ids = [f"PKG-{i:024d}" for i in range(n)]
    with store.session() as s:
        for i, pid in enumerate(ids):
            s.add(Handover(id=pid, handover_key=f"k{i}", sender="jc-viborg", recipient=recipient,
                           youth=f"Y{i}", status="pending",
                           created_at=utcnow() - dt.timedelta(seconds=n - i)))
    return ids


@pytest.mark.postgres
def test_a_second_send_skips_what_the_first_is_claiming(pg: Store) -> None:
    ids = _handovers(pg, 6)
    now = utcnow()
    a, b = pg._sessions(), pg._sessions()
    try:
        got_a = [h.id for h in outbox.due(a, now, claimant="run-a")]   # rows locked, not committed
        got_b = [h.id for h in outbox.due(b, now, claimant="run-b")]   # skipped, not waited for
        assert got_a == ids and got_b == []
        b.rollback()
        a.commit()
        # committed: the lease holds them for run-a
        assert [h.id for h in outbox.due(b, now, claimant="run-b")] == []
        b.rollback()
        # run-a again (a retry of the same run) gets its own rows back
        assert [h.id for h in outbox.due(b, now, claimant="run-a")] == ids
        b.rollback()
        # a run declared dead may be taken over
        assert [h.id for h in outbox.due(b, now, claimant="run-c", takeover=["run-a"])] == ids
        b.commit()
    finally:
        a.close()
        b.close()
    with pg.session() as s:
        assert outbox.claims(s) == {"run-c": 6}
        assert {h.claimed_by for h in s.query(Handover)} == {"run-c"}
        s.query(Handover).update({Handover.claimed_until: utcnow() - dt.timedelta(seconds=1)})
    with pg.session() as s:   # an expired lease: anyone may take them
        assert len(outbox.due(s, now, claimant="run-d")) == 6


@pytest.mark.postgres
def test_concurrent_claimers_split_the_work_without_overlap(pg: Store) -> None:
    ids = _handovers(pg, 200)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def claim(name: str) -> None:
        barrier.wait()
        mine: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with pg.session() as s:
                if not outbox.counts_by_status(s).get("pending"):
                    break
            with pg.session() as s:
                rows = outbox.due(s, utcnow(), claimant=name)
                mine += [h.id for h in rows[:10]]
                for h in rows[:10]:     # "sent" in the same transaction as the claim
                    outbox.sent(s, h.id, recipient=h.recipient, digest="")
                for h in rows[10:]:     # hand back what this claimer will not send
                    h.claimed_by, h.claimed_until = None, None
        got[name] = mine

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [pid for v in got.values() for pid in v]
    assert len(claimed) == len(set(claimed)) == len(ids)     # each once, none lost


def test_sqlite_due_claims_nothing(tmp_path) -> None:
    store = _fresh(f"sqlite:///{tmp_path / 's.db'}")
    ids = _handovers(store, 3)
    with store.session() as s:
        assert [h.id for h in outbox.due(s, utcnow(), claimant="run-a")] == ids
    with store.session() as s:
        assert [h.id for h in outbox.due(s, utcnow(), claimant="run-b")] == ids
        assert {h.claimed_by for h in s.query(Handover)} == {None}
    store.engine.dispose()


@pytest.mark.postgres
def test_the_audit_chain_holds_under_concurrent_appends(pg: Store) -> None:
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def append(i: int) -> None:
        try:
            barrier.wait()
            for j in range(25):
                with pg.session() as s:
                    audit.append(s, f"worker-{i}", "test.append", f"n:{i}:{j}", {"j": j})
                    if j % 5 == 0:
                        audit.append_many(s, f"worker-{i}", [("test.many", f"m:{i}:{j}", {}),
                                                             ("test.many", f"m2:{i}:{j}", {})])
        except BaseException as e:   # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with pg.session() as s:
        assert audit.verify_chain(s) == 6 * (25 + 5 * 2)
