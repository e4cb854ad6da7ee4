"""The store: one engine, migrations on open, and the operations every layer needs.

Youths by pseudonym, records by natural key, the hash-chained audit log.

SQLite by default (``$STAFET_HOME/stafet.db``), PostgreSQL with ``STAFET_DATABASE_URL``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, select, text, tuple_
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from stafet.cpr import Cpr, parse_cpr
from stafet.errors import DataError, TransientError
from stafet.models import Record
from stafet.store.schema import AuditEntry, RecordRow, Youth
from stafet.vault import Vault

_MIGRATIONS = Path(__file__).parent / "migrations"
GENESIS = "0" * 64


def utcnow() -> datetime:
    """Now, UTC, without tzinfo (what the store's DateTime columns hold)."""
    return datetime.now(UTC).replace(tzinfo=None)


def payload_digest(payload: dict[str, Any]) -> str:
    """sha256 of a payload's canonical JSON."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


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


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Store:
    """stafet's database, with the vault that keeps CPRs out of it."""

    def __init__(self, url: str, vault: Vault, *, upgrade: bool = True) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        self.vault = vault
        if upgrade:
            migrate(self.engine)
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
        by_digits = {c.digits: c for c in cprs}
        pseud = {d: self.vault.pseudonym(d) for d in by_digits}
        existing: set[str] = set()
        ids = list(pseud.values())
        for i in range(0, len(ids), 500):
            existing.update(s.scalars(select(Youth.pseudonym).where(
                Youth.pseudonym.in_(ids[i:i + 500]))))
        now = utcnow()
        new = [{"pseudonym": p, "cpr_enc": self.vault.encrypt(d.encode(), b"cpr"),
                "birth_date": by_digits[d].birth_date, "created_at": now}
               for d, p in pseud.items() if p not in existing]
        if new:
            s.execute(insert(Youth), new)
        return pseud

    def cpr_of(self, s: Session, pseudonym: str) -> Cpr:
        """Decrypt a youth's CPR (for packages to authorised recipients only)."""
        y = s.get(Youth, pseudonym)
        if y is None:
            raise DataError("unknown youth", youth=pseudonym)
        return parse_cpr(self.vault.decrypt(y.cpr_enc, b"cpr").decode())

    # --- records ----------------------------------------------------------------
    def upsert_records(self, s: Session, records: Sequence[Record], *,
                       via_package: str = "", actor: str = "ingest") -> list[tuple[str, int]]:
        """Store records once by natural key; returns ``(new|duplicate|updated, id)`` each.

        A corrected record (same key, other values) is updated and the change is
        written to the audit log with the fields that changed.
        """
        if not records:
            return []
        pseud = self.ensure_youths(s, (r.cpr for r in records))
        keys = [(r.kind, pseud[r.cpr.digits], r.natural_key()) for r in records]
        existing: dict[tuple[str, str, str], RecordRow] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), 300):
            for found in s.scalars(select(RecordRow).where(
                    tuple_(RecordRow.kind, RecordRow.youth, RecordRow.natural_key).in_(uniq[i:i + 300]))):
                existing[(found.kind, found.youth, found.natural_key)] = found
        now, out = utcnow(), []
        inserts: list[dict[str, Any]] = []
        pending: dict[tuple[str, str, str], int] = {}
        for rec, key in zip(records, keys, strict=True):
            payload = rec.payload()
            digest = payload_digest(payload)
            row: RecordRow | None = existing.get(key)
            if row is None and key in pending:
                inserts[pending[key]].update(payload=payload, digest=digest)
                out.append(("duplicate", -1))
                continue
            if row is None:
                prov = rec.provenance
                pending[key] = len(inserts)
                inserts.append({
                    "kind": key[0], "youth": key[1], "natural_key": key[2], "payload": payload,
                    "digest": digest, "source": prov.source if prov else "",
                    "source_file": prov.file if prov else "", "source_row": prov.row if prov else 0,
                    "received_at": prov.received_at if prov else now, "updated_at": now,
                    "via_package": via_package, "withdrawn": False})
                out.append(("new", -1))
            elif row.digest == digest:
                out.append(("duplicate", row.id))
            else:
                changed = sorted(k for k in payload if payload.get(k) != row.payload.get(k))
                row.payload, row.digest, row.updated_at = payload, digest, now
                if rec.provenance:
                    row.source_file, row.source_row = rec.provenance.file, rec.provenance.row
                self.audit(s, actor, "record.updated", f"record:{row.id}",
                           {"kind": row.kind, "youth": row.youth, "fields": changed})
                out.append(("updated", row.id))
        if inserts:
            s.execute(insert(RecordRow), inserts)
            ids = {(r.kind, r.youth, r.natural_key): r.id for r in s.scalars(
                select(RecordRow).where(tuple_(RecordRow.kind, RecordRow.youth,
                                               RecordRow.natural_key).in_(list(pending))))}
            out = [(st, ids[k] if st == "new" else rid) for (st, rid), k in zip(out, keys, strict=True)]
        return out

    # --- audit --------------------------------------------------------------------
    def audit(self, s: Session, actor: str, action: str, subject: str,
              details: dict[str, Any] | None = None) -> AuditEntry:
        """Append one entry to the hash chain. Never put a CPR in ``details``."""
        if s.bind is not None and s.bind.dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(727272)"))
        prev = s.scalars(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).first()
        entry = AuditEntry(at=utcnow(), actor=actor, action=action, subject=subject,
                           details=_plain(details or {}), prev_hash=prev or GENESIS, hash="")
        entry.hash = _entry_hash(entry)
        s.add(entry)
        s.flush()
        return entry

    def verify_audit_chain(self) -> int:
        """Check every link of the audit chain; returns the number of entries.

        Raises:
            DataError: rule ``audit_chain`` naming the first entry that does not fit.
        """
        prev, n = GENESIS, 0
        with self.session() as s:
            for e in s.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars():
                if e.prev_hash != prev or _entry_hash(e) != e.hash:
                    raise DataError("audit log chain is broken", rule="audit_chain", entry=e.id)
                prev, n = e.hash, n + 1
        return n


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [_plain(x) for x in v]
    if isinstance(v, date | datetime):
        return v.isoformat()
    return v


def _entry_hash(e: AuditEntry) -> str:
    body = json.dumps([e.prev_hash, e.at.isoformat(timespec="microseconds"), e.actor, e.action,
                       e.subject, e.details], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()
