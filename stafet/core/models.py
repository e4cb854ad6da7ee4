"""Canonical records: the one shape every source is mapped to.

Frozen dataclasses, not pydantic: mappings build a million of them per night, and
validation already happened (Great Expectations on the rows, the JSON Schema on
packages), so a second validation layer would only cost time. Each record keeps
its :class:`Provenance` and knows its natural key; :meth:`Record.payload` is what
the store and packages hold (no CPR: the youth is stored apart, by pseudonym).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from stafet.core.cpr import Cpr


class OrgKind(StrEnum):
    """The kinds of member organisation (DOMAIN.md, Actors)."""

    GUIDANCE = "guidance"
    INSTITUTION = "institution"
    PRIMARY_SCHOOL = "primary_school"
    JOB_CENTRE = "job_centre"
    FAMILY_SERVICES = "family_services"
    SOCIAL_SERVICES = "social_services"
    COORDINATOR = "coordinator"  # the network's coordinator (tovholder for the network): escalations


@dataclass(frozen=True, slots=True)
class Organisation:
    """A member of the network: who it is and where its packages go."""

    id: str
    kind: OrgKind
    name: str
    municipality: str
    endpoint: str
    email: str
    certificate: str | None = None
    serves: tuple[str, ...] = ()  # municipalities a guidance unit (UU) serves
    previous_certificates: tuple[str, ...] = ()  # still accepted from it (rotation overlap)
    duty_address: str = ""  # where duty notices go when no named person is in the record
    management_address: str = ""  # the last step of an escalation
    acknowledge: str = "auto"  # auto: stafet receive answers at once; person: a person acknowledges


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a record came from: source system, file, row or element number, when, and from whom.

    ``institution`` and ``municipality`` are what the file's name says of its sender
    (the named groups of its source's file-name pattern); empty where it says nothing.
    """

    source: str
    file: str
    row: int
    received_at: datetime
    institution: str = ""
    municipality: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """Base of every canonical record about one youth."""

    kind: ClassVar[str] = "record"
    key_fields: ClassVar[tuple[str, ...]] = ()

    cpr: Cpr = field(repr=False)
    provenance: Provenance | None = field(default=None, compare=False)

    def natural_key(self) -> str:
        """The source's natural key as text (CPR enters only as its pseudonym later)."""
        get = _KEY_GETTERS.get(type(self))
        if get is None:
            fields = self.key_fields
            get = _KEY_GETTERS[type(self)] = operator.attrgetter(*fields) if len(fields) > 1 else \
                (lambda r: tuple(getattr(r, f) for f in fields))
        return "|".join(map(str, get(self)))

    def payload(self) -> dict[str, Any]:
        """The record's own fields as JSON-ready values, without CPR and provenance."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("cpr", "provenance"):
                continue
            out[f.name] = _jsonable(getattr(self, f.name))
        return out


_KEY_GETTERS: dict[type, Any] = {}
"""Per record class, one getter of its key fields (a bulk ingest builds a key per row)."""


def _jsonable(v: Any) -> Any:
    if isinstance(v, date | datetime):
        return v.isoformat()
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    return v


@dataclass(frozen=True, slots=True, kw_only=True)
class SchoolEvent(Record):
    """An event reported by a school's administration system."""

    institution: str
    home_municipality: str
    first_name: str = ""
    last_name: str = ""
    event_date: date
    programme_code: str
    programme_name: str = ""
    start_date: date | None = None
    department: str = ""
    contact_name: str = ""
    contact_email: str = ""
    note: str = ""
    absence_pct: float | None = None

    key_fields: ClassVar[tuple[str, ...]] = ("institution", "kind", "event_date", "programme_code")


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrolment(SchoolEvent):
    """OPTAG: the youth started a programme."""

    kind: ClassVar[str] = "enrolment"


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion(SchoolEvent):
    """GENNEMFOERT: the youth completed a programme."""

    kind: ClassVar[str] = "completion"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConcernFlag(SchoolEvent):
    """FRAFALDSTRUET: the youth is at risk of dropping out."""

    kind: ClassVar[str] = "concern_flag"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dropout(SchoolEvent):
    """AFBRUD: the youth dropped out; reason code from the network's code list."""

    kind: ClassVar[str] = "dropout"
    reason_code: str
    reason_text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class EducationPlan(Record):
    """UU's education plan (UV-Vej)."""

    kind: ClassVar[str] = "education_plan"
    key_fields: ClassVar[tuple[str, ...]] = ("plan_id", "updated")

    plan_id: str
    updated: date
    goal_code: str
    goal_name: str = ""
    goal_institution: str = ""
    readiness: tuple[tuple[str, str], ...] = ()  # (faglig|personlig|social, parat|ikke-parat)
    support_needs: tuple[str, ...] = ()  # SPS, Mentor, Ordblind, Psykolog, Andet
    support_other: str = ""
    counsellor_name: str = ""
    counsellor_email: str = ""
    counsellor_phone: str = ""
    contacts: tuple[tuple[str, str], ...] = ()  # (ISO date, form)
    agreement_date: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EducationOrder(Record):
    """Job centre's education order (uddannelsespålæg)."""

    kind: ClassVar[str] = "education_order"
    key_fields: ClassVar[tuple[str, ...]] = ("order_id", "status")

    order_id: str
    target_education: str
    target_institution: str = ""
    deadline: date
    mentor_granted: bool
    mentor_name: str = ""
    caseworker_name: str = ""
    caseworker_phone: str = ""
    caseworker_email: str = ""
    status: str
    status_date: date
    consent_ref: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionCase(Record):
    """Family department's transition case at 17–18 (DUBU)."""

    kind: ClassVar[str] = "transition_case"
    key_fields: ClassVar[tuple[str, ...]] = ("case_no",)

    case_no: str
    meeting_date: date | None = None
    aftercare_sel76: bool
    support_sel85: bool
    receiver: str  # socialafdeling | jobcenter | ingen
    adviser_name: str = ""
    adviser_email: str = ""
    consent_ref: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Consent(Record):
    """A signed, time-limited, withdrawable consent (samtykkeerklæring)."""

    kind: ClassVar[str] = "consent"
    key_fields: ClassVar[tuple[str, ...]] = ("ref",)

    ref: str
    signed_by: str  # ung | foraelder | vaerge
    signer_name: str = ""
    signed_date: date
    valid_from: date
    valid_to: date
    recipients: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    situation: str = ""
    withdrawn_date: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pupil(Record):
    """A pupil of the grundskole's last years (8.–10. klasse), from the school's administration.

    ``ready`` is derived from the readiness assessment (UPV): "Alle 3 kriterier skal være
    opfyldt for at eleven kan vurderes uddannelsesparat" — True when faglig, personlig and
    social are all ``parat``, False when one is not, None when the pupil is not assessed.
    """

    kind: ClassVar[str] = "pupil"
    # with the youth's pseudonym: FORMATS' (skole, Cpr, opdateret)
    key_fields: ClassVar[tuple[str, ...]] = ("school", "updated")

    school: str
    municipality: str  # the school's municipality (the export's ``kommune``)
    updated: date
    first_name: str = ""
    last_name: str = ""
    grade: int  # Klassetrin: 8, 9 or 10
    expected_end: date  # end of grundskole
    readiness_assessed: date | None = None
    readiness: tuple[tuple[str, str], ...] = ()  # (faglig|personlig|social, parat|ikke-parat)
    ready: bool | None = None
    support_needs: tuple[tuple[str, str], ...] = ()  # (SPS|Mentor|Ordblind|Psykolog|Andet, free text)
    application_institution: str = ""
    application_education: str = ""
    teacher_name: str = ""
    teacher_email: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration(Record):
    """A youth's registration in a municipality, from its youth register extract (folkeregister)."""

    kind: ClassVar[str] = "registration"
    # with the youth's pseudonym: FORMATS' (cpr, kommune, tilflyttet)
    key_fields: ClassVar[tuple[str, ...]] = ("municipality", "moved_in")

    first_name: str = ""
    last_name: str = ""
    municipality: str
    moved_in: date
    moved_out: date | None = None
    moved_to: str = ""  # empty: still registered, abroad or unknown
    custody_holder: bool  # a custody holder is registered (youth under 18)


@dataclass(frozen=True, slots=True, kw_only=True)
class Interview(Record):
    """A job-centre interview (samtale) with the youth's caseworker."""

    kind: ClassVar[str] = "interview"
    key_fields: ClassVar[tuple[str, ...]] = ("interview_id", "status")

    interview_id: str
    interview_date: date  # held or planned
    interview_type: str  # FOERSTE | OPFOELGNING
    status: str  # AFHOLDT | PLANLAGT | UDEBLEVET
    caseworker_name: str = ""
    caseworker_email: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tovholder(Record):
    """The youth's one coordinator (tovholder), set by a person: the organisation and the named person.

    Thy: "For hver enkelt ung udnævnes en gennemgående tovholder blandt samarbejdspartnerne."
    One per youth (the natural key is empty: a new one replaces the old, audited); its
    provenance's source is ``person`` — no source system's export carries it, so nothing
    from outside ever overwrites it (:mod:`stafet.duties.coordinator`).
    """

    kind: ClassVar[str] = "tovholder"
    key_fields: ClassVar[tuple[str, ...]] = ()

    org: str  # the organisation id of the coordinator (a member of the network)
    name: str  # the coordinator's name
    email: str = ""
    since: date
    set_by: str  # the person who registered it


@dataclass(frozen=True, slots=True)
class RecordKind:
    """One kind of canonical record: its model, its Danish name, the consent scope it travels under.

    ``history_scope`` is the consent scope (``oplysninger``) that, covered together with
    ``historik``, lets records of this kind travel as a youth's history; empty when none does.
    """

    model: type[Record]
    danish: str
    history_scope: str = ""

    @property
    def name(self) -> str:
        """The kind's stable name (``Record.kind``): in the store, the packages' schema, rules.yaml."""
        return self.model.kind


RECORD_KINDS: tuple[RecordKind, ...] = (
    RecordKind(Enrolment, "Optagelse"),
    RecordKind(Completion, "Gennemført"),
    RecordKind(ConcernFlag, "Frafaldstruet (bekymring)", history_scope="fravaer"),
    RecordKind(Dropout, "Afbrud", history_scope="afbrudsaarsag"),
    RecordKind(EducationPlan, "Uddannelsesplan", history_scope="uddannelsesplan"),
    RecordKind(EducationOrder, "Uddannelsespålæg", history_scope="paalaeg"),
    RecordKind(TransitionCase, "Overgangssag", history_scope="overgang"),
    RecordKind(Consent, "Samtykke"),
    RecordKind(Pupil, "Grundskoleelev"),
    RecordKind(Registration, "Folkeregistrering"),
    RecordKind(Interview, "Jobcentersamtale"),
    RecordKind(Tovholder, "Tovholder"),
)
"""The registry of record kinds, the one place a kind is listed: :data:`RECORD_TYPES`, the
packages' Danish names (``KIND_DA``), routing's history scopes (``SCOPE_KINDS``) are read
from it, and a test proves the packages' JSON-schema enum equals it."""

RECORD_TYPES: dict[str, type[Record]] = {k.name: k.model for k in RECORD_KINDS}
KIND_DANISH: dict[str, str] = {k.name: k.danish for k in RECORD_KINDS}
HISTORY_SCOPES: dict[str, str] = {k.history_scope: k.name for k in RECORD_KINDS if k.history_scope}
"""Consent scope → the record kind it lets travel as history (with ``historik``)."""


def record_from_payload(kind: str, payload: dict[str, Any], cpr: Cpr,
                        provenance: Provenance | None = None) -> Record:
    """Rebuild a record from :meth:`Record.payload` (store rows, received packages)."""
    cls = RECORD_TYPES[kind]
    hints = _type_hints(kind)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in ("cpr", "provenance") or f.name not in payload:
            continue
        kwargs[f.name] = _from_json(hints[f.name], payload[f.name])
    return cls(cpr=cpr, provenance=provenance, **kwargs)


@functools.cache
def _type_hints(kind: str) -> dict[str, Any]:
    # Resolving string annotations compiles each one: ~2 ms a record kind, every call.
    return typing.get_type_hints(RECORD_TYPES[kind])


def _from_json(tp: Any, v: Any) -> Any:
    if v is None:
        return None
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _from_json(inner[0], v)
    if tp is date:
        return date.fromisoformat(v)
    if typing.get_origin(tp) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], x) for x in v)
        return tuple(_from_json(a, x) for a, x in zip(args, v, strict=True))
    return v
