"""Gymnasium school-admin XML (FORMATS.md section 2) → school events.

The XML reader flattens a ``Haendelse`` element to fields (``Cpr``,
``Uddannelse@kode``, ``/institution`` from the root, …). ``Navn`` is one full
name: the last word is the surname. Absence uses a decimal point here.
"""

from __future__ import annotations

from collections.abc import Mapping

from mappings.common import (
    REASON_CODES,
    Table,
    apply,
    code_in,
    cpr,
    date_iso,
    decimal_point,
    free_text,
    optional,
    percentage,
    required,
    split_name,
    text,
)
from stafet.core.errors import DataError
from stafet.core.models import Completion, ConcernFlag, Dropout, Enrolment, Provenance, SchoolEvent

KINDS: Mapping[str, type[SchoolEvent]] = {
    "optag": Enrolment,
    "afbrud": Dropout,
    "frafaldstruet": ConcernFlag,
    "gennemfoert": Completion,
}

FIELDS: Table = {
    "cpr": ("Cpr", cpr),
    "institution": ("/institution", required(text)),
    "home_municipality": ("Bopaelskommune", required(text)),
    "event_date": ("Dato", required(date_iso)),
    "programme_code": ("Uddannelse@kode", required(text)),
    "programme_name": ("Uddannelse", free_text),
    "start_date": ("Startdato", optional(date_iso)),
    "absence_pct": ("Fravaer", optional(percentage(decimal_point))),
    "contact_name": ("Kontakt@navn", free_text),
    "contact_email": ("Kontakt@email", text),
}

DROPOUT_FIELDS: Table = {
    "reason_code": ("Aarsag@kode", code_in(REASON_CODES, "dropout_reason")),
    "reason_text": ("Aarsag", free_text),
}


def map_row(fields: Mapping[str, str], prov: Provenance) -> SchoolEvent:
    """One ``Haendelse`` element → Enrolment, Dropout, ConcernFlag or Completion.

    Raises:
        DataError: the rule and field of the first value that does not convert.
    """
    kind = KINDS.get((fields.get("@type") or "").strip().lower())
    if kind is None:
        raise DataError("type is not optag, afbrud, frafaldstruet or gennemfoert",
                        file=prov.file, row=prov.row, rule="event_type", column="@type")
    values = apply(FIELDS, fields, file=prov.file, row=prov.row)
    if kind is Dropout:
        values.update(apply(DROPOUT_FIELDS, fields, file=prov.file, row=prov.row))
    first, last = split_name(free_text(fields.get("Navn") or ""))
    return kind(provenance=prov, first_name=first, last_name=last, **values)
