"""School administration, vocational and upper-secondary (EASY-A style CSV)."""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.readers import EASYA_CSV
from mappings import easya
from mappings.common import REASON_CODES
from stafet.ingest import validation as v
from stafet.sources import Source


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, event and start dates, age, institution."""
    v.add_cpr(df, "CprNr")
    v.add_date(df, "Haendelsesdato", "dmy")
    v.add_date(df, "Startdato", "dmy")
    v.add_age(df, "Haendelsesdato")
    v.add_institution(df, "Instnr")
    v.add_match(df, "Bopaelskommune", r"\s*\d{3}\s*")
    v.add_match(df, "Fravaersprocent", r"\s*(\d{1,3}(,\d+)?)?\s*")


SOURCE = Source(
    name="easy-a",
    description="school administration events, EASY-A style CSV (cp1252)",
    pattern=r"\d{6}_haendelser_\d{10}\.csv",
    reader=EASYA_CSV,
    map_row=easya.map_row,
    cpr_column="CprNr",
    columns=("CprNr", "Instnr", "Bopaelskommune", "Haendelse", "Haendelsesdato", "Startdato",
             "Uddannelse", "Afbrudsaarsag", "Fravaersprocent"),
    prepare=prepare,
    checks=(
        *v.cpr_checks("CprNr"),
        v.age_check(15, 29, "Haendelsesdato"),
        v.in_set_check("event_type", "Haendelse", tuple(easya.KINDS),
                       "Haendelse is OPTAG, AFBRUD, FRAFALDSTRUET or GENNEMFOERT"),
        *v.date_checks("Haendelsesdato"),
        *v.date_checks("Startdato", required=False, not_future=False),
        v.start_check("Startdato", "Haendelsesdato"),
        v.in_set_check("dropout_reason", "Afbrudsaarsag", tuple(REASON_CODES),
                       "a dropout (AFBRUD) has a reason code from the network's list",
                       row_condition='Haendelse=="AFBRUD"', condition_parser="pandas"),
        v.institution_check("Instnr"),
        v.regex_check("municipality_format", "Bopaelskommune",
                      "Bopaelskommune is a 3-digit municipality number"),
        v.regex_check("decimal_format", "Fravaersprocent",
                      "Fravaersprocent is empty or a number with a decimal comma"),
    ),
    kinds=("enrolment", "dropout", "concern_flag", "completion"),
)
