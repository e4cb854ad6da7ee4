"""``stafet consent add|withdraw|list|show`` and ``stafet youth show``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stafet.core.errors import ConfigError, StafetError

console = Console()


def _ctx(network: str | None, home: Path | None):  # type: ignore[no-untyped-def]
    from stafet.context import open_context, prepare_environment
    from stafet.core.config import stafet_home

    h = (home or stafet_home()).resolve()
    prepare_environment(h)
    return open_context(network, home=h)


def _read_cpr() -> str:
    """A CPR from a hidden prompt on a terminal, else the first line of standard input."""
    import sys

    if sys.stdin is not None and not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    return str(typer.prompt("CPR", hide_input=True))


NetworkOpt = Annotated[str | None, typer.Option("--network", "-n", envvar="STAFET_NETWORK")]
HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="STAFET_HOME")]


def register(app: typer.Typer) -> None:
    """Add the ``consent`` and ``youth`` command groups to the CLI."""
    consent = typer.Typer(help="Consents: who may be told what, until when.", no_args_is_help=True)
    youth = typer.Typer(help="A youth's timeline (CPR shown only here).", no_args_is_help=True)
    app.add_typer(consent, name="consent")
    app.add_typer(youth, name="youth")

    @consent.command("add")
    def add(ref: Annotated[str, typer.Option(help="the consent's reference")],
            signed_by: Annotated[str, typer.Option(help="ung | foraelder | vaerge")],
            signed: Annotated[str, typer.Option(help="signing date YYYY-MM-DD")],
            valid_to: Annotated[str, typer.Option("--to", help="last valid day (required)")],
            recipients: Annotated[str, typer.Option(help="org ids or kinds, separated by |")],
            scopes: Annotated[str, typer.Option(help="record kinds covered, separated by |")],
            valid_from: Annotated[str | None, typer.Option("--from")] = None,
            signer_name: Annotated[str, typer.Option()] = "",
            situation: Annotated[str, typer.Option()] = "",
            cpr: Annotated[str | None, typer.Option(hidden=True, help="refused: see the command's help")]
            = None,
            actor: Annotated[str, typer.Option(envvar="USER")] = "operator",
            network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Record a signed consent (the paper form, typed in).

        The youth's CPR is asked for with a hidden prompt, or read from the first line of
        standard input when that is not a terminal (``stafet consent add … < cpr.txt``);
        never from the command line, where shell history and the process list keep it.
        """
        from stafet.core.cpr import parse_cpr
        from stafet.core.models import Consent
        from stafet.duties.consent import SCOPES, SIGNERS, validity
        from stafet.store import consents

        if cpr is not None:
            console.print("[red]error:[/red] --cpr is refused: a CPR on the command line stays in the "
                          "shell's history and the process list. Leave it out and type it at the hidden "
                          "prompt, or pipe it on standard input (stafet consent add … < file)")
            raise typer.Exit(2)
        try:
            the_cpr = parse_cpr(_read_cpr())
            bad = [s for s in scopes.split("|") if s not in SCOPES]
            if signed_by not in SIGNERS or bad:
                raise ConfigError(f"signed-by must be one of {SIGNERS}; unknown scopes: {bad}")
            c = Consent(cpr=the_cpr, ref=ref, signed_by=signed_by, signer_name=signer_name,
                        signed_date=dt.date.fromisoformat(signed),
                        valid_from=dt.date.fromisoformat(valid_from or signed),
                        valid_to=dt.date.fromisoformat(valid_to),
                        recipients=tuple(recipients.split("|")), scopes=tuple(scopes.split("|")),
                        situation=situation)
            ctx = _ctx(network, home)
            with ctx.store.session() as s:
                if consents.get(s, ref) is not None:
                    raise ConfigError(f"consent {ref} exists already")
                youth_id = ctx.store.ensure_youths(s, [the_cpr])[the_cpr.digits]
                consents.add(s, ref, youth_id, c.payload())
                ctx.store.audit(s, actor, "consent.added", f"consent:{ref}", {"youth": youth_id})
            why = validity(c.payload(), the_cpr.birth_date)
        except (StafetError, ValueError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        console.print(f"consent {ref} recorded" + (f" — [red]invalid: {why}[/red]" if why else ""))

    @consent.command("withdraw")
    def withdraw(ref: str, on: Annotated[str | None, typer.Option(help="date, default today")] = None,
                 actor: Annotated[str, typer.Option(envvar="USER")] = "operator",
                 network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Withdraw a consent: stop unsent handovers now, notify those who received data."""
        from stafet.exchange.withdrawals import withdraw_consent

        try:
            counts = withdraw_consent(_ctx(network, home), ref,
                                      dt.date.fromisoformat(on) if on else dt.date.today(), actor=actor)
        except (StafetError, ValueError) as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(2) from None
        console.print(f"{ref} withdrawn: {counts['cancelled']} unsent handover(s) stopped, "
                      f"{counts['notices']} withdrawal notice(s) queued")

    @consent.command("list")
    def list_(network: NetworkOpt = None, home: HomeOpt = None,
              as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """All consents with their computed status today."""
        from stafet.duties.consent import validity
        from stafet.store import consents

        ctx = _ctx(network, home)
        today = dt.date.today()
        rows = []
        with ctx.store.session() as s:
            for c, born in consents.with_birth_dates(s):
                p = c.payload
                why = validity(p, born)
                if not why and c.withdrawn_date and c.withdrawn_date <= today:
                    why = f"tilbagekaldt {c.withdrawn_date}"
                elif not why and today > dt.date.fromisoformat(p["valid_to"]):
                    why = f"udløbet {p['valid_to']}"
                elif not why and today < dt.date.fromisoformat(p["valid_from"]):
                    why = f"ikke gyldigt endnu (fra {p['valid_from']})"
                rows.append({"ref": c.ref, "youth": c.youth, "signed_by": p["signed_by"],
                             "valid": f"{p['valid_from']}..{p['valid_to']}",
                             "recipients": p.get("recipients", []), "scopes": p.get("scopes", []),
                             "status": why or "gyldigt"})
        if as_json:
            console.print_json(json.dumps(rows))
            return
        t = Table(title="consents")
        for col in ("ref", "youth", "signed_by", "valid", "recipients", "scopes", "status"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(*[", ".join(v) if isinstance(v, list) else str(v) for v in r.values()])
        console.print(t)

    @consent.command("show")
    def show(ref: str, network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """One consent, and the handovers made under it."""
        from stafet.store import consents, outbox

        ctx = _ctx(network, home)
        with ctx.store.session() as s:
            c = consents.get(s, ref)
            if c is None:
                console.print(f"[red]no consent {ref}[/red]")
                raise typer.Exit(2)
            console.print_json(json.dumps({**c.payload, "youth": c.youth,
                                           "withdrawn_date": str(c.withdrawn_date or "")}))
            for h in outbox.under_consent(s, ref):
                console.print(f"  {h.id} → {h.recipient}: {h.status} {h.last_error}")

    @youth.command("show")
    def youth_show(pseudonym: Annotated[str | None, typer.Argument()] = None,
                   by_cpr: Annotated[bool, typer.Option("--cpr", help="ask for the CPR (hidden, or stdin)")]
                   = False,
                   actor: Annotated[str, typer.Option(envvar="USER", help="who is looking (audited)")]
                   = "operator",
                   network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """The youth's timeline from every source, with handovers sent and received.

        It shows the youth's CPR: revealing a CPR to a person is an audited act, so every
        showing is written to the audit log first (``youth.cpr_shown``: who, when, which
        pseudonym, and whether it was looked up by CPR; never the CPR itself).
        """
        from stafet.core.cpr import parse_cpr
        from stafet.packages.package import KIND_DA
        from stafet.store import imported, outbox, records

        ctx = _ctx(network, home)
        if by_cpr:
            try:
                pseudonym = ctx.vault.pseudonym(parse_cpr(_read_cpr()).digits)
            except StafetError as e:
                console.print(f"[red]error:[/red] {e}")
                raise typer.Exit(2) from None
        if not pseudonym:
            console.print("give a pseudonym or --cpr")
            raise typer.Exit(2)
        with ctx.store.session() as s:
            try:
                cpr = ctx.store.cpr_of(s, pseudonym)
            except StafetError:
                console.print("[red]unknown youth[/red]")
                raise typer.Exit(2) from None
            # In the transaction that reads the timeline: no entry, no CPR shown.
            ctx.store.audit(s, actor, "youth.cpr_shown", f"youth:{pseudonym}",
                            {"youth": pseudonym, "command": "youth show", "looked_up_by": "cpr" if by_cpr
                             else "pseudonym"})
            t = Table(title=f"youth {pseudonym} — CPR {cpr.formatted}, born {cpr.birth_date}")
            for col in ("date", "what", "from", "details"):
                t.add_column(col, overflow="fold")
            events = []
            rows = [(r.kind, r.payload, r.withdrawn, f"{r.source} {r.source_file}:{r.source_row}")
                    for r in records.of_youth(s, pseudonym)]
            rows += [(r.kind, r.payload, r.withdrawn,  # what was received, kept apart
                      f"pakke {r.package_id} fra {r.sender} til {r.recipient}")
                     for r in imported.of_youth(s, pseudonym)]
            for kind, p, withdrawn, src in rows:
                when = p.get("event_date") or p.get("updated") or p.get("status_date") or ""
                what = KIND_DA.get(kind, kind) + (" (tilbagekaldt)" if withdrawn else "")
                detail = p.get("programme_name") or p.get("goal_name") or p.get("target_education") or ""
                events.append((str(when), what, src, str(detail)))
            for h in outbox.of_youth(s, pseudonym):
                events.append((str((h.sent_at or h.created_at).date()), f"overlevering {h.status}",
                               f"{h.sender} → {h.recipient}", f"{h.rule} {h.last_error}".strip()))
            for event in sorted(events):
                t.add_row(*event)
        console.print(t)
