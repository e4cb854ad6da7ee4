"""The ``stafet`` command line (Typer + Rich).

Heavy imports (Prefect, Great Expectations) happen inside the commands that need
them, so ``stafet --help`` and quick commands start fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stafet.core.errors import StafetError

app = typer.Typer(help="stafet: we do not let go of a young person before someone else has taken over.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
outbox_app = typer.Typer(help="The sender's outbox: handovers and their state.", no_args_is_help=True)
app.add_typer(outbox_app, name="outbox")
console = Console(stderr=False)
err = Console(stderr=True)

NetworkOpt = Annotated[str | None, typer.Option("--network", "-n", envvar="STAFET_NETWORK",
                                                help="network.yaml of the network")]
HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="STAFET_HOME",
                                              help="stafet's data folder (default ./.stafet)")]


def _home(home: Path | None) -> Path:
    from stafet.core.config import stafet_home

    h = (home or stafet_home()).resolve()
    os.environ["STAFET_HOME"] = str(h)
    from stafet.context import prepare_environment

    prepare_environment(h)
    return h


def _fail(e: StafetError) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(str(e))}", markup=True, highlight=False)
    raise typer.Exit(2)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    import logging

    from stafet.core.logs import setup_logging

    setup_logging(logging.DEBUG if verbose else logging.WARNING)


@app.command()
def demo(home: HomeOpt = None,
         demo_dir: Annotated[Path, typer.Option("--demo-dir", help="where the demo network lives")]
         = Path(".stafet-demo")) -> None:
    """Run the whole relay on the demo network: ingest, route, send, receive, receipts."""
    h = _home(home)
    from stafet.demo.network import OWN_NODE, member_home, setup_demo

    demo_dir = demo_dir.resolve()
    try:
        network = str(setup_demo(demo_dir, h, bits=int(os.environ.get("STAFET_DEMO_KEY_BITS", "3072"))))
        from stafet.core.vault import load_secret

        load_secret(h, create=True)
        for org in OWN_NODE:
            load_secret(member_home(demo_dir, org), create=True)
        from flows.nightly import nightly_sync, receive

        console.print("[bold]1. nightly-sync[/bold]: ingest → route → send → receipts")
        first = nightly_sync(network)
        for org in OWN_NODE:
            console.print(f"[bold]2. {org} runs its own node[/bold]: stafet receive --org {org}")
            receive(network, org, str(member_home(demo_dir, org)))
        console.print("[bold]3. nightly-sync again[/bold]: collects the receipts; nothing is sent twice")
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
    from stafet.demo.users import show_demo_logins  # the console's accounts, one per role

    show_demo_logins(h, console)


@app.command()
def send(network: NetworkOpt = None, home: HomeOpt = None,
         to: Annotated[list[str] | None, typer.Option("--to", help="only these recipients")] = None) -> None:
    """Route and send pending handovers now."""
    _home(home)
    from stafet import night

    try:
        routed = night.route(network or "network.yaml")
        net = network or "network.yaml"
        result = night.send(net, to or night.pending_recipients(net))
    except StafetError as e:
        _fail(e)
    console.print_json(json.dumps({"routing": routed, **result}))


@app.command()
def receive(org: Annotated[str, typer.Option("--org", help="the organisation that receives")],
            network: NetworkOpt = None, home: HomeOpt = None,
            inbox: Annotated[str | None, typer.Option(help="folder:PATH or sftp://… (default: "
                                                      "the org's endpoint)")] = None) -> None:
    """Decrypt, verify and import waiting packages, and send signed receipts."""
    h = _home(home)
    from stafet.context import open_context
    from stafet.exchange.inbox import process_inbox

    try:
        ctx = open_context(network, home=h)
        r = process_inbox(ctx, org, location=inbox)
    except StafetError as e:
        _fail(e)
    console.print_json(json.dumps({"imported": r.imported, "receipts_sent": r.receipts_sent,
                                   "acknowledged": r.acknowledged, "withdrawn": r.withdrawn,
                                   "rejected": r.rejected}))
    if r.rejected:
        raise typer.Exit(1)


@app.command()
def status(network: NetworkOpt = None, home: HomeOpt = None,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One screen: outbox, oldest unacknowledged, quarantine, deadlines, certificates."""
    h = _home(home)
    from stafet.context import open_context
    from stafet.reports.status import collect_status

    try:
        st = collect_status(open_context(network, home=h))
    except StafetError as e:
        _fail(e)
    if as_json:
        console.print_json(json.dumps(st))
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
        certs.add_row(item["org"], item["what"], item["expires"], days)
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
                status_: Annotated[str | None, typer.Option("--status")] = None) -> None:
    """List handovers (id, recipient, status, attempts, last error)."""
    h = _home(home)
    from stafet.context import open_context
    from stafet.store import outbox

    try:
        ctx = open_context(network, home=h)
    except StafetError as e:
        _fail(e)
    t = Table()
    for c in ("package", "sender", "recipient", "rule", "status", "attempts", "last error"):
        t.add_column(c, overflow="fold")
    with ctx.store.session() as s:
        for row in outbox.listing(s, status_):
            t.add_row(row.id, row.sender, row.recipient, row.rule, row.status, str(row.attempts),
                      row.last_error[:120])
    console.print(t)


@outbox_app.command("retry")
def outbox_retry(handover_id: str, network: NetworkOpt = None, home: HomeOpt = None) -> None:
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
def run(what: Annotated[str, typer.Argument(help="nightly | receive | deadlines")],
        network: NetworkOpt = None, home: HomeOpt = None,
        org: Annotated[str | None, typer.Option("--org")] = None) -> None:
    """Run a flow locally on an ephemeral Prefect (no server needed)."""
    _home(home)
    from flows import nightly

    net = network or "network.yaml"
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
            result = _run_flow(nightly, what, net, org)
    except StafetError as e:
        _fail(e)
    finally:
        night.observers.clear()
    console.print_json(json.dumps(result, default=str))


def _run_flow(nightly: Any, what: str, net: str, org: str | None) -> Any:
    if what == "deadlines":
        return nightly.deadlines(net)
    if what == "nightly":
        return nightly.nightly_sync(net)
    if what == "receive" and org:
        return nightly.receive(net, org)
    err.print("run: nightly | deadlines | receive --org ORG")
    raise typer.Exit(2)


network_app = typer.Typer(help="The network: members, validation.", no_args_is_help=True)
app.add_typer(network_app, name="network")


@network_app.command("show")
def network_show(network: NetworkOpt = None) -> None:
    """Validate network.yaml and list its members."""
    from stafet.core.config import load_network

    try:
        net = load_network(network)
    except StafetError as e:
        _fail(e)
    t = Table(title=f"network {net.name}")
    for c in ("id", "kind", "name", "municipality", "endpoint"):
        t.add_column(c)
    for m in net.members.values():
        t.add_row(m.id, m.kind.value, m.name, m.municipality, m.endpoint)
    console.print(t)


@network_app.command("add-member")
def network_add_member(
        org: Annotated[str, typer.Argument(help="organisation id (institutions: 6-digit number)")],
        kind: Annotated[str, typer.Option(help="guidance|institution|primary_school|job_centre|"
                                               "family_services|social_services")],
        name: Annotated[str, typer.Option()],
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
                "stafet.cli.statistics", "stafet.cli.duties"):
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
