"""``stafet coordinator-list`` and ``stafet tovholder set|show``: the coordinator's commands.

- ``stafet coordinator-list [--json] [--today D]``: dropouts of youths aged 25–29 that no job
  centre takes (no active education order, no interview), listed for the network's
  coordinator (:mod:`stafet.duties.coordinator`). The youth by pseudonym and masked CPR.
  JSON format ``stafet.coordinator_list/1`` (``docs/deadlines.md``).
- ``stafet tovholder set --org O --name NAME [--email E] [--since D] --by WHO (--youth P | --cpr)``:
  set the youth's one tovholder (a record of source ``person``, audited); ``--cpr`` reads the
  CPR from a hidden prompt or standard input, never from the command line.
  ``stafet tovholder show --youth P``: the youth's tovholder.

Exit code 0, 2 on a refusal or configuration error (the message says what to do).
"""

from __future__ import annotations

from typing import Annotated

import typer

from stafet.cli.common import (
    ByOpt,
    CprFlag,
    HomeOpt,
    JsonOpt,
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

TodayOpt = Annotated[str | None, typer.Option("--today", help="judge as of YYYY-MM-DD (default: today)")]


def coordinator_list(as_json: JsonOpt = False, today: TodayOpt = None, network: NetworkOpt = None,
                     home: HomeOpt = None) -> None:
    """Dropouts at 25–29 that no job centre knows: the coordinator's list."""
    from stafet.duties.coordinator import compute_coordinator_list, to_document

    day = _day(today)
    try:
        ctx = _ctx(network, home)
        items = compute_coordinator_list(ctx, day)
    except StafetError as e:
        _fail(e)
    doc = to_document(items, network=ctx.network.name, today=day)
    if as_json:
        echo_json(doc)
        return
    print_table(f"{len(items)} afbrud (25–29 år) uden jobcenter pr. {day.isoformat()}: til tovholderen",
                ("afbrudsdato", "institution", "kommune", "alder", "ung", "CPR", "årsag"),
                [(i.dropout_date.isoformat(), i.institution, i.municipality, i.age, i.youth, i.masked_cpr,
                  i.reason) for i in items], no_wrap=("afbrudsdato", "CPR"))


def register(app: typer.Typer) -> None:
    """Add ``coordinator-list`` and the ``tovholder`` group to the CLI."""
    app.command("coordinator-list")(coordinator_list)
    tovholder = typer.Typer(help="The youth's one coordinator (tovholder), set by a person.",
                            no_args_is_help=True)
    app.add_typer(tovholder, name="tovholder")

    @tovholder.command("set")
    def tovholder_set(
        org: Annotated[str, typer.Option("--org", help="the tovholder's organisation (network.yaml id)")],
        name: Annotated[str, typer.Option("--name", help="the tovholder's name")],
        email: Annotated[str, typer.Option("--email", help="the tovholder's e-mail")] = "",
        since: Annotated[str | None, typer.Option("--since", help="from YYYY-MM-DD (default: today)")] = None,
        youth: YouthOpt = None,
        by_cpr: CprFlag = False,
        by: ByOpt = "",
        as_json: JsonOpt = False,
        network: NetworkOpt = None,
        home: HomeOpt = None,
    ) -> None:
        """Set the youth's tovholder (replaces the one before; audited)."""
        from stafet.duties.coordinator import set_tovholder

        try:
            ctx = _ctx(network, home)
            check_org(ctx.network, org)
            who = youth_of(ctx, youth, by_cpr)
            done = set_tovholder(ctx, youth=who, org=org, name=name, email=email, by=by,
                                 since=_day(since))
        except StafetError as e:
            _fail(e)
        if as_json:
            echo_json(done)
        else:
            typer.echo(f"tovholder for {done['youth']}: {done['name']} ({done['org']}) fra {done['since']}, "
                       f"sat af {done['by']} ({done['status']})")

    @tovholder.command("show")
    def tovholder_show(
        youth: YouthReqOpt,
        as_json: JsonOpt = False,
        network: NetworkOpt = None,
        home: HomeOpt = None,
    ) -> None:
        """The youth's tovholder, if one is set."""
        from stafet.duties.coordinator import tovholder_of

        try:
            ctx = _ctx(network, home)
            with ctx.store.session() as s:
                found = tovholder_of(s, youth)
        except StafetError as e:
            _fail(e)
        if as_json:
            echo_json({"format": "stafet.tovholder/1", "youth": youth, "tovholder": found})
        elif found is None:
            typer.echo(f"ingen tovholder for {youth}")
        else:
            typer.echo(f"tovholder for {youth}: {found['name']} ({found['org']}) fra {found['since']}, "
                       f"sat af {found['set_by']}")


__all__ = ["coordinator_list", "register"]
