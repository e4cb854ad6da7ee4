"""Send the night's duty notices and escalations as signed S/MIME sikker-mail (issue 17).

The planner is :mod:`stafet.duties.notices` (who, which step, when); this module sends what
it plans, through the recipient member's own endpoint, signed by the network coordinator
(the member of kind ``coordinator``, whose key this node holds). Nothing in the subject or
headers names the youth: the subject is "Påmindelse om pligt fra <coordinator> <id>"; the
encrypted body says which duty, since when, for whom and where to act, and names the youth
by masked CPR and pseudonym only.

Idempotent: the store's ``notices`` table holds one row per duty per step; a step already
sent is never planned again, a failed one is tried again the next night.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from stafet.context import Context
from stafet.core.errors import StafetError
from stafet.duties.deadlines import Deadline, compute_deadlines, duty_settings
from stafet.duties.notices import NoticePlan, duty_key, plan_notices
from stafet.exchange.endpoints import outlet_for, recipient_certificate
from stafet.packages.document import NoticeDocument
from stafet.packages.package import build_package, new_package_id
from stafet.store import notices, outbox

log = logging.getLogger("stafet.exchange")


def _held_handovers(ctx: Context, items: Sequence[Deadline], resend_attempts: int) -> frozenset[str]:
    """Duty keys of unacknowledged handovers that will still be re-sent: no notice for them yet."""
    ids = {
        i.reference.split()[1]: i
        for i in items
        if i.rule == "handover_ack" and i.reference.startswith("package ")
    }
    if not ids:
        return frozenset()
    with ctx.store.session() as s:
        left = {
            h.id
            for h in outbox.of_statuses(s, ("sent",))
            if h.id in ids and (h.resends or 0) < resend_attempts
        }
    return frozenset(duty_key(ids[h]) for h in left)


def notice_document(ctx: Context, plan: NoticePlan, sender: str) -> NoticeDocument:
    """The signed content of one notice (no CPR: a masked one and the pseudonym)."""
    i = plan.item
    return NoticeDocument(
        package_id=new_package_id(),
        sender=sender,
        recipient=plan.recipient,
        created=dt.datetime.now(dt.UTC).isoformat(),
        step=plan.step,
        rule=i.rule,
        duty=plan.duty,
        youth_ref=i.youth,
        masked_cpr=i.masked_cpr,
        due=i.due.isoformat(),
        since=plan.since.isoformat(),
        responsible=ctx.network.members[i.responsible].name,
        addressee=plan.addressee[:200],
        reference=i.reference[:300],
        act=plan.act,
    )


def send_notices(ctx: Context, today: dt.date, *, items: Sequence[Deadline] | None = None) -> dict[str, int]:
    """Plan and send today's notices and escalations; counts per step, failures and skips.

    A network without a coordinator member sends none (``no_coordinator``: how many were
    not told; the duty clock still lists them); neither does a node that does not hold the
    coordinator's key (``not_this_node``: a member's own node — the hub tells).
    """
    settings = duty_settings()
    items = list(items) if items is not None else compute_deadlines(ctx, today)
    overdue = [i for i in items if i.status == "overdue"]
    counts = {"notice": 0, "coordinator": 0, "management": 0, "failed": 0}
    if not overdue:
        return counts
    coordinator = ctx.network.coordinator()
    if coordinator is None:  # a network without a coordinator: the duty clock still lists them
        log.warning(
            "%d overdue duties, and no notice is sent: network.yaml has no member of kind "
            "coordinator to sign them (add one: stafet network add-member)",
            len(overdue),
        )
        return counts | {"no_coordinator": len(overdue)}
    if not ctx.keys.keys(coordinator.id):  # a member's own node: the hub, which holds the key, tells
        log.info("%d overdue duties: notices are sent by the node that holds the coordinator's key (%s), "
                 "not this one (%s)", len(overdue), coordinator.id, ctx.home)
        return counts | {"not_this_node": len(overdue)}
    key = ctx.keys.current(coordinator.id)
    with ctx.store.session() as s:
        sent = notices.first_sent(s, [duty_key(i) for i in overdue])
    plans = plan_notices(
        overdue,
        sent,
        settings,
        ctx.network,
        today,
        hold=_held_handovers(ctx, overdue, settings.resend_attempts),
    )
    for plan in plans:
        with ctx.store.session() as s:
            row = notices.claim(
                s,
                duty_key=plan.duty_key,
                step=plan.step,
                rule=plan.item.rule,
                youth=plan.item.youth,
                responsible=plan.item.responsible,
                recipient=plan.recipient,
                addressee=plan.addressee[:200],
                due=plan.item.due,
                day=today,
            )
            row_id = row.id if row is not None else None
        if row_id is None:
            continue
        try:
            doc = notice_document(ctx, plan, coordinator.id)
            built = build_package(
                doc,
                sender=coordinator,
                sender_key=key,
                recipient=ctx.network.member(plan.recipient),
                recipient_cert=recipient_certificate(ctx, plan.recipient),
            )
            outlet_for(ctx, plan.recipient, coordinator.email).put(f"{doc.package_id}.eml", built.eml)
        except StafetError as e:
            with ctx.store.session() as s:
                notices.mark_failed(s, row_id, str(e))
            counts["failed"] += 1
            log.warning("notice %s (%s) to %s not sent: %s", plan.step, plan.item.rule, plan.recipient, e)
            continue
        with ctx.store.session() as s:
            notices.mark_sent(s, row_id, doc.package_id, actor="notices")
        counts[plan.step] += 1
    return counts


def notice_listing(ctx: Context, *, recipient: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The latest notices (no CPR: the youth by pseudonym), newest first."""
    with ctx.store.session() as s:
        return [
            {
                "id": n.id,
                "step": n.step,
                "rule": n.rule,
                "youth": n.youth,
                "responsible": n.responsible,
                "recipient": n.recipient,
                "addressee": n.addressee,
                "due": n.due.isoformat(),
                "day": n.day.isoformat(),
                "status": n.status,
                "package_id": n.package_id,
                "sent_at": n.sent_at.replace(tzinfo=dt.UTC).isoformat() if n.sent_at else None,
                "last_error": n.last_error,
            }
            for n in notices.listing(s, recipient=recipient, limit=limit)
        ]


__all__ = ["notice_document", "notice_listing", "send_notices"]
