"""What happens in the demo between its two real nights (issues 17 and 18): counts only, never a CPR.

``stafet demo`` runs the first night, then :func:`between_nights`:

1. an institution (Mercantec) asks UU Viborg about a youth it has a plan for
   (:func:`stafet.exchange.inquiries.send_inquiry`), and UU Viborg's inbox keeps it;
2. UU Skive's own node does not answer: its packages wait unacknowledged, so a few
   *simulated* later nights (the night's day, and the clock of the resend, moved on by
   working days) re-send them (:func:`stafet.exchange.outbox.resend_unacknowledged`, same
   package id and bytes), then tell the sender that the handover is not acknowledged, then
   escalate to the network coordinator (:func:`stafet.exchange.notices.send_notices`, the
   ``handover_ack`` duty only: the rest of the duty clock stays that of the real day);

and, after UU Skive's node is back, :func:`answer_inquiries`: UU Viborg answers the
inquiry (what the routing rules let it tell the asker). The second real night collects
the receipts and the answer. Run again, nothing is asked, re-sent or told twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from stafet import night
from stafet.context import Context
from stafet.duties.deadlines import add_working_days, compute_deadlines, duty_settings
from stafet.exchange.inbox import process_inbox
from stafet.exchange.inquiries import answer_inquiry, send_inquiry
from stafet.exchange.notices import send_notices
from stafet.exchange.outbox import resend_unacknowledged
from stafet.store import inquiries, outbox, records

ASKER = "779008"
"""The institution that asks (Mercantec)."""
ASKED = "uu-viborg"
"""The UU it asks."""
ABOUT_PLAN = "UP-77812"
"""The education plan (UU Viborg's export) whose youth the institution asks about: by plan id, no CPR."""
QUESTION = "Har den unge støttebehov, vi skal kende før opstart på smedeuddannelsen?"
ANSWERED_BY = "Bo Riis (UU Viborg)"
MAX_NIGHTS = 8
"""At most this many simulated nights (the chain needs four: resend, resend and notice, -, escalation)."""


@dataclass
class LaterNight:
    """One simulated night while UU Skive's node does not answer: its day and what it did."""

    day: dt.date
    resent: int = 0
    notices: int = 0
    coordinator: int = 0
    management: int = 0  # a duty already escalated to the coordinator goes on to the sender's management


@dataclass
class Between:
    """What :func:`between_nights` did: the inquiry (when one was sent now) and the later nights."""

    inquiry: str = ""
    waiting: int = 0
    nights: list[LaterNight] = field(default_factory=list)


def ask_uu(ctx: Context) -> str:
    """Mercantec asks UU Viborg about the youth of plan :data:`ABOUT_PLAN`; "" when it asked before."""
    with ctx.store.session() as s:
        if any(r.direction == "out" for r in inquiries.listing(s, org=ASKER)):
            return ""
        youth = next((y for _, _, y, p, _ in records.live_facts(s, ["education_plan"])
                      if p.get("plan_id") == ABOUT_PLAN), None)
        if youth is None:
            return ""
        cpr = ctx.store.cpr_of(s, youth)
    return send_inquiry(ctx, ASKER, ASKED, cpr, QUESTION)


def _night_clock(day: dt.date) -> dt.datetime:
    """The simulated night's clock: 01:00 UTC of ``day`` (the store's naive UTC)."""
    return dt.datetime.combine(day, dt.time(1, 0))


def unanswered_nights(ctx: Context, today: dt.date) -> list[LaterNight]:
    """Simulated nights after ``today`` while some sent handover waits for its receipt.

    The first is 3 working days on (after the network's 48-hour limit), then one working
    day apart, until a duty has been escalated (or :data:`MAX_NIGHTS`). Each re-sends
    what is overdue, then sends the ``handover_ack`` notices and escalations of its day.
    """
    settings = duty_settings()
    out: list[LaterNight] = []
    day = add_working_days(today, 3)
    for _ in range(MAX_NIGHTS):
        with ctx.store.session() as s:
            if not outbox.of_statuses(s, ("sent",)):
                break
        n = LaterNight(day)
        n.resent = resend_unacknowledged(ctx, max_resends=settings.resend_attempts,
                                         now=_night_clock(day))["resent"]
        items = [i for i in compute_deadlines(ctx, day) if i.rule == "handover_ack"]
        told = send_notices(ctx, day, items=items)
        n.notices, n.coordinator, n.management = told["notice"], told["coordinator"], told["management"]
        out.append(n)
        if n.coordinator or n.management:
            break
        day = add_working_days(day, 1)
    return out


def between_nights(network: str, today: dt.date) -> Between:
    """The inquiry, UU Viborg's inbox keeping it, and the nights UU Skive's node does not answer."""
    ctx = night.context(network)
    b = Between(inquiry=ask_uu(ctx))
    if b.inquiry:
        process_inbox(ctx, ASKED)  # UU Viborg's inbox: the inquiry is kept, a receipt goes back
    with ctx.store.session() as s:
        b.waiting = len(outbox.of_statuses(s, ("sent",)))
    b.nights = unanswered_nights(ctx, today)
    return b


def answer_inquiries(network: str, today: dt.date) -> list[Any]:
    """UU Viborg answers each inquiry it keeps open (in real life a person: ``stafet inquiry answer``)."""
    ctx = night.context(network)
    with ctx.store.session() as s:
        open_ids = [r.package_id for r in inquiries.listing(s, org=ASKED, status="open")]
    return [answer_inquiry(ctx, pid, by=ANSWERED_BY, org=ASKED, today=today) for pid in open_ids]


def show_between(console: Any, b: Between) -> None:
    """Print the simulated nights in Danish (counts and days only)."""
    if b.inquiry:
        console.print(f"  Mercantec spørger UU Viborg om en ung (forespørgsel {b.inquiry})", highlight=False)
    if not b.nights:
        console.print("  ingen overleveringer venter på kvittering: ingen senere nætter", highlight=False)
        return
    console.print(f"  {b.waiting} overlevering(er) venter på UU Skives kvittering; simulerede nætter "
                  "(dagen og gensendelsens ur flyttet frem):", highlight=False)
    for n in b.nights:
        console.print(f"    nat {n.day.isoformat()}: gensendt {n.resent}, påmindelser {n.notices}, "
                      f"eskaleret til koordinator {n.coordinator}"
                      + (f", til ledelsen {n.management}" if n.management else ""), highlight=False)


__all__ = ["ASKED", "ASKER", "Between", "LaterNight", "answer_inquiries", "ask_uu", "between_nights",
           "show_between", "unanswered_nights"]
