"""NCRONTAB as the Functions host reads it (shared.ncrontab): grammar, errors, next occurrence.

Expected values come from NCrontab's own test suite (CrontabScheduleTests), the Azure Functions
timer trigger documentation, and NCrontab's source behaviour (range swap, step < 1, no ``7``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from shared.ncrontab import FIELD_NAMES, NCronTab, NCronTabError, NoOccurrenceError


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def nxt(expr: str, dt: datetime) -> datetime:
    return NCronTab.parse(expr).next_after(dt)


def dmy(text: str) -> datetime:
    """NCrontab's test time format, ``dd/MM/yyyy HH:mm:ss``, as UTC."""
    return datetime.strptime(text, "%d/%m/%Y %H:%M:%S").replace(tzinfo=UTC)


# --- NCrontab's own evaluation table (CrontabScheduleTests.Evaluations) ---------------------------
# (start, expression, expected next); five-field rows are classic cron, six-field rows have seconds.
NCRONTAB_EVALUATIONS = [
    ("01/01/2003 00:00:00", "* * * * *", "01/01/2003 00:01:00"),
    ("01/01/2003 00:01:00", "* * * * *", "01/01/2003 00:02:00"),
    ("01/01/2003 00:02:00", "* * * * *", "01/01/2003 00:03:00"),
    ("01/01/2003 00:59:00", "* * * * *", "01/01/2003 01:00:00"),
    ("01/01/2003 01:59:00", "* * * * *", "01/01/2003 02:00:00"),
    ("01/01/2003 23:59:00", "* * * * *", "02/01/2003 00:00:00"),
    ("31/12/2003 23:59:00", "* * * * *", "01/01/2004 00:00:00"),
    ("28/02/2003 23:59:00", "* * * * *", "01/03/2003 00:00:00"),
    ("28/02/2004 23:59:00", "* * * * *", "29/02/2004 00:00:00"),
    # seconds
    ("01/01/2003 00:00:00", "45 * * * * *", "01/01/2003 00:00:45"),
    ("01/01/2003 00:00:00", "45-47,48,49 * * * * *", "01/01/2003 00:00:45"),
    ("01/01/2003 00:00:45", "45-47,48,49 * * * * *", "01/01/2003 00:00:46"),
    ("01/01/2003 00:00:46", "45-47,48,49 * * * * *", "01/01/2003 00:00:47"),
    ("01/01/2003 00:00:47", "45-47,48,49 * * * * *", "01/01/2003 00:00:48"),
    ("01/01/2003 00:00:48", "45-47,48,49 * * * * *", "01/01/2003 00:00:49"),
    ("01/01/2003 00:00:49", "45-47,48,49 * * * * *", "01/01/2003 00:01:45"),
    ("01/01/2003 00:00:00", "2/5 * * * * *", "01/01/2003 00:00:02"),
    ("01/01/2003 00:00:02", "2/5 * * * * *", "01/01/2003 00:00:07"),
    ("01/01/2003 00:00:50", "2/5 * * * * *", "01/01/2003 00:00:52"),
    ("01/01/2003 00:00:52", "2/5 * * * * *", "01/01/2003 00:00:57"),
    ("01/01/2003 00:00:57", "2/5 * * * * *", "01/01/2003 00:01:02"),
    ("24/02/2021 09:50:35", "* 0-1 10 * * *", "24/02/2021 10:00:00"),  # NCrontab issue 90
    # minutes
    ("01/01/2003 00:00:00", "45 * * * *", "01/01/2003 00:45:00"),
    ("01/01/2003 00:00:00", "45-47,48,49 * * * *", "01/01/2003 00:45:00"),
    ("01/01/2003 00:45:00", "45-47,48,49 * * * *", "01/01/2003 00:46:00"),
    ("01/01/2003 00:46:00", "45-47,48,49 * * * *", "01/01/2003 00:47:00"),
    ("01/01/2003 00:47:00", "45-47,48,49 * * * *", "01/01/2003 00:48:00"),
    ("01/01/2003 00:48:00", "45-47,48,49 * * * *", "01/01/2003 00:49:00"),
    ("01/01/2003 00:49:00", "45-47,48,49 * * * *", "01/01/2003 01:45:00"),
    ("01/01/2003 00:00:00", "2/5 * * * *", "01/01/2003 00:02:00"),
    ("01/01/2003 00:02:00", "2/5 * * * *", "01/01/2003 00:07:00"),
    ("01/01/2003 00:50:00", "2/5 * * * *", "01/01/2003 00:52:00"),
    ("01/01/2003 00:52:00", "2/5 * * * *", "01/01/2003 00:57:00"),
    ("01/01/2003 00:57:00", "2/5 * * * *", "01/01/2003 01:02:00"),
    ("24/02/2021 09:50:35", "* * 10 * * *", "24/02/2021 10:00:00"),
    ("24/02/2021 09:50:35", "* 55 * * * *", "24/02/2021 09:55:00"),
    ("01/01/2003 00:00:30", "3 45 * * * *", "01/01/2003 00:45:03"),
    ("01/01/2003 00:00:30", "6 45-47,48,49 * * * *", "01/01/2003 00:45:06"),
    ("01/01/2003 00:45:30", "6 45-47,48,49 * * * *", "01/01/2003 00:46:06"),
    ("01/01/2003 00:46:30", "6 45-47,48,49 * * * *", "01/01/2003 00:47:06"),
    ("01/01/2003 00:47:30", "6 45-47,48,49 * * * *", "01/01/2003 00:48:06"),
    ("01/01/2003 00:48:30", "6 45-47,48,49 * * * *", "01/01/2003 00:49:06"),
    ("01/01/2003 00:49:30", "6 45-47,48,49 * * * *", "01/01/2003 01:45:06"),
    ("01/01/2003 00:00:30", "9 2/5 * * * *", "01/01/2003 00:02:09"),
    ("01/01/2003 00:02:30", "9 2/5 * * * *", "01/01/2003 00:07:09"),
    ("01/01/2003 00:50:30", "9 2/5 * * * *", "01/01/2003 00:52:09"),
    ("01/01/2003 00:52:30", "9 2/5 * * * *", "01/01/2003 00:57:09"),
    ("01/01/2003 00:57:30", "9 2/5 * * * *", "01/01/2003 01:02:09"),
    # hours
    ("20/12/2003 10:00:00", " * 3/4 * * *", "20/12/2003 11:00:00"),
    ("20/12/2003 00:30:00", " * 3   * * *", "20/12/2003 03:00:00"),
    ("20/12/2003 01:45:00", "30 3   * * *", "20/12/2003 03:30:00"),
    # day of month
    ("07/01/2003 00:00:00", "30  *  1 * *", "01/02/2003 00:30:00"),
    ("01/02/2003 00:30:00", "30  *  1 * *", "01/02/2003 01:30:00"),
    ("01/01/2003 00:00:00", "10  * 22    * *", "22/01/2003 00:10:00"),
    ("01/01/2003 00:00:00", "30 23 19    * *", "19/01/2003 23:30:00"),
    ("01/01/2003 00:00:00", "30 23 21    * *", "21/01/2003 23:30:00"),
    ("01/01/2003 00:01:00", " *  * 21    * *", "21/01/2003 00:00:00"),
    ("10/07/2003 00:00:00", " *  * 30,31 * *", "30/07/2003 00:00:00"),
    # month rollovers for months of 28, 29, 30 and 31 days
    ("28/02/2002 23:59:59", "* * * 3 *", "01/03/2002 00:00:00"),
    ("29/02/2004 23:59:59", "* * * 3 *", "01/03/2004 00:00:00"),
    ("31/03/2002 23:59:59", "* * * 4 *", "01/04/2002 00:00:00"),
    ("30/04/2002 23:59:59", "* * * 5 *", "01/05/2002 00:00:00"),
    # days 30 and 31
    ("01/01/2000 00:00:00", "0 0 15,30,31 * *", "15/01/2000 00:00:00"),
    ("15/01/2000 00:00:00", "0 0 15,30,31 * *", "30/01/2000 00:00:00"),
    ("30/01/2000 00:00:00", "0 0 15,30,31 * *", "31/01/2000 00:00:00"),
    ("31/01/2000 00:00:00", "0 0 15,30,31 * *", "15/02/2000 00:00:00"),
    ("15/02/2000 00:00:00", "0 0 15,30,31 * *", "15/03/2000 00:00:00"),
    ("15/03/2000 00:00:00", "0 0 15,30,31 * *", "30/03/2000 00:00:00"),
    ("30/03/2000 00:00:00", "0 0 15,30,31 * *", "31/03/2000 00:00:00"),
    ("31/03/2000 00:00:00", "0 0 15,30,31 * *", "15/04/2000 00:00:00"),
    ("15/04/2000 00:00:00", "0 0 15,30,31 * *", "30/04/2000 00:00:00"),
    ("30/04/2000 00:00:00", "0 0 15,30,31 * *", "15/05/2000 00:00:00"),
    ("15/05/2000 00:00:00", "0 0 15,30,31 * *", "30/05/2000 00:00:00"),
    ("30/05/2000 00:00:00", "0 0 15,30,31 * *", "31/05/2000 00:00:00"),
    ("31/05/2000 00:00:00", "0 0 15,30,31 * *", "15/06/2000 00:00:00"),
    ("15/06/2000 00:00:00", "0 0 15,30,31 * *", "30/06/2000 00:00:00"),
    ("30/06/2000 00:00:00", "0 0 15,30,31 * *", "15/07/2000 00:00:00"),
    ("15/07/2000 00:00:00", "0 0 15,30,31 * *", "30/07/2000 00:00:00"),
    ("30/07/2000 00:00:00", "0 0 15,30,31 * *", "31/07/2000 00:00:00"),
    ("31/07/2000 00:00:00", "0 0 15,30,31 * *", "15/08/2000 00:00:00"),
    ("15/08/2000 00:00:00", "0 0 15,30,31 * *", "30/08/2000 00:00:00"),
    ("30/08/2000 00:00:00", "0 0 15,30,31 * *", "31/08/2000 00:00:00"),
    ("31/08/2000 00:00:00", "0 0 15,30,31 * *", "15/09/2000 00:00:00"),
    ("15/09/2000 00:00:00", "0 0 15,30,31 * *", "30/09/2000 00:00:00"),
    ("30/09/2000 00:00:00", "0 0 15,30,31 * *", "15/10/2000 00:00:00"),
    ("15/10/2000 00:00:00", "0 0 15,30,31 * *", "30/10/2000 00:00:00"),
    ("30/10/2000 00:00:00", "0 0 15,30,31 * *", "31/10/2000 00:00:00"),
    ("31/10/2000 00:00:00", "0 0 15,30,31 * *", "15/11/2000 00:00:00"),
    ("15/11/2000 00:00:00", "0 0 15,30,31 * *", "30/11/2000 00:00:00"),
    ("30/11/2000 00:00:00", "0 0 15,30,31 * *", "15/12/2000 00:00:00"),
    ("15/12/2000 00:00:00", "0 0 15,30,31 * *", "30/12/2000 00:00:00"),
    ("30/12/2000 00:00:00", "0 0 15,30,31 * *", "31/12/2000 00:00:00"),
    ("31/12/2000 00:00:00", "0 0 15,30,31 * *", "15/01/2001 00:00:00"),
    # other months, year rollover, names
    ("01/12/2003 05:00:00", "10 * * 6 *", "01/06/2004 00:10:00"),
    ("04/01/2003 00:00:00", " 1 2 3 * *", "03/02/2003 02:01:00"),
    ("01/07/2002 05:00:00", "10 * * February,April-Jun *", "01/02/2003 00:10:00"),
    ("01/01/2003 00:00:00", "0 12 1 6 *", "01/06/2003 12:00:00"),
    ("11/09/1988 14:23:00", "* 12 1 6 *", "01/06/1989 12:00:00"),
    ("11/03/1988 14:23:00", "* 12 1 6 *", "01/06/1988 12:00:00"),
    ("11/03/1988 14:23:00", "* 2,4-8,15 * 6 *", "01/06/1988 02:00:00"),
    (
        "11/03/1988 14:23:00",
        "20 * * january,FeB,Mar,april,May,JuNE,July,Augu,SEPT-October,Nov,DECEM *",
        "11/03/1988 15:20:00",
    ),
    # days of the week
    ("26/06/2003 10:00:00", "30 6 * * 0", "29/06/2003 06:30:00"),
    ("26/06/2003 10:00:00", "30 6 * * sunday", "29/06/2003 06:30:00"),
    ("26/06/2003 10:00:00", "30 6 * * SUNDAY", "29/06/2003 06:30:00"),
    ("19/06/2003 00:00:00", "1 12 * * 2", "24/06/2003 12:01:00"),
    ("24/06/2003 12:01:00", "1 12 * * 2", "01/07/2003 12:01:00"),
    ("01/06/2003 14:55:00", "15 18 * * Mon", "02/06/2003 18:15:00"),
    ("02/06/2003 18:15:00", "15 18 * * Mon", "09/06/2003 18:15:00"),
    ("09/06/2003 18:15:00", "15 18 * * Mon", "16/06/2003 18:15:00"),
    ("16/06/2003 18:15:00", "15 18 * * Mon", "23/06/2003 18:15:00"),
    ("23/06/2003 18:15:00", "15 18 * * Mon", "30/06/2003 18:15:00"),
    ("30/06/2003 18:15:00", "15 18 * * Mon", "07/07/2003 18:15:00"),
    ("01/01/2003 00:00:00", "* * * * Mon", "06/01/2003 00:00:00"),
    ("01/01/2003 12:00:00", "45 16 1 * Mon", "01/09/2003 16:45:00"),  # day AND day-of-week
    ("01/09/2003 23:45:00", "45 16 1 * Mon", "01/12/2003 16:45:00"),
    # leap years
    ("01/01/2000 12:00:00", "1 12 29 2 *", "29/02/2000 12:01:00"),
    ("29/02/2000 12:01:00", "1 12 29 2 *", "29/02/2004 12:01:00"),
    ("29/02/2004 12:01:00", "1 12 29 2 *", "29/02/2008 12:01:00"),
    # non-leap years
    ("01/01/2000 12:00:00", "1 12 28 2 *", "28/02/2000 12:01:00"),
    ("28/02/2000 12:01:00", "1 12 28 2 *", "28/02/2001 12:01:00"),
    ("28/02/2001 12:01:00", "1 12 28 2 *", "28/02/2002 12:01:00"),
    ("28/02/2002 12:01:00", "1 12 28 2 *", "28/02/2003 12:01:00"),
    ("28/02/2003 12:01:00", "1 12 28 2 *", "28/02/2004 12:01:00"),
    ("29/02/2004 12:01:00", "1 12 28 2 *", "28/02/2005 12:01:00"),
    ("01/01/2000 12:00:00", "40 14/1 * * *", "01/01/2000 14:40:00"),
    ("01/01/2000 14:40:00", "40 14/1 * * *", "01/01/2000 15:40:00"),
]


@pytest.mark.parametrize(("start", "expr", "expected"), NCRONTAB_EVALUATIONS)
def test_ncrontab_evaluation_table(start: str, expr: str, expected: str) -> None:
    assert nxt(expr, dmy(start)) == dmy(expected)


# NCrontab's FiniteOccurrences: no occurrence before the end time (exclusive).
@pytest.mark.parametrize(
    ("expr", "start", "end"),
    [
        (" *  * * * *  ", "01/01/2003 00:00:00", "01/01/2003 00:00:00"),
        (" *  * * * *  ", "31/12/2002 23:59:59", "01/01/2003 00:00:00"),
        (" *  * * * Mon", "31/12/2002 23:59:59", "01/01/2003 00:00:00"),
        (" *  * * * Mon", "01/01/2003 00:00:00", "02/01/2003 00:00:00"),
        (" *  * * * Mon", "01/01/2003 00:00:00", "02/01/2003 12:00:00"),
        ("30 12 * * Mon", "01/01/2003 00:00:00", "06/01/2003 12:00:00"),
        (" *  *  * * * *  ", "01/01/2003 00:00:00", "01/01/2003 00:00:00"),
        (" *  *  * * * *  ", "31/12/2002 23:59:59", "01/01/2003 00:00:00"),
        (" *  *  * * * Mon", "31/12/2002 23:59:59", "01/01/2003 00:00:00"),
        (" *  *  * * * Mon", "01/01/2003 00:00:00", "02/01/2003 00:00:00"),
        (" *  *  * * * Mon", "01/01/2003 00:00:00", "02/01/2003 12:00:00"),
        ("10 30 12 * * Mon", "01/01/2003 00:00:00", "06/01/2003 12:00:10"),
    ],
)
def test_ncrontab_finite_occurrences(expr: str, start: str, end: str) -> None:
    assert nxt(expr, dmy(start)) >= dmy(end)


# --- the Azure Functions timer trigger documentation's examples --------------------------------


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 */5 * * * *", utc(2024, 1, 1, 18, 55), utc(2024, 1, 1, 19, 0)),  # "18:55:00 ... next is 19:00:00"
        ("0 5 * * * *", utc(2024, 1, 1, 18, 5), utc(2024, 1, 1, 19, 5)),
        ("0 * 5 * * *", utc(2024, 1, 1, 5, 59), utc(2024, 1, 2, 5, 0)),
        ("5-7 * * * * *", utc(2024, 1, 1, 0, 0, 6), utc(2024, 1, 1, 0, 0, 7)),
        ("5,8,10 * * * * *", utc(2024, 1, 1, 0, 0, 8), utc(2024, 1, 1, 0, 0, 10)),
        ("0 0 * * * *", utc(2024, 1, 1, 10, 30), utc(2024, 1, 1, 11, 0)),
        ("0 0 */2 * * *", utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 12, 0)),
        ("0 0 9-17 * * *", utc(2024, 1, 1, 17, 0), utc(2024, 1, 2, 9, 0)),
        ("0 30 9 * * *", utc(2024, 1, 1, 9, 30), utc(2024, 1, 2, 9, 30)),
        ("0 30 9 * * 1-5", utc(2024, 1, 5, 9, 30), utc(2024, 1, 8, 9, 30)),  # Friday -> Monday
        ("0 30 9 * Jan Mon", utc(2024, 1, 29, 9, 30), utc(2025, 1, 6, 9, 30)),  # January's last Monday
        ("0 0 15 * * *", utc(2024, 1, 1, 12), utc(2024, 1, 1, 15)),
    ],
)
def test_azure_documentation_examples(expr: str, after: datetime, expected: datetime) -> None:
    assert nxt(expr, after) == expected


# --- grammar ----------------------------------------------------------------------------------


def test_star_covers_every_value_and_day_of_week_is_0_to_6() -> None:
    s = NCronTab.parse("* * * * * *")
    assert s.seconds == tuple(range(60)) and s.minutes == tuple(range(60)) and s.hours == tuple(range(24))
    assert s.days == tuple(range(1, 32)) and s.months == tuple(range(1, 13))
    assert s.days_of_week == tuple(range(7))
    assert s.includes_seconds


def test_values_lists_ranges_and_steps() -> None:
    s = NCronTab.parse("5 1,2,30 9-17 1,15 6 1-5")
    assert (s.seconds, s.minutes, s.hours, s.days, s.months, s.days_of_week) == (
        (5,),
        (1, 2, 30),
        tuple(range(9, 18)),
        (1, 15),
        (6,),
        (1, 2, 3, 4, 5),
    )
    s = NCronTab.parse("*/15 10-50/20 3/6 */10 */4 */2")
    assert s.seconds == (0, 15, 30, 45) and s.minutes == (10, 30, 50) and s.hours == (3, 9, 15, 21)
    assert s.days == (1, 11, 21, 31) and s.months == (1, 5, 9) and s.days_of_week == (0, 2, 4, 6)
    assert NCronTab.parse("0,10-12,50-59/5 * * * * *").seconds == (0, 10, 11, 12, 50, 55)


def test_five_fields_are_classic_cron_at_second_zero() -> None:
    s = NCronTab.parse("*/5 * * * *")
    assert s.seconds == (0,) and not s.includes_seconds
    assert s.minutes == tuple(range(0, 60, 5))
    assert nxt("*/5 * * * *", utc(2024, 1, 1, 10, 2, 30)) == utc(2024, 1, 1, 10, 5, 0)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("sunday", (0,)),
        ("SUNDAY", (0,)),
        ("Sun", (0,)),
        ("s", (0,)),
        ("Sa", (6,)),
        ("Satur", (6,)),
        ("T", (2,)),
        ("Th", (4,)),
        ("thurs", (4,)),
        ("W", (3,)),
        ("Mon-Fri", (1, 2, 3, 4, 5)),
        ("Fri-Mon", (1, 2, 3, 4, 5)),
        ("Mon/2", (1, 3, 5)),
        ("0,Wednesday", (0, 3)),
    ],
)
def test_day_names_are_case_insensitive_prefixes_of_any_length(field: str, expected: tuple[int, ...]) -> None:
    assert NCronTab.parse(f"0 0 0 * * {field}").days_of_week == expected


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("January", (1,)),
        ("February", (2,)),
        ("Augu", (8,)),
        ("DECEM", (12,)),
        ("sept", (9,)),
        ("J", (1,)),
        ("Ju", (6,)),
        ("Jul", (7,)),
        ("M", (3,)),
        ("Ma", (3,)),
        ("May", (5,)),
        ("A", (4,)),
        ("Au", (8,)),
        ("Feb-Apr/2", (2, 4)),
        ("Jan/3", (1, 4, 7, 10)),
        ("Nov-2", (2, 3, 4, 5, 6, 7, 8, 9, 10, 11)),
    ],
)
def test_month_names_take_the_first_name_the_prefix_begins(field: str, expected: tuple[int, ...]) -> None:
    assert NCronTab.parse(f"0 0 0 1 {field} *").months == expected


@pytest.mark.parametrize(
    ("expr", "attr", "expected"),
    [
        ("0 0 5-1 * * *", "hours", (1, 2, 3, 4, 5)),  # NCrontab swaps a reversed range
        ("0 0 23-0/6 * * *", "hours", (0, 6, 12, 18)),
        ("*/0 * * * * *", "seconds", tuple(range(60))),  # a step below 1 counts as 1
        ("10/0 * * * * *", "seconds", tuple(range(10, 60))),
        ("*/-3 * * * * *", "seconds", tuple(range(60))),
        ("*/+20 * * * * *", "seconds", (0, 20, 40)),
        ("07 007 0023 * * *", "minutes", (7,)),  # leading zeros
        ("0 59/5 * * * *", "minutes", (59,)),
        ("0 0 0 31/1 * *", "days", (31,)),
        ("0 0 0 * * 6", "days_of_week", (6,)),
    ],
)
def test_ncrontab_value_quirks(expr: str, attr: str, expected: tuple[int, ...]) -> None:
    assert getattr(NCronTab.parse(expr), attr) == expected


def test_fields_are_split_on_spaces_only() -> None:
    s = NCronTab.parse("  0  */5  *   * * *  ")
    assert s.minutes == tuple(range(0, 60, 5))
    assert str(s) == "  0  */5  *   * * *  "
    with pytest.raises(NCronTabError, match="spaces only"):
        NCronTab.parse("0\t*/5 * * * *")
    with pytest.raises(NCronTabError, match="spaces only"):
        NCronTab.parse("0 */5 * * * *\n*")
    # .NET int.Parse lets white space trail a number, so a tab after a value is accepted
    assert NCronTab.parse("0 0 12 * * 1\t").days_of_week == (1,)


# --- errors name the field ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "field", "fragments"),
    [
        # NCrontab's BadField cases, classic and six-field
        ("bad * * * *", "minute", ["'bad'", "number 0-59"]),
        ("bad * * * * *", "second", ["'bad'"]),
        ("* bad * * * *", "minute", ["'bad'"]),
        ("* bad * * *", "hour", ["'bad'", "number 0-23"]),
        ("* * bad * * *", "hour", ["'bad'"]),
        ("* * bad * *", "day", ["'bad'", "number 1-31"]),
        ("* * * bad * *", "day", ["'bad'"]),
        ("* * * bad *", "month", ["'bad'", "month name or number 1-12"]),
        ("* * * * bad *", "month", ["'bad'"]),
        ("* * * * mon,bad,wed", "day-of-week", ["'bad'", "day name or number 0-6"]),
        ("* * * * * mon,bad,wed", "day-of-week", ["'bad'"]),
        ("* 1,2,3,456,7,8,9 * * *", "hour", ["456", "out of range 0-23"]),
        ("* * 1,2,3,456,7,8,9 * * *", "hour", ["456"]),
        ("* 1,Z,3,4 * * *", "hour", ["'Z'"]),
        ("* * 1,Z,3,4 * * *", "hour", ["'Z'"]),
        ("* 1/Z * * *", "hour", ["step 'Z'"]),
        ("* * 1/Z * * *", "hour", ["step 'Z'"]),
        ("* 3-l2 * * *", "hour", ["'l2' in '3-l2'"]),
        ("* * 3-l2 * * *", "hour", ["'l2'"]),
        # ranges of each field
        ("60 * * * * *", "second", ["60 is out of range 0-59"]),
        ("0 60 * * * *", "minute", ["60 is out of range 0-59"]),
        ("0 0 24 * * *", "hour", ["24 is out of range 0-23"]),
        ("0 0 0 0 * *", "day", ["0 is out of range 1-31"]),
        ("0 0 0 32 * *", "day", ["32"]),
        ("0 0 0 1-32 * *", "day", ["32 in '1-32'"]),
        ("0 0 0 0/5 * *", "day", ["0 in '0/5'"]),
        ("0 0 0 * 13 *", "month", ["13 is out of range 1-12"]),
        ("0 0 0 * 0 *", "month", ["0 is out of range 1-12"]),
        ("0 0 0 * * 7", "day-of-week", ["7 is out of range 0-6", "Sunday is 0"]),
        ("0 0 0 * * 5-7", "day-of-week", ["7 in '5-7'"]),
        ("0 0 0 * * 99999999999", "day-of-week", ["out of range"]),
        # names and syntax NCrontab does not know
        ("0 0 0 * * Funday", "day-of-week", ["'Funday' is not a day name or number 0-6"]),
        ("0 0 0 * * Sundays", "day-of-week", ["'Sundays'"]),
        ("0 0 0 * Foo *", "month", ["'Foo' is not a month name or number 1-12"]),
        ("0 0 0 * Januar1 *", "month", ["'Januar1'"]),
        ("0 0 0 * * Jan", "day-of-week", ["'Jan'"]),
        ("0 0 0 * Mon *", "month", ["'Mon'"]),
        ("0 0 Mon * * *", "hour", ["'Mon'"]),
        ("0 0 0 ? * Mon", "day", ["'?'"]),
        ("0 0 0 L * *", "day", ["'L'"]),
        ("0 0 0 * * 5#2", "day-of-week", ["'5#2'"]),
        ("0 0 0 15W * *", "day", ["'15W'"]),
        ("0 0 0 * * ²", "day-of-week", ["'²'"]),
        ("0 0 0 * * \uff15", "day-of-week", ["'\uff15'"]),  # a full-width digit
        ("0 1,,2 * * * *", "minute", ["empty item"]),
        ("0 1, * * * *", "minute", ["empty item"]),
        ("0 ,1 * * * *", "minute", ["empty item"]),
        ("*/ * * * * *", "second", ["step ''"]),
        ("1/2/3 * * * * *", "second", ["step '2/3'"]),
        ("/5 * * * * *", "second", ["'/5'"]),
        ("0 -1 * * * *", "minute", ["'-1'"]),
        ("0 5- * * * *", "minute", ["missing value in '5-'"]),
        ("0 1-2-3 * * *", "hour", ["'2-3' in '1-2-3'"]),
        ("0 *-5 * * * *", "minute", ["'*' in '*-5'"]),
        ("** * * * * *", "second", ["'**'"]),
        ("*/99999999999 * * * * *", "second", ["step"]),
    ],
)
def test_errors_name_the_field(expr: str, field: str, fragments: list[str]) -> None:
    with pytest.raises(NCronTabError) as info:
        NCronTab.parse(expr)
    assert info.value.field == field
    message = str(info.value)
    assert f"{field}: " in message
    for fragment in fragments:
        assert fragment in info.value.problem, (fragment, info.value.problem)


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("", "got 0"),
        ("   ", "got 0"),
        ("* * * *", "got 4"),
        ("* * * * * * *", "got 7"),
        ("0 0 0 * * * 2024", "got 7"),  # Quartz's year field
        ("00:05:00", "TimeSpan"),
        ("1.00:00:00", "TimeSpan"),
    ],
)
def test_field_count_errors(expr: str, fragment: str) -> None:
    with pytest.raises(NCronTabError) as info:
        NCronTab.parse(expr)
    assert info.value.field is None
    assert "expected 6 fields" in info.value.problem and fragment in info.value.problem


def test_timespan_schedules_are_refused_with_the_reason() -> None:
    with pytest.raises(NCronTabError, match="App Service plan"):
        NCronTab.parse("00:05:00")


def test_non_string_is_rejected() -> None:
    with pytest.raises(NCronTabError, match="must be a string"):
        NCronTab.parse(5)  # type: ignore[arg-type]


def test_naive_datetime_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        NCronTab.parse("* * * * * *").next_after(datetime(2024, 1, 1))


# --- schedules that never fire -----------------------------------------------------------------


@pytest.mark.parametrize("expr", ["* * 31 Feb *", "* * * 31 Feb *", "0 0 0 30 Feb *", "0 0 0 31 Apr,Jun,Sep,Nov *"])
def test_never_firing_schedule_is_refused_by_default_and_allowed_on_request(expr: str) -> None:
    with pytest.raises(NCronTabError) as info:
        NCronTab.parse(expr)
    assert info.value.field == "day" and "never" in info.value.problem
    schedule = NCronTab.parse(expr, allow_never=True)  # as the host: accepted, never fires
    assert schedule.never_fires
    with pytest.raises(NoOccurrenceError):
        schedule.next_after(utc(2001, 1, 1))
    assert list(schedule.occurrences_after(utc(2001, 1, 1))) == []


def test_impossible_day_with_a_weekday_is_still_impossible() -> None:
    # Vixie cron's OR rule would fire on February Mondays; NCrontab's AND rule never fires.
    with pytest.raises(NCronTabError, match="never"):
        NCronTab.parse("0 0 0 30 Feb Mon")


def test_every_real_date_meets_every_weekday_within_400_years() -> None:
    for month in range(1, 13):
        for day in range(1, 32):
            try:
                date(2000, month, day)
            except ValueError:
                continue
            weekdays = {date(year, month, day).weekday() for year in range(2000, 2400) if _valid(year, month, day)}
            assert len(weekdays) == 7, (month, day)


def _valid(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


# --- next occurrence ---------------------------------------------------------------------------


def test_day_and_day_of_week_must_both_match() -> None:
    s = NCronTab.parse("0 0 0 13 * Fri")
    # 2024-09-13 is the first Friday the 13th after 2024-01-01 (Jan 5 is a Friday, Jan 13 a Saturday)
    assert s.next_after(utc(2024, 1, 1)) == utc(2024, 9, 13)
    assert s.next_after(utc(2024, 9, 13)) == utc(2024, 12, 13)
    assert nxt("0 45 16 1 * Mon", utc(2003, 1, 1)) == utc(2003, 9, 1, 16, 45)
    assert nxt("0 0 0 */2 * Mon", utc(2024, 1, 1)) == utc(2024, 1, 15)


def test_strictly_after_and_microseconds_ignored() -> None:
    assert nxt("* * * * * *", utc(2024, 1, 1)) == utc(2024, 1, 1, 0, 0, 1)
    assert nxt("0 * * * * *", utc(2024, 1, 1)) == utc(2024, 1, 1, 0, 1)
    assert nxt("* * * * * *", utc(2024, 1, 1) + timedelta(microseconds=500)) == utc(2024, 1, 1, 0, 0, 1)
    assert nxt("0 * * * * *", utc(2024, 1, 1, 0, 0, 59) + timedelta(microseconds=999_999)) == utc(2024, 1, 1, 0, 1)


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("0 0 0 31 * *", utc(2024, 4, 1), utc(2024, 5, 31)),
        ("59 59 23 31 12 *", utc(2023, 12, 31, 23, 59, 59), utc(2024, 12, 31, 23, 59, 59)),
        ("* * * * * *", utc(2024, 12, 31, 23, 59, 59), utc(2025, 1, 1)),
        ("0 0 0 29 Feb *", utc(2024, 3, 1), utc(2028, 2, 29)),
        ("0 0 0 29 Feb *", utc(2096, 3, 1), utc(2104, 2, 29)),  # 2100 is not a leap year
        ("0 0 22-23 * * *", utc(2024, 1, 31, 23), utc(2024, 2, 1, 22)),
        ("0 0 0 29 Feb Mon", utc(2024, 1, 1), utc(2044, 2, 29)),
    ],
)
def test_boundaries(expr: str, after: datetime, expected: datetime) -> None:
    assert nxt(expr, after) == expected


def test_the_calendar_ends_in_9999() -> None:
    # NCrontab's GetNextOccurrences_NextOccurrenceInvalidTime and GetNextOccurrence cases
    s = NCronTab.parse("0 0 29 Feb Mon")
    assert list(s.occurrences_after(utc(9988, 1, 1)))[-1] == utc(9988, 2, 29)
    assert s.next_after(utc(9000, 1, 1)) == utc(9008, 2, 29)
    with pytest.raises(NoOccurrenceError):
        s.next_after(utc(9989, 1, 1))
    with pytest.raises(NoOccurrenceError):
        nxt("* * * * * *", utc(9999, 12, 31, 23, 59, 59))
    assert nxt("* * * * * *", utc(9999, 12, 31, 23, 59, 58)) == utc(9999, 12, 31, 23, 59, 59)


def test_evaluated_in_utc_and_returned_in_the_callers_timezone() -> None:
    plus2 = timezone(timedelta(hours=2))
    result = nxt("0 0 10 * * *", datetime(2024, 1, 1, 11, 0, tzinfo=plus2))  # 09:00 UTC
    assert result.tzinfo == plus2 and result == utc(2024, 1, 1, 10) and result.hour == 12
    with pytest.raises(NoOccurrenceError, match="not representable"):
        nxt("0 0 23 * * *", datetime(9999, 12, 31, 1, tzinfo=plus2))


def test_matches() -> None:
    s = NCronTab.parse("30 15 10 * * Mon-Fri")
    assert s.matches(utc(2024, 1, 1, 10, 15, 30))  # Monday
    assert not s.matches(utc(2024, 1, 6, 10, 15, 30))  # Saturday
    assert not s.matches(utc(2024, 1, 1, 10, 15, 31))


def test_every_second_of_a_window_agrees() -> None:
    s = NCronTab.parse("*/20 */7 1-3 * * *")
    t = utc(2024, 1, 1)
    brute = t
    for _ in range(200):
        t = s.next_after(t)
        brute += timedelta(seconds=1)
        while not s.matches(brute):
            brute += timedelta(seconds=1)
        assert brute == t


def test_field_names_are_the_documented_ones() -> None:
    assert FIELD_NAMES == ("second", "minute", "hour", "day", "month", "day-of-week")
