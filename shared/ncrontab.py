"""NCRONTAB schedules, read exactly as the Azure Functions host reads them.

The host hands a timer's schedule to NCrontab (``CrontabSchedule.TryParse``); stream
schedules use the same rules so that one expression means the same thing everywhere. This
module reproduces NCrontab's grammar and its next-occurrence rule:

- **Fields.** The expression is split on spaces only (tabs are not separators). Six fields are
  ``{second} {minute} {hour} {day} {month} {day-of-week}``. Exactly five fields are read as
  classic cron without seconds and fire at second 0 (the host parses with ``IncludingSeconds``
  unless there are exactly five). Any other count is an error.
- **Items.** A field is a comma-separated list; each item is ``*``, a value ``n``, a range
  ``a-b``, or one of those followed by ``/step``; ``a/step`` means ``a-max/step``.
  A reversed range is swapped (``5-1`` is ``1-5``). A step below 1 counts as 1 (``*/0`` is
  ``*``), and the step may carry a sign (``*/+5``). Values are ASCII digits (leading zeros are
  fine, ``07``); ``?``, ``L``, ``W`` and ``#`` are not NCRONTAB.
- **Ranges.** second and minute 0-59, hour 0-23, day 1-31, month 1-12, day-of-week 0-6 with
  0 = Sunday. ``7`` is *not* Sunday: NCrontab rejects it.
- **Names.** Months and days of the week may be named: a case-insensitive prefix, of any
  length, of the English name, taking the first name in calendar order that it begins:
  ``Jan``, ``january``, ``Augu``, ``DECEM``, ``sunday``; ``M`` is March and ``Ju`` is June.
  Names work wherever numbers do (``Mon-Fri``, ``Jan/3``); steps are numbers only.
- **Day and day-of-week.** A time fires when *every* field matches. When both the day and
  the day-of-week fields are restricted, both must match (unlike Vixie cron, which takes
  either): ``0 45 16 1 * Mon`` fires only on a 1st that is a Monday.
- **Time.** The host evaluates schedules in UTC unless ``WEBSITE_TIME_ZONE`` says otherwise;
  this module evaluates in UTC. The next occurrence is the first whole second strictly after
  the given time; there is none after 9999-12-31 23:59:59, as in .NET.

A schedule whose day and month fields never meet (``0 0 0 30 Feb *``) parses in NCrontab and
simply never fires; the host accepts it. :meth:`NCronTab.parse` rejects it unless called with
``allow_never=True``, since a stream schedule that never fires is a mistake.

``TimeSpan`` schedules (``"00:05:00"``) are not NCRONTAB: the host accepts them only on an App
Service plan, and this app deploys to Flex Consumption, so they are rejected with that reason.

croniter is not used: its six-field form puts seconds last, it accepts only three-letter
names, takes ``7`` for Sunday and ``L``/``#``/``?``, and its default day rule is OR.

Example:
    >>> from datetime import datetime, timezone
    >>> NCronTab.parse("0 */5 * * * *").next_after(datetime(2024, 1, 1, 10, 2, tzinfo=timezone.utc))
    datetime.datetime(2024, 1, 1, 10, 5, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

__all__ = ["FIELD_NAMES", "NCronTab", "NCronTabError", "NoOccurrenceError"]

FIELD_NAMES = ("second", "minute", "hour", "day", "month", "day-of-week")
"""The six fields in order, as the Azure Functions documentation names them."""

_MONTH_NAMES = tuple(calendar.month_name[1:])  # January .. December
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_INT32_MAX = 2**31 - 1
# .NET int.Parse (NumberStyles.Integer): optional white space, an optional sign, ASCII digits,
# optional trailing white space and trailing NULs. Field values never start with a sign or space.
_DOTNET_INT = re.compile(r"[\t-\r ]*([+-]?[0-9]+)[\t-\r ]*\x00*")
_TIMESPAN_LIKE = re.compile(r"\s*-?(\d+\.)?\d+:\d+(:\d+(\.\d+)?)?\s*")
_LAST_YEAR = 9999


class NCronTabError(ValueError):
    """An expression NCrontab rejects (or, by default, one that can never fire).

    Attributes:
        expression: The expression as given.
        field: The offending field's name (one of :data:`FIELD_NAMES`), or None when the
            expression as a whole is wrong (field count, type).
        problem: What is wrong, naming the offending text.
    """

    def __init__(self, expression: object, problem: str, field: str | None = None) -> None:
        self.expression = expression
        self.field = field
        self.problem = problem
        where = f"{field}: " if field else ""
        super().__init__(f"invalid NCRONTAB expression {expression!r}: {where}{problem}")


class NoOccurrenceError(ValueError):
    """The schedule has no occurrence after the given time (none up to the year 9999)."""


@dataclass(frozen=True)
class _Spec:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    noun: str = ""

    def describe(self) -> str:
        numbers = f"number {self.low}-{self.high}"
        return f"{self.noun} name or {numbers}" if self.names else numbers


_SPECS = (
    _Spec("second", 0, 59),
    _Spec("minute", 0, 59),
    _Spec("hour", 0, 23),
    _Spec("day", 1, 31),
    _Spec("month", 1, 12, _MONTH_NAMES, "month"),
    _Spec("day-of-week", 0, 6, _DAY_NAMES, "day"),
)


class _Bad(Exception):
    """A field-level problem; :meth:`NCronTab.parse` adds the expression and field name."""


def _dotnet_int(text: str) -> int | None:
    match = _DOTNET_INT.fullmatch(text)
    return int(match.group(1)) if match else None


def _value(text: str, spec: _Spec, item: str) -> int:
    """One value as NCrontab's ``ParseValue`` reads it: a number, or a name prefix."""
    context = f" in {item!r}" if text != item else ""
    if not text:
        raise _Bad(f"missing value{context}")
    if "0" <= text[0] <= "9":
        number = _dotnet_int(text)
        if number is None:
            raise _Bad(f"{text!r}{context} is not a {spec.describe()}")
        return number
    if spec.names and text.isascii():
        prefix = text.lower()
        for index, name in enumerate(spec.names):
            if name.lower().startswith(prefix):
                return spec.low + index
    raise _Bad(f"{text!r}{context} is not a {spec.describe()}")


def _out_of_range(value: int, spec: _Spec, item: str) -> _Bad:
    context = f" in {item!r}" if str(value) != item else ""
    hint = " (Sunday is 0; NCrontab does not accept 7)" if spec.name == "day-of-week" and value == 7 else ""
    return _Bad(f"{value}{context} is out of range {spec.low}-{spec.high}{hint}")


def _accumulate(start: int | None, end: int, step: int, spec: _Spec, item: str) -> range:
    """The values an item selects, with NCrontab's range rules (``start`` None means ``*``)."""
    step = max(step, 1)
    if start is None:
        return range(spec.low, spec.high + 1, step)
    if start > end:
        start, end = end, start
    for value in (start, end):
        if not spec.low <= value <= spec.high:
            raise _out_of_range(value, spec, item)
    return range(start, end + 1, step)


def _parse_item(item: str, spec: _Spec) -> range:
    if not item:
        raise _Bad("empty item in list")
    base, step = item, None
    slash = item.find("/")
    if slash > 0:
        base, step_text = item[:slash], item[slash + 1 :]
        step = _dotnet_int(step_text)
        if step is None or not -_INT32_MAX - 1 <= step <= _INT32_MAX:
            raise _Bad(f"step {step_text!r} in {item!r} is not a whole number")
    if base == "*":
        return _accumulate(None, spec.high, 1 if step is None else step, spec, item)
    dash = base.find("-")
    if dash > 0:
        first = _value(base[:dash], spec, item)
        last = _value(base[dash + 1 :], spec, item)
        return _accumulate(first, last, 1 if step is None else step, spec, item)
    value = _value(base, spec, item)
    if step is None:
        return _accumulate(value, value, 1, spec, item)
    return _accumulate(value, spec.high, step, spec, item)


def _parse_field(text: str, spec: _Spec) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(item, spec))
    return tuple(sorted(values))


def _next_in(values: tuple[int, ...], current: int) -> int | None:
    """The smallest allowed value >= ``current``, or None."""
    index = bisect_left(values, current)
    return values[index] if index < len(values) else None


def _longest(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


@dataclass(frozen=True)
class NCronTab:
    """A parsed NCRONTAB schedule. Build one with :meth:`parse`.

    Attributes:
        expression: The expression as given.
        seconds: Allowed seconds, ascending (``(0,)`` for a five-field expression).
        minutes: Allowed minutes, ascending.
        hours: Allowed hours, ascending.
        days: Allowed days of the month, ascending.
        months: Allowed months (1-12), ascending.
        days_of_week: Allowed days of the week (0 = Sunday .. 6 = Saturday), ascending.
        includes_seconds: The expression has six fields (the seconds field included).
    """

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]
    includes_seconds: bool = True
    _sets: tuple[frozenset[int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (self.seconds, self.minutes, self.hours, self.days, self.months, self.days_of_week)
        object.__setattr__(self, "_sets", tuple(frozenset(values) for values in fields))

    @classmethod
    def parse(cls, expr: str, *, allow_never: bool = False) -> NCronTab:
        """Parse an NCRONTAB expression as the Functions host does.

        Args:
            expr: Six fields (``"0 */5 * * * *"``) or five without seconds (``"*/5 * * * *"``).
            allow_never: Accept a schedule whose day and month fields never meet
                (``0 0 0 30 Feb *``), as the host does; it then never fires. By default
                such a schedule is rejected.

        Returns:
            The parsed schedule.

        Raises:
            NCronTabError: NCrontab would reject the expression (the error names the field
                and the offending text), or it can never fire and ``allow_never`` is False.
        """
        if not isinstance(expr, str):
            raise NCronTabError(expr, f"must be a string, got {type(expr).__name__}")
        parts = [part for part in expr.split(" ") if part]
        if len(parts) not in (5, 6):
            raise NCronTabError(expr, _count_problem(expr, len(parts)))
        includes_seconds = len(parts) == 6
        if not includes_seconds:
            parts = ["0", *parts]
        parsed: list[tuple[int, ...]] = []
        for part, spec in zip(parts, _SPECS, strict=True):
            try:
                parsed.append(_parse_field(part, spec))
            except _Bad as exc:
                problem = str(exc)
                if any(ch in part for ch in "\t\n\r\v\f"):
                    problem += " (NCrontab separates fields with spaces only, not tabs or newlines)"
                raise NCronTabError(expr, problem, spec.name) from None
        seconds, minutes, hours, days, months, days_of_week = parsed
        schedule = cls(expr, seconds, minutes, hours, days, months, days_of_week, includes_seconds)
        reason = schedule.never_fires_reason
        if reason is not None and not allow_never:
            raise NCronTabError(expr, reason, "day")
        return schedule

    @property
    def never_fires(self) -> bool:
        """No date has an allowed day in an allowed month (e.g. 30 February).

        Any real date falls on every day of the week over the 400-year Gregorian cycle, so the
        day-of-week field alone never makes a schedule impossible.
        """
        return not any(self.days[0] <= _longest(month) for month in self.months)

    @property
    def never_fires_reason(self) -> str | None:
        """Why the schedule never fires (its day and month fields never meet), or None."""
        if not self.never_fires:
            return None
        months = ", ".join(_MONTH_NAMES[m - 1] for m in self.months)
        days = (
            f"{self.days[0]} never occurs"
            if len(self.days) == 1
            else f"none of {', '.join(map(str, self.days))} occurs"
        )
        return (
            f"{days} in {months}, so the schedule would never fire "
            "(the Functions host accepts it and never runs the function)"
        )

    def matches(self, dt: datetime) -> bool:
        """Whether the schedule fires at ``dt`` (evaluated in UTC; microseconds ignored).

        Args:
            dt: A timezone-aware datetime.

        Returns:
            True when every field matches, the day and the day of the week included.
        """
        t = _to_utc(dt)
        s, mi, h, d, mo, w = self._sets
        weekday = (t.weekday() + 1) % 7  # Python counts from Monday, NCRONTAB from Sunday
        return t.second in s and t.minute in mi and t.hour in h and t.day in d and t.month in mo and weekday in w

    def next_after(self, dt: datetime) -> datetime:
        """The first occurrence strictly after ``dt``, as NCrontab's ``GetNextOccurrence``.

        The search runs in UTC (as the Functions host does by default, without
        ``WEBSITE_TIME_ZONE``) and the result is returned in ``dt``'s timezone.

        Args:
            dt: A timezone-aware datetime; microseconds are ignored.

        Returns:
            The next firing time, a whole second, in the same timezone as ``dt``.

        Raises:
            ValueError: ``dt`` is naive.
            NoOccurrenceError: No occurrence exists up to 9999-12-31 23:59:59 UTC (always the
                case for a schedule that :attr:`never_fires`).
        """
        start = _to_utc(dt)
        found = None if self.never_fires else self._search(start)
        if found is None:
            raise NoOccurrenceError(f"NCRONTAB schedule {self.expression!r} has no occurrence after {dt.isoformat()}")
        try:
            return found.astimezone(dt.tzinfo)
        except OverflowError:
            raise NoOccurrenceError(
                f"the next occurrence of {self.expression!r}, {found.isoformat()}, is not representable in {dt.tzinfo}"
            ) from None

    def occurrences_after(self, dt: datetime) -> Iterator[datetime]:
        """Successive occurrences strictly after ``dt``, ending where the calendar does.

        Args:
            dt: A timezone-aware datetime.

        Yields:
            Firing times in ``dt``'s timezone, ascending.

        Raises:
            ValueError: ``dt`` is naive.
        """
        current = dt
        while True:
            try:
                current = self.next_after(current)
            except NoOccurrenceError:
                return
            yield current

    def _search(self, start: datetime) -> datetime | None:
        """The first matching whole second after ``start`` (UTC), or None before year 10000."""
        day = self._next_date(start.date())
        if day is None:
            return None
        clock = self._next_time(start.hour, start.minute, start.second + 1) if day == start.date() else None
        if day == start.date() and clock is None:
            day = self._next_date(day + timedelta(days=1)) if day < date(_LAST_YEAR, 12, 31) else None
            if day is None:
                return None
        if clock is None:
            clock = (self.hours[0], self.minutes[0], self.seconds[0])
        return datetime(day.year, day.month, day.day, *clock, tzinfo=UTC)

    def _next_date(self, start: date) -> date | None:
        """The first date on or after ``start`` whose month, day and day of week all match."""
        _, _, _, day_set, month_set, dow_set = self._sets
        year, month, first = start.year, start.month, start.day
        while year <= _LAST_YEAR:
            if month not in month_set:
                following = _next_in(self.months, month)
                if following is None:
                    year, month, first = year + 1, self.months[0], 1
                    continue
                month, first = following, 1
            last = calendar.monthrange(year, month)[1]
            for index in range(bisect_left(self.days, first), len(self.days)):
                day = self.days[index]
                if day > last:
                    break
                if (calendar.weekday(year, month, day) + 1) % 7 in dow_set and day in day_set:
                    return date(year, month, day)
            year, month, first = (year + 1, 1, 1) if month == 12 else (year, month + 1, 1)
        return None

    def _next_time(self, hour: int, minute: int, second: int) -> tuple[int, int, int] | None:
        """The first allowed time of day at or after ``hour:minute:second`` (second may be 60)."""
        if hour in self._sets[2]:
            if minute in self._sets[1]:
                s = _next_in(self.seconds, second)
                if s is not None:
                    return hour, minute, s
            m = _next_in(self.minutes, minute + 1)
            if m is not None:
                return hour, m, self.seconds[0]
        h = _next_in(self.hours, hour + 1)
        return (h, self.minutes[0], self.seconds[0]) if h is not None else None

    def __str__(self) -> str:
        return self.expression


def _count_problem(expr: str, count: int) -> str:
    problem = (
        "expected 6 fields '{second} {minute} {hour} {day} {month} {day-of-week}' separated by "
        f"spaces (or 5, without seconds), got {count}"
    )
    if _TIMESPAN_LIKE.fullmatch(expr):
        problem += (
            f"; '{expr.strip()}' looks like a TimeSpan schedule, which the Functions host accepts only on an "
            "App Service plan (this app deploys to Flex Consumption): write it as NCRONTAB, e.g. '0 */5 * * * *'"
        )
    elif any(ch in expr for ch in "\t\n\r\v\f"):
        problem += " (NCrontab separates fields with spaces only, not tabs or newlines)"
    return problem


def _to_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {dt.isoformat()}")
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{dt.isoformat()} is outside the years 1-9999 in UTC") from None
