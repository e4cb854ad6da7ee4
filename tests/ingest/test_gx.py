"""Suites per source: GX finds the failing rows; rows packed for the worker pipe; the worker pool."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_fixtures import ALL_SAMPLES, EASYA, NOW, SAMPLES

from mappings import Source, all_sources, get_source, source_for
from stafet.core.models import Consent, Provenance
from stafet.ingest import gx, packing, worker
from stafet.ingest.mapping import MapError
from stafet.store.db import prepare

TODAY = date(2026, 11, 22)


def test_the_six_sources_are_discovered_with_their_patterns() -> None:
    assert {"easy-a", "gymnasium", "jobcenter", "uu-planer", "familie", "samtykker"} <= set(all_sources())
    assert source_for(EASYA).name == "easy-a"
    assert source_for("uu_791_planer_20261120.xml").name == "uu-planer"


def test_suite_json_names_rules() -> None:
    doc = json.loads(gx.suite_json(get_source("easy-a")))
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
    got = gx.validate(src, rows, today=TODAY, institutions=["779008"])
    rules = {i: sorted({f.rule for f in fs}) for i, fs in got.items()}
    assert rules == {1: ["cpr_format"], 2: ["cpr_birth_date"], 3: ["age_range"], 4: ["date_not_future"],
                     5: ["dropout_reason"], 6: ["institution_known"], 7: ["start_before_event"],
                     8: ["date_format"], 10: ["municipality_format"], 11: ["decimal_format"]}


def test_job_centre_age_is_18_to_29() -> None:
    src = get_source("jobcenter")
    base = next(iter(src.reader(SAMPLES / "jobcenter_791_paalaeg_20261121.csv"))).fields
    young = {**base, "cpr": "010110-4123"}            # 16 on the status date
    got = gx.validate(src, [base, young], today=TODAY, institutions=["779008"])
    assert list(got) == [1] and got[1][0].rule == "age_range"


def test_in_process_validation_is_safe_on_several_threads() -> None:
    """``STAFET_VALIDATION_WORKER=0``: the nightly flow ingests on several threads at once, and
    GX's suite-parameter parser is one shared object with state."""
    import threading

    src = get_source("easy-a")
    rows = [_fields(), _fields(CprNr="12-4127"), _fields(Afbrudsaarsag=""), _fields(Instnr="123456")] * 50
    expected = gx.validate(src, rows, today=TODAY, institutions=["779008"])
    runner = worker._InProcess()
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


# --- bulk ingest's chunks: packed for the worker, validated, mapped and prepared there --------

_FIELD_NAMES = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6)
_VALUES = st.text(st.sampled_from(["a", "ø", ";", "\x1f", "\x1e", "\n", " ", "1"]), max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(_FIELD_NAMES, _VALUES, max_size=5), max_size=6))
def test_rows_packed_for_the_worker_come_back_as_they_were(rows: list[dict[str, str]]) -> None:
    """Rows with different fields (XML), values holding the separator, empty chunks: each row comes
    back with exactly its fields, and each column as columns_of has it (a missing field is "")."""
    keys, packed = packing.pack_rows(rows)
    back, columns = packing.unpack_rows(keys, packed, len(rows))
    assert list(back) == rows
    assert {k: list(c) for k, c in columns.items()} == {k: [r.get(k) or "" for r in rows] for k in keys}


def test_uniform_rows_travel_as_one_string_per_field() -> None:
    rows = [_fields(), _fields(CprNr="12-4127"), _fields(Note="a\x1fb")]
    keys, packed = packing.pack_rows(rows)
    assert keys == list(rows[0])
    assert [isinstance(c, str) for c in packed] == [k != "Note" for k in keys]


def _outcomes(runner: worker.ChunkValidator, src: Source, rows: list[dict[str, str]]) -> tuple[Any, Any]:
    numbers = list(range(2, len(rows) + 2))
    runner.submit(src, rows, TODAY, ["779008", "751001"], mapping=("f.csv", NOW, numbers))
    failures, mapped = runner.collect()
    return {i: [f.rule for f in fs] for i, fs in failures.items()}, mapped


def test_the_worker_validates_maps_and_prepares_as_this_process_does() -> None:
    """Each source's sample rows plus rows that break a rule and a row whose mapping fails: the
    worker process and in-process validation give the same failures and the same outcomes."""
    w = worker._IDLE.checkout()
    pool = worker._Remote(w)
    try:
        for name in ALL_SAMPLES:
            src = source_for(name)
            rows = [dict(r.fields) for r in src.reader(SAMPLES / name) if not r.problem]
            if src.name == "easy-a":
                rows += [_fields(CprNr="12-4127"), _fields(Haendelsesdato="31-11-2026"),
                         _fields(Fravaersprocent="118,5")]   # passes the suite, fails the mapping
            local = _outcomes(worker._InProcess(), src, rows)
            remote = _outcomes(pool, src, rows)
            assert remote == local, name
            failures, mapped = remote
            assert len(mapped) == len(rows)
            for i, (row, out) in enumerate(zip(rows, mapped, strict=True)):
                if i in failures:
                    assert out == row                      # the raw fields, for quarantine
                elif isinstance(out, MapError):
                    assert out.fields == row and out.rule
                else:
                    rec = src.map_row(row, Provenance(src.name, "f.csv", i + 2, NOW))
                    assert out == prepare(rec, keep=isinstance(rec, Consent))
            if src.name == "easy-a":
                assert failures[len(rows) - 3] == ["cpr_format"]
                assert isinstance(mapped[-1], MapError) and mapped[-1].rule == "percentage_range"
    finally:
        worker._IDLE.checkin(w)


def test_gx_starts_without_the_modules_stafet_never_uses_and_still_has_them_on_use() -> None:
    """scipy.stats and altair (KS/KL expectations) wait until used: a fresh process started as the
    validation worker starts (its child module, the handler's setup) validates every sample
    without loading them, then an expectation module that uses scipy gets it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = """
import sys
from datetime import date
import stafet.core.workers
from stafet.ingest import gx, worker, worker_main
from mappings import source_for
from ingest_fixtures import ALL_SAMPLES, SAMPLES
assert worker.HANDLER == "stafet.ingest.worker_main:handler"
worker_main.handler(None)
for name in ALL_SAMPLES:
    src = source_for(name)
    gx.validate(src, [r.fields for r in src.reader(SAMPLES / name)], today=date(2026, 11, 22),
               institutions=["779008"])
print(type(sys.modules["scipy.stats"]).__name__, type(sys.modules["altair"]).__name__)
from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
print(round(kl.stats.entropy([0.5, 0.5]), 4), type(sys.modules["scipy.stats"]).__name__)
"""
    tests = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": f"{tests.parent}:{tests}",
                              "GX_ANALYTICS_ENABLED": "False"}, timeout=120)
    assert out.stdout.split() == ["_OnDemand", "_OnDemand", "0.6931", "module"]
