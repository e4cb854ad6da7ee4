"""School administration, vocational and upper-secondary: EASY-A style CSV, cp1252 (FORMATS.md section 1).

``Haendelse`` picks the record kind (enrolment, dropout, concern flag, completion); a
dropout also carries its reason code from the network's code list and the free-text
reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from connectors.readers import CP1252, CsvReader
from mappings import Source
from mappings import checks as v
from mappings.common import (
    REASON_CODES,
    Column,
    apply,
    apply_columns,
    code_in,
    cpr,
    date_dmy,
    decimal_comma,
    free_text,
    header,
    optional,
    percentage,
    required,
    table,
    text,
)
from stafet.core.errors import DataError
from stafet.core.models import Completion, ConcernFlag, Dropout, Enrolment, Provenance, SchoolEvent

KINDS: Mapping[str, type[SchoolEvent]] = {
    "OPTAG": Enrolment,
    "AFBRUD": Dropout,
    "FRAFALDSTRUET": ConcernFlag,
    "GENNEMFOERT": Completion,
}

COLUMNS = (
    Column("Instnr", "institution", required(text), checked=True),
    Column("Afdeling", "department", text),
    Column("CprNr", "cpr", cpr, checked=True),
    Column("Fornavn", "first_name", free_text),
    Column("Efternavn", "last_name", free_text),
    Column("Bopaelskommune", "home_municipality", required(text), checked=True),
    Column("Haendelse", "kind", checked=True),  # picks the record kind: map_row
    Column("Haendelsesdato", "event_date", required(date_dmy), checked=True),
    Column("Uddannelse", "programme_code", required(text), checked=True),
    Column("Udd_betegnelse", "programme_name", free_text),
    Column("Startdato", "start_date", optional(date_dmy), checked=True),
    Column("Afbrudsaarsag", "reason_code", code_in(REASON_CODES, "dropout_reason"), checked=True,
           group="dropout"),
    Column("Afbrudsaarsag_tekst", "reason_text", free_text, group="dropout"),
    Column("Fravaersprocent", "absence_pct", optional(percentage(decimal_comma)), checked=True),
    Column("Note", "note", free_text),
    Column("Kontakt_navn", "contact_name", free_text),
    Column("Kontakt_email", "contact_email", text),
)

FIELDS = table(COLUMNS)
DROPOUT_FIELDS = table(COLUMNS, "dropout")
READER = CsvReader("easy-a", CP1252, header(COLUMNS))


def map_row(fields: Mapping[str, str], prov: Provenance) -> SchoolEvent:
    """One EASY-A row → Enrolment, Dropout, ConcernFlag or Completion.

    Raises:
        DataError: the rule and column of the first value that does not convert.
    """
    kind = KINDS.get((fields.get("Haendelse") or "").strip().upper())
    if kind is None:
        raise DataError("Haendelse is not OPTAG, AFBRUD, FRAFALDSTRUET or GENNEMFOERT",
                        file=prov.file, row=prov.row, rule="event_type", column="Haendelse")
    values = apply(FIELDS, fields, file=prov.file, row=prov.row)
    if kind is Dropout:
        values.update(apply(DROPOUT_FIELDS, fields, file=prov.file, row=prov.row))
    return kind(provenance=prov, **values)


def map_columns(columns: Mapping[str, Sequence[str]], n: int, file: str,
                numbers: Sequence[int]) -> Iterator[tuple[type[SchoolEvent], dict[str, Any]] | DataError]:
    """:func:`map_row` for a chunk's columns at once (each distinct value converted once).

    One entry per row, made as it is iterated (a chunk's value dicts are never all alive
    at once): the record's class and its field values (without provenance), or the very
    ``DataError`` :func:`map_row` raises for that row.
    """
    events = columns.get("Haendelse") or [""] * n
    kind_of = {e: KINDS.get((e or "").strip().upper()) for e in set(events)}
    base, base_failed = apply_columns(FIELDS, columns, n)
    names = tuple(base)
    dropout: tuple[dict[str, list[Any]], dict[int, Any]] | None = None
    for i, (event, vals) in enumerate(zip(events, zip(*base.values(), strict=True), strict=True)):
        kind = kind_of[event]
        if kind is None:
            yield DataError("Haendelse is not OPTAG, AFBRUD, FRAFALDSTRUET or GENNEMFOERT",
                            file=file, row=numbers[i], rule="event_type", column="Haendelse")
            continue
        hit = base_failed.get(i)
        if hit is None and kind is Dropout:
            if dropout is None:
                dropout = apply_columns(DROPOUT_FIELDS, columns, n)
            hit = dropout[1].get(i)
        if hit is not None:
            column, e = hit
            yield DataError(f"{column} {e}", file=file, row=numbers[i], rule=e.rule, column=column)
            continue
        values = dict(zip(names, vals, strict=True))
        if kind is Dropout:
            assert dropout is not None
            for target, col in dropout[0].items():
                values[target] = col[i]
        yield kind, values


def prepare(df: Any, today: date) -> None:
    """Typed columns for the suite: birth date, event and start dates, age, institution."""
    v.add_cpr(df, "CprNr")
    v.add_date(df, "Haendelsesdato", "dmy")
    v.add_date(df, "Startdato", "dmy")
    v.add_age(df, "Haendelsesdato")
    v.add_institution(df, "Instnr")
    v.add_match(df, "Bopaelskommune", r"\s*\d{3}\s*")
    v.add_match(df, "Fravaersprocent", r"\s*(\d{1,3}(,\d+)?)?\s*")


SOURCE = Source(
    name="easy-a",
    description="school administration events, EASY-A style CSV (cp1252)",
    pattern=r"(?P<institution>\d{6})_haendelser_\d{10}\.csv",
    reader=READER,
    map_row=map_row,
    declared=COLUMNS,
    prepare=prepare,
    checks=(
        *v.cpr_checks("CprNr"),
        v.age_check(15, 29, "Haendelsesdato"),
        v.in_set_check("event_type", "Haendelse", tuple(KINDS),
                       "Haendelse is OPTAG, AFBRUD, FRAFALDSTRUET or GENNEMFOERT"),
        *v.date_checks("Haendelsesdato"),
        *v.date_checks("Startdato", required=False, not_future=False),
        v.start_check("Startdato", "Haendelsesdato"),
        v.in_set_check("dropout_reason", "Afbrudsaarsag", tuple(REASON_CODES),
                       "a dropout (AFBRUD) has a reason code from the network's list",
                       row_condition='Haendelse=="AFBRUD"', condition_parser="pandas"),
        v.institution_check("Instnr"),
        v.regex_check("municipality_format", "Bopaelskommune",
                      "Bopaelskommune is a 3-digit municipality number"),
        v.regex_check("decimal_format", "Fravaersprocent",
                      "Fravaersprocent is empty or a number with a decimal comma"),
    ),
    kinds=("enrolment", "dropout", "concern_flag", "completion"),
    map_columns=map_columns,
)
