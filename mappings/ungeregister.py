"""The municipality's youth register extract (folkeregister-udtræk), CSV, UTF-8 (FORMATS.md section 8).

One row per youth aged 15–29 registered in the municipality on the extract date, plus those
who moved out since the previous extract (``fraflyttet``, and ``fraflyttet_til`` when the
new municipality is known). ``forældremyndighed`` is ``J`` when a custody holder is
registered; it is not checked against the youth's age (the register may lag a birthday).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from connectors.readers import UTF8, CsvReader
from mappings import Source
from mappings import checks as v
from mappings.common import (
    Column,
    apply,
    cpr,
    date_iso,
    free_text,
    header,
    jn,
    optional,
    required,
    table,
    text,
)
from stafet.core.errors import DataError
from stafet.core.models import Provenance, Registration

COLUMNS = (
    Column("cpr", "cpr", cpr, checked=True),
    Column("fornavn", "first_name", free_text),
    Column("efternavn", "last_name", free_text),
    Column("kommune", "municipality", required(text), checked=True),
    Column("tilflyttet", "moved_in", required(date_iso), checked=True),
    Column("fraflyttet", "moved_out", optional(date_iso), checked=True),
    Column("fraflyttet_til", "moved_to", text, checked=True),
    Column("forældremyndighed", "custody_holder", jn, checked=True),
)

FIELDS = table(COLUMNS)
READER = CsvReader("ungeregister", UTF8, header(COLUMNS))


def map_row(fields: Mapping[str, str], prov: Provenance) -> Registration:
    """One register row → Registration.

    Raises:
        DataError: the rule and column of the first value that does not convert, or a move-out
            before the move-in (rule ``moved_out_after_in``) or a municipality moved to without
            a move-out (rule ``moved_to``).
    """
    rec = Registration(provenance=prov, **apply(FIELDS, fields, file=prov.file, row=prov.row))
    if rec.moved_out is not None and rec.moved_out < rec.moved_in:
        raise DataError("fraflyttet is before tilflyttet", file=prov.file, row=prov.row,
                        rule="moved_out_after_in", column="fraflyttet")
    if rec.moved_to and rec.moved_out is None:
        raise DataError("fraflyttet_til is given without fraflyttet", file=prov.file, row=prov.row,
                        rule="moved_to", column="fraflyttet_til")
    return rec


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, age today, the dates, municipality numbers, J/N."""
    v.add_cpr(df, "cpr")
    v.add_date(df, "tilflyttet", "iso")
    v.add_date(df, "fraflyttet", "iso")
    v.add_age(df, today)
    v.add_match(df, "kommune", r"\s*\d{3}\s*")
    v.add_match(df, "fraflyttet_til", r"\s*(\d{3})?\s*")
    v.add_match(df, "forældremyndighed", r"(?i)\s*[jn]\s*")
    df["_moved_to_ok"] = (df["fraflyttet_til"].str.strip() == "") | (df["fraflyttet"].str.strip() != "")


SOURCE = Source(
    name="ungeregister",
    description="the municipality's youth register extract (folkeregister-udtræk), CSV UTF-8",
    pattern=r"cpr_(?P<municipality>\d{3})_unge_\d{8}\.csv",
    reader=READER,
    map_row=map_row,
    declared=COLUMNS,
    prepare=prepare,
    checks=(
        *v.cpr_checks("cpr"),
        v.age_check(15, 29, "the day the file is read"),
        *v.date_checks("tilflyttet"),
        *v.date_checks("fraflyttet", required=False),
        v.order_check("moved_out_after_in", "tilflyttet", "fraflyttet",
                      "fraflyttet is on or after tilflyttet"),
        v.regex_check("municipality_format", "kommune", "kommune is a 3-digit municipality number"),
        v.regex_check("municipality_format", "fraflyttet_til",
                      "fraflyttet_til is empty or a 3-digit municipality number"),
        v.check("moved_to", "ExpectColumnValuesToBeInSet", "fraflyttet_til is only given with fraflyttet",
                column="_moved_to_ok", value_set=[True]),
        v.regex_check("yes_no", "forældremyndighed", "forældremyndighed is J or N"),
    ),
    kinds=("registration",),
)
