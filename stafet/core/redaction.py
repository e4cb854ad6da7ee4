"""CPR-shaped text: masking for reports, redaction for logs and error messages.

Below every other base module (errors pass their messages through :func:`redact`), so
it imports nothing of stafet's.
"""

from __future__ import annotations

import re

# Anything that looks like a CPR inside free text: DDMMYY, optional '-' or ' ', SSSS.
_CPR_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])([0-3]\d[01]\d\d\d)[- ]?(\d{4})(?![0-9A-Za-z])")


def mask(text: str) -> str:
    """Replace anything CPR-shaped in ``text`` by ``DDMMYY-xxxx``."""
    return _CPR_IN_TEXT.sub(lambda m: f"{m.group(1)}-xxxx", text)


def redact(text: str) -> str:
    """Replace anything CPR-shaped in ``text`` by ``******-****`` (logs, errors)."""
    return _CPR_IN_TEXT.sub("******-****", text)


def contains_cpr_shape(text: str) -> bool:
    """True when ``text`` holds something CPR-shaped."""
    return _CPR_IN_TEXT.search(text) is not None
