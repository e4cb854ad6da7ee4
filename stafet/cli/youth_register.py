"""``stafet opsporing``: the youths UU must find (15–17), follow up (18–24) or follow (not ready).

Lists, per group (see :mod:`stafet.duties.youth_register` for the rules), each youth's
pseudonym and masked CPR (``DDMMYY-xxxx``; the full CPR is never shown), the responsible
UU, the municipality, the age and the days since the youth's last known activity
("ukendt" for a youth the network has never seen).

Options: ``--group 15-17|18-24|ikke-parat`` (default ``15-17``: the opsporing list of the
15–17 duty), ``--org ORG`` (only that UU's youths), ``--json``, ``--today YYYY-MM-DD``
(default the local date), ``--network``, ``--home``. Exit code 0, 2 on a configuration error.

JSON output (``--json``), format ``stafet.opsporing/1``; keys stable within version 1::

    {
      "format": "stafet.opsporing/1",
      "network": "demo-viborg",
      "today": "2026-11-25",
      "group": "15-17",                    # 15-17 | 18-24 | ikke-parat
      "org": null,                         # the --org filter, or null
      "count": 1,
      "items": [                           # unknown activity first, then the longest since
        {
          "group": "15-17",
          "youth": "Y3F…",                 # pseudonym
          "masked_cpr": "281108-xxxx",
          "responsible": "uu-viborg",      # the UU of the municipality of registration
          "municipality": "791",
          "age": 17,
          "last_activity": "2026-06-30",   # ISO date, or null when nothing is known
          "last_activity_kind": "dropout", # enrolment | dropout | completion | uu_contact |
                                           # agreement | education_order | interview |
                                           # grundskole_end | "" (unknown)
          "days_since_activity": 148,      # or null
          "reference": "registered in 791 since 2020-02-01; no education, activity or UU contact"
        }
      ]
    }
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from stafet.cli.common import HomeOpt, JsonOpt, NetworkOpt, check_org, echo_json, fail, open_ctx
from stafet.cli.common import day as _parse_day
from stafet.core.errors import StafetError

TITLES = {"15-17": "opsporing (15-17 år, uddannelsespligt)", "18-24": "målgruppen 18-24 år (opfølgning)",
          "ikke-parat": "elever vurderet ikke uddannelsesparate"}
ACTIVITY_DA = {"enrolment": "optagelse", "dropout": "afbrud", "completion": "gennemført",
               "uu_contact": "UU-kontakt", "agreement": "aftale", "education_order": "uddannelsespålæg",
               "interview": "jobcentersamtale", "grundskole_end": "grundskole afsluttet", "": "ukendt"}


def opsporing(
    group: Annotated[Literal["15-17", "18-24", "ikke-parat"],
                     typer.Option("--group", help="15-17 (opsporing), 18-24 or ikke-parat")] = "15-17",
    org: Annotated[str | None, typer.Option("--org", help="only this UU's youths")] = None,
    as_json: JsonOpt = False,
    today: Annotated[str | None, typer.Option("--today", help="judge as of YYYY-MM-DD (default: today)")]
    = None,
    network: NetworkOpt = None,
    home: HomeOpt = None,
) -> None:
    """The youths UU must find: registered 15-17-year-olds in no education, activity or UU contact."""
    day = _parse_day(today)
    from stafet.duties.youth_register import GROUPS, opsporing_list, to_document

    if group not in GROUPS:  # the Literal above and the duty's groups are one list
        raise typer.BadParameter(f"skal være en af {', '.join(GROUPS)}", param_hint="--group")
    try:
        ctx = open_ctx(network, home)
        check_org(ctx.network, org)
        items = opsporing_list(ctx, day, org=org, group=group)
    except StafetError as e:
        fail(e)
    doc = to_document(items, network=ctx.network.name, today=day, group=group, org=org)
    if as_json:
        echo_json(doc)
        return
    t = Table(title=f"{TITLES[group]} pr. {day.isoformat()}: {doc['count']} unge")
    for col in ("UU", "kommune", "ung", "CPR", "alder", "seneste aktivitet", "dage siden"):
        t.add_column(col, no_wrap=col in ("CPR", "kommune"), overflow="fold")
    for i in doc["items"]:
        last = ACTIVITY_DA.get(i["last_activity_kind"], i["last_activity_kind"])
        if i["last_activity"]:
            last = f"{last} {i['last_activity']}"
        since = "ukendt" if i["days_since_activity"] is None else str(i["days_since_activity"])
        t.add_row(i["responsible"], i["municipality"], i["youth"], i["masked_cpr"], str(i["age"]), last,
                  since)
    Console().print(t)


def register(app: typer.Typer) -> None:
    """Add ``stafet opsporing`` to the CLI."""
    app.command("opsporing")(opsporing)
