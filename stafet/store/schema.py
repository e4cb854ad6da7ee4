"""The store's tables (SQLAlchemy 2.x). No column ever holds a CPR in clear.

Migrations live in ``stafet/store/migrations`` (Alembic); change a table here,
then add a revision there.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base for stafet's tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class OrganisationRow(Base):
    """A member organisation as last loaded from the network configuration."""

    __tablename__ = "organisations"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    municipality: Mapped[str] = mapped_column(String(3))
    endpoint: Mapped[str] = mapped_column(String(500))
    email: Mapped[str] = mapped_column(String(200))


class Youth(Base):
    """A youth, keyed by pseudonym; the CPR only as vault ciphertext."""

    __tablename__ = "youths"
    pseudonym: Mapped[str] = mapped_column(String(32), primary_key=True)
    cpr_enc: Mapped[bytes] = mapped_column(LargeBinary)
    birth_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class SourceFile(Base):
    """One received source file, by content digest."""

    __tablename__ = "source_files"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # processing|processed|rejected
    reason: Mapped[str] = mapped_column(Text, default="")
    archive: Mapped[str] = mapped_column(String(500), default="")
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(DateTime)


class RecordRow(Base):
    """A canonical record from one of our own source systems; unique by youth, kind and natural key.

    The unique key leads with the youth, so it is also the index for lookups by youth.
    What came in a package from another organisation is never here: it is an
    :class:`ImportedRecordRow`, scoped by recipient and package.
    """

    __tablename__ = "records"
    __table_args__ = (UniqueConstraint("youth", "kind", "natural_key", name="uq_record_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    youth: Mapped[str] = mapped_column(ForeignKey("youths.pseudonym"))
    natural_key: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column()
    digest: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    source_file: Mapped[str] = mapped_column(String(300))
    source_row: Mapped[int] = mapped_column(Integer)
    # who sent the file, as its name says by the source's declared pattern (empty: it does not)
    origin_institution: Mapped[str] = mapped_column(String(16), default="", server_default="")
    origin_municipality: Mapped[str] = mapped_column(String(8), default="", server_default="")
    received_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)


class ImportedRecordRow(Base):
    """A record as another organisation sent it in a package: kept apart from our own sources.

    Unique by recipient, package, kind and natural key: a package adds what it carries and
    never updates anything — not a source record, not another package's record. Routing,
    deadlines and reports read :class:`RecordRow` only; this is what a receiving node shows
    of what it received, and what a withdrawal notice from the same sender may withdraw.
    """

    __tablename__ = "imported_records"
    __table_args__ = (UniqueConstraint("recipient", "package_id", "kind", "natural_key",
                                       name="uq_imported_record_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(64))
    package_id: Mapped[str] = mapped_column(String(64), index=True)
    sender: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    youth: Mapped[str] = mapped_column(ForeignKey("youths.pseudonym"), index=True)
    natural_key: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column()
    digest: Mapped[str] = mapped_column(String(64))
    row: Mapped[int] = mapped_column(Integer)  # the record's place in its package, from 1
    received_at: Mapped[datetime] = mapped_column(DateTime)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)


class Quarantine(Base):
    """A row that broke a rule; raw row encrypted; decided by a data steward."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    source_file: Mapped[str] = mapped_column(String(300))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    row: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    masked_cpr: Mapped[str] = mapped_column(String(11), default="")
    raw_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|released|rejected
    decided_by: Mapped[str] = mapped_column(String(100), default="")
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    decision: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ConsentRow(Base):
    """A consent as received or entered; validity is computed, never stored."""

    __tablename__ = "consents"
    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    youth: Mapped[str] = mapped_column(ForeignKey("youths.pseudonym"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column()
    withdrawn_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Handover(Base):
    """The outbox: one package to one recipient. pending → sent → acknowledged | failed.

    ``delivered_at`` is the transport's word (file landed, mail accepted);
    ``acknowledged_at`` is the receiver's signed receipt: only that ends the
    sender's responsibility.
    """

    __tablename__ = "handovers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the package id
    handover_key: Mapped[str] = mapped_column(String(64), unique=True)
    sender: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(64), index=True)
    youth: Mapped[str] = mapped_column(String(32), index=True)
    kinds: Mapped[list[Any]] = mapped_column(default=list)
    record_ids: Mapped[list[Any]] = mapped_column(default=list)
    rule: Mapped[str] = mapped_column(String(64), default="")
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    consent_ref: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    digest: Mapped[str] = mapped_column(String(64), default="")
    package_path: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # unacknowledged: sent again
    # PostgreSQL: who sends it now, and until when (stafet.store.outbox.due; migration 0010)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ImportedPackage(Base):
    """Receiver side: every package id imported once (the replay check)."""

    __tablename__ = "imported_packages"
    package_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sender: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    disposition: Mapped[str] = mapped_column(String(200))
    imported_at: Mapped[datetime] = mapped_column(DateTime)
    # The consent the package came under ("" for a legal duty); a withdrawal notice must name it.
    # NULL for packages imported before revision 0003 (unknown: no notice can withdraw them).
    consent_ref: Mapped[str | None] = mapped_column(String(64), nullable=True, default="")


class Receipt(Base):
    """A signed receipt, sent (receiver) or accepted (sender)."""

    __tablename__ = "receipts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    package_id: Mapped[str] = mapped_column(String(64), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # in|out
    org: Mapped[str] = mapped_column(String(64))
    disposition: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime)


class InboxClaim(Base):
    """A lease on one inbox file while one run receives it (PostgreSQL; revision 0011, issue 21).

    ``name`` is the inbox file's name (a package id's safe name, never a CPR). The row is
    claimed under ``SELECT … FOR UPDATE SKIP LOCKED`` and deleted when the file has left
    the inbox (:func:`stafet.store.inbox.claim_files`, :func:`~stafet.store.inbox.release_files`).
    """

    __tablename__ = "inbox_claims"
    org: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(128))
    claimed_until: Mapped[datetime] = mapped_column(DateTime)


class AuditEntry(Base):
    """Append-only, hash-chained audit log: each entry holds its predecessor's digest."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class UserRow(Base):
    """A local console account (``stafet users``): an argon2id hash, never a password."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))  # steward|counsellor|coordinator|operations
    org: Mapped[str] = mapped_column(String(64), default="")
    sources: Mapped[list[Any]] = mapped_column(default=list)  # a steward's sources; [] = all of the node
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime)


class WebSession(Base):
    """A console session, server-side: the cookie holds a token, the store only its digest."""

    __tablename__ = "web_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)


class LoginAttempt(Base):
    """One login attempt (throttling and lockout); the user name as typed, never the password."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    remote: Mapped[str] = mapped_column(String(64), default="")
    ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class NoticeRow(Base):
    """One duty notice or escalation sent to a named person (issue 17): one per duty per step.

    ``duty_key`` names the duty (rule, youth, the fact that started its clock) by a digest,
    never a CPR; the unique (duty_key, step) makes a re-run of the night send nothing twice.
    """

    __tablename__ = "notices"
    __table_args__ = (UniqueConstraint("duty_key", "step", name="uq_notices_duty_step"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    duty_key: Mapped[str] = mapped_column(String(64), index=True)
    step: Mapped[str] = mapped_column(String(16))  # notice|coordinator|management
    rule: Mapped[str] = mapped_column(String(64))
    youth: Mapped[str] = mapped_column(String(32), index=True)
    responsible: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(64))  # the member organisation it went to
    addressee: Mapped[str] = mapped_column(String(200), default="")  # the named person or duty address
    due: Mapped[date] = mapped_column(Date)
    day: Mapped[date] = mapped_column(Date)  # the night's day it was decided on
    package_id: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class ContactRow(Base):
    """A contact with a youth registered by a person (CLI or console): evidence that closes a duty.

    Kept apart from source records: nothing a person registers overwrites what a source said.
    """

    __tablename__ = "contacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    youth: Mapped[str] = mapped_column(ForeignKey("youths.pseudonym"), index=True)
    org: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    form: Mapped[str] = mapped_column(String(32))  # samtale|telefon|brev|mail|moede|sms|hjemmebesoeg
    party: Mapped[str] = mapped_column(String(32), default="youth")  # youth|custody_holder|school_counsellor
    note: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime)


class InquiryRow(Base):
    """An inquiry about one youth (issue 18), as the organisation holding the row sees it.

    ``direction`` ``out``: ``org`` asked ``guidance`` (the row of the asking member);
    ``in``: ``org`` (a UU) was asked by ``asker`` and answers it. Asker and UU may share a
    node, so a row is unique by package id and holding organisation. The question is the
    asker's text; the youth only by pseudonym. The answer's records are received apart
    (:class:`ImportedRecordRow`, under the answer's package id).
    """

    __tablename__ = "inquiries"
    __table_args__ = (UniqueConstraint("package_id", "org", name="uq_inquiry_package_org"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    package_id: Mapped[str] = mapped_column(String(64), index=True)  # the inquiry's package id
    org: Mapped[str] = mapped_column(String(64), index=True)  # the member that holds this row
    direction: Mapped[str] = mapped_column(String(8))  # out|in
    asker: Mapped[str] = mapped_column(String(64))
    guidance: Mapped[str] = mapped_column(String(64))
    youth: Mapped[str] = mapped_column(ForeignKey("youths.pseudonym"), index=True)
    question: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))  # out: sent|answered; in: open|answered
    digest: Mapped[str] = mapped_column(String(64), default="")  # the inquiry's signed content
    created_at: Mapped[datetime] = mapped_column(DateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # its receipt
    answer_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    answer_digest: Mapped[str] = mapped_column(String(64), default="")
    answer_outcome: Mapped[str] = mapped_column(String(16), default="")  # answered|no_basis
    answer_basis: Mapped[str] = mapped_column(Text, default="")
    answer_records: Mapped[int] = mapped_column(Integer, default=0)
    answered_by: Mapped[str] = mapped_column(String(100), default="")
    answered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    answer_acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class DutySnapshotRow(Base):
    """One day's snapshot of the duty clock (:class:`DutyItemRow`): when it was computed.

    Written by the night (or by the console when the night has not run today); a day with
    a row here and no items has no open duty, a day without one has not been computed.
    """

    __tablename__ = "duty_snapshots"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(DateTime)
    items: Mapped[int] = mapped_column(Integer, default=0)


class DutyItemRow(Base):
    """One open duty on ``day`` as the duty clock judged it (``stafet.duties.deadlines.Deadline``).

    No CPR: the youth by pseudonym, and the masked CPR (``DDMMYY-xxxx``) for display.
    Ordered by due date (the duty clock's order: overdue first, longest overdue first).
    """

    __tablename__ = "duty_items"
    __table_args__ = (Index("ix_duty_items_day_due", "day", "due", "rule", "youth"),
                      Index("ix_duty_items_day_responsible_due", "day", "responsible", "due", "rule",
                            "youth"),
                      Index("ix_duty_items_day_youth", "day", "youth"),
                      Index("ix_duty_items_day_status", "day", "status"),
                      Index("ix_duty_items_day_responsible_status", "day", "responsible", "status"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(ForeignKey("duty_snapshots.day", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(64))
    youth: Mapped[str] = mapped_column(String(32))
    responsible: Mapped[str] = mapped_column(String(64))
    due: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # overdue|due_soon|open
    days_overdue: Mapped[int] = mapped_column(Integer, default=0)
    days_left: Mapped[int] = mapped_column(Integer, default=0)
    masked_cpr: Mapped[str] = mapped_column(String(16), default="")  # DDMMYY-xxxx, never the CPR
    contact: Mapped[str] = mapped_column(String(300), default="")
    computed_at: Mapped[datetime] = mapped_column(DateTime)


# --- indexes for the console's paged lists (revision 0009): each list's filter and order ------------
Index("ix_handovers_created_at_id", Handover.created_at, Handover.id)  # the message log, newest first
Index("ix_handovers_status_created_at", Handover.status, Handover.created_at, Handover.id)  # by state
Index("ix_handovers_status_parties", Handover.status, Handover.sender, Handover.recipient,
      Handover.created_at)  # the log's counts by state and organisation, from the index alone
Index("ix_imported_packages_recipient_imported_at", ImportedPackage.recipient, ImportedPackage.imported_at,
      ImportedPackage.package_id)  # the inbox, newest first
Index("ix_quarantine_status", Quarantine.status)  # open rows by id (the id is the rowid: in every index)
Index("ix_quarantine_status_rule", Quarantine.status, Quarantine.rule)  # one rule group by id
Index("ix_quarantine_status_rule_source", Quarantine.status, Quarantine.rule, Quarantine.source)  # the groups
