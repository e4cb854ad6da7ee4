"""CPR-shaped text is redacted in every spelling people type (issue 16, finding 10).

Synthetic CPRs only. The rule (stafet.core.redaction): six digits DDMMYY, an optional
separator (a dash of any kind with up to three spaces of any kind around it, or up to
three spaces alone), four digits, not part of a longer run of digits; letters may touch it.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stafet.core.redaction import contains_cpr_shape, mask, redact

DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2212"          # - ‐ ‑ ‒ – — −
SPACES = " \u00a0\u2009\u202f\t"                         # space, NBSP, thin, narrow NBSP, tab


@pytest.mark.parametrize("case", [
    "CPR120308-4127", "230507\u20135218", "120308 - 4127", "1203084127a",   # the review's four
    "cpr:120308-4127.", "(120308\u22124127)", "nr.120308\u00a0\u2013\u00a04127", "120308\u20094127",
    "x120308\u20114127y", "ÆØÅ1203084127æøå", "120308\u2014 4127",
], ids=lambda c: f"spelling-{len(c)}")
def test_the_spellings_the_review_found_are_redacted(case: str) -> None:
    out = redact(case)
    assert "4127" not in out and "5218" not in out and "******-****" in out
    assert "xxxx" in mask(case) and "4127" not in mask(case) and "5218" not in mask(case)
    assert contains_cpr_shape(case)


@pytest.mark.parametrize("case", [
    "123456789012",             # 12 digits: not a CPR
    "12030841271",              # 11 digits
    "51203084127",              # a digit before
    "120308-41270",             # five digits after the separator
    "120308--4127",             # two dashes: not a separator
    "120308    4127",           # four spaces: too far apart
    "fil 2026112102 og sha 9f86d081884c7d659a2feaa0c55ad015",
    "+45 12 03 08 41", "2026-11-21 02:00:00", "PKG-0123456789abcdef01234567",
], ids=lambda c: f"not-{len(c)}")
def test_what_is_not_cpr_shaped_stays(case: str) -> None:
    assert redact(case) == case and mask(case) == case and not contains_cpr_shape(case)


@st.composite
def cpr_spelled(draw: st.DrawFn) -> tuple[str, str]:
    """(DDMMYY, the CPR spelled as someone might type it)."""
    born = draw(st.dates(date(1900, 1, 1), date(2036, 12, 31)))
    ddmmyy = f"{born:%d%m}{born.year % 100:02d}"
    serial = f"{draw(st.integers(0, 9999)):04d}"
    space = st.text(st.sampled_from(SPACES), min_size=0, max_size=3)
    sep = draw(st.one_of(
        st.just(""),
        st.text(st.sampled_from(SPACES), min_size=1, max_size=3),
        st.builds(lambda a, d, b: a + d + b, space, st.sampled_from(DASHES), space)))
    return ddmmyy, ddmmyy + sep + serial


_DIGIT = re.compile(r"\d")
prefix = st.text(max_size=30).filter(lambda s: not _DIGIT.match(s[-1:]))
suffix = st.text(max_size=30).filter(lambda s: not _DIGIT.match(s[:1]))


@settings(max_examples=500)
@given(cpr_spelled(), prefix, suffix)
def test_any_cpr_in_any_spelling_in_random_text_is_redacted(spelled: tuple[str, str], before: str,
                                                            after: str) -> None:
    """Embedded anywhere (letters, punctuation, spaces or nothing around it), the CPR is replaced
    whole and the text around it is redacted as it would be on its own."""
    ddmmyy, cpr = spelled
    text = before + cpr + after
    assert redact(text) == redact(before) + "******-****" + redact(after)
    assert mask(text) == mask(before) + f"{ddmmyy}-xxxx" + mask(after)
    assert contains_cpr_shape(text)


@settings(max_examples=300)
@given(st.integers(10**10, 10**13 - 1), prefix, suffix)
def test_a_longer_run_of_digits_is_not_a_cpr(number: int, before: str, after: str) -> None:
    """11 to 13 digits in a row are never taken for a CPR (only other CPR-shaped text around
    them is redacted)."""
    text = before + str(number) + after
    assert redact(text) == redact(before) + str(number) + redact(after)
