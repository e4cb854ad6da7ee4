"""The source systems stafet reads, each declared once, in one module here named after it.

A module in this package that defines ``SOURCE = Source(...)`` is a source
(``easy-a`` → :mod:`mappings.easy_a`): its file-name pattern (with named groups
``institution`` / ``municipality`` that land in each record's provenance), its
columns declared once (:class:`mappings.common.Column`: the reader's header, the
mapping table and the checked columns derive from them), its reader (built from the
generic readers of :mod:`connectors.readers`), its pure ``map_row`` from a row of raw
strings to a canonical record, its checks (:mod:`mappings.checks`) and the
vectorised ``prepare`` that adds the typed columns they look at. The modules are found
with :mod:`pkgutil`, so another source system is one new module here (plus its sample
and, for XML, its XSD) and nothing else changes; ``tests/mappings/test_source_contract.py``
tests it for free.

Pure: no I/O, no Prefect, no Great Expectations, no SQL. May import :mod:`stafet.core`
and :mod:`connectors` only.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from connectors.readers import Reader
from stafet.core.errors import ConfigError, FileRejected
from stafet.core.models import Provenance, Record

if TYPE_CHECKING:  # pragma: no cover
    from mappings.checks import Check
    from mappings.common import Column

ORIGIN_GROUPS = ("institution", "municipality")
"""The named groups of a file-name pattern that say who sent the file."""


class Origin(NamedTuple):
    """What an export's file name says about its sender (empty where it says nothing)."""

    institution: str = ""
    municipality: str = ""


@dataclass(frozen=True)
class Source:
    """One source system's export: how to find, read, map and validate it."""

    name: str
    description: str
    pattern: str
    reader: Reader
    map_row: Callable[[Mapping[str, str], Provenance], Record]
    declared: tuple[Column, ...]
    checks: tuple[Check, ...]
    prepare: Callable[[Any, date], None]
    kinds: tuple[str, ...]
    map_columns: Callable[..., Iterator[Any]] | None = None
    """Optional: :attr:`map_row` over a chunk's columns at once (``easy_a.map_columns``): per row
    the record's class and field values, or the ``DataError`` ``map_row`` raises. Bulk ingest
    uses it where a chunk arrives as columns; it must give what ``map_row`` gives."""

    @functools.cached_property
    def columns(self) -> tuple[str, ...]:
        """The raw columns the checks read (the declared columns marked ``checked``)."""
        return tuple(c.name for c in self.declared if c.checked)

    @functools.cached_property
    def cpr_column(self) -> str:
        """The column holding the youth's CPR (the one mapped to the ``cpr`` field)."""
        return next(c.name for c in self.declared if c.field == "cpr")

    def matches(self, file_name: str) -> bool:
        """True when ``file_name`` is named like this source's exports."""
        return re.fullmatch(self.pattern, file_name) is not None

    def origin(self, file_name: str) -> Origin:
        """The pattern's named groups (institution, municipality) in ``file_name``; empty if unnamed."""
        m = re.fullmatch(self.pattern, file_name)
        if m is None:
            return Origin()
        groups = m.groupdict()
        return Origin(*((groups.get(g) or "") for g in ORIGIN_GROUPS))

    def provenance(self, file_name: str, row: int, received_at: datetime) -> Provenance:
        """The provenance of row ``row`` of ``file_name``, with what the file's name says of its sender."""
        return Provenance(self.name, file_name, row, received_at, *self.origin(file_name))


@functools.cache
def all_sources() -> dict[str, Source]:
    """Every source module in this package, by name (discovered once)."""
    found: dict[str, Source] = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        src = getattr(module, "SOURCE", None)
        if isinstance(src, Source):
            if src.name in found:
                raise ConfigError(f"two source modules declare the source {src.name!r}")
            found[src.name] = src
    return found


def get_source(name: str) -> Source:
    """The source called ``name``; ``ConfigError`` naming the known ones if none."""
    try:
        return all_sources()[name]
    except KeyError:
        raise ConfigError(f"unknown source {name!r} (known: {', '.join(sorted(all_sources()))})") from None


def source_for(file_name: str) -> Source:
    """The one source whose file-name pattern matches ``file_name``.

    Raises:
        FileRejected: no source (or more than one) matches the name.
    """
    hits = [s for s in all_sources().values() if s.matches(file_name)]
    if len(hits) != 1:
        why = "no source's file-name pattern matches" if not hits else \
            f"several sources match ({', '.join(s.name for s in hits)})"
        raise FileRejected(f"cannot tell the source of the file: {why}; name it with --source NAME "
                           f"(known: {', '.join(sorted(all_sources()))})", file=file_name, rule="source")
    return hits[0]


@functools.lru_cache(maxsize=4096)
def origin(file_name: str) -> Origin:
    """The sender a stored record's file name gives (its provenance's institution and municipality).

    The store keeps a record's provenance as columns (source, file, row, time of
    receipt); the part that is read from the file's name is read again here with the
    one pattern its source declares. Empty when no single source's pattern matches.
    """
    hits = [s for s in all_sources().values() if s.matches(file_name)]
    return hits[0].origin(file_name) if len(hits) == 1 else Origin()
