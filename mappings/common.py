"""Converters and the table runner every mapping is built from.

Why small Python tables and not YAML: a mapping is a column name, a canonical
field and a converter, and the converters (dates, decimal comma, code lists,
``J``/``N``) are code anyway. In Python the table is checked by mypy and ruff,
the converter is a function a test can call, and there is no second language to
load, validate and keep in step. Each source's table fits on one screen.

Everything here is pure: strings in, values out, no I/O. A value that does not
convert raises :class:`~stafet.core.errors.DataError` naming the column and a stable
rule (``date_format``, ``decimal_format``, ``code_list``, ``yes_no``, ``required``,
``cpr_format``, ``cpr_birth_date``, ``encoding``: text garbled by a wrong encoding); the
row then goes to quarantine.

Free text (notes, reasons, names) goes through :func:`free_text`, which redacts
anything CPR-shaped: a CPR typed into a note is never stored in clear.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from stafet.core.cpr import Cpr, parse_cpr
from stafet.core.errors import DataError
from stafet.core.redaction import redact

if TYPE_CHECKING:  # pragma: no cover
    from stafet.core.models import Provenance, Record

    R = TypeVar("R", bound=Record)

# The network's dropout reason codes (FORMATS.md, section 1).
REASON_CODES: Mapping[str, str] = {
    "01": "personlige forhold",
    "02": "helbred",
    "03": "fravær",
    "04": "faglige vanskeligheder",
    "05": "omvalg til anden uddannelse",
    "06": "flytning",
    "07": "udmeldt af skolen",
    "08": "påbegyndt arbejde",
    "99": "andet",
}


class ConversionError(ValueError):
    """A value that does not convert; ``rule`` is the stable rule name."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


Converter = Callable[[str], Any]


def text(v: str) -> str:
    """Trim, and make every line break inside a field a plain newline.

    Text that is UTF-8 read in a single-byte encoding (``SÃ¸ren``: :func:`check_not_mojibake`)
    is refused (rule ``encoding``): the row goes to quarantine and never replaces what the
    store holds.
    """
    v = v.strip()
    if not v.isascii():
        check_not_mojibake(v)
    return v.replace("\r\n", "\n").replace("\r", "\n") if "\r" in v else v


# A character that is a UTF-8 lead byte read as cp1252/ISO-8859-1 (Â-ô), followed by one
# that is a continuation byte read so (0x80-0xbf: the C1 range, cp1252's punctuation and
# € Š Œ Ž š œ ž Ÿ ƒ ˆ ˜, and NBSP to ¿). A real Danish name or note almost never has such
# a pair; every æ ø å Æ Ø Å é ü written in UTF-8 and read as cp1252 becomes one.
_CONTINUATION = "\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc" \
                "\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
_MOJIBAKE = re.compile(f"[\u00c2-\u00f4][{_CONTINUATION}]{{1,3}}")


def _is_latin_origin(ch: str) -> bool:
    """Whether ``ch`` is what European text garbled this way started as.

    Latin-1 and Latin Extended, Greek and Cyrillic, general punctuation, currency and
    letterlike symbols.
    """
    c = ord(ch)
    return 0xa0 <= c <= 0x2ff or 0x370 <= c <= 0x52f or 0x2000 <= c <= 0x214f


def check_not_mojibake(v: str) -> None:
    """Raise ``ConversionError`` (rule ``encoding``) if ``v`` holds UTF-8 read as cp1252 or ISO-8859-1.

    A candidate pair (:data:`_MOJIBAKE`) counts only if its characters, encoded back as
    cp1252 (or ISO-8859-1), are one well-formed UTF-8 character of a European script or
    punctuation: ``Ã¸`` is (ø); ``Ø–`` is not (it would be an Arabic sign). The reader
    already refuses a whole file whose bytes are UTF-8 where the source declares a
    single-byte encoding; this catches text that was garbled before it was exported (a
    UTF-8 file holding ``SÃ¸ren``). The value is never echoed.
    """
    for m in _MOJIBAKE.finditer(v):
        chars = m.group()
        for n in range(len(chars), 1, -1):
            for enc in ("cp1252", "latin-1"):
                try:
                    decoded = chars[:n].encode(enc).decode("utf-8")
                except (UnicodeEncodeError, UnicodeDecodeError):
                    continue
                if len(decoded) == 1 and _is_latin_origin(decoded):
                    raise ConversionError("encoding", "looks like UTF-8 text read as cp1252 or ISO-8859-1 "
                                                      "(garbled letters): the export's encoding is wrong")


# What every CPR-shaped match of stafet.core.redaction's pattern starts with (DDMMYY),
# without its look-behind: a necessary condition that the regex engine scans for by
# its first character class. Free text is converted for every row, and most of it
# (names, short notes) holds no six digits in a row: the pre-check costs ~0.1-0.7 µs
# a field where running the redaction itself costs ~0.4-1.6 µs (11 µs on 300 chars).
_MAY_HOLD_CPR = re.compile(r"[0-3]\d[01]\d\d\d")


def free_text(v: str) -> str:
    """:func:`text` for a field people type into, with anything CPR-shaped redacted.

    For notes, reason texts, ``Andet``, a consent's situation and names (the youth's,
    contacts', caseworkers'): never for the youth's own CPR field (:func:`cpr`), nor
    for identifiers and codes, which must stay as the source wrote them. A CPR typed
    into free text is data the store must not hold in clear (README: no clear CPR in
    the store) and that is forwarded in packages.

    ``redact`` (``******-****``) and not ``mask`` (``DDMMYY-xxxx``): such a number is
    almost never the youth's own (that has its field, pseudonymised and encrypted) but
    a sibling's or a parent's. ``mask`` would still store and forward that person's
    birth date, which no recipient needs, and ``DDMMYY-xxxx`` reads in reports as the
    youth's own masked CPR. The text around it stays, so the note still makes sense.
    """
    v = text(v)
    return redact(v) if len(v) >= 10 and _MAY_HOLD_CPR.search(v) else v


def required(conv: Converter) -> Converter:
    """Wrap ``conv`` so that an empty value is an error (rule ``required``)."""

    def _required(v: str) -> Any:
        if not v.strip():
            raise ConversionError("required", "is empty")
        return conv(v)

    return _required


def optional(conv: Converter) -> Converter:
    """Wrap ``conv`` so that an empty value becomes ``None``."""

    def _optional(v: str) -> Any:
        return conv(v) if v.strip() else None

    return _optional


@functools.lru_cache(maxsize=8192)
def date_dmy(v: str) -> date:
    """``dd-mm-yyyy`` (the Danish school-admin format)."""
    s = v.strip()
    if len(s) != 10 or s[2] != "-" or s[5] != "-" or not (s[:2] + s[3:5] + s[6:]).isdigit():
        raise ConversionError("date_format", "is not a dd-mm-yyyy date")
    try:
        return date(int(s[6:]), int(s[3:5]), int(s[:2]))
    except ValueError:
        raise ConversionError("date_format", "is not a real date") from None


@functools.lru_cache(maxsize=8192)
def date_iso(v: str) -> date:
    """``yyyy-mm-dd``."""
    s = v.strip()
    if len(s) != 10 or s[4] != "-" or s[7] != "-" or not (s[:4] + s[5:7] + s[8:]).isdigit():
        raise ConversionError("date_format", "is not a yyyy-mm-dd date")
    try:
        return date(int(s[:4]), int(s[5:7]), int(s[8:]))
    except ValueError:
        raise ConversionError("date_format", "is not a real date") from None


def _decimal(v: str, sep: str) -> float:
    s = v.strip()
    other = "." if sep == "," else ","
    if other in s:
        raise ConversionError("decimal_format", f"decimal separator must be {sep!r}")
    try:
        return float(s.replace(sep, ".", 1))
    except ValueError:
        raise ConversionError("decimal_format", "is not a number") from None


def decimal_comma(v: str) -> float:
    """Convert a decimal with a comma: ``18,5`` → 18.5."""
    return _decimal(v, ",")


def decimal_point(v: str) -> float:
    """Convert a decimal with a point (XML): ``27.5`` → 27.5."""
    return _decimal(v, ".")


def percentage(conv: Converter) -> Converter:
    """Wrap a decimal converter: the value must lie in 0..100."""

    def _pct(v: str) -> float:
        x = float(conv(v))
        if not 0 <= x <= 100:
            raise ConversionError("percentage_range", "is not between 0 and 100")
        return x

    return _pct


def code_in(codes: Mapping[str, Any] | frozenset[str] | tuple[str, ...],
            rule: str = "code_list") -> Converter:
    """Accept a code from a fixed list (trimmed; case as given)."""

    def _code(v: str) -> str:
        s = v.strip()
        if s not in codes:
            raise ConversionError(rule, f"{s!r} is not one of {', '.join(sorted(codes))}")
        return s

    return _code


def lower_code_in(codes: frozenset[str] | tuple[str, ...], rule: str = "code_list") -> Converter:
    """Accept a code from a fixed list, compared case-insensitively, returned lower-case."""
    inner = code_in(tuple(c.lower() for c in codes), rule)
    return lambda v: inner(v.lower())


def _yes_no(yes: str, no: str) -> Converter:
    def _conv(v: str) -> bool:
        s = v.strip().lower()
        if s == yes:
            return True
        if s == no:
            return False
        raise ConversionError("yes_no", f"must be {yes.upper() if len(yes) == 1 else yes} "
                                        f"or {no.upper() if len(no) == 1 else no}")

    return _conv


jn = _yes_no("j", "n")
"""``J``/``N`` → bool (family department)."""

ja_nej = _yes_no("ja", "nej")
"""``ja``/``nej`` → bool (job centre)."""


def cpr(v: str) -> Cpr:
    """Parse a CPR number, ``DDMMYY-SSSS`` or ``DDMMYYSSSS`` (never modulus 11)."""
    try:
        return parse_cpr(v)
    except DataError as e:
        raise ConversionError(e.rule or "cpr_format", "CPR " + (
            "holds an impossible birth date" if e.rule == "cpr_birth_date"
            else "is not DDMMYY-SSSS or DDMMYYSSSS")) from None


_UNIQUE: frozenset[Converter] = frozenset({cpr})
"""Converters of values that rarely repeat within an export (one CPR per youth): not memoised."""


def pipe_list(v: str) -> tuple[str, ...]:
    """``a|b|c`` → ``("a", "b", "c")``, trimmed, empty items dropped."""
    return tuple(p.strip() for p in v.split("|") if p.strip())


def split_name(full: str) -> tuple[str, str]:
    """Danish full name → (first names, surname): the last word is the surname."""
    parts = full.split()
    if not parts:
        return "", ""
    if len(parts) == 1:
        return parts[0], ""
    return " ".join(parts[:-1]), parts[-1]


Table = Mapping[str, tuple[str, Converter]]
"""canonical field → (source field, converter)."""


CACHE_SIZE = 4096
"""Values remembered per converter of a table. Exports repeat most values (dates,
codes, institution numbers, names from a small set), and a cache hit costs a tenth
of a conversion. Every converter is pure and returns an immutable value."""

_plans: dict[int, tuple[Table, tuple[tuple[str, str, Converter, Converter], ...]]] = {}


def _plan(table: Table) -> tuple[tuple[str, str, Converter, Converter], ...]:
    """The table as ``(target, column, memoised converter, converter)``, made once per table."""
    hit = _plans.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    plan = tuple((target, column, conv if conv in _UNIQUE else functools.lru_cache(maxsize=CACHE_SIZE)(conv),
                  conv) for target, (column, conv) in table.items())
    _plans[id(table)] = (table, plan)  # the table is kept alive, so its id stays its own
    return plan


def apply(table: Table, fields: Mapping[str, str], *, file: str | None = None,
          row: int | None = None) -> dict[str, Any]:
    """Run a mapping table over one row's raw ``fields``.

    A source field absent from the row counts as empty. The first value that does
    not convert raises ``DataError`` with the source field as ``column``. Converted
    values are memoised per converter (:data:`CACHE_SIZE`); a value that fails is
    converted again each time (the error is not cached).
    """
    out: dict[str, Any] = {}
    get = fields.get
    for target, column, conv, _ in _plan(table):
        try:
            out[target] = conv(get(column) or "")
        except ConversionError as e:
            raise DataError(f"{column} {e}", file=file, row=row, rule=e.rule, column=column) from None
    return out



ColumnFailure = tuple[str, "ConversionError"]
"""The source column whose value did not convert, and why (:func:`apply_columns`)."""


def apply_columns(table: Table, columns: Mapping[str, Sequence[str]],
                  n: int) -> tuple[dict[str, list[Any]], dict[int, ColumnFailure]]:
    """:func:`apply` over a chunk's columns at once: each distinct value is converted once.

    ``columns`` maps a source field to its ``n`` values (a field it lacks counts as empty,
    as in :func:`apply`). Returns each target's converted values, and for each row
    (by position) whose value did not convert the first such column in the table's
    order — the column :func:`apply` would name for that row. A failed row's values
    in the first result are placeholders (``None``).
    """
    values: dict[str, list[Any]] = {}
    failed: dict[int, ColumnFailure] = {}
    for target, column, conv, _ in _plan(table):
        col = columns.get(column)
        if col is None:
            col = [""] * n
        done: dict[str, Any] = {}
        bad: dict[str, ConversionError] = {}
        for v in set(col):
            try:
                done[v] = conv(v or "")
            except ConversionError as e:
                bad[v] = e
                done[v] = None
        values[target] = list(map(done.__getitem__, col))
        if bad:
            for i, v in enumerate(col):
                if v in bad and i not in failed:
                    failed[i] = (column, bad[v])
    return values, failed


# --- a source's columns, declared once ------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One column (CSV) or flattened field (XML) of a source's export, declared once.

    ``field`` is the canonical record field it maps to; with ``conv`` the source's
    mapping table (:func:`table`) converts it, without one ``map_row`` reads it itself
    (the event type picking the record kind, a full name split in two, …). ``group``
    puts it in a second table applied only to some rows (a dropout's reason).
    ``checked`` puts it in the validation frame, for the source's checks. The CSV
    reader's header (:func:`header`), the mapping tables and the checked columns
    (:func:`checked`) are all read from the one declaration.
    """

    name: str
    field: str = ""
    conv: Converter | None = None
    checked: bool = False
    group: str = ""


def header(columns: Sequence[Column]) -> tuple[str, ...]:
    """Every declared column's name, in order: a CSV reader's expected header."""
    return tuple(c.name for c in columns)


def table(columns: Sequence[Column], group: str = "") -> Table:
    """The mapping table (canonical field → (column, converter)) of the columns in ``group``."""
    return {c.field: (c.name, c.conv) for c in columns if c.conv is not None and c.group == group}


def checked(columns: Sequence[Column]) -> tuple[str, ...]:
    """The names of the columns the source's checks read (the validation frame's raw columns)."""
    return tuple(c.name for c in columns if c.checked)


def one_kind(kind: type[R], fields: Table) -> Callable[[Mapping[str, str], Provenance], R]:
    """The ``map_row`` of a source whose every row is one record of ``kind``: ``fields`` applied.

    The function it returns raises ``DataError`` with the rule and column of the first value
    that does not convert.
    """
    def map_row(row: Mapping[str, str], prov: Provenance) -> R:
        return kind(provenance=prov, **apply(fields, row, file=prov.file, row=prov.row))

    map_row.__doc__ = f"One row → {kind.__name__} (:func:`mappings.common.one_kind`)."
    return map_row
