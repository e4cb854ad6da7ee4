"""The duty clock: legal deadlines, follow-ups and unacknowledged handovers.

Every deadline is recomputed from the store on each run; nothing here is stored.
The rules are pure functions over a youth's facts (:class:`YouthFacts`); one
query (:func:`load_facts`) gathers those facts, and :func:`compute_deadlines`
joins the two and adds the masked CPR for display.

The rules, each with the seed sentence it comes from (``docs/deadlines.md`` has the
full reading and the choices made where the documents are silent):

``dropout_contact``
    Thy: "UU skal inden for 5 arbejdsdag kontakte den unge og forældremyndigheden".
    A dropout of a youth aged 15–17 *on the dropout date* → the UU of the youth's
    home municipality must contact the youth within 5 working days (weekends and
    Danish public holidays skipped; counting starts the day after the dropout).
    Met by any UU education-plan contact dated on or after the dropout.
``dropout_agreement``
    Thy: "Indenfor 30 dage skal der foreligge en aftale om en ny uddannelse/aktivitet".
    Same dropouts; due 30 calendar days after the dropout. Met by a plan
    ``agreement_date`` on or after the dropout.
    Both dropout rules lapse when the youth enrols again on or after the dropout.
``followup_18_24``
    Thy: "UU henvender sig mindst 2 gange om året for at følge op med mindre, den unge
    er i arbejde (hvad der svarer til 30 timer/uge) eller i offentlig forsørgelse".
    Youths aged 18–24 today whose latest school event is a dropout (and who never
    completed) must have had two follow-ups in every 12 months since they entered
    the group; exempt while the latest education order is ``AKTIV`` (uddannelseshjælp:
    public support). No record carries working hours, so work never exempts.
``transition_meeting``
    Viborg: "At alle unge som er i målgruppen kommer på overgangsmøder – senest ved
    det 17 år." A transition case of a youth who needs support after 18 (SEL §76,
    §85, or a receiver) without a meeting date is due on the 17th birthday.
``handover_ack``
    Viborg: "Vi slipper ikke de unge, før en anden tager over." A handover not
    acknowledged within ``ack_limit_hours`` of being sent (or planned) is overdue
    for the sender.

An item is ``overdue`` when today is after its due date, ``due_soon`` when it falls
due within :data:`WINDOW_DAYS` days (today included), else ``open``.

Example::

    ctx = open_context("network.yaml")
    items = compute_deadlines(ctx, date.today())
    deadlines_summary(items)   # {"overdue": 3, "due_soon": 1, "open": 7, ...}
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import holidays

from stafet.core.config import Network
from stafet.core.cpr import age_on
from stafet.core.errors import DataError
from stafet.core.models import OrgKind
from stafet.store import Session, outbox, records, youths
from stafet.store.schema import Handover

if TYPE_CHECKING:
    from stafet.context import Context

WINDOW_DAYS = 7
"""An open item is ``due_soon`` when it falls due within this many days."""

RULES: dict[str, str] = {
    "dropout_contact": "UU contacts a 15–17-year-old and the parents within 5 working days of a dropout",
    "dropout_agreement": "a new agreement on education or activity within 30 days of a dropout (15–17)",
    "followup_18_24": "UU follows up at least twice a year on an 18–24-year-old not in education",
    "transition_meeting": "the family department holds the transition meeting no later than age 17",
    "handover_ack": "a handover is acknowledged by its receiver within the network's limit",
}
"""Rule id → what the duty is (stable ids: they appear in the JSON output)."""

STATUSES = ("overdue", "due_soon", "open")
LOCAL_TZ = ZoneInfo("Europe/Copenhagen")
HANDOVER_OPEN = ("pending", "sent", "failed")  # held: no package exists; acknowledged: done
SUPPORT_RECEIVERS = ("socialafdeling", "jobcenter")


# --- calendar -----------------------------------------------------------------------
@lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[date]:
    """Danish public holidays (helligdage) of ``year``, from the ``holidays`` library.

    Only the library's ``public`` category: Grundlovsdag, 24 and 31 December and
    1 May are not helligdage and count as working days. Store Bededag is a holiday
    up to 2023 only (abolished from 2024); the library knows this.
    """
    return frozenset(holidays.Denmark(years=year))


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a Danish public holiday."""
    return day.weekday() < 5 and day not in _public_holidays(day.year)


def add_working_days(start: date, n: int) -> date:
    """The ``n``-th working day after ``start`` (``start`` itself never counts).

    >>> add_working_days(date(2026, 3, 30), 5)  # Monday before Easter
    datetime.date(2026, 4, 9)
    """
    if n < 0:
        raise ValueError("n must not be negative")
    day, left = start, n
    while left:
        day += timedelta(days=1)
        if is_working_day(day):
            left -= 1
    return day


def anniversary(day: date, years: int) -> date:
    """``day`` plus whole ``years``; 29 February falls on 1 March in other years.

    The same convention as :func:`stafet.core.cpr.age_on`, so a youth born on a leap day
    turns 17 on ``anniversary(born, 17)``.
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


# --- the items ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Deadline:
    """One open duty: who must do what for which youth, by when.

    ``days_overdue`` is ``today - due`` in days when overdue, else 0;
    ``days_left`` is ``due - today`` when not overdue, else 0. ``reference`` names
    the fact that started the clock (a dropout, a case, a package), never a CPR.
    """

    rule: str
    youth: str
    responsible: str
    due: date
    reference: str
    status: str = "open"
    days_overdue: int = 0
    days_left: int = 0
    masked_cpr: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stable JSON shape of one item (``docs/deadlines.md``)."""
        return {"rule": self.rule, "status": self.status, "due": self.due.isoformat(),
                "days_overdue": self.days_overdue, "days_left": self.days_left,
                "responsible": self.responsible, "youth": self.youth,
                "masked_cpr": self.masked_cpr, "reference": self.reference}


def classify(item: Deadline, today: date, window_days: int = WINDOW_DAYS) -> Deadline:
    """``item`` with status, days overdue and days left as seen on ``today``."""
    delta = (today - item.due).days
    if delta > 0:
        return replace(item, status="overdue", days_overdue=delta, days_left=0)
    status = "due_soon" if -delta <= window_days else "open"
    return replace(item, status=status, days_overdue=0, days_left=-delta)


def sort_key(item: Deadline) -> tuple[int, int, str, str, str, str]:
    """Overdue first (longest overdue first), then by due date, rule, youth, reference."""
    return (STATUSES.index(item.status), -item.days_overdue, item.due.isoformat(), item.rule,
            item.youth, item.reference)


# --- facts --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SchoolFact:
    """A school event as the rules need it."""

    kind: str  # enrolment | dropout | completion
    day: date
    institution: str
    municipality: str


@dataclass(frozen=True, slots=True)
class CaseFact:
    """A family-department transition case as the rules need it."""

    case_no: str
    meeting_date: date | None
    aftercare_sel76: bool
    support_sel85: bool
    receiver: str
    municipality: str = ""  # from the export's file name, when known


@dataclass(slots=True)
class YouthFacts:
    """Everything the rules read about one youth (by pseudonym; no CPR)."""

    youth: str
    birth_date: date
    events: list[SchoolFact] = field(default_factory=list)
    contacts: set[date] = field(default_factory=set)
    agreements: set[date] = field(default_factory=set)
    orders: list[tuple[date, str]] = field(default_factory=list)  # (status date, status)
    cases: list[CaseFact] = field(default_factory=list)


GuidanceFor = Callable[[str], str | None]
"""Municipality number → the id of the network's UU serving it, or None."""


# --- the rules (pure) ---------------------------------------------------------------
def dropout_deadlines(f: YouthFacts, guidance_for: GuidanceFor) -> list[Deadline]:
    """``dropout_contact`` and ``dropout_agreement`` for each dropout at age 15–17.

    The age on the dropout date decides: a youth who turns 18 before the deadline
    keeps it. A dropout whose municipality has no UU in the network is not tracked.
    """
    out: list[Deadline] = []
    enrolments = [e.day for e in f.events if e.kind == "enrolment"]
    for ev in f.events:
        if ev.kind != "dropout" or not 15 <= age_on(f.birth_date, ev.day) <= 17:
            continue
        uu = guidance_for(ev.municipality)
        if uu is None or any(d >= ev.day for d in enrolments):
            continue
        ref = f"dropout {ev.day.isoformat()} at {ev.institution}"
        if not any(c >= ev.day for c in f.contacts):
            out.append(Deadline("dropout_contact", f.youth, uu, add_working_days(ev.day, 5), ref))
        if not any(a >= ev.day for a in f.agreements):
            out.append(Deadline("dropout_agreement", f.youth, uu, ev.day + timedelta(days=30), ref))
    return out


_EVENT_ORDER = {"dropout": 0, "completion": 1, "enrolment": 2}  # same day: in education wins


def followup_deadline(f: YouthFacts, guidance_for: GuidanceFor, today: date) -> Deadline | None:
    """``followup_18_24``: two follow-ups in every 12 months for an 18–24 not in education.

    The clock starts at ``S`` = the later of the 18th birthday and the latest dropout.
    With contacts ``c1 < c2 < …`` on or after ``S`` (and not after today), the next
    follow-up is due one year after the second latest of ``[S, S, c1, c2, …]``: a
    year after ``S`` while fewer than two follow-ups exist, else a year after the
    second latest one (when the 12-month window would hold only one).
    """
    if not 18 <= age_on(f.birth_date, today) <= 24:
        return None
    events = sorted((e for e in f.events if e.kind in _EVENT_ORDER),
                    key=lambda e: (e.day, _EVENT_ORDER[e.kind]))
    if not events or events[-1].kind != "dropout" or any(e.kind == "completion" for e in events):
        return None  # in education, completed, or education status unknown
    latest_order = max(f.orders, default=None)
    if latest_order is not None and latest_order[1] == "AKTIV":
        return None  # on uddannelseshjælp: public support
    uu = guidance_for(events[-1].municipality)
    if uu is None:
        return None
    start = max(anniversary(f.birth_date, 18), events[-1].day)
    done = sorted(c for c in f.contacts if start <= c <= today)
    due = anniversary(([start, start, *done])[-2], 1)
    if due >= anniversary(f.birth_date, 25):
        return None  # the youth leaves the group before the next follow-up falls due
    recent = sum(1 for c in done if c > anniversary(today, -1))
    return Deadline("followup_18_24", f.youth, uu, due,
                    f"not in education since {start.isoformat()}; {recent} follow-up(s) in 12 months")


def transition_deadlines(f: YouthFacts, family_for: Callable[[CaseFact], str], today: date) -> list[Deadline]:
    """``transition_meeting``: a case needing support after 18 with no meeting by age 17.

    Due on the 17th birthday ("senest ved det 17 år"): a meeting that day is in time.
    A meeting date closes the case once held, or when planned on or before the due
    date. Cases of youths aged 23 or more (aftercare ends at 23) are not tracked.
    """
    if age_on(f.birth_date, today) >= 23:
        return []
    due = anniversary(f.birth_date, 17)
    out = []
    for c in f.cases:
        if not (c.aftercare_sel76 or c.support_sel85 or c.receiver in SUPPORT_RECEIVERS):
            continue
        if c.meeting_date is not None and (c.meeting_date <= today or c.meeting_date <= due):
            continue
        ref = f"case {c.case_no}" + (f", meeting planned {c.meeting_date.isoformat()}"
                                      if c.meeting_date else ", no meeting date")
        out.append(Deadline("transition_meeting", f.youth, family_for(c), due, ref))
    return out


def handover_deadline(h: Handover, ack_limit_hours: float) -> Deadline:
    """``handover_ack``: due ``ack_limit_hours`` after sending (or planning), for the sender.

    The due moment is turned into a Danish calendar date (store times are UTC).
    """
    start = h.sent_at or h.created_at
    due_at = (start + timedelta(hours=ack_limit_hours)).replace(tzinfo=UTC)
    ref = f"package {h.id} to {h.recipient} ({h.status})"
    return Deadline("handover_ack", h.youth, h.sender, due_at.astimezone(LOCAL_TZ).date(), ref)


# --- the store query ----------------------------------------------------------------
def load_facts(s: Session) -> dict[str, YouthFacts]:
    """Gather every youth's rule-relevant facts from the store (withdrawn records skipped)."""
    facts: dict[str, YouthFacts] = {}
    births = youths.births(s)
    kinds = ("enrolment", "dropout", "completion", "education_plan", "education_order", "transition_case")
    rows = records.live_facts(s, kinds)
    for rid, kind, youth, p, origin_municipality in rows:
        f = facts.get(youth)
        if f is None:
            f = facts[youth] = YouthFacts(youth, births[youth])
        try:
            _add_fact(f, kind, p, origin_municipality)
        except (KeyError, TypeError, ValueError):
            raise DataError("stored record does not fit its kind", rule="deadline_facts",
                            record=rid, kind=kind) from None
    return facts


def _day(v: Any) -> date | None:
    return date.fromisoformat(v) if v else None


def _add_fact(f: YouthFacts, kind: str, p: dict[str, Any], origin_municipality: str) -> None:
    if kind in ("enrolment", "dropout", "completion"):
        f.events.append(SchoolFact(kind, date.fromisoformat(p["event_date"]), str(p["institution"]),
                                   str(p["home_municipality"])))
    elif kind == "education_plan":
        f.contacts.update(date.fromisoformat(c[0]) for c in p.get("contacts") or ())
        if p.get("agreement_date"):
            f.agreements.add(date.fromisoformat(p["agreement_date"]))
    elif kind == "education_order":
        f.orders.append((date.fromisoformat(p["status_date"]), str(p["status"])))
    elif kind == "transition_case":
        f.cases.append(CaseFact(str(p["case_no"]), _day(p.get("meeting_date")),
                                bool(p["aftercare_sel76"]), bool(p["support_sel85"]),
                                str(p["receiver"]), origin_municipality or ""))


def _guidance(network: Network) -> GuidanceFor:
    cache: dict[str, str | None] = {}

    def find(municipality: str) -> str | None:
        if municipality not in cache:
            org = network.guidance_for(municipality)
            cache[municipality] = org.id if org else None
        return cache[municipality]

    return find


def _family(network: Network) -> Callable[[CaseFact], str]:
    """The family department responsible for a case: by the export's municipality.

    Falls back to the network's only family department, else ``""`` (unknown).
    """
    family = [o for o in network.members.values() if o.kind is OrgKind.FAMILY_SERVICES]

    def find(c: CaseFact) -> str:
        same = [o.id for o in family if o.municipality == c.municipality]
        if same:
            return same[0]
        return family[0].id if len(family) == 1 else ""

    return find


def deadlines_from_facts(facts: Iterable[YouthFacts], network: Network, today: date) -> list[Deadline]:
    """All open record-based items (every rule but ``handover_ack``), unclassified."""
    guidance, family = _guidance(network), _family(network)
    out: list[Deadline] = []
    for f in facts:
        out += dropout_deadlines(f, guidance)
        follow = followup_deadline(f, guidance, today)
        if follow is not None:
            out.append(follow)
        out += transition_deadlines(f, family, today)
    return out


def compute_deadlines(ctx: Context, today: date, *, window_days: int = WINDOW_DAYS) -> list[Deadline]:
    """Every open deadline on ``today``: overdue, due soon and open, sorted (:func:`sort_key`).

    Args:
        ctx: an opened context (store, vault, network).
        today: the day to judge by (the CLI's ``--today``; the flow passes its run date).
        window_days: how far ahead an item counts as ``due_soon``.

    Returns:
        One :class:`Deadline` per open duty, with the youth's masked CPR (``DDMMYY-xxxx``).
    """
    with ctx.store.session() as s:
        items = deadlines_from_facts(load_facts(s).values(), ctx.network, today)
        for h in outbox.of_statuses(s, HANDOVER_OPEN):
            items.append(handover_deadline(h, ctx.network.ack_limit_hours))
        masked: dict[str, str] = {}
        for youth in sorted({i.youth for i in items}):
            try:
                masked[youth] = ctx.store.cpr_of(s, youth).masked
            except DataError:
                masked[youth] = ""  # a handover for a youth this store does not hold
    done = [replace(classify(i, today, window_days), masked_cpr=masked.get(i.youth, "")) for i in items]
    return sorted(done, key=sort_key)


def deadlines_summary(items: Sequence[Deadline]) -> dict[str, int]:
    """Counts only (safe for a Prefect artifact): per status, and per ``rule.status``.

    Every rule and status appears, with 0 when nothing matches, so the shape is stable.
    """
    out: dict[str, int] = {st: 0 for st in STATUSES}
    out.update({f"{r}.{st}": 0 for r in RULES for st in STATUSES})
    for i in items:
        out[i.status] += 1
        out[f"{i.rule}.{i.status}"] += 1
    return out


def by_responsible(items: Iterable[Deadline]) -> dict[str, list[Deadline]]:
    """Items grouped by responsible organisation (for per-member reports)."""
    groups: dict[str, list[Deadline]] = defaultdict(list)
    for i in items:
        groups[i.responsible].append(i)
    return dict(groups)


def to_document(items: Sequence[Deadline], *, network: str, today: date, org: str | None = None,
                window_days: int = WINDOW_DAYS) -> dict[str, Any]:
    """The stable JSON document of ``stafet deadlines --json`` (format ``stafet.deadlines/1``).

    Only overdue and due-soon items are listed (filtered to ``org`` when given).
    """
    shown = [i for i in items if i.status in ("overdue", "due_soon")
             and (org is None or i.responsible == org)]
    return {
        "format": "stafet.deadlines/1",
        "network": network,
        "today": today.isoformat(),
        "window_days": window_days,
        "org": org,
        "counts": {"overdue": sum(i.status == "overdue" for i in shown),
                   "due_soon": sum(i.status == "due_soon" for i in shown)},
        "items": [i.as_json() for i in shown],
    }


__all__ = ["RULES", "WINDOW_DAYS", "CaseFact", "Deadline", "SchoolFact", "YouthFacts",
           "add_working_days", "anniversary", "by_responsible", "classify", "compute_deadlines",
           "deadlines_from_facts", "deadlines_summary", "dropout_deadlines", "followup_deadline",
           "handover_deadline", "is_working_day", "load_facts", "to_document", "transition_deadlines"]
