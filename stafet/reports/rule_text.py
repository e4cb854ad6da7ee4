"""Why *this* quarantined row breaks its rule, in Danish: the row's own values and what is allowed.

The stored quarantine row carries the rule's static description (``rule: description``,
written by the ingest). At display time :func:`explain` finds each broken check in the
source's suite (:mod:`mappings.checks`: its expectation and kwargs — ``value_set``,
``min_value``/``max_value``, the column pair) and says it with the row's decrypted values::

    Haendelse har værdien »AFBRUDT«; tilladt: AFBRUD, FRAFALDSTRUET, GENNEMFOERT, OPTAG.

One function for every place a steward reads it: ``stafet quarantine show``, the steward's
validation report (:mod:`stafet.reports.validation`) and the console's quarantine pages
(:mod:`stafet.web.explain` re-exports it).

Never a CPR: the text for the source's CPR column (and the checks on its derived
``_cpr_shape``/``_birth_date``/``_age`` columns) says the rule without the value, and any
other value is passed through the CPR redactor.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stafet.core.redaction import redact

_SUFFIXES = ("__d", "__re", "__inst", "__ok", "__cpr", "__age")
MAX_LISTED = 12
"""Allowed values named in the sentence at most (the rest as ``…, N i alt``)."""


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
    """A field's value as a page may show it: CPR-shaped text masked."""
    return redact(str(value))


def listed(values: Sequence[Any]) -> str:
    """``A, B, C`` — at most :data:`MAX_LISTED`, then ``…, N i alt``."""
    names = [str(v) for v in values]
    if len(names) <= MAX_LISTED:
        return ", ".join(names)
    return ", ".join(names[:MAX_LISTED]) + f", … ({len(names)} i alt)"


def failures(rule: str, reason: str) -> list[tuple[str, str]]:
    """The ``(rule, description)`` pairs a stored reason holds (``rule: why; rule: why``)."""
    out = []
    for part in (reason or "").split("; "):
        name, sep, why = part.partition(": ")
        if sep and name.strip():
            out.append((name.strip(), why.strip()))
    if not out:
        out = [(r, reason or "") for r in (rule or "").split(",") if r]
    return out


def _bound(value: Any) -> str:
    if isinstance(value, Mapping) and value.get("$PARAMETER") == "today":
        return "i dag"
    return str(value)


def _range(kw: Mapping[str, Any]) -> str:
    low, high = kw.get("min_value"), kw.get("max_value")
    if low is not None and high is not None:
        return f"{_bound(low)}–{_bound(high)}"
    if high is not None:
        return f"senest {_bound(high)}" if isinstance(high, Mapping) else f"højst {_bound(high)}"
    if low is not None:
        return f"mindst {_bound(low)}"
    return "det tilladte"


def _one(src: Any, rule: str, why: str, fields: Mapping[str, str]) -> Explanation:
    """The explanation of one broken check (``why``: its stored description)."""
    checks = [c for c in getattr(src, "checks", ()) if c.rule == rule]
    if not checks:
        return Explanation(f"Rækken overholder ikke reglen {rule}: {shown(why)}".rstrip(": ") + ".")
    c = next((c for c in checks if c.description and c.description == why), None) or next(
        (c for c in checks if c.description and c.description in why), checks[0])
    kw = dict(c.kwargs)
    cpr_col = getattr(src, "cpr_column", "")
    raw_col = str(kw.get("column", ""))
    if raw_col in ("_cpr_shape", "__cpr") or raw_col.endswith("__cpr"):
        return Explanation(f"{cpr_col or 'CPR-nummeret'} har ikke formen DDMMÅÅ-XXXX eller DDMMÅÅXXXX "
                           "(værdien vises ikke).", (cpr_col,) if cpr_col else (), rule_text=c.description)
    if raw_col == "_birth_date":
        return Explanation(f"{cpr_col or 'CPR-nummeret'} har en fødselsdato, der ikke findes "
                           "(værdien vises ikke).", (cpr_col,) if cpr_col else (), rule_text=c.description)

    def val(col: str) -> str:
        if col and col == cpr_col:
            return "(CPR-nummer, vises ikke)"
        v = fields.get(col, "")
        return f"»{shown(v)}«" if v not in ("", None) else "(tom)"

    if raw_col == "_age":
        at = re.search(r" on (\S+)$", c.description or "")
        when = f" på {at.group(1)} {val(at.group(1))}" if at else ""
        return Explanation(f"Den unges alder{when} ligger uden for målgruppen; tilladt: {_range(kw)} år.",
                           (at.group(1),) if at else (), rule_text=c.description)
    if c.expectation == "ExpectColumnPairValuesAToBeGreaterThanB":
        later, earlier = _column(kw.get("column_A")), _column(kw.get("column_B"))
        return Explanation(f"{earlier} {val(earlier)} ligger efter {later} {val(later)}; "
                           f"tilladt: {earlier} senest samme dag som {later}.",
                           (earlier, later), rule_text=c.description)
    col = _column(raw_col)
    if c.expectation == "ExpectColumnValuesToBeInSet":
        values = kw.get("value_set")
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            allowed = tuple(values)
            return Explanation(f"{col} har værdien {val(col)}; tilladt: {listed(allowed)}.", (col,), allowed,
                               c.description)
        if isinstance(values, Mapping):
            return Explanation(f"{col} har værdien {val(col)}, som ikke er et nummer, netværket kender; "
                               "tilladt: netværkets medlemmer (stafet network show).", (col,),
                               rule_text=c.description)
        if raw_col.endswith("__ok"):
            return Explanation(f"{col} har værdien {val(col)}, som ikke er en gyldig dato i kildens format.",
                               (col,), rule_text=c.description)
        return Explanation(f"{col} har værdien {val(col)}, som ikke har den forventede form "
                           f"(reglen: {c.description}).", (col,), rule_text=c.description)
    if c.expectation == "ExpectColumnValuesToBeBetween":
        return Explanation(f"{col} har værdien {val(col)}; tilladt: {_range(kw)}.", (col,),
                           rule_text=c.description)
    if c.expectation == "ExpectColumnValuesToNotBeNull":
        return Explanation(f"{col} mangler.", (col,), rule_text=c.description)
    text = f"{col} har værdien {val(col)}, som ikke overholder reglen." if col else \
        "Rækken overholder ikke reglen."
    return Explanation(text, (col,) if col else (), rule_text=c.description)


def explain(source: str, rule: str, fields: Mapping[str, str], reason: str = "") -> Explanation:
    """The explanation of one quarantined row of ``source`` that broke ``rule`` (every broken check).

    ``fields``: the row's decrypted raw fields; ``reason``: the stored ``rule: description; …``.
    The sentences of several broken checks are joined; ``fields`` and ``allowed`` are their union.
    """
    from mappings import get_source

    try:
        src: Any = get_source(source)
    except Exception:  # an unknown source (renamed since): say what the row was told
        src = None
    parts = [_one(src, r, why, fields) for r, why in failures(rule, reason)]
    if not parts:
        parts = [_one(src, rule, reason, fields)]
    if len(parts) == 1:
        return parts[0]
    names = tuple(dict.fromkeys(f for p in parts for f in p.fields if f))
    allowed = tuple(dict.fromkeys(a for p in parts for a in p.allowed))
    return Explanation(" ".join(dict.fromkeys(p.sentence for p in parts)), names, allowed,
                       "; ".join(dict.fromkeys(p.rule_text for p in parts if p.rule_text)))


def rule_sentence(source: str, rule: str, fields: Mapping[str, str], reason: str = "") -> str:
    """:func:`explain`'s sentence only (for lists and reports); the stored reason if it cannot be told."""
    try:
        return explain(source, rule, fields, reason).sentence
    except (ValueError, KeyError, TypeError):
        return shown(reason)
