"""Per-endpoint delivery limits across workers, and back-pressure (issue 21).

A real Prefect server (the session's) holds the global concurrency limit
``stafet-endpoint-jobcenter-viborg`` = 1; the store is the session's real PostgreSQL. Two
worker processes each run the ``nightly-partition`` flow (stage ``send``, the same three
recipients: a real flow run on the server each, as a worker would run it) over 30 pending
handovers, claimed in batches of 4 so both processes get some of every recipient's. The
job centre's folder endpoint is made slow (each put sleeps 0.6 s, in the worker processes:
a folder endpoint wrapped slow); every put is logged with its process and its interval.

Checked: at no moment were two deliveries to the slow endpoint under way (over both
processes); both processes delivered to it (the limit was shared, not trivially kept by
one); the other endpoints' packages did not wait behind it (all of them were delivered
before the slow endpoint's serial time had passed, and before its last delivery); every handover was sent
once (audit and folder), none lost.

The packages are withdrawal notices whose bytes were written to the outbox beforehand (a
withdrawal is its own legal basis): the send path puts them as they are. Every process is
stopped by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import servers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]

SLOW, FAST = "jobcenter-viborg", ("779008", "familie-viborg")
PER_RECIPIENT, SLOW_SECONDS = 10, 0.6

WORKER = r"""
import json, os, sys, time
import transports.folder as folder
import stafet.exchange.outbox as exchange_outbox

exchange_outbox.CLAIM_BATCH = 4          # small batches: both processes get some of each recipient's
log, slow = os.environ["LIMIT_LOG"], os.environ["LIMIT_SLOW"]
original = folder.FolderOutlet.put

def put(self, name, data):
    start = time.time()
    if self.path.name == slow:
        time.sleep(float(os.environ["LIMIT_SECONDS"]))
    original(self, name, data)
    with open(log, "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "to": self.path.name, "start": start, "end": time.time()})
                 + "\n")

folder.FolderOutlet.put = put
from flows.partitioned import nightly_partition
go = os.environ["LIMIT_GO"]
open(go + f".ready-{os.getpid()}", "w").close()  # imported: the test may start the race
while not os.path.exists(go):
    time.sleep(0.05)
out = nightly_partition(sys.argv[1], "send", sys.argv[2].split(","))
print("RESULT " + json.dumps(out))
"""


def _database(postgres_url: str) -> tuple[str, Any]:
    import psycopg2
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url)
    name = f"stafet_limits_{secrets.token_hex(4)}"
    conn = psycopg2.connect(host=base.host, port=base.port, user=base.username, password=base.password,
                            dbname=base.database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()

    return base.set(database=name).render_as_string(hide_password=False), drop


def _pending(ctx: Any, home: Path) -> list[str]:
    from stafet.exchange.withdrawals import WITHDRAWAL_RULE
    from stafet.store.clock import utcnow
    from stafet.store.schema import Handover

    ids = []
    (home / "outbox").mkdir(exist_ok=True)
    with ctx.store.session() as s:
        for i in range(PER_RECIPIENT):
            for rcpt in (SLOW, *FAST):
                pid = f"PKG-{secrets.token_hex(12)}"
                (home / "outbox" / f"{pid}.eml").write_bytes(f"package {pid}\n".encode())
                s.add(Handover(id=pid, handover_key=pid, sender="uu-viborg", recipient=rcpt, youth=f"Y{i}",
                               rule=WITHDRAWAL_RULE, status="pending", created_at=utcnow(),
                               package_path=f"outbox/{pid}.eml", digest="d" * 64))
                ids.append(pid)
    return ids


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    now = top = 0
    for _, d in points:
        now += d
        top = max(top, now)
    return top


def test_a_slow_endpoint_is_limited_across_workers_and_the_others_keep_flowing(
        prefect_server: Any, postgres_url: str, demo_template: Path, tmp_path: Path) -> None:
    from sqlalchemy import select

    from stafet.context import open_context
    from stafet.store import audit
    from stafet.store.schema import Handover

    shutil.copytree(demo_template, tmp_path / "n")
    home, demo = tmp_path / "n" / "home", tmp_path / "n" / "demo"
    network = str(demo / "network.yaml")
    for rcpt in (SLOW, *FAST):
        (demo / "inbox" / rcpt).mkdir(parents=True, exist_ok=True)
    url, drop = _database(postgres_url)
    os.environ["STAFET_KEY_PASSPHRASE"] = "test-passphrase"
    try:
        ctx = open_context(network, home=home, database=url)
        ids = _pending(ctx, home)
        ctx.store.engine.dispose()
        limit = f"stafet-endpoint-{SLOW}"
        prefect_server.call("POST", "/v2/concurrency_limits/", {"name": limit, "limit": 1})
        log, go = tmp_path / "puts.jsonl", tmp_path / "go"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
        env.update(prefect_server.env(), PREFECT_HOME=str(tmp_path / "prefect-home"), STAFET_HOME=str(home),
                   STAFET_DATABASE_URL=url, STAFET_KEY_PASSPHRASE="test-passphrase", LIMIT_LOG=str(log),
                   LIMIT_SLOW=SLOW, LIMIT_SECONDS=str(SLOW_SECONDS), LIMIT_GO=str(go),
                   PYTHONPATH=str(ROOT))
        keys = ",".join(sorted((SLOW, *FAST)))
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, network, keys], env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
                 for _ in range(2)]
        try:
            deadline = time.monotonic() + 150   # both processes have imported Prefect and stafet
            while len(list(tmp_path.glob("go.ready-*"))) < len(procs) and time.monotonic() < deadline:
                time.sleep(0.2)
            go.write_text("go")
            outs = []
            for p in procs:
                out, _ = p.communicate(timeout=180)
                outs.append(out.decode(errors="replace"))
                assert p.returncode == 0, outs[-1][-3000:]
        finally:
            for p in procs:
                if p.poll() is None:
                    servers.end_tree(p, 15, timeout=10)
        results = [json.loads(next(x for x in o.splitlines() if x.startswith("RESULT "))[7:]) for o in outs]
        puts = [json.loads(x) for x in log.read_text().splitlines()]
        ctx = open_context(network, home=home, database=url)
        try:
            with ctx.store.session() as s:
                statuses = Counter(h.status for h in s.scalars(select(Handover)))
                sends = Counter(e.subject for e in audit.entries(s, "handover.sent"))
        finally:
            ctx.store.engine.dispose()
    finally:
        os.environ.pop("STAFET_KEY_PASSPHRASE", None)
        drop()

    slow = [p for p in puts if p["to"] == SLOW]
    fast = [p for p in puts if p["to"] != SLOW]
    # at most one delivery to the slow endpoint at any moment, over both processes
    assert _max_overlap([(p["start"], p["end"]) for p in slow]) == 1
    assert len({p["pid"] for p in slow}) == 2, Counter(p["pid"] for p in slow)    # a shared limit
    # the other endpoints did not wait behind it: all delivered before its serial time had
    # passed, and before its last delivery (a process puts a slow package it holds a slot for
    # itself, so the fast ones of that process wait for that one put, not for the endpoint)
    first = min(p["start"] for p in puts)
    assert max(p["end"] for p in fast) - first < PER_RECIPIENT * SLOW_SECONDS, (
        max(p["end"] for p in fast) - first)
    assert max(p["end"] for p in fast) < max(p["end"] for p in slow)
    assert max(p["end"] for p in slow) - first >= PER_RECIPIENT * SLOW_SECONDS   # serialised
    # every handover sent once, none lost
    assert statuses == {"sent": len(ids)}, statuses
    assert sends == {f"handover:{i}": 1 for i in ids}
    assert sum(r["sent"] for r in results) == len(ids) and sum(r["deferred"] for r in results) == 0
    for rcpt in (SLOW, *FAST):
        assert len(list((demo / "inbox" / rcpt).glob("PKG-*.eml"))) == PER_RECIPIENT, rcpt
