"""UU education plans, UV-Vej style XML (validated against ``connectors/xsd/uu.xsd``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.readers import UU_XML
from mappings import uu
from stafet.ingest import validation as v
from stafet.sources import Source


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, the plan's date, age on it, goal institution."""
    v.add_cpr(df, "Cpr")
    v.add_date(df, "@opdateret", "iso")
    v.add_date(df, "Aftale@dato", "iso")
    v.add_age(df, "@opdateret")
    v.add_institution(df, "MaalUddannelse@institution", optional=True)
    v.add_match(df, "@id", r"\s*\S.*")


SOURCE = Source(
    name="uu-planer",
    description="UU education plans, UV-Vej style XML (Uddannelsesplaner)",
    pattern=r"uu_\d{3}_planer_\d{8}\.xml",
    reader=UU_XML,
    map_row=uu.map_row,
    cpr_column="Cpr",
    columns=("Cpr", "@id", "@opdateret", "MaalUddannelse@institution", "Aftale@dato"),
    prepare=prepare,
    checks=(
        *v.cpr_checks("Cpr"),
        v.age_check(15, 29, "@opdateret"),
        *v.date_checks("@opdateret"),
        *v.date_checks("Aftale@dato", required=False),
        v.institution_check("MaalUddannelse@institution", optional=True),
        v.regex_check("required", "@id", "the plan has an id"),
    ),
    kinds=("education_plan",),
)
