"""EASY-A style school-admin CSV (FORMATS.md section 1) → school events.

``Haendelse`` picks the record kind; a dropout also carries its reason code from
the network's code list and the free-text reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from mappings.common import (
    REASON_CODES,
    Table,
    apply,
    code_in,
    cpr,
    date_dmy,
    decimal_comma,
    free_text,
    optional,
    percentage,
    required,
    text,
)
from stafet.core.errors import DataError
from stafet.core.models import Completion, ConcernFlag, Dropout, Enrolment, Provenance, SchoolEvent

KINDS: Mapping[str, type[SchoolEvent]] = {
    "OPTAG": Enrolment,
    "AFBRUD": Dropout,
    "FRAFALDSTRUET": ConcernFlag,
    "GENNEMFOERT": Completion,
}

FIELDS: Table = {
    "cpr": ("CprNr", cpr),
    "institution": ("Instnr", required(text)),
    "department": ("Afdeling", text),
    "first_name": ("Fornavn", free_text),
    "last_name": ("Efternavn", free_text),
    "home_municipality": ("Bopaelskommune", required(text)),
    "event_date": ("Haendelsesdato", required(date_dmy)),
    "programme_code": ("Uddannelse", required(text)),
    "programme_name": ("Udd_betegnelse", free_text),
    "start_date": ("Startdato", optional(date_dmy)),
    "absence_pct": ("Fravaersprocent", optional(percentage(decimal_comma))),
    "note": ("Note", free_text),
    "contact_name": ("Kontakt_navn", free_text),
    "contact_email": ("Kontakt_email", text),
}

DROPOUT_FIELDS: Table = {
    "reason_code": ("Afbrudsaarsag", code_in(REASON_CODES, "dropout_reason")),
    "reason_text": ("Afbrudsaarsag_tekst", free_text),
}


def map_row(fields: Mapping[str, str], prov: Provenance) -> SchoolEvent:
    """One EASY-A row → Enrolment, Dropout, ConcernFlag or Completion.

    Raises:
        DataError: the rule and column of the first value that does not convert.
    """
    kind = KINDS.get((fields.get("Haendelse") or "").strip().upper())
    if kind is None:
        raise DataError("Haendelse is not OPTAG, AFBRUD, FRAFALDSTRUET or GENNEMFOERT",
                        file=prov.file, row=prov.row, rule="event_type", column="Haendelse")
    values = apply(FIELDS, fields, file=prov.file, row=prov.row)
    if kind is Dropout:
        values.update(apply(DROPOUT_FIELDS, fields, file=prov.file, row=prov.row))
    return kind(provenance=prov, **values)
