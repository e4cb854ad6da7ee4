"""The ``stafet`` command line (Typer + Rich).

Heavy imports (Prefect, Great Expectations) happen inside the commands that need
them, so ``stafet --help`` and quick commands start fast.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stafet.cli.common import (
    DEFAULT_LIMIT,
    HandoverStatus,
    JsonOpt,
    LimitOpt,
    SinceOpt,
    StafetGroup,
    check_org,
    echo_json,
    more_line,
    progress,
    setup_verbosity,
)
from stafet.core.errors import StafetError
from stafet.core.models import OrgKind

app = typer.Typer(help="stafet: we do not let go of a young person before someone else has taken over.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=StafetGroup)
outbox_app = typer.Typer(help="The sender's outbox: handovers and their state.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
console = Console(stderr=False)
err = Console(stderr=True)

NetworkOpt = Annotated[str | None, typer.Option("--network", "-n", envvar="STAFET_NETWORK",
                                                help="network.yaml of the network")]
HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="STAFET_HOME",
                                              help="stafet's data folder (default ./.stafet)")]


def _home(home: Path | None) -> Path:
    from stafet.cli.common import home_dir

    return home_dir(home)  # a file where the folder should be: an error naming it, no traceback


def _net(network: str | None) -> str:
    """The network.yaml to use (``--network``, ``$STAFET_NETWORK``, ``./network.yaml``, the demo's)."""
    from stafet.core.config import network_path

    return str(network_path(network))


def _fail(e: StafetError) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(str(e))}", markup=True, highlight=False)
    raise typer.Exit(2)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="stafet's debug lines on stderr (third-party libraries stay at warnings)")]
        = False) -> None:
    setup_verbosity(verbose)


@app.command()
def demo(home: HomeOpt = None,
         demo_dir: Annotated[Path, typer.Option("--demo-dir", help="where the demo network lives")]
         = Path(".stafet-demo")) -> None:
    """Run the whole relay on the demo network: ingest, route, send, receive, receipts."""
    h = _home(home)
    from stafet.core.config import note_network
    from stafet.demo.network import OWN_NODE, member_home, setup_demo

    demo_dir = demo_dir.resolve()
    try:
        network = str(setup_demo(demo_dir, h, bits=int(os.environ.get("STAFET_DEMO_KEY_BITS", "3072"))))
        from stafet.core.vault import load_secret

        load_secret(h, create=True)
        note_network(h, Path(network))  # commands run from here without --network find the demo
        for org in OWN_NODE:
            load_secret(member_home(demo_dir, org), create=True)
            note_network(member_home(demo_dir, org), Path(network))
        from flows.nightly import nightly_sync, receive

        console.print("[bold]1. nightly-sync[/bold]: ingest → route → send → receipts")
        first = nightly_sync(network)
        from stafet.demo.story import answer_inquiries, between_nights, show_between

        console.print("[bold]2. uu-skive's node does not answer[/bold]: resend, notice, escalation")
        show_between(console, between_nights(network, dt.date.today()))
        for org in OWN_NODE:
            console.print(f"[bold]3. {org} runs its own node again[/bold]: stafet receive --org {org}")
            receive(network, org, str(member_home(demo_dir, org)))
        answer_inquiries(network, dt.date.today())  # UU Viborg answers Mercantec's inquiry
        console.print("[bold]4. nightly-sync again[/bold]: collects the receipts; nothing is sent twice")
        second = nightly_sync(network)
    except StafetError as e:
        _fail(e)
    from stafet import night

    counts = night.outbox_counts(network)
    table = Table(title="stafet demo")
    table.add_column("what")
    table.add_column("count / where", overflow="fold")
    table.add_row("source files ingested", str(first["files"] + second["files"]))
    table.add_row("rows accepted / quarantined", f"{first['accepted']} / {first['quarantined']}")
    for status, n in sorted(counts.items()):
        table.add_row(f"handovers {status}", str(n))
    table.add_row("deadlines overdue / due within 7 days",
                  f"{second['deadlines_overdue']} / {second['deadlines_due_soon']}")
    table.add_row("nightly report", second["report"])
    table.add_row("packages (sender's copies)", str(h / "outbox"))
    table.add_row("member inboxes", str(demo_dir / "inbox"))
    table.add_row("network configuration", network)
    console.print(table)
    from stafet.demo.chains import show_chains  # duties reach people: notices, escalation, job centre

    show_chains(console, night.context(network), dt.date.today())
    from stafet.demo.users import show_demo_logins  # the console's accounts, one per role

    show_demo_logins(h, console)
    from stafet.demo.tour import show_tour

    show_tour(console, h, member_home(demo_dir, OWN_NODE[0]))
    waiting = night.unacknowledged(network)
    if waiting:  # a handover is done when its receipt is back: the demo did not finish the relay
        for w in waiting:
            err.print(f"[red]ikke kvitteret:[/red] {w['id']} {w['sender']} → {w['recipient']} "
                      f"({w['status']})", highlight=False)
        err.print("Demoen sendte overleveringer der ikke blev kvitteret. Se `stafet outbox list` og "
                  f"modtagerens indbakke under {demo_dir / 'inbox'}; afvist post ligger i "
                  f"{h / 'rejected'} med årsag. Start forfra med `make clean && make demo`.",
                  highlight=False)
        raise typer.Exit(1)


@app.command()
def send(network: NetworkOpt = None, home: HomeOpt = None,
         to: Annotated[list[str] | None, typer.Option("--to", help="only these recipients (repeatable)")]
         = None,
         as_json: JsonOpt = False) -> None:
    """Route and send pending handovers now."""
    _home(home)
    from stafet import night

    try:
        net = _net(network)
        for org in to or []:
            check_org(night.context(net).network, org, "--to")
        routed = night.route(net, recipients=to or None)  # --to X: only what concerns X is routed
        with progress("send", unit="handovers", show=not as_json) as step:  # quiet when not a TTY
            result = night.send(net, to or night.pending_recipients(net), progress=step)
    except StafetError as e:
        _fail(e)
    if as_json:
        echo_json({"routing": routed, **result})
        return
    console.print(f"routed: {routed.get('planned', 0)} new handover(s), {routed.get('held', 0)} held, "
                  f"{routed.get('existing', 0)} already planned", highlight=False)
    console.print(f"sent: {result['sent']}   held: {result['held']}   retry later: {result['retry_later']}"
                  f"   failed: {result['failed']}", highlight=False)
    for failure in result["errors"]:
        err.print(f"  [red]failed:[/red] {failure}", highlight=False, soft_wrap=True)
    if result["failed"] or result["retry_later"]:
        console.print("next: see `stafet outbox list --status failed`; `stafet outbox retry ID` once the "
                      "cause is fixed", highlight=False)


@app.command()
def receive(org: Annotated[str, typer.Option("--org", help="the organisation that receives")],
            network: NetworkOpt = None, home: HomeOpt = None,
            inbox: Annotated[str | None, typer.Option(help="folder:PATH or sftp://… (default: "
                                                      "the org's endpoint)")] = None,
            as_json: JsonOpt = False) -> None:
    """Decrypt, verify and import waiting packages, and send signed receipts."""
    h = _home(home)
    from stafet.context import open_context
    from stafet.exchange.inbox import process_inbox

    try:
        ctx = open_context(network, home=h)
        check_org(ctx.network, org)
        with progress(f"receive {org}", unit="packages", show=not as_json) as step:  # quiet when not a TTY
            r = process_inbox(ctx, org, location=inbox, progress=step)
    except StafetError as e:
        _fail(e)
    counts = {"imported": r.imported, "receipts_sent": r.receipts_sent, "acknowledged": r.acknowledged,
              "withdrawn": r.withdrawn, "rejected": r.rejected}
    if as_json:
        echo_json(counts)
    else:
        console.print(f"{org}: imported {r.imported}, receipts sent {r.receipts_sent}, acknowledged "
                      f"{r.acknowledged}, withdrawn {r.withdrawn}, rejected {len(r.rejected)}",
                      highlight=False)
        for name, reason in r.rejected.items():
            err.print(f"  [red]rejected:[/red] {name}: {reason}", highlight=False, soft_wrap=True)
        if r.rejected:
            err.print(f"next: the refused packages are in {h / 'rejected'} with their reason",
                      highlight=False, soft_wrap=True)
    if r.rejected:
        raise typer.Exit(1)


@app.command()
def status(network: NetworkOpt = None, home: HomeOpt = None,
           as_json: JsonOpt = False) -> None:
    """One screen: outbox, oldest unacknowledged, quarantine, deadlines, certificates."""
    h = _home(home)
    from stafet.context import open_context
    from stafet.reports.status import collect_status

    try:
        st = collect_status(open_context(network, home=h))
    except StafetError as e:
        _fail(e)
    if as_json:
        echo_json(st)
        return
    t = Table(title=f"stafet — {st['network']}: outbox per sending organisation")
    cols = ["pending", "sent", "acknowledged", "failed", "held", "cancelled"]
    t.add_column("organisation")
    for c in cols:
        t.add_column(c, justify="right")
    for org, counts in st["outbox"].items():
        t.add_row(org, *[str(counts.get(c, 0)) for c in cols])
    console.print(t)
    o = st["oldest_unacknowledged"]
    console.print("oldest unacknowledged: " + (f"{o['id']} {o['sender']} → {o['recipient']} "
                                               f"({o['status']}, {o['age_hours']} h)" if o else "none"))
    console.print(f"quarantine (open rows): {st['quarantine_open']}    "
                  f"deadlines overdue: {st['deadlines_overdue']}")
    console.print("last file received: {file_received}   last package sent: {package_sent}   "
                  "last receipt: {receipt_received}".format(**st["last"]))
    certs = Table(title="certificates (warn under 30 days)")
    for col in ("organisation", "what", "expires", "days left"):
        certs.add_column(col)
    for item in st["certificates"]:
        days = f"[red]{item['days_left']}[/red]" if item["warn"] else str(item["days_left"])
        certs.add_row(item["org"], item["what"], item["valid_to"][:10], days)
    console.print(certs)
    rev = Table(title=f"revocation (CRLs, OCSP; grace {st['crl_grace_hours']:g} h past nextUpdate)")
    for col in ("source", "state", "issuer", "next update", "detail"):
        rev.add_column(col)
    for item in st["revocation"]:
        state = f"[red]{item['state']}: refusing[/red]" if item["refusing"] else (
            f"[yellow]{item['state']}[/yellow]" if item["state"] != "ok" else "ok")
        rev.add_row(item["path"], state, item["issuer"], item["next_update"][:16], item["detail"])
    console.print(rev)


@outbox_app.command("list")
def outbox_list(network: NetworkOpt = None, home: HomeOpt = None,
                status_: Annotated[HandoverStatus | None, typer.Option(
                    "--status", help="only handovers in this state")] = None,
                limit: LimitOpt = DEFAULT_LIMIT, since: SinceOpt = None, as_json: JsonOpt = False) -> None:
    """List handovers (id, recipient, status, attempts, last error), the newest --limit of them."""
    from stafet.cli.common import iso
    from stafet.cli.common import since as parse_since

    h = _home(home)
    from stafet.context import open_context
    from stafet.store import outbox

    after = parse_since(since)
    try:
        ctx = open_context(network, home=h)
    except StafetError as e:
        _fail(e)
    with ctx.store.session() as s:
        rows, total = outbox.listing_page(s, status_, after, limit)
        items: list[dict[str, Any]] = [
                 {"id": r.id, "sender": r.sender, "recipient": r.recipient, "rule": r.rule,
                  "status": r.status, "attempts": r.attempts, "last_error": r.last_error,
                  "created_at": iso(r.created_at), "sent_at": iso(r.sent_at)} for r in rows]
    if as_json:
        echo_json({"format": "stafet.outbox/1", "total": total, "count": len(items), "items": items})
        return
    t = Table(title=f"outbox: {len(items)} of {total} handover(s)")
    for c in ("package", "sender", "recipient", "rule", "status", "attempts", "last error"):
        t.add_column(c, no_wrap=c in ("package", "recipient", "rule", "status"), overflow="fold")
    for i in items:
        t.add_row(i["id"], i["sender"], i["recipient"], i["rule"], i["status"], str(i["attempts"]),
                  i["last_error"][:120])
    console.print(t)
    more_line(len(items), total, console)


@outbox_app.command("retry")
def outbox_retry(handover_id: Annotated[str, typer.Argument(help="the handover's package id")],
                 network: NetworkOpt = None, home: HomeOpt = None) -> None:
    """Re-queue a failed handover after its cause was fixed."""
    h = _home(home)
    from stafet.context import open_context
    from stafet.exchange.outbox import retry_handover

    try:
        new = retry_handover(open_context(network, home=h), handover_id)
    except StafetError as e:
        _fail(e)
    if new == "pending":
        console.print(f"{handover_id} is pending again")
    else:  # the legal basis is gone: nothing is sent
        console.print(f"{handover_id} is {new}: its legal basis no longer holds (see `stafet outbox list`)")


@app.command("run")
def run(what: Annotated[str, typer.Argument(help="nightly | receive | deadlines | nightly-partitioned")],
        network: NetworkOpt = None, home: HomeOpt = None,
        org: Annotated[str | None, typer.Option("--org", help="the receiving organisation (receive)")] = None,
        day: Annotated[str | None, typer.Option(
            "--day", help="re-run a past night: judge by this day, YYYY-MM-DD (nightly, deadlines)")] = None,
        only: Annotated[list[str] | None, typer.Option(
            "--only", help="nightly-partitioned: run only this part, e.g. send:uu-viborg, ingest:easy-a, "
                           "route (repeat for more)")] = None,
        failed: Annotated[bool, typer.Option(
            "--failed", help="nightly-partitioned: re-run what the last night did not complete")] = False,
        no_wait: Annotated[bool, typer.Option(
            "--no-wait", help="nightly-partitioned: return once the server has the run")] = False,
        as_json: JsonOpt = False) -> None:
    """Run a flow locally on an ephemeral Prefect (no server needed).

    ``nightly-partitioned`` is the exception: its partitions are flow runs for the work pool's
    workers, so it is started on the Prefect server PREFECT_API_URL names.
    """
    _home(home)
    if what == "nightly-partitioned":
        _run_partitioned(network, list(only or ()), failed=failed, wait=not no_wait, as_json=as_json)
        return
    if what not in ("nightly", "receive", "deadlines"):
        err.print(f"error: unknown flow {what!r}: run nightly | deadlines | receive --org ORG | "
                  "nightly-partitioned")
        raise typer.Exit(2)
    if only or failed or no_wait:
        err.print("error: --only, --failed and --no-wait are for nightly-partitioned (a night on the server)")
        raise typer.Exit(2)
    if day:
        from stafet.cli.common import day as parse_day

        day = parse_day(day).isoformat()  # a bad date is refused before Prefect starts
    from stafet.core.config import load_network

    net = _net(network)
    try:
        check_org(load_network(net), org)
    except StafetError as e:
        _fail(e)
    from flows import nightly

    result: Any
    from contextlib import nullcontext

    from stafet import night

    status = console.status(f"{what}: starting Prefect…") if console.is_terminal else nullcontext()
    if console.is_terminal:
        done: list[str] = []

        def show(stage: str, detail: str) -> None:
            done.append(stage)
            status.update(f"{what}: {stage} {detail}  ({len(done)} steps)")  # type: ignore[union-attr]

        night.observers.append(show)
    try:
        with status:
            from stafet.ops.ephemeral import bind_temporary_server

            bind_temporary_server()  # a killed run leaves no temporary Prefect server behind
            result = _run_flow(nightly, what, net, org, day)
    except StafetError as e:
        _fail(e)
    finally:
        night.observers.clear()
    if as_json:
        echo_json(result)
        return
    _show_result(what, result)


def _run_partitioned(network: str | None, only: list[str], *, failed: bool, wait: bool,
                     as_json: bool) -> None:
    """``stafet run nightly-partitioned``: start (part of) the night on the server; report its partitions."""
    from flows.partitioned import parse_selection
    from stafet.ops import partitions

    if only and failed:
        err.print("error: give --only or --failed, not both")
        raise typer.Exit(2)
    try:
        parse_selection(only)
    except ValueError as e:
        err.print(f"error: --only: {e}; a part is STAGE or STAGE:KEY,KEY (e.g. send:uu-viborg)")
        raise typer.Exit(2) from None
    try:
        if failed:
            last = partitions.last_failures()
            if not last["failed"]:
                if as_json:
                    echo_json({"rerun": [], "last": last})
                else:
                    console.print(f"Nothing to re-run: every part of the last night ({last['name']}, "
                                  f"{last['state']}) completed.", highlight=False)
                return
            only = last["failed"]
        out = partitions.start(only, network=str(Path(network).resolve()) if network else None, wait=wait)
    except StafetError as e:
        _fail(e)
    if as_json:
        echo_json(out)
    else:
        parts = ", ".join(out["partitions"]) or "the whole night"
        console.print(f"{out['name']} ({out['flow_run']}): {parts}: {out['state']}", highlight=False)
        for row in out.get("table", []):
            figures = ", ".join(f"{k} {v}" for k, v in row.items()
                                if k not in ("partition", "state", "runs") and v)
            console.print(f"  {row['partition']}: {row['state']}" + (f" ({figures})" if figures else ""),
                          highlight=False)
    if out["state"] not in ("COMPLETED", "SCHEDULED"):
        raise typer.Exit(1)


def _show_result(what: str, result: Any) -> None:
    """A flow's result for people: one line per figure, nested ones indented."""
    def lines(value: Any, depth: int) -> None:
        pad = "  " * depth
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, dict | list) and v:
                    console.print(f"{pad}{k}:", highlight=False)
                    lines(v, depth + 1)
                else:
                    console.print(f"{pad}{k}: {v if v not in ({}, []) else '-'}", highlight=False,
                                  soft_wrap=True)
        elif isinstance(value, list):
            for v in value:
                if isinstance(v, dict | list):
                    lines(v, depth + 1)
                else:
                    console.print(f"{pad}- {v}", highlight=False, soft_wrap=True)
        else:
            console.print(f"{pad}{value}", highlight=False, soft_wrap=True)

    console.print(f"[bold]{what}[/bold] done", highlight=False)
    lines(result, 1)


def _run_flow(nightly: Any, what: str, net: str, org: str | None, day: str | None = None) -> Any:
    if what == "deadlines":
        return nightly.deadlines(net, day)
    if what == "nightly":
        return nightly.nightly_sync(net, day)
    if what == "receive" and org:
        return nightly.receive(net, org)
    err.print("run: nightly | deadlines | receive --org ORG")
    raise typer.Exit(2)


network_app = typer.Typer(help="The network: members, validation.", no_args_is_help=True)
app.add_typer(network_app, name="network")


@network_app.command("show")
def network_show(network: NetworkOpt = None, as_json: JsonOpt = False) -> None:
    """Validate network.yaml and list its members."""
    from stafet.core.config import load_network

    try:
        net = load_network(network)
    except StafetError as e:
        _fail(e)
    if as_json:
        echo_json({"format": "stafet.network/1", "network": net.name,
                   "members": [{"id": m.id, "kind": m.kind.value, "name": m.name,
                                "municipality": m.municipality, "endpoint": m.endpoint}
                               for m in net.members.values()]})
        return
    t = Table(title=f"network {net.name}")
    for c in ("id", "kind", "name", "municipality", "endpoint"):
        t.add_column(c)
    for m in net.members.values():
        t.add_row(m.id, m.kind.value, m.name, m.municipality, m.endpoint)
    console.print(t)


@network_app.command("add-member")
def network_add_member(
        org: Annotated[str, typer.Argument(help="organisation id (institutions: 6-digit number)")],
        kind: Annotated[str, typer.Option(help="the member's kind: " + " | ".join(k.value for k in OrgKind))],
        name: Annotated[str, typer.Option(help="the organisation's name")],
        municipality: Annotated[str, typer.Option(help="3-digit municipality number")],
        endpoint: Annotated[str, typer.Option(help="folder:PATH | sftp://user@host/path | smtp://host:port")],
        email: Annotated[str, typer.Option(help="sikker-mail address")],
        certificate: Annotated[Path, typer.Option(help="the member's S/MIME certificate (PEM)")],
        serves: Annotated[list[str] | None, typer.Option(help="municipalities a UU serves")] = None,
        network: NetworkOpt = None, home: HomeOpt = None) -> None:
    """Add a member (validated as a whole), then show what the next run would send it."""
    h = _home(home)
    from stafet.ops.membership import add_member, preview_for

    try:
        path = add_member(network, org=org, kind=kind, name=name, municipality=municipality,
                          endpoint=endpoint, email=email, certificate=certificate, serves=serves or [])
        preview = preview_for(str(path), org, home=h)
    except StafetError as e:
        _fail(e)
    console.print(f"{org} added to {path}")
    if not preview:
        console.print("the next run has nothing for it yet")
    for (rule, st), n in sorted(preview.items()):
        console.print(f"  next run: {n} handover(s) by rule {rule}: {st}")


def _register_optional() -> None:
    """Commands contributed by other modules (ingest, quarantine, keys, …)."""
    import importlib

    for mod in ("stafet.cli.ingest", "stafet.cli.keys", "stafet.cli.consent", "stafet.cli.deadlines",
                "stafet.cli.web", "stafet.cli.youth_register",
                "stafet.cli.statistics", "stafet.cli.duties", "stafet.cli.coordinator",
                "stafet.cli.inquiries", "stafet.cli.report", "stafet.cli.ops"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        m.register(app)


_register_optional()


def main() -> None:
    """Entry point with clean errors."""
    try:
        app()
    except StafetError as e:
        err.print(f"error: {e}")
        sys.exit(2)
