"""Benchmark: the national night (issue 21) — the partitioned night at the scale of Denmark.

    .venv/bin/python bench/national.py [--munis 98] [--youths 1000000] [--events 50000] [--bits 3072]
                                       [--workers 1,2,4] [--partitions 8]

Develop small: ``--munis 10 --youths 20000 --events 2000``.

What it builds, once (not timed as part of a night; each step's time is printed):

* a network of ``--munis`` municipalities (the real 3-digit Danish municipality codes,
  synthetic names), each with a UU, a job centre, a family department, a vocational college
  (EASY-A CSV), a gymnasium (XML) and a primary school (grundskole XML): 98 × 6 = 588
  members, every one with an RSA-``--bits`` key and certificate from one CA, a folder inbox,
  all hosted on this node (keys under one ``$STAFET_HOME``). The keys are made once;
* ``--youths`` youths (synthetic CPRs, 15–29 years old, spread evenly over the
  municipalities), each with one enrolment at the vocational college or the gymnasium of
  their municipality (one in five commutes to another's): their history, written into
  PostgreSQL with ``Store.upsert_records`` in batches of 20,000 — the store's own bulk path,
  which on PostgreSQL is the COPY staging path (``STAFET_PG_COPY``, on by default). Its
  time and rows/s are printed;
* the night's exports, about ``--events`` rows over every source kind the project reads
  (``mappings/``, FORMATS.md §1–§9), one drop folder per sending system: per institution
  its school-administration export (EASY-A, gymnasium XML, grundskole XML), per
  municipality the job centre (education orders + interviews), UU (education plans), the
  family department (transition cases) and the municipality (consents + the youth-register
  extract of those who moved). The shares are chosen so that about 40 % of the rows lead to
  a handover (dropouts and concern flags to UU, orders, plans with support needs and
  pupils' support needs with consent to the institution, transitions to the job centre,
  moves to the new municipality's UU); the number routed is printed.

The built store is the template database; the built folder (network, drop folders, inboxes,
keys) the template tree. Each night starts from a clone of both (``CREATE DATABASE …
TEMPLATE …``, a copy of the tree), so the 1-, 2- and 4-worker nights start from identical
state. Everything runs on 127.0.0.1 and is stopped by PID at the end: one throwaway
PostgreSQL cluster for stafet's store, a second one for the Prefect server's database (so
their CPU is told apart), a Prefect server on it, the work pool ``stafet``, the Secret
blocks, the ``nightly-partition`` deployment from ``prefect.yaml`` (deployed per night: it
carries that night's ``$STAFET_HOME``), N × ``prefect worker start --pool stafet --type
process --limit 1``; the parent flow ``nightly_partitioned`` runs in a process of its own.

Printed per night and stage (ingest, route, send, revocation, receive, receipts,
deadlines, report, notices) and in total: wall time; stafet's own work; Prefect's share;
rows/s (ingest), packages/s (send, receive); CPU seconds of the workers' process trees
(their flow-run processes included) plus the parent's, and separately the Prefect server
(+ its PostgreSQL) and stafet's PostgreSQL; then the speed-up and efficiency 1 → 2 and
1 → 4 workers, and a markdown table (docs/scaling.md).

**Prefect's share of wall time**, defined per stage:

* a partitioned stage (ingest, send, receive, receipts): each child measures the time it spends in
  the stage's own work (``flows.partitioned._run_partition``: reading, validating and
  storing; signing, encrypting and putting; decrypting, verifying, importing and
  answering) and writes it into its counts artifact as ``work_ms``. The children a worker
  ran are summed; stafet's work of the stage is the largest such sum over the workers
  (the stage could not have ended sooner with that assignment and no orchestration at
  all). Prefect's share = stage wall − that. Everything else is counted as Prefect's:
  scheduling, a worker's polling, the flow-run process start and the deployment pull,
  the flow engine, artifacts, the parent's polling and idle workers waiting on the last
  partition (imbalance counts against Prefect, i.e. against partitioning);
* a stage the parent runs once: the ``stafet.night`` calls its task makes are timed in the
  parent process (the union of their intervals);
  Prefect's share = stage wall − that.

Prefect's share of the night = (night wall − Σ stafet's work per stage) / night wall, the
night wall being the parent flow's call from the parent process (the parent process's own
start, Python + Prefect + stafet import, is printed apart and not counted either way).

Checked at the end of every night, and the bench exits non-zero when one fails: no
partition failed; every handover routed was sent, imported once (0 duplicates, 0 rejected)
and acknowledged; 0 handovers pending, failed or open; the counts equal across the nights.

``--partitions`` (``max_partitions``, default 8, the flow's default). A partition costs a
flow-run process (Python, Prefect, stafet, the deployment pull; in an ingest partition also
the validation worker's Great Expectations import), ≈ 4–6 s on an idle machine and ≈ 20 s per
partition at load 6 on this shared 2-core machine (the small run: Prefect's seconds of a stage
÷ the partitions on its busiest worker), so fewer, larger partitions amortise it; but a stage
needs at least as many partitions as workers to use them (4 at ``--workers 4``), and more than
one per worker evens out partitions of unequal size (a source with a large file, a slow
endpoint) at the end of a stage. 8 = 2 per worker at 4 workers and 4 at 2: at the national
scale a stage's own work is minutes, so the 3 × 4 × ≈ 5–20 s of process starts at 2 workers
stay a small share; below that (``--munis 10``) they dominate and 2–4 would be better.
Not measured against other values at full scale (a night is over an hour on this shared machine).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
import nightly  # noqa: E402 - bench/nightly.py: the generator's building blocks

BIN = Path(sys.executable).parent
STAGES = ("ingest", "route", "send", "revocation", "receive", "receipts", "deadlines", "report", "notices")
PARTITIONED = ("ingest", "send", "receive", "receipts")
CONSENT_RULES = {"order_to_institution", "plan_to_institution", "transition_to_unit",
                 "pupil_support_to_institution"}
"""The nightly rules of stafet/duties/rules.yaml with ``basis: consent``: the only ones whose handovers may
be held (routed, no usable consent: not to be sent)."""
TODAY = nightly.TODAY
_CODES = ("101 147 151 153 155 157 159 161 163 165 167 169 173 175 183 185 187 190 201 210 217 219 223 230 "
          "240 250 253 259 260 265 269 270 306 316 320 326 329 330 336 340 350 360 370 376 390 400 410 420 "
          "430 440 450 461 479 480 482 492 510 530 540 550 561 563 573 575 580 607 615 621 630 657 661 665 "
          "671 706 707 710 727 730 740 741 746 751 756 760 766 773 779 787 791 810 813 820 825 840 846 849 "
          "851 860")
MUNICIPALITIES = tuple(_CODES.split(" "))
"""The 98 Danish municipalities' codes (Danmarks Statistik's 3-digit kommunekoder)."""
SYLLABLES = ("Ny", "Sønder", "Vester", "Øster", "Nør", "Hald", "Rød", "Bjerg", "Skov", "Lund", "Holm", "Å")
SHARES = {"easy-a": 28, "gym": 10, "grundskole": 8, "register": 12, "orders": 8, "interviews": 8,
          "plans": 12, "family": 4}
"""Per cent of ``--events`` per export kind; the consents those need come on top (about 10 %)."""


def muni_name(code: str) -> str:
    """A synthetic (Danish-looking) municipality name for ``code``."""
    n = int(code)
    return f"{SYLLABLES[n % 12]}{SYLLABLES[(n // 12) % 12].lower()} Kommune"


def institutions(code: str) -> dict[str, str]:
    """The municipality's three institutions: vocational college, gymnasium, primary school (6-digit ids)."""
    return {"vocational": f"{code}001", "gymnasium": f"{code}002", "primary": f"{code}003"}


def members(munis: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in munis:
        name = muni_name(m)
        out.append({"id": f"uu-{m}", "kind": "guidance", "name": f"UU {name}", "municipality": m,
                    "serves": [m]})
        out.append({"id": f"jobcenter-{m}", "kind": "job_centre", "name": f"Jobcenter {name}",
                    "municipality": m})
        out.append({"id": f"familie-{m}", "kind": "family_services", "name": f"Familieafdelingen {name}",
                    "municipality": m})
        inst = institutions(m)
        out.append({"id": inst["vocational"], "kind": "institution", "name": f"Erhvervsskolen {name}",
                    "municipality": m})
        out.append({"id": inst["gymnasium"], "kind": "institution", "name": f"Gymnasiet {name}",
                    "municipality": m})
        out.append({"id": inst["primary"], "kind": "primary_school", "name": f"Skolen {name}",
                    "municipality": m})
    for x in out:
        x.update(email=f"{x['id']}@sikkermail.bench.dk", endpoint=f"folder:inbox/{x['id']}",
                 certificate=f"certs/{x['id']}.pem")
    return out


def population(n: int, munis: list[str], rng: random.Random) -> list[nightly.Youth]:
    """``n`` youths with distinct CPRs (as ``nightly.population``), spread over ``munis``."""
    days = (nightly.BIRTH_TO - nightly.BIRTH_FROM).days
    used: dict[dt.date, int] = {}
    out = []
    for i in range(n):
        born = nightly.BIRTH_FROM + dt.timedelta(days=rng.randrange(days))
        k = used.get(born, 0)
        used[born] = k + 1
        d7 = (k // 1000) % 4 if born.year < 2000 else 4 + (k // 1000) % 6
        muni = munis[i % len(munis)]
        school_muni = muni if rng.random() < 0.8 else rng.choice(munis)
        school = institutions(school_muni)["vocational" if rng.random() < 0.6 else "gymnasium"]
        out.append(nightly.Youth(f"{born:%d%m%y}{d7}{k % 1000:03d}", born, muni, school))
    return out


class NationalNight(nightly.Night):
    """``nightly.Night`` over the national network, plus §7–§9 (grundskole, the register, interviews)."""

    def __init__(self, youths: list[nightly.Youth], events: int, rng: random.Random,
                 munis: list[str]) -> None:
        super().__init__(youths, events, rng)
        self.munis = munis
        self.consents = {m: [] for m in munis}
        self.moves = 0

    def pick(self, pool: list[nightly.Youth], n: int) -> list[nightly.Youth]:
        return self.rng.sample(pool, min(n, len(pool)))

    def jobcentre(self, org: str, muni: str, n: int) -> tuple[str, bytes]:
        out = io.StringIO(newline="")
        w = csv.writer(out, delimiter=";", lineterminator="\r\n")
        w.writerow(["cpr", "paalaeg_id", "maal_uddannelse", "maal_institution", "frist", "mentor_bevilget",
                    "mentor_navn", "sagsbehandler_navn", "sagsbehandler_tlf", "sagsbehandler_email", "status",
                    "status_dato", "samtykke_ref"])
        adults = [y for y in self.by_muni[muni] if 19 <= y.age_on(TODAY) <= 28]
        picked = self.pick(adults, n)
        for y in picked:
            status = self.rng.choices(["OPHOERT_UDDANNELSESSTART", "AKTIV", "OPHOERT_ANDET"], [60, 30, 10])[0]
            school = institutions(muni)["vocational"]
            ref = ""
            if status == "OPHOERT_UDDANNELSESSTART":
                ref = self.consent(y, f"{school}|guidance", "paalaeg|uddannelsesplan",
                                   "Overgang til uddannelse")
            self.counter += 1
            w.writerow([y.cpr, f"UP-{self.counter:07d}", "Smed", school if status != "AKTIV" else "",
                        (TODAY + dt.timedelta(days=60)).isoformat(), "ja", "Kim Brandt", "Lene Juhl",
                        "+4587871234", "lene.juhl@jobcenter.example", status, self.day().isoformat(), ref])
        self.rows += len(picked)
        return f"jobcenter_{muni}_paalaeg_{TODAY:%Y%m%d}.csv", b"\xef\xbb\xbf" + out.getvalue().encode()

    def interviews(self, muni: str, n: int) -> tuple[str, bytes]:
        out = io.StringIO(newline="")
        w = csv.writer(out, delimiter=";", lineterminator="\r\n")
        w.writerow(["cpr", "samtale_id", "samtale_dato", "type", "status", "sagsbehandler_navn",
                    "sagsbehandler_email"])
        adults = [y for y in self.by_muni[muni] if 18 <= y.age_on(TODAY) <= 29]
        picked = self.pick(adults, n)
        for y in picked:
            self.counter += 1
            day = self.day()
            while y.age_on(day) < 18:  # FORMATS §9: 18-29 on the interview's date
                day += dt.timedelta(days=1)
            w.writerow([dash_or_not(y.cpr, self.counter), f"SA-{TODAY.year}-{self.counter:07d}",
                        day.isoformat(), self.rng.choice(["FOERSTE", "OPFOELGNING"]),
                        self.rng.choices(["AFHOLDT", "PLANLAGT", "UDEBLEVET"], [60, 30, 10])[0], "Lene Juhl",
                        "lene.juhl@jobcenter.example"])
        self.rows += len(picked)
        return f"jobcenter_{muni}_samtaler_{TODAY:%Y%m%d}.csv", b"\xef\xbb\xbf" + out.getvalue().encode()

    def uu_plans(self, muni: str, n: int) -> tuple[str, bytes]:
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 '<Uddannelsesplaner xmlns="urn:stafet:formats:uu:1">']
        picked = self.pick(self.by_muni[muni], n)
        for y in picked:
            self.counter += 1
            school = institutions(muni)["vocational"]
            support = self.rng.random() < 0.6
            if support:
                self.consent(y, school, "uddannelsesplan|stoettebehov", "Uddannelsesplan med støttebehov")
            day = self.day()
            parts.append(f'<Plan id="UP-{self.counter:07d}" opdateret="{day}">'
                         f"<Cpr>{nightly.dash(y.cpr)}</Cpr>"
                         f'<MaalUddannelse kode="1640" institution="{school}">Tømrer</MaalUddannelse>'
                         '<Parathed faglig="parat" personlig="parat" social="ikke-parat"/>'
                         + ("<Stoettebehov><SPS/><Mentor/></Stoettebehov>" if support else "")
                         + '<Vejleder navn="Bo Riis" email="bo.riis@uu.example" tlf="+4587870000"/>'
                         f'<Kontakt dato="{day}" form="samtale"/></Plan>')
        parts.append("</Uddannelsesplaner>\n")
        self.rows += len(picked)
        return f"uu_{muni}_planer_{TODAY:%Y%m%d}.xml", "\n".join(parts).encode()

    def family(self, muni: str, n: int) -> tuple[str, bytes]:
        out = io.StringIO(newline="")
        out.write("CPR;Sagsnr;Overgangsmoede_dato;SEL76_efterværn;SEL85_stoette;Modtager;Raadgiver_navn;"
                  "Raadgiver_email;Samtykke_ref\r\n")
        near18 = [y for y in self.by_muni[muni] if 16 <= y.age_on(TODAY) <= 17]
        picked = self.pick(near18, n)
        for y in picked:
            self.counter += 1
            receiver = self.rng.choice(["jobcenter", "jobcenter", "ingen"])   # no social services here
            ref = self.consent(y, receiver, "overgang|historik", "Overgang til voksenområdet ved 18 år") \
                if receiver != "ingen" else ""
            meeting = (TODAY + dt.timedelta(days=self.rng.randrange(-30, 90))).strftime("%d-%m-%Y")
            out.write(f"{nightly.dash(y.cpr)};F-{self.counter:07d};{meeting};J;N;{receiver};Hanne Sørensen;"
                      f"hs@familie.example;{ref}\r\n")
        self.rows += len(picked)
        return f"familie_{muni}_overgange_{TODAY:%Y%m%d}.csv", out.getvalue().encode("latin-1")

    def grundskole(self, muni: str, n: int) -> tuple[str, bytes]:
        school = institutions(muni)["primary"]
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 f'<Elever xmlns="urn:stafet:formats:grundskole:1" skole="{school}" kommune="{muni}" '
                 f'dannet="{TODAY}T02:00:00">']
        pupils = [y for y in self.by_muni[muni] if y.age_on(TODAY) <= 16]
        picked = self.pick(pupils, n)
        end = dt.date(TODAY.year + (TODAY.month > 6), 6, 25)
        for y in picked:
            applied = institutions(muni)[self.rng.choice(["vocational", "gymnasium"])]
            support = self.rng.random() < 0.6
            if support and self.rng.random() < 0.6:
                self.consent(y, applied, "stoettebehov", "Overgang fra grundskole til ungdomsuddannelse")
            parts.append(
                f'<Elev opdateret="{self.day()}"><Cpr>{nightly.dash(y.cpr)}</Cpr>'
                f"<Navn>{self.rng.choice(nightly.FIRST)} {self.rng.choice(nightly.LAST)}</Navn>"
                f"<Klassetrin>{self.rng.choice([9, 10])}</Klassetrin>"
                f"<ForventetAfslutning>{end}</ForventetAfslutning>"
                f'<Uddannelsesparathed vurderet="{TODAY - dt.timedelta(days=5)}" faglig="parat" '
                f'personlig="{self.rng.choice(["parat", "ikke-parat"])}" social="parat"/>'
                + ('<Stoettebehov type="Ordblind"/><Stoettebehov type="Andet">Fast voksen ved skoleskift'
                   "</Stoettebehov>" if support else "")
                + f'<Ansoegning institution="{applied}">Tømrer (EUD)</Ansoegning>'
                '<Kontaktlaerer navn="Mette Dahl" email="mette.dahl@skole.example"/></Elev>')
        parts.append("</Elever>\n")
        self.rows += len(picked)
        return f"grundskole_{school}_elever_{TODAY:%Y%m%d}.xml", "\n".join(parts).encode()

    def register(self, muni: str, n: int) -> tuple[str, bytes]:
        """The youth-register extract's night delta: new registrations and, for 40 %, a move out."""
        out = io.StringIO(newline="")
        w = csv.writer(out, delimiter=";", lineterminator="\r\n")
        w.writerow(["cpr", "fornavn", "efternavn", "kommune", "tilflyttet", "fraflyttet", "fraflyttet_til",
                    "forældremyndighed"])
        picked = self.pick(self.by_muni[muni], n)
        for y in picked:
            moved_in = max(y.born, TODAY - dt.timedelta(days=self.rng.randrange(200, 4000)))
            out_day, to = "", ""
            if self.rng.random() < 0.4 and len(self.munis) > 1:
                out_day = (TODAY - dt.timedelta(days=self.rng.randrange(1, 20))).isoformat()
                to = self.rng.choice([m for m in self.munis if m != muni])
                self.moves += 1
            w.writerow([nightly.dash(y.cpr), self.rng.choice(nightly.FIRST), self.rng.choice(nightly.LAST),
                        muni, moved_in.isoformat(), out_day, to, "J" if y.age_on(TODAY) < 18 else "N"])
        self.rows += len(picked)
        return f"cpr_{muni}_unge_{TODAY:%Y%m%d}.csv", out.getvalue().encode()


def dash_or_not(cpr: str, i: int) -> str:
    return nightly.dash(cpr) if i % 2 else cpr


def exports(youths: list[nightly.Youth], events: int, munis: list[str],
            rng: random.Random) -> tuple[dict[str, list[tuple[str, bytes]]], int, int]:
    """Drop folder (source name) → its files; the rows; the moves in the register extracts."""
    night = NationalNight(youths, events, rng, munis)
    per = {k: max(1, events * v // 100 // len(munis)) for k, v in SHARES.items()}
    src: dict[str, list[tuple[str, bytes]]] = {}
    for m in munis:
        inst = institutions(m)
        src[f"easy-a-{inst['vocational']}"] = [night.easya(inst["vocational"], per["easy-a"])]
        src[f"gymnasium-{inst['gymnasium']}"] = [night.gymnasium(inst["gymnasium"], per["gym"])]
        src[f"grundskole-{inst['primary']}"] = [night.grundskole(m, per["grundskole"])]
        src[f"jobcenter-{m}"] = [night.jobcentre(f"jobcenter-{m}", m, per["orders"]),
                                 night.interviews(m, per["interviews"])]
        src[f"uu-{m}"] = [night.uu_plans(m, per["plans"])]
        src[f"familie-{m}"] = [night.family(m, per["family"])]
        src[f"kommune-{m}"] = [night.register(m, per["register"])]
    for name, data in night.consent_files():
        src[f"kommune-{name.split('_')[1]}"].insert(0, (name, data))
    return src, night.rows, night.moves


# --------------------------------------------------------------------------- building (once)


def _new_key(job: tuple[str, str, str, str, int]) -> None:
    from keys import KeyStore

    home, org, display, email, bits = job
    KeyStore(Path(home)).new_key(org, display=display, email=email, bits=bits)


def build(base: Path, munis_n: int, youths_n: int, events: int, bits: int) -> dict[str, Any]:
    """The network, keys, drop folders (``base/demo``, ``base/home``) and the history in the store."""
    import yaml
    from cryptography.hazmat.primitives import serialization

    from keys import KeyStore

    os.environ["STAFET_HOME"] = str(base / "home")
    rng = random.Random(20261203)
    munis = list(MUNICIPALITIES[:munis_n])
    demo, home = base / "demo", base / "home"
    t = time.perf_counter()
    ca = KeyStore(home)
    ca.init_ca(bits=bits)
    (demo / "certs").mkdir(parents=True, exist_ok=True)
    shutil.copy(ca.ca_dir / "ca.pem", demo / "certs" / "ca.pem")
    ms = members(munis)
    # the keys in two processes (each org's pending key and CSR in its own folder), the CA's signing in order
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_new_key, [(str(home), m["id"], m["name"], m["email"], bits) for m in ms]))
    for m in ms:
        ca.issue(m["id"])
        (demo / "certs" / f"{m['id']}.pem").write_bytes(
            ca.current(m["id"]).cert.public_bytes(serialization.Encoding.PEM))
        (demo / "inbox" / m["id"]).mkdir(parents=True, exist_ok=True)
    ca.write_crl([demo / "certs" / "crl.pem"])
    keys_s = time.perf_counter() - t

    t = time.perf_counter()
    youths = population(youths_n, munis, rng)
    sources, rows, moves = exports(youths, events, munis, rng)
    config = {"network": "national", "trust_anchors": ["certs/ca.pem"], "crls": ["certs/crl.pem"],
              "ack_limit_hours": 48, "members": ms,
              "sources": [{"name": s, "location": f"folder:drop/{s}"} for s in sources]}
    network = demo / "network.yaml"
    network.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    for s, files in sources.items():
        (demo / "drop" / s).mkdir(parents=True, exist_ok=True)
        for name, data in files:
            (demo / "drop" / s / name).write_bytes(data)
    exports_s = time.perf_counter() - t

    # The history: every youth enrolled at one school, through the store's bulk path in batches.
    t = time.perf_counter()
    nightly.write_history(network, home, youths, rng)
    history_s = time.perf_counter() - t
    return {"network": str(network), "keys_s": keys_s, "exports_s": exports_s, "history_s": history_s,
            "members": len(ms), "sources": len(sources), "files": sum(len(f) for f in sources.values()),
            "rows": rows, "moves": moves, "youths": youths_n, "munis": len(munis)}


# --------------------------------------------------------------------------- CPU of process trees


def _stats() -> tuple[dict[int, list[int]], dict[int, list[str]]]:
    kids: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                f = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = f
            kids.setdefault(int(f[1]), []).append(int(entry))
    return kids, stats


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) of ``pids`` and their live descendants, reaped children included."""
    kids, stats = _stats()
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += kids.get(pid, [])
        if pid in stats:
            total += sum(int(x) for x in stats[pid][11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the parent (its own process)


def _union(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def parent(network: str, partitions: int) -> None:
    """The parent flow in this process; stafet's own work in its once-stages timed around ``stafet.night``."""
    t_import = time.perf_counter()
    import logging

    from stafet.core.logs import setup_logging

    setup_logging(logging.WARNING)
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterTags,
    )

    from flows import partitioned
    from stafet import night as stafet_night

    # night.receive runs in the parent only when the receipts pass does (few receipts), else in
    # the children's own processes, which this does not see
    once = {"route": "route", "refresh_revocation": "revocation", "receive": "receipts",
            "deadlines": "deadlines", "report": "report", "notices": "notices"}
    spans: dict[str, list[tuple[float, float]]] = {s: [] for s in once.values()}
    def timed(fn: Any, label: str) -> Any:
        def call(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spans[label].append((t0, time.perf_counter()))
        return call

    for name, label in once.items():
        setattr(stafet_night, name, timed(getattr(stafet_night, name), label))
    imports_s = time.perf_counter() - t_import
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = dt.datetime.now(dt.UTC)
    t = time.perf_counter()
    state = partitioned.nightly_partitioned(network, max_partitions=partitions, poll_seconds=0.5,
                                            return_state=True)
    wall = time.perf_counter() - t
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    out = state.result()
    children = []
    with get_client(sync_client=True) as c:
        runs: list[Any] = []
        while True:
            tagged = FlowRunFilter(tags=FlowRunFilterTags(all_=["stafet-partition"]))
            page = c.read_flow_runs(flow_run_filter=tagged, limit=200, offset=len(runs))
            runs += page
            if len(page) < 200:
                break
        for fr in runs:
            if fr.start_time is None or fr.start_time < started:
                continue
            work = 0
            for art in c.read_artifacts(artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=[partitioned.COUNTS_KEY]),
                    flow_run_id=ArtifactFilterFlowRunId(any_=[fr.id])))[:1]:
                data: Any = json.loads(art.data) if isinstance(art.data, str) else art.data
                work = next((int(r["count"]) for r in data or [] if r.get("what") == "work_ms"), 0)
            children.append({"name": fr.name, "stage": fr.name.split(":", 1)[0],
                             "state": fr.state.type.value if fr.state else "",
                             "worker": (fr.labels or {}).get("prefect.worker.name", ""),
                             "work_s": work / 1000,
                             "run_s": (fr.end_time - fr.start_time).total_seconds() if fr.end_time else 0.0})
    work_once = {label: _union(iv) for label, iv in spans.items()}
    print("RESULT " + json.dumps({
        "wall": wall, "imports_s": imports_s, "seconds": out["seconds"], "outbox": out["outbox"],
        "routing": out["routing"], "failures": out["failures"], "children": children, "work_once": work_once,
        "parent_cpu": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
        **{k: out[k] for k in partitioned.COLUMNS}}, default=str))


# --------------------------------------------------------------------------- one night


def _run(cmd: list[str], env: dict[str, str], timeout: float = 600) -> str:
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def _result(out: str) -> dict[str, Any]:
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
    return dict(json.loads(line.removeprefix("RESULT ")))


def _sql(pg: Any, *statements: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=pg.port, user=pg.user, dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for st in statements:
                cur.execute(st)
    finally:
        conn.close()


def _save_secret(name: str, value: str, env: dict[str, str]) -> None:
    _run([sys.executable, "-c", "import sys; from prefect.blocks.system import Secret; "
          "Secret(value=sys.argv[2]).save(sys.argv[1], overwrite=True)", name, value], env)


def night(n: int, work: Path, pg: Any, servers_cpu: dict[str, list[int]], api: str,
          base_env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    import servers

    db = f"national_{n}w"
    t = time.perf_counter()
    _sql(pg, f'DROP DATABASE IF EXISTS "{db}"', f'CREATE DATABASE "{db}" TEMPLATE "national_template"')
    base = work / f"{n}w"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(work / "template", base, symlinks=True)
    clone_s = time.perf_counter() - t
    url = f"postgresql+psycopg2://{pg.user}@127.0.0.1:{pg.port}/{db}"
    network = str(base / "demo" / "network.yaml")
    env = {**base_env, "STAFET_DATABASE_URL": url, "STAFET_HOME": str(base / "home")}
    _save_secret("stafet-database-url", url, env)
    _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--name", "nightly-partition"],
         {**env, "STAFET_CHECKOUT": str(ROOT), "STAFET_NETWORK": network})
    wenv = {**{k: v for k, v in base_env.items() if not k.startswith("STAFET_")},
            "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_HOME": str(base / "worker-home")}
    workers = []
    for i in range(n):
        log = open(base / f"worker-{i}.log", "ab")  # noqa: SIM115 - the child keeps it
        cmd = [str(BIN / "prefect"), "worker", "start", "--pool", "stafet", "--type", "process",
               "--name", f"national-{n}w-{i}", "--limit", "1"]
        workers.append(subprocess.Popen(cmd, env=wenv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True))
        log.close()
    try:
        names = {f"national-{n}w-{i}" for i in range(n)}
        t = time.monotonic()
        while True:
            req = urllib.request.Request(f"{api}/work_pools/stafet/workers/filter", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                online = {w["name"] for w in json.loads(r.read()) if w["status"] == "ONLINE"}
            if names <= online:
                break
            if time.monotonic() - t > 180:
                sys.exit("workers did not come online")
            time.sleep(0.5)
        print(f"\n{n} worker(s) online (clone of store and tree {clone_s:.1f} s); load {_load()}; "
              "running the night …", flush=True)
        wpids = [w.pid for w in workers]
        cpu0 = {"workers": tree_cpu(wpids), **{k: tree_cpu(p) for k, p in servers_cpu.items()}}
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        out = _result(_run([sys.executable, __file__, "--phase", "parent", "--network", network,
                            "--partitions", str(args.partitions)], env, timeout=7200))
        out["outer_wall"] = time.perf_counter() - t
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = {"workers": tree_cpu(wpids) - cpu0["workers"],
               **{k: tree_cpu(p) - cpu0[k] for k, p in servers_cpu.items()}}
        cpu["parent"] = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
        out["cpu"] = cpu
        out["load_after"] = _load()
        out["check"] = check(out, url)
        return out
    finally:
        for w in workers:
            servers.signal_tree(w.pid, 15)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                servers.signal_tree(w.pid, 9)


def check(out: dict[str, Any], url: str) -> dict[str, Any]:
    """The night's correctness, from its summary and the store: a list of what is wrong (empty: all well)."""
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.connect() as c:
        handovers = c.execute(sa.text("SELECT count(*) FROM handovers")).scalar_one()
        by_status: dict[str, int] = dict(
            c.execute(sa.text("SELECT status, count(*) FROM handovers GROUP BY status")).all())
        audited = c.execute(sa.text("SELECT count(*) FROM audit_log WHERE action = 'handover.sent'")
                            ).scalar_one()
        held: dict[str, int] = dict(c.execute(sa.text(
            "SELECT rule, count(*) FROM handovers WHERE status = 'held' GROUP BY rule")).all())
    eng.dispose()
    wrong = []
    if out["failures"]:
        wrong.append(f"failures: {out['failures']}")
    bad_children = [ch["name"] for ch in out["children"] if ch["state"] != "COMPLETED"]
    if bad_children:
        wrong.append(f"children not completed: {bad_children}")
    # held: routed but not to be sent (the consent the rule needs is not there): never pending or failed
    if not set(by_status) <= {"acknowledged", "held"}:
        wrong.append(f"handovers by status: {by_status} (each must be acknowledged or held)")
    if set(held) - CONSENT_RULES:
        wrong.append(f"held by a rule that needs no consent: {held}")
    deliverable = handovers - sum(held.values())
    for k in ("sent", "imported", "acknowledged"):
        if out[k] != deliverable:
            wrong.append(f"{k} {out[k]} != {deliverable} handovers to deliver")
    for k in ("duplicates", "rejected", "failed", "held", "retry_later", "quarantined", "rejected_files"):
        if out[k]:
            wrong.append(f"{k}: {out[k]}")
    if audited != deliverable:
        wrong.append(f"{audited} handover.sent audit entries for {deliverable} handovers to deliver")
    return {"handovers": handovers, "by_status": by_status, "held": held, "audited_sent": audited,
            "wrong": wrong}


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --------------------------------------------------------------------------- figures


def figures(r: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per stage: wall, stafet's work, Prefect's seconds; plus the night's totals under ``"night"``."""
    out: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        wall = float(r["seconds"].get(stage, 0.0))
        if stage in PARTITIONED and any(ch["stage"] == stage for ch in r["children"]):
            per_worker: dict[str, float] = {}
            for ch in r["children"]:
                if ch["stage"] == stage:
                    per_worker[ch["worker"]] = per_worker.get(ch["worker"], 0.0) + ch["work_s"]
            work = max(per_worker.values(), default=0.0)
            cpu_work = sum(per_worker.values())
        else:
            work = cpu_work = float(r["work_once"].get(stage, 0.0))
        out[stage] = {"wall": wall, "work": work, "prefect": wall - work, "work_sum": cpu_work,
                      "partitions": sum(1 for ch in r["children"] if ch["stage"] == stage)}
    total_work = sum(v["work"] for v in out.values())
    out["night"] = {"wall": r["wall"], "work": total_work, "prefect": r["wall"] - total_work,
                    "work_sum": sum(v["work_sum"] for v in out.values()), "partitions": len(r["children"])}
    return out


def print_night(n: int, r: dict[str, Any]) -> None:
    f = figures(r)
    rows, sent = r["rows"], r["sent"]
    print(f"  {n} worker(s): night {r['wall']:.1f} s wall (the parent process {r['outer_wall']:.1f} s, its "
          f"imports {r['imports_s']:.1f} s); load after {r['load_after']}")
    print(f"  {'stage':<11} {'parts':>5} {'wall s':>8} {'stafet s':>9} {'Prefect s':>9} {'Prefect':>8}  rate")
    for stage in (*STAGES, "night"):
        v = f[stage]
        rate = ""
        if stage == "ingest":
            rate = f"{rows / v['wall']:,.0f} rows/s" if v["wall"] else ""
        elif stage in ("send", "receive"):
            count = sent if stage == "send" else r["imported"]
            rate = f"{count / v['wall']:,.1f} packages/s" if v["wall"] else ""
        share = v["prefect"] / v["wall"] if v["wall"] else 0.0
        print(f"  {stage:<11} {int(v['partitions']):>5} {v['wall']:>8.1f} {v['work']:>9.1f} "
              f"{v['prefect']:>9.1f} {share:>8.1%}  {rate}")
    c = r["cpu"]
    print(f"  CPU s: workers' trees {c['workers']:.1f} + parent {c['parent']:.1f} = "
          f"{c['workers'] + c['parent']:.1f}; Prefect server {c['prefect_server']:.1f} + its PostgreSQL "
          f"{c['prefect_pg']:.1f}; stafet's PostgreSQL {c['stafet_pg']:.1f}")
    k = r["check"]
    print(f"  counts: {r['files']} files, {rows:,} rows, {r['accepted']:,} accepted, {r['quarantined']} "
          f"quarantined; {k['handovers']:,} handovers, {sent:,} sent, {r['imported']:,} imported, "
          f"{r['acknowledged']:,} acknowledged, {r['duplicates']} duplicates; by status {k['by_status']}; "
          f"held (no consent) by rule {k['held']}")
    print("  check: " + ("OK (every handover sent, imported once, acknowledged; 0 pending/failed)"
                         if not k["wrong"] else "FAILED: " + "; ".join(k["wrong"])), flush=True)


def report(results: dict[int, dict[str, Any]], built: dict[str, Any], load_before: str) -> bool:
    ns = sorted(results)
    figs = {n: figures(results[n]) for n in ns}
    keys = ("files", "rows", "accepted", "sent", "imported", "acknowledged")
    same = len({(*(results[n][k] for k in keys), results[n]["check"]["handovers"]) for n in ns}) == 1
    ok = same and all(not results[n]["check"]["wrong"] for n in ns)
    print(f"\ncounts equal across the nights ({', '.join(f'{n} w' for n in ns)}): {'yes' if same else 'NO'}")
    if 1 in results:
        for n in ns:
            if n == 1:
                continue
            s = results[1]["wall"] / results[n]["wall"]
            print(f"speed-up 1 → {n} workers: {s:.2f}×, efficiency {s / n:.0%}"
                  + ("  (issue 21 aims at ≥ 1.7× for 2)" if n == 2 else ""))
    if 2 in results:
        w, p = results[2]["wall"], figs[2]["night"]["prefect"]
        print(f"target, 2 workers: night {w:.0f} s {'<' if w < 600 else '≥'} 600 s; Prefect's share "
              f"{p / w:.1%} {'<' if p / w < 0.10 else '≥'} 10 %")
    # the markdown table for docs/scaling.md
    print(f"\nMarkdown ({built['munis']} municipalities, {built['members']} members, "
          f"{built['youths']:,} youths, "
          f"{results[ns[0]]['rows']:,} rows in {results[ns[0]]['files']} files, "
          f"{results[ns[0]]['check']['handovers']:,} handovers; load {load_before} before):\n")
    head = "| stage | " + " | ".join(f"{n} w wall s | {n} w Prefect s" for n in ns)
    if 1 in results and len(ns) > 1:
        head += " | " + " | ".join(f"speed-up 1→{n}" for n in ns if n != 1)
    print(head + " |")
    print("|---|" + "---:|" * (head.count("|") - 1))
    for stage in (*STAGES, "night"):
        cells = [f"{figs[n][stage]['wall']:.1f} | {figs[n][stage]['prefect']:.1f}" for n in ns]
        if 1 in results and len(ns) > 1:
            a = figs[1][stage]["wall"]
            cells += [f"{a / figs[n][stage]['wall']:.2f}×" if figs[n][stage]["wall"] > 0.05 else ""
                      for n in ns if n != 1]
        label = f"**{stage}**" if stage == "night" else stage
        if stage in PARTITIONED and figs[ns[0]][stage]["partitions"]:
            label += f" ({int(figs[ns[0]][stage]['partitions'])})"
        print(f"| {label} | " + " | ".join(cells) + " |")
    cpu = [results[n]["cpu"] for n in ns]
    print("| CPU s (workers + parent / Prefect server + its PG / stafet PG) | " + " | ".join(
        f"{c['workers'] + c['parent']:.0f} | "
        f"{c['prefect_server'] + c['prefect_pg']:.0f} / {c['stafet_pg']:.0f}"
        for c in cpu) + (" | " * (len(ns) - 1 if 1 in results else 0)) + " |")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--munis", type=int, default=98)
    ap.add_argument("--youths", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--bits", type=int, default=3072)
    ap.add_argument("--workers", default="1,2,4", help="worker counts, one night each, in this order")
    ap.add_argument("--partitions", type=int, default=8, help="max_partitions: partitions per stage at most")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--phase", choices=["parent", "build"], help=argparse.SUPPRESS)
    ap.add_argument("--network", help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "parent":
        parent(args.network, args.partitions)
        return
    if args.phase == "build":
        print("RESULT " + json.dumps(build(args.dir, args.munis, args.youths, args.events, args.bits)))
        return
    if not 1 <= args.munis <= len(MUNICIPALITIES):
        sys.exit(f"--munis: 1 to {len(MUNICIPALITIES)}")
    import servers

    counts = [int(x) for x in args.workers.split(",")]
    work = args.keep or Path(tempfile.mkdtemp(prefix="stafet-bench-national-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = _load()
    print(f"national night: {args.munis} municipalities, {args.youths:,} youths, about {args.events:,} "
          f"events, RSA-{args.bits}, max_partitions {args.partitions}, workers {counts}; load {load_before}",
          flush=True)
    pg = servers.Postgres(dbname="national_template").start()
    prefect_pg = servers.Postgres(dbname="prefect").start()
    server = None
    try:
        secret, passphrase = secrets.token_hex(32), secrets.token_urlsafe(24)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
        base_env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
        server = _start_server(work / "prefect-server", prefect_pg, base_env)
        base_env.update(PREFECT_API_URL=server["api"], PREFECT_HOME=str(work / "client-home"),
                        STAFET_SECRET=secret, STAFET_KEY_PASSPHRASE=passphrase,
                        PREFECT_LOGGING_LEVEL="WARNING")
        _save_secret("stafet-network-secret", secret, base_env)
        _save_secret("stafet-key-passphrase", passphrase, base_env)
        _run([str(BIN / "prefect"), "work-pool", "create", "stafet", "--type", "process"], base_env)

        t = time.perf_counter()
        built = _result(_run([sys.executable, __file__, "--phase", "build", "--dir", str(work / "template"),
                              "--munis", str(args.munis), "--youths", str(args.youths), "--events",
                              str(args.events), "--bits", str(args.bits)],
                             {**base_env, "STAFET_HOME": str(work / "template" / "home"),
                              "STAFET_DATABASE_URL": pg.url}, timeout=7200))
        print(f"built in {time.perf_counter() - t:.0f} s: {built['members']} members, keys "
              f"{built['keys_s']:.1f} s "
              f"({built['members'] / built['keys_s']:.1f} keys/s); exports {built['exports_s']:.1f} s: "
              f"{built['rows']:,} rows in {built['files']} files of {built['sources']} sources "
              f"({built['moves']:,} moves); history of {args.youths:,} youths into PostgreSQL "
              f"{built['history_s']:.1f} s = {args.youths / built['history_s']:,.0f} records/s "
              "(Store.upsert_records, COPY staging)", flush=True)
        _sql(pg, "CHECKPOINT")
        cpu_pids = {"prefect_server": [server["proc"].pid], "prefect_pg": [prefect_pg.pid],
                    "stafet_pg": [pg.pid]}
        results = {}
        for n in counts:
            results[n] = night(n, work, pg, cpu_pids, server["api"], base_env, args)
            print_night(n, results[n])
            _sql(pg, f'DROP DATABASE IF EXISTS "national_{n}w"')
            if not args.keep:
                shutil.rmtree(work / f"{n}w", ignore_errors=True)
        ok = report(results, built, load_before)
        print(f"\nload after: {_load()}")
        if not ok:
            sys.exit("national night: a check FAILED (above)")
    finally:
        if server is not None:
            servers.end_tree(server["proc"], 15, timeout=20)
        prefect_pg.stop()
        pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _start_server(folder: Path, pg: Any, base_env: dict[str, str]) -> dict[str, Any]:
    """``prefect server start`` on 127.0.0.1 with its database on ``pg`` (asyncpg), stopped by PID."""
    import servers

    folder.mkdir(parents=True, exist_ok=True)
    port = servers.free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**base_env, "PREFECT_HOME": str(folder / "home"), "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
           "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{pg.user}@127.0.0.1:{pg.port}/prefect"}
    with open(folder / "server.log", "ab") as fh:
        proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                                 str(port)], env=env, stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"prefect server exited: {(folder / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=2) as r:
                if r.status == 200:
                    return {"proc": proc, "api": api}
        except OSError:
            pass
        time.sleep(0.25)
    servers.end_tree(proc, 15, timeout=20)
    sys.exit("prefect server not healthy within 180 s")


if __name__ == "__main__":
    main()
