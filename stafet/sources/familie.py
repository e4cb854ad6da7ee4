"""Family department transition cases, DUBU style CSV (ISO-8859-1)."""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.readers import FAMILY_CSV
from mappings import family
from stafet.ingest import validation as v
from stafet.sources import Source


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, age today, meeting date, J/N flags."""
    v.add_cpr(df, "CPR")
    v.add_date(df, "Overgangsmoede_dato", "dmy")
    v.add_age(df, today)
    v.add_match(df, "SEL76_efterværn", r"(?i)\s*[jn]\s*")
    v.add_match(df, "SEL85_stoette", r"(?i)\s*[jn]\s*")
    v.add_match(df, "Modtager", r"(?i)\s*(socialafdeling|jobcenter|ingen)\s*")
    v.add_match(df, "Sagsnr", r"\s*\S.*")


SOURCE = Source(
    name="familie",
    description="family department transition cases, DUBU style CSV (ISO-8859-1)",
    pattern=r"familie_\d{3}_overgange_\d{8}\.csv",
    reader=FAMILY_CSV,
    map_row=family.map_row,
    cpr_column="CPR",
    columns=("CPR", "Sagsnr", "Overgangsmoede_dato", "SEL76_efterværn", "SEL85_stoette", "Modtager"),
    prepare=prepare,
    checks=(
        *v.cpr_checks("CPR"),
        v.age_check(15, 29, "the day the file is read"),
        # A meeting date may lie ahead (planned) and may be missing (then it is missing).
        *v.date_checks("Overgangsmoede_dato", required=False, not_future=False),
        v.regex_check("yes_no", "SEL76_efterværn", "SEL76_efterværn is J or N"),
        v.regex_check("yes_no", "SEL85_stoette", "SEL85_stoette is J or N"),
        v.regex_check("receiver", "Modtager", "Modtager is socialafdeling, jobcenter or ingen"),
        v.regex_check("required", "Sagsnr", "Sagsnr is given"),
    ),
    kinds=("transition_case",),
)
