"""Small files checked ahead: several files of one source validated in one GX call before their ingest.

A night's files are mostly small (tens of rows: a municipality's job-centre orders, a
school's events) and Great Expectations costs ≈ 0.25 s a call whatever its size, so a
partition of a hundred small files spent most of its ingest building GX's metric graph.
:func:`check_ahead` reads the small files of a batch (the sources of one night partition),
groups their well-formed rows by source and validates and maps each group in one call
(:func:`stafet.ingest.gx.validate_parts` in the validation worker): per file the same
failures, mapped records and Data Docs counts as a call of its own.

Each file is then ingested as before, one transaction each, in its source's order
(:func:`stafet.ingest.pipeline.ingest_inboxes`): :func:`validator_for` answers its chunk
from what was checked ahead. Only what the file's own ingest would submit is used — the
same bytes (sha256), source, rows, row numbers, time of receipt and institutions; any
difference and the file is validated on its own, as without this module.

Imports :mod:`stafet.ingest` siblings (gx, worker, docs, mapping) and the readers; not the
pipeline, which imports this.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stafet.ingest import worker
from stafet.ingest.docs import build_docs

if TYPE_CHECKING:  # pragma: no cover
    from mappings import Source
    from stafet.ingest.gx import Failure
    from stafet.ingest.mapping import MapSpec
    from stafet.ingest.worker import ChunkValidator

log = logging.getLogger("stafet.ingest")

AHEAD_BYTES = 4 << 20
"""Files up to this size are read ahead (bigger ones are validated in chunks of their own)."""

AHEAD_ROWS = 100_000
"""At most this many rows are held checked ahead at once (the rest is validated as usual)."""


@dataclass(frozen=True)
class Checked:
    """One file's chunk validated and mapped ahead: what its ingest's validator answers."""

    sha256: str
    source: str
    today: date
    institutions: tuple[str, ...]
    mapping: tuple[str, datetime, tuple[int, ...]]
    failures: dict[int, list[Failure]]
    mapped: list[Any]
    tally: dict[str, Any]

    def answers(self, source: Source, rows: Sequence[Mapping[str, str]], today: date,
                institutions: Sequence[str], mapping: MapSpec | None) -> bool:
        """Whether a submitted chunk is the one checked ahead."""
        return (mapping is not None and source.name == self.source and today == self.today
                and tuple(sorted(institutions)) == self.institutions and len(rows) == len(self.mapping[2])
                and (mapping[0], mapping[1], tuple(mapping[2])) == self.mapping)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_ahead(files: Sequence[tuple[str, Path, Source]], *, now: datetime, institutions: Sequence[str],
                max_rows: int) -> dict[Path, Checked]:
    """Validate and map the small files among ``files`` (name, local copy, source) in one call per source.

    ``now`` is the time of receipt their ingest must use; a file with more than
    ``max_rows`` rows (the pipeline's chunk) or none that is well formed is left out, as
    is a file whose reader fails (its own ingest reports that) and a source with only
    one such file (nothing to share); a batch whose check fails (a rule that could not
    run, a worker that died) is left to each file's own ingest. Returns what was checked,
    by local path.
    """
    groups: dict[str, list[tuple[Path, str, Source, list[Any]]]] = {}
    held = 0
    for name, path, src in files:
        if held >= AHEAD_ROWS or path.stat().st_size > AHEAD_BYTES:
            continue
        try:
            with path.open("rb") as fh:
                rows = list(src.reader.rows(fh, name))
        except Exception as e:  # a refused file: its own ingest meets the error and reports it
            log.debug("%s not checked ahead: %s", name, type(e).__name__)
            continue
        good = [r for r in rows if not r.problem]
        if good and len(rows) <= max_rows:
            groups.setdefault(src.name, []).append((path, name, src, good))
            held += len(good)
    today = now.date()
    inst = tuple(sorted(institutions))
    out: dict[Path, Checked] = {}
    for items in groups.values():
        if len(items) < 2:
            continue
        for batch in _batches(items, max_rows):
            src = batch[0][2]
            parts = [([r.fields for r in good], (name, now, [r.number for r in good]))
                     for _, name, _, good in batch]
            try:
                answers = worker.check_parts(src, parts, today, inst)
            except Exception as e:  # e.g. a rule that could not run: each file meets it in its own ingest
                log.warning("%d %s files not checked ahead (%s): validated one by one", len(batch), src.name,
                            type(e).__name__)
                continue
            for (path, name, _, good), (failures, mapped, tally) in zip(batch, answers, strict=True):
                out[path] = Checked(_sha256(path), src.name, today, inst,
                                    (name, now, tuple(r.number for r in good)), failures, mapped, tally)
    return out


def _batches(items: list[Any], max_rows: int) -> Iterator[list[Any]]:
    """Consecutive items whose rows add up to at most ``max_rows`` (an item's rows: its last element)."""
    batch: list[Any] = []
    rows = 0
    for item in items:
        if batch and rows + len(item[-1]) > max_rows:
            yield batch
            batch, rows = [], 0
        batch.append(item)
        rows += len(item[-1])
    if batch:
        yield batch


class _Prechecked:
    """A :class:`~stafet.ingest.worker.ChunkValidator` that answers a file's one chunk from :class:`Checked`.

    Anything else it was not checked for goes to a validation worker of its own, taken
    on first use, as without it.
    """

    def __init__(self, checked: Checked, stack: contextlib.ExitStack) -> None:
        self._checked: Checked | None = checked
        self._used: Checked | None = None
        self._stack = stack
        self._real: ChunkValidator | None = None
        self._file = ""
        self._queue: deque[Checked | None] = deque()

    def _fallback(self) -> ChunkValidator:
        if self._real is None:
            self._real = self._stack.enter_context(worker.validator())
            if self._file:
                self._real.start_file(self._file)
        return self._real

    def submit(self, source: Source, rows: Sequence[Mapping[str, str]], today: date,
               institutions: Sequence[str], mapping: MapSpec | None = None) -> None:
        c = self._checked
        if c is not None and self._real is None and c.answers(source, rows, today, institutions, mapping):
            self._checked, self._used = None, c
            self._queue.append(c)
            return
        if self._used is not None:
            raise RuntimeError("a file checked ahead as one chunk was read as more than one")
        self._checked = None
        log.debug("%s: not as checked ahead, validated on its own", source.name)
        self._fallback().submit(source, rows, today, institutions, mapping)
        self._queue.append(None)

    def collect(self) -> tuple[dict[int, list[Failure]], list[Any] | None]:
        c = self._queue.popleft()
        if c is None:
            assert self._real is not None
            return self._real.collect()
        return c.failures, c.mapped

    def start_file(self, file: str) -> None:
        self._file = file
        if self._real is not None:
            self._real.start_file(file)

    def build_docs(self, file: str, folder: Path, run_name: str, run_time: Any) -> Path | None:
        if self._used is not None:
            return build_docs(self._used.tally, file, folder, run_name, run_time)
        return self._real.build_docs(file, folder, run_name, run_time) if self._real is not None else None


@contextlib.contextmanager
def validator_for(checked: Checked | None, sha256: str) -> Iterator[ChunkValidator]:
    """The file's validator: from ``checked`` when it is this file's (by ``sha256``), else a worker."""
    if checked is None or checked.sha256 != sha256:
        with worker.validator() as val:
            yield val
        return
    with contextlib.ExitStack() as stack:
        yield _Prechecked(checked, stack)
