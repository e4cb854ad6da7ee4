"""Family department transition cases, DUBU style CSV, ISO-8859-1 (FORMATS.md section 5).

An empty ``Overgangsmoede_dato`` means the meeting is missing (``None``), which the
duty clock reads as such; it is not an error here.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.readers import LATIN1, CsvReader
from mappings import Source
from mappings import checks as v
from mappings.common import (
    Column,
    cpr,
    date_dmy,
    free_text,
    header,
    jn,
    lower_code_in,
    one_kind,
    optional,
    required,
    table,
    text,
)
from stafet.core.models import TransitionCase

RECEIVERS = ("socialafdeling", "jobcenter", "ingen")

COLUMNS = (
    Column("CPR", "cpr", cpr, checked=True),
    Column("Sagsnr", "case_no", required(text), checked=True),
    Column("Overgangsmoede_dato", "meeting_date", optional(date_dmy), checked=True),
    Column("SEL76_efterværn", "aftercare_sel76", jn, checked=True),
    Column("SEL85_stoette", "support_sel85", jn, checked=True),
    Column("Modtager", "receiver", lower_code_in(RECEIVERS, "receiver"), checked=True),
    Column("Raadgiver_navn", "adviser_name", free_text),
    Column("Raadgiver_email", "adviser_email", text),
    Column("Samtykke_ref", "consent_ref", text),
)

FIELDS = table(COLUMNS)
READER = CsvReader("familie", LATIN1, header(COLUMNS))


map_row = one_kind(TransitionCase, FIELDS)


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
    pattern=r"familie_(?P<municipality>\d{3})_overgange_\d{8}\.csv",
    reader=READER,
    map_row=map_row,
    declared=COLUMNS,
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
