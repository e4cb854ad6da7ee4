"""``stafet ingest PATH…`` and ``stafet quarantine list|show|release|reject``.

``quarantine show`` says why in the row's own values and the allowed list
(:mod:`stafet.reports.rule_text`); ``release``/``reject`` take several IDs or ``--rule RULE``
for a bulk decision. Long work (ingest, bulk decisions) shows a progress bar with percentage
and time left on a terminal, nothing otherwise (:func:`stafet.cli.common.progress`).

Great Expectations is imported only when rows are validated (ingest, release), so
``quarantine list`` and ``--help`` stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stafet.cli.common import (
    DEFAULT_LIMIT,
    HomeOpt,
    JsonOpt,
    LimitOpt,
    NetworkOpt,
    SinceOpt,
    echo_json,
    more_line,
    progress,
)
from stafet.cli.common import fail as _fail
from stafet.cli.common import open_ctx as _ctx
from stafet.core.errors import StafetError

if TYPE_CHECKING:  # pragma: no cover
    from stafet.context import Context
    from stafet.ingest.pipeline import FileResult

console = Console()
err = Console(stderr=True)

QidArg = Annotated[int, typer.Argument(metavar="ID", help="the quarantined row's id (quarantine list)")]
QidsArg = Annotated[list[int] | None, typer.Argument(
    metavar="[ID]...", help="the quarantined rows' ids (quarantine list); several decide in bulk")]
RuleOpt = Annotated[str | None, typer.Option("--rule", help="every open row that broke this rule (in bulk)")]
BULK_MAX = 100_000
"""The most rows one ``--rule`` decision takes."""
ActorOpt = Annotated[str, typer.Option("--actor", envvar="USER", help="who decides (for the audit log)")]


def _rows_expected(path: Path) -> int | None:
    """The data rows a CSV file holds (its lines less the header), for a percentage and time left.

    Counted on the bytes, without parsing (a quoted line break counts twice: an estimate); None for
    XML and what cannot be read, where the bar shows rows only.
    """
    if path.suffix.lower() != ".csv":
        return None
    try:
        with path.open("rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return None
    return max(lines - 1, 1)


def _ingest_all(ctx: Context, paths: list[Path], source: str | None, show_progress: bool,
                docs_dir: Path | None = None) -> list[FileResult]:
    from stafet.ingest.pipeline import ingest_file

    results = []
    for p in paths:
        with progress(p.name, _rows_expected(p), unit="rows", console=err, show=show_progress) as step:
            results.append(ingest_file(ctx.store, ctx.network, p, source=source, home=ctx.home,
                                       progress=step if show_progress else None, docs_dir=docs_dir))
            step(results[-1].rows or 1, results[-1].rows or 1)
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
            results = _ingest_all(ctx, paths, source, show_progress=not as_json,
                                  docs_dir=docs_dir(run, ctx.home) if report else None)
            report_path = write_report(ctx.store, results, home=ctx.home, run=run) if report else None
        except StafetError as e:
            _fail(e)
            return
        if as_json:
            echo_json([r.summary() for r in results])
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
               limit: LimitOpt = DEFAULT_LIMIT, since: SinceOpt = None,
               as_json: JsonOpt = False, network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """List quarantined rows (open ones unless --all), the newest --limit of them. CPRs are masked."""
        from stafet.cli.common import iso, page
        from stafet.cli.common import since as parse_since
        from stafet.store import quarantine as quarantined

        after = parse_since(since)
        try:
            ctx = _ctx(network, home)
        except StafetError as e:
            _fail(e)
            return
        with ctx.store.session() as s:
            found = [q for q in quarantined.listing(s, show_all=show_all, file=file)
                     if after is None or q.created_at is None or q.created_at >= after]
            shown, total = page(found, limit)
            rows = [{"id": q.id, "source": q.source, "file": q.source_file, "row": q.row,
                     "masked_cpr": q.masked_cpr, "rule": q.rule, "status": q.status,
                     "created_at": iso(q.created_at)} for q in shown]
        if as_json:
            echo_json(rows)  # a plain list, as before; --limit/--since page it
            return
        t = Table(title=f"quarantine ({total})" if total == len(rows)
                  else f"quarantine ({len(rows)} of {total})")
        for c in ("id", "source", "file", "row", "masked_cpr", "rule", "status"):
            t.add_column(c, no_wrap=c in ("id", "masked_cpr", "status"), overflow="fold")
        for r in rows:
            t.add_row(*(str(r[c]) for c in ("id", "source", "file", "row", "masked_cpr", "rule", "status")))
        console.print(t)
        more_line(len(rows), total, console)
        if rows:
            console.print("next: stafet quarantine show ID (why), then release --fix FIELD=VALUE or "
                          "reject --reason",
                          highlight=False)

    @quarantine.command("show")
    def q_show(qid: QidArg,
               reveal: Annotated[bool, typer.Option(help="show the CPR in clear (audited)")] = False,
               actor: ActorOpt = "steward", as_json: JsonOpt = False,
               network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Show one quarantined row: why, where, and its raw fields (CPR masked unless --reveal)."""
        from stafet.core.redaction import mask
        from stafet.ingest.quarantine import quarantined_fields
        from stafet.reports.rule_text import explain
        from stafet.store import quarantine as quarantined

        try:
            ctx = _ctx(network, home)
            with ctx.store.session() as s:
                q = quarantined.get(s, qid)
                if q is None:
                    raise StafetError("no such quarantined row", id=qid)
                fields = quarantined_fields(ctx.store, q)
                told = explain(q.source, q.rule, fields, q.reason)  # the row's own values, never a CPR
                info: dict[str, Any] = {"id": q.id, "source": q.source, "file": q.source_file, "row": q.row,
                                        "masked_cpr": q.masked_cpr, "rule": q.rule, "why": told.sentence,
                                        "allowed": list(told.allowed), "rule_text": q.reason,
                                        "status": q.status, "decided_by": q.decided_by,
                                        "decision": q.decision}
                if reveal:
                    ctx.store.audit(s, actor, "quarantine.revealed", f"quarantine:{qid}", {})
        except StafetError as e:
            _fail(e)
            return
        info["fields"] = fields if reveal else {k: mask(v) for k, v in fields.items()}
        if as_json:
            echo_json(info)
            return
        t = Table(title=f"quarantined row {info['id']}: {info['source']} {info['file']} row {info['row']}",
                  show_header=False)
        t.add_column("what", style="bold", no_wrap=True)
        t.add_column("value", overflow="fold")
        for key in ("masked_cpr", "rule", "why", "rule_text", "status", "decided_by", "decision"):
            if info[key] not in (None, ""):
                t.add_row(key, str(info[key]))
        for k, v in info["fields"].items():
            t.add_row(f"  {k}", "" if v is None else str(v))
        console.print(t)
        if info["status"] == "open":
            console.print(f"next: stafet quarantine release {qid} --fix FIELD=VALUE, or "
                          f"stafet quarantine reject {qid} --reason …", highlight=False)

    @quarantine.command("release")
    def q_release(qids: QidsArg = None, rule: RuleOpt = None,
                  fix: Annotated[list[str] | None, typer.Option(help="FIELD=VALUE correction (repeatable)")]
                  = None,
                  actor: ActorOpt = "steward", network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Re-validate and map the row(s) (with fixes); store each that now passes.

        Several IDs or ``--rule`` decide in bulk, with a progress bar on a terminal.
        """
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
            chosen = _chosen(ctx, qids, rule)
            if len(chosen) == 1 and not rule:
                r = release_quarantined(ctx.store, ctx.network, chosen[0], fixes=fixes, actor=actor)
        except StafetError as e:
            _fail(e)
            return
        if len(chosen) == 1 and not rule:
            if r.released:
                console.print(f"released quarantined row {chosen[0]}: record {r.status}")
                return
            err.print(f"row {chosen[0]} still breaks a rule and stays in quarantine:")
            for why in r.failures:
                err.print(f"  - {why}", markup=False)
            raise typer.Exit(1)
        _bulk(chosen, "release", lambda qid: release_quarantined(
            ctx.store, ctx.network, qid, fixes=fixes, actor=actor).released)

    @quarantine.command("reject")
    def q_reject(qids: QidsArg = None, rule: RuleOpt = None,
                 reason: Annotated[str, typer.Option(help="why the row is not to be stored")] = "",
                 actor: ActorOpt = "steward", network: NetworkOpt = None, home: HomeOpt = None) -> None:
        """Decide that quarantined row(s) are not to be stored, with the steward's reason.

        Several IDs or ``--rule`` decide in bulk, with a progress bar on a terminal.
        """
        from stafet.ingest.quarantine import reject_quarantined

        if not reason.strip():
            raise typer.BadParameter("--reason is required: why the row is not to be stored",
                                     param_hint="--reason")
        try:
            ctx = _ctx(network, home)
            chosen = _chosen(ctx, qids, rule)
            if len(chosen) == 1 and not rule:
                reject_quarantined(ctx.store, chosen[0], reason=reason, actor=actor)
        except StafetError as e:
            _fail(e)
            return
        if len(chosen) == 1 and not rule:
            console.print(f"rejected quarantined row {chosen[0]}")
            return

        def reject(qid: int) -> bool:
            reject_quarantined(ctx.store, qid, reason=reason, actor=actor)
            return True

        _bulk(chosen, "reject", reject)


def _chosen(ctx: Context, qids: list[int] | None, rule: str | None) -> list[int]:
    """The rows a decision is about: the IDs given, or every open row of ``--rule``."""
    if bool(qids) == bool(rule):
        raise typer.BadParameter("give the rows' IDs or --rule RULE (not both)")
    if not rule:
        return list(dict.fromkeys(qids or []))
    from stafet.store.console import quarantine_ids

    with ctx.store.session() as s:
        chosen = quarantine_ids(s, None, rule=rule, limit=BULK_MAX)
    if not chosen:
        raise StafetError(f"no open quarantined rows broke rule {rule!r} (see `stafet quarantine list`)")
    return chosen


def _bulk(chosen: list[int], action: str, decide: Callable[[int], bool]) -> None:
    """One decision on each row, with a progress bar; a summary, and exit 1 when some did not go through."""
    done: list[int] = []
    kept: list[int] = []
    failed: dict[int, str] = {}
    with progress(action, len(chosen), unit="rows", console=err) as step:
        for n, qid in enumerate(chosen, 1):
            try:
                (done if decide(qid) else kept).append(qid)
            except StafetError as e:
                failed[qid] = str(e)
            step(n, len(chosen))
    verb = {"release": "released", "reject": "rejected"}[action]
    console.print(f"{verb} {len(done)} of {len(chosen)} quarantined row(s)"
                  + (f"; {len(kept)} still break a rule and stay in quarantine" if kept else "")
                  + (f"; {len(failed)} could not be decided" if failed else ""), highlight=False)
    from stafet.core.redaction import redact

    for qid, why in failed.items():
        err.print(f"  row {qid}: {redact(why)}", markup=False, highlight=False)
    if kept:
        err.print("next: stafet quarantine show ID says why; release ID --fix FIELD=VALUE", highlight=False)
    if kept or failed:
        raise typer.Exit(1)
