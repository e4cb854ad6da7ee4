"""UU education plans, UV-Vej style XML (FORMATS.md section 4) → EducationPlan.

The XML reader flattens a ``Plan``: ``Stoettebehov/SPS`` etc. are present (``""``)
when the youth has that need, ``Andet`` carries text; repeated ``Kontakt``
elements arrive as ``|``-joined ``Kontakt@dato`` and ``Kontakt@form``.
"""

from __future__ import annotations

from collections.abc import Mapping

from mappings.common import (
    ConversionError,
    Table,
    apply,
    cpr,
    date_iso,
    free_text,
    optional,
    required,
    text,
)
from stafet.core.errors import DataError
from stafet.core.models import EducationPlan, Provenance

SUPPORT_NEEDS = ("SPS", "Mentor", "Ordblind", "Psykolog", "Andet")
READINESS = ("faglig", "personlig", "social")
READINESS_VALUES = ("parat", "ikke-parat")
CONTACT_FORMS = ("samtale", "telefon", "sms", "brev", "hjemmebesoeg")

FIELDS: Table = {
    "cpr": ("Cpr", cpr),
    "plan_id": ("@id", required(text)),
    "updated": ("@opdateret", required(date_iso)),
    "goal_code": ("MaalUddannelse@kode", required(text)),
    "goal_name": ("MaalUddannelse", free_text),
    "goal_institution": ("MaalUddannelse@institution", text),
    "support_other": ("Stoettebehov/Andet", free_text),
    "counsellor_name": ("Vejleder@navn", free_text),
    "counsellor_email": ("Vejleder@email", text),
    "counsellor_phone": ("Vejleder@tlf", text),
    "agreement_date": ("Aftale@dato", optional(date_iso)),
}


def map_row(fields: Mapping[str, str], prov: Provenance) -> EducationPlan:
    """One ``Plan`` element → EducationPlan.

    Raises:
        DataError: a value that does not convert, a readiness word other than
            ``parat``/``ikke-parat`` (rule ``readiness``) or an unknown contact form
            (rule ``contact_form``).
    """
    values = apply(FIELDS, fields, file=prov.file, row=prov.row)

    def bad(column: str, rule: str, why: str) -> DataError:
        return DataError(f"{column} {why}", file=prov.file, row=prov.row, rule=rule, column=column)

    readiness = []
    for area in READINESS:
        v = text(fields.get(f"Parathed@{area}") or "")
        if not v:
            continue
        if v not in READINESS_VALUES:
            raise bad(f"Parathed@{area}", "readiness", "must be parat or ikke-parat")
        readiness.append((area, v))
    needs = tuple(n for n in SUPPORT_NEEDS if f"Stoettebehov/{n}" in fields)
    dates = [d for d in (fields.get("Kontakt@dato") or "").split("|") if d.strip()]
    forms = [f.strip() for f in (fields.get("Kontakt@form") or "").split("|") if f.strip()]
    if len(dates) != len(forms):
        raise bad("Kontakt", "contact_form", "has dates and forms that do not pair up")
    contacts = []
    for d, form in zip(dates, forms, strict=True):
        try:
            day = date_iso(d)
        except ConversionError as e:
            raise bad("Kontakt@dato", e.rule, str(e)) from None
        if form not in CONTACT_FORMS:
            raise bad("Kontakt@form", "contact_form", f"{form!r} is not one of {', '.join(CONTACT_FORMS)}")
        contacts.append((day.isoformat(), form))
    return EducationPlan(provenance=prov, readiness=tuple(readiness), support_needs=needs,
                         contacts=tuple(contacts), **values)
