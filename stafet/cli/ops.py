"""``stafet ops notify-setup``: once, tell the Prefect server to mail operations when a night fails.

The logic lives in :mod:`stafet.ops.notify`; this module only reads the options. The server
is the one ``PREFECT_API_URL`` names. The SMTP password, when the relay wants one, is read
from ``$STAFET_OPS_SMTP_PASSWORD`` (never an option: it would stay in the shell's history).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console

from stafet.cli.common import JsonOpt, echo_json, fail
from stafet.core.errors import StafetError

console = Console()


def register(app: typer.Typer) -> None:
    """Add the ``ops`` command group to the CLI."""
    ops_app = typer.Typer(help="Operations: how the Prefect server tells operations about failed runs.",
                          no_args_is_help=True)
    app.add_typer(ops_app, name="ops")

    @ops_app.command("notify-setup")
    def notify_setup(
            smtp_host: Annotated[str, typer.Option("--smtp-host", help="the SMTP relay's host name")],
            to: Annotated[list[str], typer.Option("--to", help="a recipient (repeat for more)")],
            sender: Annotated[str, typer.Option("--from", help="the From address")] = "stafet@localhost",
            smtp_port: Annotated[int, typer.Option("--smtp-port", min=1, max=65535,
                                                   help="the SMTP relay's port")] = 25,
            starttls: Annotated[bool, typer.Option("--starttls",
                                                   help="upgrade to TLS with STARTTLS")] = False,
            smtp_user: Annotated[str | None, typer.Option(
                "--smtp-user",
                help="SMTP AUTH login (needs --starttls; password in $STAFET_OPS_SMTP_PASSWORD)")] = None,
            flow: Annotated[list[str] | None, typer.Option(
                "--flow",
                help="a flow to watch (repeat; default the nightly ones: nightly-sync, nightly-partitioned)")]
            = None,
            test: Annotated[bool, typer.Option("--test",
                                               help="also send a test mail now, from here")] = False,
            as_json: JsonOpt = False) -> None:
        """Save the e-mail block and the automation: a failed or crashed run mails operations."""
        from stafet.ops.notify import send_test, setup_notifications

        if smtp_user and not starttls:
            fail("--smtp-user needs --starttls: the password would cross the network in clear")
        try:
            out = setup_notifications(host=smtp_host, port=smtp_port, sender=sender, to=list(to),
                                      flows=list(flow or ()), starttls=starttls, username=smtp_user,
                                      password=os.environ.get("STAFET_OPS_SMTP_PASSWORD"))
            if test:
                send_test()
                out["test_mail"] = "sent"
        except StafetError as e:
            fail(e)
        if as_json:
            echo_json(out)
            return
        console.print(f"Notifikation gemt: blokken {out['block']} og automationen {out['automation']}.",
                      highlight=False)
        console.print(f"Mislykkede eller nedbrudte kørsler af {', '.join(out['flows'])} mailes til "
                      f"{', '.join(out['to'])}.", highlight=False, soft_wrap=True)
        if test:
            console.print("Prøvebesked sendt.", highlight=False)
