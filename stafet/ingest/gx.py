"""Row validation with Great Expectations 1.x: which rows of a chunk break which rule.

Every source declares its suite in its own module of :mod:`mappings` as a tuple of
:class:`mappings.checks.Check`; the suites are therefore versioned with the code, and
:func:`suite_json` renders one as GX's own JSON for review.

How a chunk (≤ :data:`stafet.ingest.pipeline.CHUNK_ROWS` rows) is validated:

1. the raw string fields of the source's checked columns go into a pandas DataFrame
   (absent fields are ``""``);
2. the source's ``prepare`` adds typed columns with the vectorised helpers of
   :mod:`mappings.checks` (CPR shape, birth date, parsed dates, age);
3. GX runs the suite in an ephemeral context (analytics off, progress bars off,
   no Data Docs site, no files written) with result format COMPLETE and the
   ``_i`` column as index, so each failed expectation names its rows.

Runtime values enter as suite parameters: ``$PARAMETER today`` (nothing may happen
in the future) and ``$PARAMETER institutions`` (institution numbers known to the
network). GX and pandas are imported on first use only: importing GX costs
seconds and the CLI must start fast. Bulk ingest runs this in a worker process
(:mod:`stafet.ingest.worker`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import threading
import time
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from mappings.checks import Check, day_number
from stafet.ingest.docs import DocsTally

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mappings import Source

ROW_INDEX = "_i"


class ResultSink(Protocol):
    """Where a chunk's GX result is counted (:class:`stafet.ingest.docs.DocsTally`)."""

    def add(self, source: str, result: Any) -> None:
        """Add one chunk's ``ExpectationSuiteValidationResult``."""
        ...


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
                     institutions: Sequence[str], docs: ResultSink | None = None) -> dict[int, list[Failure]]:
    """Like :func:`validate`, on the values from :func:`columns_of`; counts go to ``docs`` if given."""
    n = len(columns[0]) if columns else 0
    if not n:
        return {}
    _, result = _run_suite(source, columns, today=today, institutions=institutions)
    if docs is not None:
        docs.add(source.name, result)
    return _failures(result)


def _run_suite(source: Source, columns: Sequence[Sequence[str]], *, today: date,
               institutions: Sequence[str]) -> tuple[pd.DataFrame, Any]:
    """The validation frame of ``columns`` and GX's ``ExpectationSuiteValidationResult`` on it."""
    from great_expectations.validator.v1_validator import Validator

    n = len(columns[0]) if columns else 0
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
    return df, result


def _raised(r: Any) -> str:
    """The rule and message of an expectation result that could not run, or ``""``.

    GX reports an expectation's own error in its ``exception_info``, and an error in a
    metric it needed (a column the frame lacks) as ``exception_info`` keyed by that
    metric: either means the rule was not checked, and the chunk fails closed.
    """
    info = r.exception_info or {}
    errors = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for e in errors:
        if e.get("raised_exception"):
            meta = r.expectation_config.meta or {}
            return (f"expectation for rule {meta.get('rule', r.expectation_config.type)} could not run: "
                    f"{e.get('exception_message')}")
    return ""


def _hits(res: Mapping[str, Any]) -> list[int]:
    """The row positions an expectation's result names as unexpected."""
    return [int(h[ROW_INDEX] if isinstance(h, dict) else h) for h in res.get("unexpected_index_list") or []]


def _failures(result: Any) -> dict[int, list[Failure]]:
    """The failures per row position of a suite result (an expectation that could not run raises)."""
    failures: dict[int, list[Failure]] = {}
    for r in result.results:
        meta = r.expectation_config.meta or {}
        rule, desc = str(meta.get("rule", r.expectation_config.type)), str(meta.get("description", ""))
        if _raised(r):
            raise RuntimeError(_raised(r))
        if r.success:
            continue
        for hit in _hits(r.result):
            failures.setdefault(hit, []).append(Failure(rule, desc))
    return failures


# --- many small files, one GX call ------------------------------------------------------

@dataclass(frozen=True)
class PlainConfig:
    """An expectation's configuration as plain data, what :mod:`stafet.ingest.docs` reads.

    It crosses the worker pipe without GX on the other side.
    """

    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]


PartOutcome = tuple[dict[int, list[Failure]], dict[str, Any]]
"""One part of :func:`validate_parts`: its failures by position, and its Data Docs tally
(the shape of a :class:`stafet.ingest.docs.DocsTally` file entry)."""

_SPLITS = {"expect_column_values_to_be_in_set", "expect_column_values_to_be_between",
           "expect_column_values_to_not_be_null", "expect_column_pair_values_a_to_be_greater_than_b"}
"""The expectations whose counts :func:`_split` can tell per part: column (pair) map
expectations, where every count is a count of rows."""


def _plain(cfg: Any) -> PlainConfig:
    def value(v: Any) -> Any:  # what the Data Docs page renders (json.dumps(..., default=str)), as data
        return json.loads(json.dumps(v, ensure_ascii=False, default=str))

    return PlainConfig(str(cfg.type), {k: value(v) for k, v in dict(cfg.kwargs or {}).items()},
                       value(dict(cfg.meta or {})))


def _tally(source: Source, result: Any) -> dict[str, Any]:
    """One validation's Data Docs tally as :class:`stafet.ingest.docs.DocsTally` keeps it, configs plain."""
    tally = DocsTally()
    tally.add(source.name, result)
    entry = tally.files[""]
    entry["configs"] = [_plain(c) for c in entry["configs"]]
    return entry


def _row_filter(kwargs: Mapping[str, Any]) -> str | None:
    """The pandas row condition of an expectation ("" for none), or None if it is not one."""
    cond = kwargs.get("row_condition")
    if cond is None or cond == "":
        return ""
    if kwargs.get("condition_parser") not in (None, "pandas"):
        return None
    if isinstance(cond, str):
        return cond
    text = (cond.get("pass_through_filter") if isinstance(cond, dict)
            else getattr(cond, "pass_through_filter", None))
    return text if isinstance(text, str) else None


def _split(source: Source, df: pd.DataFrame, result: Any, sizes: Sequence[int]) -> list[PartOutcome] | None:
    """Each part's failures and counts from one validation of the parts' rows one after another.

    A row's failures depend on that row only (no expectation here is an aggregate), so a
    part's failures are the combined result's within the part's positions. Its counts —
    rows in the expectation's domain (after its row condition), rows missing a value,
    unexpected rows — are counted per part from the frame the way GX's map expectations
    count them; they are checked against GX's totals. None when an expectation is not one
    this can split, raised, or a total does not match: the caller validates part by part.
    """
    import numpy as np

    bounds = np.cumsum([0, *sizes])
    parts = len(sizes)

    def per_part(positions: Any) -> Any:
        return np.bincount(np.searchsorted(bounds, positions, side="right") - 1, minlength=parts)

    failures: list[dict[int, list[Failure]]] = [{} for _ in sizes]
    configs: list[list[PlainConfig]] = [[] for _ in sizes]
    counts: list[list[dict[str, int]]] = [[] for _ in sizes]
    for r in result.results:
        cfg, res = r.expectation_config, r.result or {}
        kwargs = dict(cfg.kwargs or {})
        row_filter = _row_filter(kwargs)
        if _raised(r) or cfg.type not in _SPLITS or "mostly" in kwargs or row_filter is None:
            return None
        domain = df[df.eval(row_filter, parser="pandas")] if row_filter else df  # as DataFrame.query does
        if cfg.type == "expect_column_values_to_not_be_null":
            missing = np.zeros(0, dtype=np.int64)
        elif "column" in kwargs:
            missing = domain[ROW_INDEX].to_numpy()[domain[kwargs["column"]].isnull().to_numpy()]
        else:
            a, b = domain[kwargs["column_A"]].isnull(), domain[kwargs["column_B"]].isnull()
            ignore = kwargs.get("ignore_row_if", "both_values_are_missing")
            mask = {"either_value_is_missing": a | b, "both_values_are_missing": a & b}.get(ignore)
            if mask is None:
                return None
            missing = domain[ROW_INDEX].to_numpy()[mask.to_numpy()]
        hits = _hits(res)
        elements = per_part(domain[ROW_INDEX].to_numpy())
        missed, unexpected = per_part(missing), per_part(np.array(hits, dtype=np.int64))
        if (int(elements.sum()) != int(res.get("element_count") or 0)
                or int(missed.sum()) != int(res.get("missing_count") or 0)
                or len(hits) != int(res.get("unexpected_count") or 0)):
            return None
        plain = _plain(cfg)
        for i in range(parts):
            configs[i].append(plain)
            counts[i].append({"element_count": int(elements[i]), "unexpected_count": int(unexpected[i]),
                              "missing_count": int(missed[i])})
    for hit, failed in _failures(result).items():  # every expectation ran: nothing raises here
        part = int(np.searchsorted(bounds, hit, side="right") - 1)
        failures[part][hit - int(bounds[part])] = failed
    return [(f, {"source": source.name, "configs": cf, "counts": ct})
            for f, cf, ct in zip(failures, configs, counts, strict=True)]


def validate_parts(source: Source, parts: Sequence[Sequence[Sequence[str]]], *, today: date,
                   institutions: Sequence[str]) -> list[PartOutcome]:
    """Validate several small files' rows of one source in one GX call; per part what one call each gives.

    Each part is :func:`columns_of` of one file's rows. GX costs ≈ 0.25 s a call whatever
    its size (its metric graph, built per expectation), and a night's files are mostly
    small: one call for all of them instead of one per file. Per part the result is what
    :func:`validate_columns` on that part alone returns, and its Data Docs tally: the
    same failures, rules and counts (tested against one call per part,
    ``tests/ingest/test_validate_parts.py``). When the combined result cannot be split
    (:func:`_split`), each part is validated alone.
    """
    sizes = [len(p[0]) if p else 0 for p in parts]
    live = [i for i, n in enumerate(sizes) if n]
    out: list[PartOutcome] = [({}, {"source": source.name, "configs": [], "counts": []}) for _ in parts]
    if not live:
        return out
    if len(live) > 1:
        combined = [[v for i in live for v in parts[i][c]] for c in range(len(source.columns))]
        df, result = _run_suite(source, combined, today=today, institutions=institutions)
        split = _split(source, df, result, [sizes[i] for i in live])
        if split is not None:
            for i, outcome in zip(live, split, strict=True):
                out[i] = outcome
            return out
    for i in live:
        _, result = _run_suite(source, parts[i], today=today, institutions=institutions)
        out[i] = (_failures(result), _tally(source, result))
    return out
