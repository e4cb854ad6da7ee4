"""``bench/national.py``'s generator: the national network's exports are what stafet's sources read.

The bench itself (two PostgreSQL clusters, a Prefect server, workers, three partitioned
stages of at least one flow-run process each) takes minutes even at its smallest, so it is
not run here; what can go wrong without servers is checked: the 98 municipality codes, the
members, and that every generated file is claimed by exactly one source of ``mappings``,
read by its reader (XSD-validated for XML) without a rejected file or a bad row, and mapped
by its ``map_row`` — over every source kind the project reads.
"""

from __future__ import annotations

import importlib.util
import io
import random
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from mappings import all_sources, source_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def national() -> Any:
    spec = importlib.util.spec_from_file_location("bench_national", ROOT / "bench" / "national.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_municipalities_are_the_98_danish_codes(national: Any) -> None:
    codes = national.MUNICIPALITIES
    assert len(codes) == len(set(codes)) == 98
    assert all(len(c) == 3 and c.isdigit() for c in codes)
    assert {"101", "147", "751", "791", "851", "400"} <= set(codes)
    assert "411" not in codes  # Christiansø is no municipality


def test_members_per_municipality(national: Any) -> None:
    ms = national.members(list(national.MUNICIPALITIES[:3]))
    assert len(ms) == 18 and len({m["id"] for m in ms}) == 18
    kinds = sorted(m["kind"] for m in ms if m["municipality"] == "147")
    assert kinds == ["family_services", "guidance", "institution", "institution", "job_centre",
                     "primary_school"]


def test_every_export_is_read_and_mapped_by_its_source(national: Any) -> None:
    munis = list(national.MUNICIPALITIES[:3])
    rng = random.Random(7)
    youths = national.population(3_000, munis, rng)
    assert len({y.cpr for y in youths}) == len(youths)
    sources, rows, moves = national.exports(youths, 600, munis, rng)
    assert moves > 0
    seen: set[str] = set()
    total = 0
    for folder, files in sources.items():
        for name, data in files:
            src = source_for(name)
            seen.add(src.name)
            read = list(src.reader.rows(io.BytesIO(data), name))
            assert read, name
            for row in read:
                assert not row.problem, (name, row.number)
                src.map_row(row.fields, src.provenance(name, row.number, datetime.now()))
            total += len(read)
            assert folder.split("-")[0] in {"easy", "gymnasium", "grundskole", "jobcenter", "uu", "familie",
                                            "kommune"}
    assert seen == set(all_sources()), "every source kind the project reads, and no other"
    assert total == rows


def test_interviews_are_of_18_to_29_year_olds_on_their_date(national: Any) -> None:
    """FORMATS §9's age check (``mappings.jobcenter_samtaler``) on the interview's date, not today's."""
    munis = list(national.MUNICIPALITIES[:2])
    rng = random.Random(11)
    youths = national.population(4_000, munis, rng)
    born = {y.cpr: y for y in youths}
    night = national.NationalNight(youths, 0, rng, munis)
    name, data = night.interviews(munis[0], 400)
    src = source_for(name)
    ages = []
    for row in src.reader.rows(io.BytesIO(data), name):
        y = born[row.fields["cpr"].replace("-", "")]
        ages.append(y.age_on(date.fromisoformat(row.fields["samtale_dato"])))
    assert len(ages) == 400 and min(ages) >= 18 and max(ages) <= 29
