"""UU education plans, UV-Vej style XML validated against ``connectors/xsd/uu.xsd`` (FORMATS.md section 4).

The XML reader flattens a ``Plan``: ``Stoettebehov/SPS`` etc. are present (``""``)
when the youth has that need, ``Andet`` carries text; repeated ``Kontakt``
elements arrive as ``|``-joined ``Kontakt@dato`` and ``Kontakt@form``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from connectors.readers import XmlReader
from mappings import Source
from mappings import checks as v
from mappings.common import (
    Column,
    ConversionError,
    apply,
    cpr,
    date_iso,
    free_text,
    optional,
    required,
    table,
    text,
)
from stafet.core.errors import DataError
from stafet.core.models import EducationPlan, Provenance

SUPPORT_NEEDS = ("SPS", "Mentor", "Ordblind", "Psykolog", "Andet")
READINESS = ("faglig", "personlig", "social")
READINESS_VALUES = ("parat", "ikke-parat")
CONTACT_FORMS = ("samtale", "telefon", "sms", "brev", "hjemmebesoeg")

COLUMNS = (
    Column("Cpr", "cpr", cpr, checked=True),
    Column("@id", "plan_id", required(text), checked=True),
    Column("@opdateret", "updated", required(date_iso), checked=True),
    Column("MaalUddannelse@kode", "goal_code", required(text)),
    Column("MaalUddannelse", "goal_name", free_text),
    Column("MaalUddannelse@institution", "goal_institution", text, checked=True),
    Column("Stoettebehov/Andet", "support_other", free_text),  # also the need "Andet": map_row
    Column("Vejleder@navn", "counsellor_name", free_text),
    Column("Vejleder@email", "counsellor_email", text),
    Column("Vejleder@tlf", "counsellor_phone", text),
    Column("Aftale@dato", "agreement_date", optional(date_iso), checked=True),
    # read by map_row itself:
    *(Column(f"Parathed@{area}", "readiness") for area in READINESS),
    *(Column(f"Stoettebehov/{need}", "support_needs") for need in SUPPORT_NEEDS if need != "Andet"),
    Column("Kontakt@dato", "contacts"),
    Column("Kontakt@form", "contacts"),
)

FIELDS = table(COLUMNS)
READER = XmlReader("uu-planer", "urn:stafet:formats:uu:1", "Uddannelsesplaner", "Plan", "uu.xsd")


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


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, the plan's date, age on it, goal institution."""
    v.add_cpr(df, "Cpr")
    v.add_date(df, "@opdateret", "iso")
    v.add_date(df, "Aftale@dato", "iso")
    v.add_age(df, "@opdateret")
    v.add_institution(df, "MaalUddannelse@institution", optional=True)
    v.add_match(df, "@id", r"\s*\S.*")


SOURCE = Source(
    name="uu-planer",
    description="UU education plans, UV-Vej style XML (Uddannelsesplaner)",
    pattern=r"uu_(?P<municipality>\d{3})_planer_\d{8}\.xml",
    reader=READER,
    map_row=map_row,
    declared=COLUMNS,
    prepare=prepare,
    checks=(
        *v.cpr_checks("Cpr"),
        v.age_check(15, 29, "@opdateret"),
        *v.date_checks("@opdateret"),
        *v.date_checks("Aftale@dato", required=False),
        v.institution_check("MaalUddannelse@institution", optional=True),
        v.regex_check("required", "@id", "the plan has an id"),
    ),
    kinds=("education_plan",),
)
