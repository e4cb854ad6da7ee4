"""``stafet consent add|withdraw|list|show`` and ``stafet youth show``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stafet.cli.common import HomeOpt, JsonOpt, NetworkOpt, echo_json
from stafet.cli.common import open_ctx as _ctx
from stafet.cli.common import read_cpr as _read_cpr
from stafet.core.errors import ConfigError, StafetError

console = Console()
ActorOpt = Annotated[str, typer.Option("--actor", envvar="USER", help="who does it (for the audit log)")]


def _invalid_reason(why: str) -> str:
    """An English code for :func:`stafet.duties.consent.validity`'s Danish reason."""
    if "forkert part" in why:
        return "wrong_signer"
    if "slutdato" in why:
        return "no_end_date"
    return "invalid"


def register(app: typer.Typer) -> None:
    """Add the ``consent`` and ``youth`` command groups to the CLI."""
    consent = typer.Typer(help="Consents: who may be told what, until when.", no_args_is_help=True)
    youth = typer.Typer(help="A youth's timeline (CPR shown only here).", no_args_is_help=True)
    app.add_typer(consent, name="consent")
    app.add_typer(youth, name="youth")

    @consent.command("add")
    def add(ref: Annotated[str, typer.Option(help="the consent's reference")],
            signed_by: Annotated[str, typer.Option(
                help="ung | foraelder | vaerge | ung+tovholder (co-signed, 18+)")],
            signed: Annotated[str, typer.Option(help="signing date YYYY-MM-DD")],
            valid_to: Annotated[str, typer.Option("--to", help="last valid day (required)")],
            recipients: Annotated[str, typer.Option(help="org ids or kinds, separated by |")],
            scopes: Annotated[str, typer.Option(help="record kinds covered, separated by |")],
            valid_from: Annotated[str | None, typer.Option(
                "--from", help="first valid day (default: the signing date)")] = None,
            signer_name: Annotated[str, typer.Option(help="the signer's name")] = "",
            situation: Annotated[str, typer.Option(help="the situation the consent is for (free text)")] = "",
            cpr: Annotated[str | None, typer.Option(hidden=True, help="refused: see the command's help")]
            = None,
            actor: ActorOpt = "operator",
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
    def withdraw(ref: Annotated[str, typer.Argument(help="the consent's reference")],
                 on: Annotated[str | None, typer.Option(help="date, default today")] = None,
                 actor: ActorOpt = "operator",
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
              as_json: JsonOpt = False) -> None:
        """All consents with their computed status today.

        JSON: ``status`` valid | invalid | withdrawn | expired | not_yet_valid; ``valid_from``, ``valid_to``.
        """
        from stafet.duties.consent import validity
        from stafet.store import consents

        ctx = _ctx(network, home)
        today = dt.date.today()
        rows = []
        with ctx.store.session() as s:
            for c, born in consents.with_birth_dates(s):
                p = c.payload
                why = validity(p, born)
                status, reason, shown = "valid", "", "gyldigt"
                if why:
                    status, reason, shown = "invalid", _invalid_reason(why), why
                elif c.withdrawn_date and c.withdrawn_date <= today:
                    status, shown = "withdrawn", f"tilbagekaldt {c.withdrawn_date}"
                elif today > dt.date.fromisoformat(p["valid_to"]):
                    status, shown = "expired", f"udløbet {p['valid_to']}"
                elif today < dt.date.fromisoformat(p["valid_from"]):
                    status, shown = "not_yet_valid", f"ikke gyldigt endnu (fra {p['valid_from']})"
                rows.append({"ref": c.ref, "youth": c.youth, "signed_by": p["signed_by"],
                             "valid_from": p["valid_from"], "valid_to": p["valid_to"],
                             "recipients": p.get("recipients", []), "scopes": p.get("scopes", []),
                             "status": status, "reason": reason, "withdrawn_date": c.withdrawn_date,
                             "_shown": shown})
        if as_json:
            echo_json([{k: v for k, v in r.items() if k != "_shown"} for r in rows])
            return
        t = Table(title="samtykker")
        for col in ("ref", "ung", "underskrevet af", "gyldigt fra", "gyldigt til", "modtagere", "omfang",
                    "status"):
            t.add_column(col, no_wrap=col in ("ref", "gyldigt fra", "gyldigt til"), overflow="fold")
        for r in rows:
            t.add_row(r["ref"], r["youth"], r["signed_by"], r["valid_from"], r["valid_to"],
                      ", ".join(r["recipients"]), ", ".join(r["scopes"]), r["_shown"])
        console.print(t)

    @consent.command("show")
    def show(ref: Annotated[str, typer.Argument(help="the consent's reference")],
             as_json: JsonOpt = False, network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """One consent, and the handovers made under it."""
        from stafet.cli.common import fail
        from stafet.store import consents, outbox

        ctx = _ctx(network, home)
        with ctx.store.session() as s:
            c = consents.get(s, ref)
            if c is None:
                fail(f"no consent {ref!r}: see `stafet consent list`")
            doc = {**c.payload, "youth": c.youth, "withdrawn_date": c.withdrawn_date,
                   "handovers": [{"id": h.id, "recipient": h.recipient, "status": h.status,
                                  "last_error": h.last_error} for h in outbox.under_consent(s, ref)]}
        if as_json:
            echo_json(doc)
            return
        t = Table(title=f"samtykke {ref}", show_header=False)
        t.add_column("hvad", style="bold", no_wrap=True)
        t.add_column("værdi", overflow="fold")
        for k, v in doc.items():
            if k != "handovers":
                t.add_row(k, ", ".join(v) if isinstance(v, list | tuple) else str(v if v is not None else ""))
        console.print(t)
        for h in doc["handovers"]:
            console.print(f"  {h['id']} → {h['recipient']}: {h['status']} {h['last_error']}", highlight=False,
                          soft_wrap=True)

    @youth.command("show")
    def youth_show(pseudonym: Annotated[str | None, typer.Argument(help="the youth's pseudonym")] = None,
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
