"""CPR-shaped text: masking for reports, redaction for logs and error messages.

Below every other base module (errors pass their messages through :func:`redact`), so
it imports nothing of stafet's.

What counts as CPR-shaped (the rule, chosen for recall first, false positives kept low):

* ``DDMMYY`` — six digits in a row, the first ``0``–``3`` and the third ``0``/``1`` (a
  day and a month, loosely: an impossible date is still redacted) — then
* an optional separator: a dash (``-`` and the Unicode dashes ``‐ ‑ ‒ – — ―`` and the
  minus sign ``−``, small and full-width hyphen-minus) with up to three spaces on either
  side, or up to three spaces alone; "space" is any Unicode white space (NBSP, thin and
  narrow no-break space, line breaks, …) and the invisible ones (zero-width space,
  word joiner, soft hyphen, BOM) — then
* ``SSSS`` — four digits;
* and the whole not part of a longer run of digits: no digit right before ``DDMMYY`` or
  right after ``SSSS``. A 12-digit (or 11-digit) number is not a CPR; letters and
  punctuation may touch it (``CPR120308-4127``, ``1203084127a``, ``nr.120308-4127``).

A ten-digit number of that shape is redacted even where it is something else (an order
number, ten digits inside a hex digest): hiding too much in a log line is the safe error.
"""

from __future__ import annotations

import re

_SPACE = r"[\s\u00ad\u180e\u200b-\u200d\u2060\ufeff]"
_DASH = r"[\-\u2010-\u2015\u2212\ufe58\ufe63\uff0d]"
# Anything that looks like a CPR inside free text (see the module docstring for the rule).
_CPR_IN_TEXT = re.compile(
    rf"(?<!\d)([0-3]\d[01]\d\d\d)(?:{_SPACE}{{0,3}}{_DASH}{_SPACE}{{0,3}}|{_SPACE}{{1,3}})?(\d{{4}})(?!\d)")


def mask(text: str) -> str:
    """Replace anything CPR-shaped in ``text`` by ``DDMMYY-xxxx``."""
    return _CPR_IN_TEXT.sub(lambda m: f"{m.group(1)}-xxxx", text)


def redact(text: str) -> str:
    """Replace anything CPR-shaped in ``text`` by ``******-****`` (logs, errors)."""
    return _CPR_IN_TEXT.sub("******-****", text)


def contains_cpr_shape(text: str) -> bool:
    """True when ``text`` holds something CPR-shaped."""
    return _CPR_IN_TEXT.search(text) is not None
