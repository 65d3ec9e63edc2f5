"""The schedule clock: the template's EventBridge schedules fired on a simulated calendar.

Reads every ``Schedule`` event from template.yaml (no cron string is repeated in code), parses AWS's
cron form (``cron(minutes hours day-of-month month day-of-week year)``, with ``?``, ranges, lists,
steps, names and ``L`` for the last day of the month) and ``rate(...)``, and yields each firing as the
scheduled event EventBridge would deliver (the shape of ``sam local generate-event cloudwatch
scheduled-event``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra import template as tpl

MONTHS = {
    m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)
}
# AWS numbers days of the week 1-7 from Sunday; Python's weekday() is 0-6 from Monday.
WEEKDAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}


class CronError(ValueError):
    """A schedule expression this clock (and EventBridge) would not accept."""


def _field(text: str, low: int, high: int, names: Mapping[str, int] | None = None) -> set[int]:
    values: set[int] = set()
    for part in text.upper().split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
            if step < 1:
                raise CronError(f"step {step} in {text!r}")
        if part in {"*", "?"}:
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise CronError(f"{text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names: Mapping[str, int] | None) -> int:
    if names and text in names:
        return names[text]
    try:
        return int(text)
    except ValueError:
        raise CronError(f"{text!r} is not a number{' or a name' if names else ''}") from None


@dataclass(frozen=True)
class Cron:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # None: any (day-of-week decides) ; {-1}: last day of month
    months: frozenset[int]
    weekdays: frozenset[int] | None  # AWS numbering, None: any
    years: frozenset[int] | None

    @classmethod
    def parse(cls, expression: str) -> Cron:
        text = expression.strip()
        if not (text.startswith("cron(") and text.endswith(")")):
            raise CronError(f"{expression!r} is not cron(...)")
        fields = text[5:-1].split()
        if len(fields) != 6:
            raise CronError(f"{expression!r} needs 6 fields, has {len(fields)}")
        minute, hour, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise CronError(f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'")
        if any(c in dom + dow for c in "W#"):
            raise CronError(f"{expression!r}: W and # are not supported by this clock")
        days = None if dom == "?" else (frozenset({-1}) if dom.upper() == "L" else frozenset(_field(dom, 1, 31)))
        return cls(
            expression=expression,
            minutes=frozenset(_field(minute, 0, 59)),
            hours=frozenset(_field(hour, 0, 23)),
            days=days,
            months=frozenset(_field(month, 1, 12, MONTHS)),
            weekdays=None if dow == "?" else frozenset(_field(dow, 1, 7, WEEKDAYS)),
            years=None if year == "*" else frozenset(_field(year, 1970, 2199)),
        )

    def fires_on(self, day: dt.date) -> bool:
        if day.month not in self.months or (self.years is not None and day.year not in self.years):
            return False
        if self.days is not None:
            if -1 in self.days:
                return (day + dt.timedelta(days=1)).month != day.month
            return day.day in self.days
        aws_weekday = (day.isoweekday() % 7) + 1  # Sunday=1 ... Saturday=7
        return self.weekdays is not None and aws_weekday in self.weekdays

    def times_on(self, day: dt.date) -> list[dt.datetime]:
        if not self.fires_on(day):
            return []
        return [
            dt.datetime(day.year, day.month, day.day, h, m, tzinfo=dt.UTC)
            for h in sorted(self.hours)
            for m in sorted(self.minutes)
        ]


@dataclass(frozen=True)
class Firing:
    at: dt.datetime
    function: str  # logical id
    event_name: str
    expression: str

    @property
    def rule_logical_id(self) -> str:
        return f"{self.function}{self.event_name}"  # how SAM names the EventBridge rule of a Schedule event

    def event(
        self, account: str = "123456789012", region: str = "us-east-1", rule_arn: str | None = None
    ) -> dict[str, Any]:
        """The scheduled event EventBridge delivers for this firing."""
        return {
            "version": "0",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.rule_logical_id}@{self.at.isoformat()}")),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [rule_arn or f"arn:aws:events:{region}:{account}:rule/{self.rule_logical_id}"],
            "detail": {},
        }


class ScheduleClock:
    """Every schedule of the template, asked day by day."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self.crons: list[tuple[str, str, Cron]] = []
        for function, events in tpl.schedules(template).items():
            for event_name, expression in events:
                if not str(expression).startswith("cron("):
                    raise CronError(f"{function}.{event_name}: only cron() schedules can be replayed ({expression})")
                self.crons.append((function, event_name, Cron.parse(str(expression))))

    def firings_on(self, day: dt.date) -> list[Firing]:
        found = [
            Firing(at, function, name, cron.expression)
            for function, name, cron in self.crons
            for at in cron.times_on(day)
        ]
        return sorted(found, key=lambda f: (f.at, f.function))

    def firings(self, start: dt.date, end: dt.date) -> Iterator[Firing]:
        day = start
        while day <= end:
            yield from self.firings_on(day)
            day += dt.timedelta(days=1)
