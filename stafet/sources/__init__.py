"""The source systems stafet reads, each declared once in its own module here.

A module in this package that defines ``SOURCE = Source(...)`` is a source: its
name, the file-name pattern of its exports, its reader (``connectors.readers``),
its mapping (``mappings``), and its expectation suite (checks plus the
vectorised ``prepare`` that adds the typed columns they look at). The modules
are found with :mod:`pkgutil`, so a sixth source system is one new module here
and nothing else changes.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.readers import Reader
from stafet.core.errors import ConfigError, FileRejected
from stafet.core.models import Provenance, Record

if TYPE_CHECKING:  # pragma: no cover
    from stafet.ingest.validation import Check


@dataclass(frozen=True)
class Source:
    """One source system's export: how to find, read, map and validate it."""

    name: str
    description: str
    pattern: str
    reader: Reader
    map_row: Callable[[Mapping[str, str], Provenance], Record]
    cpr_column: str
    columns: tuple[str, ...]
    checks: tuple[Check, ...]
    prepare: Callable[[Any, date], None]
    kinds: tuple[str, ...]

    def matches(self, file_name: str) -> bool:
        """True when ``file_name`` is named like this source's exports."""
        return re.fullmatch(self.pattern, file_name) is not None


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
        raise FileRejected(f"cannot tell the source of the file: {why}", file=file_name, rule="source")
    return hits[0]
