"""Why *this* row breaks its rule, in Danish, from the source's declared checks.

The check that failed is found by its rule name in the source's suite
(:mod:`mappings.checks`); its columns name the fields to show, and a list of values
(``ExpectColumnValuesToBeInSet``) gives the allowed values. CPR-shaped values are masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mappings import get_source
from stafet.core.redaction import redact

_SUFFIXES = ("__d", "__re", "__inst", "__ok", "__cpr", "__age")
_DERIVED = {"_cpr_shape": "CPR-nummeret har ikke formen DDMMÅÅ-XXXX.",
            "_birth_date": "CPR-nummerets fødselsdato findes ikke.",
            "_age": "Den unges alder ligger uden for målgruppen."}


@dataclass(frozen=True)
class Explanation:
    """What the steward reads next to a quarantined row."""

    sentence: str
    fields: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()
    rule_text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _column(name: Any) -> str:
    text = str(name or "")
    for suffix in _SUFFIXES:
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def shown(value: str) -> str:
    """A field's value as the page may show it: CPR-shaped text masked."""
    return redact(str(value))


def explain(source: str, rule: str, fields: dict[str, str], reason: str = "") -> Explanation:
    """The explanation of one quarantined row of ``source`` that broke ``rule``."""
    try:
        checks = [c for c in get_source(source).checks if c.rule == rule]
    except Exception:  # an unknown source (renamed since): say what the row was told
        checks = []
    if not checks:
        return Explanation(f"Rækken overholder ikke reglen {rule}: {shown(reason)}".rstrip(": "))
    c = next((c for c in checks if c.description and c.description in reason), checks[0])
    kw = dict(c.kwargs)
    if str(kw.get("column", "")) in _DERIVED:
        return Explanation(_DERIVED[str(kw["column"])], rule_text=c.description)

    def val(col: str) -> str:
        v = fields.get(col, "")
        return f"»{shown(v)}«" if v != "" else "(tom)"

    if c.expectation == "ExpectColumnPairValuesAToBeGreaterThanB":
        later, earlier = _column(kw.get("column_A")), _column(kw.get("column_B"))
        return Explanation(f"{earlier} {val(earlier)} ligger efter {later} {val(later)}.",
                           (earlier, later), rule_text=c.description)
    col = _column(kw.get("column"))
    if c.expectation == "ExpectColumnValuesToBeInSet":
        values = kw.get("value_set")
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            return Explanation(f"{col} har værdien {val(col)}, som ikke er en af de tilladte værdier.",
                               (col,), tuple(values), c.description)
        if isinstance(values, dict):
            return Explanation(f"{col} {val(col)} er ikke et nummer, netværket kender.", (col,),
                               rule_text=c.description)
        return Explanation(f"{col} {val(col)} har ikke den forventede form.", (col,), rule_text=c.description)
    if c.expectation == "ExpectColumnValuesToBeBetween":
        return Explanation(f"{col} {val(col)} ligger uden for det tilladte.", (col,), rule_text=c.description)
    if c.expectation == "ExpectColumnValuesToNotBeNull":
        return Explanation(f"{col} mangler.", (col,), rule_text=c.description)
    text = f"{col} {val(col)} overholder ikke reglen." if col else "Rækken overholder ikke reglen."
    return Explanation(text,
                       (col,) if col else (), rule_text=c.description)
