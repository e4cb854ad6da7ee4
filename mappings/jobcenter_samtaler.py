"""Job centre interviews (samtaler), Momentum style CSV, UTF-8 with BOM (FORMATS.md section 9).

A row is one state of an interview: the same ``samtale_id`` comes again when a planned
interview was held or the youth did not come (natural key: id and status). A planned
interview may lie ahead; a held one or a no-show may not. The youths are 18–29, as the
job centre's other export (uddannelseshjælp is for those under 30).
"""

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
    one_kind,
    required,
    table,
    text,
)
from stafet.core.models import Interview

TYPES = ("FOERSTE", "OPFOELGNING")
STATUSES = ("AFHOLDT", "PLANLAGT", "UDEBLEVET")

COLUMNS = (
    Column("cpr", "cpr", cpr, checked=True),
    Column("samtale_id", "interview_id", required(text), checked=True),
    Column("samtale_dato", "interview_date", required(date_iso), checked=True),
    Column("type", "interview_type", code_in(TYPES, "interview_type"), checked=True),
    Column("status", "status", code_in(STATUSES, "interview_status"), checked=True),
    Column("sagsbehandler_navn", "caseworker_name", free_text),
    Column("sagsbehandler_email", "caseworker_email", text),
)

FIELDS = table(COLUMNS)
READER = CsvReader("jobcenter-samtaler", UTF8_BOM, header(COLUMNS))


map_row = one_kind(Interview, FIELDS)


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, the interview's date and the age on it, the codes."""
    v.add_cpr(df, "cpr")
    v.add_date(df, "samtale_dato", "iso")
    v.add_age(df, "samtale_dato")
    v.add_match(df, "samtale_id", r"\s*\S.*")
    df["_type"] = df["type"].str.strip()
    df["_status"] = df["status"].str.strip()


SOURCE = Source(
    name="jobcenter-samtaler",
    description="job centre interviews (samtaler), CSV UTF-8 with BOM",
    pattern=r"jobcenter_(?P<municipality>\d{3})_samtaler_\d{8}\.csv",
    reader=READER,
    map_row=map_row,
    declared=COLUMNS,
    prepare=prepare,
    checks=(
        *v.cpr_checks("cpr"),
        v.age_check(18, 29, "samtale_dato"),
        *v.date_checks("samtale_dato", not_future=False),
        v.not_future_check("samtale_dato", row_condition='_status!="PLANLAGT"'),
        v.in_set_check("interview_type", "_type", TYPES, "type is FOERSTE or OPFOELGNING"),
        v.in_set_check("interview_status", "_status", STATUSES, "status is AFHOLDT, PLANLAGT or UDEBLEVET"),
        v.regex_check("required", "samtale_id", "samtale_id is given"),
    ),
    kinds=("interview",),
)
