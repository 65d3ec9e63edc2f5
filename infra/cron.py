"""EventBridge schedule expressions: the one grammar the template linter and the schedule clock share.

What EventBridge documents, and nothing more (the linter must refuse what AWS would refuse, the clock must
fire what AWS would fire):

``cron(minutes hours day-of-month month day-of-week year)``, six fields separated by white space:

=============  =================  ===========================================================
field          values             wildcards
=============  =================  ===========================================================
minutes        0-59               ``, - * /``
hours          0-23               ``, - * /``
day-of-month   1-31               ``, - * ? / L W``
month          1-12 or JAN-DEC    ``, - * /``
day-of-week    1-7 or SUN-SAT     ``, - * ? L #`` (1 is Sunday)
year           1970-2199          ``, - * /``
=============  =================  ===========================================================

- ``a-b`` is a range (a <= b), ``x/n`` an increment from x (``*``, a value or a range) by n >= 1:
  ``1/10`` in minutes is 1, 11, 21, ... 51. Names are case-insensitive.
- Exactly one of day-of-month and day-of-week is ``?``; ``?`` appears nowhere else.
- Day-of-month: ``L`` is the month's last day, ``LW`` its last weekday (Monday-Friday), ``nW`` the weekday
  nearest day n without leaving the month (``1W`` on a Saturday is Monday the 3rd).
- Day-of-week: ``L`` alone is the week's last day (SAT), ``nL`` the month's last weekday n (``6L``, the
  last Friday), ``n#k`` the month's k-th weekday n for k 1-5 (``2#1``, the first Monday).
- Like ``#`` (which AWS documents as one expression per field: ``3#1,6#3`` is invalid), the other
  day specials ``L``, ``LW``, ``nW`` and ``nL`` stand alone in their field, as in Quartz, whose syntax
  EventBridge's is.

``rate(value unit)``: a positive integer and minute(s) | hour(s) | day(s), singular exactly when the value
is 1. A rate schedule fires when it is created and then every interval of elapsed time (``rate(1 day)``
is 24 hours, whatever the clocks of a time zone do).

``at(yyyy-mm-ddThh:mm:ss)``: once, and only on EventBridge Scheduler (SAM's ``ScheduleV2``).

Time zones (EventBridge Scheduler's ``ScheduleExpressionTimezone``; rules always run in UTC): a cron or
at() expression is read on the zone's wall clock. As Scheduler documents for daylight-saving changes, a
wall-clock time that does not exist (the hour skipped in spring) is not fired, and one that exists twice
(the hour repeated in autumn) fires once, at its first occurrence.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = "UTC"
_MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, start=1)}
# EventBridge numbers the days of the week 1-7 from Sunday; Python's isoweekday() is 1-7 from Monday.
WEEKDAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
FIRST_YEAR, LAST_YEAR = 1970, 2199
RATE_UNITS = {"minute": dt.timedelta(minutes=1), "hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
_RATE = re.compile(r"rate\((?P<value>\d+) (?P<unit>[a-z]+)\)")
_AT = re.compile(r"at\((?P<when>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")


class ScheduleExpressionError(ValueError):
    """An expression EventBridge would refuse; ``problems`` says every reason, one line each."""

    def __init__(self, expression: object, problems: list[str]) -> None:
        super().__init__(f"{expression!r}: " + "; ".join(problems))
        self.expression = expression
        self.problems = problems


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int]
    increments: bool = True

    @property
    def allowed(self) -> str:
        names = f" or {next(iter(self.names))}-{next(reversed(self.names))}" if self.names else ""
        return f"{self.low}-{self.high}{names}"


MINUTES = Field("minutes", 0, 59, {})
HOURS = Field("hours", 0, 23, {})
DAY_OF_MONTH = Field("day-of-month", 1, 31, {})
MONTH = Field("month", 1, 12, MONTHS)
DAY_OF_WEEK = Field("day-of-week", 1, 7, WEEKDAYS, increments=False)
YEAR = Field("year", FIRST_YEAR, LAST_YEAR, {})


# ---------------------------------------------------------------- the three kinds of schedule
@dataclass(frozen=True)
class DayRule:
    """The days of a month one day field picks: plain values, or one of the stand-alone specials.

    Day-of-month: ``values`` are days; ``last`` is L; ``weekday`` is W (with ``last``: LW).
    Day-of-week: ``values`` are weekdays (SUN=1); ``last`` is nL; ``nth`` is n#k.
    """

    of_week: bool
    values: frozenset[int]
    last: bool = False
    weekday: bool = False
    nth: int = 0

    def days(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        if not self.of_week:
            return self._days_of_month(year, month, length)
        matching = [d for d in range(1, length + 1) if _eventbridge_weekday(dt.date(year, month, d)) in self.values]
        if self.last:
            return matching[-1:]
        if self.nth:
            return matching[self.nth - 1 : self.nth]
        return matching

    def _days_of_month(self, year: int, month: int, length: int) -> list[int]:
        if self.last and self.weekday:
            day = length
            while dt.date(year, month, day).isoweekday() > 5:
                day -= 1
            return [day]
        if self.last:
            return [length]
        if self.weekday:
            (day,) = self.values
            if day > length:
                return []
            iso = dt.date(year, month, day).isoweekday()
            if iso == 6:  # Saturday: the Friday before, unless that is in the previous month
                return [day - 1] if day > 1 else [day + 2]
            if iso == 7:  # Sunday: the Monday after, unless that is in the next month
                return [day + 1] if day < length else [day - 2]
            return [day]
        return [d for d in sorted(self.values) if d <= length]


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: DayRule  # whichever of day-of-month and day-of-week is not '?'
    months: frozenset[int]
    years: frozenset[int] | None  # None: every year

    def days_in(self, year: int, month: int) -> list[int]:
        """The days of ``month`` this expression fires on (its wall-clock dates)."""
        if month not in self.months or (self.years is not None and year not in self.years):
            return []
        return self.days.days(year, month)

    def wall_times(self, start: dt.date) -> Iterator[dt.datetime]:
        """Every wall-clock minute it names, in order, from ``start`` to the end of its last year."""
        last_year = max(self.years) if self.years is not None else LAST_YEAR
        year, month = start.year, start.month
        while year <= last_year:
            for day in self.days_in(year, month):
                if dt.date(year, month, day) >= start:
                    for hour in self.hours:
                        for minute in self.minutes:
                            yield dt.datetime(year, month, day, hour, minute)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def firings(self, start: dt.datetime, end: dt.datetime, timezone: str = UTC) -> list[dt.datetime]:
        """The instants (UTC) in [start, end) when it fires, read on ``timezone``'s wall clock."""
        zone = _zone(timezone)
        first_day = start.astimezone(zone).date() - dt.timedelta(days=1)
        found = []
        for wall in self.wall_times(first_day):
            if wall.date() > end.astimezone(zone).date() + dt.timedelta(days=1):
                break
            instant = _instant(wall, zone)
            if instant is not None and start <= instant < end:
                found.append(instant)
        return found

    def next_after(self, after: dt.datetime, timezone: str = UTC) -> dt.datetime | None:
        """The first firing strictly after ``after`` (UTC), or None if it never fires again."""
        zone = _zone(timezone)
        for wall in self.wall_times(after.astimezone(zone).date() - dt.timedelta(days=1)):
            instant = _instant(wall, zone)
            if instant is not None and instant > after:
                return instant
        return None


@dataclass(frozen=True)
class Rate:
    expression: str
    every: dt.timedelta

    def firings(self, start: dt.datetime, end: dt.datetime, origin: dt.datetime) -> list[dt.datetime]:
        """The instants in [start, end) of a schedule created at ``origin`` (its first firing)."""
        k = max(0, -((origin - start) // self.every))  # the first k with origin + k * every >= start
        found = []
        while (at := origin + k * self.every) < end:
            found.append(at.astimezone(dt.UTC))
            k += 1
        return found

    def next_after(self, after: dt.datetime, origin: dt.datetime) -> dt.datetime:
        k = max(0, (after - origin) // self.every + 1)
        return (origin + k * self.every).astimezone(dt.UTC)


@dataclass(frozen=True)
class At:
    expression: str
    wall: dt.datetime  # naive: read on the schedule's time zone

    def instant(self, timezone: str = UTC) -> dt.datetime | None:
        """When it fires (UTC); None if that wall-clock time does not exist in ``timezone``."""
        return _instant(self.wall, _zone(timezone))

    def firings(self, start: dt.datetime, end: dt.datetime, timezone: str = UTC) -> list[dt.datetime]:
        at = self.instant(timezone)
        return [at] if at is not None and start <= at < end else []

    def next_after(self, after: dt.datetime, timezone: str = UTC) -> dt.datetime | None:
        at = self.instant(timezone)
        return at if at is not None and at > after else None


Schedule = Cron | Rate | At


# ---------------------------------------------------------------- parsing
def parse(expression: object, *, scheduler: bool = False) -> Schedule:
    """The schedule an expression means; ``scheduler`` admits EventBridge Scheduler's at() as well.

    Raises ScheduleExpressionError naming every problem (the linter prints them all).
    """
    if not isinstance(expression, str):
        raise ScheduleExpressionError(expression, ["a schedule expression must be a literal string"])
    text = expression.strip()
    if text.startswith("cron("):
        return _parse_cron(expression, text)
    if text.startswith("rate("):
        return _parse_rate(expression, text)
    if text.startswith("at("):
        if not scheduler:
            raise ScheduleExpressionError(expression, ["at() is only for EventBridge Scheduler (ScheduleV2)"])
        return _parse_at(expression, text)
    kinds = "cron(...), rate(...) or at(...)" if scheduler else "cron(...) or rate(...)"
    raise ScheduleExpressionError(expression, [f"is not {kinds}"])


def problems(expression: object, *, scheduler: bool = False) -> list[str]:
    """What is wrong with ``expression``; [] when EventBridge accepts it."""
    try:
        parse(expression, scheduler=scheduler)
    except ScheduleExpressionError as exc:
        return exc.problems
    return []


def zone_problems(timezone: object) -> list[str]:
    """What is wrong with a ScheduleExpressionTimezone; [] for an IANA zone this machine knows."""
    if not isinstance(timezone, str):
        return [f"time zone {timezone!r} is not a literal string"]
    try:
        _zone(timezone)
    except ScheduleExpressionError as exc:
        return exc.problems
    return []


def _parse_cron(expression: str, text: str) -> Cron:
    if not text.endswith(")"):
        raise ScheduleExpressionError(expression, ["cron(...) is not closed"])
    fields = text[len("cron(") : -1].upper().split()
    if len(fields) != 6:
        raise ScheduleExpressionError(
            expression, [f"has {len(fields)} fields; cron has 6 (minutes hours day-of-month month day-of-week year)"]
        )
    minute, hour, day_of_month, month, day_of_week, year = fields
    found: list[str] = []
    if (day_of_month == "?") == (day_of_week == "?"):
        found.append("exactly one of day-of-month and day-of-week must be '?'")
    minutes = _values(minute, MINUTES, found)
    hours = _values(hour, HOURS, found)
    by_month_day = None if day_of_month == "?" else _day_of_month(day_of_month, found)
    months = _values(month, MONTH, found)
    by_week_day = None if day_of_week == "?" else _day_of_week(day_of_week, found)
    years = None if year == "*" else _values(year, YEAR, found)
    days = by_month_day or by_week_day
    if found or days is None:
        raise ScheduleExpressionError(expression, found)
    return Cron(
        expression=expression,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=days,
        months=frozenset(months),
        years=None if years is None else frozenset(years),
    )


def _values(text: str, field: Field, found: list[str]) -> set[int]:
    """A list of values, ranges and increments (``,`` ``-`` ``*`` ``/``), checked against ``field``."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not field.increments:
                found.append(f"{field.name} takes no increments ('/'): {item!r}")
                continue
            if not (step_text.isdigit() and int(step_text) >= 1):
                found.append(f"{field.name} increment {item!r} needs a positive whole step")
                continue
            step = int(step_text)
        span = _span(base, field, found, increment=bool(slash))
        if span is not None:
            values.update(range(span[0], span[1] + 1, step))
    return values


def _span(base: str, field: Field, found: list[str], *, increment: bool) -> tuple[int, int] | None:
    if base == "*":
        return field.low, field.high
    if base == "?":
        found.append(f"'?' is only for day-of-month or day-of-week, and alone in its field ({field.name})")
        return None
    bounds = base.split("-")
    if len(bounds) > 2:
        found.append(f"{field.name} {base!r} is not a value or a range")
        return None
    numbers = [_value(bound, field, found) for bound in bounds]
    if None in numbers:
        return None
    low, high = numbers[0], numbers[-1]
    assert low is not None and high is not None
    if low > high:
        found.append(f"{field.name} range {base!r} runs backwards")
        return None
    return (low, field.high) if increment and len(bounds) == 1 else (low, high)


def _value(text: str, field: Field, found: list[str]) -> int | None:
    value = field.names.get(text) if not text.isdigit() else int(text)
    if value is None or not field.low <= value <= field.high:
        found.append(f"{field.name} {text!r} is not {field.allowed}")
        return None
    return value


def _day_of_month(text: str, found: list[str]) -> DayRule | None:
    if text in ("L", "LW"):
        return DayRule(of_week=False, values=frozenset(), last=True, weekday=text == "LW")
    if text.endswith("W") and text[:-1].isdigit():
        day = _value(text[:-1], DAY_OF_MONTH, found)
        return None if day is None else DayRule(of_week=False, values=frozenset({day}), weekday=True)
    if any(c in text for c in "LW"):
        found.append(f"day-of-month {text!r}: L, LW and nW stand alone in their field")
        return None
    before = len(found)
    values = _values(text, DAY_OF_MONTH, found)
    return DayRule(of_week=False, values=frozenset(values)) if len(found) == before else None


def _day_of_week(text: str, found: list[str]) -> DayRule | None:
    if text == "L":
        return DayRule(of_week=True, values=frozenset({WEEKDAYS["SAT"]}))
    if "#" in text:
        day, _, nth = text.partition("#")
        weekday = None if "," in text else _value(day, DAY_OF_WEEK, found)
        if "," in text:
            found.append(f"day-of-week {text!r}: '#' takes one expression in its field")
        elif not (nth.isdigit() and 1 <= int(nth) <= 5):
            found.append(f"day-of-week {text!r}: the instance after '#' must be 1-5")
        elif weekday is not None:
            return DayRule(of_week=True, values=frozenset({weekday}), nth=int(nth))
        return None
    if text.endswith("L") and "," not in text and "-" not in text:
        day = text[:-1]
        weekday = int(day) if day.isdigit() else WEEKDAYS.get(day)
        if weekday is None or not 1 <= weekday <= 7:
            found.append(f"day-of-week {text!r} is not a weekday ({DAY_OF_WEEK.allowed}) followed by L")
            return None
        return DayRule(of_week=True, values=frozenset({weekday}), last=True)
    if "L" in text:  # no weekday's name has an L
        found.append(f"day-of-week {text!r}: L and nL stand alone in their field")
        return None
    before = len(found)
    values = _values(text, DAY_OF_WEEK, found)
    return DayRule(of_week=True, values=frozenset(values)) if len(found) == before else None


def _parse_rate(expression: str, text: str) -> Rate:
    match = _RATE.fullmatch(text)
    if not match:
        raise ScheduleExpressionError(expression, ["is not rate(<positive integer> <minute(s)|hour(s)|day(s)>)"])
    value, unit = int(match["value"]), match["unit"]
    singular = unit.removesuffix("s")
    if singular not in RATE_UNITS:
        raise ScheduleExpressionError(expression, [f"rate unit {unit!r} is not minute(s), hour(s) or day(s)"])
    if value < 1:
        raise ScheduleExpressionError(expression, ["rate value must be a positive integer"])
    if (value == 1) != (unit == singular):
        raise ScheduleExpressionError(expression, ["rate unit is singular for 1 and plural otherwise"])
    return Rate(expression=expression, every=value * RATE_UNITS[singular])


def _parse_at(expression: str, text: str) -> At:
    match = _AT.fullmatch(text)
    if not match:
        raise ScheduleExpressionError(expression, ["is not at(yyyy-mm-ddThh:mm:ss)"])
    try:
        wall = dt.datetime.fromisoformat(match["when"])
    except ValueError as exc:
        raise ScheduleExpressionError(expression, [f"at() names no such time: {exc}"]) from None
    return At(expression=expression, wall=wall)


# ---------------------------------------------------------------- wall clocks and instants
def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleExpressionError(timezone, [f"time zone {timezone!r} is not an IANA time zone"]) from None


def _instant(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime | None:
    """The UTC instant of a wall-clock time: None in a spring gap, the first occurrence in an autumn overlap."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None  # skipped by the clock change: EventBridge Scheduler does not fire it
    return instant


def _eventbridge_weekday(day: dt.date) -> int:
    return day.isoweekday() % 7 + 1  # Sunday=1 ... Saturday=7


__all__ = [
    "UTC",
    "At",
    "Cron",
    "Rate",
    "Schedule",
    "ScheduleExpressionError",
    "parse",
    "problems",
    "zone_problems",
]
