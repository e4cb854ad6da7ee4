"""Primary school pupils leaving grundskole, XML checked against ``connectors/xsd/grundskole.xsd``.

FORMATS.md section 7.

The XML reader flattens an ``Elev``: the root's ``skole`` and ``kommune`` arrive as
``/skole`` and ``/kommune`` (the school's municipality), the readiness assessment as
``Uddannelsesparathed@faglig`` etc. Repeated ``Stoettebehov`` elements are one of the
reader's ``lists``: ``Stoettebehov@type`` and ``Stoettebehov`` (the free text, empty for
an element without text) hold one escaped item per element, in order, and
:func:`connectors.readers.split_items` pairs them up again. ``Navn`` is one full name:
the last word is the surname.

The pupils are 13–17 years old (8.–10. klasse), younger than the network's 15–29: the
school reports them before they leave, because the transition to youth education starts
half a year before ``ForventetAfslutning`` and support needs must reach UU before that.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from connectors.readers import XmlReader, split_items
from mappings import Source
from mappings import checks as v
from mappings.common import (
    Column,
    apply,
    code_in,
    cpr,
    date_iso,
    free_text,
    optional,
    required,
    split_name,
    table,
    text,
)
from stafet.core.errors import DataError
from stafet.core.models import Provenance, Pupil

GRADES = ("8", "9", "10")
READINESS = ("faglig", "personlig", "social")
READINESS_VALUES = ("parat", "ikke-parat")
SUPPORT_NEEDS = ("SPS", "Mentor", "Ordblind", "Psykolog", "Andet")
MIN_AGE, MAX_AGE = 13, 17
"""8. klasse starts the year a child turns 14, 10. klasse ends the year it turns 17 (one year held back
is within the range)."""

_grade_code = code_in(GRADES, "grade")


def grade(v: str) -> int:
    """``Klassetrin``: 8, 9 or 10 (rule ``grade``)."""
    return int(_grade_code(v))


COLUMNS = (
    Column("Cpr", "cpr", cpr, checked=True),
    Column("/skole", "school", required(text), checked=True),
    Column("/kommune", "municipality", required(text), checked=True),
    Column("@opdateret", "updated", required(date_iso), checked=True),
    Column("Navn", "first_name"),  # first names and surname: map_row splits it
    Column("Klassetrin", "grade", grade, checked=True),
    Column("ForventetAfslutning", "expected_end", required(date_iso), checked=True),
    Column("Uddannelsesparathed@vurderet", "readiness_assessed", optional(date_iso), checked=True),
    Column("Ansoegning@institution", "application_institution", text, checked=True),
    Column("Ansoegning", "application_education", free_text),
    Column("Kontaktlaerer@navn", "teacher_name", free_text),
    Column("Kontaktlaerer@email", "teacher_email", text),
    # read by map_row itself:
    *(Column(f"Uddannelsesparathed@{area}", "readiness", checked=True) for area in READINESS),
    Column("Stoettebehov@type", "support_needs", checked=True),
    Column("Stoettebehov", "support_needs"),  # the free text of each need, through free_text
)

FIELDS = table(COLUMNS)
READER = XmlReader("grundskole", "urn:stafet:formats:grundskole:1", "Elever", "Elev", "grundskole.xsd",
                   root_fields=("skole", "kommune"), lists=("Stoettebehov",))


def map_row(fields: Mapping[str, str], prov: Provenance) -> Pupil:
    """One ``Elev`` element → Pupil, with ``ready`` derived from the three readiness criteria.

    Raises:
        DataError: a value that does not convert, a readiness assessment that is not all three
            criteria each ``parat``/``ikke-parat`` (rule ``readiness``), or a support need of an
            unknown type or whose type and text do not pair up (rule ``support_need``).
    """
    values = apply(FIELDS, fields, file=prov.file, row=prov.row)

    def bad(column: str, rule: str, why: str) -> DataError:
        return DataError(f"{column} {why}", file=prov.file, row=prov.row, rule=rule, column=column)

    readiness = []
    for area in READINESS:
        word = text(fields.get(f"Uddannelsesparathed@{area}") or "")
        if word and word not in READINESS_VALUES:
            raise bad(f"Uddannelsesparathed@{area}", "readiness", "must be parat or ikke-parat")
        if word:
            readiness.append((area, word))
    if readiness and len(readiness) != len(READINESS):
        raise bad("Uddannelsesparathed", "readiness", "must assess all of faglig, personlig and social")
    if not readiness and values["readiness_assessed"] is not None:
        raise bad("Uddannelsesparathed", "readiness", "has a date but no assessment")
    ready = all(word == "parat" for _, word in readiness) if readiness else None

    types = split_items(fields["Stoettebehov@type"]) if "Stoettebehov@type" in fields else []
    texts = split_items(fields["Stoettebehov"]) if "Stoettebehov" in fields else [""] * len(types)
    if len(types) != len(texts):
        raise bad("Stoettebehov", "support_need", "has types and texts that do not pair up")
    needs = []
    for kind, note in zip(types, texts, strict=True):
        kind = kind.strip()
        if kind not in SUPPORT_NEEDS:
            raise bad("Stoettebehov@type", "support_need", f"is not one of {', '.join(SUPPORT_NEEDS)}")
        needs.append((kind, free_text(note)))

    first, last = split_name(free_text(fields.get("Navn") or ""))
    return Pupil(provenance=prov, first_name=first, last_name=last, readiness=tuple(readiness), ready=ready,
                 support_needs=tuple(needs), **values)


_NEED = "|".join(SUPPORT_NEEDS)


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, the pupil's dates, age on ``opdateret``, the codes."""
    v.add_cpr(df, "Cpr")
    v.add_date(df, "@opdateret", "iso")
    v.add_date(df, "ForventetAfslutning", "iso")
    v.add_date(df, "Uddannelsesparathed@vurderet", "iso")
    v.add_age(df, "@opdateret")
    v.add_match(df, "/skole", r"\s*\d{6}\s*")
    v.add_match(df, "/kommune", r"\s*\d{3}\s*")
    v.add_match(df, "Ansoegning@institution", r"\s*(\d{6})?\s*")
    v.add_match(df, "Stoettebehov@type", rf"(\s*({_NEED})\s*(\|\s*({_NEED})\s*)*)?")
    df["_grade"] = df["Klassetrin"].str.strip()
    areas = [df[f"Uddannelsesparathed@{a}"].str.strip() for a in READINESS]
    assessed = areas[0].isin(READINESS_VALUES) & areas[1].isin(READINESS_VALUES) & areas[2].isin(
        READINESS_VALUES)
    not_assessed = (areas[0] == "") & (areas[1] == "") & (areas[2] == "") & (
        df["Uddannelsesparathed@vurderet"].str.strip() == "")
    df["_readiness_ok"] = assessed | not_assessed


SOURCE = Source(
    name="grundskole",
    description="primary school pupils leaving grundskole (8.–10. klasse), XML (Elever)",
    pattern=r"grundskole_(?P<institution>\d{6})_elever_\d{8}\.xml",
    reader=READER,
    map_row=map_row,
    declared=COLUMNS,
    prepare=prepare,
    checks=(
        *v.cpr_checks("Cpr"),
        v.age_check(MIN_AGE, MAX_AGE, "@opdateret"),
        *v.date_checks("@opdateret"),
        *v.date_checks("ForventetAfslutning", not_future=False),
        *v.date_checks("Uddannelsesparathed@vurderet", required=False),
        v.in_set_check("grade", "_grade", GRADES, "Klassetrin is 8, 9 or 10"),
        v.check("readiness", "ExpectColumnValuesToBeInSet",
                "Uddannelsesparathed assesses faglig, personlig and social, each parat or ikke-parat",
                column="_readiness_ok", value_set=[True]),
        v.regex_check("support_need", "Stoettebehov@type",
                      "each Stoettebehov type is SPS, Mentor, Ordblind, Psykolog or Andet"),
        v.regex_check("institution_format", "/skole", "the school number (skole) has 6 digits"),
        v.regex_check("municipality_format", "/kommune", "kommune is a 3-digit municipality number"),
        v.regex_check("institution_format", "Ansoegning@institution",
                      "the application's institution is empty or has 6 digits"),
    ),
    kinds=("pupil",),
)
