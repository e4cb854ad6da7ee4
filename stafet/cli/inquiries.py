"""``stafet inquiry`` (send, list, answer) and ``stafet moves``: inquiries to UU, youths who move.

``stafet inquiry send --from ORG --to UU --cpr --question TEXT``: the CPR is asked for
with a hidden prompt, or read from the first line of standard input when that is not a
terminal; it is never an argument. ``stafet inquiry list [--org ORG] [--json]``: the
inquiries a node holds (sent and received), without CPRs. ``stafet inquiry answer ID --by
NAME [--org UU]``: the UU answers a received inquiry, to its sender only, with what the
rules allow today ("intet grundlag" when nothing may be told).

``stafet moves [--org UU] [--outside] [--json] [--today]``: the moves whose handover the new
UU has not acknowledged yet (the old UU keeps the youth until then), or, ``--outside``,
the youths who moved to a municipality outside the network or to an unknown place (for the
coordinator). Exit code 0, 2 on an error.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stafet.cli.common import CprFlag, HomeOpt, JsonOpt, NetworkOpt, check_org, echo_json, iso
from stafet.cli.common import day as _day
from stafet.cli.common import fail as _fail
from stafet.cli.common import open_ctx as _ctx
from stafet.cli.common import read_cpr as _read_cpr
from stafet.core.errors import StafetError

STATUS_DA = {"sent": "sendt", "open": "åben", "answered": "besvaret", "refused": "afvist"}
OUTCOME_DA = {"answered": "besvaret", "no_basis": "intet grundlag", "": ""}


inquiry_app = typer.Typer(help="Forespørgsler til UU om en ung, og UU's svar.", no_args_is_help=True)


@inquiry_app.command("send")
def send(asker: Annotated[str, typer.Option("--from", help="the asking member")],
         guidance: Annotated[str, typer.Option("--to", help="the UU asked")],
         question: Annotated[str, typer.Option("--question", help="the question (free text)")],
         by_cpr: CprFlag = False,
         network: NetworkOpt = None, home: HomeOpt = None) -> None:
    """Send a signed, encrypted inquiry about one youth to a UU."""
    from stafet.core.cpr import parse_cpr
    from stafet.exchange.inquiries import send_inquiry

    if not by_cpr:
        raise typer.BadParameter("--cpr is required: the CPR is read from a hidden prompt or stdin",
                                 param_hint="--cpr")
    try:
        cpr = parse_cpr(_read_cpr())
        ctx = _ctx(network, home)
        check_org(ctx.network, asker, "--from")
        check_org(ctx.network, guidance, "--to")
        pid = send_inquiry(ctx, asker, guidance, cpr, question)
    except StafetError as e:
        _fail(e)
    typer.echo(f"forespørgsel {pid} sendt fra {asker} til {guidance} om {cpr.masked}")


@inquiry_app.command("list")
def list_(org: Annotated[str | None, typer.Option("--org", help="only this member's inquiries")] = None,
          as_json: JsonOpt = False,
          network: NetworkOpt = None, home: HomeOpt = None) -> None:
    """The inquiries this node holds: sent and received, newest first (no CPRs)."""
    from stafet.store import inquiries

    try:
        ctx = _ctx(network, home)
        check_org(ctx.network, org)
        with ctx.store.session() as s:
            rows: list[dict[str, Any]] = [
                    {"id": r.package_id, "org": r.org, "direction": r.direction, "asker": r.asker,
                     "guidance": r.guidance, "youth": r.youth,
                     "masked_cpr": ctx.store.cpr_of(s, r.youth).masked, "question": r.question,
                     "status": r.status, "created": iso(r.created_at),
                     "receipt": r.acknowledged_at is not None, "answer_id": r.answer_id,
                     "outcome": r.answer_outcome, "basis": r.answer_basis, "records": r.answer_records,
                     "answered_by": r.answered_by,
                     "answer_receipt": r.answer_acknowledged_at is not None}
                    for r in inquiries.listing(s, org)]
    except StafetError as e:
        _fail(e)
    if as_json:
        echo_json({"format": "stafet.inquiries/1", "org": org, "count": len(rows), "items": rows})
        return
    t = Table(title=f"forespørgsler: {len(rows)}")
    for col in ("id", "retning", "fra", "til", "CPR", "spørgsmål", "status", "svar"):
        t.add_column(col, no_wrap=col == "id", overflow="fold")
    for r in rows:
        t.add_row(r["id"], "sendt" if r["direction"] == "out" else "modtaget", r["asker"], r["guidance"],
                  r["masked_cpr"], r["question"], STATUS_DA.get(r["status"], r["status"]),
                  OUTCOME_DA.get(r["outcome"], r["outcome"]) + (f" ({r['records']} oplysninger)"
                                                                if r["outcome"] == "answered" else ""))
    Console().print(t)


@inquiry_app.command("answer")
def answer(inquiry_id: Annotated[str, typer.Argument(help="the inquiry's id")],
           by: Annotated[str, typer.Option("--by", help="the name of the person who answers")],
           org: Annotated[str | None, typer.Option("--org", help="the UU that answers")] = None,
           today: Annotated[str | None, typer.Option("--today", help="judge the basis as of YYYY-MM-DD")]
           = None,
           network: NetworkOpt = None, home: HomeOpt = None) -> None:
    """Answer a received inquiry, to its sender, with what the basis allows."""
    from stafet.exchange.inquiries import answer_inquiry

    try:
        ctx = _ctx(network, home)
        done = answer_inquiry(ctx, inquiry_id, by=by, org=org, today=_day(today))
    except StafetError as e:
        _fail(e)
    if done.outcome == "no_basis":
        typer.echo(f"svar {done.answer_id} sendt til {done.to}: intet grundlag ({done.reason})")
    else:
        typer.echo(f"svar {done.answer_id} sendt til {done.to}: {done.records} oplysninger "
                   f"(grundlag: {done.legal_basis})")


def moves(org: Annotated[str | None, typer.Option("--org", help="only this UU's moves")] = None,
          outside: Annotated[bool, typer.Option("--outside", help="moved outside the network (coordinator)")]
          = False,
          as_json: JsonOpt = False,
          today: Annotated[str | None, typer.Option("--today", help="judge as of YYYY-MM-DD")] = None,
          network: NetworkOpt = None, home: HomeOpt = None) -> None:
    """Youths who moved: handovers not acknowledged yet, or (--outside) moves out of the network."""
    from stafet.duties.moves import moved_outside, unacknowledged_moves

    day = _day(today)
    try:
        ctx = _ctx(network, home)
        check_org(ctx.network, org)
        if outside:
            items = [m.as_json() for m in moved_outside(ctx, day, org)]
        else:
            with ctx.store.session() as s:
                items = [{"rule": d.rule, "youth": d.youth, "masked_cpr": ctx.store.cpr_of(s, d.youth).masked,
                          "responsible": d.responsible, "due": d.due.isoformat(), "reference": d.reference}
                         for d in unacknowledged_moves(ctx, day, org)]
    except StafetError as e:
        _fail(e)
    if as_json:
        echo_json({"format": "stafet.moves/1", "today": day.isoformat(), "org": org,
                   "outside": outside, "count": len(items), "items": items})
        return
    if outside:
        t = Table(title=f"Elever, der bor uden for kommunen? Fraflyttet til kommuner uden for netværket pr. "
                  f"{day.isoformat()}: {len(items)}")
        for col in ("UU", "CPR", "fra", "til", "dato"):
            t.add_column(col)
        for i in items:
            t.add_row(str(i["old_uu"]), i["masked_cpr"], i["from"], i["to"] or "ukendt / udlandet", i["day"])
    else:
        t = Table(title=f"flyttede unge, hvis overlevering ikke er kvitteret pr. {day.isoformat()}: "
                  f"{len(items)}")
        for col in ("ansvarlig UU", "CPR", "flyttet", "status"):
            t.add_column(col, overflow="fold")
        for i in items:
            t.add_row(i["responsible"], i["masked_cpr"], i["due"], i["reference"])
    Console().print(t)


def register(app: typer.Typer) -> None:
    """Add ``stafet inquiry`` and ``stafet moves`` to the CLI."""
    app.add_typer(inquiry_app, name="inquiry")
    app.command("moves")(moves)
