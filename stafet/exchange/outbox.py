"""The sending side: plan handovers, build each package once, send, retry.

Order of writes (the outbox pattern; a crash between any two steps is recovered by the
next run, and never loses or duplicates a handover):

1. the routing decision is committed as a ``pending`` handover row (unique key);
2. the package is built once, written to ``$STAFET_HOME/outbox/<id>.eml`` (fsync)
   and its digest committed — a retry resends these same bytes, same package id;
3. the bytes are put to the recipient's endpoint (temp name + rename / SMTP);
4. the row becomes ``sent`` (delivered). A crash between 3 and 4 resends the same
   package; the receiver's replay check imports it once and re-sends its receipt.
5. the receiver's signed receipt, verified and matching the digest, makes it
   ``acknowledged`` (:func:`stafet.exchange.receipts.accept`): only then has someone
   else taken over.

Each step is one transaction and one call into :mod:`stafet.store.outbox`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from stafet.context import Context
from stafet.core.cpr import Cpr
from stafet.core.errors import StafetError, TransientError
from stafet.duties.routing import (
    Decision,
    Scope,
    consents_of,
    default_rules,
    package_scope,
    package_scope_with,
)
from stafet.exchange.endpoints import (
    limits,
    one_trust,
    outlet_for,
    recipient_certificate,
    signing_key,
    write_durably,
)
from stafet.exchange.withdrawals import WITHDRAWAL_RULE, withdrawal_document
from stafet.packages.document import (
    Document,
    DocumentRecord,
    HandoverDocument,
    HistoryEntry,
    Omission,
    RecordSource,
    YouthInfo,
)
from stafet.packages.package import KIND_DA, build_package, new_package_id
from stafet.store import outbox, records, utcnow, youths
from stafet.store.schema import Handover, RecordRow

log = logging.getLogger("stafet.exchange")


def plan_handovers(ctx: Context, decisions: list[Decision], *, actor: str = "routing") -> dict[str, int]:
    """Step 1: commit each decision as a handover row (idempotent by key), in one transaction."""
    plans = [outbox.Plan(d.sender, d.recipient, d.youth, d.rule, "held" if d.status == "held" else "pending",
                         tuple(d.record_ids), d.legal_basis, d.consent_ref, d.reason, tuple(d.omitted))
             for d in decisions]
    with ctx.store.session() as s:
        return outbox.plan(s, plans, actor=actor, new_id=new_package_id)


def _history(rows: list[RecordRow]) -> tuple[HistoryEntry, ...]:
    out = []
    for r in rows:
        p = r.payload
        when = p.get("event_date") or p.get("updated") or p.get("status_date") or p.get("since") or ""
        what = p.get("programme_name") or p.get("goal_name") or p.get("target_education") or ""
        if r.kind == "tovholder":  # the youth's coordinator, set by a person
            what = " ".join(str(p.get(k) or "") for k in ("name", "email")).strip()
        org = p.get("institution") or p.get("org") or ""
        out.append(HistoryEntry(date=str(when), kind=r.kind, org=str(org),
                                summary=f"{KIND_DA.get(r.kind, r.kind)} {what}".strip()))
    return tuple(sorted(out, key=lambda h: h.date))


class NotSendable(Exception):
    """The legal basis no longer holds at send time (consent withdrawn, expired, …)."""

    def __init__(self, reason: str, *, withdrawn: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.withdrawn = reason, withdrawn


def check_basis(ctx: Context, h: Handover, today: dt.date | None = None) -> None:
    """Check the handover's legal basis again now (consent still valid, not withdrawn).

    Raises:
        NotSendable: the basis is gone; nothing of ``h`` may be sent, not even bytes
            built earlier. A withdrawal notice is its own basis.
    """
    if h.rule == WITHDRAWAL_RULE:
        return
    with ctx.store.session() as s:
        scope = package_scope(s, ctx.network, h.rule, h.youth, h.recipient, set(h.kinds), h.consent_ref,
                              today or dt.date.today())
    if not scope.usable:
        raise NotSendable(scope.reason, withdrawn=scope.reason.startswith("tilbagekaldt"))


def handover_document(ctx: Context, h: Handover, today: dt.date | None = None) -> Document:
    """The document of a handover (holds the CPR: only ever inside a package).

    The legal basis is checked again here, at send time: a consent withdrawn or
    expired since routing stops the send (:class:`NotSendable`). A batch of handovers is
    read at once by :func:`handover_documents` (same documents).
    """
    if h.rule == WITHDRAWAL_RULE:
        return withdrawal_document(ctx, h)
    with ctx.store.session() as s:
        scope = package_scope(s, ctx.network, h.rule, h.youth, h.recipient, set(h.kinds), h.consent_ref,
                              today or dt.date.today())
        if not scope.usable:
            raise NotSendable(scope.reason, withdrawn=scope.reason.startswith("tilbagekaldt"))
        cpr = ctx.store.cpr_of(s, h.youth)
        rows = records.by_ids(s, h.record_ids)
        born = youths.birth_date(s, h.youth)
        history = (_history(records.live_of_kinds(s, h.youth, scope.history_kinds))
                   if scope.history_kinds else ())
    return _document(h, scope, cpr, rows, born, history)


def handover_documents(ctx: Context, hs: Sequence[Handover],
                       today: dt.date | None = None) -> dict[str, Document | Exception]:
    """:func:`handover_document` of each of ``hs``, read in one session with a few queries, by id.

    Each value is the handover's document, or the exception :func:`handover_document` raises
    for it (:class:`NotSendable` with the same reason, ``DataError``, …): one handover's
    trouble is its own. The legal basis is checked for each handover, as there. Withdrawal
    notices are read one by one (:func:`withdrawal_document`).

    Raises:
        TransientError: the batch could not be read (nothing is known of any handover).
    """
    day = today or dt.date.today()
    out: dict[str, Document | Exception] = {}
    plain = [h for h in hs if h.rule != WITHDRAWAL_RULE]
    if plain:
        with ctx.store.session() as s:
            people = youths.rows_of(s, {h.youth for h in plain})
            wanted = sorted({i for h in plain for i in h.record_ids})
            by_id = {r.id: r for r in records.by_ids(s, wanted)} if wanted else {}
            rule_of = {r.id: r for r in default_rules()}  # package_scope's table: consent rules read these
            consents = {y: consents_of(s, y) for y in sorted({
                h.youth for h in plain if h.rule in rule_of and rule_of[h.rule].basis != "duty"})}

            def facts(youth: str) -> tuple[dt.date, list[dict[str, Any]]]:  # no query: read above
                return youths.birth_date_in(people, youth), consents[youth]

            scopes: dict[str, Scope] = {}
            for h in plain:  # no query in here: what is raised is the handover's own
                try:
                    scope = package_scope_with(ctx.network, h.rule, h.recipient, set(h.kinds), h.consent_ref,
                                               day, partial(facts, h.youth))
                except Exception as e:  # this handover's own, as handover_document raises it
                    out[h.id] = e
                    continue
                if scope.usable:
                    scopes[h.id] = scope
                else:
                    out[h.id] = NotSendable(scope.reason, withdrawn=scope.reason.startswith("tilbagekaldt"))
            told = [h for h in plain if h.id in scopes and scopes[h.id].history_kinds]
            course = records.live_of_kinds_of(s, {h.youth for h in told},
                                              {k for h in told for k in scopes[h.id].history_kinds})
        for h in plain:
            if h.id not in scopes:
                continue
            scope = scopes[h.id]
            try:
                y = people.get(h.youth)
                cpr = ctx.store.cpr_of_row(y, h.youth)
                rows = [by_id[i] for i in sorted(set(h.record_ids)) if i in by_id]
                kinds = set(scope.history_kinds)
                history = (_history([r for r in course.get(h.youth, []) if r.kind in kinds])
                           if scope.history_kinds else ())
                out[h.id] = _document(h, scope, cpr, rows, y.birth_date if y is not None else None, history)
            except Exception as e:  # as above
                out[h.id] = e
    for h in hs:
        if h.rule == WITHDRAWAL_RULE:
            try:
                out[h.id] = withdrawal_document(ctx, h)
            except Exception as e:  # as above
                out[h.id] = e
    return out


def _document(h: Handover, scope: Scope, cpr: Cpr, rows: list[RecordRow], born: dt.date | None,
              history: tuple[HistoryEntry, ...]) -> HandoverDocument:
    """A handover's document from what the store holds of it (one place for both readers above)."""
    name = next((f"{r.payload.get('first_name', '')} {r.payload.get('last_name', '')}".strip()
                 for r in rows if r.payload.get("first_name")), "")
    return HandoverDocument(
        package_id=h.id, sender=h.sender, recipient=h.recipient,
        created=h.created_at.replace(tzinfo=dt.UTC).isoformat(), rule=h.rule,
        legal_basis=h.legal_basis, consent_ref=h.consent_ref,
        youth=YouthInfo(cpr=cpr.formatted, name=name, birth_date=born.isoformat() if born else ""),
        records=tuple(DocumentRecord(kind=r.kind, natural_key=r.natural_key,
                                     data={k: v for k, v in r.payload.items() if k not in scope.strip_fields},
                                     source=RecordSource(r.source, r.source_file, r.source_row))
                      for r in rows),
        history=history,
        omitted=tuple(Omission(sc, why) for sc, why in scope.omitted))


def build_outbox_package(ctx: Context, h: Handover,
                         doc: Document | Exception | None = None) -> tuple[bytes, str]:
    """Step 2: the package bytes for ``h``, built once and kept in the outbox folder.

    Bytes built earlier are sent again only while the legal basis still holds
    (:func:`check_basis`, :class:`NotSendable` otherwise): a retry or a resend after a
    crash never sends what a withdrawn or expired consent no longer covers.

    ``doc``: the document read already (:func:`handover_documents`; an exception there is
    raised here, where :func:`handover_document` would raise it); None: read it now.
    """
    path = _package_file(ctx, h)
    if _built(ctx, h):
        check_basis(ctx, h)
        return path.read_bytes(), h.digest
    if isinstance(doc, Exception):
        raise doc
    sender = ctx.network.member(h.sender)
    built = build_package(doc or handover_document(ctx, h), sender=sender,
                          sender_key=signing_key(ctx, h.sender),
                          recipient=ctx.network.member(h.recipient),
                          recipient_cert=recipient_certificate(ctx, h.recipient))
    write_durably(path, built.eml)
    with ctx.store.session() as s:
        outbox.record_built(s, h.id, str(path.relative_to(ctx.home)), built.digest)
    h.package_path, h.digest = str(path), built.digest
    return built.eml, built.digest


def _package_file(ctx: Context, h: Handover) -> Path:
    return ctx.home / "outbox" / f"{h.id}.eml"


def _built(ctx: Context, h: Handover) -> bool:
    """Whether ``h``'s package was built and kept already (a send then only checks its basis again)."""
    return bool(h.package_path and _package_file(ctx, h).exists() and h.digest)


def _documents_to_build(ctx: Context, hs: Sequence[Handover]) -> dict[str, Document | Exception]:
    """The documents of the handovers of ``hs`` whose package is still to be built, read at once.

    Withdrawal notices are left to be read when built (they name what was delivered, and a
    pass delivers). Empty when the batch cannot be read: each is then read on its own, as
    :func:`build_outbox_package` does without a document.
    """
    todo = [h for h in hs if h.rule != WITHDRAWAL_RULE and not _built(ctx, h)]
    if not todo:
        return {}
    try:
        return handover_documents(ctx, todo)
    except Exception as e:  # read one by one, each says what it says
        log.info("the documents of %d handover(s) are read one by one: %s", len(todo), type(e).__name__)
        return {}


@dataclass
class SendResult:
    """Counts of one send pass."""

    sent: int = 0
    held: int = 0
    retry_later: int = 0
    failed: int = 0
    deferred: int = 0  # the endpoint had no free delivery slot before the pass gave up: still pending
    errors: dict[str, str] = field(default_factory=dict)


EndpointSlot = Callable[[str], AbstractContextManager[bool]]
"""``slot(recipient)``: a context holding one delivery slot of ``recipient``'s endpoint.

It yields True while the slot is held, False when none was free (it does not wait long:
a slow endpoint must not hold the worker while other endpoints' packages wait). The flows pass
one backed by Prefect's
global concurrency limits, so the limit holds across every worker (:mod:`flows.partitioned`).
"""

CLAIM_BATCH = 50
"""Handovers a send claims at a time (PostgreSQL)."""
DEFER_POLL = (0.2, 2.0)
"""Seconds between rounds over deferred handovers: the first wait, the longest (doubling)."""


def _no_slot(recipient: str) -> AbstractContextManager[bool]:
    return nullcontext(True)


def send_pending(ctx: Context, *, recipients: list[str] | None = None,
                 now: dt.datetime | None = None, claimant: str = "",
                 takeover: tuple[str, ...] = (), slot: EndpointSlot | None = None,
                 defer_seconds: float = 1800.0,
                 progress: Callable[[int, int], None] | None = None) -> SendResult:
    """Steps 2–4 for every due pending handover; one failing endpoint never blocks the others.

    On PostgreSQL the handovers are claimed for ``claimant`` first (:func:`stafet.store.outbox.due`):
    a concurrent send never gets the same ones; ``takeover`` names dead claimants whose rows may be taken.

    Back-pressure (``slot``, see :data:`EndpointSlot`): each put holds a delivery slot of its
    endpoint. A handover whose endpoint has no free slot is set aside, not waited for, and
    the pass goes on with the others; the set-aside ones are tried again in rounds (a short,
    growing pause when a round moved nothing) until ``defer_seconds`` have passed. What is
    still waiting then stays pending, its claim released, for the next pass (``deferred``).

    ``progress(done, total)`` after each handover dealt with (the CLI's progress bar); ``total``
    is the pending handovers to ``recipients`` when the pass began (an estimate: never below done).
    """
    now = now or utcnow()
    result = SendResult()
    take = slot or _no_slot
    waiting: list[Handover] = []
    total = _pending_count(ctx, recipients) if progress is not None else 0

    def one(h: Handover, doc: Document | Exception | None = None) -> bool:
        dealt = _send_one(ctx, h, now, result, take, doc)
        if dealt and progress is not None:
            done = result.sent + result.held + result.retry_later + result.failed
            progress(done, max(total, done))
        return dealt
    with one_trust(ctx):  # the recipients' certificates are checked against one trust store a pass
        while True:  # claim a batch at a time: concurrent sends to the same recipients share the rows
            with ctx.store.session() as s:
                batched = outbox.claims_apply(s)
                due = outbox.due(s, now, recipients, claimant=claimant, takeover=takeover,
                                 limit=CLAIM_BATCH if batched else None, exclude=[h.id for h in waiting])
            for start in range(0, len(due), CLAIM_BATCH):  # SQLite claims all at once: a batch at a time
                batch = due[start:start + CLAIM_BATCH]
                docs = _documents_to_build(ctx, batch)
                waiting += [h for h in batch if not one(h, docs.pop(h.id, None))]
            if not batched or len(due) < CLAIM_BATCH:
                break
        deadline, pause = time.monotonic() + defer_seconds, DEFER_POLL[0]
        while waiting and time.monotonic() < deadline:
            before = len(waiting)
            waiting = [h for h in waiting if not one(h)]
            if len(waiting) == before:
                time.sleep(pause)
                pause = min(DEFER_POLL[1], pause * 2)
            else:
                pause = DEFER_POLL[0]
    if waiting:
        with ctx.store.session() as s:
            outbox.release(s, [h.id for h in waiting])
        result.deferred = len(waiting)
        log.warning("%d handover(s) still wait for a delivery slot: left for the next pass", len(waiting))
    return result


def _pending_count(ctx: Context, recipients: list[str] | None) -> int:
    """Pending handovers to ``recipients`` (all when None): the total a progress bar shows."""
    with ctx.store.session() as s:
        return sum(c.get("pending", 0) for r, c in outbox.counts_by(s, "recipient").items()
                   if not recipients or r in recipients)


def _send_one(ctx: Context, h: Handover, now: dt.datetime, result: SendResult, slot: EndpointSlot,
              doc: Document | Exception | None = None) -> bool:
    """Build and put one handover within a delivery slot of its endpoint; False when no slot was free.

    ``doc``: its document read already with its batch's (:func:`_documents_to_build`), if it was.
    """
    try:
        data, _ = build_outbox_package(ctx, h, doc)   # built (CPU) before a slot is taken
        with slot(h.recipient) as held:
            if not held:
                return False
            outlet_for(ctx, h.recipient, ctx.network.member(h.sender).email).put(f"{h.id}.eml", data)
    except NotSendable as e:
        with ctx.store.session() as s:
            outbox.not_sendable(s, h.id, e.reason, withdrawn=e.withdrawn, consent_ref=h.consent_ref)
        result.held += 1
        return True
    except TransientError as e:
        max_attempts, max_age = limits(ctx, h.recipient)
        with ctx.store.session() as s:
            gave_up = outbox.attempt_failed(s, h.id, str(e), now=now, max_attempts=max_attempts,
                                            max_age_hours=max_age)
        if gave_up:
            result.failed += 1
        else:
            result.retry_later += 1
        result.errors[h.id] = str(e)
        log.warning("handover %s to %s: will retry: %s", h.id, h.recipient, e)
        return True
    except StafetError as e:
        with ctx.store.session() as s:
            outbox.failed(s, h.id, str(e))
        result.failed += 1
        result.errors[h.id] = str(e)
        log.error("handover %s to %s failed: %s", h.id, h.recipient, e)
        return True
    with ctx.store.session() as s:
        outbox.sent(s, h.id, recipient=h.recipient, digest=h.digest)
    result.sent += 1
    return True


def resend_unacknowledged(ctx: Context, *, max_resends: int, now: dt.datetime | None = None) -> dict[str, int]:  # noqa: E501
    """Send again, as they are, the packages whose receipt is overdue (``ack_limit_hours``).

    Same package id and bytes: the receiver sees a duplicate delivery and answers it again
    (:mod:`stafet.exchange.inbox`). At most ``max_resends`` times per handover; after that
    the duty clock's ``handover_ack`` notice and escalation take over. The legal basis is
    checked before each resend (:func:`build_outbox_package`). Counts only.
    """
    now = now or utcnow()
    out = {"resent": 0, "held": 0, "failed": 0}
    with ctx.store.session() as s:
        due = outbox.resend_due(s, now, limit_hours=ctx.network.ack_limit_hours, max_resends=max_resends)
    for h in due:
        try:
            data, _ = build_outbox_package(ctx, h)
            outlet_for(ctx, h.recipient, ctx.network.member(h.sender).email).put(f"{h.id}.eml", data)
        except NotSendable as e:
            with ctx.store.session() as s:
                outbox.not_sendable(s, h.id, e.reason, withdrawn=e.withdrawn, consent_ref=h.consent_ref)
            out["held"] += 1
            continue
        except StafetError as e:
            log.warning("handover %s to %s: the resend failed: %s", h.id, h.recipient, e)
            out["failed"] += 1
            continue
        with ctx.store.session() as s:
            outbox.resent(s, h.id)
        out["resent"] += 1
    return out


def retry_handover(ctx: Context, handover_id: str, *, actor: str = "operator") -> str:
    """Re-queue a failed handover after its cause was fixed (``stafet outbox retry``); its new status.

    The legal basis is checked first: a handover whose consent is withdrawn or expired
    is not queued again but held (or cancelled, when withdrawn), with the reason. The
    send checks again (:func:`build_outbox_package`).

    Raises:
        ConfigError: no such handover, or it has not failed.
    """
    with ctx.store.session() as s:
        h = outbox.get(s, handover_id)
        if h is None or h.status != "failed":
            outbox.requeue(s, handover_id, actor=actor)  # raises: the operator is told why
    assert h is not None
    try:
        check_basis(ctx, h)
    except NotSendable as e:
        with ctx.store.session() as s:
            return outbox.not_sendable(s, h.id, e.reason, withdrawn=e.withdrawn, consent_ref=h.consent_ref)
    with ctx.store.session() as s:
        outbox.requeue(s, handover_id, actor=actor)
    return "pending"


__all__ = ["EndpointSlot", "NotSendable", "SendResult", "build_outbox_package", "check_basis", "handover_document",  # noqa: E501
           "handover_documents", "plan_handovers", "resend_unacknowledged", "retry_handover", "send_pending"]
