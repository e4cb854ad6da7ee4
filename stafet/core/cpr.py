"""CPR numbers: parsing, birth date and age (masking in text: :mod:`stafet.core.redaction`).

A CPR number is ``DDMMYY-SSSS``. The birth century follows the CPR office's table
(the first serial digit together with the two-digit year). Since 2007 not every
valid number passes the modulus-11 check, so it is never used to reject a number.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date

from stafet.core.errors import DataError

_CPR_RE = re.compile(r"^\s*(\d{2})(\d{2})(\d{2})-?(\d{4})\s*$")


CENTURY_TABLE: tuple[tuple[tuple[int, ...], int, int, int], ...] = (
    ((0, 1, 2, 3), 99, 1900, 1900),
    ((4, 9), 36, 2000, 1900),
    ((5, 6, 7, 8), 57, 2000, 1800),
)
"""The CPR office's century table, the one copy: ``(serial digits, cutoff, century for a
two-digit year up to the cutoff, century above it)``. 0–3 → 1900; 4 and 9 → 2000 for
00–36, else 1900; 5–8 → 2000 for 00–57, else 1800. Read by :func:`century` and by the
vectorised :func:`mappings.checks.add_cpr`."""

_BY_DIGIT: dict[int, tuple[int, int, int]] = {
    d: (cutoff, low, high) for digits, cutoff, low, high in CENTURY_TABLE for d in digits}


def century(year2: int, digit7: int) -> int:
    """Return the century (1800, 1900 or 2000) for a two-digit year and serial digit.

    Read from :data:`CENTURY_TABLE`.
    """
    cutoff, low, high = _BY_DIGIT[digit7]
    return low if year2 <= cutoff else high


@dataclass(frozen=True, slots=True)
class Cpr:
    """A parsed CPR number. ``str()`` and ``repr()`` never show it in clear."""

    digits: str
    birth_date: date

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"Cpr({self.masked})"

    @property
    def masked(self) -> str:
        """``DDMMYY-xxxx``: the form a steward may see in reports."""
        return f"{self.digits[:6]}-xxxx"

    @property
    def formatted(self) -> str:
        """``DDMMYY-SSSS``, for packages to authorised recipients only."""
        return f"{self.digits[:6]}-{self.digits[6:]}"

    def age_on(self, day: date) -> int:
        """Whole years of age on ``day``."""
        return age_on(self.birth_date, day)

    @property
    def passes_modulus11(self) -> bool:
        """The old modulus-11 check; informative only, never a reason to reject."""
        weights = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
        return sum(int(d) * w for d, w in zip(self.digits, weights, strict=True)) % 11 == 0


def parse_cpr(text: str, *, file: str | None = None, row: int | None = None) -> Cpr:
    """Parse ``DDMMYY-SSSS`` or ``DDMMYYSSSS``.

    Raises:
        DataError: with rule ``cpr_format`` or ``cpr_birth_date``; the message never
            holds the number itself.
    """
    text = text or ""
    # The exact forms first, without the regex: bulk ingest parses one CPR per row.
    if len(text) == 11 and text[6] == "-":
        digits = text[:6] + text[7:]
    elif len(text) == 10:
        digits = text
    else:
        digits = ""
    if not (digits.isascii() and digits.isdigit()):
        m = _CPR_RE.match(text or "")
        if not m:
            raise DataError("CPR is not DDMMYY-SSSS or DDMMYYSSSS", file=file, row=row, rule="cpr_format")
        digits = "".join(m.groups())
    born = _birth_date(digits[:6], digits[6])
    if born is None:
        raise DataError("CPR holds an impossible birth date", file=file, row=row, rule="cpr_birth_date")
    return Cpr(digits, born)


@functools.lru_cache(maxsize=1 << 16)
def _birth_date(ddmmyy: str, digit7: str) -> date | None:
    """The birth date of ``DDMMYY`` with the serial's first digit, or None if there is no such day."""
    yy = int(ddmmyy[4:])
    try:
        return date(century(yy, int(digit7)) + yy, int(ddmmyy[2:4]), int(ddmmyy[:2]))
    except ValueError:
        return None


def age_on(born: date, day: date) -> int:
    """Whole years between ``born`` and ``day``; a 29 February birthday counts on 1 March."""
    years = day.year - born.year
    if (day.month, day.day) < (born.month, born.day):
        years -= 1
    return years
