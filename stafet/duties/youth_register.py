"""The whole youth at both ends of the path: grundskole pupils and the municipality's youth register.

Pure rules over one youth's facts (:class:`RegisterFacts`); one query
(:func:`load_register_facts`, through :mod:`stafet.store.youth_register`) gathers the facts
of every youth a register extract (``registration``) or a grundskole export (``pupil``)
names, and :func:`opsporing_list` and :func:`register_deadlines` join the two for a node.
Where a pupil's support needs go is not here: that is routing (``rules.yaml``,
``pupil_support_to_uu`` and ``pupil_support_to_institution``).

The rules, each with the seed sentence it comes from (``docs/deadlines.md`` has the reading):

``grundskole_transition`` (a deadline)
    Viborg: "sendes kontakt til UU ½ år før afslutningen af grundskolen". The transition duty
    for a pupil (its latest record) starts on ``expected_end`` minus 6 months and is due that
    day: the UU of the youth's home municipality must be in contact from then on. Met by a UU
    contact (an education-plan contact) on or after the start; lapses with an enrolment on or
    after the start, and when the end of grundskole has passed (the 15–17 duty takes over).
the 15–17 duty (group ``15-17``, UU's opsporing list)
    Viborg: "skal sikre, at 15-17 årige unge overholder deres pligt". Every youth registered
    in a municipality today and aged 15–17 today must be in education (grundskole not yet
    ended, or the latest school event an enrolment), in an activity (an agreement on
    education or activity, or an active education order, since the latest exit), or in UU
    contact (a contact since the latest exit and within :data:`CONTACT_VALID_DAYS`). The
    rest are listed for the UU of that municipality, with the days since their last known
    activity (unknown for a youth the network has never seen).
the 18–24 target group (group ``18-24``)
    Thy: "UU's målgruppe inden for 18-24 årige er unge, som ikke er i gang med en
    ungdomsuddannelse, eller som ikke har afsluttet en ungdomsuddannelse". Registered youths
    aged 18–24 today not in education, who never completed one, and with no agreement (or
    active education order) since their latest exit: UU's follow-up list.
pupils not ready (group ``ikke-parat``)
    Viborg: "Alle 3 kriterier skal være opfyldt for at eleven kan vurderes uddannelsesparat".
    A pupil whose latest readiness assessment is not ready is UU's to follow, until the youth
    enrols in a youth education after the assessment or is assessed ready.

"Registered today" is ``moved_in <= today < moved_out``: on the day a youth moves out the
youth belongs to the new municipality, and a youth who moves in on the extract day counts.
The home municipality of a pupil is the municipality the youth is registered in today,
else the school's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Any, NamedTuple

from dateutil.relativedelta import relativedelta

from stafet.core.config import Network
from stafet.core.cpr import age_on
from stafet.core.errors import DataError
from stafet.store import Session
from stafet.store import youth_register as register_store

if TYPE_CHECKING:
    from stafet.context import Context

CONTACT_VALID_DAYS = 183
"""A UU contact keeps a 15–17-year-old out of opsporing for half a year (then UU must follow up)."""
TRANSITION_MONTHS = 6
"""The transition duty starts this many months before the end of grundskole ("½ år")."""
GROUPS = ("15-17", "18-24", "ikke-parat")
RULES: dict[str, str] = {
    "grundskole_transition": "UU is in contact with a pupil from half a year before the end of grundskole",
}
"""Rule id → what the duty is (the deadline this module adds to the duty clock)."""

_KINDS = ("registration", "pupil", "enrolment", "dropout", "completion", "education_plan",
          "education_order", "interview")
_EVENT_ORDER = {"dropout": 0, "completion": 1, "enrolment": 2}  # same day: in education wins


# --- facts --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Residence:
    """One registration in a municipality (FORMATS §8)."""

    municipality: str
    moved_in: date
    moved_out: date | None = None

    def on(self, day: date) -> bool:
        """Registered here on ``day`` (the move-out day belongs to the new municipality)."""
        return self.moved_in <= day and (self.moved_out is None or day < self.moved_out)


@dataclass(frozen=True, slots=True)
class PupilFact:
    """A grundskole pupil record as the rules need it (FORMATS §7)."""

    school: str
    municipality: str  # the school's
    updated: date
    expected_end: date
    ready: bool | None = None
    assessed: date | None = None
    support_needs: tuple[str, ...] = ()


@dataclass(slots=True)
class RegisterFacts:
    """Everything the rules read about one youth (by pseudonym; no CPR)."""

    youth: str
    birth_date: date
    residences: list[Residence] = field(default_factory=list)
    pupils: list[PupilFact] = field(default_factory=list)
    events: list[tuple[date, str]] = field(default_factory=list)  # (day, enrolment|dropout|completion)
    contacts: set[date] = field(default_factory=set)
    agreements: set[date] = field(default_factory=set)
    orders: list[tuple[date, str]] = field(default_factory=list)  # (status date, status)
    interviews: list[tuple[date, str]] = field(default_factory=list)  # (date, status)


GuidanceFor = Callable[[str], str | None]
"""Municipality number → the id of the network's UU serving it, or None."""


class DutyDue(NamedTuple):
    """A deadline in the duty clock's field order: ``Deadline(*due)`` (stafet.duties.deadlines)."""

    rule: str
    youth: str
    responsible: str
    due: date
    reference: str


@dataclass(frozen=True, slots=True)
class ListItem:
    """One youth on a UU's list: who, whose, and how long since anything was known of them."""

    group: str  # 15-17 | 18-24 | ikke-parat
    youth: str
    responsible: str
    municipality: str
    age: int
    last_activity: date | None
    last_activity_kind: str  # enrolment | dropout | completion | uu_contact | agreement | ...; "" unknown
    days_since_activity: int | None
    reference: str = ""
    masked_cpr: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stable JSON shape of one item (``docs/deadlines.md``)."""
        return {"group": self.group, "youth": self.youth, "masked_cpr": self.masked_cpr,
                "responsible": self.responsible, "municipality": self.municipality, "age": self.age,
                "last_activity": self.last_activity.isoformat() if self.last_activity else None,
                "last_activity_kind": self.last_activity_kind,
                "days_since_activity": self.days_since_activity, "reference": self.reference}


# --- reading the facts (pure) ------------------------------------------------------
def residence_on(f: RegisterFacts, day: date) -> Residence | None:
    """The registration that holds on ``day`` (the latest moved-in when the register overlaps)."""
    now = [r for r in f.residences if r.on(day)]
    return max(now, key=lambda r: r.moved_in) if now else None


def latest_pupil(f: RegisterFacts) -> PupilFact | None:
    """The pupil's latest record (by ``opdateret``)."""
    return max(f.pupils, key=lambda p: (p.updated, p.expected_end)) if f.pupils else None


def home_municipality(f: RegisterFacts, today: date) -> str:
    """Where the youth is registered today, else the municipality of the latest pupil record's school."""
    r = residence_on(f, today)
    if r is not None:
        return r.municipality
    p = latest_pupil(f)
    return p.municipality if p else ""


def _latest_event(f: RegisterFacts, today: date) -> tuple[date, str] | None:
    past = [e for e in f.events if e[0] <= today and e[1] in _EVENT_ORDER]
    return max(past, key=lambda e: (e[0], _EVENT_ORDER[e[1]])) if past else None


def in_grundskole(f: RegisterFacts, today: date) -> bool:
    """The latest pupil record's end of grundskole is today or later."""
    p = latest_pupil(f)
    return p is not None and p.expected_end >= today


def in_education(f: RegisterFacts, today: date) -> bool:
    """In grundskole still, or the latest school event up to today is an enrolment."""
    latest = _latest_event(f, today)
    return in_grundskole(f, today) or (latest is not None and latest[1] == "enrolment")


def last_exit(f: RegisterFacts, today: date) -> date | None:
    """The latest day the youth left an education: a dropout, a completion, the end of grundskole."""
    ends = [d for d, k in f.events if k in ("dropout", "completion") and d <= today]
    ends += [p.expected_end for p in f.pupils if p.expected_end < today]
    return max(ends, default=None)


def has_activity(f: RegisterFacts, today: date) -> bool:
    """An agreement on education or activity since the latest exit, or an active education order."""
    since = last_exit(f, today) or date.min
    if any(since <= a <= today for a in f.agreements):
        return True
    orders = [o for o in f.orders if o[0] <= today]
    return bool(orders) and max(orders)[1] == "AKTIV"


def has_uu_contact(f: RegisterFacts, today: date, valid_days: int = CONTACT_VALID_DAYS) -> bool:
    """A UU contact since the latest exit, at most ``valid_days`` days ago."""
    since = last_exit(f, today) or date.min
    return any(since <= c <= today and (today - c).days <= valid_days for c in f.contacts)


def last_activity(f: RegisterFacts, today: date) -> tuple[date, str] | None:
    """The latest dated fact about the youth up to today, and what it was."""
    known: list[tuple[date, str]] = [e for e in f.events if e[0] <= today]
    known += [(c, "uu_contact") for c in f.contacts if c <= today]
    known += [(a, "agreement") for a in f.agreements if a <= today]
    known += [(d, "education_order") for d, _ in f.orders if d <= today]
    known += [(d, "interview") for d, st in f.interviews if d <= today and st == "AFHOLDT"]
    known += [(p.expected_end, "grundskole_end") for p in f.pupils if p.expected_end <= today]
    return max(known, default=None)


# --- the rules (pure) ---------------------------------------------------------------
def _item(group: str, f: RegisterFacts, uu: str, muni: str, today: date, reference: str) -> ListItem:
    last = last_activity(f, today)
    return ListItem(group, f.youth, uu, muni, age_on(f.birth_date, today), last[0] if last else None,
                    last[1] if last else "", (today - last[0]).days if last else None, reference)


def _resident_item(group: str, ages: range, f: RegisterFacts, guidance_for: GuidanceFor, today: date,
                   busy: Callable[[RegisterFacts, date], bool], lacks: str) -> ListItem | None:
    """A youth registered in a network municipality, aged in ``ages``, not ``busy``: on ``group``."""
    r = residence_on(f, today)
    if r is None or age_on(f.birth_date, today) not in ages or busy(f, today):
        return None
    uu = guidance_for(r.municipality)
    if uu is None:
        return None
    return _item(group, f, uu, r.municipality, today,
                 f"registered in {r.municipality} since {r.moved_in.isoformat()}; {lacks}")


def opsporing_item(f: RegisterFacts, guidance_for: GuidanceFor, today: date) -> ListItem | None:
    """The 15–17 duty: a registered 15–17-year-old in no education, activity or UU contact."""
    return _resident_item("15-17", range(15, 18), f, guidance_for, today,
                          lambda f, d: in_education(f, d) or has_activity(f, d) or has_uu_contact(f, d),
                          "no education, activity or UU contact")


def target_group_item(f: RegisterFacts, guidance_for: GuidanceFor, today: date) -> ListItem | None:
    """The 18–24 target group: registered, not in education, never completed one, no agreement."""
    return _resident_item("18-24", range(18, 25), f, guidance_for, today,
                          lambda f, d: in_education(f, d) or has_activity(f, d)
                          or any(k == "completion" and e <= d for e, k in f.events),
                          "no youth education and no agreement")


def not_ready_item(f: RegisterFacts, guidance_for: GuidanceFor, today: date) -> ListItem | None:
    """A pupil whose latest readiness assessment is not ready, until an enrolment after it."""
    assessed = [p for p in f.pupils if p.ready is not None]
    if not assessed or age_on(f.birth_date, today) >= 25:
        return None
    p = max(assessed, key=lambda p: (p.assessed or p.updated, p.updated))
    when = p.assessed or p.updated
    if p.ready or any(k == "enrolment" and when <= d <= today for d, k in f.events):
        return None
    muni = home_municipality(f, today)
    uu = guidance_for(muni)
    if uu is None:
        return None
    return _item("ikke-parat", f, uu, muni, today,
                 f"assessed not ready {when.isoformat()} at school {p.school}; "
                 f"grundskole ends {p.expected_end.isoformat()}")


def transition_start(expected_end: date) -> date:
    """The day the transition duty starts: ``expected_end`` minus 6 months (31 Aug → 28/29 Feb)."""
    return expected_end - relativedelta(months=TRANSITION_MONTHS)


def transition_due(f: RegisterFacts, guidance_for: GuidanceFor, today: date) -> DutyDue | None:
    """``grundskole_transition``: due at the end of grundskole minus 6 months, for the home UU.

    Met by a UU contact on or after the start; lapses with an enrolment on or after the start,
    and once the end of grundskole is past.
    """
    p = latest_pupil(f)
    if p is None or p.expected_end < today:
        return None
    start = transition_start(p.expected_end)
    if any(c >= start for c in f.contacts if c <= today):
        return None
    if any(k == "enrolment" and start <= d <= today for d, k in f.events):
        return None
    uu = guidance_for(home_municipality(f, today))
    if uu is None:
        return None
    return DutyDue("grundskole_transition", f.youth, uu, start,
                   f"grundskole ends {p.expected_end.isoformat()} (school {p.school})")


def list_items(facts: Iterable[RegisterFacts], guidance_for: GuidanceFor, today: date,
               group: str = "15-17") -> list[ListItem]:
    """One group's items, unknown activity first, then the longest since, then by youth."""
    rule = {"15-17": opsporing_item, "18-24": target_group_item, "ikke-parat": not_ready_item}.get(group)
    if rule is None:
        raise ValueError(f"unknown group {group!r} (one of {', '.join(GROUPS)})")
    found = [i for i in (rule(f, guidance_for, today) for f in facts) if i is not None]
    return sorted(found, key=lambda i: (i.days_since_activity is not None, -(i.days_since_activity or 0),
                                        i.youth))


# --- the store ----------------------------------------------------------------------
def _day(v: Any) -> date | None:
    return date.fromisoformat(v) if v else None


def _add(f: RegisterFacts, kind: str, p: dict[str, Any]) -> None:
    if kind == "registration":
        f.residences.append(Residence(str(p["municipality"]), date.fromisoformat(p["moved_in"]),
                                      _day(p.get("moved_out"))))
    elif kind == "pupil":
        f.pupils.append(PupilFact(str(p["school"]), str(p["municipality"]), date.fromisoformat(p["updated"]),
                                  date.fromisoformat(p["expected_end"]), p.get("ready"),
                                  _day(p.get("readiness_assessed")),
                                  tuple(str(n[0]) for n in p.get("support_needs") or ())))
    elif kind in _EVENT_ORDER:
        f.events.append((date.fromisoformat(p["event_date"]), kind))
    elif kind == "education_plan":
        f.contacts.update(date.fromisoformat(c[0]) for c in p.get("contacts") or ())
        if p.get("agreement_date"):
            f.agreements.add(date.fromisoformat(p["agreement_date"]))
    elif kind == "education_order":
        f.orders.append((date.fromisoformat(p["status_date"]), str(p["status"])))
    elif kind == "interview":
        f.interviews.append((date.fromisoformat(p["interview_date"]), str(p["status"])))


def load_register_facts(s: Session) -> dict[str, RegisterFacts]:
    """The facts of every youth with a live registration or pupil record (withdrawn records skipped)."""
    facts: dict[str, RegisterFacts] = {}
    for youth, born, rid, kind, payload in register_store.facts_of_listed(s, _KINDS):
        f = facts.get(youth)
        if f is None:
            f = facts[youth] = RegisterFacts(youth, born)
        try:
            _add(f, kind, payload)
        except (KeyError, TypeError, ValueError, IndexError):
            raise DataError("stored record does not fit its kind", rule="register_facts",
                            record=rid, kind=kind) from None
    return facts


def guidance_lookup(network: Network) -> GuidanceFor:
    """Municipality → the id of the UU serving it (cached per call site)."""
    cache: dict[str, str | None] = {}

    def find(municipality: str) -> str | None:
        if municipality not in cache:
            org = network.guidance_for(municipality)
            cache[municipality] = org.id if org else None
        return cache[municipality]

    return find


def register_deadlines(s: Session, network: Network, today: date) -> list[DutyDue]:
    """Every open ``grundskole_transition`` duty, unclassified (``Deadline(*d)`` for the duty clock)."""
    guidance = guidance_lookup(network)
    out = [transition_due(f, guidance, today) for f in load_register_facts(s).values()]
    return [d for d in out if d is not None]


def opsporing_list(ctx: Context, today: date, org: str | None = None,
                   group: str = "15-17") -> list[ListItem]:
    """A group's list on ``today`` (default the 15–17 duty's opsporing), with masked CPRs.

    Args:
        ctx: an opened context (store, vault, network).
        today: the day to judge by.
        org: only the items this UU is responsible for.
        group: ``15-17`` (opsporing), ``18-24`` (the target group) or ``ikke-parat``.
    """
    with ctx.store.session() as s:
        items = list_items(load_register_facts(s).values(), guidance_lookup(ctx.network), today, group)
        items = [i for i in items if org is None or i.responsible == org]
        return [replace(i, masked_cpr=ctx.store.cpr_of(s, i.youth).masked) for i in items]


def to_document(items: Iterable[ListItem], *, network: str, today: date, group: str,
                org: str | None = None) -> dict[str, Any]:
    """The stable JSON document of ``stafet opsporing --json`` (format ``stafet.opsporing/1``)."""
    shown = list(items)
    return {"format": "stafet.opsporing/1", "network": network, "today": today.isoformat(),
            "group": group, "org": org, "count": len(shown), "items": [i.as_json() for i in shown]}


__all__ = ["CONTACT_VALID_DAYS", "GROUPS", "RULES", "DutyDue", "ListItem", "PupilFact", "RegisterFacts",
           "Residence", "guidance_lookup", "has_activity", "has_uu_contact", "in_education", "last_activity",
           "list_items", "load_register_facts", "not_ready_item", "opsporing_item", "opsporing_list",
           "register_deadlines", "target_group_item", "to_document", "transition_due", "transition_start"]
