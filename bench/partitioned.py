"""Benchmark: one partitioned night (``flows.partitioned``) with 1 and with 2 process workers.

    .venv/bin/python bench/partitioned.py [--youths 5000] [--events 400] [--bits 2048] [--partitions 4]

What it starts, all on 127.0.0.1 and stopped by PID at the end: a throwaway PostgreSQL
cluster (``tests/servers.py``), a Prefect server (``servers.PrefectServer``), the work
pool ``stafet`` and the Secret blocks the deployments name. For each worker count it
builds a fresh network with ``bench/nightly.py``'s generator (20 organisations, the
youths' history, a night's exports over 19 sources) into its own PostgreSQL database
(not timed), deploys ``nightly-partition`` from ``prefect.yaml``, starts that many
``prefect worker start --pool stafet --type process --limit 1`` and runs the parent flow
``nightly_partitioned`` in a process of its own (it only orchestrates and runs the
once-per-night stages). Both runs use the same partitioning (``--partitions`` per stage),
so they differ only in how many workers share the children.

Printed: wall time per stage with 1 and 2 workers, the speed-up, and the scaling
efficiency (speed-up / 2).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent
STAGES = ("ingest", "route", "send", "revocation", "receive", "receipts", "deadlines", "report", "notices")


def _run(cmd: list[str], env: dict[str, str], timeout: float = 600) -> str:
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def _result(out: str) -> dict[str, Any]:
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
    return dict(json.loads(line.removeprefix("RESULT ")))


def parent(network: str, partitions: int) -> None:
    """The parent flow in this process (its children go to the pool's workers)."""
    import logging

    from stafet.core.logs import setup_logging

    setup_logging(logging.WARNING)
    from flows.partitioned import nightly_partitioned

    t = time.perf_counter()
    out = nightly_partitioned(network, max_partitions=partitions, poll_seconds=0.5)
    counts = {k: out[k] for k in ("files", "rows", "sent", "imported", "acknowledged")}
    print("RESULT " + json.dumps({"wall": time.perf_counter() - t, "seconds": out["seconds"],
                                  "partitions": len(out["partitions"]), "outbox": out["outbox"], **counts}))


def night(n: int, work: Path, pg: Any, server: Any, base_env: dict[str, str],
          args: argparse.Namespace) -> dict[str, Any]:
    import psycopg2

    db = f"stafet_bench_{n}w"
    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, dbname=pg.dbname)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{db}"')
        cur.execute(f'CREATE DATABASE "{db}"')
    conn.close()
    url = f"postgresql+psycopg2://{pg.user}@127.0.0.1:{pg.port}/{db}"
    base = work / f"{n}w"
    # the database URL reaches the deployments as a Secret block (prefect.yaml names it)
    env = {**base_env, "STAFET_DATABASE_URL": url, "STAFET_HOME": str(base / "home")}
    _run([sys.executable, "-c", "import sys; from prefect.blocks.system import Secret; "
          "Secret(value=sys.argv[1]).save('stafet-database-url', overwrite=True)", url], env)
    built = _result(_run([sys.executable, str(ROOT / "bench" / "nightly.py"), "--phase", "build", "--dir",
                          str(base), "--youths", str(args.youths), "--events", str(args.events), "--bits",
                          str(args.bits)], env))
    network = built["network"]
    _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "nightly-partition"],
         {**env, "STAFET_CHECKOUT": str(ROOT), "STAFET_NETWORK": network})
    workers = []
    wenv = {**{k: v for k, v in base_env.items() if not k.startswith("STAFET_")},
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_HOME": str(base / "worker-home")}
    import servers

    for i in range(n):
        log = open(base / f"worker-{i}.log", "ab")  # noqa: SIM115 - the child keeps it
        cmd = [str(BIN / "prefect"), "worker", "start", "--pool", "stafet", "--type", "process",
               "--name", f"bench-{n}w-{i}", "--limit", "1"]
        workers.append(subprocess.Popen(cmd, env=wenv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True))
        log.close()
    try:
        names = {f"bench-{n}w-{i}" for i in range(n)}
        t = time.monotonic()
        while True:
            req = urllib.request.Request(f"{server.api}/work_pools/stafet/workers/filter", data=b"{}",
                                         method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                online = {w["name"] for w in json.loads(r.read()) if w["status"] == "ONLINE"}
            if names <= online:
                break
            if time.monotonic() - t > 120:
                sys.exit("workers did not come online")
            time.sleep(0.5)
        print(f"  {n} worker(s) online; running the night …", flush=True)
        t = time.perf_counter()
        out = _result(_run([sys.executable, __file__, "--phase", "parent", "--network", network,
                            "--partitions", str(args.partitions)], env, timeout=3600))
        out["outer_wall"] = time.perf_counter() - t
        out["built"] = built
        return out
    finally:
        for w in workers:
            servers.signal_tree(w.pid, 15)
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                servers.signal_tree(w.pid, 9)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--youths", type=int, default=5_000)
    ap.add_argument("--events", type=int, default=400)
    ap.add_argument("--bits", type=int, default=2048)
    ap.add_argument("--partitions", type=int, default=4, help="partitions per stage at most")
    ap.add_argument("--phase", choices=["parent"], help=argparse.SUPPRESS)
    ap.add_argument("--network", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "parent":
        parent(args.network, args.partitions)
        return
    import servers

    work = Path(tempfile.mkdtemp(prefix="stafet-bench-partitioned-"))
    pg = servers.Postgres(dbname="bench").start()
    server = servers.PrefectServer(work / "prefect-server").start()
    secret, passphrase = secrets.token_hex(32), secrets.token_urlsafe(24)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    base_env.update(server.env(), PREFECT_HOME=str(work / "client-home"), STAFET_SECRET=secret,
                    STAFET_KEY_PASSPHRASE=passphrase, PREFECT_LOGGING_LEVEL="WARNING")
    try:
        _run([sys.executable, "-c", "import sys; from prefect.blocks.system import Secret; "
              "Secret(value=sys.argv[1]).save('stafet-network-secret'); "
              "Secret(value=sys.argv[2]).save('stafet-key-passphrase')", secret, passphrase], base_env)
        _run([str(BIN / "prefect"), "work-pool", "create", "stafet", "--type", "process"], base_env)
        print(f"partitioned night: {args.youths:,} youths, about {args.events:,} events, RSA-{args.bits}, "
              f"at most {args.partitions} partitions per stage", flush=True)
        results = {n: night(n, work, pg, server, base_env, args) for n in (1, 2)}
        report(results)
    finally:
        server.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def report(r: dict[int, dict[str, Any]]) -> None:
    one, two = r[1], r[2]
    print(f"\ncounts: {one['files']} files, {one['rows']} rows, {one['sent']} packages sent, "
          f"{one['acknowledged']} acknowledged, {one['partitions']} partitions (2 workers: {two['files']}, "
          f"{two['rows']}, {two['sent']}, {two['acknowledged']}); handovers by status after the night: "
          f"{one['outbox']} / {two['outbox']}")
    print(f"\n{'stage, seconds':<16} {'1 worker':>9} {'2 workers':>9} {'speed-up':>9}")
    for stage in STAGES:
        a, b = one["seconds"].get(stage, 0.0), two["seconds"].get(stage, 0.0)
        print(f"  {stage:<14} {a:>9.1f} {b:>9.1f} {(a / b if b else 0):>8.2f}×")
    a, b = one["wall"], two["wall"]
    print(f"  {'whole night':<14} {a:>9.1f} {b:>9.1f} {a / b:>8.2f}×")
    print(f"\nscaling efficiency 1 → 2 workers: {a / b:.2f}× speed-up = {a / b / 2:.0%} "
          "(issue 21 aims at ≥ 1.7×)")


if __name__ == "__main__":
    main()
