"""Row validation with Great Expectations 1.x: which rows of a chunk break which rule.

Every source declares its expectation suite in its own module
(:mod:`stafet.sources`) as a tuple of :class:`Check` — a stable rule name that
stewards see, the GX expectation, its arguments and a sentence saying what must
hold. The suites are therefore versioned with the code; :func:`suite_json`
renders one as GX's own JSON for review.

How a chunk (≤ ``CHUNK_ROWS`` rows) is validated:

1. the raw string fields go into a pandas DataFrame (absent fields are ``""``);
2. the source's ``prepare`` adds typed columns with vectorised pandas helpers
   from this module: ``_cpr_shape``, ``_birth_date`` (from the CPR and the CPR
   office's century table), parsed dates, ``_age`` on the record's own date;
3. GX runs the suite in an ephemeral context (analytics off, progress bars off,
   no Data Docs site, no files written) with result format COMPLETE and the
   ``_i`` column as index, so each failed expectation names its rows.

Runtime values enter as suite parameters: ``$PARAMETER today`` (nothing may happen
in the future) and ``$PARAMETER institutions`` (institution numbers known to the
network). GX and pandas are imported on first use only: importing GX costs
seconds and the CLI must start fast.

Bulk ingest (:func:`validator`) runs GX in a worker process and, in the same
worker, maps the rows that pass and reduces them to what the store writes
(:func:`check_chunk`): the ingesting process reads the file and writes the
store while the worker validates and maps the next chunk, so both cores work.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import json
import operator
import os
import pickle
import subprocess
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from stafet.sources import Source

def _chunk_rows() -> int:
    try:
        return max(1000, int(os.environ.get("STAFET_INGEST_CHUNK_ROWS", "20000")))
    except ValueError:
        return 20_000


CHUNK_ROWS = _chunk_rows()
"""Rows per chunk (``STAFET_INGEST_CHUNK_ROWS``, default 20,000, at least 1,000). GX costs
≈ 0.25 s a chunk plus ≈ 7 µs a row, so bigger chunks validate faster; memory grows with
them. Measured with ``bench/ingest.py`` at a million rows (ingest process + validation
worker): 10,000 → 15,300 rows/s, 137 + 295 MB; 20,000 → 18,100–18,500 rows/s, 154 +
355 MB; 50,000 → 18,900–19,200 rows/s, 217 + 506 MB. From 20,000 on, the process that
writes the store is the bottleneck, not validation."""
ROW_INDEX = "_i"


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


def add_cpr(df: pd.DataFrame, column: str) -> None:
    """Add ``_cpr_shape`` (bool) and ``_birth_date`` (day number; NaN unless shape and date are valid)."""
    import numpy as np
    import pandas as pd

    shape = matches(df[column], r"\s*\d{6}-?\d{4}\s*")
    d = df[column].str.strip().str.replace("-", "", n=1, regex=False).where(shape, "0101000000")
    yy = d.str.slice(4, 6).astype(int)
    d7 = d.str.slice(6, 7).astype(int)
    century = np.where(d7 <= 3, 1900,
                       np.where(np.isin(d7, (4, 9)), np.where(yy <= 36, 2000, 1900),
                                np.where(yy <= 57, 2000, 1800)))
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


# --- running GX ------------------------------------------------------------------------

@dataclass
class Failure:
    """One rule one row broke."""

    rule: str
    description: str


@dataclass
class ValidationStats:
    """Time spent in GX itself, for the benchmark and the report (and the workers' footprint)."""

    seconds: float = 0.0
    rows: int = 0
    chunks: int = 0
    worker_peak_mb: float = 0.0
    worker_cpu_s: dict[int, float] = field(default_factory=dict)  # CPU so far, per worker pid


STATS = ValidationStats()
_lock = threading.Lock()
_context: Any = None
_definitions: dict[str, Any] = {}


class _OnDemand(types.ModuleType):
    """Stands in for a module until something uses it; then the real one is imported.

    GX imports ``scipy.stats`` and ``altair`` when it starts, for the KS-test and
    KL-divergence expectations and their charts, which stafet's suites do not use:
    together about 90 MB of a validation worker's memory (measured: GX 1.24 imports in
    +147 MB, +57 MB without them). The first attribute anything reads from the stand-in
    imports the real module and answers from it, so those expectations still work.
    """

    def __getattr__(self, attr: str) -> Any:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


DEFERRED_IMPORTS = ("scipy.stats", "altair")


def _defer_unused_imports() -> None:
    for name in DEFERRED_IMPORTS:
        if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is not None:
            sys.modules[name] = _OnDemand(name)


def _gx_context() -> Any:
    global _context
    if _context is None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        _defer_unused_imports()
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False))
        _context = gx.get_context(mode="ephemeral", project_config=config)
    return _context


def build_suite(name: str, checks: Sequence[Check]) -> Any:
    """A GX ``ExpectationSuite`` for ``checks`` (each expectation's meta names its rule)."""
    import great_expectations.expectations as gxe
    from great_expectations.core.expectation_suite import ExpectationSuite

    _gx_context()  # GX builds suites only inside an active context
    suite = ExpectationSuite(name=name)
    for c in checks:
        cls = getattr(gxe, c.expectation)
        suite.add_expectation(cls(**c.kwargs, meta={"rule": c.rule, "description": c.description}))
    return suite


def suite_json(source: Source) -> str:
    """The source's expectation suite as GX JSON (for review and for the repo's docs)."""
    return json.dumps(build_suite(f"stafet.{source.name}.review", source.checks).to_json_dict(), indent=2,
                      ensure_ascii=False)


def _definition(source: Source) -> Any:
    with _lock:
        vd = _definitions.get(source.name)
        if vd is None:
            import great_expectations as gx

            ctx = _gx_context()
            asset = ctx.data_sources.add_pandas(f"src_{source.name}").add_dataframe_asset("rows")
            batch = asset.add_batch_definition_whole_dataframe("chunk")
            suite = ctx.suites.add(build_suite(f"stafet.{source.name}", source.checks))
            vd = ctx.validation_definitions.add(
                gx.ValidationDefinition(name=f"validate.{source.name}", data=batch, suite=suite))
            _definitions[source.name] = vd
        return vd


RESULT_FORMAT = {"result_format": "COMPLETE", "exclude_unexpected_values": True,
                 "return_unexpected_index_query": False, "partial_unexpected_count": 0}
"""Failed rows by their frame index (a ``RangeIndex``, so the position in the chunk). No
``unexpected_index_column_names``: with them GX looks every failed row up one by one."""


def columns_of(source: Source, rows: Sequence[Mapping[str, str]]) -> list[list[str]]:
    """The raw values of the suite's columns, column by column (absent fields are ``""``)."""
    return [[r.get(c) or "" for r in rows] for c in source.columns]


_SEP = "\x1f"


def pack_rows(rows: Sequence[Mapping[str, str]]) -> tuple[list[str], list[str | list[str | None]]]:
    """A chunk's rows for the worker pipe: its field names, and each field's values as one column.

    A column is one string joined by US (unit separator) when every row has the field
    and no value holds a US: one string pickles and unpickles in one step where a list
    costs a Python object per value on both sides. Otherwise it is a list with None
    where a row lacks the field. :func:`unpack_rows` reverses it.
    """
    first = rows[0].keys() if rows else {}.keys()
    if all(r.keys() == first for r in rows):  # every row has the same fields (CSV): transposed in C
        keys = list(first)
        get = operator.itemgetter(*keys) if len(keys) > 1 else lambda r: (r[keys[0]],)
        columns: list[Sequence[str | None]] = list(zip(*map(get, rows), strict=True)) if keys else []
    else:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        columns = [[r.get(k) for r in rows] for k in keys]
    out: list[str | list[str | None]] = []
    for col in columns:
        if None not in col:
            joined = _SEP.join(col)  # type: ignore[arg-type]
            if joined.count(_SEP) == len(col) - 1:
                out.append(joined)
                continue
        out.append(list(col))
    return keys, out


def unpack_rows(keys: Sequence[str], packed: Sequence[str | list[str | None]],
                n: int) -> tuple[Iterator[dict[str, str]], dict[str, list[str]]]:
    """Reverse :func:`pack_rows` for a chunk of ``n`` rows: the rows, and each field's column.

    The rows are made one by one as they are iterated (a chunk's dicts are never all
    held at once). In the columns a field a row lacks is ``""`` (as :func:`columns_of` has it).
    """
    if not keys:  # rows without any field (an empty XML record) are still rows
        return ({} for _ in range(n)), {}
    cols = [(c.split(_SEP) if n else []) if isinstance(c, str) else c for c in packed]
    if all(isinstance(c, str) for c in packed):
        rows = (dict(zip(keys, vals, strict=True)) for vals in zip(*cols, strict=True))
        return rows, dict(zip(keys, cols, strict=True))  # type: ignore[arg-type]
    sparse = ({k: v for k, v in zip(keys, vals, strict=True) if v is not None}
              for vals in zip(*cols, strict=True))
    return sparse, {k: [v or "" for v in c] for k, c in zip(keys, cols, strict=True)}


def columns_from(source: Source, fields: Mapping[str, list[str]], n: int) -> list[list[str]]:
    """:func:`columns_of` from the columns :func:`unpack_rows` returns."""
    return [fields[c] if c in fields else [""] * n for c in source.columns]


def frame_from_columns(source: Source, columns: Sequence[Sequence[str]], today: date) -> pd.DataFrame:
    """The validation frame from :func:`columns_of`: raw columns, ``_i`` and the typed columns."""
    import pandas as pd

    df = pd.DataFrame(dict(zip(source.columns, columns, strict=True)))
    df[ROW_INDEX] = range(len(df))
    source.prepare(df, today)
    return df


def frame(source: Source, rows: Sequence[Mapping[str, str]], today: date) -> pd.DataFrame:
    """The validation frame for a chunk: raw columns, ``_i`` and the source's typed columns."""
    return frame_from_columns(source, columns_of(source, rows), today)


def validate(source: Source, rows: Sequence[Mapping[str, str]], *, today: date,
             institutions: Sequence[str]) -> dict[int, list[Failure]]:
    """Validate a chunk of raw rows; returns the failures per position in ``rows``.

    Rows not in the result passed every rule. Runs in this process (see
    :func:`validator` for the pipelined worker that bulk ingest uses).
    """
    if not rows:
        return {}
    return validate_columns(source, columns_of(source, rows), today=today, institutions=institutions)


def validate_columns(source: Source, columns: Sequence[Sequence[str]], *, today: date,
                     institutions: Sequence[str], docs: DocsTally | None = None) -> dict[int, list[Failure]]:
    """Like :func:`validate`, on the values from :func:`columns_of`; counts go to ``docs`` if given."""
    n = len(columns[0]) if columns else 0
    if not n:
        return {}
    from great_expectations.validator.v1_validator import Validator

    df = frame_from_columns(source, columns, today)
    vd = _definition(source)
    started = time.perf_counter()
    # GX's own validator, as ValidationDefinition.run uses it, minus run() storing every
    # result (with its index lists) in the context's results store: nothing reads that
    # store, and serialising it cost more than a second per chunk.
    result: Any = Validator(batch_definition=vd.batch_definition, batch_parameters={"dataframe": df},
                       result_format=RESULT_FORMAT).validate_expectation_suite(
        vd.suite, {"today": day_number(today), "institutions": sorted(institutions)})
    STATS.seconds += time.perf_counter() - started
    STATS.rows += n
    STATS.chunks += 1
    if docs is not None:
        docs.add(source.name, result)
    failures: dict[int, list[Failure]] = {}
    for r in result.results:
        meta = r.expectation_config.meta or {}
        rule, desc = str(meta.get("rule", r.expectation_config.type)), str(meta.get("description", ""))
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"expectation for rule {rule} could not run: "
                               f"{r.exception_info.get('exception_message')}")
        if r.success:
            continue
        for hit in r.result.get("unexpected_index_list") or []:
            failures.setdefault(int(hit[ROW_INDEX] if isinstance(hit, dict) else hit), []).append(
                Failure(rule, desc))
    return failures


MapSpec = tuple[str, Any, Sequence[int]]
"""What a chunk needs to be mapped as well as validated: the file's name, the time of
receipt and each row's number in the file (see :func:`check_chunk`)."""


def check_chunk(source: Source, rows: Iterable[Mapping[str, str]], columns: Sequence[Sequence[str]], *,
                today: date, institutions: Sequence[str], mapping: MapSpec | None = None,
                docs: DocsTally | None = None) -> tuple[dict[int, list[Failure]], list[Any] | None]:
    """Validate a chunk and, given ``mapping``, map and prepare the rows that pass for the store.

    Returns the failures by position and, with ``mapping``, one entry per row from
    :func:`stafet.ingest.pipeline.prepare_rows`.
    Mapping runs here so that it runs where validation does: in the worker process
    during bulk ingest, beside the process that writes the store.
    """
    failures = validate_columns(source, columns, today=today, institutions=institutions, docs=docs)
    if mapping is None:
        return failures, None
    from stafet.ingest.pipeline import prepare_rows

    return failures, prepare_rows(source, rows, failures, *mapping)


def plain_prepared(mapped: list[Any] | None) -> list[Any] | None:
    """:func:`check_chunk`'s outcomes for the pipe: each prepared record as a plain tuple.

    A named tuple pickles through its Python ``__new__``, a plain one in C: for a chunk of
    records that is ~2 µs a row in the worker and ~1 µs in the ingest (measured).
    :meth:`~stafet.store.db.Store.upsert_prepared` takes either.
    """
    if mapped is None:
        return None
    from stafet.store.db import Prepared

    return [tuple(m) if type(m) is Prepared else m for m in mapped]


# --- Data Docs: GX's own pages for a run, from counts only ---------------------------

_COUNT_KEYS = ("element_count", "unexpected_count", "missing_count")


@dataclass
class DocsTally:
    """Per-file, per-expectation counts of validated chunks: all that goes into Data Docs.

    GX's results name failed values and rows (and a value may be a CPR typed into the
    wrong field); the tally keeps only each expectation's configuration (rule names,
    column names, value sets from the suite) and its element, unexpected and missing
    counts, so the pages rendered from it cannot carry a value from a source file.
    """

    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # file → tally
    current: str = ""

    def start(self, file: str) -> None:
        """Count the following chunks for ``file``."""
        self.current = file

    def add(self, source: str, result: Any) -> None:
        """Add one chunk's ``ExpectationSuiteValidationResult``."""
        t = self.files.setdefault(self.current, {"source": source, "configs": [], "counts": []})
        for i, r in enumerate(result.results):
            if i == len(t["counts"]):
                t["configs"].append(r.expectation_config)
                t["counts"].append(dict.fromkeys(_COUNT_KEYS, 0))
            counts, res = t["counts"][i], r.result or {}
            for k in _COUNT_KEYS:
                counts[k] += int(res.get(k) or 0)

    def pop(self, file: str) -> dict[str, Any] | None:
        """The tally of ``file``, forgotten here."""
        return self.files.pop(file, None)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120] or "file"


def _summary_result(tally: dict[str, Any], file: str, run: Any) -> Any:
    """A GX suite validation result for a whole file, built from a :class:`DocsTally` entry."""
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult

    results = []
    for cfg, c in zip(tally["configs"], tally["counts"], strict=True):
        n, bad, missing = c["element_count"], c["unexpected_count"], c["missing_count"]
        present = n - missing
        results.append(ExpectationValidationResult(success=bad == 0, expectation_config=cfg, result={
            "element_count": n, "unexpected_count": bad, "missing_count": missing,
            "missing_percent": 100 * missing / n if n else None,
            "unexpected_percent": 100 * bad / present if present else None,
            "unexpected_percent_total": 100 * bad / n if n else None,
            "unexpected_percent_nonmissing": 100 * bad / present if present else None}))
    ok = sum(1 for r in results if r.success)
    return ExpectationSuiteValidationResult(
        success=ok == len(results), results=results, suite_name=f"stafet.{tally['source']}",
        statistics={"evaluated_expectations": len(results), "successful_expectations": ok,
                    "unsuccessful_expectations": len(results) - ok,
                    "success_percent": 100 * ok / len(results) if results else None},
        meta={"run_id": run, "active_batch_definition": {
            "datasource_name": f"src_{tally['source']}", "data_connector_name": "fluent",
            "data_asset_name": "rows", "batch_identifiers": {"file": _safe_name(file)}},
              "batch_spec": {"source": tally["source"], "file": _safe_name(file)}})


_docs_keys: dict[str, list[Any]] = {}  # run folder → its results' keys in the context's store


def build_docs(tally: dict[str, Any] | None, file: str, folder: Path, run_name: str,
               run_time: Any) -> Path | None:
    """Render the Data Docs page of one file (and the site's index) into ``folder`` with GX's SiteBuilder.

    Files of the same run share ``folder``: the index lists them all. Returns the
    index page, or None when nothing of ``file`` was validated.
    """
    if not tally or not tally["counts"]:
        return None
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    ctx = _gx_context()
    run = RunIdentifier(run_name=run_name, run_time=run_time)
    key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=f"stafet.{tally['source']}"), run,
                                     _safe_name(file))
    store = ctx.validation_results_store
    with _lock:
        for other in [k for k in _docs_keys if k != str(folder)]:  # an earlier run: forget its results
            for old in _docs_keys.pop(other):
                with contextlib.suppress(Exception):
                    store.remove_key(old)
        _docs_keys.setdefault(str(folder), []).append(key)
        store.set(key, _summary_result(tally, file, run))
        site = f"run_{os.getpid()}"
        ctx.add_data_docs_site(site, {
            "class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}})
        try:
            ctx.build_data_docs(site_names=[site])
        finally:
            ctx.delete_data_docs_site(site)
    index = folder / "index.html"
    return index if index.is_file() else None


# --- the validation worker: GX in its own process, pipelined with the ingest ----------

WORKER_ENV = "STAFET_VALIDATION_WORKER"
"""Set to ``0`` to validate in the ingesting process instead of a worker process."""


class ChunkValidator(Protocol):
    """What :func:`validator` yields: submit chunks, then collect their outcomes in the same order."""

    def submit(self, source: Source, rows: Sequence[Mapping[str, str]], today: date,
               institutions: Sequence[str], mapping: MapSpec | None = None) -> None:
        """Queue a chunk's raw rows to be validated (and mapped, given ``mapping``: :func:`check_chunk`)."""
        ...

    def collect(self) -> tuple[dict[int, list[Failure]], list[Any] | None]:
        """What :func:`check_chunk` returned for the oldest submitted chunk."""
        ...

    def start_file(self, file: str) -> None:
        """Count the chunks submitted from now on for ``file``'s Data Docs page."""
        ...

    def build_docs(self, file: str, folder: Path, run_name: str, run_time: Any) -> Path | None:
        """Once every chunk of ``file`` is collected: its Data Docs page in ``folder``."""
        ...


_GX_LOCK = threading.Lock()


class _InProcess:
    """Validates at submit time, in this process (``STAFET_VALIDATION_WORKER=0``)."""

    def __init__(self) -> None:
        self._done: deque[tuple[dict[int, list[Failure]], list[Any] | None]] = deque()
        self._docs = DocsTally()

    def submit(self, source: Source, rows: Sequence[Mapping[str, str]], today: date,
               institutions: Sequence[str], mapping: MapSpec | None = None) -> None:
        columns = columns_of(source, rows)
        # GX's suite-parameter parser is one shared object with state: two validations at
        # once (the nightly flow ingests on several threads) corrupt each other.
        with _GX_LOCK:
            self._done.append(check_chunk(source, rows, columns, today=today, institutions=institutions,
                                          mapping=mapping, docs=self._docs))

    def collect(self) -> tuple[dict[int, list[Failure]], list[Any] | None]:
        return self._done.popleft()

    def start_file(self, file: str) -> None:
        self._docs.start(file)

    def build_docs(self, file: str, folder: Path, run_name: str, run_time: Any) -> Path | None:
        return build_docs(self._docs.pop(file), file, folder, run_name, run_time)

    def close(self) -> None:
        self._done.clear()


class _Worker:
    """A ``python -m stafet.ingest.worker_main`` child: GX and pandas live there, not here.

    Requests and answers are pickles over its stdin and stdout, answered in order, so
    the ingest can submit the next chunk before it collects the failures of this one.
    The worker keeps GX imported (≈ 3 s, ≈ 270 MB) for the life of this process.
    """

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, "GX_ANALYTICS_ENABLED": "False",
               "PYTHONPATH": root + (os.pathsep + path if path else "")}
        self.proc = subprocess.Popen([sys.executable, "-m", "stafet.ingest.worker_main"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.outstanding = 0

    def _send(self, message: tuple[Any, ...]) -> None:
        assert self.proc.stdin is not None
        try:
            pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise RuntimeError("the validation worker has exited") from None
        self.outstanding += 1

    def submit(self, source: Source, rows: Sequence[Mapping[str, str]], today: date,
               institutions: Sequence[str], mapping: MapSpec | None = None) -> None:
        keys, packed = pack_rows(rows)
        self._send(("check", source.name, keys, packed, len(rows), today, sorted(institutions), mapping))

    def ping(self) -> None:
        """Wait until the worker has imported GX and is ready."""
        self._send(("ping",))
        self.collect()

    def start_file(self, file: str) -> None:
        self._send(("start", file))
        self._answer()

    def build_docs(self, file: str, folder: Path, run_name: str, run_time: Any) -> Path | None:
        self._send(("docs", file, str(folder), run_name, run_time))
        value = self._answer()
        return Path(value) if value else None

    def collect(self) -> tuple[dict[int, list[Failure]], list[Any] | None]:
        value = self._answer()
        return (dict(value[0]), value[1]) if value else ({}, None)

    def _answer(self) -> Any:
        assert self.proc.stdout is not None
        try:
            # Our own child on a private pipe: trusted, unlike any file or network input.
            status, value, seconds, rows, peak_mb, cpu = pickle.load(self.proc.stdout)  # noqa: S301
        except (EOFError, pickle.UnpicklingError, OSError):
            raise RuntimeError(f"the validation worker has exited (code {self.proc.poll()})") from None
        self.outstanding -= 1
        STATS.seconds += seconds
        STATS.rows += rows
        STATS.chunks += 1 if rows else 0
        STATS.worker_peak_mb = max(STATS.worker_peak_mb, peak_mb)
        STATS.worker_cpu_s[self.proc.pid] = cpu
        if status != "ok":
            raise RuntimeError(f"validation failed in the worker: {value}")
        return value

    def close(self) -> None:
        """Stop the worker (closing its stdin ends it), killing it if it lingers."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_idle: list[_Worker] = []


def _use_worker() -> bool:
    return os.environ.get(WORKER_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _checkout() -> _Worker:
    with _lock:
        while _idle:
            w = _idle.pop()
            if w.proc.poll() is None:
                return w
            w.close()
    return _Worker()


def _checkin(w: _Worker) -> None:
    if w.outstanding or w.proc.poll() is not None:
        w.close()
        return
    with _lock:
        _idle.append(w)


@atexit.register
def _close_idle() -> None:
    with _lock:
        workers = list(_idle)
        _idle.clear()
    for w in workers:
        w.close()


def warm_up() -> None:
    """Start a validation worker (GX imported) now, so that the first ingest does not wait."""
    if _use_worker():
        w = _checkout()
        w.ping()
        _checkin(w)
    else:
        _gx_context()


@contextlib.contextmanager
def validator() -> Iterator[ChunkValidator]:
    """A pipelined validator for one file: ``submit`` chunks, ``collect`` their outcomes in order.

    GX runs in a worker process (one per concurrent ingest, reused afterwards), so
    GX's memory stays out of the ingesting process, and validating and mapping the
    next chunk overlaps with storing this one. A worker left with unanswered chunks
    (an error in between) is stopped, not reused.
    """
    if not _use_worker():
        local = _InProcess()
        yield local
        return
    w = _checkout()
    try:
        yield w
    finally:
        _checkin(w)
