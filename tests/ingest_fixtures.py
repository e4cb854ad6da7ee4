"""Helpers shared by the ingest tests: samples, the test network, an opened store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from stafet.core.config import Network, load_network
from stafet.core.vault import Vault
from stafet.store import Store

TESTS = Path(__file__).resolve().parent
SAMPLES = TESTS / "samples"
NETWORK_YAML = TESTS / "ingest_network.yaml"
# The samples were exported on 2026-11-21; ingest them "the next morning".
NOW = datetime(2026, 11, 22, 6, 0)
SECRET = bytes(range(32))

EASYA = "779008_haendelser_2026112102.csv"
GYMNASIUM = "751001_elevhaendelser_202611210200.xml"
JOBCENTER = "jobcenter_791_paalaeg_20261121.csv"
UU = "uu_791_planer_20261120.xml"
FAMILIE = "familie_791_overgange_20261121.csv"
SAMTYKKER = "samtykker_791_20261121.csv"
ALL_SAMPLES = (EASYA, GYMNASIUM, JOBCENTER, UU, FAMILIE, SAMTYKKER)


def network() -> Network:
    """The test network (institutions 779008 and 751001)."""
    return load_network(NETWORK_YAML)


def open_store(home: Path) -> Store:
    """A fresh SQLite store under ``home``."""
    return Store(f"sqlite:///{home / 'stafet.db'}", Vault(SECRET))


EASYA_HEADER = ("Instnr;Afdeling;CprNr;Fornavn;Efternavn;Bopaelskommune;Haendelse;Haendelsesdato;Uddannelse;"
                "Udd_betegnelse;Startdato;Afbrudsaarsag;Afbrudsaarsag_tekst;Fravaersprocent;Note;Kontakt_navn;"
                "Kontakt_email")


def easya_row(cpr: str = "120308-4127", event: str = "AFBRUD", date: str = "17-11-2026",
              start: str = "04-08-2025", reason: str = "05", text: str = "Omvalg", absence: str = "18,5",
              inst: str = "779008", note: str = "", programme: str = "1640") -> str:
    """One EASY-A data row (no line end)."""
    return (f"{inst};EUD;{cpr};Søren;Ægidius;791;{event};{date};{programme};Tømrer;{start};{reason};{text};"
            f"{absence};{note};Åse Møller;aase@mercantec.example")


def write_easya(path: Path, rows: list[str], *, header: str = EASYA_HEADER, trailing: str = "",
                encoding: str = "cp1252") -> Path:
    """Write an EASY-A file (CRLF, cp1252) with ``rows``; ``trailing=';'`` adds the optional ';'."""
    lines = [header + trailing] + [r + trailing for r in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


SAMPLE_DIRS = (TESTS.parent / "stafet" / "demo" / "data", SAMPLES,
               TESTS.parents[1] / "shared" / "formats" / "samples")
"""Where a source's sample export may live: the demo's data, the tests' samples, the
network's shared format samples (``../shared`` beside the repository)."""


def sample_of(source: Any) -> Path | None:
    """The first sample export named like ``source``'s files (a :class:`mappings.Source`), or None."""
    for folder in SAMPLE_DIRS:
        if folder.is_dir():
            hits = sorted(p for p in folder.iterdir() if source.matches(p.name))
            if hits:
                return hits[0]
    return None
