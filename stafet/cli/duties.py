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

from stafet.cli.common import (
    ByOpt,
    CprFlag,
    HomeOpt,
    JsonOpt,
    LimitOpt,
    NetworkOpt,
    YouthOpt,
    YouthReqOpt,
    check_org,
    echo_json,
    print_table,
    youth_of,
)
from stafet.cli.common import day as _day
from stafet.cli.common import fail as _fail
from stafet.cli.common import open_ctx as _ctx
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
            print_table(f"{len(rows)} package(s) for {org} waiting for a person's acknowledgement",
                        ("package", "sender", "imported"),
                        [(r["package_id"], r["sender"], r["imported_at"]) for r in rows])
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
        youth: YouthOpt = None,
        by_cpr: CprFlag = False,
        note: Annotated[
            str, typer.Option("--note", help="a short note (CPR-shaped numbers are masked)")
        ] = "",
        by: ByOpt = "",
        as_json: JsonOpt = False,
        network: NetworkOpt = None,
        home: HomeOpt = None,
    ) -> None:
        """Register a contact with a youth (audited); the duty it meets closes."""
        from stafet.duties.contacts import register_contact

        try:
            ctx = _ctx(network, home)
            check_org(ctx.network, org)
            who = youth_of(ctx, youth, by_cpr)
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
        youth: YouthReqOpt,
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
        cols = ("day", "org", "form", "party", "by", "at")
        print_table(f"{len(rows)} registered contact(s)", cols, [[r[c] for c in cols] for r in rows])

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
        cols = ("day", "step", "rule", "recipient", "addressee", "status", "package_id")
        print_table(f"{len(rows)} notice(s), newest first", [c.removesuffix("_id") for c in cols],
                    [[r[c] for c in cols] for r in rows], no_wrap=("day", "package"))

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
