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
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from stafet.duties import moves, youth_register
from stafet.duties.routing import concern_window_days
from stafet.store import Session, outbox, records, youths
from stafet.store import contacts as contact_store
from stafet.store.schema import Handover

if TYPE_CHECKING:
    from stafet.context import Context

WINDOW_DAYS = 7
"""An open item is ``due_soon`` when it falls due within this many days."""

RULES: dict[str, str] = {
    "dropout_contact": "UU contacts a 15–17-year-old and the parents within 5 working days of a dropout",
    "dropout_contact_custody": "UU contacts the custody holder of a 15–17-year-old within 5 working days of a dropout",  # noqa: E501
    "dropout_agreement": "a new agreement on education or activity within 30 days of a dropout (15–17)",
    "dropout_first_contact": "UU offers an 18–24-year-old who drops out a guidance interview",
    "concern_contact": "UU contacts the school's study counsellor when a concern flag arrives",
    "absence_concern": "UU contacts the school's study counsellor of a youth over the absence threshold",
    "order_start": "a youth with an education order has started education by the order's deadline",
    "first_interview": "the job centre holds the first interview within 7 days of an education order",
    **youth_register.RULES,
    **moves.RULES,
    "followup_18_24": "UU follows up at least twice a year on an 18–24-year-old not in education",
    "transition_meeting": "the family department holds the transition meeting no later than age 17",
    "handover_ack": "a handover is acknowledged by its receiver within the network's limit",
}
"""Rule id → what the duty is (stable ids: they appear in the JSON output)."""

STATUSES = ("overdue", "due_soon", "open")
LOCAL_TZ = ZoneInfo("Europe/Copenhagen")
HANDOVER_OPEN = ("pending", "sent", "failed")  # held: no package exists; acknowledged: done
SUPPORT_RECEIVERS = ("socialafdeling", "jobcenter")


# --- the duties' settings (rules.yaml) ------------------------------------------------
@dataclass(frozen=True)
class DutySettings:
    """Each duty's clock and escalation steps, from the ``duties:`` section of rules.yaml.

    ``escalate[rule]`` is ``{"coordinator": N, "management": M}``: working days after the
    notice (resp. after the coordinator's escalation) a still-open duty goes one step up.
    """

    clocks: dict[str, int]
    escalate: dict[str, dict[str, int]]
    basis: dict[str, str]
    absence_threshold: float = 10.0
    resend_attempts: int = 2

    def clock(self, rule: str, default: int) -> int:
        """The rule's clock (days or working days, as the rule says), or ``default``."""
        return int(self.clocks.get(rule, default))


DEFAULT_ESCALATION = {"coordinator": 3, "management": 5}


def duty_settings(text: str | None = None) -> DutySettings:
    """Read the ``duties:`` section of rules.yaml (the package's copy unless ``text`` is given).

    Raises:
        ConfigError: an unknown duty id, or a number that is not a whole number of days ≥ 1.
    """
    return _duty_settings(text) if text is not None else _default_settings()


@lru_cache(maxsize=1)
def _default_settings() -> DutySettings:
    from importlib import resources

    return _duty_settings(resources.files("stafet.duties").joinpath("rules.yaml").read_text(encoding="utf-8"))


def _duty_settings(text: str) -> DutySettings:
    import yaml

    from stafet.core.errors import ConfigError

    data = (yaml.safe_load(text) or {}).get("duties") or {}
    problems: list[str] = []
    clocks: dict[str, int] = {}
    escalate: dict[str, dict[str, int]] = {}
    basis: dict[str, str] = {}
    for rule, d in (data.get("rules") or {}).items():
        if rule not in RULES:
            problems.append(f"duties.rules.{rule}: unknown duty (one of {', '.join(RULES)})")
            continue
        d = d or {}
        basis[rule] = " ".join(str(d.get("basis", "")).split())
        if not basis[rule]:
            problems.append(f"duties.rules.{rule}.basis: every duty names its basis")
        if "clock" in d:
            clocks[rule] = int(d["clock"])
        steps = dict(DEFAULT_ESCALATION) | {k: v for k, v in (d.get("escalate") or {}).items()}
        for k, v in steps.items():
            if k not in DEFAULT_ESCALATION or not isinstance(v, int) or v < 1:
                problems.append(f"duties.rules.{rule}.escalate.{k}: a step (coordinator, management) "
                                "and a whole number of working days ≥ 1")
        escalate[rule] = steps
    if problems:
        raise ConfigError("the duties in rules.yaml are not valid:\n  " + "\n  ".join(problems))
    return DutySettings(clocks, escalate, basis, float(data.get("absence_threshold_pct", 10.0)),
                        int(data.get("resend_attempts", 2)))


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
    contact: str = ""  # the named person to tell (counsellor, caseworker, adviser), "" when none

    def as_json(self) -> dict[str, Any]:
        """The stable JSON shape of one item (``docs/deadlines.md``)."""
        return {"rule": self.rule, "status": self.status, "due": self.due.isoformat(),
                "days_overdue": self.days_overdue, "days_left": self.days_left,
                "responsible": self.responsible, "youth": self.youth,
                "masked_cpr": self.masked_cpr, "reference": self.reference, "contact": self.contact}


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


@dataclass(frozen=True, slots=True)
class OrderFact:
    """A job-centre education order (uddannelsespålæg) status as the rules need it."""

    order_id: str
    status: str
    status_date: date
    deadline: date | None
    municipality: str  # of the job centre's export
    caseworker: str = ""


@dataclass(frozen=True, slots=True)
class FlagFact:
    """A concern flag, or a school event whose absence is over the threshold."""

    day: date
    institution: str
    municipality: str
    counsellor: str = ""  # the school's study counsellor
    absence_pct: float | None = None


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
    registered: set[tuple[date, str, str]] = field(default_factory=set)  # (day, org, party) by a person
    order_facts: list[OrderFact] = field(default_factory=list)
    interviews: set[date] = field(default_factory=set)  # held job-centre interviews
    flags: list[FlagFact] = field(default_factory=list)  # concern flags
    absences: list[FlagFact] = field(default_factory=list)  # enrolment events with an absence figure
    counsellor: str = ""  # the UU counsellor of the latest education plan

    def contacts_by(self, org: str, party: str = "youth") -> set[date]:
        """Contact days that count for ``org``: the UU plan export's (the youth) and those it registered."""
        own = {d for d, o, p in self.registered if o == org and p == party}
        return own | self.contacts if party == "youth" else own


GuidanceFor = Callable[[str], str | None]
"""Municipality number → the id of the network's UU serving it, or None."""


# --- the rules (pure) ---------------------------------------------------------------
def dropout_deadlines(f: YouthFacts, guidance_for: GuidanceFor, contact_days: int = 5,
                      agreement_days: int = 30) -> list[Deadline]:
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
        if not any(c >= ev.day for c in f.contacts_by(uu)):
            out.append(Deadline("dropout_contact", f.youth, uu, add_working_days(ev.day, contact_days), ref,
                                contact=f.counsellor))
        if not any(c >= ev.day for c in f.contacts_by(uu, "custody_holder")):
            out.append(Deadline("dropout_contact_custody", f.youth, uu, add_working_days(ev.day, contact_days),  # noqa: E501
                                ref, contact=f.counsellor))
        if not any(a >= ev.day for a in f.agreements):
            out.append(Deadline("dropout_agreement", f.youth, uu, ev.day + timedelta(days=agreement_days), ref,  # noqa: E501
                                contact=f.counsellor))
    return out


def first_contact_deadlines(f: YouthFacts, guidance_for: GuidanceFor, today: date,
                            working_days: int = 10) -> list[Deadline]:
    """``dropout_first_contact``: UU offers an 18–24-year-old who drops out a guidance interview.

    Thy: "UU kontakter den unge og tilbyder en vejledningssamtale" — a clock from the dropout
    (``working_days`` working days, rules.yaml), not the yearly follow-up a year later. Age
    18–24 on the dropout day; lapses when the youth enrols again or turns 25.
    """
    out: list[Deadline] = []
    enrolments = [e.day for e in f.events if e.kind == "enrolment"]
    for ev in f.events:
        if ev.kind != "dropout" or not 18 <= age_on(f.birth_date, ev.day) <= 24:
            continue
        uu = guidance_for(ev.municipality)
        if uu is None or any(d >= ev.day for d in enrolments) or age_on(f.birth_date, today) >= 25:
            continue
        if not any(c >= ev.day for c in f.contacts_by(uu)):
            out.append(Deadline("dropout_first_contact", f.youth, uu, add_working_days(ev.day, working_days),
                                f"dropout {ev.day.isoformat()} at {ev.institution}", contact=f.counsellor))
    return out


def concern_deadlines(f: YouthFacts, guidance_for: GuidanceFor, today: date, *, working_days: int,
                      absence_threshold: float, max_age_days: int) -> list[Deadline]:
    """``concern_contact`` and ``absence_concern``: UU contacts the school's study counsellor.

    Seed 004: "Når UU modtager bekymringsmærke, kontakter UU relevant studievejleder" — a flag
    of a youth under 25 starts a clock of ``working_days`` working days; met by a contact UU
    registers with the school counsellor (``party=school_counsellor``) on or after the flag.
    A youth in education whose latest absence figure at an institution is at or over
    ``absence_threshold`` % raises the same duty when that school sent no flag within
    ``max_age_days`` (the concern flag's lifetime). Flags older than that are not tracked.
    """
    out: list[Deadline] = []
    for fl in f.flags:
        uu = guidance_for(fl.municipality)
        if uu is None or age_on(f.birth_date, fl.day) >= 25 or (today - fl.day).days > max_age_days:
            continue
        if not any(c >= fl.day for c in f.contacts_by(uu, "school_counsellor")):
            out.append(Deadline("concern_contact", f.youth, uu, add_working_days(fl.day, working_days),
                                f"concern flag {fl.day.isoformat()} from {fl.institution}",
                                contact=fl.counsellor or f.counsellor))
    latest: dict[str, FlagFact] = {}
    for a in sorted(f.absences, key=lambda a: a.day):
        latest[a.institution] = a
    left = {e.institution for e in f.events if e.kind in ("dropout", "completion")}
    for inst, a in sorted(latest.items()):
        if a.absence_pct is None or a.absence_pct < absence_threshold or inst in left:
            continue
        if (today - a.day).days > max_age_days or age_on(f.birth_date, a.day) >= 25:
            continue
        if any(fl.institution == inst and abs((fl.day - a.day).days) <= max_age_days for fl in f.flags):
            continue  # the school sent a flag: concern_contact covers it
        uu = guidance_for(a.municipality)
        if uu is None or any(c >= a.day for c in f.contacts_by(uu, "school_counsellor")):
            continue
        out.append(Deadline("absence_concern", f.youth, uu, add_working_days(a.day, working_days),
                            f"absence {a.absence_pct:g} % at {inst} on {a.day.isoformat()}, no concern flag",
                            contact=a.counsellor or f.counsellor))
    return out


JobCentreFor = Callable[[str], str | None]
"""Municipality number → the id of the network's job centre there, or None."""


def order_deadlines(f: YouthFacts, job_centre_for: JobCentreFor, today: date,
                    interview_days: int = 7) -> list[Deadline]:
    """``order_start`` and ``first_interview`` for each active education order.

    An order whose latest status is ``AKTIV``: the youth must have started education by its
    ``frist`` (an enrolment on or after the order's status date), or the job centre is told;
    and the first interview is due within ``interview_days`` days of the order (seed 002:
    "De unge får 1. samtale inden 7 dage med deres sagsbehandler"), met by a held interview
    on or after it.
    """
    latest: dict[str, OrderFact] = {}
    for o in sorted(f.order_facts, key=lambda o: o.status_date):
        latest[o.order_id] = o
    out: list[Deadline] = []
    for o in latest.values():
        if o.status != "AKTIV" or age_on(f.birth_date, today) >= 30:
            continue
        jc = job_centre_for(o.municipality)
        if jc is None:
            continue
        ref = f"order {o.order_id} active since {o.status_date.isoformat()}"
        started = any(e.kind == "enrolment" and e.day >= o.status_date for e in f.events)
        if o.deadline is not None and not started:
            out.append(Deadline("order_start", f.youth, jc, o.deadline, ref, contact=o.caseworker))
        if not any(d >= o.status_date for d in f.interviews):
            out.append(Deadline("first_interview", f.youth, jc, o.status_date + timedelta(days=interview_days),  # noqa: E501
                                ref, contact=o.caseworker))
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
    date. Aftercare under SEL §76 alone needs no meeting ("Unge som bevilges efterværn jf.
    SEL § 76 skal ikke på overleveringsmøder", seed 002): §85 support or a receiving
    unit does. Cases of youths aged 23 or more (aftercare ends at 23) are not tracked.
    """
    if age_on(f.birth_date, today) >= 23:
        return []
    due = anniversary(f.birth_date, 17)
    out = []
    for c in f.cases:
        if not (c.support_sel85 or c.receiver in SUPPORT_RECEIVERS):
            continue  # §76 aftercare alone: "skal ikke på overleveringsmøder" (seed 002)
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
FACT_KINDS = ("enrolment", "dropout", "completion", "education_plan", "education_order", "transition_case",
              "concern_flag", "interview")
"""The record kinds the rules read."""


def load_facts(s: Session) -> dict[str, YouthFacts]:
    """Gather every youth's rule-relevant facts from the store (withdrawn records skipped)."""
    return _gather(records.live_facts(s, FACT_KINDS), youths.births(s), contact_store.by_youth(s))


def load_facts_of(s: Session, youth_ids: Sequence[str]) -> dict[str, YouthFacts]:
    """:func:`load_facts` for the named youths only (one youth after a contact; a batch of the snapshot)."""
    return _gather(records.live_facts_of(s, FACT_KINDS, youth_ids), youths.births_of(s, youth_ids),
                   contact_store.by_youth_of(s, youth_ids))


def _gather(rows: Iterable[Any], births: Mapping[str, date],
            registered: Mapping[str, set[tuple[date, str, str]]]) -> dict[str, YouthFacts]:
    """Youths' facts from their live records ``(id, kind, youth, payload, municipality)`` and contacts."""
    facts: dict[str, YouthFacts] = {}
    for rid, kind, youth, p, origin_municipality in rows:
        f = facts.get(youth)
        if f is None:
            f = facts[youth] = YouthFacts(youth, births[youth])
        try:
            _add_fact(f, kind, p, origin_municipality)
        except (KeyError, TypeError, ValueError):
            raise DataError("stored record does not fit its kind", rule="deadline_facts",
                            record=rid, kind=kind) from None
    for youth, contacts in registered.items():
        if youth in facts:
            facts[youth].registered |= contacts
    return facts


def _day(v: Any) -> date | None:
    return date.fromisoformat(v) if v else None


def _person(name: Any, email: Any) -> str:
    name, email = str(name or "").strip(), str(email or "").strip()
    return f"{name} <{email}>" if name and email else name or email


def _add_fact(f: YouthFacts, kind: str, p: dict[str, Any], origin_municipality: str) -> None:
    if kind in ("enrolment", "dropout", "completion", "concern_flag"):
        day, inst, muni = date.fromisoformat(p["event_date"]), str(p["institution"]), str(p["home_municipality"])  # noqa: E501
        school = _person(p.get("contact_name"), p.get("contact_email"))
        if kind == "concern_flag":
            f.flags.append(FlagFact(day, inst, muni, school))
            return
        f.events.append(SchoolFact(kind, day, inst, muni))
        if kind == "enrolment" and p.get("absence_pct") is not None:
            f.absences.append(FlagFact(day, inst, muni, school, float(p["absence_pct"])))
    elif kind == "education_plan":
        f.contacts.update(date.fromisoformat(c[0]) for c in p.get("contacts") or ())
        if p.get("agreement_date"):
            f.agreements.add(date.fromisoformat(p["agreement_date"]))
        person = _person(p.get("counsellor_name"), p.get("counsellor_email"))
        if person:
            f.counsellor = person  # rows come in id order: the latest plan's counsellor wins
    elif kind == "interview":
        if p.get("status") == "AFHOLDT":
            f.interviews.add(date.fromisoformat(p["interview_date"]))
    elif kind == "education_order":
        f.orders.append((date.fromisoformat(p["status_date"]), str(p["status"])))
        f.order_facts.append(OrderFact(str(p["order_id"]), str(p["status"]), date.fromisoformat(p["status_date"]),  # noqa: E501
                                       _day(p.get("deadline")), origin_municipality or "",
                                       _person(p.get("caseworker_name"), p.get("caseworker_email"))))
    elif kind == "transition_case":
        f.cases.append(CaseFact(str(p["case_no"]), _day(p.get("meeting_date")),
                                bool(p["aftercare_sel76"]), bool(p["support_sel85"]),
                                str(p["receiver"]), origin_municipality or ""))


_guidance = youth_register.guidance_lookup


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


def _job_centre(network: Network) -> JobCentreFor:
    cache: dict[str, str | None] = {}
    centres = [o for o in network.members.values() if o.kind is OrgKind.JOB_CENTRE]

    def find(municipality: str) -> str | None:
        if municipality not in cache:
            same = [o.id for o in centres if o.municipality == municipality]
            cache[municipality] = same[0] if same else (centres[0].id if len(centres) == 1 and not municipality  # noqa: E501
                                                        else None)
        return cache[municipality]

    return find


def deadlines_from_facts(facts: Iterable[YouthFacts], network: Network, today: date,
                         settings: DutySettings | None = None) -> list[Deadline]:
    """All open record-based items (every rule but ``handover_ack``), unclassified."""
    cfg = settings or duty_settings()
    guidance, family, jobs = _guidance(network), _family(network), _job_centre(network)
    out: list[Deadline] = []
    window = concern_window_days()
    for f in facts:
        out += dropout_deadlines(f, guidance, cfg.clock("dropout_contact", 5), cfg.clock("dropout_agreement", 30))  # noqa: E501
        out += first_contact_deadlines(f, guidance, today, cfg.clock("dropout_first_contact", 10))
        follow = followup_deadline(f, guidance, today)
        if follow is not None:
            out.append(follow)
        out += transition_deadlines(f, family, today)
        out += concern_deadlines(f, guidance, today, working_days=cfg.clock("concern_contact", 3),
                                 absence_threshold=cfg.absence_threshold, max_age_days=window)
        out += order_deadlines(f, jobs, today, cfg.clock("first_interview", 7))
    return out


def other_deadlines(s: Session, network: Network, today: date) -> list[Deadline]:
    """The open items that do not come from a youth's own records (unclassified).

    The register's duties, moves and unacknowledged handovers. Every such source of items
    belongs here, so the console's snapshot (``stafet.duties.snapshot``, which walks the
    youths' records in batches) has the same items as :func:`compute_deadlines`.
    """
    items = [Deadline(*d) for d in youth_register.register_deadlines(s, network, today)]
    items += [Deadline(*d) for d in moves.due_items(moves.moves_of(s, network, today),
                                                   outbox.of_rule(s, moves.RULE))]
    for h in outbox.of_statuses(s, HANDOVER_OPEN):
        items.append(handover_deadline(h, network.ack_limit_hours))
    return items


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
        items += other_deadlines(s, ctx.network, today)
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


__all__ = [
    "RULES",
    "WINDOW_DAYS",
    "CaseFact",
    "Deadline",
    "DutySettings",
    "FlagFact",
    "OrderFact",
    "SchoolFact",
    "YouthFacts",
    "add_working_days",
    "anniversary",
    "by_responsible",
    "classify",
    "compute_deadlines",
    "concern_deadlines",
    "deadlines_from_facts",
    "deadlines_summary",
    "dropout_deadlines",
    "duty_settings",
    "first_contact_deadlines",
    "followup_deadline",
    "handover_deadline",
    "is_working_day",
    "load_facts",
    "load_facts_of",
    "order_deadlines",
    "other_deadlines",
    "to_document",
    "transition_deadlines",
]
