"""The documents a package carries, typed: handover, receipt, withdrawal, notice, inquiry, answer.

The exchange builds these and reads them back; the JSON of ``handover.schema.json`` is
made and parsed only at the package boundary (:meth:`to_json` in
:func:`stafet.packages.package.build_package`, :func:`document_from_json` behind
:attr:`stafet.packages.package.Opened.document`). :meth:`to_json` writes the keys in the
order stafet has always written them, so a package's JSON stays byte for byte what it was.

A handover holds a CPR (``youth.cpr``): it is left out of every ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class YouthInfo:
    """Who a handover is about: the CPR (``DDMMYY-SSSS``), name and birth date as sent."""

    cpr: str = field(repr=False)
    name: str = ""
    birth_date: str = ""  # ISO date, "" when unknown

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        out = {"cpr": self.cpr, "name": self.name, "birth_date": self.birth_date}
        if not self.name:
            del out["name"]
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> YouthInfo:
        """Read from the schema's JSON (already validated)."""
        return cls(cpr=str(d["cpr"]), name=str(d.get("name", "")), birth_date=str(d.get("birth_date", "")))


@dataclass(frozen=True)
class RecordSource:
    """Where the sender got a record: its source system, file and row."""

    system: str
    file: str
    row: int

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        return {"system": self.system, "file": self.file, "row": self.row}


@dataclass(frozen=True)
class DocumentRecord:
    """One record in a handover: its kind, natural key and the (scope-stripped) payload."""

    kind: str
    natural_key: str
    data: dict[str, Any] = field(repr=False)
    source: RecordSource | None = None

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        out: dict[str, Any] = {"kind": self.kind, "natural_key": self.natural_key, "data": dict(self.data)}
        if self.source is not None:
            out["source"] = self.source.to_json()
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DocumentRecord:
        """Read from the schema's JSON (already validated)."""
        src = d.get("source")
        source = None
        if isinstance(src, Mapping):
            row = src.get("row")
            source = RecordSource(str(src.get("system", "")), str(src.get("file", "")),
                                  row if isinstance(row, int) else 0)
        return cls(kind=str(d["kind"]), natural_key=str(d["natural_key"]), data=dict(d["data"]),
                   source=source)

    @property
    def source_system(self) -> str | None:
        """The sender's source system, if it said."""
        return self.source.system if self.source is not None else None


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the youth's course, for the people reading the package."""

    date: str
    kind: str
    summary: str
    org: str = ""

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        return {"date": self.date, "kind": self.kind, "org": self.org, "summary": self.summary}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> HistoryEntry:
        """Read from the schema's JSON (already validated)."""
        return cls(date=str(d["date"]), kind=str(d["kind"]), summary=str(d["summary"]),
                   org=str(d.get("org", "")))


def _history(items: Any) -> tuple[HistoryEntry, ...]:
    """``HistoryEntry.from_json`` of each item, made without the frozen dataclass's ``__init__``.

    A handover carries a hundred entries or more, and the ``__init__`` of a frozen dataclass
    sets each field through ``object.__setattr__``: this gives the instance its ``__dict__`` with
    the same fields in the same order at once, at less than half the cost (a property test holds it to
    :meth:`HistoryEntry.from_json`).
    """
    new, put, out = object.__new__, object.__setattr__, []
    for d in items:
        entry = new(HistoryEntry)
        put(entry, "__dict__", {"date": str(d["date"]), "kind": str(d["kind"]), "summary": str(d["summary"]),
                                "org": str(d.get("org", ""))})
        out.append(entry)
    return tuple(out)


@dataclass(frozen=True)
class Omission:
    """A record kind left out of a handover, and why (not covered by the consent)."""

    kind: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        return {"kind": self.kind, "reason": self.reason}


@dataclass(frozen=True)
class HandoverDocument:
    """A handover: records about one youth, under a rule and its legal basis."""

    package_id: str
    sender: str
    recipient: str
    created: str  # ISO 8601 date-time, as written on the wire
    rule: str
    legal_basis: str
    consent_ref: str
    youth: YouthInfo
    records: tuple[DocumentRecord, ...]
    history: tuple[HistoryEntry, ...] = ()
    omitted: tuple[Omission, ...] = ()

    type: ClassVar[str] = "handover"

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        return {
            "type": "handover", "package_id": self.package_id, "sender": self.sender,
            "recipient": self.recipient, "created": self.created, "rule": self.rule,
            "legal_basis": self.legal_basis, "consent_ref": self.consent_ref,
            "youth": self.youth.to_json(),
            "records": [r.to_json() for r in self.records],
            "history": [h.to_json() for h in self.history],
            "omitted": [o.to_json() for o in self.omitted],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> HandoverDocument:
        """Read from the schema's JSON (already validated)."""
        return cls(package_id=str(d["package_id"]), sender=str(d["sender"]), recipient=str(d["recipient"]),
                   created=str(d["created"]), rule=str(d["rule"]), legal_basis=str(d["legal_basis"]),
                   consent_ref=str(d.get("consent_ref", "")), youth=YouthInfo.from_json(d["youth"]),
                   records=tuple(DocumentRecord.from_json(r) for r in d["records"]),
                   history=_history(d.get("history") or ()),
                   omitted=tuple(Omission(str(o["kind"]), str(o["reason"])) for o in d.get("omitted") or ()))


@dataclass(frozen=True)
class ReceiptDocument:
    """A signed receipt: the receiver's answer to a package (``imported`` or ``rejected: …``)."""

    package_id: str
    sender: str
    recipient: str
    created: str  # ISO 8601 date-time, as written on the wire
    for_package: str  # the package this answers
    digest: str  # the digest of its signed content, as the receiver computed it
    disposition: str
    at: str  # ISO 8601 date-time

    type: ClassVar[str] = "receipt"

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        return {"type": "receipt", "package_id": self.package_id, "sender": self.sender,
                "recipient": self.recipient, "created": self.created,
                "receipt": {"package_id": self.for_package, "digest": self.digest,
                            "disposition": self.disposition, "at": self.at}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ReceiptDocument:
        """Read from the schema's JSON (already validated)."""
        r = d["receipt"]
        return cls(package_id=str(d["package_id"]), sender=str(d["sender"]), recipient=str(d["recipient"]),
                   created=str(d["created"]), for_package=str(r["package_id"]), digest=str(r["digest"]),
                   disposition=str(r["disposition"]), at=str(r["at"]))


@dataclass(frozen=True)
class WithdrawalDocument:
    """A withdrawal notice: a consent was withdrawn; delete what came under it."""

    package_id: str
    sender: str
    recipient: str
    created: str  # ISO 8601 date-time, as written on the wire
    consent_ref: str
    package_ids: tuple[str, ...]
    instruction: str

    type: ClassVar[str] = "withdrawal"

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        return {"type": "withdrawal", "package_id": self.package_id, "sender": self.sender,
                "recipient": self.recipient, "created": self.created,
                "withdrawal": {"consent_ref": self.consent_ref, "package_ids": list(self.package_ids),
                               "instruction": self.instruction}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WithdrawalDocument:
        """Read from the schema's JSON (already validated)."""
        w = d["withdrawal"]
        return cls(package_id=str(d["package_id"]), sender=str(d["sender"]), recipient=str(d["recipient"]),
                   created=str(d["created"]), consent_ref=str(w["consent_ref"]),
                   package_ids=tuple(str(p) for p in w["package_ids"]), instruction=str(w["instruction"]))


@dataclass(frozen=True)
class NoticeDocument:
    """A duty notice or escalation: which duty is overdue, since when, where to act (issue 17).

    It names the youth only by pseudonym and masked CPR, inside the encrypted body; it
    changes nothing at the receiver (a person reads it).
    """

    package_id: str
    sender: str
    recipient: str
    created: str  # ISO 8601 date-time, as written on the wire
    step: str  # notice | coordinator | management
    rule: str
    duty: str  # what the duty is, in Danish
    youth_ref: str  # the youth's pseudonym
    masked_cpr: str
    due: str  # ISO date
    since: str  # ISO date: the day the duty became overdue
    responsible: str  # the organisation that holds the duty
    addressee: str  # the named person (or the member's duty address)
    reference: str  # the fact that started the clock
    act: str  # where to act, in Danish

    type: ClassVar[str] = "notice"

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        return {"type": "notice", "package_id": self.package_id, "sender": self.sender,
                "recipient": self.recipient, "created": self.created,
                "notice": {"step": self.step, "rule": self.rule, "duty": self.duty, "youth_ref": self.youth_ref,  # noqa: E501
                           "masked_cpr": self.masked_cpr, "due": self.due, "since": self.since,
                           "responsible": self.responsible, "addressee": self.addressee,
                           "reference": self.reference, "act": self.act}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NoticeDocument:
        """Read from the schema's JSON (already validated)."""
        n = d["notice"]
        return cls(package_id=str(d["package_id"]), sender=str(d["sender"]), recipient=str(d["recipient"]),
                   created=str(d["created"]), step=str(n["step"]), rule=str(n["rule"]), duty=str(n["duty"]),
                   youth_ref=str(n["youth_ref"]), masked_cpr=str(n["masked_cpr"]), due=str(n["due"]),
                   since=str(n["since"]), responsible=str(n["responsible"]), addressee=str(n["addressee"]),
                   reference=str(n.get("reference", "")), act=str(n["act"]))


@dataclass(frozen=True)
class InquiryDocument:
    """An inquiry: a member asks a UU what it may tell about one youth (issue 18).

    Randers: "Ungdomsuddannelserne kan til enhver tid under optagelsesprocessen forespørge UUR
    om oplysninger på konkrete unge". Holds the CPR (``youth.cpr``); the question is free text.
    """

    package_id: str
    sender: str
    recipient: str
    created: str  # ISO 8601 date-time, as written on the wire
    youth: YouthInfo
    question: str

    type: ClassVar[str] = "inquiry"

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        return {"type": "inquiry", "package_id": self.package_id, "sender": self.sender,
                "recipient": self.recipient, "created": self.created, "youth": self.youth.to_json(),
                "inquiry": {"question": self.question}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InquiryDocument:
        """Read from the schema's JSON (already validated)."""
        return cls(package_id=str(d["package_id"]), sender=str(d["sender"]), recipient=str(d["recipient"]),
                   created=str(d["created"]), youth=YouthInfo.from_json(d["youth"]),
                   question=str(d["inquiry"]["question"]))


NO_BASIS = "intet grundlag"
"""The legal basis of an answer that may tell nothing (``outcome`` ``no_basis``)."""


@dataclass(frozen=True)
class AnswerDocument:
    """A UU's answer to an inquiry: what the rules let it tell, or "intet grundlag" and no records.

    Routed like a handover (rule, legal basis, consent reference, records, history, what was
    left out); ``in_reply_to`` is the inquiry's package id. Holds the CPR (``youth.cpr``).
    """

    package_id: str
    sender: str
    recipient: str
    created: str  # ISO 8601 date-time, as written on the wire
    in_reply_to: str
    outcome: str  # answered | no_basis
    reason: str  # why there is no basis (Danish), "" when answered
    rule: str
    legal_basis: str
    consent_ref: str
    youth: YouthInfo
    records: tuple[DocumentRecord, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    omitted: tuple[Omission, ...] = ()

    type: ClassVar[str] = "answer"

    def to_json(self) -> dict[str, Any]:
        """As the schema's JSON."""
        return {
            "type": "answer", "package_id": self.package_id, "sender": self.sender,
            "recipient": self.recipient, "created": self.created, "rule": self.rule,
            "legal_basis": self.legal_basis, "consent_ref": self.consent_ref,
            "youth": self.youth.to_json(),
            "records": [r.to_json() for r in self.records],
            "history": [h.to_json() for h in self.history],
            "omitted": [o.to_json() for o in self.omitted],
            "answer": {"in_reply_to": self.in_reply_to, "outcome": self.outcome, "reason": self.reason},
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AnswerDocument:
        """Read from the schema's JSON (already validated)."""
        a = d["answer"]
        return cls(package_id=str(d["package_id"]), sender=str(d["sender"]), recipient=str(d["recipient"]),
                   created=str(d["created"]), in_reply_to=str(a["in_reply_to"]), outcome=str(a["outcome"]),
                   reason=str(a.get("reason", "")), rule=str(d["rule"]), legal_basis=str(d["legal_basis"]),
                   consent_ref=str(d.get("consent_ref", "")), youth=YouthInfo.from_json(d["youth"]),
                   records=tuple(DocumentRecord.from_json(r) for r in d["records"]),
                   history=_history(d.get("history") or ()),
                   omitted=tuple(Omission(str(o["kind"]), str(o["reason"])) for o in d.get("omitted") or ()))


Document = (HandoverDocument | ReceiptDocument | WithdrawalDocument | NoticeDocument | InquiryDocument
            | AnswerDocument)
_TYPES: dict[str, Any] = {"handover": HandoverDocument, "receipt": ReceiptDocument,
                          "withdrawal": WithdrawalDocument, "notice": NoticeDocument,
                          "inquiry": InquiryDocument, "answer": AnswerDocument}


def document_from_json(d: Mapping[str, Any]) -> Document:
    """The typed document of a package's JSON (already checked against the schema)."""
    doc: Document = _TYPES[str(d["type"])].from_json(d)
    return doc
