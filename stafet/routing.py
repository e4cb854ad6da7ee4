"""Who must be told what, and on which basis.

This module holds the network's legal-duty rule for school events; consent-based
rules are added beside it. Every decision is a :class:`Decision`, written to the
audit log by the caller, so a data steward can see why something was (not) sent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from stafet.config import Network
from stafet.cpr import age_on
from stafet.store.schema import RecordRow, Youth

DUTY_DROPOUT = ("Vejledningsloven § 12 c: institutionen underretter ungeindsatsen i den unges "
                "bopælskommune om afbrud og frafaldstruede unge under 25 år")


@dataclass(frozen=True)
class Decision:
    """One handover to make (or hold), with its reason."""

    sender: str
    recipient: str
    youth: str
    record_ids: tuple[int, ...]
    rule: str
    legal_basis: str
    consent_ref: str = ""
    status: str = "send"  # send | held | partial
    reason: str = ""
    omitted: tuple[tuple[str, str], ...] = field(default=())


def route_school_events(s: Session, network: Network, today: date) -> list[Decision]:
    """Dropouts and concern flags of youths under 25 → UU of the home municipality.

    One decision per (institution, youth, UU): the youth's dropout and concern
    records from that institution travel together.
    """
    rows = s.execute(
        select(RecordRow.id, RecordRow.kind, RecordRow.youth, RecordRow.payload, Youth.birth_date)
        .join(Youth, Youth.pseudonym == RecordRow.youth)
        .where(RecordRow.kind.in_(("dropout", "concern_flag")), RecordRow.withdrawn.is_(False))
        .order_by(RecordRow.id)).all()
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    held: list[Decision] = []
    for rid, _kind, youth, payload, born in rows:
        event = date.fromisoformat(payload["event_date"])
        sender = payload["institution"]
        uu = network.guidance_for(payload["home_municipality"])
        if age_on(born, event) >= 25:
            continue  # the duty covers youths under 25 only
        if uu is None or sender not in network.members:
            held.append(Decision(sender, uu.id if uu else "", youth, (rid,), "dropout_to_uu",
                                 DUTY_DROPOUT, status="held",
                                 reason="ingen UU for bopælskommunen i netværket" if uu is None
                                 else "afsender er ikke medlem af netværket"))
            continue
        groups[(sender, youth, uu.id)].append(rid)
    out = [Decision(snd, rcpt, youth, tuple(ids), "dropout_to_uu", DUTY_DROPOUT)
           for (snd, youth, rcpt), ids in groups.items()]
    return out + held
