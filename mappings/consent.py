"""Consents, samtykkeerklæringer CSV (FORMATS.md section 6) → Consent.

Only the shape is checked here (dates, the signer kind, the record kinds it
covers, ``gyldig_til`` present: consent is time-limited). Whether a consent is
*valid* — signer's age at signing, period, withdrawal — is decided when it is used
(routing), so an invalid consent is stored and shown there with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping

from mappings.common import (
    Table,
    apply,
    code_in,
    cpr,
    date_iso,
    free_text,
    optional,
    pipe_list,
    required,
    text,
)
from stafet.core.errors import DataError
from stafet.core.models import Consent, Provenance

SIGNERS = ("ung", "foraelder", "vaerge")
SCOPES = frozenset({"uddannelsesplan", "stoettebehov", "paalaeg", "overgang", "fravaer",
                    "afbrudsaarsag", "historik"})

FIELDS: Table = {
    "cpr": ("cpr", cpr),
    "ref": ("samtykke_ref", required(text)),
    "signed_by": ("underskrevet_af", code_in(SIGNERS, "signer")),
    "signer_name": ("underskriver_navn", free_text),
    "signed_date": ("underskrevet_dato", required(date_iso)),
    "valid_from": ("gyldig_fra", required(date_iso)),
    "valid_to": ("gyldig_til", required(date_iso)),
    "recipients": ("modtagere", pipe_list),
    "scopes": ("oplysninger", pipe_list),
    "situation": ("situation", free_text),
    "withdrawn_date": ("tilbagekaldt_dato", optional(date_iso)),
}


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
