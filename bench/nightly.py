"""Benchmark: one night of a generated network, through Prefect and through plain stafet.night.

    .venv/bin/python bench/nightly.py [--youths 100000] [--events 2000] [--bits 3072] [--keep DIR]

What it builds (not timed):

* a network of 20 organisations, all hosted on this node (keys under one
  ``$STAFET_HOME``, folder endpoints): 5 UUs (Viborg, Skive, Thisted, Randers,
  Silkeborg), 6 vocational schools (EASY-A CSV), 2 gymnasiums (XML), 3 job centres,
  2 family departments and 2 social services departments; a CA, certificates, a CRL;
* 100,000 youths (synthetic CPRs with real birth dates, aged 15-29, the 7th digit per
  the CPR office's century table), each with one enrolment at one of the 8 schools,
  written straight into the store with ``Store.upsert_records`` in batches of 20,000
  (the store's bulk path; no files, no validation: this is the history a network has,
  not part of the night);
* a night's exports, about ``--events`` rows over every format the readers support,
  one drop folder per sending system (19 sources): EASY-A CSV (cp1252) from 6 schools,
  gymnasium XML from 2, job-centre orders (UTF-8 + BOM) from 3 municipalities, UU plans
  (XML) from 5, family transition cases (ISO-8859-1) from 2, and consents (UTF-8) from
  5. Dropouts and concern flags go to the home municipality's UU by duty; orders, plans
  with support needs and transition cases carry the consent they need.

Then the same store and drop folders are copied twice and the night runs once on each
copy, each in its own process:

* ``direct``: the flow's stages as plain ``stafet.night`` calls, one after the other;
* ``prefect``: ``flows.nightly.nightly_sync`` on an ephemeral Prefect (temporary local
  server, SQLite, ``PREFECT_HOME`` in the run's folder). The temporary server's start
  is paid by a trivial flow run first and reported on its own (a worker talking to a
  real server does not pay it). Stage times come from Prefect's own task-run records;
  each stage ends with its last task, so the stages add up to the flow's wall time.

Prefect's share = (flow wall time - direct wall time) / flow wall time. Note that the
flow runs the per-source ingests, the per-recipient sends and the per-organisation
receives concurrently in threads, the direct run one after the other.

Targets (issue 8): the whole night < 5 minutes on this 2-core machine; Prefect < 10 %.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TODAY = dt.date.today()
MUNIS = {"791": "viborg", "779": "skive", "787": "thy", "730": "randers", "740": "silkeborg"}
UUS = [(f"uu-{name}", muni) for muni, name in MUNIS.items()]
VOCATIONAL = [("779008", "791", "Mercantec"), ("779010", "779", "Skive College"),
              ("787011", "787", "EUC Nordvest"), ("730012", "730", "Tradium"),
              ("740013", "740", "Silkeborg Tekniske Skole"), ("791014", "791", "Viborg Handelsskole")]
GYMNASIUMS = [("751001", "791", "Viborg Katedralskole"), ("751002", "779", "Skive Gymnasium")]
JOBCENTRES = [("jobcenter-viborg", "791"), ("jobcenter-skive", "779"), ("jobcenter-randers", "730")]
FAMILY = [("familie-viborg", "791"), ("familie-skive", "779")]
SOCIAL = [("social-viborg", "791"), ("social-skive", "779")]
FIRST = ["Søren", "Mathilde", "Ali", "Jonas", "Freja", "Noah", "Åse", "Ida", "Emil", "Ørjan", "Zeynep"]
LAST = ["Ægidius", "Østergaard", "Hansen", "Bæk", "Kjær", "Dahl", "Møller", "Holm", "Yilmaz"]
EDU = [("1640", "Tømrer"), ("1650", "Smed"), ("1020", "Frisør"), ("1300", "Elektriker"), ("1199", "STX")]
BIRTH_FROM, BIRTH_TO = dt.date(1997, 12, 1), dt.date(2011, 6, 30)


def members() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for org, muni in UUS:
        out.append({"id": org, "kind": "guidance", "name": f"UU {MUNIS[muni].title()}", "municipality": muni,
                    "serves": [muni]})
    for org, muni, name in VOCATIONAL + GYMNASIUMS:
        out.append({"id": org, "kind": "institution", "name": name, "municipality": muni})
    for kind, group in (("job_centre", JOBCENTRES), ("family_services", FAMILY),
                        ("social_services", SOCIAL)):
        for org, muni in group:
            out.append({"id": org, "kind": kind, "name": org.replace("-", " ").title(), "municipality": muni})
    for m in out:
        m.update(email=f"{m['id']}@sikkermail.bench.dk", endpoint=f"folder:inbox/{m['id']}",
                 certificate=f"certs/{m['id']}.pem")
    return out


# --------------------------------------------------------------------------- youths


class Youth:
    __slots__ = ("born", "cpr", "institution", "muni")

    def __init__(self, cpr: str, born: dt.date, muni: str, institution: str) -> None:
        self.cpr, self.born, self.muni, self.institution = cpr, born, muni, institution

    def age_on(self, day: dt.date) -> int:
        return day.year - self.born.year - ((day.month, day.day) < (self.born.month, self.born.day))


def population(n: int, rng: random.Random) -> list[Youth]:
    """``n`` youths with distinct CPRs; birth dates 1997-12 .. 2011-06 (15-29 years old)."""
    days = (BIRTH_TO - BIRTH_FROM).days
    used: dict[dt.date, int] = {}
    schools = [s[0] for s in VOCATIONAL + GYMNASIUMS]
    school_muni = {s[0]: s[1] for s in VOCATIONAL + GYMNASIUMS}
    out = []
    for _ in range(n):
        born = BIRTH_FROM + dt.timedelta(days=rng.randrange(days))
        k = used.get(born, 0)
        used[born] = k + 1
        # 7th digit: 0-3 → 1900-1999; 4 or 9 → 2000-2036; 5-8 → 2000-2057 (yy ≤ 57)
        d7 = (k // 1000) % 4 if born.year < 2000 else 4 + (k // 1000) % 6
        cpr = f"{born:%d%m%y}{d7}{k % 1000:03d}"
        school = rng.choice(schools)
        # most youths live where their school is; some commute from a neighbour municipality
        muni = school_muni[school] if rng.random() < 0.8 else rng.choice(list(MUNIS))
        out.append(Youth(cpr, born, muni, school))
    return out


def dash(cpr: str) -> str:
    return f"{cpr[:6]}-{cpr[6:]}"


# --------------------------------------------------------------------------- the night's exports


class Night:
    """The night's exports, and the consents they need (collected per municipality)."""

    def __init__(self, youths: list[Youth], events: int, rng: random.Random) -> None:
        self.y, self.rng, self.events = youths, rng, events
        self.by_school: dict[str, list[Youth]] = {}
        self.by_muni: dict[str, list[Youth]] = {}
        for y in youths:
            self.by_school.setdefault(y.institution, []).append(y)
            self.by_muni.setdefault(y.muni, []).append(y)
        self.consents: dict[str, list[list[str]]] = {m: [] for m in MUNIS}
        self.counter = 0
        self.rows = 0

    def day(self) -> dt.date:
        return TODAY - dt.timedelta(days=self.rng.randrange(1, 21))

    def consent(self, y: Youth, recipients: str, scopes: str, situation: str) -> str:
        self.counter += 1
        ref = f"S-{TODAY.year}-{self.counter:05d}"
        signed = TODAY - dt.timedelta(days=self.rng.randrange(20, 60))
        by = "ung" if y.age_on(signed) >= 18 else "foraelder"
        signer = f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"
        self.consents[y.muni].append([ref, dash(y.cpr), by, signer, signed.isoformat(), signed.isoformat(),
                                      (TODAY + dt.timedelta(days=300)).isoformat(), recipients, scopes,
                                      situation, ""])
        return ref

    def easya(self, school: str, n: int) -> tuple[str, bytes]:
        out = io.StringIO(newline="")
        out.write("Instnr;Afdeling;CprNr;Fornavn;Efternavn;Bopaelskommune;Haendelse;Haendelsesdato;Uddannelse;"
                  "Udd_betegnelse;Startdato;Afbrudsaarsag;Afbrudsaarsag_tekst;Fravaersprocent;Note;Kontakt_navn;"
                  "Kontakt_email;\r\n")
        for i, y in enumerate(self.rng.sample(self.by_school[school], n)):
            ev = self.rng.choices(["AFBRUD", "FRAFALDSTRUET", "OPTAG", "GENNEMFOERT"], [30, 20, 35, 15])[0]
            day = self.day()
            start = day - dt.timedelta(days=self.rng.randrange(30, 600))
            code, edu = self.rng.choice(EDU[:4])
            reason = f"0{self.rng.randrange(1, 9)}" if ev == "AFBRUD" else ""
            text = '"Ønsker omvalg; vil være smed"' if ev == "AFBRUD" else ""
            absence = f"{self.rng.randrange(0, 60)},{self.rng.randrange(10)}" if ev != "OPTAG" else ""
            note = '"Højt fravær,\r\nsamtale aftalt"' if i % 40 == 0 else ""
            cpr = dash(y.cpr) if i % 2 else y.cpr
            out.write(f"{school};EUD;{cpr};{self.rng.choice(FIRST)};{self.rng.choice(LAST)};{y.muni};{ev};"
                      f"{day:%d-%m-%Y};{code};{edu};{start:%d-%m-%Y};{reason};{text};{absence};{note};"
                      f"Åse Møller;aase.moeller@school.example;\r\n")
        self.rows += n
        return f"{school}_haendelser_{TODAY:%Y%m%d}02.csv", out.getvalue().encode("cp1252")

    def gymnasium(self, school: str, n: int) -> tuple[str, bytes]:
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 '<Elevhaendelser xmlns="urn:stafet:formats:skoleadm:1" '
                 f'institution="{school}" dannet="{TODAY}T02:00:00">']
        for y in self.rng.sample(self.by_school[school], n):
            ev = self.rng.choices(["afbrud", "frafaldstruet", "optag", "gennemfoert"], [30, 20, 35, 15])[0]
            day = self.day()
            start = day - dt.timedelta(days=self.rng.randrange(30, 600))
            reason = (f'<Aarsag kode="0{self.rng.randrange(1, 9)}">Længerevarende sygdom</Aarsag>'
                      if ev == "afbrud" else "")
            parts.append(f'<Haendelse type="{ev}"><Cpr>{dash(y.cpr)}</Cpr>'
                         f"<Navn>{self.rng.choice(FIRST)} {self.rng.choice(LAST)}</Navn>"
                         f'<Bopaelskommune>{y.muni}</Bopaelskommune><Uddannelse kode="1199">STX</Uddannelse>'
                         f"<Dato>{day}</Dato><Startdato>{start}</Startdato>{reason}"
                         f"<Fravaer>{self.rng.randrange(0, 40)}.5</Fravaer>"
                         '<Kontakt navn="Per Lund" email="pl@gym.example"/></Haendelse>')
        parts.append("</Elevhaendelser>\n")
        self.rows += n
        return f"{school}_elevhaendelser_{TODAY:%Y%m%d}0200.xml", "\n".join(parts).encode()

    def jobcentre(self, org: str, muni: str, n: int) -> tuple[str, bytes]:
        out = io.StringIO(newline="")
        w = csv.writer(out, delimiter=";", lineterminator="\r\n")
        w.writerow(["cpr", "paalaeg_id", "maal_uddannelse", "maal_institution", "frist", "mentor_bevilget",
                    "mentor_navn", "sagsbehandler_navn", "sagsbehandler_tlf", "sagsbehandler_email", "status",
                    "status_dato", "samtykke_ref"])
        adults = [y for y in self.by_muni[muni] if 19 <= y.age_on(TODAY) <= 28]
        for y in self.rng.sample(adults, n):
            status = self.rng.choices(["OPHOERT_UDDANNELSESSTART", "AKTIV", "OPHOERT_ANDET"], [50, 40, 10])[0]
            school, _, _ = self.rng.choice(VOCATIONAL)
            ref = ""
            if status == "OPHOERT_UDDANNELSESSTART":
                ref = self.consent(y, f"{school}|guidance", "paalaeg|uddannelsesplan",
                                   "Overgang til uddannelse")
            self.counter += 1
            w.writerow([y.cpr, f"UP-{self.counter:06d}", "Smed", school if status != "AKTIV" else "",
                        (TODAY + dt.timedelta(days=60)).isoformat(), "ja", "Kim Brandt", "Lene Juhl",
                        "+4587871234", "lene.juhl@jobcenter.example", status, self.day().isoformat(), ref])
        self.rows += n
        return f"jobcenter_{muni}_paalaeg_{TODAY:%Y%m%d}.csv", b"\xef\xbb\xbf" + out.getvalue().encode()

    def uu_plans(self, muni: str, n: int) -> tuple[str, bytes]:
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 '<Uddannelsesplaner xmlns="urn:stafet:formats:uu:1">']
        for y in self.rng.sample(self.by_muni[muni], n):
            self.counter += 1
            school, _, _ = self.rng.choice(VOCATIONAL)
            support = self.rng.random() < 0.5
            if support:
                self.consent(y, school, "uddannelsesplan|stoettebehov", "Uddannelsesplan med støttebehov")
            day = self.day()
            parts.append(f'<Plan id="UP-{self.counter:06d}" opdateret="{day}"><Cpr>{dash(y.cpr)}</Cpr>'
                         f'<MaalUddannelse kode="1640" institution="{school}">Tømrer</MaalUddannelse>'
                         '<Parathed faglig="parat" personlig="parat" social="ikke-parat"/>'
                         + ("<Stoettebehov><SPS/><Mentor/></Stoettebehov>" if support else "")
                         + '<Vejleder navn="Bo Riis" email="bo.riis@uu.example" tlf="+4587870000"/>'
                         f'<Kontakt dato="{day}" form="samtale"/></Plan>')
        parts.append("</Uddannelsesplaner>\n")
        self.rows += n
        return f"uu_{muni}_planer_{TODAY:%Y%m%d}.xml", "\n".join(parts).encode()

    def family(self, muni: str, n: int) -> tuple[str, bytes]:
        out = io.StringIO(newline="")
        out.write("CPR;Sagsnr;Overgangsmoede_dato;SEL76_efterværn;SEL85_stoette;Modtager;Raadgiver_navn;"
                  "Raadgiver_email;Samtykke_ref\r\n")
        near18 = [y for y in self.by_muni[muni] if 16 <= y.age_on(TODAY) <= 17]
        for y in self.rng.sample(near18, n):
            self.counter += 1
            receiver = self.rng.choice(["jobcenter", "socialafdeling", "ingen"])
            ref = self.consent(y, receiver, "overgang|historik", "Overgang til voksenområdet ved 18 år") \
                if receiver != "ingen" else ""
            meeting = (TODAY + dt.timedelta(days=self.rng.randrange(-30, 90))).strftime("%d-%m-%Y")
            out.write(f"{dash(y.cpr)};F-{self.counter:05d};{meeting};J;N;{receiver};Hanne Sørensen;"
                      f"hs@familie.example;{ref}\r\n")
        self.rows += n
        return f"familie_{muni}_overgange_{TODAY:%Y%m%d}.csv", out.getvalue().encode("latin-1")

    def consent_files(self) -> list[tuple[str, bytes]]:
        files = []
        for muni, rows in self.consents.items():
            out = io.StringIO(newline="")
            w = csv.writer(out, delimiter=";", lineterminator="\r\n")
            w.writerow(["samtykke_ref", "cpr", "underskrevet_af", "underskriver_navn", "underskrevet_dato",
                        "gyldig_fra", "gyldig_til", "modtagere", "oplysninger", "situation",
                        "tilbagekaldt_dato"])
            w.writerows(rows)
            self.rows += len(rows)
            files.append((f"samtykker_{muni}_{TODAY:%Y%m%d}.csv", out.getvalue().encode()))
        return files


def exports(youths: list[Youth], events: int, rng: random.Random) -> tuple[dict[str, list[tuple[str, bytes]]],
                                                                              int]:
    """source name → its files. Shares of ``events``: schools 60 %, orders 10 %, plans 15 %,
    family 5 %, and the consents those need (about 10 %)."""
    night = Night(youths, events, rng)
    per = {
        "easy-a": events * 45 // 100 // len(VOCATIONAL), "gym": events * 15 // 100 // len(GYMNASIUMS),
        "job": events * 10 // 100 // len(JOBCENTRES), "uu": events * 15 // 100 // len(UUS),
        "fam": events * 5 // 100 // len(FAMILY),
    }
    src: dict[str, list[tuple[str, bytes]]] = {}
    for school, _, _ in VOCATIONAL:
        src[f"easy-a-{school}"] = [night.easya(school, per["easy-a"])]
    for school, _, _ in GYMNASIUMS:
        src[f"gymnasium-{school}"] = [night.gymnasium(school, per["gym"])]
    for org, muni in JOBCENTRES:
        src[org] = [night.jobcentre(org, muni, per["job"])]
    for org, muni in UUS:
        src[f"{org}-planer"] = [night.uu_plans(muni, per["uu"])]
    for org, muni in FAMILY:
        src[org] = [night.family(muni, per["fam"])]
    for name, data in night.consent_files():
        src[f"samtykker-{name.split('_')[1]}"] = [(name, data)]
    return src, night.rows


# --------------------------------------------------------------------------- building


def build(base: Path, youths_n: int, events: int, bits: int) -> dict[str, Any]:
    """The network, keys, pre-populated store and drop folders under ``base`` (demo/ + home/)."""
    import yaml
    from cryptography.hazmat.primitives import serialization

    from keys import KeyStore

    os.environ["STAFET_HOME"] = str(base / "home")
    rng = random.Random(20261122)
    demo, home = base / "demo", base / "home"
    t = time.perf_counter()
    ca = KeyStore(home)
    ca.init_ca(bits=bits)
    (demo / "certs").mkdir(parents=True, exist_ok=True)
    shutil.copy(ca.ca_dir / "ca.pem", demo / "certs" / "ca.pem")
    ms = members()
    for m in ms:
        ca.new_key(m["id"], display=m["name"], email=m["email"], bits=bits)
        ca.issue(m["id"])
        (demo / "certs" / f"{m['id']}.pem").write_bytes(
            ca.current(m["id"]).cert.public_bytes(serialization.Encoding.PEM))
        (demo / "inbox" / m["id"]).mkdir(parents=True, exist_ok=True)
    ca.write_crl([demo / "certs" / "crl.pem"])
    keys_s = time.perf_counter() - t

    youths = population(youths_n, rng)
    sources, rows = exports(youths, events, rng)
    config = {"network": "bench", "trust_anchors": ["certs/ca.pem"], "crls": ["certs/crl.pem"],
              "ack_limit_hours": 48, "members": ms,
              "sources": [{"name": s, "location": f"folder:drop/{s}"} for s in sources]}
    network = demo / "network.yaml"
    network.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    for s, files in sources.items():
        (demo / "drop" / s).mkdir(parents=True, exist_ok=True)
        for name, data in files:
            (demo / "drop" / s / name).write_bytes(data)

    # History: every youth enrolled at one school, straight into the store in batches.
    t = time.perf_counter()
    write_history(network, home, youths, rng)
    return {"network": str(network), "keys_s": keys_s, "history_s": time.perf_counter() - t,
            "sources": len(sources), "files": sum(len(f) for f in sources.values()), "rows": rows}


def write_history(network: Path, home: Path, youths: list[Youth], rng: random.Random) -> None:
    """Every youth enrolled at one school, into the store in batches of 20,000 (its bulk path)."""
    from mappings import easy_a as easya
    from stafet.context import open_context
    from stafet.core.models import Provenance

    ctx = open_context(network, home=home)
    now = dt.datetime.now()
    batch: list[Any] = []
    for i, y in enumerate(youths):
        start = dt.date(TODAY.year - rng.randrange(1, 3), 8, rng.randrange(1, 28))
        fields = {"Instnr": y.institution, "Afdeling": "EUD", "CprNr": y.cpr, "Bopaelskommune": y.muni,
                  "Haendelse": "OPTAG", "Haendelsesdato": f"{start:%d-%m-%Y}", "Uddannelse": "1640",
                  "Udd_betegnelse": "Tømrer", "Startdato": f"{start:%d-%m-%Y}", "Afbrudsaarsag": "",
                  "Fravaersprocent": ""}
        prov = Provenance(source="easy-a", file=f"{y.institution}_haendelser_{start:%Y%m%d}02.csv", row=i + 2,
                          received_at=now)
        batch.append(easya.map_row(fields, prov))
        if len(batch) == 20_000 or i == len(youths) - 1:
            with ctx.store.session() as s:
                ctx.store.upsert_records(s, batch, with_ids=False)
            batch = []
    ctx.store.engine.dispose()


# --------------------------------------------------------------------------- the two runs


def tree_cpu() -> float:
    """CPU seconds (user + system) of this process and its descendants, reaped ones included."""
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
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        if pid in stats:
            total += sum(int(x) for x in stats[pid][11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def flow_threads() -> int:
    """The flow's thread fan-out (``flows.nightly.MAX_THREADS``)."""
    from flows.nightly import MAX_THREADS

    return MAX_THREADS


def run_direct(network: str, threads: int = 1) -> dict[str, Any]:
    """The flow's stages as plain relay calls: one after the other, or fanned out like the flow."""
    from concurrent.futures import ThreadPoolExecutor

    from stafet import night

    ex = ThreadPoolExecutor(max_workers=max(threads, 1))

    def each(fn: Any, items: list[str]) -> list[Any]:
        return list(ex.map(fn, items)) if threads > 1 else [fn(i) for i in items]

    st: dict[str, float] = {}
    cpu0 = tree_cpu()
    t0 = t = time.perf_counter()
    names = night.source_names(network)   # opens the context: store, vault, keys, network
    st["open"] = time.perf_counter() - t
    t = time.perf_counter()
    files = [f for fs in each(lambda n: night.ingest_source(network, n), names) for f in fs]
    st["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    routed = night.route(network)
    st["route"] = time.perf_counter() - t
    t = time.perf_counter()
    sent = each(lambda r: night.send(network, [r]), night.pending_recipients(network))
    st["send"] = time.perf_counter() - t
    t = time.perf_counter()
    received = [r for _ in range(2) for r in each(lambda o: night.receive(network, o),
                                                 night.hosted_orgs(network))]
    st["receive/receipts"] = time.perf_counter() - t
    t = time.perf_counter()
    waiting = night.unacknowledged(network)
    night.deadlines(network)
    night.report(network)
    night.outbox_counts(network)
    st["deadlines/report"] = time.perf_counter() - t
    ex.shutdown()
    return {"stages": st, "wall": time.perf_counter() - t0, "cpu": tree_cpu() - cpu0, "threads": threads,
            "counts": {
        "files": len(files), "rows": sum(f["rows"] for f in files),
        "accepted": sum(f["accepted"] for f in files), "quarantined": sum(f["quarantined"] for f in files),
        "handovers": routed, "sent": sum(s["sent"] for s in sent),
        "acknowledged": sum(r["acknowledged"] for r in received), "unacknowledged": len(waiting)}}


def run_prefect(network: str) -> dict[str, Any]:
    """nightly_sync on an ephemeral Prefect; stage times from Prefect's task runs."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.nightly import nightly_sync

    @flow(name="warm-up")
    def warm_up() -> None:
        return None

    t = time.perf_counter()
    warm_up()
    server_s = time.perf_counter() - t
    cpu0 = tree_cpu()
    t = time.perf_counter()
    state = nightly_sync(network, return_state=True)
    wall = time.perf_counter() - t
    cpu = tree_cpu() - cpu0
    summary = state.result()
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as c:
        fr = c.read_flow_run(run_id)
        tasks: list[Any] = []
        while len(tasks) % 200 == 0:  # the API pages by at most 200
            page = c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
                                    limit=200, offset=len(tasks))
            tasks += page
            if not page:
                break
    ends: dict[str, float] = {}
    for tr in tasks:
        stage = tr.name.rsplit("-", 1)[0]
        if tr.end_time:
            ends[stage] = max(ends.get(stage, 0.0), tr.end_time.timestamp())
    order = [("ingest", "ingest-source"), ("route", "route"), ("send", "send"),
             ("receive/receipts", "receive"), ("deadlines/report", "report")]
    st: dict[str, float] = {}
    prev = fr.start_time.timestamp()
    for label, task in order:
        st[label] = ends[task] - prev
        prev = ends[task]
    st["summary, artifact"] = fr.end_time.timestamp() - prev
    return {"stages": st, "wall": wall, "cpu": cpu, "server_start": server_s, "task_runs": len(tasks),
            "flow_run_s": (fr.end_time - fr.start_time).total_seconds(),
            "counts": {k: summary[k] for k in ("files", "rows", "accepted", "quarantined", "sent",
                                               "acknowledged", "unacknowledged")} | {
                "handovers": summary["routing"], "failures": summary["failures"]}}


def phase(kind: str, base: Path) -> None:
    network = str(base / "demo" / "network.yaml")
    os.environ.update(STAFET_HOME=str(base / "home"), PREFECT_HOME=str(base / "prefect"),
                      PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                      PREFECT_LOGGING_LEVEL="WARNING", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
    import logging

    from stafet.core.logs import setup_logging

    setup_logging(logging.WARNING)
    if kind == "prefect":
        out = run_prefect(network)
    else:
        out = run_direct(network, threads=flow_threads() if kind == "threads" else 1)
    print("RESULT " + json.dumps(out, default=str))


def _child(kind: str, base: Path, env: dict[str, str], extra: list[str] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--phase", kind, "--dir", str(base), *(extra or [])]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
    if p.returncode != 0:
        sys.exit(f"{kind} run failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return dict(json.loads(line.removeprefix("RESULT ")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--youths", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=2_000)
    ap.add_argument("--bits", type=int, default=3072, help="RSA key size of the organisations")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--phase", choices=["build", "direct", "threads", "prefect"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "build":
        print("RESULT " + json.dumps(build(args.dir, args.youths, args.events, args.bits)))
        return
    if args.phase:
        phase(args.phase, args.dir)
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="stafet-bench-nightly-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STAFET_", "PREFECT_"))}
    env.update(STAFET_SECRET=secrets.token_hex(32), STAFET_KEY_PASSPHRASE=secrets.token_urlsafe(24),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    if args.keep:  # the secrets of the kept store, to run a phase again by hand
        (work / "env.json").write_text(json.dumps({k: env[k] for k in ("STAFET_SECRET",
                                                                       "STAFET_KEY_PASSPHRASE")}))
    try:
        print(f"building: 20 organisations, {args.youths:,} youths, about {args.events:,} events "
              f"(RSA-{args.bits}) in {work}", flush=True)
        built = _child("build", work / "template", env, ["--youths", str(args.youths), "--events",
                                                          str(args.events), "--bits", str(args.bits)])
        print(f"  keys {built['keys_s']:.1f} s, history of {args.youths:,} enrolments "
              f"{built['history_s']:.1f} s, {built['files']} files in {built['sources']} sources, "
              f"{built['rows']:,} rows", flush=True)
        results = {}
        for kind in ("direct", "threads", "prefect"):
            shutil.copytree(work / "template", work / kind)
            print(f"running the night: {kind} …", flush=True)
            results[kind] = _child(kind, work / kind, env)
            print(f"  {results[kind]['wall']:.1f} s: " + ", ".join(
                f"{k} {v:.1f}" for k, v in results[kind]["stages"].items()), flush=True)
        report(results)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def report(r: dict[str, Any]) -> None:
    d, t, p = r["direct"], r["threads"], r["prefect"]
    cols = f"{'direct':>9} {'threads':>9} {'prefect':>9}"
    print(f"\ncounts             {cols}")
    for k in ("files", "rows", "accepted", "quarantined", "sent", "acknowledged", "unacknowledged"):
        print(f"  {k:<16} {d['counts'][k]:>9} {t['counts'][k]:>9} {p['counts'][k]:>9}")
    print(f"  handovers: {p['counts']['handovers']}")
    if p["counts"]["failures"]:
        print(f"  FAILURES in the flow: {p['counts']['failures']}")
    print(f"\nwall time, seconds {cols}")
    for stage in ("open", "ingest", "route", "send", "receive/receipts", "deadlines/report",
                  "summary, artifact"):
        print(f"  {stage:<16} " + " ".join(f"{x['stages'].get(stage, 0):>9.1f}" for x in (d, t, p)))
    print(f"  {'whole night':<16} " + " ".join(f"{x['wall']:>9.1f}" for x in (d, t, p)))
    print(f"  {'CPU s, tree':<16} " + " ".join(f"{x['cpu']:>9.1f}" for x in (d, t, p)))
    print(f"\ndirect = relay stages one after the other; threads = the same calls fanned out over "
          f"{t['threads']} threads like the flow; prefect = nightly_sync")
    print(f"prefect: temporary server start (once per process, before the night) {p['server_start']:.1f} s; "
          f"{p['task_runs']} task runs; the flow run {p['flow_run_s']:.1f} s by its own record")

    def share(x: float, base: float) -> str:
        return f"({x:.1f} - {base:.1f}) / {x:.1f} = {(x - base) / x:.1%}"

    print(f"prefect's share, wall, against threads: {share(p['wall'], t['wall'])}; "
          f"against direct: {share(p['wall'], d['wall'])}  (target < 10 %)")
    print(f"prefect's share, CPU, against threads: {share(p['cpu'], t['cpu'])}; "
          f"against direct: {share(p['cpu'], d['cpu'])}")
    night = p["wall"] + p["server_start"]
    print(f"whole night through Prefect, temporary server start included: {night:.1f} s (target < 300 s): "
          f"{'OK' if night < 300 else 'MISSED'}")


if __name__ == "__main__":
    main()
