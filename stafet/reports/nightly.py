"""The nightly report: one self-contained HTML page for the data steward and operations.

Sections: what was ingested (each file linking the steward's validation report
written for it, ``file-….html`` in the same folder), what routing decided (sent / partial / held, with the
reason consent blocked), withdrawal notices and whether each was acknowledged, dropouts
with no prior concern flag (Randers), the report lag of dropouts per institution (seed 002:
"Ofte kommer meldinger fra Ungdomsuddannelserne for sent"; counts only), unacknowledged
handovers past the limit, and the duty clock. Every value is escaped, values that look
like spreadsheet formulas are prefixed so they stay inert when copied, and nothing loads
from the network. CPRs never appear: youths are shown by pseudonym.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter
from pathlib import Path
from typing import Any

from stafet.context import Context
from stafet.core.config import write_private
from stafet.duties.routing import dropouts_without_concern
from stafet.reports.statistics import report_lag_by_institution
from stafet.store import audit, files, outbox, utcnow
from stafet.store import statistics as stat_queries

_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "margin:.5em 0 1.5em}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:left;"
        "vertical-align:top}th{background:#eee}.bad{color:#a00}.ok{color:#070}")


def cell(v: Any) -> str:
    """An escaped, formula-inert table cell."""
    text = "" if v is None else str(v)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return f"<td>{html.escape(text)}</td>"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """An HTML table with escaped cells; "(ingen)" when empty."""
    if not rows:
        return "<p>(ingen)</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _files_table(folder: Path, received: list[Any]) -> str:
    """The night's files, each linking its validation report (``file-….html`` next to this page)."""
    from stafet.reports.validation import file_report_name

    if not received:
        return "<p>(ingen)</p>"
    head = "".join(f"<th>{h}</th>" for h in ("fil", "kilde", "status", "rækker", "accepteret", "karantæne",
                                             "årsag", "valideringsrapport"))
    rows = []
    for f in received:
        rid = file_report_name(f.sha256)
        name = f"{rid}.html"
        link = (f"<td><a href='{html.escape(name, quote=True)}'>{html.escape(rid)}</a></td>"
                if (folder / name).is_file() else "<td>(ingen)</td>")
        rows.append("<tr>" + "".join(cell(v) for v in (
            f.name, f.source, f.status, f.counts.get("rows", ""), f.counts.get("accepted", ""),
            f.counts.get("quarantined", ""), f.reason)) + link + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def build_report(ctx: Context, *, today: dt.date, deadlines: list[Any] | None = None,
                 since: dt.datetime | None = None) -> str:
    """The nightly report as an HTML string."""
    since = since or (utcnow() - dt.timedelta(days=1))
    parts = [f"<!DOCTYPE html><html lang='da'><head><meta charset='utf-8'><title>stafet "
             f"{today}</title><style>{_CSS}</style></head><body>",
             f"<h1>stafet — natlig rapport {html.escape(ctx.network.name)} {today}</h1>"]
    with ctx.store.session() as s:
        received = files.received_since(s, since)
        parts.append("<h2>Indlæste filer</h2>" + _files_table(ctx.home / "reports", received))
        handovers = outbox.listing(s)
        counts = Counter((h.rule, h.status) for h in handovers)
        parts.append("<h2>Overleveringer</h2>" + table(
            ["regel", "status", "antal"], [[r, st, n] for (r, st), n in sorted(counts.items())]))
        held = [h for h in handovers if h.status in ("held", "cancelled")]
        parts.append("<h2>Holdt tilbage (samtykke eller grundlag mangler)</h2>" + table(
            ["pakke", "afsender", "modtager", "ung", "regel", "samtykke", "årsag"],
            [[h.id, h.sender, h.recipient, h.youth[:12], h.rule, h.consent_ref, h.last_error] for h in held]))
        partial = [(e.subject, e.details) for e in audit.entries(s, "handover.pending")
                   if e.details.get("omitted")]
        parts.append("<h2>Delvist sendt (udeladt, ikke dækket af samtykke)</h2>" + table(
            ["overlevering", "modtager", "samtykke", "udeladt"],
            [[subj, d.get("recipient"), d.get("consent_ref"), "; ".join(o[1] for o in d["omitted"])]
             for subj, d in partial]))
        notices = [h for h in handovers if h.rule == "withdrawal_notice"]
        parts.append("<h2>Tilbagekaldelser sendt</h2>" + table(
            ["pakke", "modtager", "samtykke", "status", "kvitteret"],
            [[h.id, h.recipient, h.consent_ref, h.status, "ja" if h.acknowledged_at else "nej"]
             for h in notices]))
        limit = dt.timedelta(hours=ctx.network.ack_limit_hours)
        now = utcnow()
        waiting = [h for h in handovers if h.status in ("pending", "sent", "failed")
                   and now - (h.sent_at or h.created_at) > limit]
        parts.append(f"<h2 class='bad'>Ikke kvitteret efter {ctx.network.ack_limit_hours:.0f} timer "
                     "(den unge er stadig afsenderens)</h2>" + table(
                         ["pakke", "afsender", "modtager", "status", "sendt", "fejl"],
                         [[h.id, h.sender, h.recipient, h.status, h.sent_at, h.last_error] for h in waiting]))
        randers = dropouts_without_concern(s, today)
        parts.append("<h2>Afbrud uden forudgående bekymringsmærke (3 måneder)</h2>" + table(
            ["institution", "ung", "afbrudsdato"],
            [[r["institution"], r["youth"][:12], r["dropout_date"]] for r in randers]))
        members = ctx.network.members
        lag = report_lag_by_institution(stat_queries.school_events(s))
        parts.append("<h2>Indberetningstid for afbrud pr. institution (dage fra afbrud til stafet)</h2>"
                     + table(["institution", "afbrud", "median, dage", "maks, dage"],
                             [[f"{members[r.institution].name} ({r.institution})"
                               if r.institution in members else r.institution,
                               r.dropouts, f"{r.median_days:g}".replace(".", ","), r.max_days] for r in lag]))
    if deadlines is not None:
        parts.append("<h2>Frister (overskredet og inden for 7 dage)</h2>" + table(
            ["regel", "ansvarlig", "ung", "CPR", "frist", "dage over"],
            [[d.rule, d.responsible, d.youth[:12], d.masked_cpr, d.due, d.days_overdue]
             for d in deadlines if d.status in ("overdue", "due_soon")]))
    parts.append("</body></html>")
    return "".join(parts)


def write_report(ctx: Context, *, today: dt.date, deadlines: list[Any] | None = None) -> Path:
    """Write ``$STAFET_HOME/reports/nightly-<date>.html``; returns its path."""
    out = ctx.home / "reports" / f"nightly-{today.isoformat()}.html"
    write_private(out, build_report(ctx, today=today, deadlines=deadlines).encode("utf-8"))  # 0600
    return out
