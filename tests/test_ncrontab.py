"""NCRONTAB parsing and next-occurrence tests (shared.ncrontab)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.ncrontab import NCronTab


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def nxt(expr: str, dt: datetime) -> datetime:
    return NCronTab.parse(expr).next_after(dt)


# --- parsing: every syntax element ------------------------------------------------------------


def test_star_covers_every_value() -> None:
    s = NCronTab.parse("* * * * * *")
    assert s.seconds == tuple(range(60))
    assert s.minutes == tuple(range(60))
    assert s.hours == tuple(range(24))
    assert s.days == tuple(range(1, 32))
    assert s.months == tuple(range(1, 13))
    assert s.days_of_week == tuple(range(7))
    assert not s.day_restricted and not s.dow_restricted


def test_single_values_lists_and_ranges() -> None:
    s = NCronTab.parse("5 1,2,30 9-17 1,15 6 1-5")
    assert s.seconds == (5,)
    assert s.minutes == (1, 2, 30)
    assert s.hours == tuple(range(9, 18))
    assert s.days == (1, 15)
    assert s.months == (6,)
    assert s.days_of_week == (1, 2, 3, 4, 5)


def test_steps() -> None:
    s = NCronTab.parse("*/15 10-50/20 3/6 */10 */4 */2")
    assert s.seconds == (0, 15, 30, 45)
    assert s.minutes == (10, 30, 50)
    assert s.hours == (3, 9, 15, 21)
    assert s.days == (1, 11, 21, 31)
    assert s.months == (1, 5, 9)
    assert s.days_of_week == (0, 2, 4, 6)


def test_mixed_list_of_ranges_steps_and_values() -> None:
    assert NCronTab.parse("0,10-12,50-59/5 * * * * *").seconds == (0, 10, 11, 12, 50, 55)


def test_month_and_day_names_case_insensitive() -> None:
    s = NCronTab.parse("0 0 0 * jan,MAR,Dec-Dec Mon-wed,SAT")
    assert s.months == (1, 3, 12)
    assert s.days_of_week == (1, 2, 3, 6)
    assert NCronTab.parse("0 0 0 * Feb-Apr/2 *").months == (2, 4)


def test_day_of_week_seven_is_sunday() -> None:
    assert NCronTab.parse("0 0 0 * * 7").days_of_week == (0,)
    assert NCronTab.parse("0 0 0 * * 5-7").days_of_week == (0, 5, 6)
    assert NCronTab.parse("0 0 0 * * 0,7").days_of_week == (0,)


def test_five_fields_mean_second_zero() -> None:
    s = NCronTab.parse("*/5 * * * *")
    assert s.seconds == (0,)
    assert s.minutes == tuple(range(0, 60, 5))
    assert nxt("*/5 * * * *", utc(2024, 1, 1, 10, 2, 30)) == utc(2024, 1, 1, 10, 5, 0)


def test_whitespace_is_flexible_and_str_is_the_expression() -> None:
    s = NCronTab.parse("  0  */5\t* * * *  ")
    assert str(s) == "0  */5\t* * * *"
    assert s.minutes == NCronTab.parse("0 */5 * * * *").minutes


# --- errors name the field and the token ------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "fragments"),
    [
        ("* * * *", ["expected 6 fields", "got 4"]),
        ("* * * * * * *", ["expected 6 fields", "got 7"]),
        ("", ["got 0"]),
        ("60 * * * * *", ["second field", "'60'", "out of range 0-59"]),
        ("0 60 * * * *", ["minute field", "'60'", "out of range 0-59"]),
        ("0 0 24 * * *", ["hour field", "'24'", "0-23"]),
        ("0 0 0 0 * *", ["day field", "'0'", "1-31"]),
        ("0 0 0 32 * *", ["day field", "'32'"]),
        ("0 0 0 * 13 *", ["month field", "'13'", "1-12"]),
        ("0 0 0 * * 8", ["day-of-week field", "'8'", "0-7"]),
        ("0 0 0 * Foo *", ["month field", "'Foo'", "not a number", "Jan"]),
        ("0 0 0 * * Funday", ["day-of-week field", "'Funday'", "Sun"]),
        ("0 0 0 * * x", ["day-of-week field", "'x'"]),
        ("*/0 * * * * *", ["second field", "'*/0'", "step"]),
        ("*/x * * * * *", ["second field", "'*/x'", "step"]),
        ("0 0 5-1 * * *", ["hour field", "'5-1'", "range start 5 is after its end 1"]),
        ("0 1,,2 * * * *", ["minute field", "''", "empty"]),
        ("0 -1 * * * *", ["minute field", "'-1'"]),
        ("0 0 0 * Jan Feb", ["day-of-week field", "'Feb'"]),
        ("0 0 0 30 Feb *", ["never occurs", "[2]"]),
        ("0 0 0 31 Apr,Jun *", ["never occurs"]),
    ],
)
def test_errors_name_field_and_token(expr: str, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        NCronTab.parse(expr)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_non_string_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        NCronTab.parse(5)  # type: ignore[arg-type]


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        NCronTab.parse("* * * * * *").next_after(datetime(2024, 1, 1))


def test_timespan_style_is_not_ncrontab() -> None:
    with pytest.raises(ValueError, match="expected 6 fields"):
        NCronTab.parse("00:05:00")


# --- next_after ---------------------------------------------------------------------------------


def test_next_after_is_strictly_after() -> None:
    assert nxt("* * * * * *", utc(2024, 1, 1, 0, 0, 0)) == utc(2024, 1, 1, 0, 0, 1)
    assert nxt("0 * * * * *", utc(2024, 1, 1, 0, 0, 0)) == utc(2024, 1, 1, 0, 1, 0)


def test_next_after_drops_microseconds() -> None:
    assert nxt("* * * * * *", utc(2024, 1, 1, 0, 0, 0) + timedelta(microseconds=500)) == utc(2024, 1, 1, 0, 0, 1)
    assert nxt("0 * * * * *", utc(2024, 1, 1, 0, 0, 59) + timedelta(microseconds=999_999)) == utc(2024, 1, 1, 0, 1)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # minute boundary
        ("*/10 * * * * *", utc(2024, 5, 5, 10, 0, 55), utc(2024, 5, 5, 10, 1, 0)),
        # hour boundary
        ("0 */15 * * * *", utc(2024, 5, 5, 10, 45, 0), utc(2024, 5, 5, 11, 0, 0)),
        # day boundary
        ("0 30 9 * * *", utc(2024, 5, 5, 9, 30, 0), utc(2024, 5, 6, 9, 30, 0)),
        # month boundary (30-day month)
        ("0 0 0 * * *", utc(2024, 4, 30, 12, 0, 0), utc(2024, 5, 1, 0, 0, 0)),
        # month boundary skipping short months for day 31
        ("0 0 0 31 * *", utc(2024, 4, 1), utc(2024, 5, 31)),
        # year boundary
        ("59 59 23 31 12 *", utc(2023, 12, 31, 23, 59, 59), utc(2024, 12, 31, 23, 59, 59)),
        ("* * * * * *", utc(2024, 12, 31, 23, 59, 59), utc(2025, 1, 1, 0, 0, 0)),
        ("0 0 0 1 Jan *", utc(2024, 1, 1, 0, 0, 1), utc(2025, 1, 1)),
        # leap day
        ("0 0 0 29 Feb *", utc(2024, 3, 1), utc(2028, 2, 29)),
        ("0 0 0 29 Feb *", utc(2096, 3, 1), utc(2104, 2, 29)),  # 2100 is not a leap year
        # months list
        ("0 0 12 15 Mar,Sep *", utc(2024, 3, 15, 12), utc(2024, 9, 15, 12)),
        # step ranges
        ("0 10-50/20 * * * *", utc(2024, 1, 1, 5, 50, 0), utc(2024, 1, 1, 6, 10, 0)),
        ("0 0 3/6 * * *", utc(2024, 1, 1, 21, 0, 0), utc(2024, 1, 2, 3, 0, 0)),
        # hours carry into the next day and month
        ("0 0 22-23 * * *", utc(2024, 1, 31, 23, 0, 0), utc(2024, 2, 1, 22, 0, 0)),
    ],
)
def test_next_after_boundaries(expr: str, after: datetime, expected: datetime) -> None:
    assert nxt(expr, after) == expected


def test_day_of_week_only() -> None:
    # 2024-01-01 is a Monday
    assert nxt("0 0 9 * * Fri", utc(2024, 1, 1)) == utc(2024, 1, 5, 9)
    assert nxt("0 0 9 * * Sun", utc(2024, 1, 1)) == utc(2024, 1, 7, 9)
    assert nxt("0 0 9 * * 7", utc(2024, 1, 1)) == utc(2024, 1, 7, 9)
    assert nxt("0 0 9 * * 1-5", utc(2024, 1, 5, 9)) == utc(2024, 1, 8, 9)  # Friday -> Monday


def test_day_and_day_of_week_both_restricted_is_or() -> None:
    s = NCronTab.parse("0 0 0 13 * Fri")
    assert s.day_restricted and s.dow_restricted
    # 2024-01-05 is a Friday (not the 13th); 2024-01-13 is a Saturday (not a Friday)
    assert s.next_after(utc(2024, 1, 1)) == utc(2024, 1, 5)
    assert s.next_after(utc(2024, 1, 12)) == utc(2024, 1, 13)
    assert s.next_after(utc(2024, 1, 13)) == utc(2024, 1, 19)


def test_or_rule_makes_impossible_day_satisfiable() -> None:
    s = NCronTab.parse("0 0 0 30 Feb Mon")  # 30 Feb never exists, Mondays in February do
    assert s.next_after(utc(2024, 1, 1)) == utc(2024, 2, 5)


def test_star_prefixed_field_is_unrestricted_so_and_applies() -> None:
    s = NCronTab.parse("0 0 0 */2 * Mon")  # '*/2' starts with '*': AND (odd days that are Mondays)
    assert not s.day_restricted
    assert s.next_after(utc(2024, 1, 1)) == utc(2024, 1, 15)  # Jan 1 excluded (strictly after), 15th is Mon
    s2 = NCronTab.parse("0 0 0 13 * *")
    assert s2.next_after(utc(2024, 1, 1)) == utc(2024, 1, 13)


def test_matches() -> None:
    s = NCronTab.parse("30 15 10 * * Mon-Fri")
    assert s.matches(utc(2024, 1, 1, 10, 15, 30))  # Monday
    assert not s.matches(utc(2024, 1, 6, 10, 15, 30))  # Saturday
    assert not s.matches(utc(2024, 1, 1, 10, 15, 31))


def test_same_timezone_out_and_evaluated_in_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    after = datetime(2024, 1, 1, 11, 0, 0, tzinfo=plus2)  # 09:00 UTC
    result = nxt("0 0 10 * * *", after)  # 10:00 UTC
    assert result.tzinfo == plus2
    assert result == utc(2024, 1, 1, 10, 0, 0)
    assert result.hour == 12


def test_consecutive_occurrences() -> None:
    s = NCronTab.parse("0 0 */8 * * *")
    t = utc(2024, 2, 28, 23)
    seen = []
    for _ in range(5):
        t = s.next_after(t)
        seen.append(t)
    assert seen == [utc(2024, 2, 29, 0), utc(2024, 2, 29, 8), utc(2024, 2, 29, 16), utc(2024, 3, 1), utc(2024, 3, 1, 8)]


def test_every_result_matches_and_nothing_is_skipped() -> None:
    s = NCronTab.parse("*/20 */7 1-3 * * *")
    t = utc(2024, 1, 1)
    brute = t
    for _ in range(50):
        t = s.next_after(t)
        assert s.matches(t)
        brute += timedelta(seconds=1)
        while not s.matches(brute):
            brute += timedelta(seconds=1)
        assert brute == t


def test_is_fast() -> None:
    every_second = NCronTab.parse("* * * * * *")
    leap = NCronTab.parse("0 0 0 29 Feb *")
    started = time.perf_counter()
    t = utc(2024, 1, 1)
    for _ in range(10_000):
        t = every_second.next_after(t)
    for _ in range(50):
        leap.next_after(utc(2024, 3, 1))
    assert time.perf_counter() - started < 2.0
