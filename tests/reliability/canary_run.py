"""The CPR canary night, run as its own process by ``test_canary.py``.

    python tests/reliability/canary_run.py RUN_DIR

Builds the demo network in ``RUN_DIR`` (``home/``, ``demo/``), drops the published
samples plus :data:`CANARY_FILE` — rows about youths with known synthetic CPRs
(:data:`CANARIES`), some of them broken so that they go to quarantine, some with a CPR
and spreadsheet formulas and HTML in their free text — then runs what operations run:
``stafet ingest`` (the steward's HTML report), the ``nightly-sync`` flow on Prefect,
UU Skive's ``receive`` flow on its own node, and ``nightly-sync`` again. Every log
record at DEBUG goes to ``RUN_DIR/stafet.log`` (through stafet's logging setup).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

# Synthetic CPRs (birth dates 2008-2010, 7th digit 4: born in the 2000s): not real persons.
CANARIES = ["0101084007", "0202094012", "1503104123", "3112074555", "0505084999", "2406094321"]
CANARY_FILE = "779008_haendelser_2026112204.csv"
INGEST_FILE = "779008_haendelser_2026112205.csv"
FORMULAS = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)"]
MARKUP = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]

HEADER = ("Instnr;Afdeling;CprNr;Fornavn;Efternavn;Bopaelskommune;Haendelse;Haendelsesdato;Uddannelse;"
          "Udd_betegnelse;Startdato;Afbrudsaarsag;Afbrudsaarsag_tekst;Fravaersprocent;Note;Kontakt_navn;"
          "Kontakt_email")


def dashed(c: str) -> str:
    return f"{c[:6]}-{c[6:]}"


def forms(c: str) -> list[str]:
    """The written forms of a CPR that must appear nowhere."""
    return [c, dashed(c), f"{c[:6]} {c[6:]}"]


def _row(cpr: str, event: str, date: str, first: str = "Canary", text: str = "", note: str = "",
         muni: str = "791", reason: str = "") -> str:
    return ";".join(["779008", "EUD", cpr, first, "Fugl", muni, event, date, "1640", "Tømrer", "04-08-2025",
                     reason, text, "12,5", note, "Åse Møller", "aase@mercantec.example"])


def canary_rows(offset: int) -> list[str]:
    """Rows about the canaries: routable dropouts and concerns, and broken rows."""
    c = CANARIES
    rows = [
        _row(dashed(c[0 + offset]), "AFBRUD", "18-11-2026", text=FORMULAS[0] + " " + MARKUP[0], reason="05",
             note=f"bror {dashed(c[1])} ringede"),
        _row(c[1 + offset], "FRAFALDSTRUET", "19-11-2026", first=MARKUP[1], note=FORMULAS[1]),
        _row(dashed(c[2 + offset]), "AFBRUD", "32-13-2026", text=FORMULAS[2]),     # bad date → quarantine
        _row(c[2 + offset] + "9", "OPTAG", "19-11-2026", note=FORMULAS[3]),        # 11 digits → quarantine
        ";".join(["779008", "EUD", dashed(c[3]), "Kort"]),                         # too few fields
    ]
    return rows


def write(path: Path, rows: list[str]) -> None:
    path.write_bytes(("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp1252", errors="replace"))


def main() -> None:
    run = Path(sys.argv[1]).resolve()
    home, demo = run / "home", run / "demo"
    os.environ.update(STAFET_HOME=str(home), PREFECT_HOME=str(home / "prefect"),
                      PREFECT_LOGGING_LEVEL="DEBUG", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                      DO_NOT_TRACK="1",
                      PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300")
    from stafet.core.logs import setup_logging

    logging.getLogger().addHandler(logging.FileHandler(run / "stafet.log"))
    setup_logging(logging.DEBUG)
    from stafet.core.vault import load_secret
    from stafet.demo.network import OWN_NODE, member_home, setup_demo

    network = setup_demo(demo, home, bits=2048)
    load_secret(home, create=True)
    for org in OWN_NODE:
        load_secret(member_home(demo, org), create=True)
    write(demo / "drop" / "easy-a" / CANARY_FILE, canary_rows(0))
    # the steward's path: `stafet ingest` writes the HTML validation report
    extra = run / INGEST_FILE
    write(extra, canary_rows(3))
    p = subprocess.run([sys.executable, "-m", "stafet", "ingest", "--network", str(network), str(extra)],
                       capture_output=True, text=True, env=os.environ | {"COLUMNS": "200"})
    with open(run / "cli.log", "w") as fh:
        fh.write(p.stdout + p.stderr)
    from flows.nightly import nightly_sync, receive

    nightly_sync(str(network))
    for org in OWN_NODE:
        receive(str(network), org, str(member_home(demo, org)))
    nightly_sync(str(network))
    print("canary night done", flush=True)


if __name__ == "__main__":
    main()
