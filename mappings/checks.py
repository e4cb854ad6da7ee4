"""The check DSL of the source declarations, and the vectorised frame preparation behind it.

A source declares its expectation suite (see :mod:`mappings`) as a tuple of
:class:`Check` — a stable rule name that stewards see, the Great Expectations
expectation's class name, its arguments and a sentence saying what must hold — and a
``prepare(df, today)`` built from the ``add_*`` helpers here, which add the typed
columns the checks look at: ``_cpr_shape``, ``_birth_date`` (from the CPR and the CPR
office's century table, :data:`stafet.core.cpr.CENTURY_TABLE`), parsed dates as day
numbers, ``_age`` on the record's own date.

Pure: pandas, numpy and pyarrow (imported on first use), no Great Expectations, no I/O.
The suites are run by :mod:`stafet.ingest.gx`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from stafet.core.cpr import CENTURY_TABLE

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


@dataclass(frozen=True)
class Check:
    """One rule of a source's suite: a GX expectation with a steward-facing name."""

    rule: str
    expectation: str
    description: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def check(rule: str, expectation: str, description: str, **kwargs: Any) -> Check:
    """Declare one rule: ``check("age_range", "ExpectColumnValuesToBeBetween", "…", column=…)``."""
    return Check(rule, expectation, description, kwargs)


# --- checks shared by several sources --------------------------------------------

def cpr_checks(column: str) -> tuple[Check, ...]:
    """CPR shape (``DDMMYY-SSSS`` or 10 digits) and a real birth date."""
    return (
        check("cpr_format", "ExpectColumnValuesToBeInSet",
              f"{column} is DDMMYY-SSSS or DDMMYYSSSS", column="_cpr_shape", value_set=[True]),
        check("cpr_birth_date", "ExpectColumnValuesToNotBeNull",
              f"{column} holds a real birth date (century from the CPR office's table)",
              column="_birth_date", row_condition="_cpr_shape==True", condition_parser="pandas"),
    )


def age_check(low: int, high: int, at: str) -> Check:
    """The youth's age on the record's own date lies in ``low..high``."""
    return check("age_range", "ExpectColumnValuesToBeBetween",
                 f"the youth is {low}–{high} years old on {at}", column="_age", min_value=low,
                 max_value=high)


def date_checks(column: str, *, required: bool = True, not_future: bool = True) -> tuple[Check, ...]:
    """A date column parses (when given or required) and is not in the future."""
    out = [check("date_format", "ExpectColumnValuesToBeInSet", f"{column} is a real date in the format",
                 column=f"{column}__ok", value_set=[True])]
    if required:
        out.append(check("required", "ExpectColumnValuesToNotBeNull", f"{column} is given",
                         column=f"{column}__d", row_condition=f"`{column}__ok`==True",
                         condition_parser="pandas"))
    if not_future:
        out.append(check("date_not_future", "ExpectColumnValuesToBeBetween",
                         f"{column} is not in the future", column=f"{column}__d",
                         max_value={"$PARAMETER": "today"}))
    return tuple(out)


def start_check(start: str, event: str) -> Check:
    """The start date is on or before the event date."""
    return check("start_before_event", "ExpectColumnPairValuesAToBeGreaterThanB",
                 f"{start} is on or before {event}", column_A=f"{event}__d", column_B=f"{start}__d",
                 or_equal=True, ignore_row_if="either_value_is_missing")


def order_check(rule: str, earlier: str, later: str, description: str) -> Check:
    """The date in ``earlier`` is on or before the one in ``later`` (rows missing either pass)."""
    return check(rule, "ExpectColumnPairValuesAToBeGreaterThanB", description, column_A=f"{later}__d",
                 column_B=f"{earlier}__d", or_equal=True, ignore_row_if="either_value_is_missing")


def not_future_check(column: str, *, row_condition: str) -> Check:
    """A date column is not in the future, for the rows ``row_condition`` (pandas) selects."""
    return check("date_not_future", "ExpectColumnValuesToBeBetween",
                 f"{column} is not in the future where {row_condition}", column=f"{column}__d",
                 max_value={"$PARAMETER": "today"}, row_condition=row_condition, condition_parser="pandas")


def institution_check(column: str, *, optional: bool = False) -> Check:
    """The institution number is a member of the network (empty allowed if optional)."""
    empty = " (or empty)" if optional else ""
    return check("institution_known", "ExpectColumnValuesToBeInSet",
                 f"{column} is an institution number known to the network{empty}",
                 column=f"{column}__inst", value_set={"$PARAMETER": "institutions"})


def regex_check(rule: str, column: str, description: str) -> Check:
    """A raw column matched its pattern (the ``<column>__re`` flag from :func:`add_match`)."""
    return check(rule, "ExpectColumnValuesToBeInSet", description, column=f"{column}__re", value_set=[True])


def in_set_check(rule: str, column: str, values: Sequence[str], description: str, **kwargs: Any) -> Check:
    """A raw column holds one of ``values``."""
    return check(rule, "ExpectColumnValuesToBeInSet", description, column=column, value_set=list(values),
                 **kwargs)


# --- vectorised preparation helpers ------------------------------------------------

_EPOCH = date(1970, 1, 1)


def day_number(d: date) -> int:
    """Days since 1970-01-01: the form dates take in the validation frame.

    Numbers, not datetimes: GX compares datetimes element by element in Python,
    numbers in one vectorised step.
    """
    return (d - _EPOCH).days


def _days(parsed: pd.Series) -> pd.Series:
    import numpy as np

    ns = parsed.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    out = ns.astype("int64").astype("float64")
    out[np.isnat(ns)] = np.nan
    import pandas as pd

    return pd.Series(out, index=parsed.index)


def matches(values: pd.Series, regex: str) -> pd.Series:
    """Vectorised full match of a string column (RE2 through pyarrow, not Python's ``re``).

    pandas' own ``.str.fullmatch`` falls back to Python per value for these
    patterns; pyarrow's kernel is about six times faster.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(values.fillna(""))
    hit = pc.match_substring_regex(arr, f"^(?:{regex})$").to_numpy(zero_copy_only=False)
    return pd.Series(hit, index=values.index, dtype=bool)


def add_match(df: pd.DataFrame, column: str, regex: str) -> None:
    """Add ``<column>__re``: the raw value fully matches ``regex``."""
    df[f"{column}__re"] = matches(df[column], regex)


def _century_columns() -> tuple[Any, Any, Any]:
    """:data:`~stafet.core.cpr.CENTURY_TABLE` as three arrays indexed by the serial's first digit."""
    import numpy as np

    rows = sorted((d, cutoff, low, high) for digits, cutoff, low, high in CENTURY_TABLE for d in digits)
    assert [r[0] for r in rows] == list(range(10)), "the century table covers every digit once"
    return tuple(np.array([r[i] for r in rows]) for i in (1, 2, 3))  # type: ignore[return-value]


_CENTURIES: Any = None


def add_cpr(df: pd.DataFrame, column: str) -> None:
    """Add ``_cpr_shape`` (bool) and ``_birth_date`` (day number; NaN unless shape and date are valid)."""
    import numpy as np
    import pandas as pd

    global _CENTURIES
    if _CENTURIES is None:
        _CENTURIES = _century_columns()
    shape = matches(df[column], r"\s*\d{6}-?\d{4}\s*")
    d = df[column].str.strip().str.replace("-", "", n=1, regex=False).where(shape, "0101000000")
    yy = d.str.slice(4, 6).astype(int)
    d7 = d.str.slice(6, 7).astype(int)
    cutoff, low, high = _CENTURIES
    digit = d7.to_numpy()
    century = np.where(yy.to_numpy() <= cutoff[digit], low[digit], high[digit])
    year = pd.Series(century + yy, index=df.index).astype(str).str.zfill(4)
    born = pd.to_datetime(year + d.str.slice(2, 4) + d.str.slice(0, 2), format="%Y%m%d", errors="coerce")
    df["_cpr_shape"] = shape
    df["_birth_date"] = _days(born).where(shape)
    df["_birth_md"] = (born.dt.month * 100 + born.dt.day).where(shape)


def add_date(df: pd.DataFrame, column: str, fmt: str) -> None:
    """Add ``<column>__d`` (day number, NaN if empty or bad), ``__md`` and ``<column>__ok``.

    ``__ok`` is False only when a value is given and is not a real date in ``fmt``
    (``"dmy"`` for dd-mm-yyyy, ``"iso"`` for yyyy-mm-dd).
    """
    import pandas as pd

    raw = df[column].str.strip()
    pattern = r"\d{2}-\d{2}-\d{4}" if fmt == "dmy" else r"\d{4}-\d{2}-\d{2}"
    shaped = matches(raw, pattern)
    parsed = pd.to_datetime(raw.where(shaped, None), format="%d-%m-%Y" if fmt == "dmy" else "%Y-%m-%d",
                            errors="coerce")
    df[f"{column}__d"] = _days(parsed)
    df[f"{column}__y"] = parsed.dt.year
    df[f"{column}__md"] = parsed.dt.month * 100 + parsed.dt.day
    df[f"{column}__ok"] = (raw == "") | parsed.notna()


def add_age(df: pd.DataFrame, at: str | date) -> None:
    """Add ``_age``: whole years from the CPR birth date to a date column or a fixed day."""
    import pandas as pd

    born_y = (df["_birth_date"] * 0 + 0)  # index-aligned NaN mask
    born = pd.to_datetime(df["_birth_date"], unit="D", errors="coerce")
    if isinstance(at, str):
        on_y, on_md = df[f"{at}__y"], df[f"{at}__md"]
    else:
        on_y = pd.Series(at.year, index=df.index)
        on_md = pd.Series(at.month * 100 + at.day, index=df.index)
    years = on_y - born.dt.year
    df["_age"] = (years - (on_md < df["_birth_md"]).astype(int) + born_y).astype("float64")


def add_institution(df: pd.DataFrame, column: str, *, optional: bool = False) -> None:
    """Add ``<column>__inst``: the trimmed number, or None when empty and optional."""
    val = df[column].str.strip()
    df[f"{column}__inst"] = val.where(val != "", None) if optional else val

