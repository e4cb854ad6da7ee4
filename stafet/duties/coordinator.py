"""The coordinator's side of the duties: the 25–29 list, and each youth's one tovholder.

**The coordinator's list** (``stafet coordinator-list``). Youths aged 25–29 have no UU duty
(vejledningsloven covers youths under 25): their dropouts go to the job centre of the home
municipality when a job centre knows the youth — an active education order or a job-centre
interview (rules.yaml ``dropout_to_job_centre``, ``dropout_25_29_to_job_centre``). A dropout
that no job centre takes — nobody knows the youth, or the home municipality's job centre is
not in the network — would reach no one; it is listed for the network's coordinator.
:func:`coordinator_list` is pure over the store's facts (:func:`load_coordinator_facts`
gathers them with the store's own queries, :func:`stafet.store.records.routable` and
:func:`stafet.store.records.job_centre_links`).

**The tovholder** (``stafet tovholder set``). Thy: "For hver enkelt ung udnævnes en
gennemgående tovholder blandt samarbejdspartnerne." One per youth, a record of kind
``tovholder`` (:class:`stafet.core.models.Tovholder`) whose source is ``person``: set by a
person, audited, replaced (not added to) when a new one is set. No source system's export
carries it, and one set by a person is never overwritten from outside: a stored
``tovholder`` of another source is refused, not replaced. It travels as history where a duty
rule's ``history`` list names it (rules.yaml).

Example::

    items = coordinator_list(load_coordinator_facts(s), job_centre_for, date(2026, 11, 24))
    set_tovholder(ctx, youth="3f2a…", org="uu-viborg", name="Anna Holm", by="anna")
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stafet.core.cpr import age_on
from stafet.core.errors import DataError
from stafet.core.models import OrgKind, Provenance, Tovholder
from stafet.core.redaction import redact
from stafet.store import Session, records, youths

if TYPE_CHECKING:
    from stafet.context import Context

AGE_FROM, AGE_UNDER = 25, 30
"""The coordinator's group: aged 25 up to (not including) 30 on the dropout date."""

PERSON_SOURCE = "person"
"""The provenance source of what a person sets (no source system is named so)."""

REASON_UNKNOWN = "ingen jobcenter kender den unge (intet aktivt pålæg, ingen samtale)"
REASON_NO_MEMBER = "jobcentret i bopælskommunen er ikke med i netværket"


@dataclass(frozen=True, slots=True)
class DropoutFact:
    """A dropout as the coordinator's list needs it (by pseudonym; no CPR)."""

    record: int
    youth: str
    birth_date: dt.date
    day: dt.date
    institution: str
    municipality: str  # the youth's home municipality, as the school reported it
    active_order: bool = False
    interview: bool = False


@dataclass(frozen=True, slots=True)
class Listed:
    """One dropout on the coordinator's list."""

    youth: str
    dropout_date: dt.date
    institution: str
    municipality: str
    age: int  # on the dropout date
    reason: str  # Danish: why no job centre takes it
    record: int
    masked_cpr: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stable JSON shape of one item (``docs/deadlines.md``)."""
        return {"youth": self.youth, "masked_cpr": self.masked_cpr,
                "dropout_date": self.dropout_date.isoformat(), "institution": self.institution,
                "municipality": self.municipality, "age": self.age, "reason": self.reason}


JobCentreFor = Callable[[str], str | None]
"""Municipality number → the id of the network's job centre there, or None."""


def coordinator_list(facts: Iterable[DropoutFact], job_centre_for: JobCentreFor,
                     today: dt.date) -> list[Listed]:
    """The dropouts at 25–29 that no job centre takes, oldest first (pure).

    A dropout counts when the youth was 25–29 on its date (the age routing judges by) and is
    still under 30 on ``today`` (stafet's network serves youths up to 29); a dropout dated
    after ``today`` is not yet listed. It is taken — not listed — when the youth has an active
    education order (the order's job centre is told), or an interview and the home
    municipality's job centre is a member.
    """
    out: list[Listed] = []
    for f in facts:
        age = age_on(f.birth_date, f.day)
        if not AGE_FROM <= age < AGE_UNDER or f.day > today or age_on(f.birth_date, today) >= AGE_UNDER:
            continue
        if f.active_order:
            continue
        if f.interview and job_centre_for(f.municipality) is not None:
            continue
        reason = REASON_NO_MEMBER if f.interview else REASON_UNKNOWN
        out.append(Listed(f.youth, f.day, f.institution, f.municipality, age, reason, f.record))
    return sorted(out, key=lambda i: (i.dropout_date, i.institution, i.youth, i.record))


def load_coordinator_facts(s: Session) -> list[DropoutFact]:
    """Every live dropout of our own sources with the youth's ties to a job centre."""
    links = records.job_centre_links(s)
    out = []
    for rid, _kind, youth, p, _origin, born in records.routable(s, ["dropout"]):
        link = links.get(youth) or {}
        out.append(DropoutFact(rid, youth, born, dt.date.fromisoformat(p["event_date"]),
                               str(p.get("institution", "")), str(p.get("home_municipality", "")),
                               link.get("order_municipality") is not None, bool(link.get("interview"))))
    return out


def job_centre_of(ctx: Context) -> JobCentreFor:
    """The network's job centre of a municipality (as routing finds it), or None."""
    centres = [o for o in ctx.network.members.values() if o.kind is OrgKind.JOB_CENTRE]

    def find(municipality: str) -> str | None:
        return next((o.id for o in centres if o.municipality == municipality), None)

    return find


def compute_coordinator_list(ctx: Context, today: dt.date) -> list[Listed]:
    """The coordinator's list on ``today``, each item with the youth's masked CPR."""
    with ctx.store.session() as s:
        items = coordinator_list(load_coordinator_facts(s), job_centre_of(ctx), today)
        return [Listed(i.youth, i.dropout_date, i.institution, i.municipality, i.age, i.reason, i.record,
                       ctx.store.cpr_of(s, i.youth).masked) for i in items]


def to_document(items: list[Listed], *, network: str, today: dt.date) -> dict[str, Any]:
    """The JSON document of ``stafet coordinator-list --json`` (format ``stafet.coordinator_list/1``)."""
    return {"format": "stafet.coordinator_list/1", "network": network, "today": today.isoformat(),
            "count": len(items), "items": [i.as_json() for i in items]}


# --- the tovholder ------------------------------------------------------------------------
def tovholder_of(s: Session, youth: str) -> dict[str, Any] | None:
    """The youth's tovholder (the record's payload with its source), None when none is set."""
    rows = [r for r in records.of_youth(s, youth) if r.kind == Tovholder.kind and not r.withdrawn]
    if not rows:
        return None
    return {**rows[-1].payload, "source": rows[-1].source}


def set_tovholder(ctx: Context, *, youth: str, org: str, name: str, by: str, email: str = "",
                  since: dt.date | None = None) -> dict[str, Any]:
    """Set (or replace) the youth's one tovholder; stored as a ``person`` record, audited.

    Raises:
        DataError: an unknown youth or organisation, an empty name or ``by``, a CPR-shaped
            name, or a stored tovholder of another source (never overwritten).
    """
    since = since or dt.date.today()
    name, by, email = " ".join(name.split()), by.strip(), email.strip()
    if not by:
        raise DataError("a tovholder needs the name of the person who sets it", rule="tovholder.by")
    if not name or redact(name) != name or redact(email) != email:
        raise DataError("a tovholder needs a name (and no CPR-shaped number in name or e-mail)",
                        rule="tovholder.name")
    if org not in ctx.network.members:
        raise DataError(f"unknown organisation {org!r}: use an id from network.yaml (stafet network show)",
                        rule="tovholder.org")
    with ctx.store.session() as s:
        if youths.birth_date(s, youth) is None:
            raise DataError("no such youth in this store (give the pseudonym, or --cpr)",
                            rule="tovholder.youth")
        old = tovholder_of(s, youth)
        if old is not None and old["source"] != PERSON_SOURCE:
            raise DataError(f"the youth's tovholder comes from source {old['source']!r}: not overwritten",
                            rule="tovholder.source")
        prov = Provenance(PERSON_SOURCE, "stafet tovholder set", 0, dt.datetime.now(dt.UTC))
        rec = Tovholder(cpr=ctx.store.cpr_of(s, youth), org=org, name=name, email=email, since=since,
                        set_by=by, provenance=prov)
        ((status, rid),) = ctx.store.upsert_records(s, [rec], actor=by)
        ctx.store.audit(s, by, "tovholder.set", f"youth:{youth}",
                        {"org": org, "record": rid, "status": status, "replaced": old is not None})
    return {"youth": youth, "org": org, "name": name, "email": email, "since": since.isoformat(),
            "by": by, "status": status, "record": rid}


__all__ = [
    "AGE_FROM",
    "AGE_UNDER",
    "PERSON_SOURCE",
    "DropoutFact",
    "Listed",
    "compute_coordinator_list",
    "coordinator_list",
    "job_centre_of",
    "load_coordinator_facts",
    "set_tovholder",
    "to_document",
    "tovholder_of",
]
