"""NCRONTAB schedules, as the Azure Functions timer trigger reads them.

An NCRONTAB expression has six fields, ``{second} {minute} {hour} {day} {month} {day-of-week}``;
a classic five-field cron expression is accepted too and fires at second 0. Each field is a
comma-separated list of items, an item being one of

- ``*`` (every value), ``n`` (one value), ``a-b`` (an inclusive range);
- any of those followed by ``/step`` (``*/15``, ``10-50/20``); ``a/step`` means ``a-max/step``.

Months may be written ``Jan``..``Dec`` and days of the week ``Sun``..``Sat`` (any case); the
day of the week is 0-6 from Sunday, and 7 is Sunday as well.

When both the day and the day-of-week fields are restricted (neither starts with ``*``), a
day matches when *either* matches, as crontab(5) specifies: ``0 0 0 13 * Fri`` fires on
every 13th and on every Friday. Otherwise both must match.

Example:
    >>> from datetime import datetime, timezone
    >>> NCronTab.parse("0 */5 * * * *").next_after(datetime(2024, 1, 1, 10, 2, tzinfo=timezone.utc))
    datetime.datetime(2024, 1, 1, 10, 5, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["NCronTab"]

_MONTH_NAMES = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_FIELDS = (
    _FieldSpec("second", 0, 59),
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day", 1, 31),
    _FieldSpec("month", 1, 12, _MONTH_NAMES),
    _FieldSpec("day-of-week", 0, 7, _DAY_NAMES),
)
# Search horizon: a valid schedule always fires within 8 years (29 February skips at most
# one leap year at a century boundary), so 400 years is a generous bound that stays fast.
_MAX_YEARS = 400


class _FieldError(ValueError):
    def __init__(self, token: str, problem: str) -> None:
        super().__init__(problem)
        self.token = token
        self.problem = problem


def _value(text: str, spec: _FieldSpec, token: str) -> int:
    if spec.names is not None and text.lower() in spec.names:
        return spec.names[text.lower()]
    if not text.isdigit():
        hint = ""
        if spec.names is not None:
            hint = f" (names: {', '.join(n.capitalize() for n in spec.names)})"
        raise _FieldError(token, f"'{text}' is not a number{hint}")
    value = int(text)
    if not spec.low <= value <= spec.high:
        raise _FieldError(token, f"{value} is out of range {spec.low}-{spec.high}")
    return value


def _parse_item(token: str, spec: _FieldSpec) -> set[int]:
    if not token:
        raise _FieldError(token, "empty list item")
    base, slash, step_text = token.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise _FieldError(token, f"step '{step_text}' must be a positive whole number")
        step = int(step_text)
    if base == "*":
        low, high = spec.low, spec.high
        if spec.name == "day-of-week":
            high = 6  # 7 is only an alias of Sunday; '*' covers 0-6 once
    elif "-" in base:
        start_text, _, end_text = base.partition("-")
        low, high = _value(start_text, spec, token), _value(end_text, spec, token)
        if low > high:
            raise _FieldError(token, f"range start {start_text} is after its end {end_text}")
    else:
        low = _value(base, spec, token)
        high = spec.high if slash else low
    values = set(range(low, high + 1, step))
    if spec.name == "day-of-week" and 7 in values:
        values.discard(7)
        values.add(0)
    return values


def _parse_field(text: str, spec: _FieldSpec) -> tuple[int, ...]:
    values: set[int] = set()
    for token in text.split(","):
        values |= _parse_item(token, spec)
    return tuple(sorted(values))


def _next_in(values: tuple[int, ...], current: int) -> int | None:
    """The smallest allowed value >= ``current``, or None."""
    index = bisect_left(values, current)
    return values[index] if index < len(values) else None


@dataclass(frozen=True)
class NCronTab:
    """A parsed NCRONTAB schedule. Build one with :meth:`parse`.

    Attributes:
        expression: The expression as given (stripped).
        seconds: Allowed seconds, ascending.
        minutes: Allowed minutes, ascending.
        hours: Allowed hours, ascending.
        days: Allowed days of the month, ascending.
        months: Allowed months (1-12), ascending.
        days_of_week: Allowed days of the week (0 = Sunday .. 6 = Saturday), ascending.
        day_restricted: The day field does not start with ``*``.
        dow_restricted: The day-of-week field does not start with ``*``.
    """

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]
    day_restricted: bool
    dow_restricted: bool
    _month_set: frozenset[int] = field(init=False, repr=False, compare=False)
    _day_set: frozenset[int] = field(init=False, repr=False, compare=False)
    _dow_set: frozenset[int] = field(init=False, repr=False, compare=False)
    _hour_set: frozenset[int] = field(init=False, repr=False, compare=False)
    _minute_set: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, values in (
            ("_month_set", self.months),
            ("_day_set", self.days),
            ("_dow_set", self.days_of_week),
            ("_hour_set", self.hours),
            ("_minute_set", self.minutes),
        ):
            object.__setattr__(self, name, frozenset(values))

    @classmethod
    def parse(cls, expr: str) -> NCronTab:
        """Parse a six-field NCRONTAB (or five-field cron) expression.

        Args:
            expr: The expression, e.g. ``"0 */5 * * * *"``.

        Returns:
            The parsed schedule.

        Raises:
            ValueError: The expression is malformed; the message names the field and the token,
                or says that the schedule can never fire (e.g. ``0 0 0 30 Feb *``).
        """
        if not isinstance(expr, str):
            raise ValueError(f"NCRONTAB expression must be a string, got {type(expr).__name__}")
        text = expr.strip()
        parts = text.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        elif len(parts) != 6:
            raise ValueError(
                f"invalid NCRONTAB expression {expr!r}: expected 6 fields "
                "'{second} {minute} {hour} {day} {month} {day-of-week}' (or 5 without seconds), "
                f"got {len(parts)}"
            )
        parsed: list[tuple[int, ...]] = []
        for part, spec in zip(parts, _FIELDS, strict=True):
            try:
                parsed.append(_parse_field(part, spec))
            except _FieldError as exc:
                raise ValueError(
                    f"invalid NCRONTAB expression {expr!r}: {spec.name} field {part!r}: "
                    f"bad token {exc.token!r}: {exc.problem}"
                ) from None
        schedule = cls(
            expression=text,
            seconds=parsed[0],
            minutes=parsed[1],
            hours=parsed[2],
            days=parsed[3],
            months=parsed[4],
            days_of_week=parsed[5],
            day_restricted=not parts[3].startswith("*"),
            dow_restricted=not parts[5].startswith("*"),
        )
        schedule._check_satisfiable(expr)
        return schedule

    def _check_satisfiable(self, expr: str) -> None:
        if self.dow_restricted:
            return  # some weekday falls in every allowed month
        longest = {month: calendar.monthrange(2024, month)[1] for month in range(1, 13)}  # 2024 is leap
        if not any(self.days[0] <= longest[month] for month in self.months):
            raise ValueError(
                f"invalid NCRONTAB expression {expr!r}: day field allows only {list(self.days)}, "
                f"which never occurs in month(s) {list(self.months)}"
            )

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        in_days = day in self._day_set
        in_dow = (calendar.weekday(year, month, day) + 1) % 7 in self._dow_set
        if self.day_restricted and self.dow_restricted:
            return in_days or in_dow
        return in_days and in_dow

    def matches(self, dt: datetime) -> bool:
        """Whether the schedule fires at ``dt`` (evaluated in UTC; microseconds ignored).

        Args:
            dt: A timezone-aware datetime.

        Returns:
            True when every field matches.
        """
        t = _to_utc(dt)
        return (
            t.second in self.seconds
            and t.minute in self._minute_set
            and t.hour in self._hour_set
            and t.month in self._month_set
            and self._day_matches(t.year, t.month, t.day)
        )

    def next_after(self, dt: datetime) -> datetime:
        """The first occurrence strictly after ``dt``.

        The search runs in UTC (as the Functions host does by default, without
        ``WEBSITE_TIME_ZONE``) and the result is returned in ``dt``'s timezone.

        Args:
            dt: A timezone-aware datetime.

        Returns:
            The next firing time, a whole second, in the same timezone as ``dt``.

        Raises:
            ValueError: ``dt`` is naive, or no occurrence exists within the search horizon.
        """
        start = _to_utc(dt).replace(microsecond=0) + timedelta(seconds=1)
        found = self._search(start)
        if found is None:
            raise ValueError(f"NCRONTAB schedule {self.expression!r} has no occurrence after {dt.isoformat()}")
        return found.astimezone(dt.tzinfo)

    def _search(self, start: datetime) -> datetime | None:
        t = start
        horizon = start.year + _MAX_YEARS
        day = timedelta(days=1)
        while t.year <= horizon:
            if t.month not in self._month_set:
                month = _next_in(self.months, t.month)
                t = (
                    datetime(t.year, month, 1, tzinfo=UTC)
                    if month
                    else datetime(t.year + 1, self.months[0], 1, tzinfo=UTC)
                )
                continue
            if not self._day_matches(t.year, t.month, t.day):
                t = datetime(t.year, t.month, t.day, tzinfo=UTC) + day
                continue
            if t.hour not in self._hour_set:
                hour = _next_in(self.hours, t.hour)
                t = t.replace(hour=hour, minute=0, second=0) if hour is not None else _midnight(t) + day
                continue
            if t.minute not in self._minute_set:
                minute = _next_in(self.minutes, t.minute)
                if minute is not None:
                    t = t.replace(minute=minute, second=0)
                else:
                    t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            second = _next_in(self.seconds, t.second)
            if second is None:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            return t.replace(second=second)
        return None

    def __str__(self) -> str:
        return self.expression


def _midnight(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0)


def _to_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {dt.isoformat()}")
    return dt.astimezone(UTC)
