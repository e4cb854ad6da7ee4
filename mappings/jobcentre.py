"""Job-centre education orders, Momentum style CSV (FORMATS.md section 3) → EducationOrder."""

from __future__ import annotations

from collections.abc import Mapping

from mappings.common import Table, apply, code_in, cpr, date_iso, free_text, ja_nej, required, text
from stafet.core.models import EducationOrder, Provenance

STATUSES = ("AKTIV", "OPHOERT_UDDANNELSESSTART", "OPHOERT_ANDET")

FIELDS: Table = {
    "cpr": ("cpr", cpr),
    "order_id": ("paalaeg_id", required(text)),
    "target_education": ("maal_uddannelse", required(free_text)),
    "target_institution": ("maal_institution", text),
    "deadline": ("frist", required(date_iso)),
    "mentor_granted": ("mentor_bevilget", ja_nej),
    "mentor_name": ("mentor_navn", free_text),
    "caseworker_name": ("sagsbehandler_navn", free_text),
    "caseworker_phone": ("sagsbehandler_tlf", text),
    "caseworker_email": ("sagsbehandler_email", text),
    "status": ("status", code_in(STATUSES, "order_status")),
    "status_date": ("status_dato", required(date_iso)),
    "consent_ref": ("samtykke_ref", text),
}


def map_row(fields: Mapping[str, str], prov: Provenance) -> EducationOrder:
    """One job-centre row → EducationOrder.

    Raises:
        DataError: the rule and column of the first value that does not convert.
    """
    return EducationOrder(provenance=prov, **apply(FIELDS, fields, file=prov.file, row=prov.row))
