"""``stafet statistics``: the network's monthly figures, small counts suppressed.

``stafet statistics --from YYYY-MM --to YYYY-MM [--json] [--out DIR] [--today YYYY-MM-DD]``
computes :mod:`stafet.reports.statistics` for the months ``[from, to]`` and writes the
HTML report (Danish, charts inline), ``statistics.json`` (format ``stafet.statistics/1``)
and one CSV per table into ``DIR`` (default ``$STAFET_HOME/reports/statistics-FROM_TO``,
every file 0600). Without ``--json`` it prints a short Danish summary and the paths; with
``--json`` it prints the JSON document only. Counts only: no CPR, no pseudonym. Exit code
0, 2 on a configuration error (a bad month, ``--from`` after ``--to``, no network).
``docs/statistics.md`` describes the figures and the suppression.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stafet.cli.common import HomeOpt, JsonOpt, NetworkOpt, echo_json, fail, open_ctx
from stafet.core.errors import StafetError


def statistics(
    from_month: Annotated[str, typer.Option("--from", help="first month, YYYY-MM")],
    to_month: Annotated[str, typer.Option("--to", help="last month, YYYY-MM")],
    as_json: JsonOpt = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="folder for HTML, JSON and CSV (default $STAFET_HOME/reports/statistics-FROM_TO)")]
    = None,
    today: Annotated[str | None, typer.Option("--today", help="judge as of YYYY-MM-DD (default: today)")]
    = None,
    network: NetworkOpt = None,
    home: HomeOpt = None,
) -> None:
    """Statistics per institution and municipality per month (counts under 5 suppressed)."""
    from stafet.reports.statistics import Period, compute_statistics, to_document, write_outputs

    try:
        day = date.fromisoformat(today) if today else None
    except ValueError:
        raise typer.BadParameter("must be a date YYYY-MM-DD", param_hint="--today") from None
    try:
        period = Period.parse(from_month, to_month)
        ctx = open_ctx(network, home)
        stats = compute_statistics(ctx, period, today=day)
        paths = write_outputs(stats, out or ctx.home / "reports" / f"statistics-{period.label()}")
    except StafetError as e:
        fail(e)
    if as_json:
        echo_json(to_document(stats))
        return
    con = Console()
    t = Table(title=f"Statistik {stats.network} {period.first:%Y-%m} – {period.last:%Y-%m}")
    for col in ("tabel", "rækker", "skjulte celler"):
        t.add_column(col)
    for tab in stats.tables:
        t.add_row(escape(tab.title), str(len(tab.rows)), str(tab.suppressed))
    con.print(t)
    if not stats.opsporing_available:
        con.print("Opsporingsliste: ikke tilgængelig endnu.", highlight=False)
    con.print(f"Rapport: {escape(paths['html'])}", highlight=False)
    con.print(f"JSON: {escape(paths['json'])}; {len(paths['csv'])} CSV-filer i samme mappe", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``stafet statistics`` to the CLI."""
    app.command("statistics")(statistics)
