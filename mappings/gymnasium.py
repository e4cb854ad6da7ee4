"""School administration, gymnasium XML, checked against ``connectors/xsd/skoleadm.xsd`` (FORMATS.md 2).

The XML reader flattens a ``Haendelse`` element to fields (``Cpr``,
``Uddannelse@kode``, ``/institution`` from the root, …). ``Navn`` is one full
name: the last word is the surname. Absence uses a decimal point here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from connectors.readers import XmlReader
from mappings import Source
from mappings import checks as v
from mappings.common import (
    REASON_CODES,
    Column,
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
    table,
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

COLUMNS = (
    Column("Cpr", "cpr", cpr, checked=True),
    Column("/institution", "institution", required(text), checked=True),
    Column("@type", "kind", checked=True),  # picks the record kind: map_row
    Column("Navn", "first_name"),  # first names and surname: map_row splits it
    Column("Bopaelskommune", "home_municipality", required(text), checked=True),
    Column("Dato", "event_date", required(date_iso), checked=True),
    Column("Uddannelse@kode", "programme_code", required(text)),
    Column("Uddannelse", "programme_name", free_text),
    Column("Startdato", "start_date", optional(date_iso), checked=True),
    Column("Fravaer", "absence_pct", optional(percentage(decimal_point)), checked=True),
    Column("Kontakt@navn", "contact_name", free_text),
    Column("Kontakt@email", "contact_email", text),
    Column("Aarsag@kode", "reason_code", code_in(REASON_CODES, "dropout_reason"), checked=True,
           group="dropout"),
    Column("Aarsag", "reason_text", free_text, group="dropout"),
)

FIELDS = table(COLUMNS)
DROPOUT_FIELDS = table(COLUMNS, "dropout")
READER = XmlReader("gymnasium", "urn:stafet:formats:skoleadm:1", "Elevhaendelser", "Haendelse",
                   "skoleadm.xsd", root_fields=("institution", "dannet"))


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


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite; ``_type`` and ``_reason`` are query-safe aliases."""
    v.add_cpr(df, "Cpr")
    v.add_date(df, "Dato", "iso")
    v.add_date(df, "Startdato", "iso")
    v.add_age(df, "Dato")
    v.add_institution(df, "/institution")
    v.add_match(df, "Bopaelskommune", r"\s*\d{3}\s*")
    v.add_match(df, "Fravaer", r"\s*(\d{1,3}(\.\d+)?)?\s*")
    df["_type"] = df["@type"].str.strip().str.lower()
    df["_reason"] = df["Aarsag@kode"].str.strip()


SOURCE = Source(
    name="gymnasium",
    description="school administration events, gymnasium XML (Elevhaendelser)",
    pattern=r"(?P<institution>\d{6})_elevhaendelser_\d{12}\.xml",
    reader=READER,
    map_row=map_row,
    declared=COLUMNS,
    prepare=prepare,
    checks=(
        *v.cpr_checks("Cpr"),
        v.age_check(15, 29, "Dato"),
        v.in_set_check("event_type", "_type", tuple(KINDS),
                       "type is optag, afbrud, frafaldstruet or gennemfoert"),
        *v.date_checks("Dato"),
        *v.date_checks("Startdato", required=False, not_future=False),
        v.start_check("Startdato", "Dato"),
        v.in_set_check("dropout_reason", "_reason", tuple(REASON_CODES),
                       "a dropout (afbrud) has an Aarsag kode from the network's list",
                       row_condition='_type=="afbrud"', condition_parser="pandas"),
        v.institution_check("/institution"),
        v.regex_check("municipality_format", "Bopaelskommune",
                      "Bopaelskommune is a 3-digit municipality number"),
        v.regex_check("decimal_format", "Fravaer", "Fravaer is empty or a number with a decimal point"),
    ),
    kinds=("enrolment", "dropout", "concern_flag", "completion"),
)
