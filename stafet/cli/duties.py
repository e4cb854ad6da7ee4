"""``stafet acknowledge``, ``stafet contact add|list`` and ``stafet notices [send]``: duties reach people.

- ``stafet acknowledge PACKAGE_ID --org X --by NAME``: a person of X acknowledges a package
  received for X (a member with ``acknowledge: person``); ``--file pakke.eml`` for a package
  read in a mail client (verified, not imported: the receipt says ``read``); ``--waiting``
  lists the packages that wait for a person.
- ``stafet contact add --org X --date D --form F [--party P] --by NAME (--youth PSEUDONYM | --cpr)``:
  register a contact that closes a duty (audited). ``--cpr`` reads the CPR from a hidden
  prompt or standard input, never from the command line.
- ``stafet notices``: the notices and escalations sent (``--json``); ``stafet notices send
  [--today D]``: resend overdue packages and send today's notices now (the night does it too).

Exit code 0, 2 on a refusal or configuration error (the message says what to do).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from stafet.cli.common import ByOpt, HomeOpt, JsonOpt, LimitOpt, NetworkOpt, check_org, echo_json
from stafet.cli.common import day as _day
from stafet.cli.common import fail as _fail
from stafet.cli.common import open_ctx as _ctx
from stafet.cli.common import read_cpr as _read_cpr
from stafet.core.errors import StafetError
from stafet.store.contacts import FORMS, PARTIES

Form = Literal[FORMS]  # type: ignore[valid-type]
Party = Literal[PARTIES]  # type: ignore[valid-type]


def acknowledge(
    package_id: Annotated[str | None, typer.Argument(help="the package id (X-Stafet-Package)")] = None,
    org: Annotated[str, typer.Option("--org", help="the receiving organisation (yours)")] = "",
    file: Annotated[
        Path | None, typer.Option("--file", help="a package saved from a mail client (.eml)")
    ] = None,
    waiting: Annotated[bool, typer.Option("--waiting", help="list packages waiting for a person")] = False,
    by: ByOpt = "",
    as_json: JsonOpt = False,
    network: NetworkOpt = None,
    home: HomeOpt = None,
) -> None:
    """Acknowledge a received package: its signed receipt tells the sender someone has taken over."""
    from stafet.exchange.acknowledge import acknowledge_file, acknowledge_package, awaiting

    if not org:
        raise typer.BadParameter("--org is required (the organisation that received the package)")
    try:
        ctx = _ctx(network, home)
        check_org(ctx.network, org)
        if waiting:
            rows = awaiting(ctx, org)
            if as_json:
                echo_json({"format": "stafet.awaiting/1", "org": org, "packages": rows})
                return
            t = Table(title=f"{len(rows)} package(s) for {org} waiting for a person's acknowledgement")
            for col in ("package", "sender", "imported"):
                t.add_column(col, no_wrap=True)
            for r in rows:
                t.add_row(r["package_id"], r["sender"], r["imported_at"])
            Console().print(t)
            return
        if file is not None:
            done = acknowledge_file(ctx, org=org, path=file, by=by)
        elif package_id:
            done = acknowledge_package(ctx, org=org, package_id=package_id, by=by)
        else:
            raise typer.BadParameter("give a PACKAGE_ID, --file pakke.eml or --waiting")
    except StafetError as e:
        _fail(e)
    out = {"package_id": done.package_id, "sender": done.sender, "disposition": done.disposition}
    if as_json:
        echo_json(out)
    else:
        typer.echo(
            f"package {done.package_id} acknowledged ({done.disposition}); the receipt went to {done.sender}"
        )


def register(app: typer.Typer) -> None:
    """Add ``acknowledge``, ``contact`` and ``notices`` to the CLI."""
    app.command("acknowledge")(acknowledge)
    contact = typer.Typer(
        help="Contacts with a youth registered by a person: they close duties.", no_args_is_help=True
    )
    app.add_typer(contact, name="contact")
    notices = typer.Typer(help="Duty notices and escalations to named people.", invoke_without_command=True)
    app.add_typer(notices, name="notices")

    @contact.command("add")
    def contact_add(
        org: Annotated[str, typer.Option("--org", help="the organisation that had the contact")],
        day: Annotated[str, typer.Option("--date", help="the day of the contact, YYYY-MM-DD")],
        form: Annotated[Form, typer.Option("--form", help="how the contact was made")] = "samtale",
        party: Annotated[Party, typer.Option("--party", help="with whom")] = "youth",
        youth: Annotated[str | None, typer.Option("--youth", help="the youth's pseudonym")] = None,
        by_cpr: Annotated[
            bool, typer.Option("--cpr", help="ask for the CPR (hidden prompt or stdin)")
        ] = False,
        note: Annotated[
            str, typer.Option("--note", help="a short note (CPR-shaped numbers are masked)")
        ] = "",
        by: ByOpt = "",
        as_json: JsonOpt = False,
        network: NetworkOpt = None,
        home: HomeOpt = None,
    ) -> None:
        """Register a contact with a youth (audited); the duty it meets closes."""
        from stafet.duties.contacts import pseudonym_of_cpr, register_contact

        try:
            ctx = _ctx(network, home)
            check_org(ctx.network, org)
            if by_cpr == bool(youth):
                raise typer.BadParameter("give either --youth PSEUDONYM or --cpr")
            who = pseudonym_of_cpr(ctx, _read_cpr()) if by_cpr else str(youth)
            done = register_contact(
                ctx, youth=who, day=_day(day), form=form, party=party, note=note, by=by, org=org
            )
        except StafetError as e:
            _fail(e)
        if as_json:
            echo_json(done)
        else:
            typer.echo(
                f"contact {done['id']} registered: {done['org']} {done['day']} {done['form']} "
                f"with {done['party']} (youth {done['youth']}), by {done['by']}"
            )

    @contact.command("list")
    def contact_list(
        youth: Annotated[str, typer.Option("--youth", help="the youth's pseudonym")],
        as_json: JsonOpt = False,
        network: NetworkOpt = None,
        home: HomeOpt = None,
    ) -> None:
        """A youth's registered contacts, oldest first."""
        from stafet.store import contacts

        try:
            ctx = _ctx(network, home)
            with ctx.store.session() as s:
                rows: list[dict[str, str]] = [
                    {
                        "id": str(c.id),
                        "org": c.org,
                        "day": c.day.isoformat(),
                        "form": c.form,
                        "party": c.party,
                        "by": c.by,
                        "at": c.at.replace(tzinfo=dt.UTC).isoformat(),  # naive in the store: UTC
                    }
                    for c in contacts.of_youth(s, youth)
                ]
        except StafetError as e:
            _fail(e)
        if as_json:
            echo_json({"format": "stafet.contacts/1", "youth": youth, "contacts": rows})
            return
        t = Table(title=f"{len(rows)} registered contact(s)")
        for col in ("day", "org", "form", "party", "by", "at"):
            t.add_column(col, no_wrap=True)
        for r in rows:
            t.add_row(r["day"], r["org"], r["form"], r["party"], r["by"], r["at"])
        Console().print(t)

    @notices.callback()
    def notices_list(
        ctx_: typer.Context,
        org: Annotated[
            str | None, typer.Option("--org", help="only notices sent to this organisation")
        ] = None,
        limit: LimitOpt = 50,
        as_json: JsonOpt = False,
        network: NetworkOpt = None,
        home: HomeOpt = None,
    ) -> None:
        """The latest notices and escalations (no CPR: the youth by pseudonym)."""
        if ctx_.invoked_subcommand is not None:
            return
        from stafet.exchange.notices import notice_listing

        try:
            ctx = _ctx(network, home)
            check_org(ctx.network, org)
            rows = notice_listing(ctx, recipient=org, limit=limit)
        except StafetError as e:
            _fail(e)
        if as_json:
            echo_json({"format": "stafet.notices/1", "notices": rows})
            return
        t = Table(title=f"{len(rows)} notice(s), newest first")
        for col in ("day", "step", "rule", "recipient", "addressee", "status", "package"):
            t.add_column(col, no_wrap=col in ("day", "package"), overflow="fold")
        for r in rows:
            t.add_row(
                r["day"], r["step"], r["rule"], r["recipient"], r["addressee"], r["status"], r["package_id"]
            )
        Console().print(t)

    @notices.command("send")
    def notices_send(
        today: Annotated[
            str | None, typer.Option("--today", help="judge as of YYYY-MM-DD (default: today)")
        ] = None,
        as_json: JsonOpt = False,
        network: NetworkOpt = None,
        home: HomeOpt = None,
    ) -> None:
        """Resend overdue packages and send today's notices and escalations now (the night does it too)."""
        from stafet.duties.deadlines import duty_settings
        from stafet.exchange.notices import send_notices
        from stafet.exchange.outbox import resend_unacknowledged

        try:
            ctx = _ctx(network, home)
            resent = resend_unacknowledged(ctx, max_resends=duty_settings().resend_attempts)
            told = send_notices(ctx, _day(today))
        except StafetError as e:
            _fail(e)
        out = {"resent": resent["resent"], **told}
        if as_json:
            echo_json(out)
        else:
            typer.echo(", ".join(f"{k}: {v}" for k, v in out.items()))
