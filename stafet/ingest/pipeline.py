"""Ingest: one source file → validated, mapped, stored exactly once; nothing lost.

For one file :func:`ingest_file` does, in order:

1. **Archive**: one streaming pass computes the sha256 and writes the original
   bytes encrypted with the vault to ``$STAFET_HOME/archive/<sha256>.enc`` — a
   steward can always see what was received, and stafet's own storage never holds
   a clear CPR.
2. **Dedupe**: a file already processed (same sha256) is a no-op, reported as a
   duplicate file.
3. **Read, validate, map, store**, in chunks of :data:`stafet.ingest.CHUNK_ROWS`
   rows and in one database transaction: the source's reader streams rows; its
   Great Expectations suite marks the rows that break a rule; the rest are mapped
   to canonical records (both in the validation worker, :mod:`stafet.ingest.mapping`) and
   upserted by natural key (new, duplicate, or updated with an audit entry). Every
   row that breaks a rule — in validation, in the mapping, or in its shape — goes to
   quarantine with its rules and its raw fields encrypted. Consents are also written
   to the consents table.
4. **Reject whole** when the file's structure is wrong (encoding, header, XSD,
   hostile XML, unknown source): the transaction is rolled back, nothing from the
   file is stored, the file is recorded as rejected with the reason (and stays in
   the archive).

Row counts add up: ``rows = accepted + duplicates + updated + quarantined``. The
steward's decisions on quarantined rows are :mod:`stafet.ingest.quarantine`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from connectors.readers import Row
from mappings import Source, get_source, source_for
from stafet.core.config import Network, SourceConfig, private_dir, stafet_home
from stafet.core.errors import FileRejected, StafetError
from stafet.core.models import Consent, OrgKind
from stafet.ingest.ahead import Checked, check_ahead, validator_for
from stafet.ingest.mapping import MapError
from stafet.store import Session, Store, files, utcnow
from stafet.store import consents as consent_store
from stafet.store import quarantine as quarantine_store
from stafet.store.db import Prepared, tune_for_bulk

if TYPE_CHECKING:  # pragma: no cover
    from stafet.ingest.gx import Failure
    from stafet.ingest.worker import ChunkValidator
    from transports import Inbox

log = logging.getLogger("stafet.ingest")


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

ProgressFn = Callable[[int], None]
"""Called after each chunk with the number of rows read so far."""


@dataclass
class FileResult:
    """What happened to one file. Counts and names only: no personal data.

    ``rows = accepted + duplicates + updated + quarantined``; ``accepted`` counts
    new records. A file seen before is ``duplicate_file`` with zero counts.
    """

    file: str
    source: str
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    updated: int = 0
    quarantined: int = 0
    rejected: bool = False
    reason: str = ""
    sha256: str = ""
    duplicate_file: bool = False
    rules: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    datadocs: str = ""  # the run's Great Expectations Data Docs index, when built

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary of ``stafet ingest --json``."""
        keys = ("file", "source", "rows", "accepted", "duplicates", "updated", "quarantined", "rejected",
                "reason")
        return {k: getattr(self, k) for k in keys}

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return asdict(self)


def known_institutions(network: Network) -> list[str]:
    """Institution numbers known to the network: members' ids that are 6-digit numbers.

    An institution's member id is its institution number (as in the consent
    recipients ``779008|guidance``).
    """
    kinds = (OrgKind.INSTITUTION, OrgKind.PRIMARY_SCHOOL)
    return sorted(m.id for m in network.members.values()
                  if m.kind in kinds and len(m.id) == 6 and m.id.isdigit())


# --- archive ------------------------------------------------------------------------

class _Hashing:
    """A read-only stream wrapper that hashes what passes through it."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


Opener = Callable[[], AbstractContextManager[IO[bytes]]]


def archive(store: Store, opener: Opener, home: Path) -> tuple[str, Path]:
    """Hash a file and keep it encrypted under ``home/archive/<sha256>.enc``.

    Returns ``(sha256, archive path)``. The same content is archived once.
    """
    folder = private_dir(home / "archive")  # 0700, and each file 0600 (mkstemp)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-", suffix=".part")
    try:
        with opener() as src, os.fdopen(fd, "wb") as dst:
            hashing = _Hashing(src)
            store.vault.encrypt_stream(hashing, dst)  # type: ignore[arg-type]
            dst.flush()
            os.fsync(dst.fileno())
        sha = hashing.sha.hexdigest()
        target = folder / f"{sha}.enc"
        if target.exists():
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
        return sha, target
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- the pipeline --------------------------------------------------------------------

def _masked_cpr(raw: str) -> str:
    digits = re.sub(r"\D", "", raw or "")
    return f"{digits[:6]}-xxxx" if len(digits) >= 6 else ""


@dataclass
class _Pending:
    """A chunk submitted to validation: its size, its malformed rows, the numbers of the rest.

    The well-formed rows themselves went to validation and are not kept here: the
    answer carries the raw fields of those that fail (a bulk file's chunks in flight
    would otherwise be held twice).
    """

    size: int
    malformed: list[Row]
    numbers: list[int]


@dataclass
class _Run:
    """State of one file's ingest inside its transaction."""

    store: Store
    session: Session
    source: Source
    file: str
    sha256: str
    now: datetime
    institutions: list[str]
    result: FileResult
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    def quarantine_row(self, number: int, fields: Mapping[str, str], problem: str,
                       failures: list[tuple[str, str]]) -> None:
        rules = list(dict.fromkeys(rule for rule, _ in failures))
        for rule in rules:
            self.result.rules[rule] = self.result.rules.get(rule, 0) + 1
        raw = json.dumps({"fields": fields, "problem": problem}, ensure_ascii=False)
        self.quarantine.append({
            "source": self.source.name, "source_file": self.file, "file_sha256": self.sha256,
            "row": number, "rule": ",".join(rules)[:100],
            "reason": "; ".join(f"{rule}: {why}" for rule, why in failures),
            "masked_cpr": _masked_cpr(fields.get(self.source.cpr_column, "")),
            "raw_enc": self.store.vault.encrypt(raw.encode(), b"quarantine"),
            "status": "open", "decided_by": "", "decision": "", "created_at": self.now})
        self.result.quarantined += 1

    def submit(self, val: ChunkValidator, rows: list[Row]) -> _Pending:
        """Send a chunk's well-formed rows to be validated, mapped and prepared (see :meth:`finish`)."""
        good = [r for r in rows if not r.problem]
        numbers = [r.number for r in good]
        if good:
            val.submit(self.source, [r.fields for r in good], self.now.date(), self.institutions,
                       mapping=(self.file, self.now, numbers))
        return _Pending(len(rows), [r for r in rows if r.problem], numbers)

    def finish(self, val: ChunkValidator, chunk: _Pending) -> None:
        """Quarantine what broke a rule, store the rest."""
        for r in chunk.malformed:
            self.quarantine_row(r.number, r.fields, r.problem, [("row_shape", r.problem)])
        if not chunk.numbers:
            self.write([])
            return
        failures: dict[int, list[Failure]]
        failures, mapped = val.collect()
        assert mapped is not None and len(mapped) == len(chunk.numbers)
        records: list[Sequence[Any]] = []  # Prepared, or its fields as a plain tuple (from the worker)
        for i, (number, rec) in enumerate(zip(chunk.numbers, mapped, strict=True)):
            failed = failures.get(i)
            if failed:
                self.quarantine_row(number, rec, "", [(f.rule, f.description) for f in failed])
            elif type(rec) is MapError:
                self.quarantine_row(number, rec.fields, "", [(rec.rule, rec.message)])
            else:
                records.append(rec)
        self.write(records)

    def write(self, records: list[Sequence[Any]]) -> None:
        """Store ``records`` and the rows quarantined so far."""
        self.store_records(records)
        if self.quarantine:
            quarantine_store.add_many(self.session, self.quarantine)
            self.quarantine = []

    def store_records(self, records: list[Sequence[Any]]) -> None:
        if not records:
            return
        outcome = self.store.upsert_prepared(self.session, records, actor=f"ingest:{self.source.name}",
                                             with_ids=False)
        for status, _ in outcome:
            if status == "new":
                self.result.accepted += 1
            elif status == "updated":
                self.result.updated += 1
            else:
                self.result.duplicates += 1
        record_at = Prepared._fields.index("record")  # kept for consents only
        consents = [p[record_at] for p, (st, _) in zip(records, outcome, strict=True)
                    if isinstance(p[record_at], Consent) and st != "duplicate"]
        if consents:
            pseud = self.store.ensure_youths(self.session, (c.cpr for c in consents))
            for c in consents:
                consent_store.put(self.session, c.ref, pseud[c.cpr.digits], c.payload(), c.withdrawn_date,
                                  self.now)


@contextlib.contextmanager
def _collector_skips_what_exists() -> Iterator[None]:
    """While a file is ingested, the garbage collector leaves the objects that existed before alone.

    A chunk makes tens of thousands of objects (rows, prepared records) and each of the
    collector's full passes would otherwise walk every object of the process too (the
    imported modules, SQLAlchemy's caches): ``gc.freeze`` for the file's duration, then
    ``gc.unfreeze``. Nested or concurrent ingests (threads) freeze once and unfreeze last.
    """
    global _frozen
    with _freeze_lock:
        if _frozen == 0:
            gc.freeze()
        _frozen += 1
    try:
        yield
    finally:
        with _freeze_lock:
            _frozen -= 1
            if _frozen == 0:
                gc.unfreeze()


_frozen = 0
_freeze_lock = threading.Lock()


def _chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Lists of ``size`` rows (the last may be shorter).

    The generator keeps no reference to a list it yielded, so the caller can free a
    chunk's rows as soon as it has sent them on.
    """
    chunk: list[Row] = []
    for r in rows:
        chunk.append(r)
        if len(chunk) >= size:
            full, chunk = [chunk], []
            yield full.pop()
    if chunk:
        full, chunk = [chunk], []
        yield full.pop()


def _record_file(store: Store, sha: str, name: str, source: str, status: str, reason: str,
                 archive_path: Path, counts: dict[str, Any], now: datetime,
                 session: Session | None = None) -> None:
    def write(s: Session) -> None:
        files.put(s, sha256=sha, name=name, source=source, status=status, reason=reason,
                  archive=str(archive_path), counts=counts, received_at=now)

    if session is not None:
        write(session)
        return
    with store.session() as s:
        write(s)
        store.audit(s, "ingest", f"file.{status}", f"file:{sha}",
                    {"name": name, "source": source, "reason": reason})


def _build_docs(val: ChunkValidator, name: str, docs_dir: Path, now: datetime) -> str:
    """The file's Data Docs page (an extra: a failure is logged, the ingest goes on)."""
    try:
        index = val.build_docs(name, docs_dir, docs_dir.parent.name or "ingest", now)
    except (RuntimeError, OSError) as e:
        from stafet.core.redaction import redact

        log.warning("Data Docs for %s not built: %s", name, redact(str(e))[:300])
        return ""
    return str(index) if index else ""


def _ingest(store: Store, network: Network, name: str,
            opener: Opener, *, source: str | Source | None,
            now: datetime | None, home: Path | None, progress: ProgressFn | None,
            docs_dir: Path | None = None, checked: Checked | None = None) -> FileResult:

    started = time.perf_counter()
    now = now or utcnow()
    home = home or stafet_home()
    sha, archived = archive(store, opener, home)
    result = FileResult(file=name, source="", sha256=sha)
    try:
        src = source if isinstance(source, Source) else get_source(source) if source else source_for(name)
    except FileRejected as e:
        result.rejected, result.reason = True, e.message
        _record_file(store, sha, name, "", "rejected", e.message, archived, result.summary(), now)
        return result
    result.source = src.name
    with store.session() as s:
        seen = files.get(s, sha)
        if seen is not None and seen.status == "processed":
            result.duplicate_file = True
            result.reason = (f"duplicate file: the same content was ingested as {seen.name} "
                             f"on {seen.received_at:%Y-%m-%d %H:%M}")
            store.audit(s, "ingest", "file.duplicate", f"file:{sha}", {"name": name, "source": src.name})
            return result
    try:
        with store.session() as s:
            tune_for_bulk(s)
            run = _Run(store, s, src, name, sha, now, known_institutions(network), result)
            with opener() as fh, validator_for(checked, sha) as val, _collector_skips_what_exists():
                if docs_dir is not None:
                    val.start_file(name)
                # One chunk ahead: the next chunk is read and validated (in the worker)
                # while this one is mapped and stored.
                ahead: deque[_Pending] = deque()
                for chunk in _chunks(src.reader.rows(fh, name), CHUNK_ROWS):
                    ahead.append(run.submit(val, chunk))
                    del chunk  # its rows went to the worker: free them before storing the last chunk
                    if len(ahead) > 1:
                        done = ahead.popleft()
                        run.finish(val, done)
                        result.rows += done.size
                        if progress is not None:
                            progress(result.rows)
                while ahead:
                    done = ahead.popleft()
                    run.finish(val, done)
                    result.rows += done.size
                    if progress is not None:
                        progress(result.rows)
                if docs_dir is not None:
                    result.datadocs = _build_docs(val, name, docs_dir, now)
            result.seconds = round(time.perf_counter() - started, 3)
            _record_file(store, sha, name, src.name, "processed", "", archived, result.as_dict(), now,
                         session=s)
            store.audit(s, "ingest", "file.processed", f"file:{sha}",
                        {"name": name, "source": src.name, **result.summary(), "rules": result.rules})
    except FileRejected as e:
        rejected = FileResult(file=name, source=src.name, sha256=sha, rejected=True, reason=e.message)
        rejected.seconds = round(time.perf_counter() - started, 3)
        _record_file(store, sha, name, src.name, "rejected", e.message, archived, rejected.summary(), now)
        log.warning("rejected %s: %s", name, e.message)
        return rejected
    log.info("ingested %s (%s): %d rows, %d new, %d duplicate, %d updated, %d quarantined", name, src.name,
             result.rows, result.accepted, result.duplicates, result.updated, result.quarantined)
    return result


def ingest_file(store: Store, network: Network, path: str | Path, *, source: str | None = None,
                now: datetime | None = None, home: Path | None = None,
                progress: ProgressFn | None = None, docs_dir: Path | None = None) -> FileResult:
    """Ingest one source file (see the module docstring for the steps).

    Args:
        store: the opened store (its vault encrypts the archive and quarantine).
        network: the network configuration (institution numbers known to it).
        path: the file; its name picks the source unless ``source`` is given.
        source: a source name from :mod:`mappings`.
        now: the time of receipt (default: now, UTC); its date is "today" for the
            not-in-the-future rules.
        home: ``$STAFET_HOME`` unless given (the archive lives there).
        progress: called with the rows read so far after every chunk.
        docs_dir: when given, the file's Great Expectations Data Docs page is built
            there (with the site's index; the files of one run share the folder, whose
            parent's name is the run's name). Counts per rule only: no value from the
            file can reach the pages.

    Returns:
        The file's :class:`FileResult`. A rejected file is a result with
        ``rejected=True`` and the reason, not an exception.

    Example:
        >>> r = ingest_file(ctx.store, ctx.network, "drop/779008_haendelser_2026112102.csv")
        >>> r.accepted, r.quarantined  # doctest: +SKIP
        (3, 1)
    """
    p = Path(path)
    if not p.is_file():
        raise FileRejected("not a readable file", file=p.name, rule="missing")
    return _ingest(store, network, p.name, lambda: p.open("rb"), source=source, now=now, home=home,
                   progress=progress, docs_dir=docs_dir)


def _source_of(cfg: SourceConfig) -> Source | None:
    name = str(cfg.options.get("source") or cfg.name)
    try:
        return get_source(name)
    except StafetError:
        return None


def ingest_inbox(store: Store, network: Network, inbox: Inbox, source_cfg: SourceConfig, *,
                 now: datetime | None = None, home: Path | None = None,
                 min_age: float = 0.0, docs_dir: Path | None = None) -> list[FileResult]:
    """Ingest every waiting file of one configured source from its inbox (folder or SFTP).

    ``docs_dir``: as for :func:`ingest_file` (the files' Data Docs pages go there).

    The source module is the one named like the configured source (or its
    ``source:`` option); without one, each file's name picks it. Each file is
    copied to a private temporary file outside ``$STAFET_HOME`` (it holds clear
    CPRs), ingested, then deleted. Only after its rows are committed, the source's
    file leaves the drop area: removed at once (the encrypted archive holds its
    content), or moved to ``processed/`` and removed there after the source's
    ``processed_retention_days``; a refused file goes to ``rejected/`` with the reason.
    A file the inbox will not read — bigger than its ``max_bytes``, a symlink, not a
    regular file — is refused unread (moved to ``rejected/``: its one copy, nothing
    archived). A transport error leaves the file where it is, for the next run (and
    is raised).
    """
    outcome = ingest_inboxes(store, network, [(inbox, source_cfg)], now=now, home=home, min_age=min_age,
                             docs_dir=docs_dir)[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def ingest_inboxes(store: Store, network: Network, inboxes: Sequence[tuple[Inbox, SourceConfig]], *,
                   now: datetime | None = None, home: Path | None = None, min_age: float = 0.0,
                   docs_dir: Path | None = None) -> list[list[FileResult] | Exception]:
    """:func:`ingest_inbox` for several sources at once; per source its results, or the error that stopped it.

    Every source's waiting files are copied first; then the small ones are validated
    together, one Great Expectations call per source kind (:mod:`stafet.ingest.ahead`);
    then each source's files are ingested in its inbox's order, one transaction each,
    exactly as :func:`ingest_inbox` describes. A source whose inbox fails (a transport
    error) is left as it is and the others go on.
    """
    batch_now = now or utcnow()
    outcomes: list[list[FileResult] | Exception] = []
    with tempfile.TemporaryDirectory(prefix="stafet-ingest-") as tmpdir:
        sources = [_source_of(cfg) for _, cfg in inboxes]
        fetched: list[list[tuple[str, Path | FileRejected]] | Exception] = []
        for k, ((inbox, cfg), src) in enumerate(zip(inboxes, sources, strict=True)):
            try:
                fetched.append(_fetch(inbox, src, min_age, Path(tmpdir), k))
            except Exception as e:  # the source's transport: its files stay where they are
                log.warning("source %s not read: %s", cfg.name, type(e).__name__)
                fetched.append(e)
        small = [(name, local, src) for src, items in zip(sources, fetched, strict=True)
                 if src is not None and not isinstance(items, Exception)
                 for name, local in items if isinstance(local, Path)]
        checked = check_ahead(small, now=batch_now, institutions=known_institutions(network),
                              max_rows=CHUNK_ROWS) if len(small) > 1 else {}
        for (inbox, cfg), src, items in zip(inboxes, sources, fetched, strict=True):
            if isinstance(items, Exception):
                outcomes.append(items)
                continue
            try:
                outcomes.append(_ingest_fetched(store, network, inbox, cfg, src, items, checked, now=now,
                                                batch_now=batch_now, home=home, docs_dir=docs_dir))
            except Exception as e:
                log.warning("source %s stopped: %s", cfg.name, type(e).__name__)
                outcomes.append(e)
    return outcomes


def _fetch(inbox: Inbox, src: Source | None, min_age: float, folder: Path,
           k: int) -> list[tuple[str, Path | FileRejected]]:
    """Copy the source's waiting files into ``folder``, in the inbox's order; a refused one as its refusal."""
    items: list[tuple[str, Path | FileRejected]] = []
    for j, name in enumerate(inbox.list("*", min_age=min_age)):
        if src is not None and not src.matches(name):
            log.info("skipping %s: not named like a %s export", name, src.name)
            continue
        local = folder / f"{k}-{j}"
        try:
            with inbox.open(name) as remote, local.open("wb") as out:
                shutil.copyfileobj(remote, out, 1 << 20)
        except FileRejected as e:  # refused by the inbox before (or instead of) being read
            local.unlink(missing_ok=True)
            items.append((name, e))
            continue
        items.append((name, local))
    return items


def _ingest_fetched(store: Store, network: Network, inbox: Inbox, source_cfg: SourceConfig,
                    src: Source | None, items: list[tuple[str, Path | FileRejected]],
                    checked: Mapping[Path, Checked], *, now: datetime | None, batch_now: datetime,
                    home: Path | None, docs_dir: Path | None) -> list[FileResult]:
    results = []
    for name, local in items:
        if isinstance(local, FileRejected):
            e = local
            result = FileResult(file=name, source=src.name if src is not None else "", rejected=True,
                                reason=e.message)
            log.warning("refused %s unread: %s", name, e.message)
            with store.session() as s:
                store.audit(s, "ingest", "file.refused", f"file:{name}",
                            {"name": name, "source": result.source, "reason": e.message, "rule": e.rule})
        else:
            ahead = checked.get(local)
            try:
                result = _ingest(store, network, name, lambda p=local: p.open("rb"),  # type: ignore[misc]
                                 source=src, now=batch_now if ahead is not None else now, home=home,
                                 progress=None, docs_dir=docs_dir, checked=ahead)
            finally:
                local.unlink(missing_ok=True)
        if result.rejected:
            inbox.reject(name, result.reason)
        elif source_cfg.processed_retention_days > 0:
            inbox.mark_processed(name)
        else:
            inbox.discard(name)  # the archive holds it, encrypted: no clear copy stays behind
        results.append(result)
    if source_cfg.processed_retention_days > 0:
        inbox.purge("processed", source_cfg.processed_retention_days * 86400)
    return results
