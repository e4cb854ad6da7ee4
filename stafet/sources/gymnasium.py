"""School administration, gymnasium (XML, validated against ``connectors/xsd/skoleadm.xsd``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.readers import GYMNASIUM_XML
from mappings import gymnasium
from mappings.common import REASON_CODES
from stafet.ingest import validation as v
from stafet.sources import Source


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
    pattern=r"\d{6}_elevhaendelser_\d{12}\.xml",
    reader=GYMNASIUM_XML,
    map_row=gymnasium.map_row,
    cpr_column="Cpr",
    columns=("Cpr", "/institution", "@type", "Bopaelskommune", "Dato", "Startdato", "Aarsag@kode", "Fravaer"),
    prepare=prepare,
    checks=(
        *v.cpr_checks("Cpr"),
        v.age_check(15, 29, "Dato"),
        v.in_set_check("event_type", "_type", tuple(gymnasium.KINDS),
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
