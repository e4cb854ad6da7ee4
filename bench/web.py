"""Benchmark: the console (``stafet web``) over a large store, 20 concurrent clients on 127.0.0.1.

    .venv/bin/python bench/web.py [--youths 100000] [--seconds 60] [--clients 20] [--keep DIR]

What it builds (not timed against the targets; its time is printed):

* the demo network (``stafet.demo.network.setup_demo``, RSA-2048) in a temporary folder;
* ``--youths`` youths (synthetic CPRs, aged 15-29) with ``--records`` records between them
  (default 1,000,000: EASY-A enrolments and concern flags, and a dropout as the latest event
  for one youth in twenty), written with the store's bulk path (``Store.upsert_prepared``,
  batches of 50,000);
* ``--quarantined`` quarantined rows (default 50,000) over 200 ingested files, with the
  raw row encrypted as ingest keeps it (``stafet.store.quarantine.add_many``);
* ``--handovers`` handovers (default 20,000) from Mercantec to the three UUs, in every
  state, and for those delivered to UU Viborg or UU Thy the imported package, its record
  and (when acknowledged) both receipts: SQLAlchemy core inserts;
* one account per role (``stafet.store.users``).

Then ``stafet web`` starts as its own process; the first ``/duties`` is timed on its own (no
night has written today's duty snapshot, so the console computes it in a background thread and
the page says so; it is asked again until the snapshot is there, and that time is printed); then
``--clients`` clients (a quarter per role,
each logged in through the login form) request the pages of their role round-robin for
``--seconds`` seconds with httpx. It prints p50/p95/max per page and the web process's peak
RSS (``VmHWM``). Targets (issue 19): p95 < 300 ms for every page, memory < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "korrekt-hest-batteri-klips"
USERS = {
    "steward": ("steward", ""),
    "vejleder": ("counsellor", "uu-viborg"),
    "koordinator": ("coordinator", ""),
    "drift": ("operations", ""),
}
SCHOOLS = [("779008", "791"), ("751001", "791")]
MUNIS = ["791", "791", "791", "779", "787"]
UUS = {"791": "uu-viborg", "779": "uu-skive", "787": "uu-thy"}
EDU = [("1640", "Tømrer"), ("1650", "Smed"), ("1020", "Frisør"), ("1300", "Elektriker")]
BIRTH_FROM, BIRTH_TO = dt.date(1997, 12, 10), dt.date(2011, 6, 30)


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- building


def population(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """``n`` distinct synthetic CPRs (the 7th digit per the century table), with home and school."""
    days = (BIRTH_TO - BIRTH_FROM).days
    used: dict[dt.date, int] = {}
    out = []
    for _ in range(n):
        born = BIRTH_FROM + dt.timedelta(days=rng.randrange(days))
        k = used.get(born, 0)
        used[born] = k + 1
        d7 = (k // 1000) % 4 if born.year < 2000 else 4 + (k // 1000) % 6
        out.append((f"{born:%d%m%y}{d7}{k % 1000:03d}", rng.choice(MUNIS), rng.choice(SCHOOLS)[0]))
    return out


def easy_a_row(
    cpr: str, muni: str, school: str, event: str, day: dt.date, start: dt.date, code: str, name: str
) -> dict[str, str]:
    return {
        "Instnr": school,
        "Afdeling": "EUD",
        "CprNr": f"{cpr[:6]}-{cpr[6:]}",
        "Fornavn": "Ida",
        "Efternavn": "Holm",
        "Bopaelskommune": muni,
        "Haendelse": event,
        "Haendelsesdato": f"{day:%d-%m-%Y}",
        "Uddannelse": code,
        "Udd_betegnelse": name,
        "Startdato": f"{start:%d-%m-%Y}",
        "Afbrudsaarsag": "05" if event == "AFBRUD" else "",
        "Afbrudsaarsag_tekst": "",
        "Fravaersprocent": "12,5" if event == "FRAFALDSTRUET" else "",
        "Note": "",
        "Kontakt_navn": "Åse Møller",
        "Kontakt_email": "aase.moeller@mercantec.example",
    }


def build(base: Path, youths_n: int, records_n: int, quarantined_n: int, handovers_n: int) -> dict[str, Any]:
    from sqlalchemy import insert

    from mappings import easy_a
    from stafet.context import open_context
    from stafet.core.models import Provenance
    from stafet.core.vault import load_secret
    from stafet.demo.network import member_home, setup_demo
    from stafet.store import quarantine as quarantine_store
    from stafet.store import users
    from stafet.store.db import prepare
    from stafet.store.schema import Handover, ImportedPackage, ImportedRecordRow, Receipt, SourceFile
    from stafet.web.auth import hash_password

    rng = random.Random(20261203)
    home = base / "home"
    os.environ["STAFET_HOME"] = str(home)
    os.environ.setdefault("STAFET_KEY_PASSPHRASE", "bench-passphrase")
    t0 = time.perf_counter()
    network = setup_demo(base / "demo", home, drop_samples=False, bits=2048)
    load_secret(home, create=True)
    load_secret(member_home(base / "demo", "uu-skive"), create=True)
    ctx = open_context(network, home=home)
    store = ctx.store
    log(f"network and keys: {time.perf_counter() - t0:.1f} s")

    # --- youths and records (the store's bulk path) -------------------------------------
    t = time.perf_counter()
    youths = population(youths_n, rng)
    per = max(1, records_n // max(1, youths_n))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    today = dt.date.today()
    batch: list[Any] = []
    written = 0
    for i, (cpr, muni, school) in enumerate(youths):
        code, name = EDU[i % len(EDU)]
        start = dt.date(today.year - 1 - i % 2, 8, 1 + i % 27)
        n = per + (1 if i < records_n - per * youths_n else 0)
        dropout = i % 20 == 0
        for j in range(n):
            last = j == n - 1
            if j == 0:
                event, day = "OPTAG", start
            elif last and dropout:
                event, day = (
                    "AFBRUD",
                    min(today - dt.timedelta(days=3 + i % 40), start + dt.timedelta(days=400)),
                )
            else:
                event, day = "FRAFALDSTRUET", start + dt.timedelta(days=7 * j)
            fields = easy_a_row(cpr, muni, school, event, day, start, code, name)
            prov = Provenance(
                source="easy-a", file=f"{school}_haendelser_{start:%Y%m%d}02.csv", row=j + 2, received_at=now
            )
            batch.append(prepare(easy_a.map_row(fields, prov)))
        if len(batch) >= 50_000 or i == len(youths) - 1:
            with store.session() as s:
                store.upsert_prepared(s, batch, with_ids=False)
            written += len(batch)
            batch = []
            if written % 200_000 < 50_000:
                log(f"  records: {written:,}")
    log(f"{youths_n:,} youths, {written:,} records: {time.perf_counter() - t:.1f} s")

    # --- ingested files and quarantine --------------------------------------------------
    t = time.perf_counter()
    files = []
    for k in range(200):
        sha = secrets.token_hex(32)
        at = now - dt.timedelta(days=k % 30, hours=k % 5)
        files.append(
            {
                "sha256": sha,
                "name": f"779008_haendelser_{at:%Y%m%d}{k % 100:02d}.csv",
                "source": "easy-a" if k % 4 else "jobcenter",
                "status": "processed",
                "reason": "",
                "archive": "",
                "counts": {"rows": 5000, "quarantined": quarantined_n // 200},
                "received_at": at,
            }
        )
    with store.session() as s:
        s.execute(insert(SourceFile), files)
    rows: list[dict[str, Any]] = []
    for k in range(quarantined_n):
        cpr, muni, school = youths[k % len(youths)]
        f = files[k % len(files)]
        if k % 3:
            rule, why = "dropout_reason", "dropout_reason: Afbrudsaarsag 77 is not in the list"
            fields = easy_a_row(cpr, muni, school, "AFBRUD", today, today, "1640", "Tømrer")
            fields["Afbrudsaarsag"] = "77"
        else:
            rule, why = "start_before_event", "start_before_event: Startdato is after Haendelsesdato"
            fields = easy_a_row(
                cpr, muni, school, "OPTAG", today - dt.timedelta(days=30), today, "1640", "Tømrer"
            )
        raw = json.dumps({"fields": fields, "problem": ""}, ensure_ascii=False)
        rows.append(
            {
                "source": f["source"],
                "source_file": f["name"],
                "file_sha256": f["sha256"],
                "row": k + 2,
                "rule": rule,
                "reason": why,
                "masked_cpr": f"{cpr[:6]}-xxxx",
                "raw_enc": store.vault.encrypt(raw.encode(), b"quarantine"),
                "status": "open",
                "decided_by": "",
                "decision": "",
                "created_at": now,
            }
        )
        if len(rows) == 10_000:
            with store.session() as s:
                quarantine_store.add_many(s, rows)
            rows = []
    if rows:
        with store.session() as s:
            quarantine_store.add_many(s, rows)
    log(f"{len(files)} files, {quarantined_n:,} quarantined rows: {time.perf_counter() - t:.1f} s")

    # --- handovers, imported packages, receipts ------------------------------------------
    t = time.perf_counter()
    hand, pkgs, recs, receipts = [], [], [], []
    states = ["acknowledged"] * 12 + ["sent"] * 5 + ["failed"] * 2 + ["pending"]
    for k in range(handovers_n):
        cpr, muni, _school = youths[(k * 7) % len(youths)]
        youth = store.vault.pseudonym(cpr)
        recipient = UUS[muni]
        status = states[k % len(states)]
        created = now - dt.timedelta(hours=k % 2000)
        pid = f"PKG-{secrets.token_hex(12)}"
        digest = secrets.token_hex(32)
        hand.append(
            {
                "id": pid,
                "handover_key": secrets.token_hex(16),
                "sender": "779008",
                "recipient": recipient,
                "youth": youth,
                "kinds": ["dropout"],
                "record_ids": [],
                "rule": "dropout_to_uu",
                "legal_basis": "vejledningsloven § 12 c",
                "consent_ref": "",
                "status": status,
                "attempts": 1 if status != "pending" else 0,
                "last_error": "sftp: connection refused" if status == "failed" else "",
                "digest": digest,
                "package_path": "",
                "created_at": created,
                "sent_at": created if status in ("sent", "acknowledged") else None,
                "delivered_at": created if status in ("sent", "acknowledged") else None,
                "acknowledged_at": created + dt.timedelta(minutes=5) if status == "acknowledged" else None,
                "next_attempt_at": None,
                "resends": 0,
            }
        )
        if status in ("sent", "acknowledged") and recipient in ("uu-viborg", "uu-thy"):
            pkgs.append(
                {
                    "package_id": pid,
                    "sender": "779008",
                    "recipient": recipient,
                    "digest": digest,
                    "disposition": "imported",
                    "imported_at": created,
                    "consent_ref": "",
                }
            )
            recs.append(
                {
                    "recipient": recipient,
                    "package_id": pid,
                    "sender": "779008",
                    "kind": "dropout",
                    "youth": youth,
                    "natural_key": f"779008|dropout|{k}",
                    "payload": {
                        "event_date": f"{today:%Y-%m-%d}",
                        "programme_name": "Tømrer",
                        "reason_code": "05",
                        "reason_text": "Omvalg",
                    },
                    "digest": secrets.token_hex(32),
                    "row": 1,
                    "received_at": created,
                    "withdrawn": False,
                }
            )
            if status == "acknowledged":
                for direction, org in (("out", recipient), ("in", recipient)):
                    receipts.append(
                        {
                            "package_id": pid,
                            "direction": direction,
                            "org": org,
                            "disposition": "imported",
                            "digest": digest,
                            "at": created + dt.timedelta(minutes=5),
                        }
                    )
    with store.session() as s:
        for table, data in (
            (Handover, hand),
            (ImportedPackage, pkgs),
            (ImportedRecordRow, recs),
            (Receipt, receipts),
        ):
            for i in range(0, len(data), 5000):
                s.execute(insert(table), data[i : i + 5000])
    log(f"{len(hand):,} handovers, {len(pkgs):,} imported packages: {time.perf_counter() - t:.1f} s")

    with store.session() as s:
        for name, (role, org) in USERS.items():
            users.add(
                s,
                username=name,
                password_hash=hash_password(PASSWORD),
                role=role,
                org=org,
                display_name=name.title(),
            )
    viborg = [p for p in pkgs if p["recipient"] == "uu-viborg"]
    sample = {
        "quarantine": [
            f"/quarantine/{i}" for i in rng.sample(range(1, quarantined_n + 1), min(50, quarantined_n))
        ],
        "runs": [f"/runs/{f['sha256']}" for f in files[:20]],
        "inbox": [f"/inbox/{p['package_id']}" for p in viborg[:50]],
        "youth": [f"/youth/{r['youth']}" for r in recs if r["recipient"] == "uu-viborg"][:50],
    }
    store.engine.dispose()
    return {
        "network": str(network),
        "home": str(home),
        "sample": sample,
        "pages": {
            "quarantine": max(1, quarantined_n // 50),
            "inbox": max(1, len(viborg) // 50),
            "messages": max(1, handovers_n // 50),
        },
    }


# --------------------------------------------------------------------------- the run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_web(base: Path, built: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(STAFET_HOME=built["home"], PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    out = open(base / "web.log", "ab")  # noqa: SIM115 - the server's log, closed when it ends
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stafet",
            "web",
            "--network",
            built["network"],
            "--home",
            built["home"],
            "--port",
            str(port),
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"stafet web exited: {(base / 'web.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/login", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("stafet web did not answer within 60 s")


def pages_of(user: str, built: dict[str, Any], rng: random.Random) -> list[tuple[str, str]]:
    """(label, URL) of the pages ``user`` requests, round-robin."""
    s, n = built["sample"], built["pages"]
    one = lambda key: rng.choice(s[key]) if s[key] else ""  # noqa: E731
    if user == "steward":
        return [
            ("/quarantine", "/quarantine"),
            ("/quarantine?page=N", f"/quarantine?page={n['quarantine'] // 2}"),
            ("/quarantine?rule=R", "/quarantine?rule=dropout_reason"),
            ("/quarantine/{id}", one("quarantine")),
            ("/runs", "/runs"),
            ("/runs/{sha}", one("runs")),
        ]
    if user == "vejleder":
        return [
            ("/inbox", "/inbox"),
            ("/inbox?page=N", f"/inbox?page={n['inbox'] // 2}"),
            ("/inbox/{pkg}", one("inbox")),
            ("/duties", "/duties"),
            ("/youth/{p}", one("youth")),
        ]
    if user == "koordinator":
        return [
            ("/duties", "/duties"),
            ("/messages", "/messages"),
            ("/messages?state=failed", "/messages?state=failed"),
            ("/messages?org&state", "/messages?org=uu-viborg&state=sent"),
        ]
    return [
        ("/messages", "/messages"),
        ("/messages?page=N", f"/messages?page={n['messages'] // 2}"),
        ("/runs", "/runs"),
        ("/network", "/network"),
        ("/runs/chart/rows.svg", "/runs/chart/rows.svg"),
    ]


async def client(
    url: str,
    user: str,
    built: dict[str, Any],
    until: float,
    seed: int,
    times: dict[str, list[float]],
    errors: dict[str, int],
) -> None:
    import httpx

    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        page = await c.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, "no login form"
        r = await c.post(
            "/login", data={"username": user, "password": PASSWORD, "csrf_token": token.group(1)}
        )
        assert r.status_code in (200, 303), (user, r.status_code)
        i = rng.randrange(100)
        while time.monotonic() < until:
            pages = pages_of(user, built, rng)
            label, path = pages[i % len(pages)]
            i += 1
            if not path:
                continue
            t = time.perf_counter()
            r = await c.get(path)
            times[label].append(time.perf_counter() - t)
            if r.status_code != 200:
                errors[f"{label} {r.status_code}"] += 1


async def warm(url: str) -> tuple[float, float]:
    """Log in as the coordinator and time the first /duties, and until the duty snapshot is ready.

    No night has run on the bench's store, so the first /duties starts the console's background
    computation of today's duty snapshot and says so; the page is asked again until it lists duties.
    """
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=600) as c:
        token = re.search(r'name="csrf_token" value="([^"]+)"', (await c.get("/login")).text)
        assert token, "no login form"
        await c.post(
            "/login", data={"username": "koordinator", "password": PASSWORD, "csrf_token": token.group(1)}
        )
        t = time.perf_counter()
        r = await c.get("/duties")
        assert r.status_code == 200, r.status_code
        first = time.perf_counter() - t
        while "beregnes nu" in r.text:
            await asyncio.sleep(0.5)
            r = await c.get("/duties")
            assert r.status_code == 200, r.status_code
        return first, time.perf_counter() - t


async def load(
    url: str, built: dict[str, Any], clients: int, seconds: float
) -> tuple[dict[str, list[float]], dict[str, int]]:
    times: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    until = time.monotonic() + seconds
    names = list(USERS)
    await asyncio.gather(
        *(client(url, names[k % len(names)], built, until, k, times, errors) for k in range(clients))
    )
    return times, errors


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--youths", type=int, default=100_000)
    ap.add_argument("--records", type=int, default=None, help="default: 10 per youth (1,000,000)")
    ap.add_argument("--quarantined", type=int, default=None, help="default: youths / 2 (50,000)")
    ap.add_argument("--handovers", type=int, default=None, help="default: youths / 5 (20,000)")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--keep", type=Path, default=None, help="build in this folder and keep it")
    a = ap.parse_args()
    records = a.records if a.records is not None else 10 * a.youths
    quarantined = a.quarantined if a.quarantined is not None else a.youths // 2
    handovers = a.handovers if a.handovers is not None else a.youths // 5
    base = a.keep or Path(tempfile.mkdtemp(prefix="stafet-bench-web-"))
    base.mkdir(parents=True, exist_ok=True)
    proc = None
    try:
        t = time.perf_counter()
        built = build(base, a.youths, records, quarantined, handovers)
        log(f"store built in {time.perf_counter() - t:.1f} s")
        proc, url = start_web(base, built)
        rss = status_kb(proc.pid, "VmRSS") / 1024
        log(f"stafet web (pid {proc.pid}) on {url}: RSS {rss:.0f} MB at start; "
            f"{a.clients} clients, {a.seconds:.0f} s")
        cold, ready = asyncio.run(warm(url))
        rss = status_kb(proc.pid, "VmRSS") / 1024
        log(f"first /duties (starts the duty snapshot in the background): {cold:.1f} s; snapshot ready "
            f"after {ready:.1f} s; RSS then {rss:.0f} MB")
        cpu0, wall0 = cpu_seconds(proc.pid), time.perf_counter()
        times, errors = asyncio.run(load(url, built, a.clients, a.seconds))
        cpu = (cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - wall0)
        peak = status_kb(proc.pid, "VmHWM") / 1024
        total = sum(len(v) for v in times.values())
        log(f"\n{'page':<26}{'n':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
        for label in sorted(times):
            v = sorted(times[label])
            p95 = v[min(len(v) - 1, int(0.95 * len(v)))]
            p50 = statistics.median(v)
            log(f"{label:<26}{len(v):>7}{p50 * 1000:>9.0f}{p95 * 1000:>9.0f}{v[-1] * 1000:>9.0f}")
        log(f"\n{total:,} requests in {a.seconds:.0f} s ({total / a.seconds:.0f}/s); "
            f"errors: {dict(errors) or 'none'}")
        log(f"web process peak RSS (VmHWM): {peak:.0f} MB; its CPU during the run: {100 * cpu:.0f} % of a "
            f"core ({os.cpu_count()} cores, shared with the clients)")
        log(f"scale: {a.youths:,} youths, {records:,} records, {quarantined:,} quarantined, "
            f"{handovers:,} handovers")
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if a.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
