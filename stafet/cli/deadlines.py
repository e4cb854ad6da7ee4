"""``stafet deadlines``: who is waiting for whom, and since when.

Lists the overdue items and those due within 7 days (see :mod:`stafet.duties.deadlines`
for the rules), each with the youth's pseudonym and masked CPR (``DDMMYY-xxxx``;
the full CPR is never shown), the rule, the due date, the days overdue and the
responsible organisation.

Options: ``--org ORG`` (only that organisation's items), ``--json``, ``--today
YYYY-MM-DD`` (judge as of that day; default the local date), ``--refresh`` (also write
the day's duty snapshot the console shows, as the night does), ``--network``, ``--home``.
Exit code 0 (also when items are overdue), 2 on a configuration error.

JSON output (``--json``), format ``stafet.deadlines/1``; keys and their order are
stable, new keys may be added, none is removed or renamed within version 1::

    {
      "format": "stafet.deadlines/1",
      "network": "demo-viborg",            # the network's name
      "today": "2026-11-24",               # the day judged by
      "window_days": 7,                    # due_soon = due within this many days
      "org": null,                         # the --org filter, or null
      "counts": {"overdue": 1, "due_soon": 0},
      "items": [                           # overdue first (longest first), then by due date
        {
          "rule": "dropout_contact",       # dropout_contact | dropout_agreement |
                                           # followup_18_24 | transition_meeting | handover_ack
          "status": "overdue",             # overdue | due_soon
          "due": "2026-11-23",             # ISO date; the duty is met in time on this day
          "days_overdue": 1,               # today - due when overdue, else 0
          "days_left": 0,                  # due - today when not overdue, else 0
          "responsible": "uu-viborg",      # organisation id ("" when the network has none)
          "youth": "Y3F…",                 # pseudonym
          "masked_cpr": "030409-xxxx",
          "reference": "dropout 2026-11-16 at 751001"   # what started the clock; never a CPR
        }
      ]
    }

``docs/deadlines.md`` describes the rules and this format in full.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stafet.cli.common import HomeOpt, JsonOpt, NetworkOpt, check_org, echo_json, fail, open_ctx
from stafet.cli.common import day as _parse_day
from stafet.core.errors import StafetError


def deadlines(
    org: Annotated[str | None, typer.Option("--org", help="only this organisation's items")] = None,
    as_json: JsonOpt = False,
    today: Annotated[str | None, typer.Option("--today", help="judge as of YYYY-MM-DD (default: today)")]
    = None,
    network: NetworkOpt = None,
    home: HomeOpt = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="also write the day's duty snapshot the console "
                                                            "shows (as the night does)")] = False,
) -> None:
    """Overdue deadlines and those due within 7 days: dropouts, follow-ups, transitions, handovers.

    ``--json``: stable JSON, format stafet.deadlines/1.
    """
    day = _parse_day(today)
    from stafet.duties.deadlines import RULES, WINDOW_DAYS, compute_deadlines, to_document

    try:
        ctx = open_ctx(network, home)
        check_org(ctx.network, org)
        from stafet.store import utcnow

        started = utcnow()
        items = compute_deadlines(ctx, day)
        if refresh:
            from stafet.duties.snapshot import write_snapshot

            write_snapshot(ctx, day, items, since=started)
    except StafetError as e:
        fail(e)
    doc = to_document(items, network=ctx.network.name, today=day, org=org, window_days=WINDOW_DAYS)
    if as_json:
        echo_json(doc)
        return
    out = Console()
    c = doc["counts"]
    t = Table(title=f"deadlines on {day.isoformat()}: {c['overdue']} overdue, "
                    f"{c['due_soon']} due within {WINDOW_DAYS} days")
    for col in ("status", "due", "days", "responsible", "youth", "CPR", "rule", "reference"):
        t.add_column(col, no_wrap=col in ("due", "CPR"), overflow="fold")
    for i in doc["items"]:
        status = "[red]overdue[/red]" if i["status"] == "overdue" else "due soon"
        days = f"{i['days_overdue']} over" if i["status"] == "overdue" else f"{i['days_left']} left"
        t.add_row(status, i["due"], days, i["responsible"] or "?", i["youth"],
                  i["masked_cpr"], i["rule"], i["reference"])
    out.print(t)
    for rule in sorted({i["rule"] for i in doc["items"]}):
        out.print(f"  {rule}: {RULES[rule]}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``stafet deadlines`` to the CLI."""
    app.command("deadlines")(deadlines)
