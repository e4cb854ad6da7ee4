"""Suites per source: GX finds the failing rows; every source is declared once and discovered."""

from __future__ import annotations

import json
from datetime import date

from ingest_fixtures import EASYA, SAMPLES

from stafet import validation as v
from stafet.sources import all_sources, get_source, source_for

TODAY = date(2026, 11, 22)


def test_six_sources_are_discovered_with_their_patterns() -> None:
    assert set(all_sources()) == {"easy-a", "gymnasium", "jobcenter", "uu-planer", "familie", "samtykker"}
    assert source_for(EASYA).name == "easy-a"
    assert source_for("uu_791_planer_20261120.xml").name == "uu-planer"


def test_suite_json_names_rules() -> None:
    doc = json.loads(v.suite_json(get_source("easy-a")))
    rules = {e["meta"]["rule"] for e in doc["expectations"]}
    assert {"cpr_format", "cpr_birth_date", "age_range", "date_not_future", "dropout_reason",
            "institution_known", "start_before_event"} <= rules


def _fields(**change: str) -> dict[str, str]:
    src = get_source("easy-a")
    base = next(iter(src.reader(SAMPLES / EASYA))).fields
    return {**base, **change}


def test_row_level_failures() -> None:
    src = get_source("easy-a")
    rows = [_fields(), _fields(CprNr="12-4127"), _fields(CprNr="300208-4127"), _fields(CprNr="120315-4127"),
            _fields(Haendelsesdato="23-11-2026", Startdato="01-01-2026"), _fields(Afbrudsaarsag=""),
            _fields(Instnr="123456"), _fields(Startdato="18-11-2026"), _fields(Haendelsesdato="31-11-2026"),
            _fields(Haendelse="OPTAG", Afbrudsaarsag=""), _fields(Bopaelskommune="79"),
            _fields(Fravaersprocent="18.5")]
    got = v.validate(src, rows, today=TODAY, institutions=["779008"])
    rules = {i: sorted({f.rule for f in fs}) for i, fs in got.items()}
    assert rules == {1: ["cpr_format"], 2: ["cpr_birth_date"], 3: ["age_range"], 4: ["date_not_future"],
                     5: ["dropout_reason"], 6: ["institution_known"], 7: ["start_before_event"],
                     8: ["date_format"], 10: ["municipality_format"], 11: ["decimal_format"]}


def test_job_centre_age_is_18_to_29() -> None:
    src = get_source("jobcenter")
    base = next(iter(src.reader(SAMPLES / "jobcenter_791_paalaeg_20261121.csv"))).fields
    young = {**base, "cpr": "010110-4123"}            # 16 on the status date
    got = v.validate(src, [base, young], today=TODAY, institutions=["779008"])
    assert list(got) == [1] and got[1][0].rule == "age_range"


def test_add_cpr_century_table() -> None:
    import pandas as pd

    df = pd.DataFrame({"c": ["010150-0123", "010150-4123", "010137-4123", "010158-5123", "290224-4000",
                             "290223-4000", "bad"]})
    v.add_cpr(df, "c")
    born = pd.to_datetime(df["_birth_date"], unit="D")
    assert [str(d.date()) if pd.notna(d) else None for d in born] == [
        "1950-01-01", "1950-01-01", "1937-01-01", "1858-01-01", "2024-02-29", None, None]


def test_in_process_validation_is_safe_on_several_threads() -> None:
    """``STAFET_VALIDATION_WORKER=0``: the nightly flow ingests on several threads at once, and
    GX's suite-parameter parser is one shared object with state."""
    import threading

    src = get_source("easy-a")
    rows = [_fields(), _fields(CprNr="12-4127"), _fields(Afbrudsaarsag=""), _fields(Instnr="123456")] * 50
    expected = v.validate(src, rows, today=TODAY, institutions=["779008"])
    runner = v._InProcess()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(4):
                runner.submit(src, rows, TODAY, ["779008"])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    results = [runner.collect()[0] for _ in range(12)]
    assert all({i: [f.rule for f in fs] for i, fs in r.items()}
               == {i: [f.rule for f in fs] for i, fs in expected.items()} for r in results)
