"""The reliability suite at its large setting; prints one table of figures.

* crash consistency: the night — the real Prefect flows ``nightly-sync``, UU Skive's
  ``receive``, ``receive-all``, on one Prefect server started here — SIGKILLed at
  ``--points`` points (default 100; timed and stage-targeted, crashes during recovery
  too), each run then completed and compared with a night never killed
  (``tests/reliability/harness.py``);
* endpoint limits: with ``prefect concurrency-limit create endpoint:<org> 1`` (README), a
  night killed inside a send task; the next night waits for the held slot's lease;
* hostile input: the generated corpus (``tests/reliability/hostile``) through every
  reader, plus the 100 MB single field per reader in a memory-measured subprocess;
* package attacks: the issue-5 generator (``tests/exchange/test_attacks.py``) run with
  fresh seeds until ``--attacks`` variants (default 10,000) were tried;
* CPR canaries: the canary night on the real Prefect flow (``canary_run.py``), scanned.

    .venv/bin/python bench/chaos.py [--points 100] [--attacks 10000] [--lanes 2]
                                    [--skip crash,limits,hostile,attacks,canary]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = ROOT / "tests" / "reliability"
sys.path.insert(0, str(REL))
sys.path.insert(0, str(ROOT / "tests"))


def crash(points: int, lanes: int, work: Path) -> dict:
    import servers

    started = time.monotonic()
    server = servers.PrefectServer(work / "prefect-server").start()
    try:
        return _crash(points, lanes, work, server, started)
    finally:
        server.stop()


def _crash(points: int, lanes: int, work: Path, server: object, started: float) -> dict:
    import collections

    import harness

    template = harness.make_template(work / "template")

    def progress(r: harness.CrashRun) -> None:
        status = "ok" if not r.outcome.problems else "PROBLEM " + "; ".join(r.outcome.problems)[:300]
        print(f"  crash run {r.index:3d}: killed in {r.killed} → {status}", flush=True)

    (work / "crash").mkdir()
    _, ref_seconds, runs = harness.crash_series(template, work / "crash", server, n_points=points, per_run=4,
                                                lanes=lanes, seed=random.randrange(2**31), progress=progress)
    survived = sum(sum(1 for k in r.killed if not k.startswith("completed")) for r in runs
                   if not r.outcome.problems)
    behind = sum((collections.Counter(r.outcome.left_behind) for r in runs), collections.Counter())
    return {"kill points": harness.landed(runs), "kill points survived": survived,
            "  of them between a delivery and its 'sent' status": harness.window_hits(runs),
            "crash runs (kills, then a completing night)": len(runs),
            "completing nights with all flow runs COMPLETED": sum(not r.outcome.problems for r in runs),
            "killed flow runs left RUNNING/PENDING": behind["RUNNING"] + behind["PENDING"],
            "rows lost": sum(r.outcome.rows_lost for r in runs),
            "duplicates": sum(r.outcome.duplicates for r in runs),
            "packages re-sent (imported once)": sum(r.outcome.resent for r in runs),
            "reference night s": round(ref_seconds, 1), "crash s": round(time.monotonic() - started)}


def limits(work: Path) -> dict:
    import harness
    import servers

    server = servers.PrefectServer(work / "prefect-server-limits").start()
    try:
        template = harness.make_template(work / "limits-template")
        r = harness.endpoint_limit_run(template, work / "limits", server)
    finally:
        server.stop()
    for p in r.outcome.problems:
        print("  endpoint limit run:", p[:300])
    return {"killed in a send with endpoint limits: slots left held": len(r.held_after_kill),
            "  next night s (waits for the slot's lease) / without":
                f"{r.rerun_seconds:.0f} / {r.normal_seconds:.0f}",
            "  next night consistent": "yes" if not r.outcome.problems else "NO"}


def hostile_inputs(work: Path) -> dict:
    import hostile

    from stafet.core.errors import StafetError

    tried = handled = 0
    unhandled = []
    for case in hostile.cases():
        tried += 1
        path = work / hostile.SAMPLES[case.source]
        path.write_bytes(case.data)
        try:
            n = sum(1 for _ in hostile.READERS[case.source](path))
            ok = case.expect != "reject"
            what = f"{n} rows"
        except StafetError as e:
            ok = case.expect != "rows"
            what = type(e).__name__
        except Exception as e:
            ok, what = False, f"{type(e).__name__}: {e}"
        handled += ok
        if not ok:
            unhandled.append(f"{case.id}: {what}")
    worst = 0.0
    for source in hostile.READERS:
        tried += 1
        path = work / f"huge-{source}"
        hostile.write_huge_field(path, source)
        p = subprocess.run([sys.executable, str(REL / "hostile" / "huge_field_probe.py"), source, str(path)],
                           capture_output=True, text=True, timeout=600)
        path.unlink()
        r = json.loads(p.stdout) if p.returncode == 0 else {"outcome": "crash", "growth_mb": -1}
        worst = max(worst, r["growth_mb"])
        ok = r["outcome"] == "rejected" and r["growth_mb"] < 64
        handled += ok
        if not ok:
            unhandled.append(f"{source}:100MB-field: {r}")
    for u in unhandled:
        print("  hostile input not handled:", u[:300])
    return {"hostile inputs tried": tried, "hostile inputs handled": handled,
            "100 MB field: worst peak RSS growth MB": worst}


def attacks(target: int) -> dict:
    tried = accepted = crashed_runs = 0
    while tried < target:
        seed = random.randrange(2**32)
        env = dict(os.environ, STAFET_ATTACK_SEED=str(seed))
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                            "tests/exchange/test_attacks.py::test_no_hostile_variant_is_accepted"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
        m = re.search(r"(\d+) hostile variants in", p.stdout)
        if not m:
            raise SystemExit("the package-attack generator did not run:\n" + (p.stdout + p.stderr)[-3000:])
        tried += int(m.group(1))
        if p.returncode != 0:
            got = re.search(r"accepted: Counter\((\{.*?\})\)", p.stdout)
            if got:
                accepted += sum(int(n) for n in re.findall(r": (\d+)", got.group(1)))
            else:
                crashed_runs += 1
            print(f"  seed {seed}: FAILED\n" + p.stdout[-2000:])
        print(f"  package attacks: {tried} tried so far", flush=True)
    return {"package attacks tried": tried, "package attacks accepted": accepted,
            "attack runs with untyped errors": crashed_runs}


def canary(work: Path) -> dict:
    import canary_run as C

    run = work / "canary"
    run.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    p = subprocess.run([sys.executable, str(REL / "canary_run.py"), str(run)], capture_output=True, text=True,
                       timeout=1800, env=env)
    (run / "out.log").write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise SystemExit("the canary night failed:\n" + (p.stdout + p.stderr)[-3000:])
    forms = [f for c in C.CANARIES for f in C.forms(c)]
    places: dict[str, str] = {}
    for name in ("out.log", "stafet.log", "cli.log"):
        places[f"log {name}"] = (run / name).read_text(errors="replace")
    places["file names"] = "\n".join(str(p) for d in ("home", "demo") for p in (run / d).rglob("*"))
    places["prefect db"] = b"".join(p.read_bytes() for p in (run / "home" / "prefect").rglob("*.db*")
                                    if p.is_file()).decode("latin-1")
    places["reports"] = "".join(p.read_text() for p in (run / "home" / "reports").glob("*.html"))
    from stafet.packages.package import read_headers

    places["package headers"] = "\n".join(json.dumps(read_headers(p.read_bytes()))
                                          for p in run.rglob("PKG-*.eml"))
    hits = {where: sum(text.count(f) for f in forms) for where, text in places.items()}
    store = (run / "home" / "stafet.db").read_bytes()
    return {"canary hits": sum(hits.values()),
            "canary hits in the store (free text)": sum(store.count(f.encode()) for f in forms),
            **{f"  canary hits: {k}": v for k, v in hits.items() if v}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--points", type=int, default=100)
    p.add_argument("--attacks", type=int, default=10_000)
    p.add_argument("--lanes", type=int, default=2)
    p.add_argument("--skip", default="")
    a = p.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    figures: dict = {}
    started = time.monotonic()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="stafet-chaos-") as tmp:
        work = Path(tmp)
        if "crash" not in skip:
            figures.update(crash(a.points, a.lanes, work))
        if "limits" not in skip:
            (work / "limits").mkdir()
            figures.update(limits(work))
        if "hostile" not in skip:
            (work / "hostile").mkdir()
            figures.update(hostile_inputs(work / "hostile"))
        if "attacks" not in skip:
            figures.update(attacks(a.attacks))
        if "canary" not in skip:
            figures.update(canary(work))
    figures["total s"] = round(time.monotonic() - started)
    figures["load average (1 min) at start / end"] = f"{load0:.1f} / {os.getloadavg()[0]:.1f}"
    width = max(len(k) for k in figures)
    print("\nstafet chaos")
    print("-" * (width + 12))
    for k, v in figures.items():
        print(f"{k:<{width}}  {v:>8}")


if __name__ == "__main__":
    main()
