"""Crash-consistency harness shared by ``tests/reliability/test_crash.py`` and ``bench/chaos.py``.

A *template* is a demo network (``setup_demo``, RSA-2048) with its stores migrated and
one extra source file with bad rows and one hostile file, so that quarantine and
rejection are part of every night. Each crash run copies the template, runs a night
(:mod:`chaos_driver`: the real Prefect flows ``nightly-sync``, UU Skive's ``receive``
and ``receive-all``, against one Prefect server for the whole series) in a process
forked by :mod:`chaos_zygote`, SIGKILLs it at a chosen delay, optionally kills the
recovery nights too, then runs the night again to completion. :func:`snapshot` reads
what ended where (stores, folders, and the flow runs on the Prefect server);
:func:`compare` checks it against a reference night that was never killed.

The invariants (issue 9):

* every source row is stored (records) or quarantined exactly once: the same records
  and the same multiset of quarantined ``(file, row, rule)`` as the reference; every
  dropped file is in ``processed/`` or ``rejected/`` once, none left waiting;
* no handover is planned twice, and a package delivered more than once is imported
  once by its receiver (``imported_packages`` holds each package id once, and the
  number of imports equals the number of acknowledged handovers);
* every sendable handover ends ``acknowledged`` (the same set as the reference, by
  handover key), nothing ``pending``/``sent``/``failed``;
* the audit log's hash chain verifies, on the hub and on UU Skive's own node;
* no flow run left behind blocks the next night: the killed nights' flow runs stay
  on the server as they were (``RUNNING``, ``PENDING``: nobody marks a SIGKILLed
  process's run), and the completing night's flow runs are all ``COMPLETED``, the
  ``nightly-sync`` one with its counts-only artifacts.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DRIVER = HERE / "chaos_driver.py"
ZYGOTE = HERE / "chaos_zygote.py"

# An extra EASY-A export: one good row, three that must go to quarantine (bad CPR,
# wrong field count, impossible date). Synthetic CPRs (not real persons).
EXTRA_EASYA = (
    "Instnr;Afdeling;CprNr;Fornavn;Efternavn;Bopaelskommune;Haendelse;Haendelsesdato;Uddannelse;"
    "Udd_betegnelse;Startdato;Afbrudsaarsag;Afbrudsaarsag_tekst;Fravaersprocent;Note;Kontakt_navn;"
    "Kontakt_email;\n"
    "779008;EUD;010108-4007;Karl;Krak;791;OPTAG;20-11-2026;1640;Tømrer;20-11-2026;;;;;Åse Møller;"
    "aase.moeller@mercantec.example;\n"
    "779008;EUD;991308-4007;Bad;Cpr;791;OPTAG;20-11-2026;1640;Tømrer;20-11-2026;;;;;Åse Møller;"
    "aase.moeller@mercantec.example;\n"
    "779008;EUD;020208-4010;Too;Few;791\n"
    "779008;EUD;030308-4011;Bad;Date;791;OPTAG;31-02-2026;1640;Tømrer;20-11-2026;;;;;Åse Møller;"
    "aase.moeller@mercantec.example;\n"
)
EXTRA_EASYA_NAME = "779008_haendelser_2026112203.csv"
HOSTILE_XML_NAME = "751001_elevhaendelser_202611220300.xml"
HOSTILE_XML = (b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
               b'<Elevhaendelser xmlns="urn:stafet:formats:skoleadm:1">&e;</Elevhaendelser>\n')


def make_template(folder: Path, *, bits: int = 2048, migrate: bool = True) -> Path:
    """Build the template network in ``folder`` (``home/`` and ``demo/``); returns ``folder``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    env["STAFET_HOME"] = str(folder / "home")
    code = (
        "import sys; from pathlib import Path\n"
        "from stafet.demo.network import setup_demo, member_home, OWN_NODE\n"
        "from stafet.core.vault import load_secret\n"
        "run = Path(sys.argv[1]); home = run / 'home'; demo = run / 'demo'\n"
        f"net = setup_demo(demo, home, bits={bits})\n"
        "load_secret(home, create=True)\n"
        "for o in OWN_NODE: load_secret(member_home(demo, o), create=True)\n"
        "if sys.argv[2] == '1':\n"
        "    from stafet.context import open_context\n"
        "    open_context(net, home=home)\n"
        "    for o in OWN_NODE: open_context(net, home=member_home(demo, o))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(folder), "1" if migrate else "0"], env=env,
                   check=True, timeout=300)
    (folder / "demo" / "drop" / "easy-a" / EXTRA_EASYA_NAME).write_bytes(EXTRA_EASYA.encode("cp1252"))
    (folder / "demo" / "drop" / "gymnasium" / HOSTILE_XML_NAME).write_bytes(HOSTILE_XML)
    return folder


def dropped_files(template: Path) -> dict[str, list[str]]:
    """The files waiting in each source's drop folder of the template."""
    drop = template / "demo" / "drop"
    return {d.name: sorted(p.name for p in d.iterdir() if p.is_file()) for d in sorted(drop.iterdir())}


# --- running nights ---------------------------------------------------------------------

Kill = float | tuple[str, float]
"""When to SIGKILL a night: seconds after its start, ``(stage prefix, seconds after it began)``,
or ``("file:GLOB", seconds)``: after a new file matching GLOB (under ``demo/``) appeared."""

# A package delivered into the recipient's inbox (folder outlet), before the sender marks it sent.
DELIVERED = "file:inbox/*/PKG-*.eml"

# The stages a targeted kill aims at (markers of chaos_driver, through stafet.night.observers),
# short ones too: a send batch takes tens of milliseconds, between its database writes and puts.
# The first three aimed kills of a series: a package delivered mid-send, an ingest, a receive.
# The night has grown faster than it has grown: a kill at a random time lands in a given stage
# too seldom to count on (a fresh night's receive is about a tenth of it).
STAGES = [DELIVERED, "ingest:easy-a", "receive:uu-skive", "send:", "route:", "flow:own-node-receive",
          "send:779008", "ingest:gymnasium", "flow:receive-all", "report:", "receive:779008", "deadlines:",
          "ingest:samtykker"]
# Stages every night announces, whatever is left to do: where recovery nights are aimed at
# (a random time alone often hits a recovery night while Prefect is still starting its flow run).
ALWAYS = ["ingest:", "route:", "receive:", "deadlines:", "report:", "flow:own-node-receive",
          "flow:receive-all"]
ARTIFACTS = {"nightly-counts", "nightly-per-source", "nightly-per-rule", "nightly-per-recipient",
             "nightly-summary"}


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _await_new_file(folder: Path, pattern: str, log: Path, start: int) -> None:
    """Return as soon as a file matching ``pattern`` appears under ``folder`` (or the night ends).

    A package appears in the recipient's inbox the moment the folder outlet renames it
    into place; the sender writes ``sent`` to its store a few milliseconds later. A kill
    right now lands between the two: the next night sends the same package again.
    """
    before = set(folder.glob(pattern))
    deadline = time.monotonic() + 300
    n = 0
    while time.monotonic() < deadline:
        if set(folder.glob(pattern)) - before:
            return
        n += 1
        if n % 50 == 0:
            text = _read_from(log, start)
            if "stage done" in text or "Traceback" in text:
                return
        time.sleep(0.001)


class Zygote:
    """A pre-warmed ``chaos_zygote`` process; forks one child per night.

    ``prefect_env`` points it at the Prefect server (``PrefectServer.env()``): Prefect
    reads its settings when it is imported, in the zygote, before any child exists.
    """

    def __init__(self, prefect_env: dict[str, str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
        env.update(prefect_env)
        self.proc = subprocess.Popen([sys.executable, str(ZYGOTE)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        ready = self._line()
        if ready != "ready":
            raise RuntimeError(f"zygote did not start: {ready!r}")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def _ask(self, cmd: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self._line()

    def start(self, run: Path) -> int:
        """Fork a night on ``run``; returns the child's pid."""
        return int(self._ask(f"run {run}").split()[1])

    def wait(self, pid: int) -> int:
        """Reap child ``pid``; its exit code (-9 when SIGKILLed)."""
        return int(self._ask(f"wait {pid}").split()[1])

    def night(self, run: Path, kill: Kill | None = None) -> int:
        """One night; SIGKILL it at ``kill`` if given. Returns the exit code (-9 when killed)."""
        log = run / "night.log"
        start = log.stat().st_size if log.exists() else 0
        pid = self.start(run)
        if isinstance(kill, int | float):
            time.sleep(kill)
        elif kill is not None and kill[0].startswith("file:"):
            _await_new_file(run / "demo", kill[0][5:], log, start)
            time.sleep(kill[1])
        elif kill is not None:
            stage, offset = kill
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                text = _read_from(log, start)
                if f"stage {stage}" in text or "stage done" in text or "Traceback" in text:
                    break
                time.sleep(0.005)
            time.sleep(offset)
        if kill is not None:
            os.kill(pid, signal.SIGKILL)  # a zombie until reaped, so the pid cannot be reused
        return self.wait(pid)

    def close(self) -> None:
        """Stop the zygote."""
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                self._ask("quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def last_stage(run: Path) -> str:
    """The last stage the night on ``run`` announced before it ended or was killed."""
    try:
        lines = (run / "night.log").read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(not started)"
    stages = [ln.split()[1] for ln in lines if ln.startswith("stage ")]
    return stages[-1] if stages else "(startup)"


def log_tail(run: Path, n: int = 3000) -> str:
    """The end of the night log (for failure messages)."""
    try:
        return (run / "night.log").read_text(errors="replace")[-n:]
    except FileNotFoundError:
        return ""


# --- what ended where ------------------------------------------------------------------

def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _handovers(hub: Path) -> list[tuple[Any, ...]]:
    """``(identity, sender, recipient, rule, status, package id, package digest)`` per handover.

    The identity is what the handover is about — sender, recipient, rule, youth and the
    content digests of its records — not stafet's ``handover_key``, which also holds
    record row ids: those depend on the order in which concurrent ingest tasks stored
    the records, so they differ between two nights that both did everything right.
    """
    digest = dict(_rows(hub, "select id, digest from records"))
    out = []
    for sender, recipient, rule, youth, record_ids, status, pid, pkg in _rows(
            hub, "select sender, recipient, rule, youth, record_ids, status, id, digest from handovers"):
        about = json.dumps([sender, recipient, rule, youth, sorted(digest.get(i, f"?{i}")
                                                                    for i in json.loads(record_ids))])
        out.append((hashlib.sha256(about.encode()).hexdigest(), sender, recipient, rule, status, pid, pkg))
    return sorted(out)


def final_flow_runs(run: Path) -> dict[str, str]:
    """The flow runs of the last night on ``run`` (after the last kill): ``{flow run id: flow}``."""
    lines = (run / "night.log").read_text(errors="replace").splitlines()
    kills = [i for i, ln in enumerate(lines) if ln.startswith("--- killed")]
    last = lines[kills[-1] + 1:] if kills else lines
    return {ln.split()[2]: ln.split()[1] for ln in last if ln.startswith("flowrun ")}


def flow_runs(server: Any, run: Path) -> dict[str, Any]:
    """What the Prefect server holds about the nights on ``run``.

    ``{"states": {flow run id: state type}, "final": {id: flow}, "artifacts": {id: [keys]}}``
    """
    import chaos_driver

    runs = server.call("POST", "/flow_runs/filter",
                       {"flow_runs": {"tags": {"all_": [chaos_driver.tag(run)]}}, "limit": 200})
    final = final_flow_runs(run)
    arts = server.call("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": list(final)}}})
    artifacts: dict[str, list[str]] = {}
    for a in arts:
        artifacts.setdefault(a["flow_run_id"], []).append(a["key"])
    return {"states": {r["id"]: r["state_type"] for r in runs}, "final": final, "artifacts": artifacts}


def snapshot(run: Path, server: Any = None) -> dict[str, Any]:
    """The observable end state of the network in ``run`` (and, with ``server``, of its flow runs)."""
    hub = run / "home" / "stafet.db"
    skive = run / "demo" / "members" / "uu-skive" / "stafet.db"
    drop = run / "demo" / "drop"
    files: dict[str, collections.Counter[str]] = {}
    for d in sorted(drop.iterdir()):
        c: collections.Counter[str] = collections.Counter()
        for p in d.rglob("*"):
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".reason.txt"):
                where = p.parent.name if p.parent != d else "waiting"
                c[f"{where}/{p.name}"] += 1
        files[d.name] = c
    deliveries: collections.Counter[str] = collections.Counter()
    for p in (run / "demo" / "inbox").rglob("PKG-*.eml"):
        stem = p.name.split(".")[0]
        deliveries[stem[:28]] += 1  # a second copy is moved to processed/ under a free name
    imported = [r for db in (hub, skive) if db.exists()
                for r in _rows(db, "select package_id, recipient, digest from imported_packages")]
    return {
        "records": sorted(_rows(hub, "select kind, youth, natural_key, digest, withdrawn from records")),
        "quarantine": sorted(_rows(hub, "select source_file, row, rule from quarantine")),
        "source_files": sorted(_rows(hub, "select name, status from source_files")),
        "handovers": _handovers(hub),
        "imported": imported,
        "receipts_in": _rows(hub, "select package_id, disposition from receipts where direction = 'in'"),
        "files": files,
        "deliveries": deliveries,
        "audit": {name: db for name, db in (("hub", hub), ("uu-skive", skive))},
        "prefect": flow_runs(server, run) if server is not None else None,
    }


def verify_chain(db: Path) -> int:
    """Verify the audit chain of the store in ``db`` with stafet's own check; entries."""
    from stafet.core.vault import Vault
    from stafet.store.db import Store

    store = Store(f"sqlite:///{db}", Vault(b"\0" * 32), upgrade=False)
    try:
        return store.verify_audit_chain()
    finally:
        store.engine.dispose()


@dataclass
class Outcome:
    """What one crash run showed, compared with the reference night."""

    problems: list[str] = field(default_factory=list)
    rows_lost: int = 0
    duplicates: int = 0          # rows stored/quarantined twice, packages imported twice
    resent: int = 0              # packages delivered more than once (allowed: imported once)
    audit_entries: int = 0
    left_behind: dict[str, int] = field(default_factory=dict)  # killed nights' flow runs, by state


def compare(state: dict[str, Any], ref: dict[str, Any]) -> Outcome:
    """Check ``state`` against the reference night's ``ref``."""
    out = Outcome()
    got_rec, want_rec = collections.Counter(state["records"]), collections.Counter(ref["records"])
    if got_rec != want_rec:
        lost, extra = want_rec - got_rec, got_rec - want_rec
        out.rows_lost += sum(lost.values())
        out.duplicates += sum(extra.values())
        out.problems.append(f"records differ: {sum(lost.values())} missing, {sum(extra.values())} extra")
    got_q, want_q = collections.Counter(state["quarantine"]), collections.Counter(ref["quarantine"])
    if got_q != want_q:
        lost, extra = want_q - got_q, got_q - want_q
        out.rows_lost += sum(lost.values())
        out.duplicates += sum(extra.values())
        out.problems.append(f"quarantine differs: missing {sorted(lost)}, extra {sorted(extra)}")
    if state["source_files"] != ref["source_files"]:
        out.problems.append(f"source files {state['source_files']} != {ref['source_files']}")
    for source, counter in state["files"].items():
        if counter != ref["files"].get(source):
            out.problems.append(f"drop folder {source}: {dict(counter)} != {dict(ref['files'][source])}")
    # handovers: one row per identity (what it is about), same final statuses as the reference
    keys = collections.Counter(h[0] for h in state["handovers"])
    if any(n > 1 for n in keys.values()):
        out.duplicates += sum(n - 1 for n in keys.values())
        out.problems.append("a handover was planned twice")
    got_h = sorted(h[:5] for h in state["handovers"])
    want_h = sorted(h[:5] for h in ref["handovers"])
    if got_h != want_h:
        out.problems.append(f"handovers differ: {sorted(set(got_h) ^ set(want_h))}")
    bad = [h for h in state["handovers"] if h[4] not in ("acknowledged", "held", "cancelled")]
    if bad:
        out.problems.append(f"handovers not closed: {[(h[2], h[3], h[4]) for h in bad]}")
    # receivers: every package id imported once, and exactly the acknowledged ones
    imported = collections.Counter(p for p, _, _ in state["imported"])
    twice = {p: n for p, n in imported.items() if n > 1}
    if twice:
        out.duplicates += sum(n - 1 for n in twice.values())
        out.problems.append(f"packages imported twice: {twice}")
    acked = {h[5] for h in state["handovers"] if h[4] == "acknowledged"}
    if set(imported) != acked:
        out.problems.append(f"imported {sorted(imported)} != acknowledged {sorted(acked)}")
    digests = {h[5]: h[6] for h in state["handovers"]}
    wrong = [p for p, _, d in state["imported"] if digests.get(p) != d]
    if wrong:
        out.problems.append(f"imported bytes differ from the sender's outbox copy: {wrong}")
    sent_ids = {h[5] for h in state["handovers"]}
    out.resent = sum(n - 1 for p, n in state["deliveries"].items() if p in sent_ids and n > 1)
    for name, db in state["audit"].items():
        try:
            out.audit_entries += verify_chain(db)
        except Exception as e:  # DataError with the first entry that does not fit
            out.problems.append(f"audit chain of {name}: {e}")
    if state["prefect"] is not None:
        _check_flow_runs(state["prefect"], out)
    return out


def _check_flow_runs(fr: dict[str, Any], out: Outcome) -> None:
    """The completing night's flow runs are COMPLETED (with artifacts) despite what the kills left."""
    flows = sorted(fr["final"].values())
    if flows != ["nightly-sync", "own-node-receive:uu-skive", "receive-all"]:
        out.problems.append(f"the completing night's flow runs: {flows}")
    for run_id, flow in fr["final"].items():
        if fr["states"].get(run_id) != "COMPLETED":
            out.problems.append(f"flow run {flow} of the completing night is {fr['states'].get(run_id)}")
        if flow == "nightly-sync" and set(fr["artifacts"].get(run_id, [])) != ARTIFACTS:
            out.problems.append(f"nightly-sync artifacts: {fr['artifacts'].get(run_id)}")
    out.left_behind = dict(collections.Counter(st for i, st in fr["states"].items() if i not in fr["final"]))


# --- a series of crashes ------------------------------------------------------------------

@dataclass
class CrashRun:
    """One crash run: where it was killed, and what the final state showed."""

    index: int
    delays: list[Kill]
    killed: list[str]            # the stage each kill landed in ("completed" if it finished first)
    final_rc: int
    outcome: Outcome
    seconds: float


def crash_run(zygote: Zygote, template: Path, run: Path, delays: list[Kill], ref: dict[str, Any],
              index: int = 0, server: Any = None) -> CrashRun:
    """Copy the template to ``run``, kill nights after each of ``delays``, then complete one."""
    started = time.monotonic()
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(template, run, symlinks=True)
    killed = []
    for d in delays:
        rc = zygote.night(run, kill=d)
        where = last_stage(run) if rc == -signal.SIGKILL else f"completed(rc={rc})"
        killed.append(where + (" +delivered-not-marked-sent" if delivered_not_marked(run) else ""))
        with open(run / "night.log", "a") as fh:
            fh.write(f"--- killed at {d} (rc {rc})\n")
    rc = zygote.night(run)
    if rc != 0:
        outcome = Outcome(problems=[f"the night after the crash did not complete (rc {rc}):\n"
                                    + log_tail(run)])
    else:
        outcome = compare(snapshot(run, server), ref)
    return CrashRun(index, delays, killed, rc, outcome, time.monotonic() - started)


def delivered_not_marked(run: Path) -> int:
    """Packages already in their recipient's inbox whose handover the sender still has ``pending``.

    Non-zero right after a kill that landed between the put and the status write.
    """
    hub = run / "home" / "stafet.db"
    inbox = run / "demo" / "inbox"
    pending = [pid for (pid,) in _rows(hub, "select id from handovers where status = 'pending'")]
    return sum(1 for pid in pending
               if any(inbox.glob(f"*/{pid}.eml")) or any(inbox.glob(f"*/processed/{pid}*")))


def window_hits(runs: list[CrashRun]) -> int:
    """Kills that landed between a package's delivery and its ``sent`` status."""
    return sum(1 for r in runs for k in r.killed if k.endswith("+delivered-not-marked-sent"))


def landed(runs: list[CrashRun]) -> int:
    """How many kills hit a running night."""
    return sum(1 for r in runs for k in r.killed if not k.startswith("completed"))


def kill_plan(n_points: int, duration: float, per_run: int, seed: int) -> list[list[Kill]]:
    """Kill points: one list per crash run, ``n_points`` kills in all.

    The first kill of each run is either stratified over the night's ``duration`` or
    aimed at a stage (alternately, so that short stages such as a send are hit too; the
    last run is aimed as well, so that five runs aim at the first three of ``STAGES``);
    later kills (crashes of the recovery nights) come alternately at a random time and
    aimed at a stage that every night passes.
    """
    rng = random.Random(seed)
    runs = -(-n_points // per_run)
    timed = [(i + rng.random()) / runs * duration * 0.97 + 0.05 for i in range(runs)]
    rng.shuffle(timed)
    plan: list[list[Kill]] = []
    left = n_points
    aimed = 0
    for i in range(runs):
        first: Kill
        if i % 2 == 0 and i < runs - 1:
            first = timed[i]
        else:
            # aimed: right after the stage began, or anywhere in its first 0.8 s (a send batch
            # takes ~2 s: package built and its path written, put, status written, next one)
            aim = STAGES[aimed % len(STAGES)]
            offset = (0.0 if aim == DELIVERED else rng.uniform(0, 0.05) if aimed % 2 == 0
                      else rng.uniform(0, 0.8))
            first = (aim, offset)
            aimed += 1
        k = min(per_run, left)
        later: list[Kill] = [rng.uniform(0.2, duration * 0.6) if j % 2 == 0 else
                             (rng.choice(ALWAYS), rng.uniform(0, 0.3)) for j in range(k - 1)]
        plan.append([first, *later])
        left -= k
    return plan


def crash_series(template: Path, work: Path, server: Any, *, n_points: int, per_run: int = 2,
                 lanes: int = 2, seed: int = 9,
                 progress: Any = None) -> tuple[dict[str, Any], float, list[CrashRun]]:
    """The reference night, then ``n_points`` kills over parallel lanes.

    ``server`` is a started ``servers.PrefectServer``: every night's flows run on it.
    Returns ``(reference state, reference seconds, crash runs)``.
    """
    import concurrent.futures as cf

    zygotes: list[Zygote] = []
    prefect_env = {**server.env(), "PREFECT_HOME": str(work / "prefect-client"),
                   "PREFECT_LOGGING_LEVEL": "WARNING"}
    try:
        with cf.ThreadPoolExecutor(lanes) as pool:
            zygotes = list(pool.map(lambda _: Zygote(prefect_env), range(lanes)))
        ref_run = work / "reference"
        shutil.rmtree(ref_run, ignore_errors=True)
        shutil.copytree(template, ref_run, symlinks=True)
        t = time.monotonic()
        rc = zygotes[0].night(ref_run)
        duration = time.monotonic() - t
        if rc != 0:
            raise RuntimeError("the reference night failed:\n" + log_tail(ref_run))
        ref = snapshot(ref_run, server)
        ref_check = compare(ref, ref)
        if ref_check.problems:
            raise RuntimeError(f"the reference night is not consistent: {ref_check.problems}")
        plan = kill_plan(n_points, duration, per_run, seed)
        free: list[Zygote] = list(zygotes)
        import threading

        lock = threading.Lock()

        def one(i: int) -> CrashRun:
            with lock:
                z = free.pop()
            try:
                r = crash_run(z, template, work / f"crash-{i:03d}", plan[i], ref, i, server)
            finally:
                with lock:
                    free.append(z)
            if progress:
                progress(r)
            return r

        results: list[CrashRun] = []
        rounds = 0
        while True:
            start = len(results)
            with cf.ThreadPoolExecutor(lanes) as pool:
                results += list(pool.map(one, range(start, len(plan))))
            missing = n_points - landed(results)
            rounds += 1
            if missing <= 0 or rounds > 3:
                return ref, duration, results
            # kills that came after the night had finished: make them up, earlier
            rng = random.Random(seed + rounds)
            plan += [[rng.uniform(0.1, duration * 0.6)] for _ in range(missing)]  # type: ignore[misc]
    finally:
        for z in zygotes:
            z.close()


# --- a killed send holding a per-endpoint concurrency slot ----------------------------------

@dataclass
class LimitRun:
    """A night killed inside a send task while the README's per-endpoint limits (1) are set."""

    held_after_kill: list[str]   # the limits whose slot the killed night still held
    attempts: int                # kills needed to land inside a send task
    rerun_seconds: float         # the night after it, waiting for the held slot's lease to expire
    normal_seconds: float        # the same night without a held slot (the reference)
    outcome: Outcome


def endpoint_limit_run(template: Path, work: Path, server: Any) -> LimitRun:
    """``prefect concurrency-limit create endpoint:<org> 1`` for every recipient, then kill a send.

    Prefect keeps a task's tag slot under a 60 s lease that the task renews; a SIGKILLed
    task cannot release it, so the server's repossessor frees it once the lease expires.
    The next night must still complete (later), with the usual invariants.
    """
    prefect_env = {**server.env(), "PREFECT_HOME": str(work / "prefect-client"),
                   "PREFECT_LOGGING_LEVEL": "WARNING"}
    zygote = Zygote(prefect_env)
    tags: list[str] = []
    try:
        ref_run = work / "limit-reference"
        shutil.rmtree(ref_run, ignore_errors=True)
        shutil.copytree(template, ref_run, symlinks=True)
        t = time.monotonic()
        if zygote.night(ref_run) != 0:
            raise RuntimeError("the reference night failed:\n" + log_tail(ref_run))
        normal = time.monotonic() - t
        ref = snapshot(ref_run, server)
        tags = sorted({f"endpoint:{h[2]}" for h in ref["handovers"]})
        for tag in tags:
            server.call("POST", "/concurrency_limits/", {"tag": tag, "concurrency_limit": 1})
        held: list[str] = []
        attempts = 0
        while not held and attempts < 5:
            attempts += 1
            run = work / f"limit-{attempts}"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(template, run, symlinks=True)
            rc = zygote.night(run, kill=("send:", 0.02 * attempts))
            with open(run / "night.log", "a") as fh:
                fh.write(f"--- killed in a send (rc {rc})\n")
            held = [c["name"] for c in server.call("POST", "/v2/concurrency_limits/filter", {})
                    if c["active_slots"]]
        t = time.monotonic()
        rc = zygote.night(run)
        seconds = time.monotonic() - t
        outcome = compare(snapshot(run, server), ref) if rc == 0 else Outcome(
            problems=[f"the night after the kill did not complete (rc {rc}):\n{log_tail(run)}"])
        return LimitRun(held, attempts, seconds, normal, outcome)
    finally:
        for tag in tags:
            with contextlib.suppress(OSError):
                server.call("DELETE", f"/concurrency_limits/tag/{tag}")
        zygote.close()
