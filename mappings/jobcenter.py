"""Job centre education orders (uddannelsespålæg), Momentum style CSV, UTF-8 with BOM (FORMATS.md 3)."""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.readers import UTF8_BOM, CsvReader
from mappings import Source
from mappings import checks as v
from mappings.common import (
    Column,
    code_in,
    cpr,
    date_iso,
    free_text,
    header,
    ja_nej,
    one_kind,
    required,
    table,
    text,
)
from stafet.core.models import EducationOrder

STATUSES = ("AKTIV", "OPHOERT_UDDANNELSESSTART", "OPHOERT_ANDET")

COLUMNS = (
    Column("cpr", "cpr", cpr, checked=True),
    Column("paalaeg_id", "order_id", required(text), checked=True),
    Column("maal_uddannelse", "target_education", required(free_text)),
    Column("maal_institution", "target_institution", text, checked=True),
    Column("frist", "deadline", required(date_iso), checked=True),
    Column("mentor_bevilget", "mentor_granted", ja_nej, checked=True),
    Column("mentor_navn", "mentor_name", free_text),
    Column("sagsbehandler_navn", "caseworker_name", free_text),
    Column("sagsbehandler_tlf", "caseworker_phone", text),
    Column("sagsbehandler_email", "caseworker_email", text),
    Column("status", "status", code_in(STATUSES, "order_status"), checked=True),
    Column("status_dato", "status_date", required(date_iso), checked=True),
    Column("samtykke_ref", "consent_ref", text),
)

FIELDS = table(COLUMNS)
READER = CsvReader("jobcenter", UTF8_BOM, header(COLUMNS))


map_row = one_kind(EducationOrder, FIELDS)


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, deadline and status date, age at the status date, flags."""
    v.add_cpr(df, "cpr")
    v.add_date(df, "frist", "iso")
    v.add_date(df, "status_dato", "iso")
    v.add_age(df, "status_dato")
    v.add_institution(df, "maal_institution", optional=True)
    v.add_match(df, "mentor_bevilget", r"(?i)\s*(ja|nej)\s*")
    v.add_match(df, "paalaeg_id", r"\s*\S.*")


SOURCE = Source(
    name="jobcenter",
    description="job centre education orders (uddannelsespålæg), CSV UTF-8 with BOM",
    pattern=r"jobcenter_(?P<municipality>\d{3})_paalaeg_\d{8}\.csv",
    reader=READER,
    map_row=map_row,
    declared=COLUMNS,
    prepare=prepare,
    checks=(
        *v.cpr_checks("cpr"),
        v.age_check(18, 29, "status_dato"),
        *v.date_checks("status_dato"),
        *v.date_checks("frist", not_future=False),
        v.in_set_check("order_status", "status", STATUSES,
                       "status is AKTIV, OPHOERT_UDDANNELSESSTART or OPHOERT_ANDET"),
        v.institution_check("maal_institution", optional=True),
        v.regex_check("yes_no", "mentor_bevilget", "mentor_bevilget is ja or nej"),
        v.regex_check("required", "paalaeg_id", "paalaeg_id is given"),
    ),
    kinds=("education_order",),
)
