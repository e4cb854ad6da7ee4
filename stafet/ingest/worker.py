"""The validation worker pool: GX in its own process, pipelined with the ingest.

Bulk ingest (:func:`validator`) runs GX in a worker process (a
:class:`stafet.core.workers.Worker` serving :mod:`stafet.ingest.worker_main`, kept for
reuse in an :class:`~stafet.core.workers.Idle`) and, in the same worker, maps the rows that
pass and reduces them to what the store writes (:func:`stafet.ingest.mapping.check_chunk`):
the ingesting process reads the file and writes the store while the worker validates
and maps the next chunk, so both cores work. ``STAFET_VALIDATION_WORKER=0`` validates in
the ingesting process instead.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stafet.core.workers import Idle, Worker
from stafet.ingest.docs import DocsTally, build_docs
from stafet.ingest.gx import STATS, Failure, _gx_context, columns_of, validate_parts
from stafet.ingest.mapping import MapSpec, check_chunk, map_checked
from stafet.ingest.packing import pack_rows

if TYPE_CHECKING:  # pragma: no cover
    from mappings import Source

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


HANDLER = "stafet.ingest.worker_main:handler"
"""The validation worker's handler (:mod:`stafet.ingest.worker_main`), for :mod:`stafet.core.workers`."""
_IDLE = Idle(HANDLER, env={"GX_ANALYTICS_ENABLED": "False"})
atexit.register(_IDLE.close)


class _Remote:
    """A :class:`ChunkValidator` on a validation worker: GX and pandas live there, not here.

    The worker answers in order, so the ingest submits the next chunk before it collects
    the failures of this one. It keeps GX imported (≈ 3 s, ≈ 270 MB) for the life of
    this process (:data:`_IDLE`). Each answer carries the GX seconds and rows of
    :data:`~stafet.ingest.gx.STATS`; the worker's usage fills its footprint.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def submit(self, source: Source, rows: Sequence[Mapping[str, str]], today: date,
               institutions: Sequence[str], mapping: MapSpec | None = None) -> None:
        keys, packed = pack_rows(rows)
        self.worker.submit(("check", source.name, keys, packed, len(rows), today, sorted(institutions),
                            mapping))

    def ping(self) -> None:
        """Wait until the worker has imported GX and is ready."""
        self._call(("ping",))

    def start_file(self, file: str) -> None:
        self._call(("start", file))

    def build_docs(self, file: str, folder: Path, run_name: str, run_time: Any) -> Path | None:
        value = self._call(("docs", file, str(folder), run_name, run_time))
        return Path(value) if value else None

    def collect(self) -> tuple[dict[int, list[Failure]], list[Any] | None]:
        value = self._answer()
        return (dict(value[0]), value[1]) if value else ({}, None)

    def _call(self, request: tuple[Any, ...]) -> Any:
        self.worker.submit(request)
        return self._answer()

    def _answer(self) -> Any:
        try:
            value, seconds, rows = self.worker.collect()
        finally:
            STATS.worker_peak_mb = max(STATS.worker_peak_mb, self.worker.usage.peak_mb)
            STATS.worker_cpu_s[self.worker.pid] = self.worker.usage.cpu_s
        STATS.seconds += seconds
        STATS.rows += rows
        STATS.chunks += 1 if rows else 0
        return value


def _use_worker() -> bool:
    return os.environ.get(WORKER_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def warm_up() -> None:
    """Start a validation worker (GX imported) now, so that the first ingest does not wait."""
    if _use_worker():
        w = _IDLE.checkout()
        try:
            _Remote(w).ping()
        finally:
            _IDLE.checkin(w)
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
    w = _IDLE.checkout()
    try:
        yield _Remote(w)
    finally:
        _IDLE.checkin(w)


PartAnswer = tuple[dict[int, list[Failure]], list[Any], dict[str, Any]]
"""One file of :func:`check_parts`: failures by position, prepared records, Data Docs tally."""


def check_parts(source: Source, parts: Sequence[tuple[Sequence[Mapping[str, str]], MapSpec]], today: date,
                institutions: Sequence[str]) -> list[PartAnswer]:
    """Validate several small files' rows of one source in one GX call, and map each file's rows.

    ``parts``: per file its well-formed rows and their :data:`~stafet.ingest.mapping.MapSpec`.
    Per file: the failures by position, the prepared records (as :func:`check_chunk`
    gives them) and its Data Docs tally (:func:`stafet.ingest.gx.validate_parts`). In a
    validation worker, or here with ``STAFET_VALIDATION_WORKER=0``.
    """
    if not _use_worker():
        with _GX_LOCK:
            outcomes = validate_parts(source, [columns_of(source, rows) for rows, _ in parts], today=today,
                                      institutions=institutions)
        return [(failures, map_checked(source, rows, failures, mapping), tally)
                for (rows, mapping), (failures, tally) in zip(parts, outcomes, strict=True)]
    packed = []
    for rows, mapping in parts:
        keys, columns = pack_rows(rows)
        packed.append((keys, columns, len(rows), mapping))
    w = _IDLE.checkout()
    try:
        answer: list[PartAnswer] = _Remote(w)._call(
            ("check_parts", source.name, packed, today, sorted(institutions)))
        return answer
    finally:
        _IDLE.checkin(w)
