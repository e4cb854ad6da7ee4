"""The duty clock's daily snapshot: the day's open duties written to the store for the console.

The night writes it (:func:`write_snapshot`, from its deadlines stage, with the items it
computed anyway); the console reads it page by page (``stafet.store.duty_items``) instead
of recomputing the clock in a request, and computes it itself (in a background thread)
only when the night has not run today. Computed here, the clock walks the youths in
batches (:func:`snapshot_deadlines`), so memory stays bounded by a batch, not the store.

A registered contact changes one youth's duties: :func:`refresh_youth` recomputes that
youth's items (:func:`youth_deadlines`) and replaces them in the snapshot. The rules
themselves are :mod:`stafet.duties.deadlines`' (nothing here decides a duty).

The table holds no CPR: the youth by pseudonym and the masked CPR (``DDMMYY-xxxx``).

Example::

    write_snapshot(ctx, date.today())          # the night
    refresh_youth(ctx, date.today(), youth)    # after a contact
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from stafet.core.errors import DataError
from stafet.duties.deadlines import (
    WINDOW_DAYS,
    Deadline,
    classify,
    deadlines_from_facts,
    load_facts_of,
    other_deadlines,
    sort_key,
)
from stafet.store import Session, duty_items, utcnow, youths
from stafet.store import contacts as contact_store

if TYPE_CHECKING:
    from stafet.context import Context

log = logging.getLogger("stafet.duties")

BATCH = 2000
"""Youths per batch when the snapshot is computed here (facts of one batch in memory at a time)."""


def as_row(item: Deadline) -> dict[str, Any]:
    """One item as the snapshot stores it (no CPR: the masked one only)."""
    return {k: getattr(item, k) for k in duty_items.COLUMNS}


def _finish(ctx: Context, s: Session, items: Iterable[Deadline], day: date,
            window_days: int) -> list[Deadline]:
    """Classify ``items`` on ``day`` and add each youth's masked CPR (as ``compute_deadlines`` does)."""
    masked: dict[str, str] = {}
    out = []
    for i in items:
        if i.youth not in masked:
            try:
                masked[i.youth] = ctx.store.cpr_of(s, i.youth).masked
            except DataError:
                masked[i.youth] = ""  # a handover for a youth this store does not hold
        out.append(replace(classify(i, day, window_days), masked_cpr=masked[i.youth]))
    return out


def _not_of_records(s: Session, ctx: Context, day: date, only: Sequence[str] | None) -> list[Deadline]:
    """The items that do not come from a youth's records (register, moves, handovers), of ``only``."""
    items = other_deadlines(s, ctx.network, day)
    return items if only is None else [i for i in items if i.youth in set(only)]


def youth_deadlines(ctx: Context, day: date, youth: str, *, window_days: int = WINDOW_DAYS) -> list[Deadline]:
    """One youth's open duties on ``day``, as :func:`~stafet.duties.deadlines.compute_deadlines` has them."""
    with ctx.store.session() as s:
        items = deadlines_from_facts(load_facts_of(s, [youth]).values(), ctx.network, day)
        items += _not_of_records(s, ctx, day, [youth])
        return sorted(_finish(ctx, s, items, day, window_days), key=sort_key)


def snapshot_deadlines(ctx: Context, day: date, *, batch: int = BATCH,
                       window_days: int = WINDOW_DAYS) -> list[Deadline]:
    """Every open duty on ``day`` (the same items as ``compute_deadlines``), youths walked in batches."""
    with ctx.store.session() as s:
        everyone = youths.pseudonyms(s)
    out: list[Deadline] = []
    for k in range(0, len(everyone), batch):
        chunk = everyone[k:k + batch]
        with ctx.store.session() as s:
            items = deadlines_from_facts(load_facts_of(s, chunk).values(), ctx.network, day)
            out += _finish(ctx, s, items, day, window_days)
    with ctx.store.session() as s:
        out += _finish(ctx, s, _not_of_records(s, ctx, day, None), day, window_days)
    return sorted(out, key=sort_key)


def write_snapshot(ctx: Context, day: date, items: Sequence[Deadline] | None = None,
                   since: datetime | None = None) -> int:
    """Write ``day``'s snapshot (``items`` when the caller computed them already); returns how many items.

    Earlier days' snapshots go; a newer one of ``day`` is kept (:func:`stafet.store.duty_items.replace_day`).
    ``since``: when the caller began computing ``items`` (store time, :func:`stafet.store.utcnow`);
    without ``items`` it is now. A contact registered from then on is not lost: that youth's
    items are recomputed after the write.
    """
    started = since if since is not None and items is not None else utcnow()
    t = time.perf_counter()
    if items is None:
        items = snapshot_deadlines(ctx, day)
    with ctx.store.session() as s:
        n = duty_items.replace_day(s, day, (as_row(i) for i in items), computed_at=started)
    with ctx.store.session() as s:
        late = contact_store.youths_since(s, started)
    for youth in late:
        refresh_youth(ctx, day, youth)
    log.info("duty snapshot of %s: %d items in %.1f s", day.isoformat(), n, time.perf_counter() - t)
    return n


def snapshot_items(ctx: Context, day: date) -> list[Deadline] | None:
    """``day``'s duty clock as its snapshot holds it (sorted as the clock is), or None without one.

    The same items as :func:`~stafet.duties.deadlines.compute_deadlines` while nothing the
    clock reads changed since the snapshot was written, apart from registered contacts
    (:func:`refresh_youth` keeps those current). The night's report and notices read it
    straight after its deadlines stage (:mod:`stafet.night`) instead of computing the
    clock twice more.
    """
    with ctx.store.session() as s:
        if duty_items.snapshot(s, day) is None:
            return None
        rows = duty_items.items_of_day(s, day)
    return sorted((Deadline(**row) for row in rows), key=sort_key)


def refresh_youth(ctx: Context, day: date, youth: str) -> list[Deadline]:
    """Recompute one youth's items and replace them in ``day``'s snapshot (when there is one)."""
    items = youth_deadlines(ctx, day, youth)
    with ctx.store.session() as s:
        duty_items.replace_youth(s, day, youth, [as_row(i) for i in items], computed_at=utcnow())
    return items


def has_snapshot(ctx: Context, day: date) -> bool:
    """Whether ``day``'s snapshot was written."""
    with ctx.store.session() as s:
        return duty_items.snapshot(s, day) is not None


__all__ = ["BATCH", "as_row", "has_snapshot", "refresh_youth", "snapshot_deadlines", "snapshot_items",
           "write_snapshot", "youth_deadlines"]
