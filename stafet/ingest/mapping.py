"""The mapping step of an ingest: rows that passed validation → records prepared for the store.

Pure apart from the validation it calls (:func:`check_chunk`): it runs where validation
runs, in the validation worker during bulk ingest (:mod:`stafet.ingest.worker`), beside
the process that writes the store.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from stafet.core.errors import DataError
from stafet.core.models import Consent, Provenance
from stafet.ingest.gx import Failure, ResultSink, validate_columns
from stafet.store.db import Prepared, prepare, prepare_values

if TYPE_CHECKING:  # pragma: no cover
    from mappings import Source


class MapError(NamedTuple):
    """A row whose mapping raised a ``DataError``: the rule, why, and its raw fields."""

    rule: str
    message: str
    fields: Mapping[str, str]


RowOutcome = Prepared | MapError | Mapping[str, str]
"""What :func:`prepare_rows` gives for one row."""


def prepare_rows(source: Source, rows: Iterable[Mapping[str, str]], failures: Mapping[int, Any], file: str,
                 received_at: datetime, numbers: Sequence[int]) -> list[RowOutcome]:
    """Map each row that passed validation and reduce it for the store (pure: runs in any process).

    One entry per row: the row's raw fields where ``failures`` holds it (it is
    quarantined for that, whatever its mapping would do), a :class:`MapError` where
    the mapping raised a ``DataError``, else the :class:`~stafet.store.db.Prepared`
    record (keeping the record itself for consents, which have their own table).
    Any other exception is a bug and propagates.
    """
    name, map_row = source.name, source.map_row
    institution, municipality = source.origin(file)  # what the file's name says of its sender
    out: list[RowOutcome] = []
    for i, (fields, number) in enumerate(zip(rows, numbers, strict=True)):
        if i in failures:
            out.append(fields)
            continue
        try:
            rec = map_row(fields, Provenance(name, file, number, received_at, institution, municipality))
        except DataError as e:
            out.append(MapError(e.rule or "mapping", str(e), fields))
            continue
        out.append(prepare(rec, keep=isinstance(rec, Consent)))
    return out


COLUMNAR_ENV = "STAFET_INGEST_COLUMNAR"
"""Set to ``0`` to map a chunk row by row (``map_row``) even where it arrives as columns."""


def columnar() -> bool:
    """Whether chunks that arrive as columns are mapped column by column (:func:`prepare_columns`)."""
    return os.environ.get(COLUMNAR_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def prepare_columns(source: Source, fields: Mapping[str, Sequence[str]], n: int, failures: Mapping[int, Any],
                    file: str, received_at: datetime, numbers: Sequence[int]) -> list[RowOutcome]:
    """:func:`prepare_rows` for a chunk given as its columns (every row has every field).

    The source's :attr:`~mappings.Source.map_columns` converts each distinct value once and
    :func:`~stafet.store.db.prepare_values` writes each payload without building the record
    (consents are still built: their table needs the record). The rows are made as
    dicts only where the outcome carries them (a failed row's raw fields), in the
    columns' order, as the row by row path has them.
    """
    assert source.map_columns is not None
    name = source.name
    institution, municipality = source.origin(file)
    keys = tuple(fields)
    cols = tuple(fields.values())

    def row(i: int) -> dict[str, str]:
        return dict(zip(keys, [c[i] for c in cols], strict=True))

    out: list[RowOutcome] = []
    for i, (m, number) in enumerate(zip(source.map_columns(fields, n, file, numbers), numbers, strict=True)):
        if i in failures:
            out.append(row(i))
        elif isinstance(m, DataError):
            out.append(MapError(m.rule or "mapping", str(m), row(i)))
        elif issubclass(m[0], Consent):
            prov = Provenance(name, file, number, received_at, institution, municipality)
            rec = m[0](provenance=prov, **m[1])
            out.append(prepare(rec, keep=True))
        else:
            out.append(prepare_values(m[0], m[1], name, file, number, received_at, institution, municipality))
    return out


MapSpec = tuple[str, Any, Sequence[int]]
"""What a chunk needs to be mapped as well as validated: the file's name, the time of
receipt and each row's number in the file (see :func:`check_chunk`)."""


def check_chunk(source: Source, rows: Iterable[Mapping[str, str]], columns: Sequence[Sequence[str]], *,
                today: date, institutions: Sequence[str], mapping: MapSpec | None = None,
                docs: ResultSink | None = None, fields: Mapping[str, Sequence[str]] | None = None,
                n: int = 0) -> tuple[dict[int, list[Failure]], list[Any] | None]:
    """Validate a chunk and, given ``mapping``, map and prepare the rows that pass for the store.

    Returns the failures by position and, with ``mapping``, one entry per row from
    :func:`prepare_rows` — or :func:`prepare_columns`, given the chunk's ``n`` rows as ``fields``
    (its columns, every row having every field) and a source that maps columns.
    Mapping runs here so that it runs where validation does: in the worker process
    during bulk ingest, beside the process that writes the store.
    """
    failures = validate_columns(source, columns, today=today, institutions=institutions, docs=docs)
    if mapping is None:
        return failures, None
    return failures, map_checked(source, rows, failures, mapping, fields=fields, n=n)


def map_checked(source: Source, rows: Iterable[Mapping[str, str]], failures: Mapping[int, Any],
                mapping: MapSpec, *, fields: Mapping[str, Sequence[str]] | None = None,
                n: int = 0) -> list[Any]:
    """The mapping half of :func:`check_chunk`, for rows already validated (``failures``)."""
    if fields is not None and source.map_columns is not None and columnar():
        return prepare_columns(source, fields, n, failures, *mapping)
    return prepare_rows(source, rows, failures, *mapping)


def plain_prepared(mapped: list[Any] | None) -> list[Any] | None:
    """:func:`check_chunk`'s outcomes for the pipe: each prepared record as a plain tuple.

    A named tuple pickles through its Python ``__new__``, a plain one in C: for a chunk of
    records that is ~2 µs a row in the worker and ~1 µs in the ingest (measured).
    :meth:`~stafet.store.db.Store.upsert_prepared` takes either.
    """
    if mapped is None:
        return None
    return [tuple(m) if type(m) is Prepared else m for m in mapped]

