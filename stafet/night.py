"""The stages of a night, as plain functions (the Prefect flows only call these).

Each stage takes the network configuration path and opens its own context, so a
stage can run in any worker process; each returns counts only (no personal data),
which is all that may reach Prefect's database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from stafet.context import Context, open_context
from stafet.core.config import SourceConfig
from stafet.duties.routing import route as route_records
from stafet.exchange.inbox import process_inbox
from stafet.exchange.outbox import plan_handovers, send_pending
from stafet.exchange.withdrawals import withdraw_consent
from stafet.store import consents, outbox, utcnow

log = logging.getLogger("stafet.relay")


_open_lock = threading.Lock()
# Who wants to know which stage runs (the CLI's progress display); never given personal data.
observers: list[Callable[[str, str], None]] = []


def _notify(stage: str, what: str = "") -> None:
    for fn in observers:
        fn(stage, what)


@lru_cache(maxsize=8)
def _context(network: str, home: str) -> Context:
    return open_context(network, home=Path(home) if home else None)


def context(network: str, home: str = "") -> Context:
    """One opened context per (network, home) per process (tasks run in threads)."""
    with _open_lock:
        return _context(network, home)


context.cache_clear = _context.cache_clear  # type: ignore[attr-defined]


def source_names(network: str) -> list[str]:
    """The names of the network's configured sources."""
    return [s.name for s in context(network).network.sources]


def _source(ctx: Context, name: str) -> SourceConfig:
    for s in ctx.network.sources:
        if s.name == name:
            return s
    raise KeyError(name)


def ingest_source(network: str, name: str) -> list[dict[str, Any]]:
    """Pull and ingest every waiting file of one source; one summary dict per file.

    As ``stafet ingest`` does, each file gets the steward's validation report
    (``$STAFET_HOME/reports/file-….html``, its path under ``"report"``; the night's Data
    Docs in ``reports/night-<date>/datadocs``). A file refused unread has none.
    """
    outcome = ingest_sources(network, [name])[name]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def ingest_sources(network: str, names: list[str]) -> dict[str, list[dict[str, Any]] | Exception]:
    """:func:`ingest_source` for several sources at once: per source its files, or what stopped it.

    Their small files are validated together, one Great Expectations call per source
    kind (:func:`stafet.ingest.pipeline.ingest_inboxes`); a source whose inbox fails
    does not stop the others.
    """
    from stafet.ingest.pipeline import ingest_inboxes
    from stafet.reports.validation import docs_dir
    from transports import open_inbox

    for name in names:
        _notify("ingest", name)
    ctx = context(network)
    opened: dict[str, Any] = {}
    out: dict[str, list[dict[str, Any]] | Exception] = {}
    with contextlib.ExitStack() as stack:
        for name in names:
            src = _source(ctx, name)
            try:
                opened[name] = (stack.enter_context(open_inbox(
                    ctx.network.locate(src.location), **ctx.network.sftp_login(src),
                    max_bytes=ctx.network.max_bytes(src))), src)
            except Exception as e:  # this source's inbox: the others go on
                out[name] = e
        docs = docs_dir(f"night-{utcnow():%Y-%m-%d}", ctx.home)
        results = ingest_inboxes(ctx.store, ctx.network, list(opened.values()), docs_dir=docs)
    for name, outcome in zip(opened, results, strict=True):
        out[name] = outcome if isinstance(outcome, Exception) else [_with_report(ctx, r) for r in outcome]
    return {name: out[name] for name in names}


def _with_report(ctx: Context, r: Any) -> dict[str, Any]:
    """A file's summary dict, with its steward's validation report written (``"report"``)."""
    from stafet.reports.validation import write_file_report

    item = asdict(r)
    item["report"] = ""
    if r.sha256 and not r.duplicate_file:
        try:  # the rows are stored: a report that cannot be written does not undo the ingest
            item["report"] = str(write_file_report(ctx.store, r, home=ctx.home))
        except OSError as e:
            log.warning("validation report of %s not written: %s", r.sha256[:16], type(e).__name__)
    return item


def night_markdown(summary: dict[str, Any], files: list[dict[str, Any]], failures: list[str]) -> str:
    """The night in markdown for a Prefect artifact: counts, ids and report links; no names, no CPR.

    Files are named by their report's id (``file-<sha256 prefix>``), never by their file
    name (names carry dates that look like CPRs); failures are the flow's own texts
    (stafet's errors are CPR-redacted, other errors reach it as their type only).
    """
    from stafet.core.redaction import redact
    from stafet.reports.validation import file_report_name

    def link(path: str, text: str) -> str:
        return f"[{text}]({Path(path).resolve().as_uri()})" if path else text

    lines = ["# stafet: natten", "",
             f"**{summary.get('files', 0)}** filer, **{summary.get('rows', 0)}** rækker: "
             f"{summary.get('accepted', 0)} accepteret, **{summary.get('quarantined', 0)}** i karantæne, "
             f"{summary.get('rejected_files', 0)} filer afvist. "
             f"{summary.get('sent', 0)} pakker sendt, {summary.get('acknowledged', 0)} kvitteret, "
             f"{summary.get('unacknowledged', 0)} venter på kvittering "
             f"({summary.get('overdue', 0)} over fristen).",
             "", "Natlig rapport: " + link(str(summary.get("report") or ""), "nightly report"), "",
             "## Valideringsrapporter (dataansvarlig)", ""]
    if files:
        lines += ["| rapport | kilde | rækker | accepteret | karantæne | afvist |",
                  "|---|---|---:|---:|---:|---|"]
        for f in files:
            rid = file_report_name(f["sha256"]) if f.get("sha256") else "(ikke læst)"
            lines.append(f"| {link(f.get('report', ''), rid)} | {f['source']} | {f['rows']} | "
                         f"{f['accepted']} | {f['quarantined']} | {'ja' if f['rejected'] else ''} |")
    else:
        lines.append("Ingen nye filer.")
    lines += ["", f"## Fejl ({len(failures)})", ""]
    lines += [f"- {redact(x)[:300]}" for x in failures] or ["Ingen."]
    return "\n".join(lines) + "\n"


def route(network: str, today: dt.date | None = None,
          recipients: list[str] | None = None) -> dict[str, int]:
    """Decide who must be told what; commit the decisions as handovers.

    ``recipients`` (``stafet send --to``): only what concerns them is routed; withdrawals
    still apply to all (they only cancel and hold, never send).
    """
    _notify("route")
    ctx = context(network)
    today = today or dt.date.today()
    withdrawn = apply_withdrawals(ctx, today)
    with ctx.store.session() as s:
        decisions = route_records(s, ctx.network, today, recipients=recipients)
    counts = plan_handovers(ctx, decisions)
    counts["partial"] = sum(1 for d in decisions if d.status == "partial")
    return {**counts, **withdrawn}


def apply_withdrawals(ctx: Context, today: dt.date) -> dict[str, int]:
    """Withdrawals that arrived in the consent export take effect (idempotently)."""
    with ctx.store.session() as s:
        due = consents.withdrawn_by(s, today)
    total = {"cancelled": 0, "notices": 0}
    for ref, on in due:
        for k, v in withdraw_consent(ctx, ref, on, actor="consent-export").items():
            total[k] += v
    return total


def pending_recipients(network: str) -> list[str]:
    """Recipients with handovers waiting to be sent."""
    ctx = context(network)
    with ctx.store.session() as s:
        return outbox.pending_recipients(s)


def send_batches(network: str, n: int) -> list[list[str]]:
    """The recipients with pending handovers in at most ``n`` batches, for the send partitions.

    A municipality's recipients go together (:func:`balanced_batches`): their handovers come
    mostly from the same municipality's members, so a partition loads the private keys of
    fewer senders (commuting youths still bring most senders into every partition; a
    stamped key file loads in ≈ 0.3 ms, an unstamped one in ≈ 110 ms: :mod:`keys.files`).
    """
    ctx = context(network)
    with ctx.store.session() as s:
        pending = {r: c["pending"] for r, c in outbox.counts_by(s, "recipient").items() if c.get("pending")}
    members = ctx.network.members
    return balanced_batches(pending, {r: members[r].municipality if r in members else "" for r in pending}, n)


def balanced_batches(weights: dict[str, int], group_of: dict[str, str], n: int) -> list[list[str]]:
    """``weights``' keys in at most ``n`` batches, a group's keys in one, the weights balanced.

    The heaviest group goes first, to the lightest batch. With fewer groups than ``n``,
    every key is its own group: the work still spreads.
    """
    groups: dict[str, list[str]] = {}
    for key in sorted(weights):
        groups.setdefault(group_of.get(key, ""), []).append(key)
    if len(groups) < n:
        groups = {key: [key] for key in sorted(weights)}
    n = max(1, min(n, len(groups)))
    batches: list[list[str]] = [[] for _ in range(n)]
    load = [0] * n
    for _, keys in sorted(groups.items(), key=lambda g: (-sum(weights[k] for k in g[1]), g[0])):
        i = min(range(n), key=lambda j: (load[j], j))
        batches[i] += keys
        load[i] += sum(weights[k] for k in keys)
    return [sorted(b) for b in batches if b]


def send(network: str, recipients: list[str], claimant: str = "",
         takeover: tuple[str, ...] = (), slot: Any = None,
         progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Send the pending handovers to ``recipients`` (claimed for ``claimant`` on PostgreSQL).

    ``slot``: the endpoints' delivery slots (:data:`stafet.exchange.outbox.EndpointSlot`);
    ``progress(done, total)``: after each handover (the CLI's progress bar).
    """
    _notify("send", ", ".join(recipients))
    r = send_pending(context(network), recipients=recipients, claimant=claimant, takeover=tuple(takeover),
                     slot=slot, progress=progress)
    return {"sent": r.sent, "held": r.held, "retry_later": r.retry_later, "failed": r.failed,
            "deferred": r.deferred, "errors": list(r.errors.values())}


def hosted_orgs(network: str) -> list[str]:
    """Members this node holds keys for: it reads their inboxes (handovers, receipts)."""
    ctx = context(network)
    return [o for o in ctx.network.members if ctx.keys.org_dir(o).exists() and any(
        ctx.keys.org_dir(o).glob("*.pem"))]


def refresh_revocation(network: str, home: str = "", ocsp_url: str = "") -> dict[str, int]:
    """Fetch fresh OCSP responses and CRLs for the members' certificates; counts only.

    They go to the cache the receive path reads; a failed fetch keeps the previous
    cached answer (it expires by its own nextUpdate).
    """
    _notify("revocation")
    from stafet.exchange.endpoints import refresh_revocation as refresh

    counts = {"certificates": 0, "ocsp": 0, "crl": 0, "failed": 0, "nothing_to_fetch": 0}
    for outcome in refresh(context(network, home), ocsp_url=ocsp_url).values():
        counts["certificates"] += 1
        parts = outcome.split("; ")
        counts["ocsp"] += parts.count("ocsp")
        counts["crl"] += parts.count("crl")
        counts["failed"] += sum(1 for p in parts if " failed" in p)
        counts["nothing_to_fetch"] += int(outcome.startswith("nothing to fetch"))
    return counts


def receive(network: str, org: str, home: str = "", claimant: str = "",
            takeover: tuple[str, ...] = ()) -> dict[str, Any]:
    """Process one organisation's inbox (its files claimed for ``claimant`` on PostgreSQL)."""
    _notify("receive", org)
    r = process_inbox(context(network, home), org, claimant=claimant, takeover=tuple(takeover))
    return {"imported": r.imported, "receipts_sent": r.receipts_sent, "acknowledged": r.acknowledged,
            "withdrawn": r.withdrawn, "duplicates": r.duplicates, "notices": r.notices,
            "awaiting_acknowledgement": r.awaiting, "rejected": len(r.rejected),
            "reasons": sorted(set(r.rejected.values()))}


def outbox_counts(network: str, home: str = "") -> dict[str, int]:
    """Handovers by status."""
    ctx = context(network, home)
    with ctx.store.session() as s:
        return outbox.counts_by_status(s)


def unacknowledged(network: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Sent handovers still waiting for a receipt, oldest first, with age and overdue flag."""
    ctx = context(network)
    now = now or utcnow()
    limit = dt.timedelta(hours=ctx.network.ack_limit_hours)
    out = []
    with ctx.store.session() as s:
        for h in outbox.unacknowledged(s):
            age = now - (h.sent_at or h.created_at)
            out.append({"id": h.id, "sender": h.sender, "recipient": h.recipient, "status": h.status,
                        "youth": h.youth, "age_hours": round(age.total_seconds() / 3600, 1),
                        "overdue": age > limit})
    for item in out:
        if item["overdue"]:
            log.warning("handover %s to %s unacknowledged for %.0f h (limit %.0f h)", item["id"],
                        item["recipient"], item["age_hours"], ctx.network.ack_limit_hours)
    return out


def deadlines(network: str, today: dt.date | None = None) -> dict[str, int]:
    """The duty clock: counts per rule and status (no personal data); writes the console's snapshot."""
    _notify("deadlines")
    from stafet.duties.deadlines import compute_deadlines, deadlines_summary
    from stafet.duties.snapshot import write_snapshot
    from stafet.store import utcnow

    ctx, day = context(network), today or dt.date.today()
    started = utcnow()  # a contact registered while the clock is computed is caught by the write
    items = compute_deadlines(ctx, day)
    write_snapshot(ctx, day, items, since=started)  # the day's duties as the console shows them
    return deadlines_summary(items)


def _clock(ctx: Context, day: dt.date, from_snapshot: bool) -> list[Any]:
    """``day``'s duty clock: with ``from_snapshot``, the day's snapshot when there is one; else computed.

    ``from_snapshot`` is for a night whose deadlines stage has just written the snapshot
    (:func:`deadlines`): the clock is then read back (seconds), not computed again (at the
    national size ≈ 40 s each time). Without a snapshot of ``day`` it is computed.
    """
    from stafet.duties.deadlines import compute_deadlines
    from stafet.duties.snapshot import snapshot_items

    items = snapshot_items(ctx, day) if from_snapshot else None
    return compute_deadlines(ctx, day) if items is None else items


def notices(network: str, today: dt.date | None = None, from_snapshot: bool = False) -> dict[str, int]:
    """Re-send unacknowledged packages, then send the duty notices and escalations (counts only).

    ``from_snapshot``: see :func:`_clock`. A resend moves its handover's ``handover_ack``
    due date (or holds the handover), so when anything was resent or held the clock is
    computed afresh.
    """
    _notify("notices")
    from stafet.duties.deadlines import duty_settings
    from stafet.exchange.notices import send_notices
    from stafet.exchange.outbox import resend_unacknowledged

    ctx, day = context(network), today or dt.date.today()
    resent = resend_unacknowledged(ctx, max_resends=duty_settings().resend_attempts)
    unchanged = resent["resent"] == 0 and resent["held"] == 0
    told = send_notices(ctx, day, items=_clock(ctx, day, from_snapshot and unchanged))
    return {"resent": resent["resent"], **{f"notices_{k}": v for k, v in told.items()}}


def report(network: str, today: dt.date | None = None, from_snapshot: bool = False) -> str:
    """Write the nightly report; returns its path. ``from_snapshot``: see :func:`_clock`."""
    _notify("report")
    from stafet.reports.nightly import write_report

    ctx = context(network)
    today = today or dt.date.today()
    return str(write_report(ctx, today=today, deadlines=_clock(ctx, today, from_snapshot)))


def statistics(network: str, from_month: str = "", to_month: str = "",
               today: dt.date | None = None) -> dict[str, Any]:
    """The network's statistics (:mod:`stafet.reports.statistics`) for ``[from, to]``, written to files.

    Without months: the 12 whole months before ``today``'s month (the monthly run on the 1st).
    Writes HTML, JSON and CSV to ``$STAFET_HOME/reports/statistics-FROM_TO``; returns counts,
    the report's path and the Prefect artifact's markdown (counts only, suppressed).
    """
    _notify("statistics")
    from stafet.core.errors import ConfigError
    from stafet.reports.statistics import Period, compute_statistics, to_markdown, write_outputs

    today = today or dt.date.today()
    if bool(from_month) != bool(to_month):
        raise ConfigError("statistics: give both months (from and to) or neither")
    period = Period.parse(from_month, to_month) if from_month else Period.months_before(today)
    ctx = context(network)
    stats = compute_statistics(ctx, period, today=today)
    paths = write_outputs(stats, ctx.home / "reports" / f"statistics-{period.label()}")
    return {"from": f"{period.first:%Y-%m}", "to": f"{period.last:%Y-%m}", "tables": len(stats.tables),
            "suppressed": sum(t.suppressed for t in stats.tables),
            "opsporing_available": stats.opsporing_available, "report": paths["html"],
            "markdown": to_markdown(stats)}


def handover_counts(network: str, by: str) -> list[dict[str, Any]]:
    """Handovers per rule or per recipient and status: rows for a Prefect artifact."""
    if by not in ("rule", "recipient"):
        raise KeyError(by)
    ctx = context(network)
    with ctx.store.session() as s:
        table = outbox.counts_by(s, by)
    return [{by: k, **table[k]} for k in sorted(table)]
