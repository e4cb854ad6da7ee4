"""``stafet deadlines``: who is waiting for whom, and since when.

Lists the overdue items and those due within 7 days (see :mod:`stafet.duties.deadlines`
for the rules), each with the youth's pseudonym and masked CPR (``DDMMYY-xxxx``;
the full CPR is never shown), the rule, the due date, the days overdue and the
responsible organisation.

Options: ``--org ORG`` (only that organisation's items), ``--json``, ``--today
YYYY-MM-DD`` (judge as of that day; default the local date), ``--network``,
``--home``. Exit code 0 (also when items are overdue), 2 on a configuration error.

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

import json
import os
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stafet.core.errors import ConfigError, StafetError


def _parse_day(value: str | None) -> date:
    if not value:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("must be a date YYYY-MM-DD") from None


def deadlines(
    org: Annotated[str | None, typer.Option("--org", help="only this organisation's items")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="stable JSON (format stafet.deadlines/1)")] = False,
    today: Annotated[str | None, typer.Option("--today", help="judge as of YYYY-MM-DD (default: today)")]
    = None,
    network: Annotated[str | None, typer.Option("--network", "-n", envvar="STAFET_NETWORK",
                                                help="network.yaml of the network")] = None,
    home: Annotated[Path | None, typer.Option("--home", envvar="STAFET_HOME",
                                              help="stafet's data folder (default ./.stafet)")] = None,
) -> None:
    """Overdue deadlines and those due within 7 days: dropouts, follow-ups, transitions, handovers."""
    day = _parse_day(today)
    from stafet.context import open_context, prepare_environment
    from stafet.core.config import stafet_home
    from stafet.duties.deadlines import RULES, WINDOW_DAYS, compute_deadlines, to_document

    h = (home or stafet_home()).resolve()
    os.environ["STAFET_HOME"] = str(h)
    prepare_environment(h)
    err = Console(stderr=True)
    try:
        ctx = open_context(network, home=h)
        if org is not None and org not in ctx.network.members:
            raise ConfigError(f"unknown organisation {org!r}", network=ctx.network.name)
        items = compute_deadlines(ctx, day)
    except StafetError as e:
        err.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    doc = to_document(items, network=ctx.network.name, today=day, org=org, window_days=WINDOW_DAYS)
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
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
