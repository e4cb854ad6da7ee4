"""Consents (samtykkeerklæringer), CSV UTF-8.

No age range here: whether the signer may sign for the youth's age is part of
the consent's validity, decided when the consent is used (and shown there).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from connectors.readers import CONSENT_CSV
from mappings import consent
from stafet.ingest import validation as v
from stafet.sources import Source


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date and the consent's dates."""
    v.add_cpr(df, "cpr")
    for column in ("underskrevet_dato", "gyldig_fra", "gyldig_til", "tilbagekaldt_dato"):
        v.add_date(df, column, "iso")
    v.add_match(df, "samtykke_ref", r"\s*\S.*")


SOURCE = Source(
    name="samtykker",
    description="consents (samtykkeerklæringer), CSV UTF-8",
    pattern=r"samtykker_\d{3}_\d{8}\.csv",
    reader=CONSENT_CSV,
    map_row=consent.map_row,
    cpr_column="cpr",
    columns=("cpr", "samtykke_ref", "underskrevet_af", "underskrevet_dato", "gyldig_fra", "gyldig_til",
             "tilbagekaldt_dato"),
    prepare=prepare,
    checks=(
        *v.cpr_checks("cpr"),
        *v.date_checks("underskrevet_dato"),
        *v.date_checks("gyldig_fra", not_future=False),
        *v.date_checks("gyldig_til", not_future=False),
        *v.date_checks("tilbagekaldt_dato", required=False),
        v.start_check("gyldig_fra", "gyldig_til"),
        v.in_set_check("signer", "underskrevet_af", consent.SIGNERS,
                       "underskrevet_af is ung, foraelder or vaerge"),
        v.regex_check("required", "samtykke_ref", "samtykke_ref is given"),
    ),
    kinds=("consent",),
)
