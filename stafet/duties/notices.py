"""Who is told about an overdue duty, and when it goes up a step (pure; the sending is in exchange).

Each overdue duty gets, in order, at most one of each step:

``notice``
    to the responsible organisation, addressed to the named person of the record (the UU
    counsellor, the job centre's caseworker) or else to the member's ``duty_address``;
``coordinator``
    when the duty is still open N working days after the notice (``duties.rules.<rule>.
    escalate.coordinator`` in rules.yaml), to the network coordinator (the member of kind
    ``coordinator``);
``management``
    M working days after that, to the responsible organisation's ``management_address``.

What was sent is the store's (:mod:`stafet.store.notices`): :func:`plan_notices` gets the
days each step was sent and plans only the next one, so the night can run any number of
times. A duty is named by :func:`duty_key` — a digest of its rule, youth, responsible,
due date and the fact that started it, never a CPR.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from stafet.core.config import Network
from stafet.duties.deadlines import Deadline, DutySettings, add_working_days

STEPS = ("notice", "coordinator", "management")

DUTY_DA: dict[str, str] = {
    "dropout_contact": "Kontakt til den unge og forældrene inden 5 arbejdsdage efter afbrud (15–17 år)",
    "dropout_contact_custody": "Kontakt til forældremyndighedens indehaver inden 5 arbejdsdage efter afbrud (15–17 år)",  # noqa: E501
    "dropout_agreement": "Ny aftale om uddannelse eller aktivitet inden 30 dage efter afbrud (15–17 år)",
    "dropout_first_contact": "UU tilbyder den unge en vejledningssamtale efter afbrud (18–24 år)",
    "followup_18_24": "Opfølgning mindst to gange om året (18–24 år uden uddannelse)",
    "transition_meeting": "Overgangsmøde senest ved 17 år",
    "handover_ack": "Overleveringen kvitteres af modtageren inden for netværkets frist",
    "concern_contact": "UU kontakter skolens studievejleder, når et bekymringsmærke modtages",
    "absence_concern": "UU kontakter skolens studievejleder om fravær over tærsklen",
    "order_start": "Den unge er startet på uddannelse inden uddannelsespålæggets frist",
    "first_interview": "1. samtale med sagsbehandleren inden 7 dage efter pålægget",
    "grundskole_transition": "UU har kontakt med eleven fra ½ år før afslutningen af grundskolen",
    "move_handover": ("Den nye UU har kvitteret for den unge, der er flyttet "
                      "(indtil da har den gamle UU ansvaret)"),
}
"""What each duty is, in Danish: the notice's body and the console's duties page."""

ACT_DA: dict[str, str] = {
    "handover_ack": (
        "Kvittér for pakken i konsollens indbakke eller med »stafet acknowledge PAKKE-ID«; "
        "er pakken læst i et mailprogram: »stafet acknowledge --file pakke.eml«."
    ),
    "transition_meeting": "Registrér mødedatoen i fagsystemet; den kommer med næste eksport.",
    "order_start": "Følg op på pålægget; uddannelsesstart kommer med institutionens næste eksport.",
    "first_interview": "Hold samtalen; den kommer med jobcentrets næste samtale-eksport.",
}
DEFAULT_ACT = (
    "Registrér kontakten i konsollen (Pligter) eller med »stafet contact add«; "
    "pligten lukkes, når kontakten er registreret eller kommer med næste eksport."
)


@dataclass(frozen=True)
class NoticePlan:
    """One notice to send: which step of which duty, to which member and person."""

    duty_key: str
    step: str
    item: Deadline
    recipient: str  # member organisation id
    addressee: str  # the named person or address
    since: date  # the first day the duty was overdue

    @property
    def act(self) -> str:
        """Where to act, in Danish."""
        return ACT_DA.get(self.item.rule, DEFAULT_ACT)

    @property
    def duty(self) -> str:
        """The duty, in Danish."""
        return DUTY_DA.get(self.item.rule, self.item.rule)


_VOLATILE = re.compile(r"(;.*$)|(, .*$)|( \([a-z_]+\)$)")


def duty_key(item: Deadline) -> str:
    """A stable name for one duty: rule, youth, responsible, due and the fact that started it.

    The parts of the reference that change while the duty stays the same (a handover's
    status, a follow-up count, a planned meeting) are left out.
    """
    return key_of(item.rule, item.youth, item.responsible, item.due, item.reference)


def key_of(rule: str, youth: str, responsible: str, due: date, reference: str) -> str:
    """:func:`duty_key` of a duty given by its fields (a stored duty item, say)."""
    raw = "|".join((rule, youth, responsible, due.isoformat(), _VOLATILE.sub("", reference)))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def plan_notices(
    items: Iterable[Deadline],
    sent: Mapping[tuple[str, str], date],
    settings: DutySettings,
    network: Network,
    today: date,
    *,
    hold: frozenset[str] = frozenset(),
) -> list[NoticePlan]:
    """The next step for each overdue duty, if one is due today.

    Args:
        items: the duty clock of ``today`` (:func:`stafet.duties.deadlines.compute_deadlines`).
        sent: ``(duty_key, step)`` → the day that step was sent (the store's).
        settings: the escalation steps per rule (rules.yaml).
        network: members, their duty and management addresses, the coordinator.
        today: the night's day.
        hold: duty keys not to notify yet (an unacknowledged handover still being re-sent).
    """
    coordinator = network.coordinator()
    out: list[NoticePlan] = []
    for item in items:
        if item.status != "overdue" or item.responsible not in network.members:
            continue
        key = duty_key(item)
        if key in hold:
            continue
        member = network.members[item.responsible]
        since = date.fromordinal(item.due.toordinal() + 1)
        steps = settings.escalate.get(item.rule, {"coordinator": 3, "management": 5})
        if (key, "notice") not in sent:
            out.append(
                NoticePlan(
                    key, "notice", item, member.id, item.contact or member.duty_address or member.email, since
                )
            )
        elif (key, "coordinator") not in sent:
            if (
                coordinator is not None
                and add_working_days(sent[(key, "notice")], steps["coordinator"]) <= today
            ):
                out.append(
                    NoticePlan(
                        key,
                        "coordinator",
                        item,
                        coordinator.id,
                        coordinator.duty_address or coordinator.email,
                        since,
                    )
                )
        elif (key, "management") not in sent and add_working_days(
            sent[(key, "coordinator")], steps["management"]
        ) <= today:
                out.append(
                    NoticePlan(
                        key,
                        "management",
                        item,
                        member.id,
                        member.management_address or member.duty_address or member.email,
                        since,
                    )
                )
    return out


__all__ = ["ACT_DA", "DUTY_DA", "STEPS", "NoticePlan", "duty_key", "key_of", "plan_notices"]
