"""The network's statistics: counts per institution and municipality, per month, with small counts suppressed.

What is counted, for each month ``YYYY-MM`` in ``[from, to]`` (``docs/statistics.md`` has
the full reading):

* **enrolments, completions, concern flags** — school events by their event date, per
  institution and per the youth's home municipality (as the school reported it);
* **dropouts by reason** — by event date and the dropout's reason code (the network's code
  list, ``mappings.common.REASON_CODES``; a code off the list counts as ``ukendt``);
* **transitions** — the family department's transition cases, in the month of their
  meeting date, or of their arrival in stafet when no meeting is set; per the export's
  municipality;
* **report lag** — days from a dropout's event date to the Danish calendar day its file
  reached stafet (``received_at``): median and max per unit and month;
* **duties met on time / late / open** — by the month the duty falls due. A duty is *on
  time* when its evidence is dated on or before the due date, *late* when the evidence is
  dated after it, *open* when no evidence (dated no later than the as-of day) exists.
  Which duties exist and when they are due is :mod:`stafet.duties.deadlines`' rules,
  called with the evidence removed; the evidence is what closes each rule there:
  ``dropout_contact`` the earliest UU contact with the youth on or after the dropout
  (``dropout_contact_custody``: with the custody holder),
  ``dropout_agreement`` the earliest plan agreement date on or after it,
  ``transition_meeting`` the case's meeting date (a planned meeting that is neither
  held nor on or before the due date is open), ``handover_ack`` the receipt's Danish
  calendar day, and so on for every rule of the duty clock (:data:`DUTY_RULES` names
  them all; ``docs/statistics.md`` has each one's evidence). ``followup_18_24`` recurs:
  its first cycle is counted (the second follow-up within a year of entering the group);
* **opsporing list** — the size of UU's list of 15–17-year-olds not in education, at
  each month's end, when :mod:`stafet.duties` provides the list (else marked not
  available);
* **cohorts** — per municipality and birth year (from 26 to 15 years before the period's
  last year), the share of the cohort's youths known to stafet who are in education (their
  latest school event an enrolment) or have completed one by age 25 (judged on the 25th
  birthday, or on the period's last day for a youth not yet 25: the cohort is then
  *foreløbig*), against the seeds' targets of 90 % and 95 % (:data:`TARGETS`). A youth's
  municipality is the youth register's on that day, else the latest school event's; a
  youth with neither is not counted.

**Suppression** (:func:`suppress`), as Danish official statistics do: a count of 1–4 is
shown as ``<5`` (primary suppression); where a row or column total is shown, a line that
would give a hidden cell away (by subtraction, or by what ``<5`` and ``x`` tell of it) gets
its next smallest non-zero cell hidden too, shown ``x`` (complementary), repeated until
every line holds; then a linear programme over all lines (:func:`pinned_cell`) hides more
until no ``<5`` is pinned by the lines together. A total is a count like any other (1–4 is
``<5``). **0 is shown** and never hidden: it says nobody, hiding it would protect no one,
and ``<5`` for an empty cell would mislead. The tables per institution and per
municipality of the same facts share their total row and hide it alike (:func:`linked`).
Medians and maxima of fewer than 5 dropouts are hidden (``x``).

Outputs: :func:`render_html` (Danish, charts inline from :mod:`stafet.reports.charts`, no
script, no external asset), :func:`to_csv` (one ``;``-separated file per table),
:func:`to_document` (JSON, format ``stafet.statistics/1``), :func:`to_markdown` (the
Prefect artifact). Counts only: no CPR, no pseudonym, no name of a person.

Example::

    stats = compute_statistics(ctx, Period.parse("2026-01", "2026-11"), today=date(2026, 12, 1))
    paths = write_outputs(stats, ctx.home / "reports" / "statistics-2026-01_2026-11")
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import statistics as pystats
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, select_autoescape

from mappings.common import REASON_CODES
from stafet.core.config import Network, private_dir, write_private
from stafet.core.errors import ConfigError
from stafet.core.models import OrgKind
from stafet.duties import moves as move_rules
from stafet.duties import youth_register as register_rules
from stafet.duties.deadlines import (
    LOCAL_TZ,
    DutySettings,
    YouthFacts,
    anniversary,
    concern_deadlines,
    dropout_deadlines,
    duty_settings,
    first_contact_deadlines,
    followup_deadline,
    handover_deadline,
    load_facts,
    order_deadlines,
    transition_deadlines,
)
from stafet.duties.deadlines import _job_centre as job_centre_lookup
from stafet.duties.routing import concern_window_days
from stafet.reports.charts import bar_svg, line_svg
from stafet.store import outbox
from stafet.store import statistics as q

if TYPE_CHECKING:
    from stafet.context import Context

FORMAT = "stafet.statistics/1"
THRESHOLD = 5
"""Counts from 1 to ``THRESHOLD - 1`` are suppressed."""
PRIMARY = "<5"
"""How a suppressed small count is shown."""
COMPLEMENTARY = "x"
"""How a cell hidden so that a small count cannot be found by subtraction is shown."""
TOTAL = "I alt"

REPORTING_QUOTE = ("afrapportering fra UUR baseret på statistisk materiale om søgning, afbrud og "
                   "gennemførelse")
"""Randers (seed 004): what the statistics are for."""


@dataclass(frozen=True, slots=True)
class Target:
    """A target share of a cohort with a youth education by age 25, and the seed sentence."""

    share: float
    source: str
    quote: str


TARGETS: tuple[Target, ...] = (
    Target(0.90, "Randers, seed 004",
           "I 2030 skal 90 % af de 25-årige have gennemført en ungdomsuddannelse."),
    Target(0.95, "Thisted, seed 003",
           "95 % af de unge i Thisted Kommune gennemfører en ungdomsuddannelse"),
)

DUTY_RULES: dict[str, str] = {
    "dropout_contact": "Kontakt inden for 5 arbejdsdage efter afbrud (15–17 år)",
    "dropout_contact_custody": "Kontakt til forældremyndigheden efter afbrud (15–17 år)",
    "dropout_agreement": "Aftale inden for 30 dage efter afbrud (15–17 år)",
    "dropout_first_contact": "Tilbud om vejledningssamtale efter afbrud (18–24 år)",
    "followup_18_24": "To opfølgninger det første år uden uddannelse (18–24 år)",
    "concern_contact": "Kontakt til studievejlederen efter bekymringsmærke",
    "absence_concern": "Kontakt til studievejlederen om fravær over tærsklen",
    "order_start": "Uddannelsesstart inden uddannelsespålæggets frist",
    "first_interview": "1. samtale inden 7 dage efter uddannelsespålægget",
    "grundskole_transition": "UU-kontakt fra ½ år før grundskolens afslutning",
    "move_handover": "Den nye UU har kvitteret for en ung, der er flyttet",
    "transition_meeting": "Overgangsmøde senest ved det 17. år",
    "handover_ack": "Overlevering kvitteret inden for netværkets frist",
}
"""The duties counted: every rule of the duty clock (:data:`stafet.duties.deadlines.RULES`), in Danish."""
DUTY_OUTCOMES = ("on_time", "late", "open")
DUTY_OUTCOMES_DA = ("Rettidigt", "For sent", "Åben")
UNKNOWN = "ukendt"

OPSPORING_UNAVAILABLE = ("ikke tilgængelig: stafet.duties har endnu ingen opsporingsliste "
                         "for 15–17-årige")


# --- suppression (pure) ---------------------------------------------------------------
def is_small(n: int) -> bool:
    """A count that must not be shown: 1 to 4 (0 is shown)."""
    return 0 < n < THRESHOLD


def with_totals(values: Sequence[Sequence[int]], ncols: int, *, row_totals: bool,
                col_totals: bool) -> list[list[int]]:
    """``values`` (rows × ``ncols``) with a total column and/or a total row appended."""
    grid = [list(r) + ([sum(r)] if row_totals else []) for r in values]
    if col_totals:
        width = ncols + (1 if row_totals else 0)
        grid.append([sum(r[j] for r in grid) for j in range(width)])
    return grid


Line = tuple[list[tuple[int, int]], tuple[int, int]]
"""One row or column of a table: its interior cells and its total cell."""


def _lines(nrows: int, ncols: int, row_totals: bool, col_totals: bool) -> list[Line]:
    """Each line of the grid whose cells add up to a shown total: (interior cells, total cell)."""
    rows = nrows + (1 if col_totals else 0)
    cols = ncols + (1 if row_totals else 0)
    out = []
    if row_totals:
        out += [([(i, j) for j in range(ncols)], (i, ncols)) for i in range(rows)]
    if col_totals:
        out += [([(i, j) for i in range(nrows)], (nrows, j)) for j in range(cols)]
    return out


_INF = float("inf")


def _bounds(mark: str) -> tuple[float, float]:
    """What a reader knows of a hidden cell: ``<5`` is 1–4, ``x`` is 5 or more (never 0)."""
    return (1, THRESHOLD - 1) if mark == PRIMARY else (THRESHOLD, _INF)


def _gives_away(grid: Sequence[Sequence[int]], marks: Sequence[Sequence[str]],
                interior: Sequence[tuple[int, int]], total: tuple[int, int]) -> bool:
    """Whether one line (cells that add up to its total) lets a hidden cell be worked out.

    The line reads ``sum(interior) - total = 0``; the shown cells are known and each hidden
    one lies in its :func:`_bounds`. A hidden cell is given away when the others' bounds
    leave it one value: alone in its line (the total minus the rest), or, say, two ``<5``
    beside a shown sum of 8 (both 4), or ``<5`` and ``x`` beside a shown 6 (1 and 5).
    """
    cells = [(c, 1) for c in interior] + [(total, -1)]
    known = -sum(sign * grid[i][j] for (i, j), sign in cells if not marks[i][j])
    hidden = [(sign, *_bounds(marks[i][j])) for (i, j), sign in cells if marks[i][j]]
    for n, (sign, lo, hi) in enumerate(hidden):
        # the others' signed sum lies in [rest_lo, rest_hi]; this cell is sign * (known - rest)
        rest_lo = sum(s * (lo_ if s > 0 else hi_) for k, (s, lo_, hi_) in enumerate(hidden) if k != n)
        rest_hi = sum(s * (hi_ if s > 0 else lo_) for k, (s, lo_, hi_) in enumerate(hidden) if k != n)
        if sign > 0:
            low, high = known - rest_hi, known - rest_lo
        else:
            low, high = rest_lo - known, rest_hi - known
        if max(low, lo) >= min(high, hi):
            return True
    return False


def suppress(values: Sequence[Sequence[int]], ncols: int | None = None, *, row_totals: bool = True,
             col_totals: bool = True,
             hide: Iterable[tuple[int, int]] = ()) -> tuple[list[list[int]], list[list[str]]]:
    """Suppress small counts in a table, with complementary cells where totals are shown.

    Args:
        values: the counts, one list per row (all rows ``ncols`` long).
        ncols: the number of columns (needed when there are no rows).
        row_totals: a total column is appended (each row's sum).
        col_totals: a total row is appended (each column's sum, and the grand total).
        hide: cells of the grid (totals included) to hide from the start, as complementary
            unless primary — a linked table hides them (:func:`linked`).

    Returns:
        ``(grid, marks)``: the counts with their totals, and per cell ``""`` (shown),
        :data:`PRIMARY` (a count of 1–4) or :data:`COMPLEMENTARY` (hidden so that no
        shown total gives a hidden count away by subtraction).

    Every cell of 1–4 (totals included) is primary. Then, until nothing changes: a line (a
    row or a column, the totals row and column included) that gives a hidden cell away
    (:func:`_gives_away`: the cell alone in its line, or pinned by the bounds a reader knows
    of ``<5`` and ``x``) gets its smallest shown non-zero cell hidden too (ties: the first);
    when the line has none, its total is hidden instead. A zero is never hidden: a hidden 0
    is given away by any line whose total is 0. This is the classic greedy rule, one line
    at a time, not an optimal search over the whole table; where every non-zero cell of a
    line is already hidden there is nothing left to hide and the line stays as it is.

    >>> suppress([[3, 10, 7]], col_totals=False)[1]
    [['<5', '', 'x', '']]
    """
    width = ncols if ncols is not None else (len(values[0]) if values else 0)
    grid = with_totals(values, width, row_totals=row_totals, col_totals=col_totals)
    marks = [[PRIMARY if is_small(v) else "" for v in r] for r in grid]
    for i, j in hide:
        if not marks[i][j] and grid[i][j] > 0:  # a 0 is never hidden (it is given away anyway)
            marks[i][j] = COMPLEMENTARY
    lines = _lines(len(values), width, row_totals, col_totals)
    changed = True
    while changed:
        changed = False
        for interior, (ti, tj) in lines:
            if not any(marks[i][j] for i, j in (*interior, (ti, tj))):
                continue
            if not _gives_away(grid, marks, interior, (ti, tj)):
                continue
            nonzero = [(i, j) for i, j in interior if not marks[i][j] and grid[i][j] > 0]
            if nonzero:
                i, j = min(nonzero, key=lambda c: grid[c[0]][c[1]])
                marks[i][j] = COMPLEMENTARY
            elif not marks[ti][tj] and grid[ti][tj] > 0:
                marks[ti][tj] = COMPLEMENTARY
            else:
                continue  # nothing left to hide in this line
            changed = True
        if not changed:  # every line holds: now the lines together (a reader may combine them)
            changed = _hide_one_more(grid, marks, lines, pinned_cell(grid, marks, lines))
    return grid, marks


def pinned_cell(grid: Sequence[Sequence[int]], marks: Sequence[Sequence[str]],
                lines: Sequence[Line]) -> tuple[int, int] | None:
    """The first ``<5`` cell that the whole published table pins to one value, or None.

    A linear programme over every line at once (scipy's HiGHS): each hidden cell within its
    :func:`_bounds`, every line adding up; the least and the greatest value a ``<5`` cell
    can take. A table's lines form a network matrix, so these bounds are whole numbers and
    exact. This is the audit statistics offices run after placing complementary cells.
    """
    from scipy.optimize import linprog

    hidden = [(i, j) for i, r in enumerate(marks) for j, m in enumerate(r) if m]
    index = {c: n for n, c in enumerate(hidden)}
    rows, rhs = [], []
    for interior, total in lines:
        coef = [0.0] * len(hidden)
        known = 0
        for c, sign in [*((c, 1) for c in interior), (total, -1)]:
            if c in index:
                coef[index[c]] = sign
            else:
                known -= sign * grid[c[0]][c[1]]
        if any(coef):
            rows.append(coef)
            rhs.append(known)
    if not rows:
        return None
    bounds = [(lo, None if hi == _INF else hi) for lo, hi in (_bounds(marks[i][j]) for i, j in hidden)]
    for c in hidden:
        if marks[c[0]][c[1]] != PRIMARY:
            continue
        ends = []
        for sense in (1.0, -1.0):
            obj = [0.0] * len(hidden)
            obj[index[c]] = sense
            res = linprog(obj, A_eq=rows, b_eq=rhs, bounds=bounds, method="highs")
            if res.status != 0:
                return None  # cannot happen for a table that adds up; nothing to learn then
            ends.append(sense * res.fun)
        if round(ends[1] - ends[0], 6) <= 0:
            return c
    return None


def _hide_one_more(grid: Sequence[Sequence[int]], marks: list[list[str]], lines: Sequence[Line],
                   cell: tuple[int, int] | None) -> bool:
    """Hide the smallest shown non-zero cell of a line through ``cell``, else of a line's total, else any."""
    if cell is None:
        return False

    def open_(cells: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        return [c for c in cells if not marks[c[0]][c[1]] and grid[c[0]][c[1]] > 0]

    through = [ln for ln in lines if cell in ln[0] or cell == ln[1]]
    candidates = (open_(c for interior, _ in through for c in interior) or open_(t for _, t in through)
                  or open_((i, j) for i, r in enumerate(grid) for j in range(len(r))))
    if not candidates:
        return False  # every non-zero cell is hidden already: nothing more can help
    i, j = min(candidates, key=lambda c: grid[c[0]][c[1]])
    marks[i][j] = COMPLEMENTARY
    return True


def shown(value: int, mark: str) -> int | str:
    """A cell as published: the count, or its suppression mark."""
    return mark or value


Cell = int | float | str
"""A published value: a count, a median, a share, a suppression mark or a text."""


# --- tables ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Table:
    """One published table: label columns, value columns, rows of cells (counts or marks).

    ``rows`` hold what may be published (suppression applied); the last row is the total
    row when the table has column totals.
    """

    key: str  # the CSV's file name and the JSON key
    title: str  # Danish
    labels: tuple[str, ...]  # the label columns' headers
    columns: tuple[str, ...]  # the value columns' headers (a total column included)
    rows: tuple[tuple[tuple[str, ...], tuple[Cell, ...]], ...]
    note: str = ""

    @property
    def header(self) -> list[str]:
        """The header row of the CSV and HTML table."""
        return [*self.labels, *self.columns]

    def cells(self) -> list[list[Cell]]:
        """Every row as published: labels, then values."""
        return [[*lab, *vals] for lab, vals in self.rows]

    @property
    def suppressed(self) -> int:
        """How many cells are hidden."""
        return sum(1 for _, vals in self.rows for v in vals if v in (PRIMARY, COMPLEMENTARY))


def count_table(key: str, title: str, labels: Sequence[str], row_labels: Sequence[tuple[str, ...]],
                columns: Sequence[str], values: Sequence[Sequence[int]], *, row_totals: bool = True,
                col_totals: bool = True, note: str = "", hide_total_row: Iterable[int] = ()) -> Table:
    """A table of counts, suppressed (:func:`suppress`), with its totals.

    ``hide_total_row``: columns whose cell in the total row is hidden from the start (:func:`linked`).
    """
    hide = [(len(values), j) for j in hide_total_row] if col_totals else []
    grid, marks = suppress(values, len(columns), row_totals=row_totals, col_totals=col_totals, hide=hide)
    labs = list(row_labels)
    if col_totals:
        labs.append((TOTAL, *[""] * (len(labels) - 1)))
    cols = (*columns, TOTAL) if row_totals else tuple(columns)
    rows = tuple((tuple(lab), tuple(shown(v, m) for v, m in zip(r, mr, strict=True)))
                 for lab, r, mr in zip(labs, grid, marks, strict=True))
    return Table(key, title, tuple(labels), cols, rows, note)


def linked(build: Callable[[frozenset[int]], Sequence[Table]]) -> list[Table]:
    """Tables that publish the same total row (the same facts by other units), suppressed alike.

    The enrolments per institution and per municipality add up to the same monthly totals:
    a total hidden in one but shown in the other would give the hidden one away. ``build``
    makes the tables with the given total-row columns hidden; the union of what each hides
    is fed back until no table hides more.
    """
    forced: frozenset[int] = frozenset()
    while True:
        tables = list(build(forced))
        hidden = frozenset(j for tab in tables for j, v in enumerate(tab.rows[-1][1])
                           if v in (PRIMARY, COMPLEMENTARY))
        if hidden <= forced:
            return tables
        forced |= hidden


# --- the period -----------------------------------------------------------------------
def _month(text: str) -> date:
    try:
        d = datetime.strptime(text, "%Y-%m").date()
    except ValueError:
        raise ConfigError(f"a month is YYYY-MM, not {text!r}") from None
    return d


def _next_month(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


@dataclass(frozen=True, slots=True)
class Period:
    """The months ``[first, last]`` a report covers (first days of months)."""

    first: date
    last: date

    @classmethod
    def parse(cls, from_month: str, to_month: str) -> Period:
        """From ``YYYY-MM`` texts; ``from`` after ``to`` is a :class:`ConfigError`."""
        first, last = _month(from_month), _month(to_month)
        if first > last:
            raise ConfigError(f"--from {from_month} is after --to {to_month}")
        return cls(first, last)

    @classmethod
    def months_before(cls, day: date, n: int = 12) -> Period:
        """The ``n`` whole months before ``day``'s month (what the monthly run reports)."""
        last = (day.replace(day=1) - timedelta(days=1)).replace(day=1)
        first = last
        for _ in range(n - 1):
            first = (first - timedelta(days=1)).replace(day=1)
        return cls(first, last)

    @property
    def end(self) -> date:
        """The period's last day."""
        return _next_month(self.last) - timedelta(days=1)

    def months(self) -> list[str]:
        """Every month of the period, ``YYYY-MM``."""
        out, d = [], self.first
        while d <= self.last:
            out.append(f"{d:%Y-%m}")
            d = _next_month(d)
        return out

    def month_of(self, d: date | None) -> str | None:
        """``d``'s month when it is in the period, else None."""
        if d is None or not self.first <= d <= self.end:
            return None
        return f"{d:%Y-%m}"

    def label(self) -> str:
        """``YYYY-MM_YYYY-MM``: for folder names."""
        return f"{self.first:%Y-%m}_{self.last:%Y-%m}"


# --- the statistics -------------------------------------------------------------------
@dataclass(slots=True)
class Statistics:
    """Every table of one report, and what it was computed on."""

    network: str
    period: Period
    today: date
    tables: list[Table] = field(default_factory=list)
    opsporing_available: bool = False
    charts: list[str] = field(default_factory=list)  # inline SVG, from the published cells only

    def table(self, key: str) -> Table:
        """The table with ``key``."""
        return next(t for t in self.tables if t.key == key)


def _local_day(at: datetime) -> date:
    """A naive UTC store time as the Danish calendar day."""
    return at.replace(tzinfo=UTC).astimezone(LOCAL_TZ).date()


def report_lag_days(e: q.SchoolEventRow) -> int:
    """Days from a school event's date to the Danish calendar day its file reached stafet."""
    return (_local_day(e.received_at) - e.event_date).days


@dataclass(frozen=True, slots=True)
class LagRow:
    """Report lag of one institution's dropouts: how many, median and max days (counts only)."""

    institution: str
    dropouts: int
    median_days: float
    max_days: int


def report_lag_by_institution(events: Iterable[q.SchoolEventRow]) -> list[LagRow]:
    """Every dropout's report lag (:func:`report_lag_days`) per institution, slowest median first.

    Seed 002: "Ofte kommer meldinger fra Ungdomsuddannelserne for sent". The events are the
    statistics' own query (:func:`stafet.store.statistics.school_events`); no suppression here:
    the nightly report is for the network's own staff and shows no youth.
    """
    lags: dict[str, list[int]] = defaultdict(list)
    for e in events:
        if e.kind == "dropout":
            lags[e.institution].append(report_lag_days(e))
    rows = [LagRow(inst, len(d), float(pystats.median(d)), max(d)) for inst, d in lags.items()]
    return sorted(rows, key=lambda r: (-r.median_days, -r.max_days, r.institution))


class _Names:
    """Row labels for units: an institution's name and number, a municipality's number and UU."""

    def __init__(self, network: Network) -> None:
        self.network = network

    def institution(self, inst: str) -> str:
        if not inst:
            return UNKNOWN
        org = self.network.members.get(inst)
        return f"{org.name} ({inst})" if org is not None else inst

    def municipality(self, muni: str) -> str:
        if not muni:
            return UNKNOWN
        uu = self.network.guidance_for(muni)
        return f"{muni} ({uu.name})" if uu is not None else muni

    def unit(self, dim: str, inst: str, muni: str) -> str:
        """The row label of a fact in dimension ``dim`` (``institution`` or ``municipality``)."""
        return self.institution(inst) if dim == "institution" else self.municipality(muni)


_DIMENSIONS = (("institution", "Institution"), ("municipality", "Kommune"))
_DIM_DA = {"institution": "institution", "municipality": "kommune"}


def _by_month_table(key: str, title: str, label: str, counts: Mapping[tuple[str, str], int],
                    months: Sequence[str], note: str = "", hide: Iterable[int] = ()) -> Table:
    units = sorted({u for u, _ in counts})
    values = [[counts.get((u, m), 0) for m in months] for u in units]
    return count_table(key, title, (label,), [(u,) for u in units], months, values, note=note,
                       hide_total_row=hide)


def _event_tables(events: Sequence[q.SchoolEventRow], period: Period, names: _Names) -> list[Table]:
    months = period.months()
    out = []
    kinds = (("enrolment", "enrolments", "Optagelser"), ("completion", "completions", "Gennemførte"),
             ("concern_flag", "concern_flags", "Bekymringsmærker (frafaldstruet)"))
    for kind, key, title in kinds:
        by_dim: dict[str, Counter[tuple[str, str]]] = {dim: Counter() for dim, _ in _DIMENSIONS}
        for e in events:
            m = period.month_of(e.event_date) if e.kind == kind else None
            if m is not None:
                for dim, counts in by_dim.items():
                    counts[(names.unit(dim, e.institution, e.municipality), m)] += 1

        def build(hide: frozenset[int], key: str = key, title: str = title,
                  by_dim: dict[str, Counter[tuple[str, str]]] = by_dim) -> list[Table]:
            return [_by_month_table(f"{key}_by_{dim}", f"{title} pr. {_DIM_DA[dim]} og måned", label,
                                    by_dim[dim], months, hide=hide) for dim, label in _DIMENSIONS]

        out += linked(build)
    return out


def _reason(code: str) -> str:
    return code if code in REASON_CODES else UNKNOWN


def _dropout_tables(events: Sequence[q.SchoolEventRow], period: Period, names: _Names) -> list[Table]:
    codes = [*REASON_CODES, UNKNOWN]
    columns = [f"{c} {REASON_CODES[c]}" if c in REASON_CODES else UNKNOWN for c in codes]
    counts: dict[str, dict[tuple[str, str], Counter[str]]] = {d: defaultdict(Counter) for d, _ in _DIMENSIONS}
    lags: dict[str, dict[tuple[str, str], list[int]]] = {d: defaultdict(list) for d, _ in _DIMENSIONS}
    for e in events:
        m = period.month_of(e.event_date) if e.kind == "dropout" else None
        if m is None:
            continue
        for dim, _ in _DIMENSIONS:
            unit = names.unit(dim, e.institution, e.municipality)
            counts[dim][(unit, m)][_reason(e.reason_code)] += 1
            lags[dim][(unit, m)].append(report_lag_days(e))

    def build(hide: frozenset[int]) -> list[Table]:
        return [count_table(
            f"dropouts_by_{dim}", f"Afbrud pr. {_DIM_DA[dim]}, måned og årsag", (label, "Måned"),
            sorted(counts[dim]), columns, [[counts[dim][k][c] for c in codes] for k in sorted(counts[dim])],
            note="Årsag: afbrudsårsagskoden fra skolens indberetning (netværkets kodeliste).",
            hide_total_row=hide) for dim, label in _DIMENSIONS]

    out = linked(build)
    for dim, label in _DIMENSIONS:
        rows: list[tuple[tuple[str, ...], tuple[Cell, ...]]] = []
        for k in sorted(lags[dim]):
            days = lags[dim][k]
            hidden = is_small(len(days))
            med, top = pystats.median(days), max(days)
            rows.append((k, (COMPLEMENTARY, COMPLEMENTARY) if hidden else
                         (int(med) if float(med).is_integer() else float(med), top)))
        out.append(Table(f"report_lag_by_{dim}", f"Indberetningstid for afbrud pr. {_DIM_DA[dim]} og måned",
                         (label, "Måned"), ("Median, dage", "Maks, dage"), tuple(rows),
                         note="Dage fra afbruddets dato til filen nåede stafet. "
                              "Skjult (x) ved under 5 afbrud."))
    return out


def _transition_table(cases: Sequence[q.CaseRow], period: Period, names: _Names) -> Table:
    counts: Counter[tuple[str, str]] = Counter()
    for c in cases:
        m = period.month_of(c.meeting_date or _local_day(c.received_at))
        if m is not None:
            counts[(names.municipality(c.municipality), m)] += 1
    return _by_month_table("transitions_by_municipality", "Overgangssager (efterværn) pr. kommune og måned",
                           "Kommune", counts, period.months(),
                           note="Måned: overgangsmødets dato, ellers den dag sagen nåede stafet.")


# --- duties -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DutyOutcome:
    """One duty with its due date and its evidence date (None: no evidence yet)."""

    rule: str
    due: date
    evidence: date | None
    institution: str = ""
    municipality: str = ""

    @property
    def outcome(self) -> str:
        """``on_time`` (evidence on or before the due date), ``late`` (after it) or ``open``."""
        if self.evidence is None:
            return "open"
        return "on_time" if self.evidence <= self.due else "late"


def _first_on_or_after(days: Iterable[date], start: date, today: date) -> date | None:
    return min((d for d in days if start <= d <= today), default=None)


_DROPOUT_EVIDENCE: dict[str, Callable[[YouthFacts, str], Iterable[date]]] = {
    "dropout_contact": lambda f, uu: f.contacts_by(uu),
    "dropout_contact_custody": lambda f, uu: f.contacts_by(uu, "custody_holder"),
    "dropout_agreement": lambda f, _uu: f.agreements,
}
"""What closes each dropout rule in :func:`stafet.duties.deadlines.dropout_deadlines`."""


def duty_outcomes(facts: Iterable[YouthFacts], network: Network, today: date,
                  settings: DutySettings | None = None) -> list[DutyOutcome]:
    """The duties of the youths' own records, with their evidence.

    Every counted rule but ``handover_ack``, ``grundskole_transition`` and ``move_handover``
    (:func:`handover_outcomes`, :func:`register_outcomes`, :func:`move_outcomes`).

    Which duties exist and their due dates come from the rules of
    :mod:`stafet.duties.deadlines`, called with the evidence taken away (so a met duty is
    still found); the evidence is what closes each rule there, dated no later than ``today``
    (``docs/statistics.md`` has the table). ``settings``: the clocks (rules.yaml's by default).
    """
    cfg = settings or duty_settings()
    guidance = register_rules.guidance_lookup(network)
    jobs = job_centre_lookup(network)
    out: list[DutyOutcome] = []
    for f in facts:
        enrolments = [e for e in f.events if e.kind == "enrolment"]
        for ev in f.events:
            if ev.kind != "dropout":
                continue
            bare = YouthFacts(f.youth, f.birth_date, events=[*enrolments, ev])
            for d in dropout_deadlines(bare, guidance, cfg.clock("dropout_contact", 5),
                                       cfg.clock("dropout_agreement", 30)):
                if d.rule not in _DROPOUT_EVIDENCE:
                    continue  # a rule this report does not know the evidence of
                evidence = _DROPOUT_EVIDENCE[d.rule](f, d.responsible)
                out.append(DutyOutcome(d.rule, d.due, _first_on_or_after(evidence, ev.day, today),
                                       ev.institution, ev.municipality))
            for d in first_contact_deadlines(bare, guidance, today, cfg.clock("dropout_first_contact", 10)):
                met = _first_on_or_after(f.contacts_by(d.responsible), ev.day, today)
                out.append(DutyOutcome(d.rule, d.due, met, ev.institution, ev.municipality))
        out += _concern_outcomes(f, guidance, today, cfg)
        out += _order_outcomes(f, jobs, today, cfg)
        follow = _followup_outcome(f, guidance, today)
        if follow is not None:
            out.append(follow)
        for c in f.cases:
            bare = YouthFacts(f.youth, f.birth_date, cases=[replace(c, meeting_date=None)])
            for d in transition_deadlines(bare, lambda _c: "", today):
                met = c.meeting_date if c.meeting_date is not None and (
                    c.meeting_date <= today or c.meeting_date <= d.due) else None
                out.append(DutyOutcome(d.rule, d.due, met, "", c.municipality))
    return out


def _concern_outcomes(f: YouthFacts, guidance: Callable[[str], str | None], today: date,
                      cfg: DutySettings) -> list[DutyOutcome]:
    """``concern_contact`` per concern flag and ``absence_concern`` per school's latest absence figure.

    Each judged on its own day (the rule stops tracking a flag after the flag's lifetime; the
    statistics count it in the month it fell due). Evidence: the UU's earliest contact with
    the school's study counsellor on or after the flag (the absence figure).
    """
    window, out = concern_window_days(), []

    def evidence(uu: str, start: date) -> date | None:
        return _first_on_or_after(f.contacts_by(uu, "school_counsellor"), start, today)

    clock = cfg.clock("concern_contact", 3)
    for fl in f.flags:
        bare = YouthFacts(f.youth, f.birth_date, flags=[fl])
        for d in concern_deadlines(bare, guidance, fl.day, working_days=clock,
                                   absence_threshold=cfg.absence_threshold, max_age_days=window):
            out.append(DutyOutcome(d.rule, d.due, evidence(d.responsible, fl.day), fl.institution,
                                   fl.municipality))
    latest: dict[str, Any] = {}
    for a in sorted(f.absences, key=lambda a: a.day):
        latest[a.institution] = a
    for a in latest.values():
        bare = YouthFacts(f.youth, f.birth_date, events=f.events, flags=f.flags, absences=[a])
        for d in concern_deadlines(bare, guidance, a.day, working_days=cfg.clock("absence_concern", clock),
                                   absence_threshold=cfg.absence_threshold, max_age_days=window):
            if d.rule == "absence_concern":
                out.append(DutyOutcome(d.rule, d.due, evidence(d.responsible, a.day), a.institution,
                                       a.municipality))
    return out


def _order_outcomes(f: YouthFacts, jobs: Callable[[str], str | None], today: date,
                    cfg: DutySettings) -> list[DutyOutcome]:
    """``order_start`` and ``first_interview`` for each education order that was ever active.

    The order as it stood when it became active (its latest ``AKTIV`` status), so an order
    that ended since is still counted. Evidence: the earliest enrolment (``order_start``),
    the earliest held interview (``first_interview``) on or after the order's status date.
    """
    active: dict[str, Any] = {}
    for o in sorted(f.order_facts, key=lambda o: o.status_date):
        if o.status == "AKTIV":
            active[o.order_id] = o
    out = []
    for o in active.values():
        bare = YouthFacts(f.youth, f.birth_date, order_facts=[o])
        for d in order_deadlines(bare, jobs, today, cfg.clock("first_interview", 7)):
            days = ([e.day for e in f.events if e.kind == "enrolment"] if d.rule == "order_start"
                    else list(f.interviews))
            out.append(DutyOutcome(d.rule, d.due, _first_on_or_after(days, o.status_date, today), "",
                                   o.municipality))
    return out


def _followup_outcome(f: YouthFacts, guidance: Callable[[str], str | None],
                      today: date) -> DutyOutcome | None:
    """``followup_18_24``: its first cycle, the two follow-ups due a year after the youth entered the group.

    The rule recurs; the statistics count the first 12 months of a youth in the group today
    (the later of the 18th birthday and the latest dropout): on time when the second UU
    follow-up is dated on or before the due date, late after it, open without it.
    """
    bare = YouthFacts(f.youth, f.birth_date, events=f.events, orders=f.orders)
    d = followup_deadline(bare, guidance, today)
    if d is None:
        return None
    drop = max((e for e in f.events if e.kind == "dropout"), key=lambda e: e.day)
    start = max(anniversary(f.birth_date, 18), drop.day)
    done = sorted(c for c in f.contacts if start <= c <= today)
    return DutyOutcome(d.rule, d.due, done[1] if len(done) >= 2 else None, "", drop.municipality)


def register_outcomes(facts: Iterable[Any], network: Network, today: date) -> list[DutyOutcome]:
    """``grundskole_transition`` per pupil (its latest record), by the youth's home municipality.

    Judged on the day it falls due at the latest (the clock drops a pupil whose grundskole has
    ended); evidence: the earliest UU contact on or after the duty's start. A duty that lapsed
    (an enrolment on or after the start, before any contact) is not counted.
    """
    guidance = register_rules.guidance_lookup(network)
    out = []
    for f in facts:
        p = register_rules.latest_pupil(f)
        if p is None:
            continue
        bare = replace(f, contacts=set(), events=[])
        d = register_rules.transition_due(bare, guidance, min(today, p.expected_end))
        if d is None:
            continue
        met = _first_on_or_after(f.contacts, d.due, today)
        if met is None and any(k == "enrolment" and d.due <= day <= today for day, k in f.events):
            continue  # lapsed: the youth started a youth education
        out.append(DutyOutcome(d.rule, d.due, met, "", register_rules.home_municipality(f, d.due)))
    return out


def move_outcomes(moves: Iterable[Any], handovers: Iterable[Any]) -> list[DutyOutcome]:
    """``move_handover`` per move inside the network: due the day of the move, by the old municipality.

    Evidence: the Danish day the new UU acknowledged the old UU's handover of the move.
    """
    acks: dict[tuple[int, str, str], date] = {}
    for h in handovers:
        if h.acknowledged_at is None:
            continue
        for rid in h.record_ids or ():
            key = (int(rid), h.sender, h.recipient)
            day = _local_day(h.acknowledged_at)
            acks[key] = min(day, acks.get(key, day))
    return [DutyOutcome(move_rules.RULE, m.day, acks.get((m.record, m.old_uu, m.new_uu)), "",
                        m.from_municipality)
            for m in moves if m.old_uu is not None and m.new_uu is not None and m.old_uu != m.new_uu]


def handover_outcomes(handovers: Iterable[Any], network: Network, today: date) -> list[DutyOutcome]:
    """``handover_ack`` for every handover that left or is to leave (not held back, not cancelled).

    By the sender: its institution number when the sender is an institution, its municipality.
    """
    out = []
    for h in handovers:
        d = handover_deadline(h, network.ack_limit_hours)
        ack = _local_day(h.acknowledged_at) if h.acknowledged_at is not None else None
        org = network.members.get(h.sender)
        inst = h.sender if org is not None and org.kind is OrgKind.INSTITUTION else ""
        out.append(DutyOutcome("handover_ack", d.due, ack if ack is not None and ack <= today else None,
                               inst, org.municipality if org is not None else ""))
    return out


def _duty_tables(duties: Sequence[DutyOutcome], period: Period, names: _Names) -> list[Table]:
    out = []
    for dim, label in _DIMENSIONS:
        counts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        for d in duties:
            m = period.month_of(d.due)
            if m is None or (dim == "institution" and not d.institution):
                continue
            unit = names.unit(dim, d.institution, d.municipality)
            counts[(unit, m, DUTY_RULES.get(d.rule, d.rule))][d.outcome] += 1
        keys = sorted(counts)
        out.append(count_table(
            f"duties_by_{dim}", f"Pligter pr. {_DIM_DA[dim]}, forfaldsmåned og regel",
            (label, "Måned", "Pligt"), keys, DUTY_OUTCOMES_DA,
            [[counts[k][o] for o in DUTY_OUTCOMES] for k in keys],
            note="Rettidigt: dokumentation dateret senest på fristen; for sent: efter fristen; "
                 "åben: ingen dokumentation endnu."))
    return out


# --- opsporing ------------------------------------------------------------------------
def _register_rules() -> Any:
    """:mod:`stafet.duties.youth_register` (the opsporing list), or None where it does not exist."""
    try:
        m = importlib.import_module("stafet.duties.youth_register")
    except ModuleNotFoundError as e:
        if e.name != "stafet.duties.youth_register":
            raise
        return None
    needed = ("list_items", "load_register_facts", "guidance_lookup")
    return m if all(callable(getattr(m, n, None)) for n in needed) else None


def _opsporing_table(ctx: Context, period: Period, names: _Names, today: date) -> tuple[Table, bool]:
    """UU's opsporing list (15–17 not in education, activity or contact) at each month's end.

    A month's end after ``today`` is judged on ``today``. Per the municipality the youth is
    registered in; no totals across months (a list's size is a stock, not a flow).
    """
    rules = _register_rules()
    title = "Opsporingsliste (15–17 år) pr. kommune ved månedens udgang"
    if rules is None:
        return Table("opsporing_by_municipality", title, ("Kommune",), ("Status",),
                     ((("alle",), (OPSPORING_UNAVAILABLE,)),),
                     note="Ikke 0: listen findes ikke endnu."), False
    months = period.months()
    counts: Counter[tuple[str, str]] = Counter()
    with ctx.store.session() as s:
        facts = list(rules.load_register_facts(s).values())
    guidance = rules.guidance_lookup(ctx.network)
    d = period.first
    for m in months:
        day = min(_next_month(d) - timedelta(days=1), today)
        for item in rules.list_items(facts, guidance, day, "15-17"):
            counts[(names.municipality(str(item.municipality or "")), m)] += 1
        d = _next_month(d)
    units = sorted({u for u, _ in counts})
    return count_table("opsporing_by_municipality", title, ("Kommune",), [(u,) for u in units], months,
                       [[counts.get((u, m), 0) for m in months] for u in units], row_totals=False,
                       note="Unge på 15–17 år uden uddannelse, aktivitet eller kontakt med UU."), True


# --- cohorts --------------------------------------------------------------------------
_EVENT_ORDER = {"dropout": 0, "completion": 1, "enrolment": 2}  # the same day: in education wins


def cohort_status(events: Sequence[q.SchoolEventRow], cut: date) -> bool:
    """In education or completed on ``cut``: a completion by then, or the latest event an enrolment."""
    known = sorted((e for e in events if e.kind in _EVENT_ORDER and e.event_date <= cut),
                   key=lambda e: (e.event_date, _EVENT_ORDER[e.kind]))
    if any(e.kind == "completion" for e in known):
        return True
    return bool(known) and known[-1].kind == "enrolment"


def municipality_on(regs: Sequence[q.RegistrationRow], events: Sequence[q.SchoolEventRow], cut: date) -> str:
    """The youth's municipality on ``cut``: the register's, else the latest school event's; "" unknown."""
    current = [r for r in regs if r.moved_in <= cut and (r.moved_out is None or r.moved_out > cut)]
    if current:
        return max(current, key=lambda r: r.moved_in).municipality
    known = [e for e in events if e.event_date <= cut and e.municipality]
    return max(known, key=lambda e: e.event_date).municipality if known else ""


def _cohort_table(events: Sequence[q.SchoolEventRow], regs: Sequence[q.RegistrationRow],
                  births: Mapping[str, date], period: Period, names: _Names) -> Table:
    by_youth: dict[str, list[q.SchoolEventRow]] = defaultdict(list)
    for e in events:
        by_youth[e.youth].append(e)
    regs_of: dict[str, list[q.RegistrationRow]] = defaultdict(list)
    for r in regs:
        regs_of[r.youth].append(r)
    end = period.end
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for youth, born in births.items():
        if not end.year - 26 <= born.year <= end.year - 15:  # the latest final cohort onwards
            continue
        cut = min(anniversary(born, 25), end)
        muni = municipality_on(regs_of.get(youth, []), by_youth.get(youth, []), cut)
        if not muni:
            continue
        done = cohort_status(by_youth.get(youth, []), cut)
        counts[(names.municipality(muni), born.year)][0 if done else 1] += 1
    keys = sorted(counts)
    t = count_table("cohorts_by_municipality", "Årgange: i uddannelse eller gennemført ved 25 år",
                    ("Kommune", "Årgang"), [(u, str(y)) for u, y in keys],
                    ("I uddannelse eller gennemført", "Ikke i uddannelse"), [counts[k] for k in keys],
                    col_totals=False,
                    note="Foreløbig: årgangen er ikke fyldt 25 ved periodens udgang; opgjort på periodens "
                         "sidste dag. Kommune: folkeregistreringen, ellers skolens bopælskommune.")
    rows = []
    for (lab, vals), (_, year) in zip(t.rows, keys, strict=True):
        yes, no = vals[0], vals[1]
        if isinstance(yes, int) and isinstance(no, int) and yes + no:
            share: Cell = round(100 * yes / (yes + no), 1)
            reached = tuple("ja" if yes / (yes + no) >= tg.share else "nej" for tg in TARGETS)
        else:
            share, reached = COMPLEMENTARY, (COMPLEMENTARY,) * len(TARGETS)
        final = "endelig" if anniversary(date(year, 12, 31), 25) <= end else "foreløbig"
        rows.append((lab, (*vals, share, *reached, final)))
    return replace(t, columns=(*t.columns, "Andel %", *[f"Mål {round(100 * tg.share)} %" for tg in TARGETS],
                               "Status"), rows=tuple(rows))


# --- putting it together --------------------------------------------------------------
def compute_statistics(ctx: Context, period: Period, *, today: date | None = None) -> Statistics:
    """Every table for ``period``, judged as of ``today`` (default: the local date).

    Args:
        ctx: an opened context (store, network).
        period: the months to report.
        today: evidence dated after it does not count (duties), and the opsporing list is
            never asked about a later day.

    Returns:
        The :class:`Statistics`, every count suppressed; its charts drawn from published cells only.
    """
    today = today or datetime.now(LOCAL_TZ).date()
    names = _Names(ctx.network)
    with ctx.store.session() as s:
        events = q.school_events(s)
        cases = q.transition_cases(s)
        regs = q.registrations(s)
        births = q.births(s)
        facts = load_facts(s)
        sent = outbox.of_statuses(s, ("pending", "sent", "failed", "acknowledged"))
        duties = duty_outcomes(facts.values(), ctx.network, today)
        duties += register_outcomes(register_rules.load_register_facts(s).values(), ctx.network, today)
        duties += move_outcomes(move_rules.moves_of(s, ctx.network, today),
                                outbox.of_rule(s, move_rules.RULE))
        duties += handover_outcomes(sent, ctx.network, today)
    stats = Statistics(ctx.network.name, period, today)
    stats.tables += _event_tables(events, period, names)
    stats.tables += _dropout_tables(events, period, names)
    stats.tables.append(_transition_table(cases, period, names))
    stats.tables += _duty_tables(duties, period, names)
    opsporing, stats.opsporing_available = _opsporing_table(ctx, period, names, today)
    stats.tables.append(opsporing)
    stats.tables.append(_cohort_table(events, regs, births, period, names))
    stats.charts = _charts(stats)
    return stats


def _total_row(t: Table) -> dict[str, int]:
    """The published totals row of a table by column, shown cells only (not the grand total)."""
    labs, vals = t.rows[-1]
    if labs[0] != TOTAL:
        return {}
    return {c: v for c, v in zip(t.columns, vals, strict=True) if c != TOTAL and isinstance(v, int)}


def _charts(stats: Statistics) -> list[str]:
    series = {}
    for key, name in (("enrolments_by_municipality", "Optagelser"), ("dropouts_by_municipality", "Afbrud"),
                      ("completions_by_municipality", "Gennemførte")):
        t = stats.table(key)
        if key.startswith("dropouts"):  # rows by (unit, month): a month's sum of published row totals
            per_month: dict[str, int] = defaultdict(int)
            hidden: set[str] = set()
            for labs, vals in t.rows[:-1]:
                if isinstance(vals[-1], int):
                    per_month[labs[1]] += vals[-1]
                else:
                    hidden.add(labs[1])  # a month with a hidden unit is left out of the line
            series[name] = [(m, v) for m, v in sorted(per_month.items()) if m not in hidden]
        else:
            series[name] = list(_total_row(t).items())
    out = [line_svg(series, title="Netværket pr. måned", y_label="Antal")]
    reasons = _total_row(stats.table("dropouts_by_municipality"))
    if reasons:
        out.append(bar_svg({k.split(" ", 1)[0]: v for k, v in reasons.items()},
                           title="Afbrud pr. årsagskode i perioden", y_label="Antal"))
    return out


# --- outputs --------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(v: Cell) -> Cell:
    """A text a spreadsheet would read as a formula gets a leading ``'``."""
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        return "'" + v
    return v


def to_csv(t: Table) -> str:
    """One table as ``;``-separated CSV (header, rows; suppressed cells as their marks)."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
    w.writerow([_inert(h) for h in t.header])
    for row in t.cells():
        w.writerow([_inert(v) for v in row])
    return buf.getvalue()


def to_document(stats: Statistics) -> dict[str, Any]:
    """The JSON document (format ``stafet.statistics/1``): counts only, suppressed as published."""
    return {
        "format": FORMAT,
        "network": stats.network,
        "from": f"{stats.period.first:%Y-%m}",
        "to": f"{stats.period.last:%Y-%m}",
        "as_of": stats.today.isoformat(),
        "suppression": {"threshold": THRESHOLD, "primary": PRIMARY, "complementary": COMPLEMENTARY,
                        "zero_shown": True},
        "targets": [{"share": tg.share, "source": tg.source, "quote": tg.quote} for tg in TARGETS],
        "opsporing": {"available": stats.opsporing_available,
                      "note": "" if stats.opsporing_available else OPSPORING_UNAVAILABLE},
        "tables": {t.key: {"title": t.title, "header": t.header, "rows": t.cells(),
                           "suppressed": t.suppressed, "note": t.note} for t in stats.tables},
    }


def to_markdown(stats: Statistics) -> str:
    """The Prefect artifact: the network's monthly totals and the cohorts, counts only, suppressed."""
    lines = [f"# Statistik {stats.network} {stats.period.first:%Y-%m} – {stats.period.last:%Y-%m}", "",
             f"Små tal (1–4) vises som `{PRIMARY}`; `{COMPLEMENTARY}` er skjult, så de ikke kan regnes ud.",
             ""]

    def md(headers: Sequence[Any], rows: Sequence[Sequence[Any]]) -> None:
        lines.append("| " + " | ".join(str(h) for h in headers) + " |")
        lines.append("|" + "---|" * len(headers))
        lines.extend("| " + " | ".join(str(v).replace("|", "/") for v in r) + " |" for r in rows)
        lines.append("")

    months = stats.period.months()
    rows = []
    for key in ("enrolments_by_municipality", "completions_by_municipality", "concern_flags_by_municipality",
                "transitions_by_municipality"):
        t = stats.table(key)
        vals = t.rows[-1][1]
        rows.append([t.title.split(" pr. ")[0], *vals])
    lines.append("## Netværket pr. måned")
    md(["", *months, TOTAL], rows)
    t = stats.table("dropouts_by_municipality")
    lines.append("## Afbrud pr. årsag (perioden)")
    md(t.columns, [t.rows[-1][1]])
    t = stats.table("duties_by_municipality")
    lines.append("## Pligter (perioden)")
    md(t.columns, [t.rows[-1][1]])
    lines.append("## Årgange ved 25 år")
    t = stats.table("cohorts_by_municipality")
    md(t.header, t.cells())
    if not stats.opsporing_available:
        lines.append(f"Opsporingsliste: {OPSPORING_UNAVAILABLE}.")
    return "\n".join(lines) + "\n"


_ENV = Environment(loader=PackageLoader("stafet.reports", "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)


def render_html(stats: Statistics) -> str:
    """The report as one self-contained Danish HTML page (no script, no external asset)."""
    return _ENV.get_template("statistics.html").render(
        s=stats, tables=stats.tables, charts=stats.charts, targets=TARGETS, primary=PRIMARY,
        complementary=COMPLEMENTARY, reporting_quote=REPORTING_QUOTE, threshold=THRESHOLD,
        opsporing_note=OPSPORING_UNAVAILABLE, numeric=lambda v: isinstance(v, int | float) or v in (
            PRIMARY, COMPLEMENTARY), inert=_shown_da)


def _shown_da(v: Cell) -> Cell:
    """A cell as the Danish page shows it: a decimal comma, formula-looking text made inert."""
    if isinstance(v, float):
        return f"{v:.1f}".replace(".", ",")
    return _inert(v)


def write_outputs(stats: Statistics, out: Path) -> dict[str, Any]:
    """Write ``statistics.html``, ``statistics.json`` and one ``<table>.csv`` per table into ``out`` (0600).

    Returns the paths: ``{"html": …, "json": …, "csv": [… ]}``.
    """
    private_dir(out)
    html_path, json_path = out / "statistics.html", out / "statistics.json"
    write_private(html_path, render_html(stats).encode("utf-8"))
    doc = json.dumps(to_document(stats), ensure_ascii=False, indent=2) + "\n"
    write_private(json_path, doc.encode("utf-8"))
    csvs = []
    for t in stats.tables:
        p = out / f"{t.key}.csv"
        write_private(p, to_csv(t).encode("utf-8-sig"))  # the BOM: spreadsheets read UTF-8
        csvs.append(str(p))
    return {"html": str(html_path), "json": str(json_path), "csv": csvs}


__all__ = ["COMPLEMENTARY", "FORMAT", "PRIMARY", "TARGETS", "THRESHOLD", "DutyOutcome", "Period",
           "Statistics", "Table", "compute_statistics", "count_table", "duty_outcomes", "handover_outcomes",
           "is_small", "move_outcomes", "register_outcomes", "render_html", "suppress", "to_csv",
           "to_document", "to_markdown", "with_totals", "write_outputs"]
