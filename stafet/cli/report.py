"""``stafet report ingest FILE…``: a steward's validation report, rewritten from the store.

FILE is what identifies an ingest in the store: a received file's sha256 (or 6+ of its
first hex digits) or its file name. The report shows the file's counts as ingested and
its quarantined rows as they stand now (open, released, rejected).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from stafet.cli.common import HomeOpt, JsonOpt, NetworkOpt, echo_json, fail, open_ctx
from stafet.core.errors import StafetError

console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``report`` command group to the CLI."""
    report_app = typer.Typer(help="Reports rewritten from the store.", no_args_is_help=True)
    app.add_typer(report_app, name="report")

    @report_app.command("ingest")
    def report_ingest(files: Annotated[list[str], typer.Argument(
                          metavar="FILE...", help="a received file's sha256 (or its first 6+ hex digits) "
                                                  "or its file name")],
                      as_json: JsonOpt = False,
                      network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Rewrite the steward's validation report of ingested files: rows as they stand now."""
        from stafet.reports.validation import regenerate

        try:
            ctx = open_ctx(network, home)
            paths = [str(p) for key in files for p in regenerate(ctx.store, key, home=ctx.home)]
        except StafetError as e:
            fail(e)
        if as_json:
            echo_json({"reports": paths})
            return
        for p in paths:
            console.print(f"rapport: {p}", highlight=False, soft_wrap=True)
