"""CPR parsing: century table, post-2007 numbers, impossible dates, age."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stafet.core.cpr import age_on, century, parse_cpr
from stafet.core.errors import DataError
from stafet.core.redaction import contains_cpr_shape, mask, redact


@pytest.mark.parametrize(("text", "born"), [
    ("120308-4127", date(2008, 3, 12)),   # 7th digit 4, year 08 → 2000s
    ("1203084127", date(2008, 3, 12)),
    ("150299-1234", date(1999, 2, 15)),   # 7th digit 1 → 1900s
    ("010137-4000", date(1937, 1, 1)),    # 4 with year 37 → 1900s
    ("010136-4000", date(2036, 1, 1)),    # 4 with year 36 → 2000s
    ("010158-5000", date(1858, 1, 1)),    # 5–8 with year ≥ 58 → 1800s
    ("010157-8000", date(2057, 1, 1)),    # 5–8 with year ≤ 57 → 2000s
    ("010199-9000", date(1999, 1, 1)),    # 9 with year ≥ 37 → 1900s
    ("010120-9000", date(2020, 1, 1)),    # 9 with year ≤ 36 → 2000s
    ("290200-4000", date(2000, 2, 29)),   # a leap day
])
def test_birth_date_follows_century_table(text: str, born: date) -> None:
    assert parse_cpr(text).birth_date == born


def test_century_table_edges() -> None:
    assert [century(0, d) for d in range(10)] == [1900] * 4 + [2000] * 6
    assert [century(99, d) for d in range(10)] == [1900] * 4 + [1900] + [1800] * 4 + [1900]


def test_post_2007_number_failing_modulus11_is_accepted() -> None:
    c = parse_cpr("120308-4128")
    assert not c.passes_modulus11
    assert c.birth_date == date(2008, 3, 12)


@pytest.mark.parametrize("text", ["310209-4000", "290201-4000", "001299-1234", "131399-1234",
                                  "12030-84127", "12030841271", "abcdef-ghij", ""])
def test_bad_numbers_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(DataError) as exc:
        parse_cpr(text, file="x.csv", row=7)
    assert exc.value.rule in ("cpr_format", "cpr_birth_date")
    assert "row=7" in str(exc.value) and "x.csv" in str(exc.value)
    if text:
        assert text not in str(exc.value)


def test_age_on_a_day_including_leap_day_birthday() -> None:
    leap = parse_cpr("290208-4000")
    assert leap.age_on(date(2026, 2, 28)) == 17
    assert leap.age_on(date(2026, 3, 1)) == 18
    assert age_on(date(2008, 3, 12), date(2026, 3, 11)) == 17
    assert age_on(date(2008, 3, 12), date(2026, 3, 12)) == 18


def test_str_and_repr_never_show_the_number() -> None:
    c = parse_cpr("120308-4127")
    assert "4127" not in str(c) and "4127" not in repr(c) and "4127" not in f"{c}"
    assert c.masked == "120308-xxxx"
    assert c.formatted == "120308-4127"


def test_mask_and_redact_every_written_form() -> None:
    text = "a 120308-4127 b 1203084127 c 120308 4127 d"
    assert "4127" not in mask(text) and mask(text).count("120308-xxxx") == 3
    assert "120308" not in redact(text)
    assert not contains_cpr_shape("fil 2026112102 og sha 9f86d081884c7d659a2feaa0c55ad015")


@given(st.dates(date(1900, 1, 1), date(2036, 12, 31)), st.integers(0, 9999))
def test_any_real_birth_date_round_trips(born: date, serial: int) -> None:
    yy = born.year % 100
    digit7 = 0 if born.year < 2000 else 4
    if born.year >= 2000 and yy > 36:
        return
    text = f"{born:%d%m}{yy:02d}-{digit7}{serial % 1000:03d}"
    assert parse_cpr(text).birth_date == born
