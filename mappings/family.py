"""Family department transition cases, DUBU style CSV (FORMATS.md section 5) → TransitionCase.

An empty ``Overgangsmoede_dato`` means the meeting is missing (``None``), which the
duty clock reads as such; it is not an error here.
"""

from __future__ import annotations

from collections.abc import Mapping

from mappings.common import (
    Table,
    apply,
    cpr,
    date_dmy,
    free_text,
    jn,
    lower_code_in,
    optional,
    required,
    text,
)
from stafet.core.models import Provenance, TransitionCase

RECEIVERS = ("socialafdeling", "jobcenter", "ingen")

FIELDS: Table = {
    "cpr": ("CPR", cpr),
    "case_no": ("Sagsnr", required(text)),
    "meeting_date": ("Overgangsmoede_dato", optional(date_dmy)),
    "aftercare_sel76": ("SEL76_efterværn", jn),
    "support_sel85": ("SEL85_stoette", jn),
    "receiver": ("Modtager", lower_code_in(RECEIVERS, "receiver")),
    "adviser_name": ("Raadgiver_navn", free_text),
    "adviser_email": ("Raadgiver_email", text),
    "consent_ref": ("Samtykke_ref", text),
}


def map_row(fields: Mapping[str, str], prov: Provenance) -> TransitionCase:
    """One family-department row → TransitionCase.

    Raises:
        DataError: the rule and column of the first value that does not convert.
    """
    return TransitionCase(provenance=prov, **apply(FIELDS, fields, file=prov.file, row=prov.row))
