"""Job centre education orders (uddannelsespålæg), Momentum style CSV, UTF-8 with BOM."""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.readers import JOBCENTRE_CSV
from mappings import jobcentre
from stafet.ingest import validation as v
from stafet.sources import Source


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, deadline and status date, age at the status date."""
    v.add_cpr(df, "cpr")
    v.add_date(df, "frist", "iso")
    v.add_date(df, "status_dato", "iso")
    v.add_age(df, "status_dato")
    v.add_institution(df, "maal_institution", optional=True)
    v.add_match(df, "mentor_bevilget", r"(?i)\s*(ja|nej)\s*")


SOURCE = Source(
    name="jobcenter",
    description="job centre education orders (uddannelsespålæg), CSV UTF-8 with BOM",
    pattern=r"jobcenter_\d{3}_paalaeg_\d{8}\.csv",
    reader=JOBCENTRE_CSV,
    map_row=jobcentre.map_row,
    cpr_column="cpr",
    columns=("cpr", "paalaeg_id", "frist", "status_dato", "status", "maal_institution", "mentor_bevilget"),
    prepare=prepare,
    checks=(
        *v.cpr_checks("cpr"),
        v.age_check(18, 29, "status_dato"),
        *v.date_checks("status_dato"),
        *v.date_checks("frist", not_future=False),
        v.in_set_check("order_status", "status", jobcentre.STATUSES,
                       "status is AKTIV, OPHOERT_UDDANNELSESSTART or OPHOERT_ANDET"),
        v.institution_check("maal_institution", optional=True),
        v.regex_check("yes_no", "mentor_bevilget", "mentor_bevilget is ja or nej"),
        v.regex_check("required", "paalaeg_id", "paalaeg_id is given"),
    ),
    kinds=("education_order",),
)
