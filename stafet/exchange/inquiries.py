"""Inquiries to UU and UU's answers (issue 18): send, receive, answer, accept.

Randers: "Ungdomsuddannelserne kan til enhver tid under optagelsesprocessen forespørge UUR om
oplysninger på konkrete unge. UUR vil – efter at have indhentet samtykke – videregive
oplysninger, der har relevans for uddannelserne."

A member sends a signed, encrypted ``inquiry`` package about one youth to a UU
(:func:`send_inquiry`); the UU's inbox keeps it to be answered (:func:`receive_inquiry`) and
sends a receipt. A person at the UU answers it (:func:`answer_inquiry`): the answer carries
what the routing rules let the UU tell the asker today — the decisions a handover from the UU
to the asker would get, and rule ``inquiry_answer`` (the UU's education plan, with the youth's
consent) — or, when nothing may be told, "intet grundlag" and no records. The asker's inbox
accepts the answer (:func:`check_answer`), keeps its records apart from source records like a
handover's (:mod:`stafet.store.imported`) and sends a receipt.

Every member is a possible adversary: an inquiry goes only to a UU; an answer goes only to
the member that sent the inquiry (its verified signer, never a name typed in); an answer is
accepted only for an inquiry we sent, from the UU we sent it to, about the same youth, once.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from stafet.context import Context
from stafet.core.cpr import Cpr, parse_cpr
from stafet.core.errors import ConfigError, PackageRejected
from stafet.core.models import OrgKind
from stafet.duties.routing import answer_decisions, package_scope
from stafet.exchange.endpoints import outlet_for, recipient_certificate
from stafet.exchange.outbox import _history
from stafet.packages.document import (
    NO_BASIS,
    AnswerDocument,
    DocumentRecord,
    InquiryDocument,
    Omission,
    RecordSource,
    YouthInfo,
)
from stafet.packages.package import build_package, new_package_id
from stafet.store import Session, inquiries, records, youths
from stafet.store.schema import InquiryRow

log = logging.getLogger("stafet.exchange")

ANSWER_RULE = "inquiry_answer"
"""The rule an answer is made under when no rule gives a basis (``no_basis``)."""
MAX_QUESTION = 2000


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _send(ctx: Context, doc: InquiryDocument | AnswerDocument) -> str:
    """Sign, encrypt and put one document to its recipient; the digest of its signed content."""
    built = build_package(doc, sender=ctx.network.member(doc.sender), sender_key=ctx.keys.current(doc.sender),
                          recipient=ctx.network.member(doc.recipient),
                          recipient_cert=recipient_certificate(ctx, doc.recipient))
    outlet_for(ctx, doc.recipient, ctx.network.member(doc.sender).email).put(f"{doc.package_id}.eml",
                                                                             built.eml)
    return built.digest


def send_inquiry(ctx: Context, asker: str, guidance: str, cpr: Cpr, question: str) -> str:
    """Ask the UU ``guidance`` about the youth ``cpr`` on behalf of ``asker``; the inquiry's package id.

    Raises:
        ConfigError: an unknown member, a recipient that is not a UU, asking oneself, an
            empty or too long question.
    """
    frm, to = ctx.network.member(asker), ctx.network.member(guidance)
    if to.kind is not OrgKind.GUIDANCE:
        raise ConfigError(f"{guidance} er ikke en ungeindsats (UU): forespørgsler går kun til UU",
                          org=guidance)
    if frm.id == to.id:
        raise ConfigError("en organisation kan ikke forespørge sig selv", org=asker)
    question = " ".join(question.split())
    if not question or len(question) > MAX_QUESTION:
        raise ConfigError(f"spørgsmålet skal have 1 til {MAX_QUESTION} tegn", org=asker)
    doc = InquiryDocument(package_id=new_package_id(), sender=asker, recipient=guidance, created=_now(),
                          youth=YouthInfo(cpr=cpr.formatted, birth_date=cpr.birth_date.isoformat()),
                          question=question)
    digest = _send(ctx, doc)
    with ctx.store.session() as s:
        youth = ctx.store.ensure_youths(s, [cpr])[cpr.digits]
        inquiries.add(s, package_id=doc.package_id, org=asker, direction="out", asker=asker,
                      guidance=guidance, youth=youth, question=question, digest=digest, status="sent")
        ctx.store.audit(s, f"inquiry:{asker}", "inquiry.sent", f"package:{doc.package_id}",
                        {"asker": asker, "guidance": guidance, "youth": youth})
    return doc.package_id


# --- the UU's side ---------------------------------------------------------------------
def receive_inquiry(ctx: Context, s: Session, org_id: str, doc: InquiryDocument, digest: str) -> str:
    """Keep an inquiry addressed to ``org_id`` for a person to answer; ``inquiry`` or ``duplicate``.

    In the caller's transaction, every check before the write.

    Raises:
        PackageRejected: ``not_guidance`` (we are no UU), ``replay`` (this package id came
            before with other content), ``schema`` (the question is too long).
    """
    if ctx.network.member(org_id).kind is not OrgKind.GUIDANCE:
        raise PackageRejected("not_guidance", "an inquiry goes to a UU only", package=doc.package_id)
    prior = inquiries.get(s, org_id, doc.package_id)
    if prior is not None:
        if prior.direction == "in" and prior.asker == doc.sender and prior.digest == digest:
            return "duplicate"
        raise PackageRejected("replay", "this inquiry id was already received", package=doc.package_id)
    if len(doc.question) > MAX_QUESTION:
        raise PackageRejected("schema", f"the question is longer than {MAX_QUESTION} characters",
                              package=doc.package_id)
    cpr = parse_cpr(doc.youth.cpr)
    youth = ctx.store.ensure_youths(s, [cpr])[cpr.digits]
    inquiries.add(s, package_id=doc.package_id, org=org_id, direction="in", asker=doc.sender, guidance=org_id,
                  youth=youth, question=doc.question, digest=digest, status="open")
    ctx.store.audit(s, f"receive:{org_id}", "inquiry.received", f"package:{doc.package_id}",
                    {"asker": doc.sender, "youth": youth, "digest": digest})
    return "inquiry"


@dataclass(frozen=True)
class Answered:
    """What :func:`answer_inquiry` sent: the answer's id, outcome, rule(s) and how many records."""

    answer_id: str
    inquiry_id: str
    to: str
    outcome: str  # answered | no_basis
    legal_basis: str
    reason: str
    records: int


def _received(s: Session, inquiry_id: str, org: str | None) -> InquiryRow:
    rows = [r for r in inquiries.listing(s, org) if r.package_id == inquiry_id and r.direction == "in"]
    if not rows:
        raise ConfigError(f"ingen modtaget forespørgsel {inquiry_id}" + (f" til {org}" if org else ""),
                          package=inquiry_id)
    if rows[0].status == "answered":
        raise ConfigError(f"forespørgsel {inquiry_id} er allerede besvaret ({rows[0].answer_id})",
                          package=inquiry_id)
    return rows[0]


def answer_document(ctx: Context, s: Session, row: InquiryRow, today: dt.date) -> AnswerDocument:
    """The answer to a received inquiry: what the rules let ``row.guidance`` tell ``row.asker`` today."""
    asker, guidance, youth = row.asker, row.guidance, row.youth
    decisions = answer_decisions(s, ctx.network, youth, guidance, asker, today)
    kept: list[DocumentRecord] = []
    seen: set[int] = set()
    history_kinds: set[str] = set()
    omitted: list[Omission] = []
    rules, bases, refs, held = [], [], [], []
    for d in decisions:
        if d.status == "held":
            held.append(d.reason)
            continue
        rows = [r for r in records.by_ids(s, d.record_ids) if r.id not in seen]
        scope = package_scope(s, ctx.network, d.rule, youth, asker, {r.kind for r in rows}, d.consent_ref,
                              today)
        if not scope.usable or not rows:
            held.append(scope.reason)
            continue
        seen.update(r.id for r in rows)
        kept += [DocumentRecord(kind=r.kind, natural_key=r.natural_key,
                                data={k: v for k, v in r.payload.items() if k not in scope.strip_fields},
                                source=RecordSource(r.source, r.source_file, r.source_row)) for r in rows]
        history_kinds.update(scope.history_kinds)
        omitted += [Omission(sc, why) for sc, why in scope.omitted]
        rules.append(d.rule)
        bases.append(d.legal_basis)
        refs.append(d.consent_ref)
    cpr = ctx.store.cpr_of(s, youth)
    born = youths.birth_date(s, youth)
    info = YouthInfo(cpr=cpr.formatted, birth_date=(born or cpr.birth_date).isoformat())
    common: dict[str, Any] = {"package_id": new_package_id(), "sender": guidance, "recipient": asker,
                              "created": _now(), "in_reply_to": row.package_id, "youth": info}
    if not kept:
        reasons = [r for r in dict.fromkeys(held) if r]
        reason = "; ".join(reasons) or (f"ingen regel giver {guidance} grundlag for at videregive "
                                        f"oplysninger om den unge til {asker}")
        return AnswerDocument(**common, outcome="no_basis", reason=reason, rule=ANSWER_RULE,
                              legal_basis=NO_BASIS, consent_ref="")
    history = _history(records.live_of_kinds(s, youth, history_kinds)) if history_kinds else ()
    return AnswerDocument(**common, outcome="answered", reason="", rule=",".join(dict.fromkeys(rules)),
                          legal_basis=" | ".join(dict.fromkeys(bases)),
                          consent_ref=next((r for r in refs if r), ""), records=tuple(kept),
                          history=history, omitted=tuple(omitted))


def answer_inquiry(ctx: Context, inquiry_id: str, *, by: str, org: str | None = None,
                   today: dt.date | None = None) -> Answered:
    """Answer a received inquiry, to its sender only, with what the basis allows today.

    Raises:
        ConfigError: no such inquiry received (by ``org``, when given), or it is answered already.
    """
    by = " ".join(by.split())
    if not by:
        raise ConfigError("--by: navnet på den, der besvarer, skal angives", package=inquiry_id)
    today = today or dt.date.today()
    with ctx.store.session() as s:
        row = _received(s, inquiry_id, org)
        doc = answer_document(ctx, s, row, today)
    digest = _send(ctx, doc)
    with ctx.store.session() as s:
        row = _received(s, inquiry_id, row.org)
        basis = doc.legal_basis if doc.outcome == "answered" else f"{NO_BASIS}: {doc.reason}"
        inquiries.answered(s, row, answer_id=doc.package_id, digest=digest, outcome=doc.outcome, basis=basis,
                           records=len(doc.records), by=by)
        ctx.store.audit(s, f"inquiry:{row.guidance}", "inquiry.answered", f"package:{doc.package_id}",
                        {"inquiry": inquiry_id, "to": row.asker, "youth": row.youth, "outcome": doc.outcome,
                         "rule": doc.rule, "records": len(doc.records), "by": by, "digest": digest})
    return Answered(doc.package_id, inquiry_id, doc.recipient, doc.outcome, doc.legal_basis, doc.reason,
                    len(doc.records))


# --- the asker's side ------------------------------------------------------------------
def check_answer(ctx: Context, s: Session, org_id: str, doc: AnswerDocument) -> InquiryRow:
    """The row of the inquiry ``doc`` answers, if ``org_id`` may accept it; pure (writes nothing).

    Raises:
        PackageRejected: ``answer_unknown`` (not an answer to an inquiry we sent),
            ``answer_mismatch`` (not from the UU we asked, about another youth, a second
            answer), ``schema`` (an answer with no basis that carries records).
    """
    row = inquiries.get(s, org_id, doc.in_reply_to)
    if row is None or row.direction != "out":
        raise PackageRejected("answer_unknown", "an answer to an inquiry we did not send",
                              package=doc.package_id, inquiry=doc.in_reply_to)
    if row.guidance != doc.sender:
        raise PackageRejected("answer_mismatch", "the answer is not from the UU the inquiry was sent to",
                              package=doc.package_id, inquiry=doc.in_reply_to, sender=doc.sender)
    if row.answer_id and row.answer_id != doc.package_id:
        raise PackageRejected("answer_mismatch", "the inquiry was answered already", package=doc.package_id,
                              inquiry=doc.in_reply_to)
    if ctx.store.cpr_of(s, row.youth).digits != parse_cpr(doc.youth.cpr).digits:
        raise PackageRejected("answer_mismatch", "the answer is about another youth than the inquiry",
                              package=doc.package_id, inquiry=doc.in_reply_to)
    if doc.outcome == "no_basis" and doc.records:
        raise PackageRejected("schema", "an answer with no basis carries records", package=doc.package_id)
    return row


def mark_answered(s: Session, row: InquiryRow, doc: AnswerDocument, digest: str) -> None:
    """The asker's row: answered by ``doc`` (in the receiving transaction)."""
    basis = doc.legal_basis if doc.outcome == "answered" else f"{NO_BASIS}: {doc.reason}"
    inquiries.answered(s, row, answer_id=doc.package_id, digest=digest, outcome=doc.outcome, basis=basis,
                       records=len(doc.records), by=doc.sender)


def accept_receipt(s: Session, org_id: str, for_package: str, sender: str, digest: str,
                   disposition: str) -> str | None:
    """A receipt for an inquiry or an answer we sent: its outcome, or None when it is for neither.

    Raises:
        PackageRejected: ``receipt_mismatch``: not from the inquiry's (or answer's) recipient,
            or not the digest of what was sent.
    """
    row = inquiries.get(s, org_id, for_package)
    answer = False
    if row is None or row.direction != "out":
        row = inquiries.by_answer(s, org_id, for_package)
        if row is None or row.direction != "in":
            return None
        answer = True
    to, sent = (row.asker, row.answer_digest) if answer else (row.guidance, row.digest)
    if sender != to:
        raise PackageRejected("receipt_mismatch", "the receipt is not from the package's recipient",
                              package=for_package)
    if digest != sent:
        raise PackageRejected("receipt_mismatch", "the receipt's digest does not match what was sent",
                              package=for_package)
    done = row.answer_acknowledged_at if answer else row.acknowledged_at
    if done is not None:
        return "duplicate"
    if disposition != "imported":
        log.warning("%s %s was refused by %s: %s", "answer" if answer else "inquiry", for_package, sender,
                    disposition)
        if not answer:
            row.status = "refused"
    inquiries.acknowledged(s, row, answer=answer)
    return "acknowledged"


__all__ = ["ANSWER_RULE", "Answered", "accept_receipt", "answer_document", "answer_inquiry", "check_answer",
           "mark_answered", "receive_inquiry", "send_inquiry"]
