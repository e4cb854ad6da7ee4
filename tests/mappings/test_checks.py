"""The check DSL's vectorised frame preparation: the CPR century table, dates, ages."""

from __future__ import annotations

from datetime import date

from mappings import checks as v
from stafet.core.cpr import CENTURY_TABLE, century


def test_add_cpr_century_table() -> None:
    import pandas as pd

    df = pd.DataFrame({"c": ["010150-0123", "010150-4123", "010137-4123", "010158-5123", "290224-4000",
                             "290223-4000", "bad"]})
    v.add_cpr(df, "c")
    born = pd.to_datetime(df["_birth_date"], unit="D")
    assert [str(d.date()) if pd.notna(d) else None for d in born] == [
        "1950-01-01", "1950-01-01", "1937-01-01", "1858-01-01", "2024-02-29", None, None]


def test_the_vectorised_century_is_the_one_table_of_stafet_core_cpr() -> None:
    """Every serial digit and two-digit year: add_cpr and cpr.century give the same birth year."""
    import pandas as pd

    assert sorted(d for digits, *_ in CENTURY_TABLE for d in digits) == list(range(10))
    cprs = [f"0101{yy:02d}{d}000" for d in range(10) for yy in range(100)]
    df = pd.DataFrame({"c": cprs})
    v.add_cpr(df, "c")
    years = pd.to_datetime(df["_birth_date"], unit="D").dt.year.tolist()
    assert years == [century(yy, d) + yy for d in range(10) for yy in range(100)]


def test_day_number_and_age() -> None:
    import pandas as pd

    df = pd.DataFrame({"c": ["010110-4123", "150208-4127"], "d": ["01-01-2026", "14-02-2026"]})
    v.add_cpr(df, "c")
    v.add_date(df, "d", "dmy")
    v.add_age(df, "d")
    assert df["_age"].tolist() == [16.0, 17.0]
    assert v.day_number(date(1970, 1, 2)) == 1
