"""What the demo shows of "duties reach people" (issue 17): each chain once, counts and roles only.

After the demo's nights: the notices the night sent (which duty, to which member, addressed
to whom — never a CPR or a youth's name), the escalations a later day would bring (planned,
not sent: the demo's state stays that of its own day), the job centre's copy of a dropout of
a youth with an active education order, and the concern flags whose contact clock runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date

from rich.console import Console
from rich.table import Table

from stafet.context import Context
from stafet.duties.deadlines import add_working_days, compute_deadlines, duty_settings
from stafet.duties.notices import DUTY_DA, plan_notices
from stafet.store import notices, outbox


@dataclass(frozen=True)
class Chains:
    """The demo's chains: counts per (rule, member, addressee), the escalation day and its plan."""

    notices: list[tuple[tuple[str, str, str], int]]
    escalate_on: str
    escalations: list[tuple[tuple[str, str], int]]
    job_centre: list[tuple[tuple[str, str], int]]
    concern_clocks: list[tuple[str, str, str]]


def chains(ctx: Context, today: date) -> Chains:
    """The chains as data (for the demo's print and its test): counts, members and addressees."""
    settings = duty_settings()
    with ctx.store.session() as s:
        sent = [n for n in notices.listing(s, limit=10_000) if n.status == "sent"]
        job_centre = [h for h in outbox.of_rule(s, "dropout_to_job_centre")]
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
        concern_clocks=sorted((i.responsible, i.due.isoformat(), i.status) for i in flags))


def show_chains(console: Console, ctx: Context, today: date) -> None:
    """Print the chains in Danish (the demo's last table before the tour)."""
    c = chains(ctx, today)
    t = Table(title="Pligterne når frem til en person (demoens kæder)")
    t.add_column("kæde")
    t.add_column("hvad skete / sker", overflow="fold")
    for (rule, recipient, addressee), n in c.notices:
        t.add_row("påmindelse sendt", f"{n} × {DUTY_DA.get(rule, rule)} → {recipient}, til {addressee}")
    for (rule, recipient), n in c.escalations:
        t.add_row(f"eskaleres {c.escalate_on}",
                  f"{n} × {DUTY_DA.get(rule, rule)} → {recipient} (hvis pligten stadig er åben)")
    for (recipient, status), n in c.job_centre:
        t.add_row("jobcentret får afbruddet",
                  f"{n} overlevering(er) til {recipient} (pålæg aktivt): {status}")
    for responsible, due, status in c.concern_clocks:
        t.add_row("bekymringsmærke",
                  f"{responsible} kontakter skolens studievejleder senest {due} ({status})")
    console.print(t)
    console.print("Se dem med `stafet notices`, og registrér en kontakt med `stafet contact add` "
                  "(eller i konsollen under Pligter): så lukkes pligten.", highlight=False)


__all__ = ["Chains", "chains", "show_chains"]
