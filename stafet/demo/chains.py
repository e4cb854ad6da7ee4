"""What the demo shows of "duties reach people" (issue 17) and "the whole youth" (issue 18), in counts.

After the demo's nights: the notices the night sent (which duty, to which member, addressed
to whom — never a CPR or a youth's name), the escalations a later day would bring (planned,
not sent: the demo's state stays that of its own day), the job centre's copy of a dropout of
a youth with an active education order, and the concern flags whose contact clock runs.
The chain of an unacknowledged handover (:mod:`stafet.demo.story`'s simulated nights: re-sent,
the sender told, escalated to the coordinator, then acknowledged when UU Skive's node is
back). Issue 18: a grundskole pupil's support needs to UU and, with consent, to the school
applied to; UU Viborg's opsporing list; a move from Viborg to Skive taken over by UU Skive;
an institution's inquiry answered; the statistics report with its suppressed small counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

from rich.console import Console
from rich.table import Table

from stafet.context import Context
from stafet.duties.deadlines import add_working_days, compute_deadlines, duty_settings
from stafet.duties.moves import RULE as MOVE_RULE
from stafet.duties.notices import DUTY_DA, plan_notices
from stafet.duties.youth_register import opsporing_list
from stafet.exchange.outbox import NotSendable, handover_document
from stafet.reports.statistics import Period, compute_statistics, write_outputs
from stafet.store import inquiries, notices, outbox

PUPIL_RULES = ("pupil_support_to_uu", "pupil_support_to_institution")
STATISTICS_PERIOD = ("2026-01", "2026-11")
"""The months of the demo's statistics report (those of the tour's `stafet statistics`)."""


@dataclass(frozen=True)
class Chains:
    """The demo's chains: counts per (rule, member, addressee), the escalation day and its plan."""

    notices: list[tuple[tuple[str, str, str], int]]
    escalate_on: str
    escalations: list[tuple[tuple[str, str], int]]
    job_centre: list[tuple[tuple[str, str], int]]
    concern_clocks: list[tuple[str, str, str]]
    # the unacknowledged handover: (recipient, resends, status) per handover that was re-sent,
    # and the handover_ack notices per (day, step, recipient)
    resent: list[tuple[tuple[str, int, str], int]]
    ack_notices: list[tuple[tuple[str, str, str], int]]
    pupils: list[tuple[tuple[str, str, str], int]]  # (rule, recipient, status)
    opsporing: list[tuple[str, int, str]]  # (UU, age, last activity or "")
    moves: list[tuple[tuple[str, str, str, str], int]]  # (sender, recipient, status, history kinds)
    inquiries: list[tuple[tuple[str, str, str], int]]  # (asker, UU, status)
    statistics: tuple[str, int, int]  # (report path, tables, suppressed cells)


def chains(ctx: Context, today: date) -> Chains:
    """The chains as data (for the demo's print and its test): counts, members and addressees."""
    settings = duty_settings()
    with ctx.store.session() as s:
        sent = [n for n in notices.listing(s, limit=10_000) if n.status == "sent"]
        job_centre = [h for h in outbox.of_rule(s, "dropout_to_job_centre")]
        handovers = outbox.of_statuses(s, ("pending", "sent", "failed", "acknowledged", "held"))
        asked = [(r.asker, r.guidance, r.status) for r in inquiries.listing(s) if r.direction == "out"]
    items = compute_deadlines(ctx, today)
    flags = [i for i in items if i.rule == "concern_contact"]
    steps = {(n.duty_key, n.step): n.day for n in sent}
    n_days = settings.escalate.get("dropout_contact", {}).get("coordinator", 3)
    later = add_working_days(today, n_days)
    later_items = compute_deadlines(ctx, later)
    escalations = [p for p in plan_notices(later_items, steps, settings, ctx.network, later)
                   if p.step == "coordinator"]
    return Chains(
        notices=sorted(Counter((n.rule, n.recipient, n.addressee) for n in sent
                               if n.step == "notice").items()),
        escalate_on=later.isoformat(),
        escalations=sorted(Counter((p.item.rule, p.recipient) for p in escalations).items()),
        job_centre=sorted(Counter((h.recipient, h.status) for h in job_centre).items()),
        concern_clocks=sorted((i.responsible, i.due.isoformat(), i.status) for i in flags),
        resent=sorted(Counter((h.recipient, h.resends, h.status) for h in handovers if h.resends).items()),
        ack_notices=sorted(Counter((n.day.isoformat(), n.step, n.recipient) for n in sent
                                   if n.rule == "handover_ack").items()),
        pupils=sorted(Counter((h.rule, h.recipient, h.status) for h in handovers
                              if h.rule in PUPIL_RULES).items()),
        opsporing=sorted((i.responsible, i.age, i.last_activity_kind) for i in opsporing_list(ctx, today)),
        moves=sorted(Counter((h.sender, h.recipient, h.status, _history_kinds(ctx, h)) for h in handovers
                             if h.rule == MOVE_RULE).items()),
        inquiries=sorted(Counter(asked).items()),
        statistics=statistics_report(ctx, today))


def _history_kinds(ctx: Context, h: Any) -> str:
    """The record kinds of the history a handover carries (as its package was built), comma-separated."""
    try:
        doc = handover_document(ctx, h)
    except NotSendable:  # its basis has lapsed since: the package is not built again
        return ""
    return ", ".join(sorted({e.kind for e in getattr(doc, "history", ())}))


def statistics_report(ctx: Context, today: date) -> tuple[str, int, int]:
    """Write the network's statistics for :data:`STATISTICS_PERIOD`: (HTML path, tables, suppressed cells)."""
    period = Period.parse(*STATISTICS_PERIOD)
    stats = compute_statistics(ctx, period, today=today)
    paths = write_outputs(stats, ctx.home / "reports" / f"statistics-{period.label()}")
    return str(paths["html"]), len(stats.tables), sum(t.suppressed for t in stats.tables)


def show_chains(console: Console, ctx: Context, today: date) -> None:
    """Print the chains in Danish (the demo's last table before the tour)."""
    c = chains(ctx, today)
    t = Table(title="Pligterne når frem til en person (demoens kæder)")
    t.add_column("kæde")
    t.add_column("hvad skete / sker", overflow="fold")
    for (rule, recipient, addressee), n in c.notices:
        if rule == "handover_ack":
            continue  # its own chain below
        t.add_row("påmindelse sendt", f"{n} × {DUTY_DA.get(rule, rule)} → {recipient}, til {addressee}")
    for (recipient, resends, status), n in c.resent:
        t.add_row("ikke kvitteret → gensendt",
                  f"{n} overlevering(er) til {recipient} gensendt {resends} gange (samme pakke-id): {status}")
    for (day, step, recipient), n in c.ack_notices:
        what = {"notice": "påmindelse til afsenderen", "coordinator": "eskaleret til koordinatoren",
                "management": "eskaleret til ledelsen"}.get(step, step)
        t.add_row("ikke kvitteret → eskaleret", f"{n} × {what} → {recipient}, simuleret nat {day}")
    for (rule, recipient), n in c.escalations:
        t.add_row(f"eskaleres {c.escalate_on}",
                  f"{n} × {DUTY_DA.get(rule, rule)} → {recipient} (hvis pligten stadig er åben)")
    for (recipient, status), n in c.job_centre:
        t.add_row("jobcentret får afbruddet",
                  f"{n} overlevering(er) til {recipient} (pålæg aktivt): {status}")
    for responsible, due, status in c.concern_clocks:
        t.add_row("bekymringsmærke",
                  f"{responsible} kontakter skolens studievejleder senest {due} ({status})")
    for (rule, recipient, status), n in c.pupils:
        where = "UU" if rule == "pupil_support_to_uu" else "den søgte skole, med samtykke"
        t.add_row("grundskole: støttebehov", f"{n} elev(er) → {recipient} ({where}): {status}")
    for uu, age, last in c.opsporing:
        t.add_row("opsporing (15–17 år)", f"{uu}: en ung på {age} år uden uddannelse, aktivitet eller "
                  f"UU-kontakt (sidst kendt: {last or 'intet'})")
    for (sender, recipient, status, history), n in c.moves:
        t.add_row("flyttet", f"{n} ung(e) flyttet: {sender} → {recipient} med historik "
                  f"({history or 'ingen'}): {status}")
    for (asker, uu, status), n in c.inquiries:
        t.add_row("forespørgsel", f"{n} × {asker} spurgte {uu}: {status}")
    path, tables, hidden = c.statistics
    if path:
        t.add_row("statistik", f"{tables} tabeller {STATISTICS_PERIOD[0]}–{STATISTICS_PERIOD[1]}, "
                  f"{hidden} små tal skjult (<5): {path}")
    console.print(t)
    console.print("Se dem med `stafet notices`, og registrér en kontakt med `stafet contact add` "
                  "(eller i konsollen under Pligter): så lukkes pligten.", highlight=False)


__all__ = ["Chains", "chains", "show_chains"]
