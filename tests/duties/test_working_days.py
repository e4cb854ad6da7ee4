"""Working days (weekends and Danish public holidays skipped) and birthdays.

Thy: "UU skal inden for 5 arbejdsdag kontakte den unge og forældremyndigheden".
Holidays come from the ``holidays`` library; these tests pin what it does, in
particular that Store Bededag stopped being a holiday from 2024.
"""

from datetime import date

import holidays
import pytest

from stafet.core.cpr import age_on
from stafet.duties.deadlines import add_working_days, anniversary, is_working_day

FIVE_WORKING_DAYS = [
    # (start = the dropout, expected 5th working day after it, why)
    (date(2026, 3, 30), date(2026, 4, 9), "Monday before Easter: Maundy Thu, Good Fri, Easter Mon skipped"),
    (date(2026, 3, 27), date(2026, 4, 8), "Friday before Easter week"),
    (date(2026, 4, 2), date(2026, 4, 13), "on Maundy Thursday (a holiday): counting starts after Easter"),
    (date(2026, 5, 22), date(2026, 6, 1), "Friday before Whit Monday"),
    (date(2026, 5, 13), date(2026, 5, 21), "Wednesday before Ascension Day (Thursday)"),
    (date(2026, 12, 18), date(2026, 12, 28), "Christmas: 24 Dec counts (not a helligdag), 25 Dec skipped"),
    (date(2026, 11, 21), date(2026, 11, 27), "a Saturday: Monday is day 1"),
    (date(2026, 11, 16), date(2026, 11, 23), "an ordinary Monday → next Monday"),
    (date(2023, 5, 4), date(2023, 5, 12), "Store Bededag 5 May 2023 was still a holiday"),
    (date(2024, 4, 25), date(2024, 5, 2), "Store Bededag 26 April 2024 is a working day (abolished)"),
    (date(2026, 6, 4), date(2026, 6, 11), "Grundlovsdag is not a helligdag: it counts"),
]


@pytest.mark.parametrize(("start", "expected", "why"), FIVE_WORKING_DAYS,
                         ids=[w for _, _, w in FIVE_WORKING_DAYS])
def test_five_working_days(start: date, expected: date, why: str) -> None:
    assert add_working_days(start, 5) == expected, why


def test_zero_working_days_is_the_start_and_negative_is_refused() -> None:
    assert add_working_days(date(2026, 4, 3), 0) == date(2026, 4, 3)
    with pytest.raises(ValueError):
        add_working_days(date(2026, 4, 3), -1)


@pytest.mark.parametrize(("day", "working"), [
    (date(2023, 5, 5), False),   # Store Bededag 2023
    (date(2024, 4, 26), True),   # would have been Store Bededag: abolished from 2024
    (date(2025, 5, 16), True),
    (date(2026, 5, 1), True),    # 1 May: not a public holiday
    (date(2026, 6, 5), True),    # Grundlovsdag
    (date(2026, 12, 24), True),  # Christmas Eve
    (date(2026, 12, 25), False),
    (date(2026, 4, 6), False),   # Easter Monday
    (date(2026, 5, 25), False),  # Whit Monday
    (date(2026, 11, 22), False),  # a Sunday
])
def test_is_working_day(day: date, working: bool) -> None:
    assert is_working_day(day) is working


def test_the_library_knows_store_bededag_ended_in_2023() -> None:
    assert "Prayer" in holidays.Denmark(years=2023)[date(2023, 5, 5)]
    for year in (2024, 2025, 2026, 2027):
        names = holidays.Denmark(years=year).values()
        assert not any("Prayer" in n for n in names), year


@pytest.mark.parametrize(("born", "years", "expected"), [
    (date(2008, 2, 29), 17, date(2025, 3, 1)),   # leap-day birthday in a common year
    (date(2008, 2, 29), 16, date(2024, 2, 29)),  # ... and in a leap year
    (date(2008, 2, 29), 18, date(2026, 3, 1)),
    (date(2009, 11, 28), 17, date(2026, 11, 28)),
    (date(2024, 2, 29), -1, date(2023, 3, 1)),
])
def test_anniversary_matches_age_on(born: date, years: int, expected: date) -> None:
    assert anniversary(born, years) == expected
    if years > 0:
        assert age_on(born, expected) == years
        assert age_on(born, date.fromordinal(expected.toordinal() - 1)) == years - 1
