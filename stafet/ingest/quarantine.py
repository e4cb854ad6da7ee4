"""The data steward's decisions on quarantined rows: release (re-validated, with fixes) or reject.

Every decision is audited with the names of the fields fixed (never their values) or the
reason given (redacted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from mappings import get_source
from stafet.core.config import Network
from stafet.core.errors import DataError
from stafet.core.models import Consent, Record
from stafet.ingest.pipeline import known_institutions
from stafet.store import Store, consents, utcnow
from stafet.store import quarantine as quarantine_store
from stafet.store.schema import Quarantine


@dataclass
class ReleaseResult:
    """Outcome of releasing a quarantined row: stored, or still failing (with why)."""

    id: int
    released: bool
    status: str = ""          # new | duplicate | updated when released
    failures: list[str] = field(default_factory=list)


def quarantined_fields(store: Store, q: Quarantine) -> dict[str, str]:
    """Decrypt a quarantined row's raw fields (they may hold a clear CPR: show with care)."""
    raw = json.loads(store.vault.decrypt(q.raw_enc, b"quarantine"))
    return dict(raw["fields"])


def release_quarantined(store: Store, network: Network, qid: int, *, fixes: dict[str, str] | None = None,
                        actor: str = "steward", now: datetime | None = None) -> ReleaseResult:
    """Re-run validation and mapping on a quarantined row (with ``fixes``) and store it if it passes.

    ``fixes`` maps source field names to corrected values. The decision is
    audited with the names of the fixed fields (never their values). A row that
    still fails stays open and the result lists the rules it breaks.

    Raises:
        DataError: no such row, it is not open, or a fix names an unknown field.
    """
    from stafet.ingest import gx

    now = now or utcnow()
    with store.session() as s:
        q = quarantine_store.open_for_decision(s, qid)
        src = get_source(q.source)
        fields = quarantined_fields(store, q)
        fields.pop("_extra", None)
        for name, value in (fixes or {}).items():
            if name not in fields and name not in src.columns:
                raise DataError(f"unknown field {name!r} for source {src.name}", rule="quarantine", id=qid)
            fields[name] = value
        failed = gx.validate(src, [fields], today=now.date(),
                                     institutions=known_institutions(network))
        problems = [f"{f.rule}: {f.description}" for f in failed.get(0, [])]
        record: Record | None = None
        if not problems:
            try:
                record = src.map_row(fields, src.provenance(q.source_file, q.row, now))
            except DataError as e:
                problems.append(f"{e.rule}: {e}")
        if record is None:
            store.audit(s, actor, "quarantine.release_failed", f"quarantine:{qid}",
                        {"fixed": sorted(fixes or {}), "rules": [p.split(":")[0] for p in problems]})
            return ReleaseResult(qid, False, failures=problems)
        (status, _), = store.upsert_records(s, [record], actor=actor)
        if isinstance(record, Consent):
            pseud = store.ensure_youths(s, [record.cpr])
            consents.put(s, record.ref, pseud[record.cpr.digits], record.payload(), record.withdrawn_date,
                         now)
        q.status, q.decided_by, q.decided_at = "released", actor, now
        q.decision = "released" + (f" with fixes to {', '.join(sorted(fixes))}" if fixes else "")
        store.audit(s, actor, "quarantine.released", f"quarantine:{qid}",
                    {"fixed": sorted(fixes or {}), "record": status, "source": src.name})
        return ReleaseResult(qid, True, status=status)


def reject_quarantined(store: Store, qid: int, *, reason: str, actor: str = "steward",
                       now: datetime | None = None) -> None:
    """Record the steward's decision that a quarantined row is not to be stored, and why."""
    if not reason.strip():
        raise DataError("a reason is required to reject a quarantined row", rule="quarantine", id=qid)
    from stafet.core.redaction import redact

    with store.session() as s:
        q = quarantine_store.open_for_decision(s, qid)
        q.status, q.decided_by, q.decided_at = "rejected", actor, now or utcnow()
        q.decision = redact(reason.strip())
        store.audit(s, actor, "quarantine.rejected", f"quarantine:{qid}", {"reason": q.decision})
