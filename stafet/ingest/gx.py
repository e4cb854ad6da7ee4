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
