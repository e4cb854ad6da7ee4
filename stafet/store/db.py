"""The store: one engine, migrations on open, and the operations every layer needs.

Youths by pseudonym, records by natural key, the hash-chained audit log.

SQLite by default (``$STAFET_HOME/stafet.db``), PostgreSQL with ``STAFET_DATABASE_URL``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import operator
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from stafet.core.config import private_dir, private_file
from stafet.core.cpr import Cpr, parse_cpr
from stafet.core.errors import DataError, TransientError
from stafet.core.models import Record, _jsonable
from stafet.core.vault import Vault
from stafet.store import audit
from stafet.store.clock import utcnow
from stafet.store.schema import AuditEntry, RecordRow, Youth

_MIGRATIONS = Path(__file__).parent / "migrations"


def payload_digest(payload: dict[str, Any]) -> str:
    """sha256 of a payload's canonical JSON (:func:`canonical_json`)."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def make_engine(url: str) -> Engine:
    """An engine with SQLite tuned for one writer and patient readers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine, vault: Vault | None = None) -> None:
    """Bring the schema to the newest Alembic revision.

    ``vault`` is for revisions that re-encrypt what the store holds (0004: each CPR bound
    to its youth's pseudonym); without it they find the network secret themselves.
    """
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["vault"] = vault
        command.upgrade(cfg, "head")


class Store:
    """stafet's database, with the vault that keeps CPRs out of it."""

    def __init__(self, url: str, vault: Vault, *, upgrade: bool = True) -> None:
        self.url = url
        if url.startswith("sqlite:///") and url.removeprefix("sqlite:///") not in ("", ":memory:"):
            # The database holds personal data: 0600 in a 0700 folder, whatever the umask
            # (SQLite gives its -wal/-shm/-journal files the database file's mode).
            db_file = Path(url.removeprefix("sqlite:///"))
            if not db_file.parent.is_dir():
                private_dir(db_file.parent)
            private_file(db_file)
        self.engine = make_engine(url)
        self.vault = vault
        if upgrade:
            migrate(self.engine, vault)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: commit on success, roll back on error.

        A locked SQLite file or a lost PostgreSQL connection becomes a
        ``TransientError`` (the caller may retry); nothing half-written remains.
        """
        s = self._sessions()
        try:
            yield s
            s.commit()
        except OperationalError as e:
            s.rollback()
            raise TransientError(f"database unavailable: {type(e.orig).__name__}") from None
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # --- youths -----------------------------------------------------------------
    def ensure_youths(self, s: Session, cprs: Iterable[Cpr]) -> dict[str, str]:
        """Pseudonyms for ``cprs`` (digits → pseudonym), adding new youths."""
        return self._ensure_youths(s, cprs)[0]

    def _ensure_youths(self, s: Session, cprs: Iterable[Cpr]) -> tuple[dict[str, str], set[str]]:
        """Like :meth:`ensure_youths`, also returning the pseudonyms that are new."""
        return self._ensure_births(s, {c.digits: c.birth_date for c in cprs})

    def _ensure_births(self, s: Session, births: dict[str, date]) -> tuple[dict[str, str], set[str]]:
        """Pseudonyms for CPR digits (with their birth dates), adding new youths; also the new ones."""
        pseud = {d: self.vault.pseudonym(d) for d in births}
        existing = {r[0] for r in _select_in(s, "SELECT pseudonym FROM youths WHERE pseudonym",
                                             list(pseud.values()))}
        now = utcnow()
        new = [(p, self.vault.encrypt_cpr(d, p), births[d], now)   # bound to its own row
               for d, p in pseud.items() if p not in existing]
        if new:
            new.sort(key=_first)  # pseudonyms are unique: comparing them alone is the same order
            # Parallel tasks or workers may meet the same new youth at once.
            _insert_many(s, Youth.__table__, ("pseudonym", "cpr_enc", "birth_date", "created_at"), new,
                         ignore_conflict_on="pseudonym")
        return pseud, {row[0] for row in new}

    def cpr_of(self, s: Session, pseudonym: str) -> Cpr:
        """Decrypt a youth's CPR (for packages to authorised recipients only).

        The ciphertext is bound to the youth's pseudonym: one copied into another youth's
        row raises ``DataError`` (rule ``vault``) instead of giving the wrong CPR.
        """
        return self.cpr_of_row(s.get(Youth, pseudonym), pseudonym)

    def cpr_of_row(self, y: Youth | None, pseudonym: str) -> Cpr:
        """:meth:`cpr_of` from the youth's row as read already (None: not in the store), no query."""
        if y is None:
            raise DataError("unknown youth", youth=pseudonym)
        return parse_cpr(self.vault.decrypt_cpr(y.cpr_enc, pseudonym))

    # --- records ----------------------------------------------------------------
    _RECORD_COLUMNS = ("kind", "youth", "natural_key", "payload", "digest", "source", "source_file",
                       "source_row", "origin_institution", "origin_municipality", "received_at",
                       "updated_at", "withdrawn")

    def upsert_records(self, s: Session, records: Sequence[Record], *, actor: str = "ingest",
                       with_ids: bool = True) -> list[tuple[str, int]]:
        """Store records of our own sources once by natural key; returns ``(new|duplicate|updated, id)`` each.

        Records received in packages never come here: they are kept apart, by recipient
        and package (:mod:`stafet.store.imported`).

        A corrected record (same key, other values) is updated and the change is
        written to the audit log with the fields that changed, also when the record
        it corrects comes earlier in the same batch. A repeat with the same values is
        a duplicate (id -1 when both are new). ``with_ids=False`` skips reading back
        the ids of new records (they are -1): bulk ingest only needs the counts.
        """
        return self.upsert_prepared(s, [prepare(r) for r in records], actor=actor, with_ids=with_ids)

    def upsert_prepared(self, s: Session, records: Sequence[Sequence[Any]], *, actor: str = "ingest",
                        with_ids: bool = True) -> list[tuple[str, int]]:
        """:meth:`upsert_records` for records already reduced by :func:`prepare` (maybe in another process).

        Each record is a :class:`Prepared` or a plain tuple of its fields in its order (as
        they cross the validation worker's pipe). Built for batches of tens of thousands:
        existing records are looked up only for youths that existed before, by youth;
        inserts are one executemany.
        """
        out: list[tuple[str, int]] = []
        for start, stop in _segments(records):
            out += self._upsert_segment(s, records[start:stop], actor, with_ids)
        return out

    def _upsert_segment(self, s: Session, records: Sequence[Sequence[Any]], actor: str,
                        with_ids: bool) -> list[tuple[str, int]]:
        """:meth:`upsert_prepared` for records of which none corrects another (see :func:`_segments`)."""
        pseud, new_youths = self._ensure_births(s, {p[1]: p[2] for p in records})
        keys = [(p[0], pseud[p[1]], p[3]) for p in records]
        old_youths = list({k[1] for k in keys if k[1] not in new_youths})
        existing: dict[tuple[str, str, str], tuple[int, str]] = {
            (kind, youth, nk): (rid, digest) for rid, kind, youth, nk, digest in _select_in(
                s, "SELECT id, kind, youth, natural_key, digest FROM records WHERE youth", old_youths)}
        now, out = utcnow(), []
        inserts: list[list[Any]] = []
        pending: dict[tuple[str, str, str], int] = {}
        for (_, _, _, _, payload_text, digest, source, file, row_no, received_at, institution,
             municipality, *_), key in zip(records, keys, strict=True):
            found = existing.get(key)
            if found is None and key in pending:
                inserts[pending[key]][3:5] = [payload_text, digest]
                out.append(("duplicate", -1))
                continue
            if found is None:
                pending[key] = len(inserts)
                inserts.append([key[0], key[1], key[2], payload_text, digest, source, file, row_no,
                                institution, municipality, received_at or now, now, False])
                out.append(("new", -1))
            elif found[1] == digest:
                out.append(("duplicate", found[0]))
            else:
                row = s.get(RecordRow, found[0])
                assert row is not None
                payload = json.loads(payload_text)
                changed = sorted(k for k in set(payload) | set(row.payload)
                                 if payload.get(k) != row.payload.get(k))
                row.payload, row.digest, row.updated_at = payload, digest, now
                if received_at is not None:  # the record has a provenance
                    row.source_file, row.source_row = file, row_no
                    row.origin_institution, row.origin_municipality = institution, municipality
                existing[key] = (found[0], digest)
                self.audit(s, actor, "record.updated", f"record:{row.id}",
                           {"kind": row.kind, "youth": row.youth, "fields": changed})
                out.append(("updated", row.id))
        if inserts:
            # In the unique key's order: random pseudonyms would touch a random page per row.
            # One string per key sorts like the (youth, kind, key) tuple (neither a pseudonym
            # nor a kind holds a NUL) and compares much faster.
            inserts.sort(key=lambda r: f"{r[1]}\0{r[0]}\0{r[2]}")
            _insert_many(s, RecordRow.__table__, self._RECORD_COLUMNS, inserts, raw=("payload",))
            if with_ids:
                youths = list({k[1] for k in pending})
                ids = {(kind, youth, nk): rid for rid, kind, youth, nk in _select_in(
                    s, "SELECT id, kind, youth, natural_key FROM records WHERE youth", youths)}
                out = [(st, ids[k] if st == "new" else rid) for (st, rid), k in zip(out, keys, strict=True)]
        return out

    # --- audit --------------------------------------------------------------------
    def audit(self, s: Session, actor: str, action: str, subject: str,
              details: dict[str, Any] | None = None) -> AuditEntry:
        """Append one entry to the hash chain (:func:`stafet.store.audit.append`)."""
        return audit.append(s, actor, action, subject, details)

    def audit_many(self, s: Session, actor: str, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Append entries to the hash chain at once (:func:`stafet.store.audit.append_many`)."""
        audit.append_many(s, actor, entries)

    def verify_audit_chain(self) -> int:
        """Check every link of the audit chain; returns the number of entries.

        Raises:
            DataError: rule ``audit_chain`` naming the first entry that does not fit.
        """
        with self.session() as s:
            return audit.verify_chain(s)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                             check_circular=False).encode
"""``json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, one encoder."""


def canonical_json(payload: dict[str, Any]) -> bytes:
    """A payload's canonical JSON, UTF-8: keys sorted, no spaces, non-ASCII as itself.

    orjson writes the same text as :data:`_CANONICAL` (a test compares them on generated
    payloads) in a seventh of the time: bulk ingest writes one per row. The one known
    difference is the form of a float below 1e-4 (``0.000015`` where json writes
    ``1.5e-05``): both are JSON, and no record holds such a number (percentages,
    codes, dates). What orjson refuses (an integer beyond 64 bits) is written by :mod:`json`.
    """
    try:
        return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _CANONICAL(payload).encode()


_PLAIN = frozenset({str, int, float, bool, type(None)})


_PAYLOAD_FIELDS: dict[type, tuple[tuple[str, ...], Any] | None] = {}


def _payload_fields(cls: type[Record]) -> tuple[tuple[str, ...], Any] | None:
    """The payload's field names of a record class, sorted, with one getter for all of them.

    None if the class has its own ``payload``.
    """
    try:
        return _PAYLOAD_FIELDS[cls]
    except KeyError:
        names = None if cls.payload is not Record.payload else tuple(sorted(
            f.name for f in dataclasses.fields(cls) if f.name not in ("cpr", "provenance")))
        found = None if names is None else (names, operator.attrgetter(*names) if len(names) > 1
                                            else lambda r, n=names[0]: (getattr(r, n),))
        _PAYLOAD_FIELDS[cls] = found
        return found


_first = operator.itemgetter(0)
_ISO: dict[Any, str] = {}


def _jsonable_cached(v: Any) -> Any:
    """:func:`~stafet.core.models._jsonable`, remembering dates' ISO text (a bulk file repeats its dates)."""
    if type(v) is date:
        try:
            return _ISO[v]
        except KeyError:
            if len(_ISO) > 100_000:
                _ISO.clear()
            text = _ISO[v] = v.isoformat()
            return text
    return _jsonable(v)


def _payload(rec: Record) -> dict[str, Any]:
    """``rec.payload()`` with its keys in sorted order, without looking up the fields for every record."""
    found = _payload_fields(type(rec))
    if found is None:
        return rec.payload()
    names, get = found
    plain = _PLAIN
    return dict(zip(names, [v if type(v) in plain else _jsonable_cached(v) for v in get(rec)], strict=True))


class Prepared(NamedTuple):
    """A record reduced to what the store writes, made by :func:`prepare` in any process.

    Plain values only, so a chunk of them pickles cheaply: bulk ingest prepares in its
    validation worker and the ingesting process only writes. ``record`` carries the
    record itself where the caller needs more of it after storing (consents).
    """

    kind: str
    cpr_digits: str
    birth_date: date
    natural_key: str
    payload: str           # canonical JSON (:func:`canonical_json`)
    digest: str            # sha256 of ``payload``
    source: str
    file: str
    row: int
    received_at: datetime | None  # None: the record has no provenance
    institution: str       # the provenance's origin: who sent the file (empty: unknown)
    municipality: str
    record: Record | None = None


def prepare(rec: Record, *, keep: bool = False) -> Prepared:
    """``rec`` as the store writes it: key, canonical payload and its digest (pure; no key material)."""
    raw = canonical_json(_payload(rec))
    prov = rec.provenance
    return Prepared(rec.kind, rec.cpr.digits, rec.cpr.birth_date, rec.natural_key(), raw.decode(),
                    _sha256(raw).hexdigest(), prov.source if prov else "",
                    prov.file if prov else "", prov.row if prov else 0, prov.received_at if prov else None,
                    prov.institution if prov else "", prov.municipality if prov else "",
                    rec if keep else None)


_FastSpec = tuple[tuple[str, ...], dict[str, Any], frozenset[str], frozenset[str], Any]
_FAST: dict[type, _FastSpec | None] = {}


def _fast_spec(cls: type[Record]) -> _FastSpec | None:
    """What :func:`prepare_values` needs of a record class, or None where it must build the record.

    ``(payload names sorted, field defaults, field names, required names, key fields)``; None for a class
    with its own ``payload`` or ``natural_key``, or a field with a default factory.
    """
    try:
        return _FAST[cls]
    except KeyError:
        pass
    found = _payload_fields(cls)
    spec = None
    fields = dataclasses.fields(cls)
    if found is not None and cls.natural_key is Record.natural_key and all(
            f.default_factory is dataclasses.MISSING for f in fields):
        defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
        names = frozenset(f.name for f in fields)
        # A key field is a field of the record, or a class attribute (its kind).
        key = tuple((k, k in names, None if k in names else getattr(cls, k)) for k in cls.key_fields)
        required = frozenset(names - defaults.keys() - {"provenance"})
        spec = (found[0], defaults, names, required, key)
    _FAST[cls] = spec
    return spec


def prepare_values(cls: type[Record], values: dict[str, Any], source: str, file: str, row: int,
                   received_at: datetime, institution: str, municipality: str) -> Prepared:
    """:func:`prepare` of ``cls(provenance=Provenance(…), **values)``, without building the record.

    The provenance is ``Provenance(source, file, row, received_at, institution, municipality)``;
    where the class allows no shortcut the record is built (the result is the same).

    Bulk ingest maps a chunk column by column (:attr:`mappings.Source.map_columns`): a
    frozen record of fifteen fields costs more to build than its payload costs to write.
    """
    spec = _fast_spec(cls)
    if spec is None or "provenance" in values or not values.keys() <= spec[2] or not spec[3] <= values.keys():
        from stafet.core.models import Provenance

        rec = cls(provenance=Provenance(source, file, row, received_at, institution, municipality), **values)
        return prepare(rec)
    names, defaults, _, _, key = spec
    merged = {**defaults, **values}
    plain = _PLAIN
    ordered = map(merged.__getitem__, names)
    payload = dict(zip(names, [v if type(v) in plain else _jsonable_cached(v) for v in ordered], strict=True))
    raw = canonical_json(payload)
    cpr = merged["cpr"]
    natural_key = "|".join([str(merged[k] if is_field else attr) for k, is_field, attr in key])
    return Prepared(cls.kind, cpr.digits, cpr.birth_date, natural_key, raw.decode(), _sha256(raw).hexdigest(),
                    source, file, row, received_at, institution, municipality, None)


_sha256 = hashlib.sha256


def _segments(records: Sequence[Sequence[Any]]) -> Iterator[tuple[int, int]]:
    """Split a batch of prepared records where one corrects an earlier one (same key, other values).

    The correction then starts a segment of its own, written after the record it
    corrects: it is an audited update, as it would be in a later batch. A batch's
    outcome therefore does not depend on where a file's chunks happen to end. A
    repeat with the same values stays in the segment (a duplicate).
    """
    seen: dict[tuple[Any, Any, Any], Any] = {}
    start = 0
    for i, p in enumerate(records):
        key, digest = (p[0], p[1], p[3]), p[5]
        before = seen.get(key)
        if before is not None and before != digest:
            yield start, i
            start, seen = i, {}
        seen[key] = digest
    if start < len(records):
        yield start, len(records)


def _placeholder(s: Session) -> str | None:
    style = s.connection().dialect.paramstyle
    return "?" if style == "qmark" else "%s" if style in ("format", "pyformat") else None


def _select_in(s: Session, sql: str, values: Sequence[Any], chunk: int = 900) -> Iterator[Any]:
    """Run ``<sql> IN (…)`` over ``values`` in chunks, straight on the driver.

    Going through the driver skips SQLAlchemy's per-statement expansion of large IN
    lists (milliseconds each), which dominated bulk ingest.
    """
    ph = _placeholder(s)
    conn = s.connection()
    for i in range(0, len(values), chunk):
        part = tuple(values[i:i + chunk])
        if ph is None:  # a driver with named parameters: let SQLAlchemy render it
            names = {f"p{j}": v for j, v in enumerate(part)}
            yield from conn.execute(text(f"{sql} IN ({', '.join(':' + n for n in names)})"), names)
        else:
            yield from conn.exec_driver_sql(f"{sql} IN ({', '.join([ph] * len(part))})", part)


def _repeats(type_: Any) -> bool:
    try:
        return type_.python_type in (date, datetime, bool)
    except NotImplementedError:
        return False


def _bind_processor(type_: Any, dialect: Any) -> Any:
    """The column type's bind processor; on sqlite3 also its adapter for dates and times.

    sqlite3 adapts ``date``/``datetime`` parameters one by one in Python; doing it here
    with the very adapter sqlite3 has registered lets repeated values be converted once.
    """
    proc = type_.bind_processor(dialect)
    if dialect.driver != "pysqlite":
        return proc
    import sqlite3

    try:
        python_type = type_.python_type
    except NotImplementedError:
        return proc
    if python_type is bytes:
        return None  # sqlite3 binds bytes as a BLOB itself; the processor only wraps them
    if proc is not None:
        return proc
    adapt = sqlite3.adapters.get((python_type, sqlite3.PrepareProtocol)) if python_type in (date, datetime) \
        else None
    if adapt is None:
        return None
    return lambda v: v if v is None or type(v) is not python_type else adapt(v)


def _insert_many(s: Session, table: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                 raw: Sequence[str] = (), ignore_conflict_on: str = "") -> None:
    """One executemany INSERT, values converted by the columns' own bind processors.

    Columns in ``raw`` are passed as they are (e.g. JSON already serialised). With
    ``ignore_conflict_on``, a row whose key another transaction inserted first is
    skipped (``ON CONFLICT DO NOTHING``, SQLite and PostgreSQL).
    """
    conn = s.connection()
    if len(rows) >= COPY_MIN_ROWS and _copyable(conn, table, columns, raw):
        _copy_merge(conn, table, columns, rows, ignore_conflict_on)
        return
    ph = _placeholder(s)
    if ph is None:
        s.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in rows])
        return
    procs = [(i, p) for i, c in enumerate(columns) if c not in raw
             for p in [_bind_processor(table.c[c].type, conn.dialect)] if p is not None]
    if procs:
        # Dates, times and flags repeat (one received_at per file): convert each value once.
        cached: list[tuple[int, Any, dict[Any, Any] | None]] = [
            (i, p, {} if _repeats(table.c[columns[i]].type) else None) for i, p in procs]
        converted = []
        for r in rows:
            values = list(r)
            for i, p, cache in cached:
                v = values[i]
                if cache is None:
                    values[i] = p(v)
                    continue
                try:
                    values[i] = cache[v]
                except KeyError:
                    values[i] = cache[v] = p(v)
            converted.append(tuple(values))
        rows = converted
    # Table and column names come from the schema, never from data; values are parameters.
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([ph] * len(columns))})"  # noqa: S608
    if ignore_conflict_on:
        sql += f" ON CONFLICT ({ignore_conflict_on}) DO NOTHING"
    conn.exec_driver_sql(sql, list(rows))


COPY_MIN_ROWS = 1000
"""From this many rows on, :func:`_insert_many` on PostgreSQL (psycopg2) is ``COPY`` into a
staging table and one ``INSERT … SELECT`` (the merge) instead of an executemany, which
psycopg2 sends as one statement per row. ``STAFET_PG_COPY=0`` turns it off."""

_COPY_TYPES = (str, int, float, bool, bytes, date, datetime)


def _copyable(conn: Any, table: Any, columns: Sequence[str], raw: Sequence[str]) -> bool:
    """Whether the COPY path applies: psycopg2, and every column plain (or passed ``raw``)."""
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg2":
        return False
    if os.environ.get("STAFET_PG_COPY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    for c in columns:
        if c in raw:
            continue
        try:
            if table.c[c].type.python_type not in _COPY_TYPES:
                return False
        except NotImplementedError:
            return False
    return True


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(v: Any) -> str:
    r"""One value in COPY's text format (``\N`` is NULL; backslash, tab and line breaks escaped)."""
    t = type(v)
    if t is str:
        # Most values hold none of the four: testing for them is cheaper than translating.
        return v.translate(_COPY_ESCAPES) if "\\" in v or "\t" in v or "\n" in v or "\r" in v else v
    if v is None:
        return "\\N"
    if t is bool:
        return "t" if v else "f"
    if t is datetime or t is date:
        return _time_text(v)
    if t is bytes or t is memoryview:
        return "\\\\x" + bytes(v).hex()
    if t is int:
        return str(v)
    if t is float:
        return repr(v)
    return str(v).translate(_COPY_ESCAPES)


@functools.lru_cache(maxsize=4096)
def _time_text(v: date) -> str:
    """A date's or time's text for COPY (a bulk file repeats them: remembered)."""
    return v.isoformat(" ") if type(v) is datetime else v.isoformat()


_SAME_TEXT = frozenset({str, bool, int, date, bytes, type(None)})
"""Types of which equal values have the same COPY text (not float: ``-0.0 == 0.0``; a datetime
only without a time zone: equal instants in two zones are written apart)."""


def _copy_column(col: Sequence[Any]) -> Sequence[str]:
    """:func:`_copy_text` of each value of one column (each distinct value once, where that is safe)."""
    types = set(map(type, col))
    if types == {str}:
        # Which of the four escaped characters occur at all: four scans of the joined column
        # in C; then only the values holding one are translated.
        joined = "".join(col)
        found = [c for c in "\\\t\n\r" if c in joined]
        del joined
        tr = _COPY_ESCAPES
        if not found:
            return col
        if len(found) == 1:
            (c,) = found
            return [v.translate(tr) if c in v else v for v in col]
        return [v.translate(tr) if "\\" in v or "\t" in v or "\n" in v or "\r" in v else v for v in col]
    if types == {int}:
        return list(map(str, col))
    kinds = types - {type(None)}
    if len(kinds) <= 1:
        kind = next(iter(kinds), type(None))
        distinct = set(col) if kind in _SAME_TEXT or kind is datetime else None
        if distinct is not None and (kind is not datetime
                                     or all(v is None or v.tzinfo is None for v in distinct)):
            done = {v: _copy_text(v) for v in distinct}
            return list(map(done.__getitem__, col))
    return [_copy_text(v) for v in col]


def copy_rows_text(rows: Sequence[Sequence[Any]]) -> str:
    r"""``rows`` in COPY's text format, each with its position as a last column (``…\t<n>\n``).

    Column by column (:func:`_copy_column`): a row's values are joined once, in C; what it
    writes is what :func:`_copy_text` of every value, row by row, writes (a test compares them).
    """
    if not rows or not rows[0]:
        return "".join(f"\t{n}\n" for n in range(len(rows)))
    columns = [_copy_column(c) for c in zip(*rows, strict=True)]
    columns.append(list(map(str, range(len(rows)))))
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def _copy_merge(conn: Any, table: Any, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                ignore_conflict_on: str) -> None:
    """``COPY`` ``rows`` into a temporary staging table, then one ``INSERT … SELECT`` in their order.

    The staging table has the target's column types and no constraints; the merge
    enforces the target's (``ignore_conflict_on``: ``ON CONFLICT DO NOTHING``, as the
    executemany path). The same transaction as everything else: a rollback undoes it.
    """
    cols = ", ".join(columns)
    stage = f"_stage_{table.name}"
    buf = io.StringIO(copy_rows_text(rows))
    # Table and column names come from the schema, never from data; values go through COPY.
    # Only COPY itself goes straight to the driver; its errors are wrapped as SQLAlchemy's own
    # (a lost server is an OperationalError and its connection invalidated, as elsewhere).
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {stage}")
    conn.exec_driver_sql(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "  # noqa: S608
                         f"SELECT {cols}, 0::bigint AS _n FROM {table.name} WITH NO DATA")
    statement = f"COPY {stage} ({cols}, _n) FROM STDIN"
    dbapi_conn = conn.connection.dbapi_connection
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.copy_expert(statement, buf)
    except conn.dialect.loaded_dbapi.Error as e:
        disconnect = conn.dialect.is_disconnect(e, dbapi_conn, cur)
        if disconnect:
            conn.invalidate(e)
        raise DBAPIError.instance(statement, None, e, conn.dialect.loaded_dbapi.Error,
                                  connection_invalidated=disconnect, dialect=conn.dialect) from None
    finally:
        cur.close()
    merge = f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} ORDER BY _n"  # noqa: S608
    if ignore_conflict_on:
        merge += f" ON CONFLICT ({ignore_conflict_on}) DO NOTHING"
    conn.exec_driver_sql(merge)
    conn.exec_driver_sql(f"DROP TABLE {stage}")


def tune_for_bulk(s: Session) -> None:
    """Give a bulk writer's transaction more memory: SQLite's page cache, PostgreSQL's sorts.

    SQLite: 16 MB of page cache (SQLite's default is 2 MB): the unique indexes take random keys.
    More buys little (measured at a million records: 64 MB and 256 MB within 10 % of
    16 MB, the operating system caches the file too) and costs memory.

    PostgreSQL: ``work_mem`` 64 MB for this transaction only (``SET LOCAL``): the COPY path's
    merge sorts a chunk's staged rows by position, about 13 MB for 20,000 records, which
    at the default 4 MB spilled to disk (``external merge``, measured: the records' merge
    took 1.4 s a chunk instead of 0.95 s).
    """
    conn = s.connection()
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA cache_size=-16384")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
