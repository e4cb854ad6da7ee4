"""Youths who move (issue 18): where a youth moved to, whose the youth is until the move is handed over.

A youth's registrations (``registration``, FORMATS §8) in the order they began tell the
moves: a registration moved out of (``moved_out``, ``moved_to``), or followed by a newer
registration in another municipality, is a move from its municipality to the next one
(:func:`targets`; a move with neither a ``moved_to`` nor a newer registration goes to an
unknown place: abroad, or not told). Routing hands each move over (rule ``move_handover``
in ``rules.yaml``: the old UU sends the youth's course to the UU of the new municipality, on
the day of the move or after). Here, the two lists that follow from it:

:func:`unacknowledged_moves`
    "Vi slipper ikke de unge, før en anden tager over" (Viborg): the old UU keeps the youth
    until the new UU has acknowledged the move's handover. Each move inside the network
    whose handover is not acknowledged yet is a :class:`~stafet.duties.youth_register.DutyDue`
    (``Deadline(*due)`` for the duty clock, rule ``move_handover``) of the old UU, due the
    day of the move.
:func:`moved_outside`
    "Elever, der bor uden for kommunen?" (Viborg): a youth who moved to a municipality no
    member of the network serves, or to an unknown place, is listed for the network's
    coordinator: nobody in the network can take over.

A move on the day of the extract counts that day (the move-out day belongs to the new
municipality, as in :mod:`stafet.duties.youth_register`). A youth who moved twice (A→B→C)
is two moves: A's UU hands over to B's, B's to C's; B's duty ends when C's UU acknowledges.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from stafet.core.config import Network
from stafet.duties.youth_register import DutyDue, guidance_lookup
from stafet.store import Session, outbox, records

if TYPE_CHECKING:
    from stafet.context import Context

RULE = "move_handover"
"""The routing rule that hands a move over, and the duty id of a move not yet taken over."""
RULES: dict[str, str] = {RULE: "the old UU keeps a youth who moved until the new UU has acknowledged"}
"""Rule id → what the duty is (for the duty clock's table, as youth_register.RULES)."""


def _day(v: Any) -> date | None:
    return date.fromisoformat(v) if v else None


def targets(registrations: Iterable[tuple[int, str, dict[str, Any]]]) -> dict[int, tuple[str, date]]:
    """Registration record id → (municipality moved to, day of the move), for each one that is a move.

    ``registrations``: ``(record id, youth, payload)``. The municipality is ``moved_to``, else
    that of the youth's next registration (by moved-in day) in another municipality, else ""
    (unknown, abroad); the day is ``moved_out``, else the next registration's moved-in day.
    A registration neither moved out of nor followed elsewhere is no move.
    """
    by_youth: dict[str, list[tuple[date, int, dict[str, Any]]]] = defaultdict(list)
    for rid, youth, p in registrations:
        by_youth[youth].append((date.fromisoformat(str(p["moved_in"])), rid, p))
    out: dict[int, tuple[str, date]] = {}
    for regs in by_youth.values():
        regs.sort(key=lambda r: (r[0], r[1]))
        for i, (moved_in, rid, p) in enumerate(regs):
            muni, out_day, to = str(p["municipality"]), _day(p.get("moved_out")), str(p.get("moved_to") or "")
            nxt = next((r for r in regs[i + 1:]
                        if str(r[2]["municipality"]) != muni and r[0] >= moved_in), None)
            if to and out_day:
                out[rid] = (to, out_day)
            elif nxt is not None:
                out[rid] = (str(nxt[2]["municipality"]), out_day or nxt[0])
            elif out_day is not None:
                out[rid] = ("", out_day)
    return out


@dataclass(frozen=True, slots=True)
class Move:
    """One move of a youth: from where, to where, when, and the UUs at both ends (None: not a member)."""

    youth: str
    record: int  # the registration record that tells the move
    from_municipality: str
    to_municipality: str  # "" unknown or abroad
    day: date
    old_uu: str | None
    new_uu: str | None
    masked_cpr: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stable JSON shape of one move (``stafet moves --json``)."""
        return {"youth": self.youth, "masked_cpr": self.masked_cpr, "from": self.from_municipality,
                "to": self.to_municipality, "day": self.day.isoformat(), "old_uu": self.old_uu,
                "new_uu": self.new_uu}


def moves_of(s: Session, network: Network, today: date) -> list[Move]:
    """Every move on or before ``today`` that the live registrations tell, by day, then youth."""
    regs = [(rid, youth, p) for rid, _, youth, p, _ in records.live_facts(s, ["registration"])]
    payloads = {rid: p for rid, _, p in regs}
    youth_of = {rid: y for rid, y, _ in regs}
    uu = guidance_lookup(network)
    out = []
    for rid, (to, day) in targets(regs).items():
        if day > today:
            continue
        frm = str(payloads[rid]["municipality"])
        out.append(Move(youth_of[rid], rid, frm, to, day, uu(frm), uu(to) if to else None))
    return sorted(out, key=lambda m: (m.day, m.youth, m.record))


def due_items(moves: Iterable[Move], handovers: Iterable[Any]) -> list[DutyDue]:
    """The moves inside the network whose handover (from old to new UU) is not acknowledged yet.

    ``handovers``: the outbox rows of rule ``move_handover`` (``sender``, ``recipient``,
    ``record_ids``, ``status``, ``id``). Pure.
    """
    by_record: dict[int, list[Any]] = defaultdict(list)
    for h in handovers:
        for rid in h.record_ids or ():
            by_record[int(rid)].append(h)
    out = []
    for m in moves:
        if m.old_uu is None or m.new_uu is None or m.old_uu == m.new_uu:
            continue
        mine = [h for h in by_record.get(m.record, []) if h.sender == m.old_uu and h.recipient == m.new_uu]
        if any(h.status == "acknowledged" for h in mine):
            continue
        state = (f"overlevering {mine[-1].id} til {m.new_uu}: {mine[-1].status}" if mine
                 else f"overlevering til {m.new_uu} ikke planlagt endnu")
        out.append(DutyDue(RULE, m.youth, m.old_uu, m.day,
                           f"flyttet fra {m.from_municipality} til {m.to_municipality} {m.day.isoformat()}; "
                           f"{state}"))
    return out


def unacknowledged_moves(ctx: Context, today: date, org: str | None = None) -> list[DutyDue]:
    """The moves whose handover the new UU has not acknowledged yet, by old UU (``org``: only its own).

    Each a ``move_handover`` duty of the old UU, due the day of the move, in the duty clock's
    field order (``Deadline(*due)``).
    """
    with ctx.store.session() as s:
        items = due_items(moves_of(s, ctx.network, today), outbox.of_rule(s, RULE))
    return [d for d in items if org is None or d.responsible == org]


def moved_outside(ctx: Context, today: date, org: str | None = None) -> list[Move]:
    """Youths who moved from a municipality of the network to one outside it, or to an unknown place.

    For the network's coordinator ("Elever, der bor uden for kommunen?"); ``org``: only the
    moves away from that UU's municipalities. With masked CPRs.
    """
    with ctx.store.session() as s:
        found = [m for m in moves_of(s, ctx.network, today) if m.old_uu is not None and m.new_uu is None
                 and (org is None or m.old_uu == org)]
        return [replace(m, masked_cpr=ctx.store.cpr_of(s, m.youth).masked) for m in found]


__all__ = ["RULE", "RULES", "Move", "due_items", "moved_outside", "moves_of", "targets",
           "unacknowledged_moves"]
