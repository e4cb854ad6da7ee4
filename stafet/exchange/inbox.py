"""The receiving side: a pass over an organisation's inbox — handovers, receipts, notices, inquiries, answers.

Each file is opened and checked (:func:`stafet.packages.package.open_package`, on worker
processes when the inbox is large: :mod:`stafet.packages.opening`), what it carries is
written in batches (:func:`store_batch`), then it is answered and leaves the inbox.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from stafet.context import Context
from stafet.core.config import private_dir
from stafet.core.cpr import parse_cpr
from stafet.core.errors import ConfigError, FileRejected, PackageRejected, StafetError, TransientError
from stafet.core.models import Provenance, record_from_payload
from stafet.exchange.endpoints import inbox_location, one_trust, write_durably
from stafet.exchange.inquiries import check_answer, mark_answered, receive_inquiry
from stafet.exchange.receipts import accept, answer_refusal, send_receipt
from stafet.exchange.withdrawals import apply_notice
from stafet.packages.document import (
    AnswerDocument,
    Document,
    HandoverDocument,
    InquiryDocument,
    NoticeDocument,
    ReceiptDocument,
    WithdrawalDocument,
)
from stafet.packages.opening import open_all
from stafet.packages.package import Opened
from stafet.store import Session, imported, inbox, outbox, utcnow
from stafet.store.db import Prepared, prepare
from transports.base import free_pair

log = logging.getLogger("stafet.exchange")

IMPORT_BATCH = 16
"""Opened packages whose store writes share one transaction (see :func:`process_inbox`)."""


@dataclass
class InboxResult:
    """Counts of one pass over an organisation's inbox."""

    imported: int = 0
    receipts_sent: int = 0
    acknowledged: int = 0
    withdrawn: int = 0
    duplicates: int = 0  # a package delivered again (a resend) and already imported: answered again
    notices: int = 0  # duty notices received (a person reads them)
    inquiries: int = 0  # inquiries received for a person at this UU to answer (issue 18)
    awaiting: int = 0  # imported, the receipt waits for a person (member option acknowledge: person)
    rejected: dict[str, str] = field(default_factory=dict)  # file → reason code
    receipt_errors: dict[str, str] = field(default_factory=dict)  # file → why its receipt was not sent


@dataclass
class Incoming:
    """One inbox file on its way through a receive pass."""

    name: str
    data: bytes
    opened: Opened | None = None
    refused: PackageRejected | None = None
    outcome: str = ""  # imported | withdrawn | acknowledged | duplicate | notice | inquiry | failed
    count: int = 0


def _keep_rejected(ctx: Context, name: str, data: bytes, reason: str) -> None:
    """Keep a refused package and its reason under ``$STAFET_HOME/rejected/`` (0600 files, 0700 folder).

    A package refused earlier under the same name is kept too: this one gets a free name.
    """
    folder = private_dir(ctx.home / "rejected")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120] or "package"
    if safe.startswith("."):
        safe = "_" + safe[1:]
    kept = free_pair(safe, lambda n: os.path.lexists(folder / n))
    write_durably(folder / kept, data)
    write_durably(folder / f"{kept}.reason.txt", (reason + "\n").encode())


def _read_each(box: Any, names: list[str],
               unread: list[tuple[str, FileRejected]]) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each inbox file, read whole (packages are small).

    A file the inbox refuses to read (a symlink, or one bigger than its ``max_bytes``:
    nothing of it is read) goes to ``unread`` instead.
    """
    for name in names:
        try:
            data = box.read(name)
        except FileRejected as e:
            unread.append((name, e))
            continue
        yield name, data


def _refuse_unread(ctx: Context, org_id: str, box: Any, name: str, e: FileRejected,
                   result: InboxResult) -> None:
    """Refuse a file that was never read: moved to the inbox's ``rejected/`` (one copy), with the reason."""
    code = "too_large" if e.rule == "too_large" else "not_a_file"
    result.rejected[name] = code
    with ctx.store.session() as s:
        ctx.store.audit(s, f"receive:{org_id}", "package.rejected", f"file:{name}",
                        {"reason": code, "message": str(e)})
    log.warning("refused %s unread: %s", name, e)
    box.reject(name, reason=f"[{code}] {e}")


MAX_NATURAL_KEY = 300
MAX_REF = 64
"""Longest natural key and consent reference the store keeps (its columns' widths)."""


def bad_content(e: BaseException, package: str | None = None) -> PackageRejected:
    """The refusal for anything a verified package's content raised that is not a refusal itself.

    Names the exception's type (and a :class:`~stafet.core.errors.DataError`'s rule), never
    its message: that may quote the content.
    """
    rule = getattr(e, "rule", None)
    what = type(e).__name__ + (f", {rule}" if isinstance(rule, str) and rule else "")
    return PackageRejected("bad_content", f"the package's content cannot be received ({what})",
                           package=package)


def _records_to_import(doc: HandoverDocument | AnswerDocument,
                       imported_at: dict[str, dt.datetime]) -> list[Prepared]:
    """Check a handover for import — not a replay, every record fits its kind — and return its records.

    ``imported_at``: package id → when, for the ids the caller knows imported (the store's,
    and those checked earlier in the same batch: this one is added). Pure: writes nothing.
    """
    first = imported_at.get(doc.package_id)
    if first is not None:
        raise PackageRejected("replay", "this package id was already imported",
                              package=doc.package_id, first=first.isoformat())
    if len(doc.consent_ref) > MAX_REF:
        raise PackageRejected("schema", f"the consent reference is longer than {MAX_REF} characters",
                              package=doc.package_id)
    cpr, now = parse_cpr(doc.youth.cpr), utcnow()
    out: list[Prepared] = []
    seen: set[tuple[str, str]] = set()
    for i, r in enumerate(doc.records, 1):
        prov = Provenance(source=f"package:{doc.sender}", file=doc.package_id, row=i, received_at=now)
        try:
            p = prepare(record_from_payload(r.kind, r.data, cpr, prov))
        except (KeyError, TypeError, ValueError):
            raise PackageRejected("schema", f"record {i} does not fit its kind",
                                  package=doc.package_id, kind=r.kind, source=r.source_system) from None
        if len(p.natural_key) > MAX_NATURAL_KEY:
            raise PackageRejected("schema", f"record {i}'s natural key is longer than {MAX_NATURAL_KEY} "
                                  "characters", package=doc.package_id, kind=r.kind)
        if (p.kind, p.natural_key) in seen:
            raise PackageRejected("schema", f"record {i} repeats the kind and natural key of an earlier one",
                                  package=doc.package_id, kind=r.kind)
        seen.add((p.kind, p.natural_key))
        out.append(p)
    imported_at[doc.package_id] = now
    return out


def _write_imports(ctx: Context, s: Session, org_id: str,
                   checked: list[tuple[HandoverDocument | AnswerDocument, str, list[Prepared]]]) -> None:
    """Write checked handovers and answers: records apart from source records, package rows, audit.

    A received record is kept under its recipient and package (:mod:`stafet.store.imported`);
    it never updates a source record, whatever its key.
    """
    if not checked:
        return
    cprs = {p.cpr_digits for _, _, ps in checked for p in ps}
    pseud = ctx.store.ensure_youths(s, [parse_cpr(d) for d in sorted(cprs)])
    imported.add(s, org_id, [(doc.package_id, doc.sender,
                              [(p.kind, pseud[p.cpr_digits], p.natural_key, p.payload, p.digest) for p in ps])
                             for doc, _, ps in checked])
    inbox.record_imports(s, org_id, [(doc.package_id, doc.sender, digest, doc.consent_ref)
                                     for doc, digest, _ in checked])
    ctx.store.audit_many(s, f"receive:{org_id}", [
        ("package.imported", f"package:{doc.package_id}",
         {"sender": doc.sender, "records": len(ps), "digest": digest, "consent_ref": doc.consent_ref})
        for doc, digest, ps in checked])


def _no_key(ctx: Context, org_id: str) -> ConfigError:
    """The set-up mistake of receiving for ``org_id`` in a data folder that holds no key for it."""
    from keys import KeyStore

    where = ctx.keys.org_dir(org_id)
    some = where.exists() and any(where.glob("*.pem"))
    net = ctx.network.path.parent
    candidates = [net / "members" / org_id, ctx.home.parent / org_id, ctx.home.parent / "members" / org_id,
                  ctx.home / "members" / org_id]
    found = next((c.resolve() for c in candidates if c.resolve() != ctx.home
                  and any(KeyStore(c).org_dir(org_id).glob("*.pem"))), None)
    what = "only expired keys" if some else "no key"
    hint = (f"{org_id}'s keys are in {found}: run with --home {found} (or STAFET_HOME={found})"
            if found is not None else
            f"run with --home (or STAFET_HOME) set to {org_id}'s own data folder, the one its key was "
            "created in (stafet keys)")
    return ConfigError(f"the data folder {ctx.home} holds {what} for {org_id} (under {where}); its inbox "
                       f"was not touched. {hint}", org=org_id)


def _claim(ctx: Context, org_id: str, box: Any, names: list[str], claimant: str,
           takeover: tuple[str, ...]) -> list[str]:
    """The listed files this pass may receive: on PostgreSQL those it claimed and that are still there.

    Another pass over the same inbox at the same moment (a second receive partition, an
    operator's re-run) gets the others (:func:`stafet.store.inbox.claim_files`). A file
    listed here that another pass received and moved away meanwhile is let go again.
    """
    with ctx.store.session() as s:
        if not names or not inbox.claims_apply(s):
            return names
        inbox.register_files(s, org_id, names)
    with ctx.store.session() as s:
        got = set(inbox.claim_files(s, org_id, names, claimant=claimant, takeover=takeover))
    present = set(box.list("*.eml")) if got else set()
    gone = sorted(got - present)
    if gone:
        with ctx.store.session() as s:
            inbox.release_files(s, org_id, gone, claimant=claimant)
    return [n for n in names if n in got and n in present]


def _release(ctx: Context, org_id: str, names: list[str], claimant: str) -> None:
    with ctx.store.session() as s:
        if names and inbox.claims_apply(s):
            inbox.release_files(s, org_id, names, claimant=claimant)


def process_inbox(ctx: Context, org_id: str, *, location: str | None = None, claimant: str = "",
                  takeover: tuple[str, ...] = (),
                  progress: Callable[[int, int], None] | None = None) -> InboxResult:
    """Receive everything waiting for ``org_id``: handovers, receipts, withdrawal notices.

    Each file is opened and checked (see :func:`stafet.packages.package.open_package`), on
    worker processes when the inbox is large (:mod:`stafet.packages.opening`); a refused file
    is kept under ``$STAFET_HOME/rejected/`` with its reason beside it.

    Order of effects, per batch of up to :data:`IMPORT_BATCH` files in the inbox's
    order (a crash between any two steps is recovered by the next pass):

    1. one transaction writes what the batch's packages carry — imports, receipts
       accepted, withdrawals — each package's checks before its writes, so a refused
       package leaves nothing behind;
    2. then, file by file: the receipt is sent for what was imported (a crash before
       it: the file is still in the inbox, the next pass finds a replay of what was
       imported and acknowledges it again), the refusal is kept and answered, and
       the file leaves the inbox (processed or rejected) last.

    On PostgreSQL the listed files are claimed first, for ``claimant`` (default host:pid;
    ``takeover``: dead runs whose claims may be taken), and released when the pass ends:
    two passes over one inbox at once never receive the same file (:func:`_claim`).

    ``progress(done, total)``: after each file opened and at the end (the CLI's progress bar).

    Raises:
        ConfigError: ``org_id`` is not a member, or this data folder holds no valid key
            for it (a set-up mistake, e.g. the hub's ``STAFET_HOME`` for a member that
            runs its own node): raised before the inbox is opened, so nothing in it is
            read, refused or moved; the message names the folder to use when one is found.
    """
    from transports import open_inbox

    ctx.network.member(org_id)  # a ConfigError for an organisation the network does not know
    keys = ctx.keys.decryption_keys(org_id)
    if not keys:  # a set-up mistake: stop before the inbox is touched (every package would be refused)
        raise _no_key(ctx, org_id)
    loc = ctx.network.locate(location or inbox_location(ctx, org_id))
    box = open_inbox(loc, **ctx.network.sftp_login(org_id), max_bytes=ctx.network.max_bytes(org_id))
    result = InboxResult()
    who = claimant or outbox.default_claimant()
    names = _claim(ctx, org_id, box, box.list("*.eml"), who, tuple(takeover))
    # one trust store for the pass: the packages and the receipts sent back are checked with it
    with _released(ctx, org_id, names, who), one_trust(ctx) as trust:
        unread: list[tuple[str, FileRejected]] = []
        opened = open_all(_read_each(box, names, unread), count=len(names), org_id=org_id, keys=keys,
                          trust=trust, members=ctx.network.members)
        batch: list[Incoming] = []
        for done, (name, data, outcome) in enumerate(opened, 1):
            batch.append(Incoming(name, data, refused=outcome) if isinstance(outcome, PackageRejected)
                         else Incoming(name, data, opened=outcome))
            if progress is not None:
                progress(done, len(names))
            if len(batch) >= IMPORT_BATCH:
                _receive_batch(ctx, org_id, box, batch, result)
                batch = []
        if batch:
            _receive_batch(ctx, org_id, box, batch, result)
        for name, e in unread:
            _refuse_unread(ctx, org_id, box, name, e, result)
        if progress is not None:
            progress(len(names), len(names))
    return result


@contextmanager
def _released(ctx: Context, org_id: str, names: list[str], who: str) -> Iterator[None]:
    """The pass's claims on ``names``, released however it ends."""
    try:
        yield
    finally:
        _release(ctx, org_id, names, who)


def store_batch(ctx: Context, org_id: str, batch: list[Incoming]) -> None:
    """Step 1 of a receive pass: write what the batch's opened packages carry, in one transaction.

    Sets each item's ``outcome`` (and ``count``), or its ``refused`` when a check fails
    (replay, a record that does not fit its kind, a receipt that does not match, a notice
    its signer may not give). Every package is checked before anything of it is written;
    consecutive handovers are written together, and always before a receipt or a
    withdrawal notice that comes after them is applied.

    Anything else a verified package makes the batch raise (an impossible CPR, content
    the store cannot hold) must not wedge the inbox: the batch is rolled back and written
    again package by package, and the package that raises is refused (``bad_content``).
    Only a :class:`~stafet.core.errors.TransientError` (the database is unavailable)
    stops the pass: the next one starts over.
    """
    try:
        _store(ctx, org_id, batch)
    except TransientError:
        raise
    except Exception as e:
        log.warning("a receive batch for %s raised %s: writing its packages one by one", org_id,
                    type(e).__name__)
        for item in batch:
            if item.opened is not None:
                item.outcome, item.count, item.refused = "", 0, None
        for item in batch:
            if item.opened is None:
                continue
            try:
                _store(ctx, org_id, [item])
            except TransientError:
                raise
            except Exception as e1:
                item.outcome, item.count = "", 0
                item.refused = bad_content(e1, _package_id(item))


def _document(item: Incoming) -> Document | None:
    """An opened item's typed document; None (and the item refused) if it cannot be read."""
    if item.opened is None or item.refused is not None:
        return None
    try:
        return item.opened.document
    except Exception as e:
        item.refused = bad_content(e)
        return None


def _package_id(item: Incoming) -> str | None:
    try:
        return item.opened.document.package_id if item.opened is not None else None
    except Exception:
        return None


def _store(ctx: Context, org_id: str, batch: list[Incoming]) -> None:
    """:func:`store_batch` in one transaction; what is not a refusal propagates (and rolls back)."""
    docs = [(item, _document(item)) for item in batch]
    ids = [doc.package_id for _, doc in docs if doc is not None]
    with ctx.store.session() as s:
        imported_at = inbox.imported_at(s, ids)
        prior = inbox.imports(s, ids) if imported_at else {}
        batch_digests: dict[str, tuple[str, str]] = {}  # handovers imported earlier in this batch
        checked: list[tuple[HandoverDocument | AnswerDocument, str, list[Prepared]]] = []
        # receipts: the handovers they close loaded at once, their writes made together — before
        # anything a later package writes, so the store and the audit chain hold what one
        # receipt after another wrote
        handovers = outbox.get_many(s, [doc.for_package for _, doc in docs  # noqa: F841 (held: the
                                        if isinstance(doc, ReceiptDocument)])  # session keeps weak refs)
        acks: list[outbox.PendingAck] = []
        for item, doc in docs:
            if doc is None or item.opened is None:
                continue
            if acks and not isinstance(doc, ReceiptDocument):
                outbox.write_acknowledged(s, acks)
            try:
                if isinstance(doc, HandoverDocument | AnswerDocument) and (
                        _duplicate(prior.get(doc.package_id), org_id, doc, item.opened.digest)
                        or batch_digests.get(doc.package_id) == (doc.sender, item.opened.digest)):
                    item.outcome = "duplicate"  # the same package delivered again (a resend)
                    ctx.store.audit(s, f"receive:{org_id}", "package.duplicate", f"package:{doc.package_id}",
                                    {"sender": doc.sender, "digest": item.opened.digest})
                    continue
                if isinstance(doc, NoticeDocument):
                    item.outcome = "notice"  # read by a person; it changes nothing here
                    ctx.store.audit(s, f"receive:{org_id}", "notice.received", f"package:{doc.package_id}",
                                    {"sender": doc.sender, "step": doc.step, "rule": doc.rule})
                    continue
                if isinstance(doc, InquiryDocument):  # kept for a person at this UU to answer
                    item.outcome = receive_inquiry(ctx, s, org_id, doc, item.opened.digest)
                    continue
                if isinstance(doc, HandoverDocument | AnswerDocument):
                    asked = check_answer(ctx, s, org_id, doc) if isinstance(doc, AnswerDocument) else None
                    try:
                        recs = _records_to_import(doc, imported_at)  # pure: nothing written yet
                    except PackageRejected:
                        raise
                    except Exception as e:
                        raise bad_content(e, doc.package_id) from None
                    checked.append((doc, item.opened.digest, recs))
                    if asked is not None and isinstance(doc, AnswerDocument):
                        mark_answered(s, asked, doc, item.opened.digest)
                    batch_digests[doc.package_id] = (doc.sender, item.opened.digest)
                    item.outcome, item.count = "imported", len(recs)
                    continue
                _write_imports(ctx, s, org_id, checked)
                checked = []
                if isinstance(doc, ReceiptDocument):
                    item.outcome = accept(s, org_id, doc, acks)
                else:
                    item.outcome, item.count = "withdrawn", apply_notice(ctx, s, org_id, doc)
            except PackageRejected as e:
                item.refused = e
        outbox.write_acknowledged(s, acks)
        _write_imports(ctx, s, org_id, checked)


def _duplicate(prior: Any, org_id: str, doc: HandoverDocument | AnswerDocument, digest: str) -> bool:
    """A handover this member imported before, byte for byte the same signed content."""
    return prior is not None and prior.recipient == org_id and prior.sender == doc.sender and prior.digest == digest  # noqa: E501


def _receive_batch(ctx: Context, org_id: str, box: Any, batch: list[Incoming],
                   result: InboxResult) -> None:
    store_batch(ctx, org_id, batch)  # step 1: the store, in one transaction
    by_person = ctx.network.member(org_id).acknowledge == "person"
    waiting: set[str] = set()
    if by_person:  # a duplicate is answered again only once a person has acknowledged the package
        with ctx.store.session() as s:
            ids = [item.opened.document.package_id for item in batch
                   if item.refused is None and item.outcome == "duplicate" and item.opened is not None]
            waiting = set(ids) - inbox.answered(s, ids)
    for item in batch:  # step 2: answers and files, in order
        if item.refused is not None:
            _refuse(ctx, org_id, box, item.name, item.data, item.opened, item.refused, result)
            continue
        assert item.opened is not None
        if item.outcome == "acknowledged":
            result.acknowledged += 1
        elif item.outcome == "notice":
            result.notices += 1
        elif (item.outcome == "imported" and by_person) or (item.outcome == "duplicate" and
                                                           item.opened.document.package_id in waiting):
            if item.outcome == "imported":
                result.imported += 1
                result.awaiting += 1
            else:
                result.duplicates += 1
        elif item.outcome in ("imported", "withdrawn", "duplicate", "inquiry"):
            if item.outcome == "imported":
                result.imported += 1
            elif item.outcome == "inquiry":
                result.inquiries += 1
            elif item.outcome == "duplicate":
                result.duplicates += 1
            else:
                result.withdrawn += item.count
            doc = item.opened.document
            try:
                send_receipt(ctx, org_id, doc.sender, doc.package_id, item.opened.digest, "imported")
            except PackageRejected as e:
                _refuse(ctx, org_id, box, item.name, item.data, item.opened, e, result)
                continue
            except StafetError as e:
                # Imported, but the sender cannot be told now: leave the file in the inbox so the
                # next pass answers it (as a replay, re-acknowledged), and go on with the others.
                result.receipt_errors[item.name] = str(e)
                log.warning("imported %s but its receipt was not sent: %s", item.name, e)
                continue
            result.receipts_sent += 1
        box.mark_processed(item.name)


def _refuse(ctx: Context, org_id: str, box: Any, name: str, data: bytes, opened: Opened | None,
            e: PackageRejected, result: InboxResult) -> None:
    result.rejected[name] = e.reason
    _keep_rejected(ctx, name, data, str(e))
    with ctx.store.session() as s:
        ctx.store.audit(s, f"receive:{org_id}", "package.rejected", f"file:{name}",
                        {"reason": e.reason, "message": str(e)})
    log.warning("refused %s: %s", name, e)
    try:
        doc = opened.document if opened is not None else None
    except Exception:  # a document that cannot even be read: nobody to answer
        doc = None
    if opened is not None and isinstance(doc, HandoverDocument | WithdrawalDocument | InquiryDocument
                                         | AnswerDocument):
        answer_refusal(ctx, org_id, doc, opened.digest, e)
    box.reject(name, reason=str(e))


__all__ = ["IMPORT_BATCH", "InboxResult", "Incoming", "process_inbox", "store_batch"]
