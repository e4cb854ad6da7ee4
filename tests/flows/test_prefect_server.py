"""The scale path, exercised: a real Prefect server, two process workers, ``prefect.yaml``.

What the test does, as operations would (README "Running in production"):

1. PostgreSQL (the session's ``postgres_url`` server, when there is one) gets two new
   databases, one for Prefect and one for stafet; without PostgreSQL both fall back to
   SQLite files in tmp.
2. ``prefect server start --host 127.0.0.1`` on a free port, own ``PREFECT_HOME``,
   telemetry off, backed by the Prefect database. The server's scheduler service is off
   so the schedules of ``prefect.yaml`` (deployed as written) create no runs of their
   own during the test; the UI is off (not needed, slow to build).
3. The network secret, the key passphrase and the database URL are saved as Secret
   blocks with the README's commands; the demo network is built with the same values in the test
   process, so no ``secret.key`` / ``key-passphrase`` file exists: the flows can only
   have read them from the blocks.
4. ``prefect work-pool create stafet --type process``, ``prefect --no-prompt deploy
   --all`` from the repository's ``prefect.yaml`` with ``STAFET_CHECKOUT``,
   ``STAFET_NETWORK``, ``STAFET_HOME`` and ``STAFET_DATABASE_URL`` set (the URL must reach
   no deployment: they name the block).
5. Two workers, ``stafet-worker-a`` and ``-b``: ``prefect worker start --pool stafet
   --limit 1``.
6. ``nightly-sync`` is triggered; once a worker has claimed it, ``deadlines`` is
   triggered for a past day (the ``day`` parameter), and the other worker (the first is
   full, ``--limit 1``) takes it. After nightly-sync is Completed, UU Skive's own node runs
   ``stafet receive`` (it has its own keys and store), then the ``receive-all`` deployment
   collects its receipt.
7. Last, ``stafet ops notify-setup`` points the automation at an aiosmtpd on 127.0.0.1
   and a ``nightly-sync`` run that fails must make its mail arrive there.

What "ran on both workers" means: a process worker runs each flow run in a child
process, and a flow run's task runs execute inside that process (Prefect's thread
pool task runner); Prefect does not spread the task runs of one flow run over
workers. Scale-out is therefore per flow run. The test asserts that each worker
ran at least one of the flow runs: the flow run's ``prefect.worker.name`` label, which
the worker that won the submission sets (both workers may try a run; the server refuses
the second PENDING), and, where the poll saw the run Running, that the run's
``infrastructure_pid`` was a child process of that worker. The task runs of each flow
run completed inside the process that worker started.

Afterwards the Prefect database (every table of the PostgreSQL database, or the SQLite
file) and the server's and workers' logs are searched for every CPR of the demo data,
in the forms DDMMYYSSSS, DDMMYY-SSSS and DDMMYY SSSS: there must be none.

Every process (server, workers, their flow-run children) is stopped by PID; the
throwaway PostgreSQL belongs to the session fixture, which stops it by PID too.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import servers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
STAFET = str(BIN / "stafet")
WORKERS = ("stafet-worker-a", "stafet-worker-b")
FLOW_TIMEOUT = 300.0
PAST_DAY = "2026-01-15"  # the deadlines run re-runs this morning (the ``day`` parameter)


# --------------------------------------------------------------------------- processes


class Proc:
    """A child process in its own session, logging to a file, stopped by PID (tree)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.name, self.log = name, log
        with open(log, "ab") as logf:
            self.popen = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=logf,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[int]:
        return servers.process_tree(self.pid) if self.alive() else []

    def stop(self) -> None:
        """SIGTERM the process and its descendants (collected first), SIGKILL after 20 s."""
        if self.alive():
            servers.signal_tree(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            servers.signal_tree(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def _run(cmd: list[str], env: dict[str, str], cwd: Path = ROOT, timeout: float = 180) -> str:
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert p.returncode == 0, (f"{' '.join(cmd)} failed ({p.returncode}):\n"
                               f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout + p.stderr


def _wait_healthy(api: str, server: Proc, timeout: float = 180) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not server.alive():
            raise AssertionError(f"prefect server exited:\n{server.tail()}")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"prefect server not healthy within {timeout}s:\n{server.tail()}")


# --------------------------------------------------------------------------- databases


@dataclass
class Databases:
    prefect_url: str | None = None   # postgresql+asyncpg://… or None (SQLite in PREFECT_HOME)
    stafet_url: str | None = None    # postgresql+psycopg2://… or None (SQLite in STAFET_HOME)
    admin: Any = None                # sqlalchemy URL of the server, for create/drop
    names: list[str] = field(default_factory=list)


def _pg_connect(url: Any, dbname: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(host=url.host, port=url.port or 5432, user=url.username,
                            password=url.password, dbname=dbname, connect_timeout=10)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def databases(request: pytest.FixtureRequest) -> Iterator[Databases]:
    """Two fresh PostgreSQL databases on the session's server, or SQLite (none).

    ``STAFET_TEST_PREFECT_SQLITE=1`` takes the SQLite path even when PostgreSQL is there.
    """
    from sqlalchemy.engine import make_url

    if servers.setting("STAFET_TEST_PREFECT_SQLITE") == "1":
        yield Databases()
        return
    try:
        base = make_url(request.getfixturevalue("postgres_url"))
    except pytest.skip.Exception:
        yield Databases()
        return
    suffix = secrets.token_hex(4)
    dbs = Databases(admin=base, names=[f"prefect_{suffix}", f"stafet_{suffix}"])
    conn = _pg_connect(base, base.database or "postgres")
    try:
        with conn.cursor() as cur:
            for name in dbs.names:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    dbs.prefect_url = base.set(drivername="postgresql+asyncpg", database=dbs.names[0]).render_as_string(
        hide_password=False)
    dbs.stafet_url = base.set(drivername="postgresql+psycopg2", database=dbs.names[1]).render_as_string(
        hide_password=False)
    yield dbs
    conn = _pg_connect(base, base.database or "postgres")
    try:
        with conn.cursor() as cur:
            for name in dbs.names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


# --------------------------------------------------------------------------- the night


@dataclass
class Night:
    demo: Path
    home: Path
    network: str
    secret: str
    passphrase: str
    dbs: Databases
    prefect_home: Path
    api: str
    procs: dict[str, Proc]
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)      # deployment → final flow run
    seen_on: dict[str, str] = field(default_factory=dict)              # flow run id → worker (by PID)
    task_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    client_env: dict[str, str] = field(default_factory=dict)           # PREFECT_API_URL of the server
    tmp: Path | None = None


def _api(night: Night, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{night.api}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def _trigger(night: Night, env: dict[str, str], name: str, *args: str) -> str:
    out = _run([PREFECT, "deployment", "run", name, *args], env)
    m = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
    assert m, out
    return m.group(1)


def _which_worker(night: Night, infra_pid: str | None) -> str | None:
    if not infra_pid:
        return None
    pid = int(str(infra_pid).rsplit(":", 1)[-1])
    for name in WORKERS:
        if pid in night.procs[name].tree()[1:]:
            return name
    return None


def _wait(night: Night, run_id: str, until: set[str], timeout: float = FLOW_TIMEOUT) -> dict[str, Any]:
    start = time.monotonic()
    while True:
        fr = _api(night, "GET", f"/flow_runs/{run_id}")
        state = fr["state"]["type"]
        if state == "RUNNING" and run_id not in night.seen_on:
            w = _which_worker(night, fr.get("infrastructure_pid"))
            if w:
                night.seen_on[run_id] = w
        if state in until:
            return fr
        if state in {"FAILED", "CRASHED", "CANCELLED"}:
            raise AssertionError(f"flow run {fr['name']} ended {state}: {fr['state'].get('message')}\n"
                                 + "\n".join(night.procs[w].tail(3000) for w in WORKERS))
        if time.monotonic() - start > timeout:
            raise AssertionError(f"flow run {run_id} still {state} after {timeout}s\n"
                                 + "\n".join(night.procs[w].tail(3000) for w in WORKERS))
        time.sleep(0.5)


@pytest.fixture(scope="module")
def night(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Night]:
    """Server, pool, blocks, deployments, two workers; nightly-sync, deadlines and receive run."""
    from stafet.demo.network import setup_demo

    t0 = time.monotonic()
    tmp = tmp_path_factory.mktemp("prefect-server")
    port = servers.free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    base.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", PYTHONUNBUFFERED="1")
    prefect_home = tmp / "prefect-server-home"
    server_env = {**base, "PREFECT_HOME": str(prefect_home),
                  "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    if databases.prefect_url:
        # the README's name for it (an alias of PREFECT_SERVER_DATABASE_CONNECTION_URL)
        server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = databases.prefect_url
    client_env = {**base, "PREFECT_HOME": str(tmp / "prefect-client-home"), "PREFECT_API_URL": api}

    # The demo network, built with known secrets (no secret files: the flows must use the blocks).
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
    assert not (home / "secret.key").exists() and not (home / "key-passphrase").exists()

    procs: dict[str, Proc] = {}
    n = Night(demo=demo, home=home, network=network, secret=secret, passphrase=passphrase, dbs=databases,
              prefect_home=prefect_home, api=api, procs=procs, client_env=client_env, tmp=tmp)
    try:
        procs["server"] = Proc("server", [PREFECT, "server", "start", "--host", "127.0.0.1", "--port",
                                          str(port)], server_env, tmp / "server.log", tmp)
        n.timings["server healthy"] = _wait_healthy(api, procs["server"])

        t = time.monotonic()
        # The database URL too: prefect.yaml names the block, so the URL is in no deployment's env.
        _run([sys.executable, "-c", "import sys; from prefect.blocks.system import Secret; "
              "Secret(value=sys.argv[1]).save('stafet-network-secret'); "
              "Secret(value=sys.argv[2]).save('stafet-key-passphrase'); "
              "Secret(value=sys.argv[3]).save('stafet-database-url')", secret, passphrase,
              databases.stafet_url or f"sqlite:///{home / 'stafet.db'}"], client_env)
        _run([PREFECT, "work-pool", "create", "stafet", "--type", "process"], client_env)
        deploy_env = {**client_env, "STAFET_CHECKOUT": str(ROOT), "STAFET_NETWORK": network,
                      "STAFET_HOME": str(home), "STAFET_DATABASE_URL": databases.stafet_url or ""}
        _run([PREFECT, "--no-prompt", "deploy", "--all"], deploy_env, timeout=300)
        n.timings["blocks, pool, deploy"] = time.monotonic() - t
        n.deployments = _api(n, "POST", "/deployments/filter", {})

        # The store exists (migrated) before two flow runs open it at once.
        from stafet.context import open_context

        os.environ.update(STAFET_SECRET=secret)
        try:
            open_context(network, home=home, database=databases.stafet_url).store.engine.dispose()
        finally:
            os.environ.pop("STAFET_SECRET", None)

        worker_env = {**client_env, "PREFECT_WORKER_QUERY_SECONDS": "1"}
        for name in WORKERS:
            procs[name] = Proc(name, [PREFECT, "worker", "start", "--pool", "stafet", "--type", "process",
                                      "--name", name, "--limit", "1"], worker_env, tmp / f"{name}.log", tmp)
        t = time.monotonic()
        while len({w["name"] for w in _api(n, "POST", "/work_pools/stafet/workers/filter", {})}
                  & set(WORKERS)) < 2:
            assert all(procs[w].alive() for w in WORKERS), "\n".join(procs[w].tail() for w in WORKERS)
            assert time.monotonic() - t < 120, "workers did not register"
            time.sleep(0.5)
        n.timings["workers registered"] = time.monotonic() - t

        t = time.monotonic()
        nightly_id = _trigger(n, client_env, "nightly-sync/nightly-sync")
        # Claimed by one worker (limit 1 each): the next run can only go to the other one.
        _wait(n, nightly_id, {"PENDING", "RUNNING", "COMPLETED"})
        deadlines_id = _trigger(n, client_env, "deadlines/deadlines", "--param", f"day={PAST_DAY}")
        n.runs["nightly-sync"] = _wait(n, nightly_id, {"COMPLETED"})
        n.timings["nightly-sync"] = time.monotonic() - t
        n.runs["deadlines"] = _wait(n, deadlines_id, {"COMPLETED"})

        # UU Skive runs its own node: it receives with its own keys and store, and sends
        # its receipt back; the hub's `receive` deployment then closes that handover.
        skive_env = {**base, "STAFET_KEY_PASSPHRASE": passphrase, "STAFET_SECRET": secrets.token_hex(32),
                     "PREFECT_HOME": str(tmp / "skive-prefect")}
        _run([STAFET, "receive", "--org", "uu-skive", "--network", network, "--home",
              str(demo / "members" / "uu-skive")], skive_env)
        t = time.monotonic()
        receive_id = _trigger(n, client_env, "receive-all/receive-all")
        n.runs["receive"] = _wait(n, receive_id, {"COMPLETED"})
        n.timings["receive"] = time.monotonic() - t

        for dep, fr in n.runs.items():
            n.task_runs[dep] = _api(n, "POST", "/task_runs/filter",
                                    {"flow_runs": {"id": {"any_": [fr["id"]]}}, "limit": 200})
            n.logs[dep] = [r["message"] for r in _api(n, "POST", "/logs/filter",
                                                       {"logs": {"flow_run_id": {"any_": [fr["id"]]}},
                                                        "limit": 200})]
        n.timings["total"] = time.monotonic() - t0
        yield n
    finally:
        for name in (*WORKERS, "server"):
            if name in procs:
                procs[name].stop()
        leftover = [name for name, p in procs.items() if p.alive()]
        assert not leftover, leftover
        print("\nprefect server on", "PostgreSQL" if databases.prefect_url else "SQLite",
              "| seconds:", {k: round(v, 1) for k, v in n.timings.items()},
              "| run → worker (by PID):", {d: n.seen_on.get(fr["id"]) for d, fr in n.runs.items()})


# --------------------------------------------------------------------------- the checks


def test_deployments_from_prefect_yaml(night: Night) -> None:
    deps = {d["name"]: d for d in night.deployments}
    # every deployment is named as its flow: `prefect deployment run X/X`
    assert set(deps) == {"nightly-sync", "receive-all", "deadlines", "statistics", "nightly-partitioned",
                         "nightly-partition"}
    flows = {f["id"]: f["name"] for f in _api(night, "POST", "/flows/filter", {})}
    assert {n: flows[d["flow_id"]] for n, d in deps.items()} == {n: n for n in deps}
    version = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                             text=True, check=False).stdout.strip() or "unknown"
    for d in deps.values():
        assert d["work_pool_name"] == "stafet"
        assert d["parameters"] == {"network": night.network}
        assert "stafet" in d["tags"] and len(d["tags"]) == 2, d["tags"]
        assert d["version"] == version, (d["name"], d["version"])
        env = d["job_variables"]["env"]
        assert env["STAFET_HOME"] == str(night.home)
        # the database URL is a Secret block, not a value in the deployment (it holds a password)
        assert "STAFET_DATABASE_URL" not in env
        assert env["STAFET_DATABASE_URL_BLOCK"] == "stafet-database-url"
        if night.dbs.stafet_url:
            assert night.dbs.stafet_url not in json.dumps(d)
        assert env["STAFET_SECRET_BLOCK"] == "stafet-network-secret"
        assert env["STAFET_KEY_PASSPHRASE_BLOCK"] == "stafet-key-passphrase"
        assert d["pull_steps"] == [{"prefect.deployments.steps.set_working_directory":
                                    {"directory": str(ROOT)}}]
        # a partition runs beside the others of its night (tests/flows/test_partitioned.py)
        assert (d.get("global_concurrency_limit") or {}).get("limit") == (
            None if d["name"] == "nightly-partition" else 1)
        assert night.secret not in json.dumps(d) and night.passphrase not in json.dumps(d)
    cron = {n: [s["schedule"] for s in d["schedules"]] for n, d in deps.items()}
    assert cron["nightly-sync"][0]["cron"] == "0 2 * * *"
    assert cron["nightly-sync"][0]["timezone"] == "Europe/Copenhagen"
    assert cron["deadlines"][0]["cron"] == "0 7 * * *"
    assert cron["statistics"][0]["cron"] == "0 6 1 * *"  # monthly, on the 1st
    assert cron["receive-all"][0]["interval"] == 900
    # a past night can be re-run: `day` is a parameter of the nightly and deadlines deployments
    for name in ("nightly-sync", "deadlines"):
        assert "day" in deps[name]["parameter_openapi_schema"]["properties"], name
    assert night.runs["deadlines"]["parameters"] == {"network": night.network, "day": PAST_DAY}


def test_server_uses_the_prefect_database(night: Night) -> None:
    if night.dbs.prefect_url:
        conn = _pg_connect(night.dbs.admin, night.dbs.names[0])
        try:
            with conn.cursor() as cur:
                cur.execute("select count(*) from flow_run")
                assert cur.fetchone()[0] >= 3
        finally:
            conn.close()
        assert not (night.prefect_home / "prefect.db").exists()
    else:
        with sqlite3.connect(night.prefect_home / "prefect.db") as db:
            assert db.execute("select count(*) from flow_run").fetchone()[0] >= 3


def test_packages_arrived_and_handovers_acknowledged(night: Night) -> None:
    from sqlalchemy import select

    from stafet.context import open_context
    from stafet.store.schema import Handover

    os.environ["STAFET_SECRET"] = night.secret
    try:
        ctx = open_context(night.network, home=night.home, database=night.dbs.stafet_url)
    finally:
        os.environ.pop("STAFET_SECRET", None)
    try:
        with ctx.store.session() as s:
            handovers = [(h.rule, h.recipient, h.status) for h in s.scalars(select(Handover))]
    finally:
        ctx.store.engine.dispose()
    statuses = {st for _, _, st in handovers}
    assert statuses == {"acknowledged", "held"}, handovers   # as in the demo: one held by consent
    acked = [(rule, rcpt) for rule, rcpt, st in handovers if st == "acknowledged"]
    assert ("dropout_to_uu", "uu-skive") in acked                # the own node's receipt came back
    recipients = {rcpt for _, rcpt in acked}
    assert len(recipients) >= 3
    for rcpt in recipients:
        delivered = list((night.demo / "inbox" / rcpt / "processed").glob("PKG-*.eml"))
        assert delivered, f"no package in {rcpt}'s inbox"
    # every package got a signed receipt back into the sender's inbox
    receipts = list((night.demo / "inbox").rglob("processed/*.eml"))
    assert len(receipts) >= 2 * len(acked)


def test_nightly_summary_counts(night: Night) -> None:
    tasks = {t["name"].rsplit("-", 1)[0] for t in night.task_runs["nightly-sync"]}
    assert {"ingest-source", "route", "send", "receive", "deadlines", "report"} <= tasks, tasks
    ingests = [t for t in night.task_runs["nightly-sync"] if t["name"].startswith("ingest-source")]
    assert len(ingests) == 9                                      # one task per source, not per row
    for dep, runs in night.task_runs.items():
        assert runs, dep
        assert {t["state"]["type"] for t in runs} == {"COMPLETED"}, dep


def test_flow_runs_ran_on_both_workers(night: Night) -> None:
    # The worker that won the run (both may try; the loser's PENDING is refused by the
    # server) labels it with its name before it starts the flow-run process.
    ran_on = {dep: fr["labels"].get("prefect.worker.name") for dep, fr in night.runs.items()}
    assert set(ran_on.values()) == set(WORKERS), ran_on
    assert ran_on["nightly-sync"] != ran_on["deadlines"]
    for dep, lines in night.logs.items():
        assert any(f"Worker '{ran_on[dep]}' submitting" in line for line in lines), dep
        assert any("submitted to infrastructure" in line for line in lines), dep
    # Where the poll saw a run Running, its process was a child of that worker's process.
    assert night.runs["nightly-sync"]["id"] in night.seen_on
    for dep, fr in night.runs.items():
        if fr["id"] in night.seen_on:
            assert night.seen_on[fr["id"]] == ran_on[dep], (dep, night.seen_on, ran_on)


def _demo_cprs() -> set[str]:
    found = set()
    for f in resources.files("stafet.demo.data").iterdir():
        if f.name.endswith((".csv", ".xml")):
            text = f.read_bytes().decode("utf-8", errors="replace").replace("\ufeff", "")
            found |= {a + b for a, b in re.findall(r"(?<!\d)(\d{6})[- ]?(\d{4})(?!\d)", text)}
    return {c for c in found if 1 <= int(c[:2]) <= 31 and 1 <= int(c[2:4]) <= 12}


def _prefect_database_text(night: Night) -> bytes:
    if night.dbs.prefect_url:
        conn = _pg_connect(night.dbs.admin, night.dbs.names[0])
        chunks = []
        try:
            with conn.cursor() as cur:
                cur.execute("select table_name from information_schema.tables "
                            "where table_schema = 'public' and table_type = 'BASE TABLE'")
                for (table,) in cur.fetchall():
                    cur.execute(f'select t::text from "{table}" t')  # table names from the catalog
                    chunks += [row[0] for row in cur.fetchall()]
        finally:
            conn.close()
        return "\n".join(chunks).encode()
    return b"".join(p.read_bytes() for p in night.prefect_home.glob("prefect.db*") if p.is_file())


def test_no_cpr_in_prefect_database_or_logs(night: Night) -> None:
    cprs = _demo_cprs()
    assert len(cprs) >= 10
    forms = [f for c in cprs for f in (c, f"{c[:6]}-{c[6:]}", f"{c[:6]} {c[6:]}")]
    blob = _prefect_database_text(night)
    # the scan reads what the flows wrote: names of runs and tasks, the artifact's counts
    assert b"ingest-source" in blob and b"nightly-counts" in blob
    assert not [f for f in forms if f.encode() in blob]
    logs = b"".join(p.log.read_bytes() for p in night.procs.values())
    assert not [f for f in forms if f.encode() in logs]


def test_a_failed_nightly_run_mails_operations(night: Night) -> None:
    """`stafet ops notify-setup` once; a nightly-sync run that fails makes a mail arrive (README)."""
    from email import message_from_bytes, policy

    assert night.tmp is not None
    smtp = servers.SmtpServer(night.tmp / "ops-smtp").start()
    try:
        out = json.loads(_run([STAFET, "ops", "notify-setup", "--smtp-host", "127.0.0.1", "--smtp-port",
                               str(smtp.port), "--to", "drift@uu-skive.example",
                               "--from", "stafet@hub.example", "--json"], night.client_env))
        assert out["flows"] == ["nightly-sync", "nightly-partitioned"]
        # the server holds the automation and the block (its type known to the server: stafet's entry point)
        (auto,) = [a for a in _api(night, "POST", "/automations/filter", {})
                   if a["name"] == "stafet-run-failed"]
        assert set(auto["trigger"]["expect"]) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
        assert auto["actions"][0]["block_document_id"] == out["block_id"]
        assert smtp.messages() == []   # nothing failed yet: no mail

        # a run of the real deployment that fails: its network file does not exist
        run_id = _trigger(night, night.client_env, "nightly-sync/nightly-sync",
                          "--param", "network=/nonexistent/network.yaml")
        start = time.monotonic()
        while (state := _api(night, "GET", f"/flow_runs/{run_id}")["state"]["type"]) not in {
                "FAILED", "CRASHED", "COMPLETED"}:
            assert time.monotonic() - start < FLOW_TIMEOUT, state
            time.sleep(0.5)
        assert state == "FAILED"
        fr = _api(night, "GET", f"/flow_runs/{run_id}")
        while not smtp.messages():
            assert time.monotonic() - start < FLOW_TIMEOUT, f"no mail:\n{night.procs['server'].tail()}"
            time.sleep(0.5)
        (raw,) = smtp.messages()
        mail = message_from_bytes(raw, policy=policy.default)
        assert smtp.envelopes()[0]["rcpt_tos"] == ["drift@uu-skive.example"]
        assert mail["From"] == "stafet@hub.example"
        assert mail["Subject"] == f"stafet: nightly-sync endte Failed ({fr['name']})"
        body = mail.get_content()
        assert f"Kørslen {fr['name']} af nightly-sync endte i tilstanden Failed." in body
        assert "Deployment: nightly-sync" in body and run_id in body
        assert "network configuration not found" in body   # the state's message: what went wrong
        # the successful runs before it sent nothing
        time.sleep(2)
        assert len(smtp.messages()) == 1
    finally:
        smtp.stop()
