"""Consents (samtykkeerklæringer), CSV UTF-8 (FORMATS.md section 6).

Only the shape is checked here (dates, the signer kind, the record kinds it
covers, ``gyldig_til`` present: consent is time-limited). Whether a consent is
*valid* — signer's age at signing, period, withdrawal — is decided when it is used
(routing), so an invalid consent is stored and shown there with the reason. No age
range in the suite for the same reason.
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
    code_in,
    cpr,
    date_iso,
    free_text,
    header,
    optional,
    pipe_list,
    required,
    table,
    text,
)
from stafet.core.errors import DataError
from stafet.core.models import Consent, Provenance

SIGNERS = ("ung", "foraelder", "vaerge")
SCOPES = frozenset({"uddannelsesplan", "stoettebehov", "paalaeg", "overgang", "fravaer",
                    "afbrudsaarsag", "historik"})

COLUMNS = (
    Column("samtykke_ref", "ref", required(text), checked=True),
    Column("cpr", "cpr", cpr, checked=True),
    Column("underskrevet_af", "signed_by", code_in(SIGNERS, "signer"), checked=True),
    Column("underskriver_navn", "signer_name", free_text),
    Column("underskrevet_dato", "signed_date", required(date_iso), checked=True),
    Column("gyldig_fra", "valid_from", required(date_iso), checked=True),
    Column("gyldig_til", "valid_to", required(date_iso), checked=True),
    Column("modtagere", "recipients", pipe_list),
    Column("oplysninger", "scopes", pipe_list),
    Column("situation", "situation", free_text),
    Column("tilbagekaldt_dato", "withdrawn_date", optional(date_iso), checked=True),
)

FIELDS = table(COLUMNS)
READER = CsvReader("samtykker", UTF8, header(COLUMNS))


def map_row(fields: Mapping[str, str], prov: Provenance) -> Consent:
    """One consent row → Consent.

    Raises:
        DataError: a value that does not convert, an unknown record kind in
            ``oplysninger`` (rule ``consent_scope``), no recipients, or a period
            that ends before it starts (rule ``consent_period``).
    """
    values = apply(FIELDS, fields, file=prov.file, row=prov.row)
    unknown = [s for s in values["scopes"] if s not in SCOPES]
    if unknown or not values["scopes"]:
        raise DataError(f"oplysninger holds unknown record kinds: {', '.join(unknown) or '(none given)'}",
                        file=prov.file, row=prov.row, rule="consent_scope", column="oplysninger")
    if not values["recipients"]:
        raise DataError("modtagere is empty", file=prov.file, row=prov.row, rule="required",
                        column="modtagere")
    if values["valid_to"] < values["valid_from"]:
        raise DataError("gyldig_til is before gyldig_fra", file=prov.file, row=prov.row,
                        rule="consent_period", column="gyldig_til")
    return Consent(provenance=prov, **values)


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date and the consent's dates."""
    v.add_cpr(df, "cpr")
    for column in ("underskrevet_dato", "gyldig_fra", "gyldig_til", "tilbagekaldt_dato"):
        v.add_date(df, column, "iso")
    v.add_match(df, "samtykke_ref", r"\s*\S.*")


SOURCE = Source(
    name="samtykker",
    description="consents (samtykkeerklæringer), CSV UTF-8",
    pattern=r"samtykker_(?P<municipality>\d{3})_\d{8}\.csv",
    reader=READER,
    map_row=map_row,
    declared=COLUMNS,
    prepare=prepare,
    checks=(
        *v.cpr_checks("cpr"),
        *v.date_checks("underskrevet_dato"),
        *v.date_checks("gyldig_fra", not_future=False),
        *v.date_checks("gyldig_til", not_future=False),
        *v.date_checks("tilbagekaldt_dato", required=False),
        v.start_check("gyldig_fra", "gyldig_til"),
        v.in_set_check("signer", "underskrevet_af", SIGNERS,
                       "underskrevet_af is ung, foraelder or vaerge"),
        v.regex_check("required", "samtykke_ref", "samtykke_ref is given"),
    ),
    kinds=("consent",),
)
