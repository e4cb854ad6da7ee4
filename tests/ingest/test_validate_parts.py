"""Many small files in one GX call: per file the same failures and Data Docs counts as one call each."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import pytest
from ingest_fixtures import SAMPLES

from mappings import Source, all_sources, get_source
from stafet.ingest import docs, gx

TODAY = date(2026, 11, 22)
INSTITUTIONS = ["779008", "751001", "280012"]
NOISE = ("", "x", "01-01-2030", "99", "2030-01-01", "31-02-2026", "0101", "AFBRUD", "afbrud", "PLANLAGT")


def _sample_rows(src: Source) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(SAMPLES.iterdir()):
        if src.matches(path.name):
            with path.open("rb") as fh:
                rows += [r.fields for r in src.reader.rows(fh, path.name) if not r.problem]
    return rows


def _noisy_files(src: Source, seed: int) -> list[list[dict[str, str]]]:
    """The source's sample rows, each field spoilt with a chance of 1 in 5, cut into files of 1–9 rows."""
    rnd = random.Random(seed)
    base = _sample_rows(src)
    assert base, f"no sample rows for {src.name}"
    rows = []
    for _ in range(60):
        r = dict(rnd.choice(base))
        for k in list(r):
            if rnd.random() < 0.2:
                r[k] = rnd.choice(NOISE)
        rows.append(r)
    files, at = [], 0
    while at < len(rows):
        n = rnd.randint(1, 9)
        files.append(rows[at:at + n])
        at += n
    return files


def _page(tally: dict[str, Any]) -> str:
    return docs._file_page("f.csv", tally["source"], "run", "t", docs._expectations(tally))


@pytest.mark.parametrize("name", sorted(all_sources()))
def test_one_call_for_many_files_gives_each_file_what_its_own_call_gives(name: str) -> None:
    src = get_source(name)
    files = _noisy_files(src, seed=len(name))
    parts = [gx.columns_of(src, f) for f in files]
    calls = gx.STATS.chunks
    together = gx.validate_parts(src, parts, today=TODAY, institutions=INSTITUTIONS)
    assert gx.STATS.chunks == calls + 1, "the parts were not validated in one call"
    assert len(together) == len(files)
    failed = 0
    for rows, (failures, tally) in zip(files, together, strict=True):
        alone = docs.DocsTally()
        expected = gx.validate_columns(src, gx.columns_of(src, rows), today=TODAY, institutions=INSTITUTIONS,
                                       docs=alone)
        assert failures == expected
        assert _page(tally) == _page(alone.files[""])
        assert tally["counts"] == alone.files[""]["counts"]
        failed += len(failures)
    assert failed, "the noise should break some rule"


def test_a_file_without_rows_gets_nothing_and_a_single_file_is_one_call() -> None:
    src = get_source("easy-a")
    files = _noisy_files(src, seed=3)
    parts = [gx.columns_of(src, files[0]), gx.columns_of(src, [])]
    out = gx.validate_parts(src, parts, today=TODAY, institutions=INSTITUTIONS)
    assert out[1] == ({}, {"source": "easy-a", "configs": [], "counts": []})
    assert out[0][0] == gx.validate_columns(src, parts[0], today=TODAY, institutions=INSTITUTIONS)


def test_a_combined_result_that_does_not_add_up_falls_back_to_a_call_per_file() -> None:
    src = get_source("easy-a")
    files = _noisy_files(src, seed=5)[:3]
    parts = [gx.columns_of(src, f) for f in files]
    combined = [[v for p in parts for v in p[c]] for c in range(len(src.columns))]
    df, result = gx._run_suite(src, combined, today=TODAY, institutions=INSTITUTIONS)
    sizes = [len(f) for f in files]
    assert gx._split(src, df, result, sizes) is not None
    result.results[0].result["element_count"] += 1  # GX counted differently from the split
    assert gx._split(src, df, result, sizes) is None


def test_a_rule_on_a_column_the_frame_lacks_fails_the_chunk_instead_of_passing_it() -> None:
    """GX reports a metric it could not compute inside exception_info, keyed by the metric: not a pass."""
    import dataclasses

    from mappings import checks as v

    src = get_source("jobcenter")
    broken = dataclasses.replace(src, name="jobcenter-missing-flag",
                                 checks=(*src.checks, v.regex_check("required", "nowhere", "nowhere given")))
    rows = _sample_rows(src)
    with pytest.raises(RuntimeError, match=r"rule required could not run.*nowhere__re"):
        gx.validate(broken, rows, today=TODAY, institutions=INSTITUTIONS)
    blank = gx.validate(src, [{**rows[0], "paalaeg_id": " "}], today=TODAY, institutions=INSTITUTIONS)
    assert [f.rule for f in blank[0]] == ["required"]
