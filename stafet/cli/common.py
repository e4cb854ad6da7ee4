"""The one CLI convention: shared options, opening the context, errors, JSON output, paging.

- Options every command spells the same: ``--network``, ``--home``, ``--json``, ``--limit``,
  ``--since`` (and ``-v/--verbose`` on ``stafet`` itself), each with help text.
- Errors: a :class:`StafetError` (or an ``OSError`` such as ``STAFET_HOME`` pointing at a
  file) prints ``error: …`` on stderr and exits 2; anything unexpected prints one line naming
  the log file that holds the (CPR-redacted) traceback and exits 1. :class:`StafetGroup` does
  this for every command under the app.
- JSON (:func:`to_json`): ISO 8601 timestamps with a time zone (the store's naive datetimes
  are UTC), English keys and values, ``valid_from``/``valid_to``, ``rule`` for one rule.
- Organisation ids are checked against the network (:func:`check_org`); choice options are
  ``Literal`` types (Typer validates them and lists them in the help).
- The youth by ``--youth PSEUDONYM`` or ``--cpr`` (:func:`youth_of`); listings as one Rich
  table (:func:`print_table`); long work with a progress bar, percentage and time left,
  quiet when stderr is not a terminal (:func:`progress`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, Protocol, get_args

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from stafet.core.errors import ConfigError, StafetError

if TYPE_CHECKING:  # pragma: no cover
    from stafet.context import Context
    from stafet.core.config import Network

NetworkOpt = Annotated[str | None, typer.Option("--network", "-n", envvar="STAFET_NETWORK",
                                                help="network.yaml of the network")]
HomeOpt = Annotated[Path | None, typer.Option("--home", envvar="STAFET_HOME",
                                              help="stafet's data folder (default ./.stafet)")]
JsonOpt = Annotated[bool, typer.Option("--json",
                                       help="JSON for scripts (timestamps ISO 8601 with time zone)")]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, help="show at most this many (the newest)")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="only from this day or time on "
                                                              "(YYYY-MM-DD or ISO 8601; naive = UTC)")]
ByOpt = Annotated[str, typer.Option("--by", envvar="USER", help="who does it (audited)")]
YouthOpt = Annotated[str | None, typer.Option("--youth", help="the youth's pseudonym (or --cpr)")]
YouthReqOpt = Annotated[str, typer.Option("--youth", help="the youth's pseudonym")]
CprFlag = Annotated[bool, typer.Option("--cpr", help="ask for the CPR (hidden prompt or stdin, "
                                                    "never an argument)")]
DEFAULT_LIMIT = 50
HandoverStatus = Literal["pending", "sent", "acknowledged", "failed", "held", "cancelled"]
"""The states of a handover, as a choice option (Typer validates a ``Literal`` and lists it in the help)."""
HANDOVER_STATUSES: tuple[str, ...] = get_args(HandoverStatus)

err = Console(stderr=True)
_NAIVE_ISO = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?$")


# --- the context ---------------------------------------------------------------------------

def home_dir(home: Path | None) -> Path:
    """The data folder (``--home``, ``$STAFET_HOME``, ``./.stafet``), prepared; ``$STAFET_HOME`` set."""
    from stafet.context import prepare_environment
    from stafet.core.config import stafet_home

    h = (home or stafet_home()).resolve()
    if h.exists() and not h.is_dir():
        raise ConfigError(f"STAFET_HOME {h} is a file, not a folder: point --home or STAFET_HOME at a "
                          "folder (it is created if missing)")
    os.environ["STAFET_HOME"] = str(h)
    prepare_environment(h)
    return h


def open_ctx(network: str | None, home: Path | None) -> Context:
    """One node's context for a command."""
    from stafet.context import open_context

    return open_context(network, home=home_dir(home))


def check_org(network: Network, org: str | None, what: str = "--org") -> None:
    """Refuse an organisation id the network does not have (``None`` passes), naming the members."""
    if org is None or org in network.members:
        return
    known = ", ".join(sorted(network.members))
    raise ConfigError(f"unknown organisation {org!r} for {what}: the members of network {network.name} "
                      f"are {known} (see `stafet network show`)")


# --- errors --------------------------------------------------------------------------------

def fail(e: BaseException | str) -> NoReturn:
    """Print ``error: …`` (redacted, no traceback) on stderr and exit 2."""
    from stafet.core.redaction import redact

    err.print(f"[red]error:[/red] {escape(redact(str(e)))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def log_file() -> Path:
    """Where unexpected errors are written: ``$STAFET_HOME/logs/cli-errors.log``, else the temp folder."""
    home = Path(os.environ.get("STAFET_HOME", ".stafet"))
    logs = home / "logs"
    try:
        if home.exists() and not home.is_dir():
            raise NotADirectoryError(str(home))
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        return logs / "cli-errors.log"
    except OSError:
        return Path(tempfile.gettempdir()) / "stafet-cli-errors.log"


def report_unexpected(e: BaseException) -> NoReturn:
    """Write the redacted traceback to the log file, print one line naming it, exit 1."""
    from stafet.core.redaction import redact

    path = log_file()
    text = redact("".join(traceback.format_exception(type(e), e, e.__traceback__)))
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(f"--- {stamp} {' '.join(sys.argv[1:2])}\n{text}\n")
    except OSError:
        path = Path("(could not be written)")
    err.print(f"[red]unexpected error:[/red] {escape(type(e).__name__)}; the details are in "
              f"{escape(str(path))} "
              "(run again with -v for stafet's debug log)", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(1)


class StafetGroup(TyperGroup):
    """The app's command group: user errors without tracebacks, unexpected ones to a log file."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; turn stafet's errors into ``error: …`` (exit 2)."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):  # usage errors: Typer's own message
            raise
        except (StafetError, OSError) as e:
            fail(e)
        except Exception as e:
            report_unexpected(e)


def setup_verbosity(verbose: bool) -> None:
    """Warnings only; ``-v``: stafet's own debug lines too, third-party loggers stay at warnings."""
    from stafet.core.logs import setup_logging

    setup_logging(logging.WARNING)
    level = logging.DEBUG if verbose else logging.NOTSET
    for name in ("stafet", "flows", "keys", "transports", "connectors", "mappings"):
        logging.getLogger(name).setLevel(level)
    if verbose:
        logging.getLogger("stafet").debug("verbose: stafet's debug log on stderr")


# --- values --------------------------------------------------------------------------------

def day(value: str | None) -> dt.date:
    """A ``YYYY-MM-DD`` option (default today)."""
    if not value:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"must be a date YYYY-MM-DD, got {value!r}") from None


def since(value: str | None) -> dt.datetime | None:
    """``--since`` as naive UTC (the store's clock); a day means its start, UTC."""
    if not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"must be YYYY-MM-DD or an ISO 8601 time, got {value!r}",
                                 param_hint="--since") from None
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t


def read_cpr() -> str:
    """A CPR from a hidden prompt on a terminal, else the first line of standard input."""
    if sys.stdin is not None and not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    return str(typer.prompt("CPR", hide_input=True))


def youth_of(ctx: Context, youth: str | None, by_cpr: bool) -> str:
    """The youth's pseudonym from ``--youth PSEUDONYM`` or ``--cpr`` (read by :func:`read_cpr`)."""
    if by_cpr == bool(youth):
        raise typer.BadParameter("give either --youth PSEUDONYM or --cpr")
    if not by_cpr:
        return str(youth)
    from stafet.duties.contacts import pseudonym_of_cpr

    return pseudonym_of_cpr(ctx, read_cpr())


# --- output --------------------------------------------------------------------------------

def aware(t: dt.datetime) -> dt.datetime:
    """A datetime with a time zone: naive ones are the store's UTC."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


def iso(t: dt.datetime | dt.date | None) -> str | None:
    """ISO 8601 with time zone for a time, plain ``YYYY-MM-DD`` for a day, None for None."""
    if t is None:
        return None
    if isinstance(t, dt.datetime):
        return aware(t).isoformat()
    return t.isoformat()


def jsonable(obj: Any) -> Any:
    """``obj`` made JSON-ready: every timestamp ISO 8601 with a time zone.

    Naive datetimes and naive ISO timestamp strings are the store's UTC; tuples and sets
    become lists, paths strings.
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, dt.datetime | dt.date):
        return iso(obj)
    if isinstance(obj, str) and _NAIVE_ISO.match(obj):
        return aware(dt.datetime.fromisoformat(obj)).isoformat()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_json(obj: Any, indent: int | None = 2) -> str:
    """The one JSON style of the CLI (see :func:`jsonable`)."""
    return json.dumps(jsonable(obj), ensure_ascii=False, indent=indent, default=str)


def echo_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout, no colour, no wrapping."""
    typer.echo(to_json(obj))


def more_line(shown: int, total: int, console: Console | None = None) -> None:
    """Say what a page left out: ``… N more, use --limit/--since``."""
    if total > shown:
        (console or Console()).print(f"… {total - shown} more, use --limit/--since", highlight=False)


def page(rows: Sequence[Any], limit: int) -> tuple[list[Any], int]:
    """The last ``limit`` rows (the newest when rows are oldest first) and the total."""
    return list(rows[-limit:]) if limit else list(rows), len(rows)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                no_wrap: Sequence[str] | bool = True, console: Console | None = None) -> None:
    """A listing as a Rich table: ``columns`` named, one row per item, ``None`` shown empty.

    ``no_wrap``: ``True`` for every column, or the columns that never wrap (ids, days); the
    others fold.
    """
    from rich.table import Table

    t = Table(title=title)
    for col in columns:
        keep = no_wrap if isinstance(no_wrap, bool) else col in no_wrap
        t.add_column(col, no_wrap=keep, overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    (console or Console()).print(t)


# --- progress ------------------------------------------------------------------------------

class Step(Protocol):
    """A progress callback: ``step(done, total)`` (``total`` None: as before, or unknown)."""

    def __call__(self, done: int, total: int | None = None, /) -> None:  # pragma: no cover
        """Report ``done`` of ``total``."""


def _quiet(done: int, total: int | None = None, /) -> None:
    """The step of a progress that is not shown."""


@contextmanager
def progress(description: str, total: int | None = None, *, unit: str = "",
             console: Console | None = None, show: bool = True) -> Iterator[Step]:
    """A progress bar with percentage and time left on stderr; quiet (a no-op step) when not a TTY.

    ``console``: where it draws (default stderr; a ``Console(force_terminal=True)`` draws
    anywhere); ``show=False`` turns it off (``--json``). Yields ``step(done, total)``.
    """
    c = console or err
    if not show or not c.is_terminal:
        yield _quiet
        return
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.completed:,} " + unit), TimeElapsedColumn(), TextColumn("left"),
                  TimeRemainingColumn(), console=c, transient=False) as bar:
        task = bar.add_task(description, total=total)

        def step(done: int, total: int | None = None, /) -> None:
            if total is not None:
                bar.update(task, total=total or 1, completed=done)
            else:
                bar.update(task, completed=done)

        yield step
