"""``stafet ingest PATH…`` and ``stafet quarantine list|show|release|reject``.

Great Expectations is imported only when rows are validated (ingest, release), so
``quarantine list`` and ``--help`` stay fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stafet.core.errors import StafetError

if TYPE_CHECKING:  # pragma: no cover
    from stafet.context import Context
    from stafet.ingest.pipeline import FileResult

console = Console()
err = Console(stderr=True)

NetworkOpt = Annotated[str | None, typer.Option("--network", "-n", envvar="STAFET_NETWORK",
                                                help="network.yaml of the network")]
HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="STAFET_HOME", help="stafet's data folder")]
ActorOpt = Annotated[str, typer.Option("--actor", envvar="USER", help="who decides (for the audit log)")]


def _ctx(network: str | None, home: Path | None) -> Context:
    from stafet.context import open_context, prepare_environment
    from stafet.core.config import stafet_home

    h = (home or stafet_home()).resolve()
    prepare_environment(h)
    return open_context(network, home=h)


def _fail(e: StafetError) -> None:
    err.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
    raise typer.Exit(2)


def _ingest_all(ctx: Context, paths: list[Path], source: str | None, show_progress: bool,
                docs_dir: Path | None = None) -> list[FileResult]:
    from stafet.ingest.pipeline import ingest_file

    results = []
    if not show_progress:
        for p in paths:
            results.append(ingest_file(ctx.store, ctx.network, p, source=source, home=ctx.home,
                                       docs_dir=docs_dir))
        return results
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:,} rows"), TimeElapsedColumn(), console=err,
                  transient=False) as progress:
        for p in paths:
            task = progress.add_task(p.name, total=None)

            def advance(n: int, t: Any = task) -> None:
                progress.update(t, completed=n)

            results.append(ingest_file(ctx.store, ctx.network, p, source=source, home=ctx.home,
                                       progress=advance, docs_dir=docs_dir))
            progress.update(task, total=results[-1].rows or 1, completed=results[-1].rows or 1)
    return results


def register(app: typer.Typer) -> None:
    """Add ``ingest`` and the ``quarantine`` command group to the CLI."""
    quarantine = typer.Typer(help="Rows that broke a rule: list, show, release or reject them.",
                             no_args_is_help=True)
    app.add_typer(quarantine, name="quarantine")

    @app.command("ingest")
    def ingest(paths: Annotated[list[Path], typer.Argument(help="source export files", exists=True,
                                                           dir_okay=False)],
               source: Annotated[str | None, typer.Option(help="source name (default: from the file name)")]
               = None,
               as_json: Annotated[bool, typer.Option("--json", help="one JSON summary per file")] = False,
               report: Annotated[bool, typer.Option(help="write the steward's HTML report")] = True,
               network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Ingest source files: validate, map, store once, quarantine bad rows.

        Exit code 0 when every file was processed (quarantined rows are not an
        error), 1 when a file was rejected, 2 on a configuration error.
        """
        from stafet.reports.validation import docs_dir, new_run, write_report

        try:
            ctx = _ctx(network, home)
            run = new_run()
            results = _ingest_all(ctx, paths, source, show_progress=not as_json and sys.stderr.isatty(),
                                  docs_dir=docs_dir(run, ctx.home) if report else None)
            report_path = write_report(ctx.store, results, home=ctx.home, run=run) if report else None
        except StafetError as e:
            _fail(e)
            return
        if as_json:
            console.print_json(json.dumps([r.summary() for r in results]))
        else:
            t = Table(title="ingest")
            for c in ("file", "source", "rows", "accepted", "duplicates", "updated", "quarantined", "result"):
                t.add_column(c, justify="right" if c not in ("file", "source", "result") else "left")
            for r in results:
                outcome = ("[red]rejected: " + r.reason.replace("[", "\\[") + "[/red]" if r.rejected
                           else "duplicate file" if r.duplicate_file else "ok")
                t.add_row(r.file, r.source, str(r.rows), str(r.accepted), str(r.duplicates), str(r.updated),
                          str(r.quarantined), outcome)
            console.print(t)
            if report_path:
                console.print(f"report: {report_path}")
        if any(r.rejected for r in results):
            raise typer.Exit(1)

    @quarantine.command("list")
    def q_list(show_all: Annotated[bool, typer.Option("--all", help="also decided rows")] = False,
               file: Annotated[str | None, typer.Option(help="only rows of this source file")] = None,
               as_json: Annotated[bool, typer.Option("--json")] = False,
               network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """List quarantined rows (open ones unless --all). CPRs are masked."""
        from stafet.store import quarantine as quarantined

        try:
            ctx = _ctx(network, home)
        except StafetError as e:
            _fail(e)
            return
        with ctx.store.session() as s:
            rows = [{"id": q.id, "source": q.source, "file": q.source_file, "row": q.row,
                     "masked_cpr": q.masked_cpr, "rule": q.rule, "status": q.status}
                    for q in quarantined.listing(s, show_all=show_all, file=file)]
        if as_json:
            console.print_json(json.dumps(rows))
            return
        t = Table(title=f"quarantine ({len(rows)})")
        for c in ("id", "source", "file", "row", "masked_cpr", "rule", "status"):
            t.add_column(c)
        for r in rows:
            t.add_row(*(str(r[c]) for c in ("id", "source", "file", "row", "masked_cpr", "rule", "status")))
        console.print(t)

    @quarantine.command("show")
    def q_show(qid: Annotated[int, typer.Argument(metavar="ID")],
               reveal: Annotated[bool, typer.Option(help="show the CPR in clear (audited)")] = False,
               actor: ActorOpt = "steward", network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Show one quarantined row: why, where, and its raw fields (CPR masked unless --reveal)."""
        from stafet.core.redaction import mask
        from stafet.ingest.quarantine import quarantined_fields
        from stafet.store import quarantine as quarantined

        try:
            ctx = _ctx(network, home)
            with ctx.store.session() as s:
                q = quarantined.get(s, qid)
                if q is None:
                    raise StafetError("no such quarantined row", id=qid)
                fields = quarantined_fields(ctx.store, q)
                info: dict[str, Any] = {"id": q.id, "source": q.source, "file": q.source_file, "row": q.row,
                                        "masked_cpr": q.masked_cpr, "rules": q.rule, "why": q.reason,
                                        "status": q.status, "decided_by": q.decided_by,
                                        "decision": q.decision}
                if reveal:
                    ctx.store.audit(s, actor, "quarantine.revealed", f"quarantine:{qid}", {})
        except StafetError as e:
            _fail(e)
            return
        info["fields"] = fields if reveal else {k: mask(v) for k, v in fields.items()}
        console.print_json(json.dumps(info, ensure_ascii=False))

    @quarantine.command("release")
    def q_release(qid: Annotated[int, typer.Argument(metavar="ID")],
                  fix: Annotated[list[str] | None, typer.Option(help="FIELD=VALUE correction (repeatable)")]
                  = None,
                  actor: ActorOpt = "steward", network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Re-validate and map the row (with fixes); store it if it now passes."""
        from stafet.ingest.quarantine import release_quarantined

        fixes: dict[str, str] = {}
        for f in fix or []:
            name, sep, value = f.partition("=")
            if not sep or not name.strip():
                err.print(f"--fix must be FIELD=VALUE, got {f.split('=')[0]!r}")
                raise typer.Exit(2)
            fixes[name.strip()] = value
        try:
            ctx = _ctx(network, home)
            r = release_quarantined(ctx.store, ctx.network, qid, fixes=fixes, actor=actor)
        except StafetError as e:
            _fail(e)
            return
        if r.released:
            console.print(f"released quarantined row {qid}: record {r.status}")
            return
        err.print(f"row {qid} still breaks a rule and stays in quarantine:")
        for why in r.failures:
            err.print(f"  - {why}", markup=False)
        raise typer.Exit(1)

    @quarantine.command("reject")
    def q_reject(qid: Annotated[int, typer.Argument(metavar="ID")],
                 reason: Annotated[str, typer.Option(help="why the row is not to be stored")],
                 actor: ActorOpt = "steward", network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Decide that a quarantined row is not to be stored, with the steward's reason."""
        from stafet.ingest.quarantine import reject_quarantined

        try:
            ctx = _ctx(network, home)
            reject_quarantined(ctx.store, qid, reason=reason, actor=actor)
        except StafetError as e:
            _fail(e)
            return
        console.print(f"rejected quarantined row {qid}")
