"""One night spread over the work pool, and a worker killed mid-night (issue 21).

A real Prefect server and two, then four, real process workers (``prefect worker start
--pool stafet --type process``), the stafet store on the session's real PostgreSQL (fresh
databases for each worker count), ``prefect.yaml`` as written (the helpers and the
``databases`` fixture are those of ``tests/flows/test_prefect_server.py``).
``nightly-partitioned`` is run with at most as many partitions per stage as there are
workers; once a send (or else receive) partition runs on a worker that does not host the
parent, that worker and its flow-run processes are killed (SIGKILL by PID, as if the
machine went away). The parent sees the worker go OFFLINE (heartbeats every 2 s), marks
the child Crashed and starts the partition again on the surviving worker, taking over
the dead run's outbox claims.

Checked: the night completes; the killed partition's run is Crashed and its re-run
Completed; no handover is left pending (0 lost); every package sent is audited as sent
exactly once and lies once in its recipient's inbox folder (0 duplicates); the sends were
claimed by the send partitions' flow runs; the audit chain verifies as one chain.

Every process is stopped by PID.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import signal
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import servers

_spec = importlib.util.spec_from_file_location("prefect_server_helpers",
                                               Path(__file__).with_name("test_prefect_server.py"))
assert _spec and _spec.loader
_h = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
if not hasattr(_h, "Proc"):
    _spec.loader.exec_module(_h)

pytestmark = pytest.mark.slow

_fresh_databases = getattr(_h.databases, "_get_wrapped_function", lambda: _h.databases)()
NIGHT_TIMEOUT = 300.0  # a bound for a hung night, not a speed target (a loaded machine takes 2×)
KILL_IN = ("send:", "receive:")   # mid-send: the re-run must take over the dead run's outbox claims


@pytest.fixture(scope="module", params=[2, 4], ids=["2-workers", "4-workers"])
def n_workers(request: pytest.FixtureRequest) -> int:
    """How many workers share the night."""
    return int(request.param)


@pytest.fixture(scope="module")
def databases(request: pytest.FixtureRequest, n_workers: int) -> Iterator[Any]:
    """Two fresh PostgreSQL databases for each worker count (``test_prefect_server.databases``)."""
    yield from _fresh_databases(request)


@dataclass
class Run:
    demo: Path
    home: Path
    network: str
    secret: str
    dbs: Any
    api: str
    procs: dict[str, Any]
    workers: tuple[str, ...] = ()
    parent: dict[str, Any] = field(default_factory=dict)
    children: list[dict[str, Any]] = field(default_factory=list)
    killed: str = ""
    killed_run: dict[str, Any] = field(default_factory=dict)
    artifact: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _api(api: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{api}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def _children(api: str) -> list[dict[str, Any]]:
    return _api(api, "POST", "/flow_runs/filter",
                {"flow_runs": {"tags": {"all_": ["stafet-partition"]}}, "limit": 200})


def _tails(procs: dict[str, Any]) -> str:
    return "\n".join(p.tail(2500) for p in procs.values())


@pytest.fixture(scope="module")
def run(databases: Any, n_workers: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from stafet.demo.network import setup_demo

    if not databases.stafet_url:
        pytest.skip("the partitioned night claims outbox rows on PostgreSQL (STAFET_TEST_PREFECT_SQLITE set)")
    t0 = time.monotonic()
    tmp = tmp_path_factory.mktemp(f"partitioned-{n_workers}")
    WORKERS = tuple(f"part-worker-{chr(97 + i)}" for i in range(n_workers))
    port = servers.free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    base.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PYTHONUNBUFFERED="1")
    server_env = {**base, "PREFECT_HOME": str(tmp / "server-home"),
                  "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
                  "PREFECT_API_DATABASE_CONNECTION_URL": databases.prefect_url}
    client_env = {**base, "PREFECT_HOME": str(tmp / "client-home"), "PREFECT_API_URL": api}

    demo, home = tmp / "demo", tmp / "stafet-home"
    secret, passphrase = secrets.token_hex(32), secrets.token_urlsafe(24)
    saved = {k: os.environ.get(k) for k in ("STAFET_SECRET", "STAFET_KEY_PASSPHRASE", "STAFET_HOME")}
    os.environ.update(STAFET_SECRET=secret, STAFET_KEY_PASSPHRASE=passphrase, STAFET_HOME=str(home))
    try:
        network = str(setup_demo(demo, home, bits=2048))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    procs: dict[str, Any] = {}
    r = Run(demo=demo, home=home, network=network, secret=secret, dbs=databases, api=api, procs=procs,
            workers=WORKERS)
    try:
        procs["server"] = _h.Proc("server", [_h.PREFECT, "server", "start", "--host", "127.0.0.1", "--port",
                                             str(port)], server_env, tmp / "server.log", tmp)
        r.timings["server"] = _h._wait_healthy(api, procs["server"])
        _h._run([sys.executable, "-c", "import sys; from prefect.blocks.system import Secret; "
                 "Secret(value=sys.argv[1]).save('stafet-network-secret'); "
                 "Secret(value=sys.argv[2]).save('stafet-key-passphrase'); "
                 "Secret(value=sys.argv[3]).save('stafet-database-url')",  # prefect.yaml names the block
                 secret, passphrase, databases.stafet_url], client_env)
        _h._run([_h.PREFECT, "work-pool", "create", "stafet", "--type", "process"], client_env)
        deploy_env = {**client_env, "STAFET_CHECKOUT": str(_h.ROOT), "STAFET_NETWORK": network,
                      "STAFET_HOME": str(home), "STAFET_DATABASE_URL": databases.stafet_url}
        _h._run([_h.PREFECT, "--no-prompt", "deploy", "--name", "nightly-partitioned", "--name",
                 "nightly-partition"], deploy_env, timeout=300)
        from stafet.context import open_context

        os.environ["STAFET_SECRET"] = secret
        try:
            open_context(network, home=home, database=databases.stafet_url).store.engine.dispose()
        finally:
            os.environ.pop("STAFET_SECRET", None)

        # Heartbeats every 2 s: a worker is OFFLINE 6 s after it stops.
        worker_env = {**client_env, "PREFECT_WORKER_QUERY_SECONDS": "1",
                      "PREFECT_WORKER_HEARTBEAT_SECONDS": "2"}
        for name in WORKERS:
            cmd = [_h.PREFECT, "worker", "start", "--pool", "stafet", "--type", "process", "--name", name,
                   "--limit", "2"]
            procs[name] = _h.Proc(name, cmd, worker_env, tmp / f"{name}.log", tmp)
        t = time.monotonic()
        while len({w["name"] for w in _api(api, "POST", "/work_pools/stafet/workers/filter", {})}
                  & set(WORKERS)) < len(WORKERS):
            assert all(procs[w].alive() for w in WORKERS), _tails(procs)
            assert time.monotonic() - t < 120, "workers did not register"
            time.sleep(0.5)
        r.timings["setup"] = time.monotonic() - t0

        t = time.monotonic()
        out = _h._run([_h.PREFECT, "deployment", "run", "nightly-partitioned/nightly-partitioned",
                       "--param", f"max_partitions={n_workers}", "--param", "poll_seconds=1",
                       # the 4-worker night reads the receipts in partitions, the 2-worker one in the parent
                       "--param", f"spread_receipts_from={0 if n_workers == 4 else 10_000}"], client_env)
        m = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
        assert m, out
        parent_id = m.group(1)
        host = ""
        while time.monotonic() - t < NIGHT_TIMEOUT and not r.killed:
            parent = _api(api, "GET", f"/flow_runs/{parent_id}")
            assert parent["state"]["type"] not in {"COMPLETED", "FAILED", "CRASHED"}, (
                f"the night ended before a worker could be killed: {parent['state']}\n{_tails(procs)}")
            host = host or parent["labels"].get("prefect.worker.name", "")
            for child in _children(api) if host else []:
                victim = child["labels"].get("prefect.worker.name", "")
                if (child["state"]["type"] == "RUNNING" and child["name"].startswith(KILL_IN)
                        and victim in WORKERS and victim != host):
                    servers.signal_tree(procs[victim].pid, signal.SIGKILL)
                    procs[victim].popen.wait(timeout=10)
                    r.killed, r.killed_run = victim, child
                    r.timings["killed after"] = time.monotonic() - t
                    break
            time.sleep(0.3)
        assert r.killed, f"no child ran on the second worker\n{_tails(procs)}"
        while True:
            parent = _api(api, "GET", f"/flow_runs/{parent_id}")
            if parent["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                break
            assert time.monotonic() - t < NIGHT_TIMEOUT, (
                f"night still {parent['state']['type']}\n{_tails(procs)}")
            time.sleep(1)
        r.timings["night"] = time.monotonic() - t
        r.parent = parent
        r.children = _children(api)
        arts = _api(api, "POST", "/artifacts/filter", {"artifacts": {"key": {"any_": ["nightly-partitions"]}},
                                                     "flow_runs": {"id": {"any_": [parent_id]}}})
        r.artifact = json.loads(arts[0]["data"]) if arts else []
        r.timings["total"] = time.monotonic() - t0
        yield r
    finally:
        for name in (*WORKERS, "server"):
            if name in procs:
                procs[name].stop()
        assert not [n for n, p in procs.items() if p.alive()]
        print(f"\npartitioned night, {n_workers} workers | seconds:", {k: round(v, 1) for k, v in r.timings.items()},  # noqa: E501
              "| killed:", r.killed, (r.killed_run.get("name") if r.killed_run else ""))


def _store(r: Run) -> Any:
    from stafet.context import open_context

    os.environ["STAFET_SECRET"] = r.secret
    try:
        return open_context(r.network, home=r.home, database=r.dbs.stafet_url)
    finally:
        os.environ.pop("STAFET_SECRET", None)


def test_the_night_completes_after_a_worker_is_killed(run: Run) -> None:
    assert run.parent["state"]["type"] == "COMPLETED", (run.parent["state"], _tails(run.procs))
    by_name = {c["name"]: c for c in run.children}
    killed = by_name[run.killed_run["name"]]
    assert killed["state"]["type"] == "CRASHED"
    label, n = killed["name"].rsplit("#", 1)
    again = by_name[f"{label}#{int(n) + 1}"]              # the same partition, started again
    assert again["state"]["type"] == "COMPLETED"
    assert again["labels"]["prefect.worker.name"] != run.killed
    assert again["parameters"]["takeover"] == [killed["id"]]
    # the parent's table: every partition completed in the end, the killed one in two runs
    rows = {row["partition"]: row for row in run.artifact}
    assert {row["state"] for row in rows.values()} == {"COMPLETED"}, run.artifact
    assert rows[label]["runs"] == 2
    assert {p.split(":")[0] for p in rows} >= {"ingest", "route", "send", "receive", "receipts", "report"}
    receipts = [c for c in run.children if c["name"].startswith("receipts:")]
    if len(run.workers) == 4:   # spread_receipts_from=0: the receipts pass as partitions, all completed
        assert receipts and {c["state"]["type"] for c in receipts} == {"COMPLETED"}, receipts
        assert "receipts" not in rows
    else:                       # few receipts: the parent read them, one row of its own
        assert receipts == [] and rows["receipts"]["runs"] == 1
    assert sum(row["files"] for row in rows.values()) >= 6 and sum(row["sent"] for row in rows.values()) >= 3
    # the stages' partitions ran on more than one worker, the killed one among them
    used = {c["labels"].get("prefect.worker.name") for c in run.children}
    assert run.killed in used and len(used & set(run.workers)) >= 2, used


def test_no_package_lost_or_sent_twice(run: Run) -> None:
    from sqlalchemy import select

    from stafet.store import audit, inbox
    from stafet.store.schema import Handover

    ctx = _store(run)
    try:
        with ctx.store.session() as s:
            handovers = list(s.scalars(select(Handover)))
            sends = Counter(e.subject for e in audit.entries(s, "handover.sent"))
            assert audit.verify_chain(s) > len(handovers)
            assert inbox.inbox_claims(s) == {}        # every inbox claim released (or taken over)
    finally:
        ctx.store.engine.dispose()
    statuses = Counter(h.status for h in handovers)
    assert "pending" not in statuses and "failed" not in statuses, statuses       # 0 lost
    delivered = [h for h in handovers if h.status in ("sent", "acknowledged")]
    assert delivered and {h.recipient for h in delivered if h.status == "sent"} <= {"uu-skive"}  # own node
    assert {f"handover:{h.id}": 1 for h in delivered} == dict(sends)              # each sent once
    for rcpt in {h.recipient for h in delivered}:
        folder = run.demo / "inbox" / rcpt
        files = sorted(p.name for p in [*folder.glob("PKG-*.eml"), *folder.glob("processed/PKG-*.eml")]
                       if p.stem in {h.id for h in handovers})
        assert files == sorted(f"{h.id}.eml" for h in delivered if h.recipient == rcpt), rcpt
    # the parent's table counts every receipt (a killed receive run's counts die with it)
    acked = sum(row["acknowledged"] for row in run.artifact)
    if run.killed_run["name"].startswith("send:"):
        assert acked == statuses["acknowledged"], run.artifact
    else:
        assert 0 < acked <= statuses["acknowledged"], run.artifact
    # the sends were claimed by the send partitions' flow runs (SELECT … FOR UPDATE SKIP LOCKED)
    send_runs = {c["id"] for c in run.children if c["name"].startswith("send:")}
    assert {h.claimed_by for h in delivered} <= send_runs, ({h.claimed_by for h in delivered}, send_runs)


def test_one_part_of_the_night_is_rerun_alone_from_the_command_line(run: Run) -> None:
    """``stafet run nightly-partitioned --only send:uu-viborg`` after the night: a new parent run on
    the server with just that part, its one child on a surviving worker, nothing sent twice;
    ``--failed`` finds nothing to re-run after a night that completed; a bad part is refused
    before the server is asked."""
    from stafet.store import audit

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    env.update(PREFECT_API_URL=run.api, PREFECT_HOME=str(run.home / "cli-prefect"), STAFET_HOME=str(run.home),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    bad = _h.subprocess.run([_h.STAFET, "run", "nightly-partitioned", "--only", "sned:uu-viborg"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown stage 'sned'" in bad.stderr, bad.stderr
    nothing = json.loads(_h._run([_h.STAFET, "run", "nightly-partitioned", "--failed", "--json"], env))
    assert nothing["rerun"] == [] and nothing["last"]["state"] == "COMPLETED"

    before = {c["id"] for c in _children(run.api)}
    ctx = _store(run)
    try:
        with ctx.store.session() as s:
            sent_before = len(audit.entries(s, "handover.sent"))
    finally:
        ctx.store.engine.dispose()
    cmd = [_h.STAFET, "run", "nightly-partitioned", "--only", "send:uu-viborg", "--json"]
    out = json.loads(_h._run(cmd, env, timeout=300))
    assert out["state"] == "COMPLETED", (out, _tails(run.procs))
    assert [row["partition"] for row in out["table"]] == ["send:uu-viborg"]      # that part, nothing else
    assert out["table"][0]["sent"] == 0                                          # all of it was sent already
    parent = _api(run.api, "GET", f"/flow_runs/{out['flow_run']}")
    assert parent["parameters"]["partitions"] == ["send:uu-viborg"] and "stafet-rerun" in parent["tags"]
    new = [c for c in _children(run.api) if c["id"] not in before]
    assert [(c["name"], c["state"]["type"]) for c in new] == [("send:uu-viborg#1", "COMPLETED")], new
    assert new[0]["labels"]["prefect.worker.name"] != run.killed
    ctx = _store(run)
    try:
        with ctx.store.session() as s:
            assert len(audit.entries(s, "handover.sent")) == sent_before            # idempotent: 0 sent twice
    finally:
        ctx.store.engine.dispose()
