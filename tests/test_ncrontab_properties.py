"""Property tests for shared.ncrontab: generated expressions against an independent brute force.

Each expression is generated together with the values it must select (computed here from the
NCRONTAB rules, not by the parser), and each next occurrence is checked against a brute-force
walk over days and then every second of the matching day: the result is strictly after the
start, matches every field, and no earlier second does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from shared.ncrontab import FIELD_NAMES, NCronTab, NCronTabError, NoOccurrenceError

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]  # fmt: skip
DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
BOUNDS = [(0, 59, None), (0, 59, None), (0, 23, None), (1, 31, None), (1, 12, MONTHS), (0, 6, DAYS)]


@dataclass(frozen=True)
class Generated:
    expression: str
    fields: tuple[frozenset[int], ...]  # second, minute, hour, day, month, day-of-week


@st.composite
def value_text(draw: st.DrawFn, index: int, value: int) -> str:
    low, _, names = BOUNDS[index]
    if names and draw(st.booleans()):
        name = names[value - low]
        prefix = name[: draw(st.integers(3, len(name)))]  # three letters or more never collide
        return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in prefix)
    return str(value).zfill(draw(st.integers(1, 3)))


@st.composite
def item(draw: st.DrawFn, index: int) -> tuple[str, set[int]]:
    low, high, _ = BOUNDS[index]
    values = st.integers(low, high)
    kind = draw(st.sampled_from(["star", "star-step", "value", "range", "range-step", "value-step"]))
    step = draw(st.integers(-2, high + 2))
    effective = max(step, 1)
    if kind == "star":
        return "*", set(range(low, high + 1))
    if kind == "star-step":
        return f"*/{step}", set(range(low, high + 1, effective))
    a = draw(values)
    if kind == "value":
        return draw(value_text(index, a)), {a}
    if kind == "value-step":
        return f"{draw(value_text(index, a))}/{step}", set(range(a, high + 1, effective))
    b = draw(values)
    text = f"{draw(value_text(index, a))}-{draw(value_text(index, b))}"
    lo, hi = min(a, b), max(a, b)  # NCrontab swaps a reversed range
    if kind == "range":
        return text, set(range(lo, hi + 1))
    return f"{text}/{step}", set(range(lo, hi + 1, effective))


@st.composite
def generated(draw: st.DrawFn) -> Generated:
    texts: list[str] = []
    fields: list[frozenset[int]] = []
    for index in range(6):
        items = draw(st.lists(item(index), min_size=1, max_size=3))
        texts.append(",".join(text for text, _ in items))
        fields.append(frozenset().union(*(values for _, values in items)))
    if draw(st.booleans()):  # the classic five-field form fires at second 0
        texts, fields[0] = texts[1:], frozenset({0})
    gaps = [" " * draw(st.integers(1, 3)) for _ in texts]
    expression = " " * draw(st.integers(0, 2)) + "".join(t + g for t, g in zip(texts, gaps, strict=True))
    return Generated(expression, tuple(fields))


def fires_ever(fields: tuple[frozenset[int], ...]) -> bool:
    return any(_is_date(2000, month, day) for month in fields[4] for day in fields[3])


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def brute_next(fields: tuple[frozenset[int], ...], after: datetime) -> datetime:
    """Walk day by day, then second by second through the first day that can fire."""
    seconds, minutes, hours, days, months, weekdays = fields
    day = after.date()
    while True:
        if day.month in months and day.day in days and (day.weekday() + 1) % 7 in weekdays:
            for h in (h for h in range(24) if h in hours):
                for m in (m for m in range(60) if m in minutes):
                    for s in (s for s in range(60) if s in seconds):
                        t = datetime(day.year, day.month, day.day, h, m, s, tzinfo=UTC)
                        if t > after:
                            return t
        day += timedelta(days=1)


# The issue's example: day 1 AND Monday, so 2003-09-01 16:45:00.
ISSUE_EXAMPLE = Generated(
    "0 45 16 1 * Mon",
    (frozenset({0}), frozenset({45}), frozenset({16}), frozenset({1}), frozenset(range(1, 13)), frozenset({1})),
)

starts = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 12, 31)).map(
    lambda t: t.replace(tzinfo=UTC)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated(), starts)
@example(ISSUE_EXAMPLE, datetime(2003, 1, 1, tzinfo=UTC))
def test_generated_expressions_parse_to_their_values_and_agree_with_brute_force(g: Generated, start: datetime) -> None:
    schedule = NCronTab.parse(g.expression, allow_never=True)
    parsed = (schedule.seconds, schedule.minutes, schedule.hours, schedule.days, schedule.months, schedule.days_of_week)
    assert parsed == tuple(tuple(sorted(values)) for values in g.fields), g.expression
    if not fires_ever(g.fields):
        assert schedule.never_fires
        return
    assert not schedule.never_fires
    found = schedule.next_after(start)
    assert found > start and schedule.matches(found)
    assert found == brute_next(g.fields, start), g.expression


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["* * * * * *", "*/7 * * * * *", "0,30 */3 * * * *", "5-9 59 * * * *", "0 0 * * * *"]), starts)
def test_every_second_in_a_window(expr: str, start: datetime) -> None:
    schedule = NCronTab.parse(expr)
    start = start.replace(microsecond=0)
    expected = [start + timedelta(seconds=n) for n in range(1, 7201)]
    expected = [t for t in expected if schedule.matches(t)]
    got: list[datetime] = []
    current = start
    while True:
        current = schedule.next_after(current)
        if current > start + timedelta(seconds=7200):
            break
        got.append(current)
    assert got == expected


@st.composite
def with_bad_field(draw: st.DrawFn) -> tuple[str, str]:
    good = draw(generated())
    parts = good.expression.split()
    bad = draw(
        st.sampled_from(["x", ",", "?", "L", "1,,2", "*/", "1-", "-1", "5#2", "**", "1/x", "60", "\u0661", "7-99"])
    )
    index = draw(st.integers(0, len(parts) - 1))
    parts[index] = bad
    offset = 6 - len(parts)
    return " ".join(parts), FIELD_NAMES[index + offset]


@settings(max_examples=150, deadline=None)
@given(with_bad_field())
def test_a_bad_field_is_named(case: tuple[str, str]) -> None:
    expr, field = case
    with pytest.raises(NCronTabError) as info:
        NCronTab.parse(expr, allow_never=True)
    assert info.value.field == field, (expr, info.value)
    assert str(info.value).startswith(f"invalid NCRONTAB expression {expr!r}: {field}: ")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789*/-,? \tabcdefgjlmnorstuwyFMJSL#²"), max_size=40))
def test_any_text_parses_or_raises_an_error_naming_its_field(text: str) -> None:
    try:
        schedule = NCronTab.parse(text)
    except NCronTabError as exc:
        assert exc.field in (*FIELD_NAMES, None)
        assert exc.problem and str(exc).startswith("invalid NCRONTAB expression")
    else:
        assert not schedule.never_fires
        schedule.next_after(datetime(2024, 1, 1, tzinfo=UTC))


@settings(max_examples=200, deadline=None)
@given(
    generated(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
def test_next_after_anywhere_in_the_calendar_returns_or_says_there_is_none(
    g: Generated, naive: datetime, tz: timezone
) -> None:
    assume(fires_ever(g.fields))
    start = naive.replace(tzinfo=tz)
    schedule = NCronTab.parse(g.expression)
    try:
        found = schedule.next_after(start)
    except NoOccurrenceError:
        assert start.astimezone(UTC).year >= 9950  # only near the end of the calendar
        return
    assert found > start and found.tzinfo == tz and schedule.matches(found)
