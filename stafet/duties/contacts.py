"""Contacts registered by a person: the evidence that closes a duty when no export carries it.

A counsellor who phoned a youth registers it (``stafet contact add``, or the console's
duties page): the day, the form, who. It is kept apart from source records
(:mod:`stafet.store.contacts`) and audited; the duty clock (:mod:`stafet.duties.deadlines`)
counts it as a contact *by that organisation* — a job centre's call does not close UU's
duty. A note is free text for people: CPR-shaped numbers in it are masked before it is kept.

Example::

    register_contact(ctx, youth="3f2a…", day=date(2026, 9, 3), form="telefon",
                     note="aftalt møde", by="anna", org="uu-viborg")
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from stafet.core.errors import DataError
from stafet.core.redaction import redact
from stafet.store import contacts, youths

if TYPE_CHECKING:
    from stafet.context import Context

FORMS = contacts.FORMS
PARTIES = contacts.PARTIES
NOTE_MAX = 2000


def register_contact(
    ctx: Context,
    *,
    youth: str,
    day: dt.date,
    form: str,
    note: str = "",
    by: str,
    org: str,
    party: str = "youth",
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Register a contact of ``org`` with ``youth`` on ``day``; audited. Returns the stored contact.

    Raises:
        DataError: unknown youth, an organisation the network does not know, a day in the
            future, an unknown form or an empty ``by`` (each names the rule and what to do).
    """
    today = today or dt.date.today()
    if not by.strip():
        raise DataError("a contact needs the name of the person who registers it", rule="contact.by")
    if org not in ctx.network.members:
        raise DataError(
            f"unknown organisation {org!r}: use an id from network.yaml (stafet network show)",
            rule="contact.org",
        )
    if day > today:
        raise DataError(f"the contact's day {day.isoformat()} is in the future", rule="contact.day")
    if form not in FORMS:
        raise DataError(f"unknown form of contact {form!r} (one of {', '.join(FORMS)})", rule="contact.form")
    if party not in PARTIES:
        raise DataError(f"unknown party {party!r} (one of {', '.join(PARTIES)})", rule="contact.party")
    with ctx.store.session() as s:
        if youths.birth_date(s, youth) is None:
            raise DataError(
                "no such youth in this store (give the pseudonym from stafet deadlines, or --cpr)",
                rule="contact.youth",
            )
        row = contacts.add(
            s,
            youth=youth,
            org=org,
            day=day,
            form=form,
            note=redact(note)[:NOTE_MAX],
            by=by.strip(),
            party=party,
        )
        return {
            "id": row.id,
            "youth": youth,
            "org": org,
            "day": day.isoformat(),
            "form": form,
            "party": party,
            "by": row.by,
        }


def pseudonym_of_cpr(ctx: Context, cpr: str) -> str:
    """The pseudonym of a CPR this store holds (the CPR itself is never kept or shown)."""
    from stafet.core.cpr import parse_cpr

    p = ctx.vault.pseudonym(parse_cpr(cpr).digits)
    with ctx.store.session() as s:
        if youths.birth_date(s, p) is None:
            raise DataError("this store holds no youth with that CPR", rule="contact.youth")
    return p


__all__ = ["FORMS", "PARTIES", "pseudonym_of_cpr", "register_contact"]
